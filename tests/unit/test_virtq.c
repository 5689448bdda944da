/* Split virtqueues driven by a synthetic driver in host memory, good and hostile. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtq.h"

#define MEM_SIZE (1 << 20)
#define QSIZE 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define DATA 0x10000

struct fixture {
	uint8_t *buf;
	struct guest_mem mem;
	struct virtq vq;
};

static struct virtq_desc *desc(struct fixture *f)
{
	return (struct virtq_desc *)(f->buf + DESC);
}

static uint16_t *avail(struct fixture *f)
{
	return (uint16_t *)(f->buf + AVAIL);
}

static uint8_t *used(struct fixture *f)
{
	return f->buf + USED;
}

static void set_desc(struct fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	desc(f)[i] = (struct virtq_desc){.addr = addr, .len = len, .flags = flags, .next = next};
}

/* Offers descriptor `head` as the next available chain. */
static void offer(struct fixture *f, uint16_t head)
{
	uint16_t idx = avail(f)[1];
	avail(f)[2 + (idx % QSIZE)] = head;
	avail(f)[1] = (uint16_t)(idx + 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->buf = calloc(1, MEM_SIZE);
	gmem_wrap(&f->mem, f->buf, MEM_SIZE);
	virtq_init(&f->vq, &f->mem, QSIZE);
	f->vq.desc_gpa = DESC;
	f->vq.avail_gpa = AVAIL;
	f->vq.used_gpa = USED;
	f->vq.indirect = true;
	assert_int_equal(virtq_enable(&f->vq), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->buf);
	free(f);
	return 0;
}

static void expect_broken(struct fixture *f)
{
	struct virtq_chain c;

	assert_int_equal(virtq_pop_avail(&f->vq, &c), -EINVAL);
	assert_true(f->vq.broken);
	/* A broken queue stays broken. */
	assert_int_equal(virtq_pop_avail(&f->vq, &c), -EINVAL);
}

static void test_good_chain(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	uint32_t elem[2];

	assert_int_equal(virtq_pop_avail(&f->vq, &c), 0); /* nothing offered yet */
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(f, 2, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop_avail(&f->vq, &c), 1);
	assert_int_equal(c.head, 0);
	assert_int_equal(c.nout, 1);
	assert_int_equal(c.nin, 2);
	assert_int_equal(c.out_len, 16);
	assert_int_equal(c.in_len, 513);
	assert_ptr_equal(c.iov[0].iov_base, f->buf + DATA);
	assert_ptr_equal(c.iov[1].iov_base, f->buf + DATA + 0x100);
	assert_ptr_equal(c.iov[2].iov_base, f->buf + DATA + 0x400);
	assert_int_equal(virtq_pop_avail(&f->vq, &c), 0);

	assert_int_equal(virtq_push_used(&f->vq, 0, 513), 0);
	memcpy(elem, used(f) + 4, 8);
	assert_int_equal(elem[0], 0);
	assert_int_equal(elem[1], 513);
	assert_int_equal(*(uint16_t *)(used(f) + 2), 1);
}

static void test_chain_copy(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	char out[8];

	memcpy(f->buf + DATA, "abcd", 4);
	memcpy(f->buf + DATA + 0x10, "efgh", 4);
	set_desc(f, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA + 0x10, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, 2, DATA + 0x20, 3, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop_avail(&f->vq, &c), 1);
	assert_int_equal(virtq_chain_read(&c, 2, out, 8), 6); /* spans both, stops at the end */
	assert_memory_equal(out, "cdefgh", 6);
	assert_int_equal(virtq_chain_write(&c, 0, "xyz!", 4), 3); /* only 3 writable bytes */
	assert_memory_equal(f->buf + DATA + 0x20, "xyz", 3);
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc *table = (struct virtq_desc *)(f->buf + DATA);
	struct virtq_chain c;

	table[0] = (struct virtq_desc){DATA + 0x1000, 16, VIRTQ_DESC_F_NEXT, 1};
	table[1] = (struct virtq_desc){DATA + 0x2000, 64, VIRTQ_DESC_F_WRITE, 0};
	set_desc(f, 3, DATA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 3);
	assert_int_equal(virtq_pop_avail(&f->vq, &c), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(c.nout, 1);
	assert_int_equal(c.nin, 1);
	assert_int_equal(c.in_len, 64);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	offer(f, 0);
	expect_broken(f);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;
	offer(f, QSIZE + 3);
	expect_broken(f);
}

static void test_avail_idx_jump(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, DATA, 16, 0, 0);
	avail(f)[1] = QSIZE + 1; /* more new entries than the ring holds */
	expect_broken(f);
}

static void test_address_outside_memory(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, MEM_SIZE - 8, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_length_overflow(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, UINT64_MAX - 4, 0xffffffff, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(f, 1, DATA + 0x100, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, DATA, 24, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc *table = (struct virtq_desc *)(f->buf + DATA);

	table[0] = (struct virtq_desc){DATA + 0x1000, 16, VIRTQ_DESC_F_INDIRECT, 0};
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc *table = (struct virtq_desc *)(f->buf + DATA);

	f->vq.indirect = false;
	table[0] = (struct virtq_desc){DATA + 0x1000, 16, 0, 0};
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc *table = (struct virtq_desc *)(f->buf + DATA);

	table[0] = (struct virtq_desc){DATA + 0x1000, 16, VIRTQ_DESC_F_NEXT, 1};
	table[1] = (struct virtq_desc){DATA + 0x1000, 16, VIRTQ_DESC_F_NEXT, 0};
	set_desc(f, 0, DATA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_too_many_descriptors(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc *table = (struct virtq_desc *)(f->buf + DATA);
	unsigned n = VIRTQ_MAX_CHAIN + 1;

	for (unsigned i = 0; i < n; i++)
		table[i] = (struct virtq_desc){DATA + 0x8000, 8,
					       (uint16_t)(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
					       (uint16_t)(i + 1)};
	set_desc(f, 0, DATA, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_enable_checks(void **state)
{
	struct fixture *f = *state;
	struct virtq vq;

	virtq_init(&vq, &f->mem, QSIZE);
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = MEM_SIZE - 16; /* used ring runs past the end of memory */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.used_gpa = USED;
	vq.size = 6; /* not a power of two */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.size = 2 * QSIZE; /* above the device's maximum */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.size = QSIZE;
	vq.desc_gpa = DESC + 8; /* misaligned */
	assert_int_equal(virtq_enable(&vq), -EINVAL);
	vq.desc_gpa = DESC;
	assert_int_equal(virtq_enable(&vq), 0);
}

static void test_notify_flags(void **state)
{
	struct fixture *f = *state;

	avail(f)[0] = 0;
	assert_true(virtq_should_notify(&f->vq));
	avail(f)[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_false(virtq_should_notify(&f->vq));
}

static void test_notify_event_idx(void **state)
{
	struct fixture *f = *state;
	uint16_t *used_event = &avail(f)[2 + QSIZE];

	f->vq.event_idx = true;
	set_desc(f, 0, DATA, 16, VIRTQ_DESC_F_WRITE, 0);
	for (int i = 0; i < 3; i++) {
		struct virtq_chain c;
		offer(f, 0);
		assert_int_equal(virtq_pop_avail(&f->vq, &c), 1);
	}
	*used_event = 1; /* the driver wants an interrupt once used->idx passes 1 */
	assert_int_equal(virtq_push_used(&f->vq, 0, 0), 0);
	assert_true(virtq_should_notify(&f->vq)); /* the first one is always signalled */
	assert_int_equal(virtq_push_used(&f->vq, 0, 0), 0); /* used->idx 1 -> 2 crosses 1 */
	assert_true(virtq_should_notify(&f->vq));
	assert_int_equal(virtq_push_used(&f->vq, 0, 0), 0); /* 2 -> 3: event 1 already passed */
	assert_false(virtq_should_notify(&f->vq));
	/* Once out of work, avail_event tells the driver which entry to kick for. */
	{
		struct virtq_chain c;
		assert_int_equal(virtq_pop_avail(&f->vq, &c), 0);
	}
	assert_int_equal(*(uint16_t *)(used(f) + 4 + 8 * QSIZE), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_jump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_outside_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_length_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_bad_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_nested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enable_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_event_idx, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
