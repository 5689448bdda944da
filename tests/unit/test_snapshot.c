/*
 * The domain state stream (vmm/snapshot.c): what is written reads back
 * the same, through a pipe as through a buffer, and a stream that is
 * truncated anywhere, corrupted anywhere, of another version or with a
 * section longer than its type allows is refused with its reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/snapshot.h"

static const char config[] = "{\"name\":\"d1\",\"memory\":256}";
static uint8_t page[8 + 4096];

/* Writes a stream of every kind of section to a pipe and returns its bytes. */
static size_t make_stream(uint8_t *out, size_t cap)
{
	struct snap_stream w;
	uint8_t zero[16] = {0};
	int p[2];
	ssize_t n;
	size_t len = 0;

	assert_int_equal(pipe(p), 0);
	snap_stream_fd(&w, p[1]);
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7);
	zero[9] = 0x10; /* 4 KiB of zeros at 0 */
	assert_int_equal(snap_write_header(&w), 0);
	assert_int_equal(snap_write_section(&w, SNAP_CONFIG, 0, config, strlen(config)), 0);
	assert_int_equal(snap_write_section(&w, SNAP_VCPU, 1, "regs", 4), 0);
	assert_int_equal(snap_write_section(&w, SNAP_MEMORY, 0, page, sizeof(page)), 0);
	assert_int_equal(snap_write_section(&w, SNAP_ZERO, 0, zero, sizeof(zero)), 0);
	assert_int_equal(snap_write_section(&w, SNAP_DEVICE, 0, NULL, 0), 0);
	assert_int_equal(snap_write_end(&w), 0);
	close(p[1]);
	while ((n = read(p[0], out + len, cap - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	assert_int_equal(len, w.bytes);
	return len;
}

/* Reads a whole stream from a buffer: 0 with the sections' types in order, or the error. */
static int read_stream(const uint8_t *buf, size_t len, uint32_t *types, size_t *ntypes, char *err)
{
	static uint8_t payload[SNAP_MAX_PAYLOAD];
	struct snap_stream r;
	struct snap_section sec;
	int ret;

	*ntypes = 0;
	snap_stream_buffer(&r, buf, len);
	if ((ret = snap_read_header(&r)) < 0)
		goto out;
	do {
		if ((ret = snap_read_section(&r, &sec, payload, sizeof(payload))) < 0)
			goto out;
		types[(*ntypes)++] = sec.type;
		if (sec.type == SNAP_CONFIG)
			assert_memory_equal(payload, config, strlen(config));
		if (sec.type == SNAP_MEMORY)
			assert_memory_equal(payload, page, sizeof(page));
	} while (sec.type != SNAP_END && *ntypes < 16);
out:
	strcpy(err, r.err);
	return ret;
}

static uint8_t stream[64 << 10];

static void test_round_trip(void **state)
{
	uint32_t types[16];
	size_t n, len = make_stream(stream, sizeof(stream));
	char err[160];

	(void)state;
	assert_int_equal(read_stream(stream, len, types, &n, err), 0);
	assert_int_equal(n, 6);
	assert_int_equal(types[0], SNAP_CONFIG);
	assert_int_equal(types[2], SNAP_MEMORY);
	assert_int_equal(types[5], SNAP_END);
}

static void test_truncated_anywhere(void **state)
{
	uint32_t types[16];
	size_t n, len = make_stream(stream, sizeof(stream));
	char err[160];

	(void)state;
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(read_stream(stream, cut, types, &n, err), -EPROTO);
		assert_non_null(strstr(err, "the stream ends inside"));
	}
}

static void test_corrupted_anywhere(void **state)
{
	uint32_t types[16];
	size_t n, len = make_stream(stream, sizeof(stream));
	char err[160];

	(void)state;
	/* Every byte flipped in turn: no stream with one bad byte reads through to its end. */
	for (size_t at = 0; at < len; at++) {
		stream[at] ^= 0x41;
		assert_true(read_stream(stream, len, types, &n, err) < 0);
		assert_true(err[0] != '\0');
		stream[at] ^= 0x41;
	}
	assert_int_equal(read_stream(stream, len, types, &n, err), 0);
}

static void test_version_and_magic(void **state)
{
	uint32_t types[16];
	size_t n, len = make_stream(stream, sizeof(stream));
	char err[160];

	(void)state;
	stream[8] = 2;
	assert_int_equal(read_stream(stream, len, types, &n, err), -EPROTO);
	assert_string_equal(err, "stream version 2, this domus reads version 1 only");
	stream[8] = 1;
	memcpy(stream, "QEVM\0\0\0\3", 8);
	assert_int_equal(read_stream(stream, len, types, &n, err), -EPROTO);
	assert_non_null(strstr(err, "not a domus state stream"));
}

static void test_limits(void **state)
{
	static uint8_t big[SNAP_MAX_PAYLOAD + 1];
	struct snap_stream w, r;
	struct snap_section sec;
	uint8_t hdr[16 + 24];
	uint8_t small[8];
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	snap_stream_fd(&w, p[1]);
	/* The writer refuses what a reader would. */
	assert_int_equal(snap_write_section(&w, SNAP_ZERO, 0, big, 17), -EMSGSIZE);
	assert_int_equal(snap_write_section(&w, SNAP_MEMORY, 0, big, sizeof(big)), -EMSGSIZE);
	assert_int_equal(snap_write_section(&w, 99, 0, big, 1), -EMSGSIZE);
	/* A reader with too little room says so rather than overrunning it. */
	assert_int_equal(snap_write_header(&w), 0);
	assert_int_equal(snap_write_section(&w, SNAP_VCPU, 0, big, 64), 0);
	assert_int_equal(read(p[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	snap_stream_buffer(&r, hdr, sizeof(hdr));
	assert_int_equal(snap_read_header(&r), 0);
	assert_int_equal(snap_read_section(&r, &sec, small, sizeof(small)), -EMSGSIZE);
	close(p[0]);
	close(p[1]);
	/* A section header that claims a huge length is refused before anything is read. */
	memcpy(hdr, SNAP_MAGIC, 8);
	memset(hdr + 8, 0, sizeof(hdr) - 8);
	hdr[8] = SNAP_VERSION;
	hdr[12] = 16;
	hdr[16] = SNAP_MEMORY;
	memset(hdr + 24, 0xff, 8);
	snap_stream_buffer(&r, hdr, sizeof(hdr));
	assert_int_equal(snap_read_header(&r), 0);
	assert_int_equal(snap_read_section(&r, &sec, big, sizeof(big)), -EPROTO);
	assert_non_null(strstr(r.err, "more than its limit"));
}

static void test_end_count(void **state)
{
	uint32_t types[16];
	size_t n, len = make_stream(stream, sizeof(stream));
	static uint8_t spliced[64 << 10];
	size_t vcpu_at = 16 + 24 + strlen(config), vcpu_len = 24 + 4;
	char err[160];

	(void)state;
	/* A whole section dropped from the middle: every CRC holds, the count does not. */
	memcpy(spliced, stream, vcpu_at);
	memcpy(spliced + vcpu_at, stream + vcpu_at + vcpu_len, len - vcpu_at - vcpu_len);
	assert_int_equal(read_stream(spliced, len - vcpu_len, types, &n, err), -EPROTO);
	assert_non_null(strstr(err, "the end says 5 sections, 4 were read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_truncated_anywhere),
		cmocka_unit_test(test_corrupted_anywhere), cmocka_unit_test(test_version_and_magic),
		cmocka_unit_test(test_limits),           cmocka_unit_test(test_end_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
