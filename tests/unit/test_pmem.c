/*
 * virtio-pmem's host side: which backing files are refused and why (the
 * message names the file), where the regions go in guest-physical space
 * (above RAM and the PCI hole, 1 GiB aligned, never overlapping), and the
 * request queue: flushes, and requests that put the device in NEEDS_RESET.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio_pmem.h"
#include "vmm/pci.h"

static char dir[] = "/tmp/domus-test-pmem-XXXXXX";
static char err[DISK_PATH_MAX + 256];

static void make_file(struct pmem_config *pc, const char *name, off_t size, mode_t mode)
{
	int fd;

	snprintf(pc->path, sizeof(pc->path), "%s/%s", dir, name);
	fd = open(pc->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
	assert_int_equal(chmod(pc->path, mode), 0);
}

/* pmem_open refuses pc with an error mentioning the file and why. */
static void expect_refused(const struct pmem_config *pc, const char *why)
{
	uint64_t size = 0;
	int fd = pmem_open(pc, &size, err, sizeof(err));

	if (fd >= 0)
		fail_msg("%s was accepted", pc->path);
	if (!strstr(err, pc->path) || !strstr(err, why))
		fail_msg("error '%s' does not name %s and '%s'", err, pc->path, why);
}

static void test_open(void **state)
{
	struct pmem_config pc = {.readonly = true};
	uint64_t size = 0;
	int fd;

	make_file(&pc, "good", 4 << 20, 0444);
	fd = pmem_open(&pc, &size, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(size, 4 << 20);
	/* Read-only means opened read-only: the VMM could not write the file if it tried. */
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	close(fd);

	make_file(&pc, "empty", 0, 0644);
	expect_refused(&pc, "is empty");
	make_file(&pc, "odd", (2 << 20) + 4096, 0644);
	expect_refused(&pc, "not a multiple of 2 MiB");
	make_file(&pc, "small", 4096, 0644);
	expect_refused(&pc, "not a multiple of 2 MiB");
	make_file(&pc, "huge", (off_t)PMEM_MAX_SIZE + (2 << 20), 0644);
	expect_refused(&pc, "too large");
	snprintf(pc.path, sizeof(pc.path), "%s", dir);
	expect_refused(&pc, "not a regular file");
	snprintf(pc.path, sizeof(pc.path), "%s/missing", dir);
	expect_refused(&pc, "cannot open");

	/* Read-write: opened for writing, and a file nobody may write is refused (even to root). */
	pc.readonly = false;
	make_file(&pc, "rw", 2 << 20, 0644);
	fd = pmem_open(&pc, &size, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	close(fd);
	make_file(&pc, "locked", 2 << 20, 0444);
	if (geteuid() == 0)
		expect_refused(&pc, "read-only");
	else
		expect_refused(&pc, "cannot open");
}

static void test_place(void **state)
{
	const uint64_t GiB = 1ULL << 30, MiB = 1ULL << 20;
	uint64_t sizes[4] = {128 * MiB, 2 * MiB, 3 * GiB, 64 * MiB}, gpas[4];

	/* A small domain: RAM ends below the PCI hole; the regions still start above 4 GiB. */
	pmem_place(512 * MiB, sizes, 4, gpas);
	assert_true(gpas[0] >= PCI_MMIO_BASE + PCI_MMIO_SIZE);
	assert_int_equal(gpas[0], 4 * GiB);
	assert_int_equal(gpas[1], 5 * GiB);
	assert_int_equal(gpas[2], 6 * GiB);
	assert_int_equal(gpas[3], 9 * GiB);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(gpas[i] % PMEM_GPA_ALIGN, 0);
	/* A large one: after high RAM, at the next boundary. */
	pmem_place(4 * GiB + 5 * GiB + 4096, sizes, 2, gpas);
	assert_int_equal(gpas[0], 10 * GiB);
	assert_int_equal(gpas[1], 11 * GiB);
	pmem_place(8 * GiB, sizes, 1, gpas);
	assert_int_equal(gpas[0], 8 * GiB);
}

/* The request queue, driven by a synthetic driver in host memory. */
#define MEM_SIZE (1 << 20)
#define QSIZE 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define REQ 0x10000
#define RESP 0x10100

static uint8_t *mem;
static struct guest_mem gmem;
static struct virtio_pmem dev;

static void queue_setup(bool readonly, int fd)
{
	memset(mem, 0, MEM_SIZE);
	memset(&dev, 0, sizeof(dev));
	gmem_wrap(&gmem, mem, MEM_SIZE);
	dev.vd.ops = &virtio_pmem_ops;
	dev.vd.priv = &dev;
	dev.path = "test.img";
	dev.readonly = readonly;
	dev.fd = fd;
	virtq_init(&dev.vd.vqs[0], &gmem, QSIZE);
	dev.vd.vqs[0].desc_gpa = DESC;
	dev.vd.vqs[0].avail_gpa = AVAIL;
	dev.vd.vqs[0].used_gpa = USED;
	assert_int_equal(virtq_enable(&dev.vd.vqs[0]), 0);
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	((struct virtq_desc *)(mem + DESC))[i] =
		(struct virtq_desc){.addr = addr, .len = len, .flags = flags, .next = next};
}

/* Offers a request of `type`, req_len bytes readable and resp_len writable, and serves it. */
static void request(uint32_t type, uint32_t req_len, uint32_t resp_len)
{
	uint16_t *avail = (uint16_t *)(mem + AVAIL);
	uint16_t idx = avail[1];

	memcpy(mem + REQ, &type, sizeof(type));
	memset(mem + RESP, 0xee, 4);
	if (resp_len) {
		set_desc(0, REQ, req_len, VIRTQ_DESC_F_NEXT, 1);
		set_desc(1, RESP, resp_len, VIRTQ_DESC_F_WRITE, 0);
	} else {
		set_desc(0, REQ, req_len, 0, 0);
	}
	avail[2 + idx % QSIZE] = 0;
	avail[1] = (uint16_t)(idx + 1);
	virtio_pmem_ops.queue_notify(&dev.vd, 0);
}

static uint32_t reply(void)
{
	uint32_t ret;

	memcpy(&ret, mem + RESP, 4);
	return ret;
}

static uint16_t used_idx(void)
{
	uint16_t idx;

	memcpy(&idx, mem + USED + 2, 2);
	return idx;
}

static bool needs_reset(void)
{
	return dev.vd.status & VIRTIO_STATUS_NEEDS_RESET;
}

static void test_flush(void **state)
{
	char path[sizeof(dir) + 16];
	int fd;

	/* Read-only: a flush has nothing to do and succeeds. */
	queue_setup(true, -1);
	request(0, 4, 4);
	assert_int_equal(used_idx(), 1);
	assert_int_equal(reply(), 0);
	assert_int_equal(atomic_load(&dev.flushes), 1);
	assert_false(needs_reset());
	/* A type a later spec may define: answered with an error, the device goes on. */
	request(7, 4, 4);
	assert_int_equal(used_idx(), 2);
	assert_int_equal(reply(), 1);
	assert_false(needs_reset());

	/* Read-write: an fsync of the file; one that fails is an error to the guest. */
	snprintf(path, sizeof(path), "%s/flush", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	queue_setup(false, fd);
	request(0, 4, 4);
	assert_int_equal(reply(), 0);
	close(fd);
	queue_setup(false, -1);
	request(0, 4, 4);
	assert_int_equal(reply(), 1);
	assert_false(needs_reset());
}

static void test_hostile_requests(void **state)
{
	/* No device-writable part: nowhere to answer. */
	queue_setup(true, -1);
	request(0, 8, 0);
	assert_true(needs_reset());
	assert_int_equal(used_idx(), 0);
	/* A type shorter than 4 bytes. */
	queue_setup(true, -1);
	request(0, 2, 4);
	assert_true(needs_reset());
	assert_int_equal(reply(), 0xeeeeeeee);
	/* A reply buffer shorter than 4 bytes: nothing is written past it. */
	queue_setup(true, -1);
	request(0, 4, 2);
	assert_true(needs_reset());
	assert_int_equal(reply(), 0xeeeeeeee);
	/* A request outside guest memory breaks the queue. */
	queue_setup(true, -1);
	set_desc(0, MEM_SIZE - 2, 4, 0, 0);
	((uint16_t *)(mem + AVAIL))[1] = 1;
	virtio_pmem_ops.queue_notify(&dev.vd, 0);
	assert_true(needs_reset());
	/* Longer buffers than needed are fine: only 4 bytes are read and written. */
	queue_setup(true, -1);
	request(0, 64, 64);
	assert_false(needs_reset());
	assert_int_equal(reply(), 0);
}

static int setup(void **state)
{
	mem = calloc(1, MEM_SIZE);
	return mem && mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[sizeof(dir) + 16];

	free(mem);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_place),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_hostile_requests),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
