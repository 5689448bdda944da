/*
 * What a device does for offloads its receiver did not take
 * (net/offload.h): a partial checksum completed, a TCP/IPv4 segment of up
 * to 64 KiB cut into frames of one MTU, and the checks on segments.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/offload.h"
#include "net/packet.h"

#define MTU_FRAME 1514
#define SEG_MAX 64

static void put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static void put32(uint8_t *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t get32(const uint8_t *b) { return (uint32_t)get16(b) << 16 | get16(b + 2); }

/* The folded ones' complement sum of the IPv4 pseudo-header for l4len bytes of proto. */
static uint16_t pseudo_sum(const uint8_t *ip, uint8_t proto, size_t l4len)
{
	uint8_t ph[12];
	uint16_t c;

	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = proto;
	put16(ph + 10, (uint16_t)l4len);
	c = pkt_csum(ph, sizeof(ph)); /* the complement of the folded sum */
	return (uint16_t)~c;
}

/* 0 when the TCP or UDP checksum of the IPv4 packet at ip sums right. */
static uint16_t l4_check(const uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0xf) * 4, len = get16(ip + 2) - ihl;
	uint8_t *buf = malloc(12 + len);
	uint16_t c;

	memcpy(buf, ip + 12, 8);
	buf[8] = 0;
	buf[9] = ip[9];
	put16(buf + 10, (uint16_t)len);
	memcpy(buf + 12, ip + ihl, len);
	c = pkt_csum(buf, 12 + len);
	free(buf);
	return c;
}

/*
 * A TCP/IPv4 frame of n payload bytes (byte i is i * 7), as a sender
 * leaving the checksum partial writes it: the pseudo-header's sum in the
 * field. Returns its length.
 */
static size_t tcp_partial(uint8_t *f, size_t n, uint8_t flags, uint32_t seq)
{
	uint8_t *ip = f + 14, *t = f + 34;

	memset(f, 0, 54);
	memset(f, 0x52, 6);
	memset(f + 6, 0x54, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(40 + n));
	put16(ip + 4, 0xfffe); /* identification: wraps within the segments */
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, 0x0a000102);
	put32(ip + 16, 0x0a000103);
	put16(ip + 10, pkt_csum(ip, 20));
	put16(t, 40000);
	put16(t + 2, 5001);
	put32(t + 4, seq);
	put32(t + 8, 77);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 512);
	for (size_t i = 0; i < n; i++)
		f[54 + i] = (uint8_t)(i * 7);
	put16(t + 16, pseudo_sum(ip, 6, 20 + n));
	return 54 + n;
}

struct segs {
	uint8_t *f[SEG_MAX];
	size_t len[SEG_MAX];
	unsigned n;
};

static void collect(void *ctx, const uint8_t *frame, size_t len)
{
	struct segs *s = ctx;

	assert_true(s->n < SEG_MAX);
	s->f[s->n] = malloc(len);
	memcpy(s->f[s->n], frame, len);
	s->len[s->n++] = len;
}

static void segs_free(struct segs *s)
{
	while (s->n)
		free(s->f[--s->n]);
}

static void test_csum_complete(void **state)
{
	uint8_t f[200];
	size_t len = tcp_partial(f, 100, 0x18, 1);

	assert_int_not_equal(l4_check(f + 14), 0);
	assert_int_equal(offload_csum_complete(f, len, 34, 16), 0);
	assert_int_equal(l4_check(f + 14), 0);
	/* The field must lie inside the frame. */
	assert_int_equal(offload_csum_complete(f, len, (uint16_t)len, 0), -EINVAL);
	assert_int_equal(offload_csum_complete(f, len, 34, (uint16_t)(len - 35)), -EINVAL);
}

static void test_segment(void **state)
{
	static uint8_t f[14 + 65535], buf[MTU_FRAME];
	const size_t n = 4000, mss = 1448;
	size_t len = tcp_partial(f, n, 0x18 | 0x01 | 0x80, 0xfffff000); /* PSH, FIN, CWR; seq wraps */
	struct offload_segs c;
	struct segs s = {0};
	size_t got = 0;
	struct pkt p;

	assert_int_equal(offload_tcp4_segs(f, len, mss, MTU_FRAME, &c, NULL, 0), 0);
	assert_int_equal(c.count, 3);
	assert_int_equal(c.payload_off, 54);
	assert_int_equal(c.wire_bytes, len + 2 * 54);
	assert_int_equal(offload_tcp4_segment(f, len, mss, buf, MTU_FRAME, collect, &s), 0);
	assert_int_equal(s.n, 3);
	for (unsigned i = 0; i < s.n; i++) {
		const uint8_t *ip = s.f[i] + 14, *t = s.f[i] + 34;
		size_t chunk = i < 2 ? mss : n - 2 * mss;

		assert_int_equal(s.len[i], 54 + chunk);
		assert_int_equal(pkt_parse(s.f[i], s.len[i], &p, NULL, 0), PKT_OK);
		assert_int_equal(get16(ip + 2), 40 + chunk);
		assert_int_equal(get16(ip + 4), (uint16_t)(0xfffe + i));
		assert_int_equal(l4_check(ip), 0);
		assert_int_equal(get32(t + 4), (uint32_t)(0xfffff000u + got));
		assert_int_equal(get32(t + 8), 77);
		/* FIN and PSH on the last frame only, CWR on the first only. */
		assert_int_equal(t[13] & 0x09, i == 2 ? 0x09 : 0);
		assert_int_equal(t[13] & 0x80, i == 0 ? 0x80 : 0);
		assert_int_equal(t[13] & 0x10, 0x10);
		assert_memory_equal(s.f[i] + 54, f + 54 + got, chunk);
		got += chunk;
	}
	assert_int_equal(got, n);
	segs_free(&s);

	/* Less than one size of payload: one frame, its checksum completed. */
	len = tcp_partial(f, 100, 0x18, 5);
	assert_int_equal(offload_tcp4_segment(f, len, mss, buf, MTU_FRAME, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len[0], len);
	assert_int_equal(l4_check(s.f[0] + 14), 0);
	segs_free(&s);

	/* A pure ACK cut at any size: one frame. */
	len = tcp_partial(f, 0, 0x10, 5);
	assert_int_equal(offload_tcp4_segs(f, len, mss, MTU_FRAME, &c, NULL, 0), 0);
	assert_int_equal(c.count, 1);
}

static void test_segs_refused(void **state)
{
	static uint8_t f[14 + 65535];
	size_t len = tcp_partial(f, 3000, 0x10, 1);
	struct offload_segs c;
	char why[96];

	/* Frames beyond the MTU, or no size at all. */
	assert_int_equal(offload_tcp4_segs(f, len, 1461, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "beyond"));
	assert_int_equal(offload_tcp4_segs(f, len, 0, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	/* Nor so small a size that one frame makes thousands. */
	assert_int_equal(offload_tcp4_segs(f, len, 47, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "below 48"));
	assert_int_equal(offload_tcp4_segs(f, len, 48, MTU_FRAME, &c, why, sizeof(why)), 0);
	assert_int_equal(c.count, 63);
	/* The IPv4 length must be the frame's. */
	assert_int_equal(offload_tcp4_segs(f, len - 1, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "length"));
	/* A fragment, UDP, a TCP header running off the frame, not IPv4. */
	put16(f + 20, 0x2000);
	assert_int_equal(offload_tcp4_segs(f, len, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "fragment"));
	put16(f + 20, 0x4000);
	f[23] = 17;
	assert_int_equal(offload_tcp4_segs(f, len, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not TCP"));
	f[23] = 6;
	assert_int_equal(offload_tcp4_segs(f, 50, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	f[46] = 15 << 4;
	put16(f + 16, 20 + 40);
	assert_int_equal(offload_tcp4_segs(f, 74, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	put16(f + 12, 0x86dd);
	assert_int_equal(offload_tcp4_segs(f, len, 1448, MTU_FRAME, &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(offload_tcp4_segment(f, len, 1448, f, MTU_FRAME, collect, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csum_complete),
	    cmocka_unit_test(test_segment),
	    cmocka_unit_test(test_segs_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
