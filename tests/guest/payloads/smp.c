/* A second vCPU for the payloads that want one: INIT and start-up IPIs to ap.S's trampoline. */
#include "payload.h"

#define LAPIC_BASE 0xfee00000ULL
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_ICR_INIT 0x4500	   /* INIT, level assert */
#define LAPIC_ICR_STARTUP 0x4600   /* start-up IPI; the low byte names the page */
#define AP_TRAMPOLINE_ADDR 0x10000 /* as in ap.S */

/* ap.S: the real-mode start of an AP, and what it needs from us. */
extern const char ap_trampoline[], ap_trampoline_end[];
uint64_t ap_stack_top;
static uint8_t ap_stack[16384] __attribute__((aligned(16)));

extern uint64_t boot_pdpt[512]; /* pvh.S: the first GiB identity-mapped */
static uint64_t mmio_pd[512] __attribute__((aligned(4096)));

void map_mmio_window(void)
{
	uint64_t cr3;

	/* Uncached (PCD | PWT): these are device registers, not RAM. */
	for (uint64_t i = 0; i < 512; i++)
		mmio_pd[i] = (0xc0000000ULL + (i << 21)) | 0x83 | 0x18;
	boot_pdpt[3] = (uint64_t)(uintptr_t)mmio_pd | 3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

static void lapic_write(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v;
}

static void spin_ticks(uint64_t ticks)
{
	uint64_t start = rdtsc();

	while (rdtsc() - start < ticks)
		__asm__ volatile("pause");
}

/* INIT, then start-up IPIs with the spacing the MP specification asks for (10 ms, 200 us). */
void start_ap(unsigned apic_id)
{
	volatile char *dst = (volatile char *)(uintptr_t)AP_TRAMPOLINE_ADDR;

	map_mmio_window(); /* the local APIC's registers, at 0xfee00000 */
	for (const char *p = ap_trampoline; p < ap_trampoline_end; p++)
		*dst++ = *p;
	ap_stack_top = (uintptr_t)ap_stack + sizeof(ap_stack);
	lapic_write(LAPIC_SVR, 0x1ff); /* software-enabled, spurious vector 0xff */
	lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
	lapic_write(LAPIC_ICR_LOW, LAPIC_ICR_INIT);
	spin_ticks(1ULL << 25);
	for (int i = 0; i < 2; i++) {
		lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
		lapic_write(LAPIC_ICR_LOW, LAPIC_ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12));
		spin_ticks(1ULL << 20);
	}
}
