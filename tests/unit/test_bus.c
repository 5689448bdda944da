/* The port and MMIO dispatch table: overlaps refused, lookups at the edges, moves, and PCI BARs on it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"
#include "vmm/pci.h"

static const struct bus_ops none = {0};

static struct bus *new_bus(void)
{
	struct bus *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	return b;
}

static void test_overlaps_refused(void **state)
{
	struct bus *b = new_bus();
	int a, c;

	assert_int_equal(bus_register(b, 0x1000, 0x100, &none, &a), 0);
	assert_int_equal(bus_register(b, 0x1000, 0x100, &none, &c), -EEXIST);
	assert_int_equal(bus_register(b, 0x10ff, 1, &none, &c), -EEXIST);  /* last byte */
	assert_int_equal(bus_register(b, 0x0f00, 0x101, &none, &c), -EEXIST); /* reaches its first */
	assert_int_equal(bus_register(b, 0x0800, 0x1000, &none, &c), -EEXIST); /* covers it */
	assert_int_equal(bus_register(b, 0x1080, 0x10, &none, &c), -EEXIST); /* inside */
	/* Touching on either side is no overlap. */
	assert_int_equal(bus_register(b, 0x0f00, 0x100, &none, &c), 0);
	assert_int_equal(bus_register(b, 0x1100, 0x100, &none, &c), 0);
	assert_int_equal(bus_register(b, 0x2000, 0, &none, &c), -EINVAL);
	assert_int_equal(bus_register(b, UINT64_MAX - 1, 4, &none, &c), -EINVAL);
	assert_int_equal(b->nranges, 3);
	free(b);
}

static void test_lookup_edges(void **state)
{
	struct bus *b = new_bus();
	struct bus_range r;
	int x[3];

	/* Registered out of order; kept sorted. */
	assert_int_equal(bus_register(b, 0x3000, 0x10, &none, &x[2]), 0);
	assert_int_equal(bus_register(b, 0x1000, 0x10, &none, &x[0]), 0);
	assert_int_equal(bus_register(b, 0x2000, 0x1000, &none, &x[1]), 0);
	assert_false(bus_lookup(b, 0, &r));
	assert_false(bus_lookup(b, 0xfff, &r));
	assert_true(bus_lookup(b, 0x1000, &r));
	assert_ptr_equal(r.opaque, &x[0]);
	assert_true(bus_lookup(b, 0x100f, &r));
	assert_ptr_equal(r.opaque, &x[0]);
	assert_false(bus_lookup(b, 0x1010, &r));
	assert_false(bus_lookup(b, 0x1fff, &r));
	assert_true(bus_lookup(b, 0x2000, &r));
	assert_ptr_equal(r.opaque, &x[1]);
	assert_true(bus_lookup(b, 0x2fff, &r));
	assert_ptr_equal(r.opaque, &x[1]);
	assert_true(bus_lookup(b, 0x3000, &r));
	assert_ptr_equal(r.opaque, &x[2]);
	assert_false(bus_lookup(b, 0x3010, &r));
	assert_false(bus_lookup(b, UINT64_MAX, &r));
	free(b);
}

static void test_full_and_many(void **state)
{
	struct bus *b = new_bus();
	struct bus_range r;
	static int tags[BUS_MAX_RANGES];

	/* Descending, so every insertion shifts the rest. */
	for (int i = BUS_MAX_RANGES - 1; i >= 0; i--)
		assert_int_equal(bus_register(b, 0x10000 + 0x100ULL * (unsigned)i, 0x80, &none, &tags[i]), 0);
	assert_int_equal(bus_register(b, 0, 1, &none, NULL), -ENOSPC);
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++) {
		assert_true(bus_lookup(b, 0x10000 + 0x100ULL * i + 0x7f, &r));
		assert_ptr_equal(r.opaque, &tags[i]);
		assert_false(bus_lookup(b, 0x10000 + 0x100ULL * i + 0x80, &r));
	}
	free(b);
}

static void test_move(void **state)
{
	struct bus *b = new_bus();
	struct bus_range r;
	int a, c;

	assert_int_equal(bus_register(b, 0x1000, 0x100, &none, &a), 0);
	assert_int_equal(bus_register(b, 0x2000, 0x100, &none, &c), 0);
	/* Only its owner removes it, at its base. */
	assert_int_equal(bus_unregister(b, 0x1000, &c), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x1010, &a), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x1000, &a), 0);
	assert_false(bus_lookup(b, 0x1000, &r));
	/* Moved onto its neighbour: refused; beside it: found there. */
	assert_int_equal(bus_register(b, 0x2080, 0x100, &none, &a), -EEXIST);
	assert_int_equal(bus_register(b, 0x2100, 0x100, &none, &a), 0);
	assert_true(bus_lookup(b, 0x2100, &r));
	assert_ptr_equal(r.opaque, &a);
	assert_int_equal(r.base, 0x2100);
	assert_true(bus_lookup(b, 0x20ff, &r));
	assert_ptr_equal(r.opaque, &c);
	free(b);
}

/* A reader never sees a range that is not registered, whatever a writer does meanwhile. */
struct race {
	struct bus *b;
	_Atomic int stop;
};

static void *mover(void *arg)
{
	struct race *rc = arg;
	static int tag;

	while (!atomic_load(&rc->stop))
		for (uint64_t at = 0x100000; at < 0x100000 + 64 * 0x1000; at += 0x1000) {
			if (bus_register(rc->b, at, 0x1000, &none, &tag) != 0)
				abort();
			if (bus_unregister(rc->b, at, &tag) != 0)
				abort();
		}
	return NULL;
}

static void test_lookup_while_moving(void **state)
{
	struct race rc = {.b = new_bus()};
	struct bus_range r;
	static int fixed[8];
	pthread_t t;

	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(bus_register(rc.b, 0x1000 * (i + 1), 0x100, &none, &fixed[i]), 0);
	assert_int_equal(pthread_create(&t, NULL, mover, &rc), 0);
	for (unsigned n = 0; n < 200000; n++) {
		unsigned i = n % 8;
		assert_true(bus_lookup(rc.b, 0x1000 * (i + 1) + 0x80, &r));
		assert_ptr_equal(r.opaque, &fixed[i]);
		assert_int_equal(r.base, 0x1000 * (i + 1));
	}
	atomic_store(&rc.stop, 1);
	pthread_join(t, NULL);
	free(rc.b);
}

/* PCI: a BAR decodes where it is, only with memory decoding on, and follows a move. */
static uint64_t last_off;
static int last_bar;
static void rec_read(struct pci_device *pdev, int bar, uint64_t off, void *data, unsigned len)
{
	last_bar = bar;
	last_off = off;
	memset(data, 0x5a, len);
}
static const struct pci_device_ops rec_ops = {.bar_read = rec_read};

static void test_pci_bar_moves(void **state)
{
	struct pci_bus pci;
	struct bus *pio = new_bus(), *mmio = new_bus();
	struct pci_device d = {0}, e = {0};
	uint32_t v = 0;
	uint64_t a0, b0;

	assert_int_equal(pci_bus_init(&pci, pio, mmio), 0);
	d.ops = e.ops = &rec_ops;
	d.bars[0] = (struct pci_bar){.size = 0x8000, .is_64 = true};
	e.bars[0] = (struct pci_bar){.size = 0x8000, .is_64 = true};
	assert_int_equal(pci_device_add(&pci, &d, 0x1af4, 0x1042, 0x018000, 0x1af4, 0x1100), 0);
	assert_int_equal(pci_device_add(&pci, &e, 0x1af4, 0x1042, 0x018000, 0x1af4, 0x1100), 0);
	a0 = pci_bar_address(&d, 0);
	b0 = pci_bar_address(&e, 0);
	/* Decoding off: nothing there. */
	assert_false(bus_dispatch(mmio, a0, &v, 4, false));
	assert_int_equal(v, 0xffffffff);
	pci_config_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	pci_config_write(&e, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(bus_dispatch(mmio, a0 + 0x7ffc, &v, 4, false));
	assert_int_equal(last_off, 0x7ffc);
	assert_int_equal(v, 0x5a5a5a5a);
	/* Moved up past e's BAR: the old place is empty, the new one decodes. */
	pci_config_write(&d, PCI_BAR0, 4, (uint32_t)(b0 + 0x10000));
	assert_false(bus_dispatch(mmio, a0, &v, 4, false));
	assert_true(bus_dispatch(mmio, b0 + 0x10000 + 8, &v, 4, false));
	assert_int_equal(last_off, 8);
	/* Moved onto e's: e keeps its place, d decodes nothing until it moves away. */
	pci_config_write(&d, PCI_BAR0, 4, (uint32_t)b0);
	assert_int_equal(d.maps[0].mapped_at, 0);
	assert_true(bus_lookup(mmio, b0, &(struct bus_range){0}));
	pci_config_write(&d, PCI_BAR0, 4, (uint32_t)a0);
	assert_int_equal(d.maps[0].mapped_at, a0);
	/* Outside the PCI window: not decoded. */
	pci_config_write(&d, PCI_BAR0, 4, 0x10000000);
	assert_int_equal(d.maps[0].mapped_at, 0);
	assert_false(bus_dispatch(mmio, 0x10000000, &v, 4, false));
	/* Decoding off again drops e's. */
	pci_config_write(&e, PCI_COMMAND, 2, 0);
	assert_false(bus_dispatch(mmio, b0, &v, 4, false));
	assert_int_equal(mmio->nranges, 0);
	free(pio);
	free(mmio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overlaps_refused),
		cmocka_unit_test(test_lookup_edges),
		cmocka_unit_test(test_full_and_many),
		cmocka_unit_test(test_move),
		cmocka_unit_test(test_lookup_while_moving),
		cmocka_unit_test(test_pci_bar_moves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
