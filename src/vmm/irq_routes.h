/*
 * The VM's interrupt routing table (KVM_SET_GSI_ROUTING): the in-kernel
 * interrupt controllers' pins as KVM routes them by default (GSI 0-15 to
 * the PICs and the IOAPIC, 16-23 to the IOAPIC), then one MSI route per
 * (device, MSI-X vector) that is live, at GSIs from IRQ_ROUTES_MSI_BASE up.
 * An eventfd bound to such a GSI (KVM_IRQFD) delivers that MSI inside the
 * kernel: a back-end's completion or a device thread's interrupt reaches
 * the guest without an ioctl or a trip through the VMM.
 *
 * KVM replaces its whole table on each update, so this keeps the whole
 * table and sends it again when one route changes (a guest programming or
 * unmasking a vector: rare, never on the I/O path). One lock, the table's.
 */
#ifndef DOMUS_IRQ_ROUTES_H
#define DOMUS_IRQ_ROUTES_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_ROUTES_PINS 24 /* the IOAPIC's; the first 16 are also the PICs' */
#define IRQ_ROUTES_MSI_BASE IRQ_ROUTES_PINS
#define IRQ_ROUTES_MAX_MSI 512

struct irq_msi_route {
	bool set;
	uint32_t addr_lo, addr_hi, data;
};

/* All zeroes but vm_fd is an empty table. */
struct irq_routes {
	pthread_mutex_t lock;
	int vm_fd; /* <0: no KVM (a device set built for a test or a fuzzer): nothing is sent */
	unsigned nallocated;
	struct irq_msi_route msi[IRQ_ROUTES_MAX_MSI];
	unsigned long long commits; /* tables sent to KVM, for tests and statistics */
};

/* Reserves n consecutive MSI GSIs; *first the first. 0 or -ENOSPC. */
int irq_routes_alloc(struct irq_routes *r, unsigned n, unsigned *first)
	__attribute__((warn_unused_result));
/*
 * Routes gsi (one irq_routes_alloc gave) to the MSI (addr, data), or with
 * set false to nothing, and sends the table to KVM if that changed it.
 * 0, -EINVAL for a GSI not allocated, or KVM's -errno.
 */
int irq_routes_set_msi(struct irq_routes *r, unsigned gsi, bool set, uint64_t addr, uint32_t data)
	__attribute__((warn_unused_result));
/*
 * The table as KVM gets it (malloc'd, the caller frees), or NULL without
 * memory. Lock held, or no other thread.
 */
struct kvm_irq_routing *irq_routes_table(const struct irq_routes *r);

#endif
