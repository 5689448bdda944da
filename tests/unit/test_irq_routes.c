/* The VM's interrupt routing table: the irqchip pins kept, MSI routes added, changed and dropped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vmm/irq_routes.h"

static struct irq_routes *new_routes(void)
{
	struct irq_routes *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->vm_fd = -1;
	return r;
}

/* The entry for gsi of type, or NULL; how many there are in *count. */
static const struct kvm_irq_routing_entry *find(const struct kvm_irq_routing *t, unsigned gsi,
						  uint32_t type, unsigned *count)
{
	const struct kvm_irq_routing_entry *e = NULL;

	*count = 0;
	for (unsigned i = 0; i < t->nr; i++)
		if (t->entries[i].gsi == gsi && t->entries[i].type == type) {
			e = &t->entries[i];
			(*count)++;
		}
	return e;
}

static void test_pins_as_kvm_has_them(void **state)
{
	struct irq_routes *r = new_routes();
	struct kvm_irq_routing *t = irq_routes_table(r);
	unsigned n;

	assert_non_null(t);
	/* 16 ISA pins on the PICs and the IOAPIC, 8 PCI pins on the IOAPIC only. */
	assert_int_equal(t->nr, 16 * 2 + 8);
	assert_int_equal(find(t, 3, KVM_IRQ_ROUTING_IRQCHIP, &n) != NULL, 1);
	assert_int_equal(n, 2);
	find(t, 20, KVM_IRQ_ROUTING_IRQCHIP, &n);
	assert_int_equal(n, 1);
	for (unsigned i = 0; i < t->nr; i++) {
		const struct kvm_irq_routing_entry *e = &t->entries[i];
		if (e->u.irqchip.irqchip == KVM_IRQCHIP_PIC_SLAVE)
			assert_int_equal(e->u.irqchip.pin, e->gsi - 8);
		if (e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC)
			assert_int_equal(e->u.irqchip.pin, e->gsi);
	}
	free(t);
	free(r);
}

static void test_msi_routes(void **state)
{
	struct irq_routes *r = new_routes();
	struct kvm_irq_routing *t;
	const struct kvm_irq_routing_entry *e;
	unsigned a, b, n;

	assert_int_equal(irq_routes_alloc(r, 9, &a), 0);
	assert_int_equal(irq_routes_alloc(r, 9, &b), 0);
	assert_int_equal(a, IRQ_ROUTES_MSI_BASE);
	assert_int_equal(b, a + 9);
	/* Allocated GSIs route nowhere until set; others are refused. */
	t = irq_routes_table(r);
	assert_int_equal(t->nr, 40);
	free(t);
	assert_int_equal(irq_routes_set_msi(r, a - 1, true, 0xfee00000, 0x41), -EINVAL);
	assert_int_equal(irq_routes_set_msi(r, b + 9, true, 0xfee00000, 0x41), -EINVAL);

	assert_int_equal(irq_routes_set_msi(r, b + 2, true, 0x1fee01000ULL, 0x4022), 0);
	assert_int_equal(r->commits, 1);
	/* The same again sends nothing. */
	assert_int_equal(irq_routes_set_msi(r, b + 2, true, 0x1fee01000ULL, 0x4022), 0);
	assert_int_equal(r->commits, 1);
	t = irq_routes_table(r);
	e = find(t, b + 2, KVM_IRQ_ROUTING_MSI, &n);
	assert_non_null(e);
	assert_int_equal(n, 1);
	assert_int_equal(e->u.msi.address_lo, 0xfee01000);
	assert_int_equal(e->u.msi.address_hi, 1);
	assert_int_equal(e->u.msi.data, 0x4022);
	free(t);
	/* A new message replaces the route; dropping it leaves the pins. */
	assert_int_equal(irq_routes_set_msi(r, b + 2, true, 0xfee02000, 0x4023), 0);
	assert_int_equal(r->commits, 2);
	t = irq_routes_table(r);
	e = find(t, b + 2, KVM_IRQ_ROUTING_MSI, &n);
	assert_int_equal(n, 1);
	assert_int_equal(e->u.msi.data, 0x4023);
	free(t);
	assert_int_equal(irq_routes_set_msi(r, b + 2, false, 0, 0), 0);
	t = irq_routes_table(r);
	assert_null(find(t, b + 2, KVM_IRQ_ROUTING_MSI, &n));
	assert_int_equal(t->nr, 40);
	free(t);
	free(r);
}

static void test_alloc_bounded(void **state)
{
	struct irq_routes *r = new_routes();
	unsigned first;

	assert_int_equal(irq_routes_alloc(r, IRQ_ROUTES_MAX_MSI - 1, &first), 0);
	assert_int_equal(irq_routes_alloc(r, 2, &first), -ENOSPC);
	assert_int_equal(irq_routes_alloc(r, 1, &first), 0);
	assert_int_equal(first, IRQ_ROUTES_MSI_BASE + IRQ_ROUTES_MAX_MSI - 1);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pins_as_kvm_has_them),
		cmocka_unit_test(test_msi_routes),
		cmocka_unit_test(test_alloc_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
