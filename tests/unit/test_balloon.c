/*
 * virtio-balloon's parsers of guest data: statistics buffers and PFN lists,
 * hostile ones included, and what they cost the host's log; and
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
 * A balloon on 64 MiB of RAM whose inflate queue (queue 0) holds one buffer
 * per list, each of n page numbers, the k-th list at PAGE_LISTS + k * n * 4.
 */
static void balloon_with_lists(struct virtio_balloon *b, struct guest_mem *mem, unsigned lists,
			       unsigned n)
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
	b->mem = mem;
	b->ram_pages = (64 * MiB) >> 12;
	b->event_fd = -1;
	pthread_mutex_init(&b->vd.lock, NULL);
	virtq_init(&b->vd.vqs[0], mem, 64);
	b->vd.vqs[0].size = 64;
	b->vd.vqs[0].desc_gpa = RING_DESC;
	b->vd.vqs[0].avail_gpa = RING_AVAIL;
	b->vd.vqs[0].used_gpa = RING_USED;
	assert_int_equal(virtq_enable(&b->vd.vqs[0]), 0);
}

/*
 * One buffer of 16384 page numbers: the device takes the first 4096, says
 * so, and the vCPU thread's work stays bounded.
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
	assert_non_null(strstr(b.last_error, "a page list of 16384 entries; only the first 4096 are taken"));
	pthread_mutex_destroy(&b.vd.lock);
	gmem_destroy(&mem);
}

/*
 * A ring of 10 page lists and one notify: the notifying thread serves a
 * budget of them (4) and wakes the main thread, which serves the rest a
 * budget at a time, waking itself again while lists remain; nothing is left
 * for a kick the driver will not send.
 */
static void test_notify_budget(void **state)
{
	static struct virtio_balloon b;
	static struct vm vm;
	struct guest_mem mem;
	const unsigned n = 256, lists = 10;
	uint64_t wakeups;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned i = 0; i < n * lists; i++) {
		uint32_t pfn = htole32(4096 + i);
		assert_int_equal(gmem_write(&mem, PAGE_LISTS + i * 4, &pfn, 4), 0);
	}
	balloon_with_lists(&b, &mem, lists, n);
	b.vd.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		      VIRTIO_STATUS_DRIVER_OK;
	b.vd.vm = &vm;
	vm.defer_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(vm.defer_eventfd > 0);
	pthread_mutex_init(&vm.defer_lock, NULL);

	virtio_balloon_ops.queue_notify(&b.vd, 0);
	assert_int_equal(b.inflated, 4 * n);
	for (unsigned served = 4; served < lists; served += 4) {
		assert_ptr_equal(vm.deferred, &b.vd);
		virtio_run_deferred(&vm);
		assert_int_equal(b.inflated, (served + 4 < lists ? served + 4 : lists) * n);
	}
	/* The last pass found the ring empty: nothing listed, no wake-up pending. */
	virtio_run_deferred(&vm);
	assert_null(vm.deferred);
	assert_int_equal(read(vm.defer_eventfd, &wakeups, sizeof(wakeups)), -1);
	assert_int_equal(b.inflated, lists * n);
	close(vm.defer_eventfd);
	pthread_mutex_destroy(&vm.defer_lock);
	pthread_mutex_destroy(&b.vd.lock);
	gmem_destroy(&mem);
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
	char line[256];
	unsigned lines = 0;
	int saved_stderr;
	FILE *log;

	assert_int_equal(gmem_create(&mem, 64 * MiB), 0);
	for (unsigned k = 0; k < lists; k++)
		for (unsigned i = 0; i < n; i++) {
			/* List k: 10 * (k + 1) frames past RAM first, then pages of RAM. */
			uint32_t pfn = htole32(i < 10 * (k + 1) ? 0x100000 + i : 4096 + i % 8192);
			uint64_t at = PAGE_LISTS + ((uint64_t)k * n + i) * 4;

			assert_int_equal(gmem_write(&mem, at, &pfn, 4), 0);
		}
	balloon_with_lists(&b, &mem, lists, n);
	log = tmpfile();
	assert_non_null(log);
	fflush(stderr);
	saved_stderr = dup(2);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(log), 2) == 2);
	virtio_balloon_ops.queue_notify(&b.vd, 0);
	fflush(stderr);
	assert_true(dup2(saved_stderr, 2) == 2);
	close(saved_stderr);
	rewind(log);
	while (fgets(line, sizeof(line), log))
		if (strstr(line, "virtio-balloon:"))
			lines++;
	fclose(log);
	assert_int_equal(lines, 2);
	assert_int_equal(b.bad_pfns, 10 + 20 + 30);
	assert_non_null(strstr(b.last_error, "sent 30 page numbers outside"));
	pthread_mutex_destroy(&b.vd.lock);
	gmem_destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_pfn_ranges),
		cmocka_unit_test(test_discard),
		cmocka_unit_test(test_huge_page_list),
		cmocka_unit_test(test_notify_budget),
		cmocka_unit_test(test_junk_logged_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
