/*
 * virtio-balloon's parsers of guest data: statistics buffers and PFN lists,
 * hostile ones included, and what they cost the host's log; the worker's
 * batches (sorted, merged, one punch a run) and a reset racing them; and
 * gmem_discard really giving memory back.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio_balloon.h"
#include "devices/virtio_pci.h"
#include "vmm/vm.h"
#include "vmm/guest_mem.h"

#define MiB (1ULL << 20)

static size_t put_stat(uint8_t *buf, size_t off, uint16_t tag, uint64_t val)
{
	uint16_t t = htole16(tag);
	uint64_t v = htole64(val);

	memcpy(buf + off, &t, 2);
	memcpy(buf + off + 2, &v, 8);
	return off + 10;
}

static void test_stats(void **state)
{
	uint8_t buf[200];
	struct balloon_stats st = {0};
	char err[160];
	size_t n = 0;

	n = put_stat(buf, n, BALLOON_STAT_FREE, 100 * MiB);
	n = put_stat(buf, n, BALLOON_STAT_TOTAL, 480 * MiB);
	n = put_stat(buf, n, BALLOON_STAT_AVAILABLE, 200 * MiB);
	n = put_stat(buf, n, 77, 5); /* a newer driver's tag: skipped */
	assert_int_equal(balloon_stats_parse(buf, n, 512 * MiB, &st, err, sizeof(err)), 0);
	assert_int_equal(st.val[BALLOON_STAT_FREE], 100 * MiB);
	assert_int_equal(st.val[BALLOON_STAT_AVAILABLE], 200 * MiB);
	assert_true(st.have & (1u << BALLOON_STAT_TOTAL));
	assert_false(st.have & (1u << BALLOON_STAT_CACHES));

	/* A partial entry, memory beyond RAM, free above total: refused, st untouched. */
	assert_int_equal(balloon_stats_parse(buf, n - 3, 512 * MiB, &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a whole number"));
	n = put_stat(buf, 0, BALLOON_STAT_FREE, 4096 * MiB);
	assert_int_equal(balloon_stats_parse(buf, n, 512 * MiB, &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than the domain's"));
	n = put_stat(buf, 0, BALLOON_STAT_FREE, 300 * MiB);
	n = put_stat(buf, n, BALLOON_STAT_TOTAL, 200 * MiB);
	assert_int_equal(balloon_stats_parse(buf, n, 512 * MiB, &st, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than total"));
	assert_int_equal(st.val[BALLOON_STAT_FREE], 100 * MiB);
	/* Nothing at all is no statistics, not an error. */
	assert_int_equal(balloon_stats_parse(buf, 0, 512 * MiB, &st, err, sizeof(err)), 0);
	assert_int_equal(st.have, 0);
}

static void put_pfns(uint8_t *buf, const uint32_t *pfn, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t v = htole32(pfn[i]);
		memcpy(buf + 4 * i, &v, 4);
	}
}

static void test_pfn_ranges(void **state)
{
	static uint8_t ram[64 * 4096];
	struct guest_mem mem;
	struct balloon_range r[8];
	uint8_t buf[64];
	unsigned bad = 0;
	/* Runs 3-5 and 9, then frames past RAM (64 and 2^32-1), then 10. */
	const uint32_t pfns[] = {3, 4, 5, 9, 64, 0xffffffff, 10};

	gmem_wrap(&mem, ram, sizeof(ram));
	put_pfns(buf, pfns, 7);
	assert_int_equal(balloon_pfn_ranges(&mem, buf, 7, r, 8, &bad), 2);
	assert_int_equal(bad, 2);
	assert_int_equal(r[0].gpa, 3 * 4096);
	assert_int_equal(r[0].len, 3 * 4096);
	assert_int_equal(r[1].gpa, 9 * 4096);
	assert_int_equal(r[1].len, 2 * 4096);
	/* No more runs than asked for. */
	bad = 0;
	assert_int_equal(balloon_pfn_ranges(&mem, buf, 7, r, 1, &bad), 1);
}

static void test_discard(void **state)
{
	struct guest_mem mem;
	uint8_t page[4096], zero[4096] = {0};

	assert_int_equal(gmem_create(&mem, 8 * MiB), 0);
	memset(page, 0xab, sizeof(page));
	assert_int_equal(gmem_write(&mem, 2 * MiB, page, sizeof(page)), 0);
	assert_int_equal(gmem_discard(&mem, 2 * MiB, 4096), 0);
	/* A page given back reads as zeros. */
	assert_int_equal(gmem_read(&mem, 2 * MiB, page, sizeof(page)), 0);
	assert_memory_equal(page, zero, sizeof(page));
	/* Unaligned, or outside RAM: refused. */
	assert_int_equal(gmem_discard(&mem, 2 * MiB + 1, 4096), -EINVAL);
	assert_int_equal(gmem_discard(&mem, 8 * MiB, 4096), -EFAULT);
	assert_int_equal(gmem_discard(&mem, 6 * MiB, 4 * MiB), -EFAULT);
	gmem_destroy(&mem);
}

#define RING_DESC 0x0
#define RING_AVAIL 0x1000
#define RING_USED 0x2000
#define PAGE_LISTS 0x10000

/*
 * A balloon on ram bytes of RAM, its driver ready, whose queue q holds one
 * buffer per list, each of n page numbers, the k-th list at PAGE_LISTS +
 * k * n * 4; with queue_notify served by the caller (no worker) unless it
 * starts one.
 */
static void balloon_with_lists_on(struct virtio_balloon *b, struct guest_mem *mem, uint64_t ram,
				  unsigned q, unsigned lists, unsigned n)
{
	uint16_t idx = htole16((uint16_t)lists);

	for (uint16_t k = 0; k < lists; k++) {
		struct virtq_desc d = {.addr = htole64(PAGE_LISTS + (uint64_t)k * n * 4),
				       .len = htole32(n * 4)};
		uint16_t head = htole16(k);

		assert_int_equal(gmem_write(mem, RING_DESC + 16 * k, &d, sizeof(d)), 0);
		assert_int_equal(gmem_write(mem, RING_AVAIL + 4 + 2 * k, &head, 2), 0);
	}
	assert_int_equal(gmem_write(mem, RING_AVAIL + 2, &idx, 2), 0);
	memset(b, 0, sizeof(*b));
	b->vd.ops = &virtio_balloon_ops;
	b->vd.priv = b;
	b->vd.nqueues = virtio_balloon_ops.nqueues; /* as virtio_pci_add sets it */
	b->vd.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		       VIRTIO_STATUS_DRIVER_OK;
	b->mem = mem;
	b->ram_pages = ram >> 12;
	b->event_fd = -1;
	b->wake_fd = -1;
	pthread_mutex_init(&b->vd.lock, NULL);
	pthread_cond_init(&b->idle, NULL);
	for (unsigned i = 0; i < virtio_balloon_ops.nqueues; i++)
		virtq_init(&b->vd.vqs[i], mem, 64);
	b->vd.vqs[q].size = 64;
	b->vd.vqs[q].desc_gpa = RING_DESC;
	b->vd.vqs[q].avail_gpa = RING_AVAIL;
	b->vd.vqs[q].used_gpa = RING_USED;
	assert_int_equal(virtq_enable(&b->vd.vqs[q]), 0);
}

static void balloon_with_lists(struct virtio_balloon *b, struct guest_mem *mem, unsigned lists,
			       unsigned n)
{
	balloon_with_lists_on(b, mem, 64 * MiB, 0, lists, n);
}

static uint16_t used_idx(struct guest_mem *mem)
{
	uint16_t idx;

	assert_int_equal(gmem_read(mem, RING_USED + 2, &idx, 2), 0);
	return le16toh(idx);
}

static void balloon_done(struct virtio_balloon *b)
{
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->vd.lock);
}

/*
 * One buffer of 16384 page numbers: the device takes the first 4096, says
 * so, and the work of one buffer stays bounded.
 */
static void test_huge_page_list(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 16384;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned i = 0; i < n; i++) {
		uint32_t pfn = htole32(4096 + i % 8192); /* 16 MiB up: pages of RAM */
		assert_int_equal(gmem_write(&mem, PAGE_LISTS + i * 4, &pfn, 4), 0);
	}
	balloon_with_lists(&b, &mem, 1, n);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	assert_int_equal(b.inflated, 4096);
	assert_int_equal(used_idx(&mem), 1);
	assert_non_null(strstr(b.last_error, "a page list of 16384 entries; only the first 4096 are taken"));
	balloon_done(&b);
	gmem_destroy(&mem);
}

/*
 * Ten page lists of 256 pages each, in no order, which together are 10 MiB
 * of contiguous RAM: one pass takes them all, punches them with one call,
 * returns all ten buffers, and the pages read as zeros again.
 */
static void test_batch_coalesces(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 256, lists = 10, count = n * lists;
	uint8_t page[4096], zero[4096] = {0};

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	memset(page, 0x5a, sizeof(page));
	/* The given pages and one either side, which must keep what they hold. */
	for (uint64_t pfn = 4095; pfn <= 4096 + count; pfn++)
		assert_int_equal(gmem_write(&mem, pfn << 12, page, sizeof(page)), 0);
	for (unsigned i = 0; i < count; i++) {
		/* i * 1031 mod 2560 visits every page once (1031 is prime, no factor of 2560). */
		uint32_t pfn = htole32(4096 + (i * 1031) % count);

		assert_int_equal(gmem_write(&mem, PAGE_LISTS + i * 4, &pfn, 4), 0);
	}
	balloon_with_lists(&b, &mem, lists, n);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	assert_int_equal(b.inflated, count);
	assert_int_equal(used_idx(&mem), lists);
	assert_int_equal(b.batches, 1);
	assert_int_equal(b.punches, 1);
	assert_int_equal(b.dup_pages, 0);
	for (unsigned i = 0; i < count; i++) {
		assert_int_equal(gmem_read(&mem, (4096ULL + i) << 12, page, sizeof(page)), 0);
		assert_memory_equal(page, zero, sizeof(page));
	}
	assert_int_equal(gmem_read(&mem, 4095ULL << 12, page, sizeof(page)), 0);
	assert_int_equal(page[4095], 0x5a);
	assert_int_equal(gmem_read(&mem, (4096ULL + count) << 12, page, sizeof(page)), 0);
	assert_int_equal(page[0], 0x5a);
	balloon_done(&b);
	gmem_destroy(&mem);
}

static void test_coalesce(void **state)
{
	static uint8_t ram[64 * 4096];
	struct guest_mem mem;
	uint64_t dup = 0;
	const uint64_t P = 4096;
	struct balloon_range r[] = {
		{9 * P, P},  {3 * P, 2 * P}, {4 * P, P},     /* 4 inside 3-4: a duplicate page */
		{5 * P, P},  {2 * P, P},     {9 * P, P},     /* 9 twice */
		{20 * P, 4 * P}, {22 * P, 4 * P},            /* overlapping by 2 pages */
		{40 * P, P}, {30 * P, P},
	};

	gmem_wrap(&mem, ram, sizeof(ram));
	/* 2-5, 9, 20-25, 30, 40 */
	assert_int_equal(balloon_coalesce(&mem, r, 10, &dup), 5);
	assert_int_equal(dup, 4 * P);
	assert_int_equal(r[0].gpa, 2 * P);
	assert_int_equal(r[0].len, 4 * P);
	assert_int_equal(r[1].gpa, 9 * P);
	assert_int_equal(r[1].len, P);
	assert_int_equal(r[2].gpa, 20 * P);
	assert_int_equal(r[2].len, 6 * P);
	assert_int_equal(r[3].gpa, 30 * P);
	assert_int_equal(r[4].gpa, 40 * P);
	assert_int_equal(balloon_coalesce(&mem, r, 0, &dup), 0);

	/* Two regions that touch in guest-physical space stay two runs: one punch may not span them. */
	mem.regions[0].size = 32 * P;
	mem.regions[1] = (struct gmem_region){.gpa = 32 * P, .size = 32 * P, .host = ram + 32 * P,
					      .fd_offset = 32 * P};
	mem.nregions = 2;
	{
		struct balloon_range s[] = {{32 * P, P}, {31 * P, P}, {30 * P, P}, {33 * P, P}};

		dup = 0;
		assert_int_equal(balloon_coalesce(&mem, s, 4, &dup), 2);
		assert_int_equal(s[0].gpa, 30 * P);
		assert_int_equal(s[0].len, 2 * P);
		assert_int_equal(s[1].gpa, 32 * P);
		assert_int_equal(s[1].len, 2 * P);
		assert_int_equal(dup, 0);
	}
}

/* Captures what the device logs while fn runs; returns the number of balloon lines. */
static unsigned balloon_log_lines(void (*fn)(struct virtio_balloon *), struct virtio_balloon *b)
{
	char line[256];
	unsigned lines = 0;
	int saved_stderr;
	FILE *log = tmpfile();

	assert_non_null(log);
	fflush(stderr);
	saved_stderr = dup(2);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(log), 2) == 2);
	fn(b);
	fflush(stderr);
	assert_true(dup2(saved_stderr, 2) == 2);
	close(saved_stderr);
	rewind(log);
	while (fgets(line, sizeof(line), log))
		if (strstr(line, "virtio-balloon:"))
			lines++;
	fclose(log);
	return lines;
}

static void notify_inflate(struct virtio_balloon *b)
{
	virtio_balloon_ops.queue_notify(&b->vd, 0);
}

/*
 * A guest that sends junk in every buffer, a different count each time and
 * two faults a buffer (a list too long, frames outside RAM), fills the
 * host's log with one line per kind, not one per buffer; the count and the
 * latest message are still kept.
 */
static void test_junk_logged_once(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 8192, lists = 3;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned k = 0; k < lists; k++)
		for (unsigned i = 0; i < n; i++) {
			/* List k: 10 * (k + 1) frames past RAM first, then pages of RAM. */
			uint32_t pfn = htole32(i < 10 * (k + 1) ? 0x100000 + i : 4096 + i % 4096);
			uint64_t at = PAGE_LISTS + ((uint64_t)k * n + i) * 4;

			assert_int_equal(gmem_write(&mem, at, &pfn, 4), 0);
		}
	balloon_with_lists(&b, &mem, lists, n);
	/* The lists repeat pages among them: a third kind, also logged once. */
	assert_int_equal(balloon_log_lines(notify_inflate, &b), 3);
	assert_int_equal(b.bad_pfns, 10 + 20 + 30);
	assert_non_null(strstr(b.last_error, "more than once in one batch"));
	assert_int_equal(used_idx(&mem), lists);
	balloon_done(&b);
	gmem_destroy(&mem);
}

/*
 * Hostile page lists in one batch: the same page over and over, frames past
 * RAM and at its edge, a list whose length is no multiple of 4. Each page of
 * RAM is punched once, the rest refused and counted, every buffer returned.
 */
static void test_hostile_lists(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 256, lists = 4;
	uint32_t last = (64 * MiB >> 12) - 1;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned k = 0; k < lists; k++)
		for (unsigned i = 0; i < n; i++) {
			uint32_t pfn;

			switch (k) {
			case 0: pfn = 5000; break;                        /* one page, 256 times */
			case 1: pfn = i & 1 ? last + i : last - (i / 2) % 4; break; /* past RAM; its last 4 pages */
			case 2: pfn = 0xffffffffu - i; break;              /* nowhere */
			default: pfn = 5000 + i % 2; break;                 /* 5000 again, and 5001 */
			}
			pfn = htole32(pfn);
			assert_int_equal(gmem_write(&mem, PAGE_LISTS + ((uint64_t)k * n + i) * 4, &pfn, 4), 0);
		}
	balloon_with_lists(&b, &mem, lists, n);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	assert_int_equal(used_idx(&mem), lists);
	assert_int_equal(b.bad_pfns, 128 + 256);
	/* Punched: 5000-5001 and the last 4 pages of RAM, two calls. */
	assert_int_equal(b.punches, 2);
	assert_int_equal(b.dup_pages, (256 - 1) + (128 - 4) + 256 - 1);
	assert_false(b.vd.status & VIRTIO_STATUS_NEEDS_RESET);
	balloon_done(&b);
	gmem_destroy(&mem);
}

/*
 * A reset from a vCPU while the worker punches: when the reset returns, the
 * worker punches nothing more (a page the guest writes after the reset keeps
 * what it wrote) and returns none of the buffers it took to the reset queue.
 */
static void test_reset_during_batch(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 256, lists = 64, count = n * lists;
	const uint64_t first = 8192; /* pages 32 MiB up, every other one: 16384 punches */
	uint8_t page[4096], back[4096];
	struct timespec t0, t;
	bool seen = false;

	assert_int_equal(gmem_create(&mem, 256 * MiB), 0);
	memset(page, 0x77, sizeof(page));
	for (unsigned i = 0; i < count; i++) {
		uint32_t pfn = htole32((uint32_t)(first + 2 * i));

		assert_int_equal(gmem_write(&mem, PAGE_LISTS + i * 4, &pfn, 4), 0);
		assert_int_equal(gmem_write(&mem, (first + 2 * i) << 12, page, sizeof(page)), 0);
	}
	balloon_with_lists_on(&b, &mem, 256 * MiB, 0, lists, n);
	assert_int_equal(virtio_balloon_start(&b), 0);
	pthread_mutex_lock(&b.vd.lock);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	pthread_mutex_unlock(&b.vd.lock);
	/* Wait (at most 10 s) for the worker to be punching, with the lock released. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		pthread_mutex_lock(&b.vd.lock);
		seen = b.in_batch;
		if (seen) {
			/* What the transport does on a reset, then the device's part. */
			for (unsigned q = 0; q < virtio_balloon_ops.nqueues; q++)
				virtq_reset(&b.vd.vqs[q]);
			b.vd.status = 0;
			virtio_balloon_ops.reset(&b.vd);
			assert_false(b.in_batch);
		}
		pthread_mutex_unlock(&b.vd.lock);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!seen && t.tv_sec - t0.tv_sec < 10);
	assert_true(seen);
	/* The guest owns its pages again and writes them all. */
	for (unsigned i = 0; i < count; i++)
		assert_int_equal(gmem_write(&mem, (first + 2 * i) << 12, page, sizeof(page)), 0);
	virtio_balloon_destroy(&b);
	for (unsigned i = 0; i < count; i++) {
		assert_int_equal(gmem_read(&mem, (first + 2 * i) << 12, back, sizeof(back)), 0);
		assert_memory_equal(back, page, sizeof(page));
	}
	assert_true(b.punches < count);
	assert_int_equal(used_idx(&mem), 0);
	assert_int_equal(b.inflated, 0);
	balloon_done(&b);
	gmem_destroy(&mem);
}

/* With a worker, a notify only wakes it; it serves the ring and interrupts once. */
static void test_worker_serves(void **state)
{
	static struct virtio_balloon b;
	struct guest_mem mem;
	const unsigned n = 256, lists = 8;
	struct timespec t0, t;
	uint16_t used;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned i = 0; i < n * lists; i++) {
		uint32_t pfn = htole32(4096 + i);
		assert_int_equal(gmem_write(&mem, PAGE_LISTS + i * 4, &pfn, 4), 0);
	}
	balloon_with_lists(&b, &mem, lists, n);
	assert_int_equal(virtio_balloon_start(&b), 0);
	pthread_mutex_lock(&b.vd.lock);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	pthread_mutex_unlock(&b.vd.lock);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		pthread_mutex_lock(&b.vd.lock);
		used = used_idx(&mem);
		pthread_mutex_unlock(&b.vd.lock);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (used != lists && t.tv_sec - t0.tv_sec < 10);
	assert_int_equal(used, lists);
	virtio_balloon_destroy(&b);
	assert_int_equal(b.inflated, n * lists);
	assert_int_equal(b.punches, 1);
	balloon_done(&b);
	gmem_destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_pfn_ranges),
		cmocka_unit_test(test_discard),
		cmocka_unit_test(test_coalesce),
		cmocka_unit_test(test_huge_page_list),
		cmocka_unit_test(test_batch_coalesces),
		cmocka_unit_test(test_junk_logged_once),
		cmocka_unit_test(test_hostile_lists),
		cmocka_unit_test(test_worker_serves),
		cmocka_unit_test(test_reset_during_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
