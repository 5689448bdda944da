#include "vmm/irq_routes.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

int irq_routes_alloc(struct irq_routes *r, unsigned n, unsigned *first)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (n > IRQ_ROUTES_MAX_MSI - r->nallocated) {
		ret = -ENOSPC;
	} else {
		*first = IRQ_ROUTES_MSI_BASE + r->nallocated;
		r->nallocated += n;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

struct kvm_irq_routing *irq_routes_table(const struct irq_routes *r)
{
	unsigned max = 16 + IRQ_ROUTES_PINS + r->nallocated, n = 0;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + max * sizeof(t->entries[0]));

	if (!t)
		return NULL;
	/* What KVM_CREATE_IRQCHIP set up: ISA pins on a PIC and the IOAPIC both, PCI pins on the IOAPIC. */
	for (unsigned pin = 0; pin < IRQ_ROUTES_PINS; pin++) {
		if (pin < 16)
			t->entries[n++] = (struct kvm_irq_routing_entry){
				.gsi = pin,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = {.irqchip = pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					      .pin = pin % 8},
			};
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = pin,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = pin},
		};
	}
	for (unsigned i = 0; i < r->nallocated; i++) {
		const struct irq_msi_route *m = &r->msi[i];
		if (!m->set)
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = IRQ_ROUTES_MSI_BASE + i,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = {.address_lo = m->addr_lo, .address_hi = m->addr_hi, .data = m->data},
		};
	}
	t->nr = n;
	return t;
}

/* Sends the table. Lock held. */
static int commit(struct irq_routes *r)
{
	struct kvm_irq_routing *t;
	int ret = 0;

	r->commits++;
	if (r->vm_fd < 0)
		return 0;
	t = irq_routes_table(r);
	if (!t)
		return -ENOMEM;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

int irq_routes_set_msi(struct irq_routes *r, unsigned gsi, bool set, uint64_t addr, uint32_t data)
{
	struct irq_msi_route want = {.set = set}, *m;
	int ret = 0;

	if (set) {
		want.addr_lo = (uint32_t)addr;
		want.addr_hi = (uint32_t)(addr >> 32);
		want.data = data;
	}
	pthread_mutex_lock(&r->lock);
	if (gsi < IRQ_ROUTES_MSI_BASE || gsi - IRQ_ROUTES_MSI_BASE >= r->nallocated) {
		ret = -EINVAL;
	} else {
		m = &r->msi[gsi - IRQ_ROUTES_MSI_BASE];
		if (m->set != want.set || m->addr_lo != want.addr_lo || m->addr_hi != want.addr_hi ||
		    m->data != want.data) {
			*m = want;
			ret = commit(r);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}
