/* The pcap writer: the global header and records, byte for byte, and a file read back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/pcap.h"

static uint32_t u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void test_header(void **state)
{
	uint8_t h[PCAP_HEADER_LEN];

	assert_int_equal(pcap_header(h), 24);
	assert_int_equal(u32(h), 0xa1b2c3d4);
	assert_int_equal(h[4] | h[5] << 8, 2); /* version 2.4, host order (little-endian here) */
	assert_int_equal(h[6] | h[7] << 8, 4);
	assert_int_equal(u32(h + 8), 0);  /* thiszone */
	assert_int_equal(u32(h + 12), 0); /* sigfigs */
	assert_int_equal(u32(h + 16), 65535);
	assert_int_equal(u32(h + 20), 1); /* Ethernet */
}

static void test_record(void **state)
{
	uint8_t r[PCAP_RECORD_LEN];

	assert_int_equal(pcap_record(r, 1700000000123456ULL, 60), 16);
	assert_int_equal(u32(r), 1700000000);
	assert_int_equal(u32(r + 4), 123456);
	assert_int_equal(u32(r + 8), 60);
	assert_int_equal(u32(r + 12), 60);
	/* Longer than the snapshot: cut there, the length on the wire kept. */
	pcap_record(r, 0, 70000);
	assert_int_equal(u32(r + 8), 65535);
	assert_int_equal(u32(r + 12), 70000);
}

static void test_file(void **state)
{
	int fd = memfd_create("pcap", MFD_CLOEXEC);
	uint8_t a[14] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0}, b[60] = {0xff}, buf[256];
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(pcap_write_header(fd), 0);
	assert_int_equal(pcap_write_frame(fd, 2000001, a, sizeof(a)), 0);
	assert_int_equal(pcap_write_frame(fd, 3000000, b, sizeof(b)), 0);
	n = pread(fd, buf, sizeof(buf), 0);
	assert_int_equal(n, 24 + 16 + 14 + 16 + 60);
	assert_int_equal(u32(buf + 24), 2);
	assert_int_equal(u32(buf + 28), 1);
	assert_int_equal(u32(buf + 32), 14);
	assert_memory_equal(buf + 40, a, 14);
	assert_int_equal(u32(buf + 54), 3);
	assert_int_equal(u32(buf + 62), 60);
	assert_memory_equal(buf + 70, b, 60);
	close(fd);
	/* A descriptor that cannot be written: the error, not a half record. */
	assert_int_equal(pcap_write_frame(fd, 0, a, sizeof(a)), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
