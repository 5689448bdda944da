/*
 * virtio-pmem's host side: which backing files are refused and why (the
 * message names the file), and where the regions go in guest-physical
 * space (above RAM and the PCI hole, 1 GiB aligned, never overlapping).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
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

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[sizeof(dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_place),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
