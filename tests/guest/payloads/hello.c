/* Checks the PVH start info a VMM hands over: magic, command line, memory map. */
#include "payload.h"

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != 0x336ec578) {
		putstr("hello: bad magic\n");
		poweroff();
	}
	putstr("hello: start_info magic ok cmdline=");
	putstr(si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "");
	putstr("\nhello: memmap ");
	putdec(si->memmap_entries);
	putstr(" entries\n");
	poweroff();
}
