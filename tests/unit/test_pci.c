/* PCI configuration space: BAR sizing and moving, read-only fields, capabilities. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/pci.h"

static const struct pci_device_ops no_ops = {0};

static void setup_dev(struct pci_bus *pci, struct bus *pio, struct bus *mmio, struct pci_device *d)
{
	memset(pio, 0, sizeof(*pio));
	memset(mmio, 0, sizeof(*mmio));
	memset(d, 0, sizeof(*d));
	assert_int_equal(pci_bus_init(pci, pio, mmio), 0);
	d->ops = &no_ops;
	d->bars[0] = (struct pci_bar){.size = 0x8000, .is_64 = true};
	d->bars[2] = (struct pci_bar){.size = 0x1000, .is_64 = false};
	assert_int_equal(pci_device_add(pci, d, 0x1af4, 0x1042, 0x018000, 0x1af4, 0x1100), 0);
}

static void test_bar_sizing(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d;
	uint64_t a0 = 0;

	setup_dev(&pci, &pio, &mmio, &d);
	a0 = pci_bar_address(&d, 0);
	assert_true(a0 >= PCI_MMIO_BASE && a0 + 0x8000 <= PCI_MMIO_BASE + PCI_MMIO_SIZE);
	assert_int_equal(a0 % 0x8000, 0);
	/* Sizing: all ones in, the size mask and the 64-bit type out. */
	pci_config_write(&d, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&d, PCI_BAR0, 4), 0xffff8000 | 0x4);
	pci_config_write(&d, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&d, PCI_BAR0 + 4, 4), 0xffffffff);
	pci_config_write(&d, PCI_BAR0 + 8, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&d, PCI_BAR0 + 8, 4), 0xfffff000);
	/* An unused BAR reads zero whatever is written. */
	pci_config_write(&d, PCI_BAR0 + 16, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&d, PCI_BAR0 + 16, 4), 0);
	/* Programming moves the BAR. */
	pci_config_write(&d, PCI_BAR0, 4, 0xe1230000);
	pci_config_write(&d, PCI_BAR0 + 4, 4, 0);
	assert_int_equal(pci_bar_address(&d, 0), 0xe1230000);
}

static void test_read_only_fields(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d;

	setup_dev(&pci, &pio, &mmio, &d);
	pci_config_write(&d, PCI_VENDOR_ID, 4, 0x12345678);
	assert_int_equal(pci_config_read(&d, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(pci_config_read(&d, PCI_VENDOR_ID + 2, 2), 0x1042);
	pci_config_write(&d, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(pci_config_read(&d, PCI_COMMAND, 2),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				 PCI_COMMAND_INTX_DISABLE);
	/* Out-of-range accesses are refused, not performed. */
	assert_int_equal(pci_config_read(&d, 254, 4), 0xffffffff);
	pci_config_write(&d, 255, 4, 0);
}

static void test_capabilities(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d;
	uint8_t cap1[8] = {0x09, 0, 8, 1}, cap2[12] = {0x11, 0, 0x3f, 0};
	unsigned a, b;

	setup_dev(&pci, &pio, &mmio, &d);
	a = pci_add_capability(&d, cap1, sizeof(cap1));
	b = pci_add_capability(&d, cap2, sizeof(cap2));
	assert_int_equal(a, 0x40);
	assert_true(b >= a + sizeof(cap1) && b % 4 == 0);
	assert_true(pci_config_read(&d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(pci_config_read(&d, PCI_CAPABILITY_LIST, 1), a);
	assert_int_equal(pci_config_read(&d, a + 1, 1), b); /* linked in order */
	assert_int_equal(pci_config_read(&d, b + 1, 1), 0);
	assert_int_equal(pci_config_read(&d, b, 1), 0x11);
	/* No room: refused. */
	{
		uint8_t big[200] = {0x09};
		assert_int_equal(pci_add_capability(&d, big, sizeof(big)), 0);
	}
}

/* Config mechanism #1 through the bus: address register, host bridge at slot 0. */
static void test_conf1(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d;
	uint32_t v, addr;

	setup_dev(&pci, &pio, &mmio, &d);
	addr = 0x80000000;
	assert_true(bus_dispatch(&pio, 0xcf8, &addr, 4, true));
	assert_true(bus_dispatch(&pio, 0xcf8, &v, 4, false));
	assert_int_equal(v, 0x80000000);
	assert_true(bus_dispatch(&pio, 0xcfc + 2, &v, 2, false));
	assert_int_equal(v & 0xffff, 0x0008); /* host bridge device id */
	addr = 0x80000000 | (1 << 11);
	bus_dispatch(&pio, 0xcf8, &addr, 4, true);
	v = 0;
	bus_dispatch(&pio, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0x10421af4);
	addr = 0x80000000 | (9 << 11); /* empty slot */
	bus_dispatch(&pio, 0xcf8, &addr, 4, true);
	bus_dispatch(&pio, 0xcfc, &v, 4, false);
	assert_int_equal(v, 0xffffffff);
}

/* What the bus asked of the interrupt controller. */
static int irq_levels[24];
static unsigned irq_calls;

static void record_irq(void *opaque, unsigned gsi, int level)
{
	assert_true(gsi < 24);
	irq_levels[gsi] = level;
	irq_calls++;
}

static void changed(struct pci_device *pdev)
{
	(*(unsigned *)pdev->opaque)++;
}

static const struct pci_device_ops counting_ops = {.bars_changed = changed};

/* Pin A, the status bit, Interrupt Disable, and two functions sharing a GSI. */
static void test_intx(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d, others[8];
	unsigned gsi;

	setup_dev(&pci, &pio, &mmio, &d);
	memset(irq_levels, 0, sizeof(irq_levels));
	irq_calls = 0;
	pci.set_irq = record_irq;
	/* A function without INTx (virtio): pin 0, and asking for the line does nothing. */
	assert_int_equal(pci_config_read(&d, PCI_INTERRUPT_PIN, 1), 0);
	pci_set_intx(&d, true);
	assert_int_equal(irq_calls, 0);
	/* Functions with INTx, up to slot 10: slot 2 and slot 10 share a GSI. */
	for (int i = 0; i < 8; i++) {
		memset(&others[i], 0, sizeof(others[i]));
		others[i].ops = &no_ops;
		others[i].intx = true;
		assert_int_equal(pci_device_add(&pci, &others[i], 0x1af4, 0x1110, 0x050000, 0x1af4, 0x1100), 0);
	}
	struct pci_device *a = &others[0], *b = &others[8 - 1];
	assert_int_equal(a->slot, 2);
	assert_int_equal(b->slot, 9);
	assert_int_equal(pci_config_read(a, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(pci_intx_gsi(2, 1), 18);
	assert_int_equal(pci_intx_gsi(9, 1), 17);
	assert_int_equal(pci_intx_gsi(10, 1), 18);
	assert_int_equal(pci_intx_gsi(31, 4), 16 + (31 + 3) % 8);
	/* The OS notes the line it routed in Interrupt Line. */
	pci_config_write(a, PCI_INTERRUPT_LINE, 1, 18);
	assert_int_equal(pci_config_read(a, PCI_INTERRUPT_LINE, 1), 18);

	gsi = pci_intx_gsi(a->slot, 1);
	pci_set_intx(a, true);
	assert_int_equal(irq_levels[gsi], 1);
	assert_true(pci_config_read(a, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* Interrupt Disable drops the line; the status bit still shows the request. */
	pci_config_write(a, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(irq_levels[gsi], 0);
	assert_true(pci_config_read(a, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_config_write(a, PCI_COMMAND, 2, 0);
	assert_int_equal(irq_levels[gsi], 1);
	pci_set_intx(a, false);
	assert_int_equal(irq_levels[gsi], 0);
	assert_false(pci_config_read(a, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* A request while disabled raises nothing until enabled again. */
	pci_config_write(a, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	irq_calls = 0;
	pci_set_intx(a, true);
	assert_int_equal(irq_calls, 0);
	pci_set_intx(a, false);
	pci_config_write(a, PCI_COMMAND, 2, 0);
	assert_int_equal(irq_calls, 0);

	/* Shared: the line stays up until the last function on it lets go. */
	{
		struct pci_device e;
		memset(&e, 0, sizeof(e));
		e.ops = &no_ops;
		e.intx = true;
		assert_int_equal(pci_device_add(&pci, &e, 0x1af4, 0x1110, 0x050000, 0x1af4, 0x1100), 0);
		assert_int_equal(e.slot, 10);
		assert_int_equal(pci_intx_gsi(e.slot, 1), gsi);
		pci_set_intx(a, true);
		pci_set_intx(&e, true);
		pci_set_intx(a, false);
		assert_int_equal(irq_levels[gsi], 1);
		pci_set_intx(&e, true); /* again: no double count */
		pci_set_intx(&e, false);
		assert_int_equal(irq_levels[gsi], 0);
	}
	(void)b;
}

/* A device that maps a BAR itself hears of BAR and command writes. */
static void test_bars_changed(void **state)
{
	struct pci_bus pci;
	struct bus pio, mmio;
	struct pci_device d;
	unsigned calls = 0;

	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	memset(&d, 0, sizeof(d));
	assert_int_equal(pci_bus_init(&pci, &pio, &mmio), 0);
	d.ops = &counting_ops;
	d.opaque = &calls;
	d.bars[2] = (struct pci_bar){.size = 0x100000, .is_64 = true, .prefetchable = true};
	assert_int_equal(pci_device_add(&pci, &d, 0x1af4, 0x1110, 0x050000, 0x1af4, 0x1100), 0);
	/* 64-bit prefetchable memory: type bits 0b1100. */
	assert_int_equal(pci_config_read(&d, PCI_BAR0 + 8, 4) & 0xf, 0xc);
	pci_config_write(&d, PCI_BAR0 + 8, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&d, PCI_BAR0 + 8, 4), 0xfff0000c);
	assert_int_equal(calls, 1);
	pci_config_write(&d, PCI_BAR0 + 8, 4, 0xe8000000);
	pci_config_write(&d, PCI_BAR0 + 12, 4, 0);
	assert_int_equal(calls, 3);
	assert_int_equal(pci_bar_address(&d, 2), 0xe8000000);
	pci_config_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(calls, 4);
	pci_config_write(&d, PCI_BAR0 + 8, 2, 0); /* partial: ignored */
	assert_int_equal(calls, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bar_sizing),
		cmocka_unit_test(test_read_only_fields),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_conf1),
		cmocka_unit_test(test_intx),
		cmocka_unit_test(test_bars_changed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
