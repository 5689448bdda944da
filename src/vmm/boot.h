/*
 * Loading a kernel into a domain: a bzImage through the Linux x86 boot
 * protocol's 64-bit entry, or an ELF with a Xen PVH note through the PVH
 * entry.  Everything read from the kernel file is checked before use.
 */
#ifndef DOMUS_BOOT_H
#define DOMUS_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

/* Guest-physical layout of what the loader writes below 1 MiB. */
#define BOOT_GDT_ADDR 0x500
#define BOOT_START_INFO_ADDR 0x6000
#define BOOT_ZERO_PAGE_ADDR 0x7000
#define BOOT_STACK_TOP 0x8ff0
#define BOOT_PML4_ADDR 0x9000
#define BOOT_PDPT_ADDR 0xa000
#define BOOT_PD_ADDR 0xb000 /* four pages: 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX 4096
#define BOOT_EBDA_START 0x9fc00
#define BOOT_ACPI_ADDR 0xe0000 /* the BIOS area, where Linux also looks for the RSDP */
#define BOOT_ACPI_SIZE 0x20000
#define BOOT_HIGH_START 0x100000

/* GDT selectors the loader sets up. */
#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define BOOT_TSS 0x20

enum kernel_kind { KERNEL_BZIMAGE, KERNEL_PVH_ELF };

struct kernel_image {
	uint8_t *data;
	size_t size;
	enum kernel_kind kind;
	/* bzImage */
	size_t setup_size;
	uint64_t load_addr;
	uint64_t init_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_max;
	/* PVH */
	uint32_t pvh_entry;
	uint64_t elf_lowest;
	uint64_t elf_highest;
};

struct boot_entry {
	bool long_mode; /* 64-bit entry (bzImage) or 32-bit protected mode (PVH) */
	uint64_t rip;
	uint64_t rsi;
	uint64_t rbx;
};

/* Reads and identifies a kernel file. Returns 0 or -errno with a message in err. */
int kernel_load_file(const char *path, struct kernel_image *k, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Parses an in-memory kernel image (takes ownership of data on success). */
int kernel_parse(struct kernel_image *k, uint8_t *data, size_t size, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void kernel_free(struct kernel_image *k);

/*
 * Checks that kernel, initrd and command line fit a domain of mem_size bytes,
 * before any KVM state exists. Returns 0 or -EINVAL with err filled.
 */
int boot_check_fit(const struct kernel_image *k, uint64_t initrd_size, const char *cmdline,
		   uint64_t mem_size, char *err, size_t errlen);

/* Writes kernel, initrd, command line, boot structures into guest memory. */
int boot_setup(struct guest_mem *gm, const struct kernel_image *k, const uint8_t *initrd,
	       uint64_t initrd_size, const char *cmdline, uint64_t rsdp_addr,
	       struct boot_entry *entry, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Writes the reset vector at 0xffff0. Linux on a hardware-reduced ACPI
 * platform reboots through "EFI", then by jumping to the BIOS reset vector
 * in real mode; there is no BIOS, so the vector writes the ACPI reset
 * register itself, which is what a reset through firmware amounts to.
 */
void boot_write_reset_vector(struct guest_mem *gm, uint16_t reset_port, uint8_t reset_value);

/* The guest's memory map; returns the number of entries written (at most max). */
struct e820_entry;
unsigned boot_e820(const struct guest_mem *gm, struct e820_entry *out, unsigned max);

#endif
