/* What the bare-metal payloads share: serial output, power-off, the PVH start info. */
#ifndef DOMUS_PAYLOAD_H
#define DOMUS_PAYLOAD_H

#include <stdint.h>

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

void payload_main(const struct hvm_start_info *si);
void putstr(const char *s);
void puthex(uint64_t v);
void putdec(uint64_t v);
/* Writes the ACPI sleep control register: SLP_TYP 5 (S5) with SLP_EN. */
void poweroff(void) __attribute__((noreturn));
/* smp.c: maps the top GiB below 4 GiB (PCI windows, the local APIC), uncached. */
void map_mmio_window(void);
/* smp.c: starts the vCPU with this local APIC id in ap_main() (ap.S), on a stack of its own. */
void start_ap(unsigned apic_id);
void ap_main(void) __attribute__((noreturn));

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

#endif
