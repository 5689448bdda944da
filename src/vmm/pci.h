/*
 * PCI bus 0 behind configuration mechanism #1 (ports 0xcf8/0xcfc).  A device
 * owns a 256-byte config space; the bus handles the standard header's
 * writable fields (command, BARs) and registers each memory BAR that
 * decodes (memory enabled, inside the PCI window) as its own range on the
 * MMIO bus, moving it when the guest moves the BAR; an access then goes
 * straight to its device, with no lock shared by the bus's devices.
 */
#ifndef DOMUS_PCI_H
#define DOMUS_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"

#define PCI_MMIO_BASE 0xe0000000ULL
#define PCI_MMIO_SIZE (0xfec00000ULL - PCI_MMIO_BASE)
#define PCI_MAX_DEVICES 32
#define PCI_NUM_BARS 6

#define PCI_VENDOR_ID 0x00
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT 0x08 /* INTx asserted by the function (before Interrupt Disable) */
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

/*
 * Legacy INTx: pin P (1 = A .. 4 = D) of the device in slot S raises IOAPIC
 * input PCI_INTX_GSI_BASE + (S + P - 1) % PCI_INTX_GSIS, the upper 8 of
 * KVM's 24 IOAPIC pins (0..15 are the ISA ones). The DSDT's _PRT
 * (vmm/acpi.c) tells the guest the same mapping; lines are level-triggered
 * and shared, so the bus ORs the devices on a GSI.
 */
#define PCI_INTX_GSI_BASE 16
#define PCI_INTX_GSIS 8

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

struct pci_device;

struct pci_device_ops {
	/* Access to a memory BAR; offset is within the BAR. */
	void (*bar_read)(struct pci_device *pdev, int bar, uint64_t offset, void *data, unsigned len);
	void (*bar_write)(struct pci_device *pdev, int bar, uint64_t offset, const void *data,
			  unsigned len);
	/* Called after the guest wrote config bytes [offset, offset+len) the device made writable. */
	void (*config_written)(struct pci_device *pdev, unsigned offset, unsigned len);
	/*
	 * Called (bus lock held) after a write to a BAR or to the command
	 * register: a device that maps a BAR into the guest itself (a KVM
	 * memory slot) moves or drops the mapping. May be NULL.
	 */
	void (*bars_changed)(struct pci_device *pdev);
};

struct pci_bar {
	uint64_t size; /* 0: BAR unused; otherwise a power of two >= 4096 */
	bool is_64;
	bool prefetchable;
};

struct pci_bus;
struct pci_device;

/* Where a memory BAR decodes on the MMIO bus now (0: nowhere); the bus range's opaque. */
struct pci_bar_map {
	struct pci_device *pdev;
	int bar;
	uint64_t mapped_at;
};

struct pci_device {
	uint8_t config[256];
	uint8_t wmask[256]; /* bits the guest may write, beyond command and BARs */
	struct pci_bar bars[PCI_NUM_BARS];
	const struct pci_device_ops *ops;
	void *opaque;
	unsigned slot;
	unsigned cap_next; /* first free config byte for capabilities */
	unsigned cap_last; /* offset of the last capability added */
	bool intx;         /* set before pci_device_add: the function has INTx pin A */
	bool intx_level;   /* what the function asks for (pci_set_intx) */
	bool intx_raised;  /* whether it counts on its GSI now */
	struct pci_bus *bus;
	struct pci_bar_map maps[PCI_NUM_BARS];
};

struct pci_bus {
	pthread_mutex_t lock; /* configuration mechanism #1: the address register and what it selects */
	struct bus *mmio;     /* where the BARs that decode are registered, each its own range */
	struct pci_device host_bridge;
	uint32_t config_address;
	unsigned ndevices;
	struct pci_device *devices[PCI_MAX_DEVICES];
	uint64_t next_mmio;
	/* Drives an interrupt controller input (vm_irq_line); NULL: INTx goes nowhere. */
	void (*set_irq)(void *opaque, unsigned gsi, int level);
	void *irq_opaque;
	unsigned intx_count[PCI_INTX_GSIS]; /* functions asserting each shared GSI */
};

/* Registers the config ports and the MMIO window. Returns 0 or -errno. */
int pci_bus_init(struct pci_bus *pci, struct bus *pio, struct bus *mmio)
	__attribute__((warn_unused_result));
/*
 * Fills the standard header fields and adds the device at the next slot;
 * memory BARs declared in pdev->bars get addresses in the PCI window.
 */
int pci_device_add(struct pci_bus *pci, struct pci_device *pdev, uint16_t vendor, uint16_t device,
		   uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id)
	__attribute__((warn_unused_result));
/* Appends a capability of len bytes (including id and next) and returns its offset, or 0. */
unsigned pci_add_capability(struct pci_device *pdev, const void *cap, unsigned len);
/* The current guest-programmed address of a memory BAR. */
uint64_t pci_bar_address(const struct pci_device *pdev, int bar);

/* The IOAPIC input that pin (1..4) of slot raises. */
unsigned pci_intx_gsi(unsigned slot, unsigned pin);
/*
 * A function with intx set asks for its INTx line to be asserted or not.
 * The line rises only while Interrupt Disable (command bit 10) is clear;
 * the Interrupt Status bit (status bit 3) shows the request either way,
 * as PCI 2.3 masking wants (uio_pci_generic relies on it). Any thread.
 */
void pci_set_intx(struct pci_device *pdev, bool level);

/* Config space accessors used by the bus and by tests. */
uint32_t pci_config_read(struct pci_device *pdev, unsigned offset, unsigned len);
void pci_config_write(struct pci_device *pdev, unsigned offset, unsigned len, uint32_t value);

#endif
