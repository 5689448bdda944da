/* Triple-faults on purpose: with an empty IDT every exception escalates to a shutdown. */
#include "payload.h"

void payload_main(const struct hvm_start_info *si)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idt = {0, 0};

	putstr("triple-fault: faulting\n");
	__asm__ volatile("lidt %0; int3" : : "m"(idt));
	putstr("triple-fault: still alive\n");
	poweroff();
}
