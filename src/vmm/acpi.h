/*
 * ACPI tables for a hardware-reduced platform (ACPI 6, section 4.1): RSDP,
 * XSDT, FADT, MADT and a DSDT whose AML describes the PCI root bridge and
 * the S5 sleep state.  Power-off and reset go through the FADT's sleep
 * control and reset registers, which live at the ports below.
 */
#ifndef DOMUS_ACPI_H
#define DOMUS_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_SLEEP_CONTROL_PORT 0x600
#define ACPI_SLEEP_STATUS_PORT 0x601
#define ACPI_RESET_PORT 0x602
#define ACPI_RESET_VALUE 0x1
/* SLP_TYP that _S5 declares; a write of (5 << 2) | SLP_EN means power off. */
#define ACPI_S5_SLP_TYP 5
#define ACPI_SLP_EN 0x20
#define ACPI_SCI_IRQ 9
/* The Generic Event Device's interrupt: every edge is a power button press. */
#define ACPI_GED_GSI 5

#define IOAPIC_ADDR 0xfec00000
#define LAPIC_ADDR 0xfee00000

struct acpi_layout {
	unsigned nvcpus;
	uint64_t pci_mmio_base; /* PCI window the root bridge decodes */
	uint64_t pci_mmio_size;
};

/*
 * Builds all tables into buf (which the guest sees at guest-physical
 * address base) and returns the RSDP's offset in buf, or -ENOSPC.
 */
long acpi_build(uint8_t *buf, size_t size, uint64_t base, const struct acpi_layout *l);

/* Sum of bytes, used for every table checksum (ACPI tables sum to zero). */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
