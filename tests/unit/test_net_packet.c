/*
 * The VFR's frame parser (src/net/packet.c) on frames built byte by byte
 * and on frames captured from this machine's loopback: valid ARP, TCP, UDP
 * and ICMP; every truncation of a valid frame; lying lengths, bad header
 * checksums, IPv4 options, fragments first, middle and last, overlapping
 * and oversized fragments, bogus TCP flags, VLAN tags, IPv6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/packet.h"
#include "net_frames.h"

/*
 * Captured with `tcpdump -i lo -w` while `ping -c1 127.0.0.1` ran and a
 * TCP connect to the closed port 9 was refused (Linux 6.1).
 */
static const uint8_t cap_echo_request[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x54, 0xaa, 0x50, 0x40, 0x00, 0x40, 0x01, 0x92, 0x56, 0x7f, 0x00,
    0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x08, 0x00, 0xdb, 0x00, 0x1c, 0xcb, 0x00, 0x01,
    0x2e, 0x46, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00, 0xfc, 0xae, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};
static const uint8_t cap_echo_reply[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x54, 0xaa, 0x51, 0x00, 0x00, 0x40, 0x01, 0xd2, 0x55, 0x7f, 0x00,
    0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x00, 0x00, 0xe3, 0x00, 0x1c, 0xcb, 0x00, 0x01,
    0x2e, 0x46, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00, 0xfc, 0xae, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};
static const uint8_t cap_tcp_syn[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x45,
    0x00, 0x00, 0x3c, 0xb7, 0x7e, 0x40, 0x00, 0x40, 0x06, 0x85, 0x3b, 0x7f, 0x00, 0x00, 0x01,
    0x7f, 0x00, 0x00, 0x01, 0xb6, 0x8c, 0x00, 0x09, 0xf8, 0x07, 0xc8, 0xe0, 0x00, 0x00, 0x00,
    0x00, 0xa0, 0x02, 0xff, 0xd7, 0xfe, 0x30, 0x00, 0x00, 0x02, 0x04, 0xff, 0xd7, 0x04, 0x02,
    0x08, 0x0a, 0x12, 0xed, 0xa4, 0xe6, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
};
static const uint8_t cap_tcp_rst_ack[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xce, 0x7f, 0x00,
    0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x00, 0x09, 0xb6, 0x8c, 0x00, 0x00, 0x00, 0x00,
    0xf8, 0x07, 0xc8, 0xe1, 0x50, 0x14, 0x00, 0x00, 0x3a, 0x4f, 0x00, 0x00,
};

static char why[PKT_REASON_MAX];

/* Parses a copy of exactly len bytes, so ASan sees any read past the end. */
static enum pkt_verdict parse(const uint8_t *b, size_t len, struct pkt *p)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum pkt_verdict v;

	assert_non_null(copy);
	memcpy(copy, b, len);
	v = pkt_parse(copy, len, p, why, sizeof(why));
	free(copy);
	return v;
}

static void expect(const uint8_t *b, size_t len, enum pkt_verdict v, const char *reason)
{
	struct pkt p;

	assert_int_equal(parse(b, len, &p), v);
	if (reason)
		assert_string_equal(why, reason);
}

static void test_tcp(void **state)
{
	uint8_t b[256];
	size_t n = frame_tcp(b, IP4(10, 0, 1, 5), 40000, IP4(10, 0, 2, 7), 22, PKT_TCP_SYN, 0);
	struct pkt p;

	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_int_equal(p.l3, PKT_L3_IPV4);
	assert_int_equal(p.src, IP4(10, 0, 1, 5));
	assert_int_equal(p.dst, IP4(10, 0, 2, 7));
	assert_int_equal(p.proto, PKT_PROTO_TCP);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 22);
	assert_int_equal(p.tcp_flags, PKT_TCP_SYN);
	assert_int_equal(p.tcp_seq, 1000);
	assert_int_equal(p.ip_len, 40);
	assert_int_equal(p.l3_off, 14);
	assert_int_equal(p.l4_off, 34);
	assert_int_equal(p.payload_off, 54);
	assert_int_equal(p.ttl, 64);
	assert_true(p.flags & PKT_F_L4);
	assert_false(p.flags & (PKT_F_FRAG | PKT_F_VLAN));
	assert_int_equal(p.src_mac[5], 1);
	assert_string_equal(why, "");

	/* Ethernet padding after the datagram is allowed. */
	n = frame_tcp(b, 1, 1, 2, 2, PKT_TCP_ACK, 0);
	memset(b + n, 0, 6);
	assert_int_equal(parse(b, n + 6, &p), PKT_OK);
	assert_int_equal(p.l4_len, 20);
}

static void test_udp(void **state)
{
	uint8_t b[256];
	size_t n = frame_udp(b, IP4(10, 0, 1, 5), 5353, IP4(10, 0, 1, 1), 53, 12);
	struct pkt p;

	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_int_equal(p.proto, PKT_PROTO_UDP);
	assert_int_equal(p.sport, 5353);
	assert_int_equal(p.dport, 53);
	assert_int_equal(p.udp_len, 20);
	assert_int_equal(p.payload_off, 42);

	/* The UDP length must say what the datagram holds. */
	put16(b + ETH + 24, 30);
	expect(b, n, PKT_MALFORMED, "UDP length 30 but 20 bytes in the datagram");
	put16(b + ETH + 24, 4);
	expect(b, n, PKT_MALFORMED, "UDP length 4 below 8");
	put16(b + ETH + 24, 20);
	put16(b + ETH + 20, 0);
	expect(b, n, PKT_REFUSED, "UDP port 0");
}

static void test_icmp(void **state)
{
	uint8_t b[256], orig[256], e[256];
	size_t n = frame_echo(b, IP4(10, 0, 1, 5), IP4(10, 0, 1, 1), PKT_ICMP_ECHO, 77, 3);
	struct pkt p;

	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_int_equal(p.icmp_type, PKT_ICMP_ECHO);
	assert_int_equal(p.icmp_id, 77);
	assert_int_equal(p.icmp_seq, 3);
	assert_int_equal(p.sport, 77);
	assert_false(p.flags & PKT_F_ICMP_ERROR);

	/* A port unreachable about a UDP datagram: the quoted header and ports. */
	frame_udp(orig, IP4(10, 0, 1, 5), 5353, IP4(10, 0, 2, 9), 53, 4);
	n = frame_icmp_error(e, IP4(10, 0, 2, 9), IP4(10, 0, 1, 5), PKT_ICMP_UNREACH, 3, orig);
	assert_int_equal(parse(e, n, &p), PKT_OK);
	assert_true(p.flags & PKT_F_ICMP_ERROR);
	assert_int_equal(p.icmp_type, PKT_ICMP_UNREACH);
	assert_int_equal(p.icmp_code, 3);
	assert_int_equal(p.inner.proto, PKT_PROTO_UDP);
	assert_int_equal(p.inner.src, IP4(10, 0, 1, 5));
	assert_int_equal(p.inner.dst, IP4(10, 0, 2, 9));
	assert_int_equal(p.inner.sport, 5353);
	assert_int_equal(p.inner.dport, 53);
	assert_true(p.inner.has_ports);

	/* Quoting a header of the wrong version, or an ICMP error about an ICMP error. */
	e[ETH + 28] = 0x65;
	expect(e, n, PKT_MALFORMED, "ICMP error quotes IP version 6");
	n = frame_icmp_error(orig, 1, 2, PKT_ICMP_TIME_EXCEEDED, 0, e);
	expect(orig, n, PKT_MALFORMED, "ICMP error about ICMP type 3, not an echo");
	/* Too short for 8 bytes after the quoted header. */
	frame_udp(orig, 1, 1, 2, 2, 0);
	n = frame_icmp_error(e, 2, 1, PKT_ICMP_UNREACH, 1, orig);
	expect(e, n - 1, PKT_MALFORMED, NULL);
}

static void test_arp(void **state)
{
	uint8_t b[64] = {0};
	size_t n = frame_eth(b, PKT_ETHERTYPE_ARP);
	struct pkt p;

	put16(b + n, 1);
	put16(b + n + 2, PKT_ETHERTYPE_IPV4);
	b[n + 4] = 6;
	b[n + 5] = 4;
	put16(b + n + 6, 1);
	memcpy(b + n + 8, b + 6, 6);
	put32(b + n + 14, IP4(10, 0, 1, 5));
	put32(b + n + 24, IP4(10, 0, 1, 1));
	n += 28;
	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_int_equal(p.l3, PKT_L3_ARP);
	assert_int_equal(p.arp_op, 1);
	assert_int_equal(p.arp_spa, IP4(10, 0, 1, 5));
	assert_int_equal(p.arp_tpa, IP4(10, 0, 1, 1));
	assert_memory_equal(p.arp_sha, p.src_mac, 6);

	put16(b + ETH + 6, 9);
	expect(b, n, PKT_REFUSED, "ARP operation 9");
	put16(b + ETH + 6, 2);
	b[ETH + 4] = 8;
	expect(b, n, PKT_MALFORMED, "ARP address lengths 8 and 4 for Ethernet and IPv4");
	b[ETH + 4] = 6;
	put16(b + ETH, 6);
	expect(b, n, PKT_REFUSED, "ARP hardware type 6, not Ethernet");
}

/* Every length short of a valid frame's is refused, and nothing is read past it. */
static void every_truncation(const uint8_t *b, size_t n)
{
	struct pkt p;
	size_t len;

	assert_int_equal(parse(b, n, &p), PKT_OK);
	for (len = 0; len < n; len++) {
		enum pkt_verdict v = parse(b, len, &p);

		if (v == PKT_OK)
			fail_msg("a frame of %zu of %zu bytes parsed", len, n);
		assert_true(why[0] != 0);
	}
}

static void test_truncations(void **state)
{
	uint8_t b[256], orig[256];
	size_t n;

	every_truncation(b, frame_tcp(b, 1, 1000, 2, 80, PKT_TCP_PSH | PKT_TCP_ACK, 10));
	every_truncation(b, frame_udp(b, 1, 1000, 2, 53, 10));
	every_truncation(b, frame_echo(b, 1, 2, PKT_ICMP_ECHO, 1, 1));
	frame_tcp(orig, 1, 1000, 2, 80, PKT_TCP_SYN, 0);
	every_truncation(b, frame_icmp_error(b, 2, 1, PKT_ICMP_UNREACH, 3, orig));
	every_truncation(cap_echo_request, sizeof(cap_echo_request));
	every_truncation(cap_tcp_syn, sizeof(cap_tcp_syn));
	/* A VLAN-tagged frame too. */
	n = frame_udp(b + 4, 1, 1000, 2, 53, 10);
	memmove(b, b + 4, 12);
	put16(b + 12, PKT_ETHERTYPE_VLAN);
	put16(b + 14, 42);
	put16(b + 16, PKT_ETHERTYPE_IPV4);
	every_truncation(b, n + 4);

	expect(b, 3, PKT_MALFORMED, "truncated Ethernet header (3 bytes)");
	n = frame_tcp(b, 1, 1, 2, 2, PKT_TCP_SYN, 0);
	expect(b, ETH + 10, PKT_MALFORMED, "truncated IPv4 header (10 bytes)");
	expect(b, n - 1, PKT_MALFORMED, "IPv4 total length 40 beyond frame of 53 bytes");
}

static void test_ipv4_header(void **state)
{
	uint8_t b[2048];
	size_t n = frame_tcp(b, 1, 1, 2, 2, PKT_TCP_SYN, 6);
	uint8_t *ip = b + ETH;

	ip[0] = 0x44;
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, "IPv4 header length 16 below 20");
	ip[0] = 0x4f;
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, NULL); /* 60 bytes of header, the checksum over them wrong */
	ip[0] = 0x65;
	expect(b, n, PKT_MALFORMED, "IP version 6 in an IPv4 frame");
	ip[0] = 0x45;
	ip_fix_csum(ip);
	expect(b, n, PKT_OK, NULL);

	/* Bad checksum. */
	ip[11] ^= 1;
	expect(b, n, PKT_MALFORMED, NULL);
	assert_non_null(strstr(why, "IPv4 header checksum"));
	ip[11] ^= 1;

	/* Total length lies: beyond the frame, shorter than the header. */
	put16(ip + 2, 1500);
	ip_fix_csum(ip);
	memset(b + n, 0, 60 - n);
	expect(b, 60, PKT_MALFORMED, "IPv4 total length 1500 beyond frame of 60 bytes");
	put16(ip + 2, 12);
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, "IPv4 total length 12 shorter than its header of 20");
	/* Shorter than the TCP header but not the IP one: TCP is truncated. */
	put16(ip + 2, 30);
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, "truncated TCP header (10 bytes)");
	put16(ip + 2, (uint16_t)(n - ETH));

	/* The reserved ("evil") flag, and a multicast source. */
	put16(ip + 6, 0x8000);
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, "IPv4 reserved flag set");
	put16(ip + 6, 0);
	put32(ip + 12, IP4(224, 0, 0, 1));
	ip_fix_csum(ip);
	expect(b, n, PKT_MALFORMED, "IPv4 source 224.0.0.1 is multicast or reserved");
	put32(ip + 12, 1);
	ip_fix_csum(ip);
	expect(b, n, PKT_OK, NULL);

	/* Options: refused, even with the right lengths and checksum. */
	memmove(ip + 24, ip + 20, n - ETH - 20);
	ip[20] = 1;
	ip[21] = 1;
	ip[22] = 1;
	ip[23] = 0; /* NOP NOP NOP EOL */
	ip[0] = 0x46;
	put16(ip + 2, (uint16_t)(n - ETH + 4));
	ip_fix_csum(ip);
	expect(b, n + 4, PKT_REFUSED, "IPv4 options (4 bytes)");
}

static void test_tcp_header(void **state)
{
	uint8_t b[256];
	size_t n = frame_tcp(b, 1, 1, 2, 2, PKT_TCP_ACK, 8);
	uint8_t *tcp = b + ETH + 20;

	tcp[12] = 4 << 4;
	expect(b, n, PKT_MALFORMED, "TCP data offset 16 below 20");
	tcp[12] = 8 << 4;
	expect(b, n, PKT_MALFORMED, "TCP header of 32 bytes beyond the 28 in the datagram");
	tcp[12] = 7 << 4;
	expect(b, n, PKT_OK, NULL);
	tcp[12] = 5 << 4;
	put16(tcp + 2, 0);
	expect(b, n, PKT_REFUSED, "TCP port 0");
}

static void test_tcp_flags(void **state)
{
	static const struct {
		uint8_t flags;
		bool bogus;
		const char *text;
	} cases[] = {
	    {PKT_TCP_SYN, false, "SYN"},
	    {PKT_TCP_SYN | PKT_TCP_ACK, false, "SYN,ACK"},
	    {PKT_TCP_ACK, false, "ACK"},
	    {PKT_TCP_PSH | PKT_TCP_ACK, false, "PSH,ACK"},
	    {PKT_TCP_FIN | PKT_TCP_ACK, false, "FIN,ACK"},
	    {PKT_TCP_RST, false, "RST"},
	    {PKT_TCP_RST | PKT_TCP_ACK, false, "RST,ACK"},
	    {PKT_TCP_SYN | 0xc0, false, "SYN,ECE,CWR"},
	    {PKT_TCP_URG | PKT_TCP_ACK, false, "ACK,URG"},
	    {0, true, "none"},
	    {PKT_TCP_SYN | PKT_TCP_FIN, true, "FIN,SYN"},
	    {PKT_TCP_SYN | PKT_TCP_RST, true, "SYN,RST"},
	    {PKT_TCP_FIN | PKT_TCP_RST | PKT_TCP_ACK, true, "FIN,RST,ACK"},
	    {PKT_TCP_FIN | PKT_TCP_URG | PKT_TCP_PSH, true, "FIN,PSH,URG"},
	    {0x3f, true, "FIN,SYN,RST,PSH,ACK,URG"},
	    {PKT_TCP_FIN, true, "FIN"},
	    {PKT_TCP_PSH, true, "PSH"},
	};
	uint8_t b[256];
	char text[64], want[96];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = frame_tcp(b, 1, 1, 2, 2, cases[i].flags, 0);

		assert_int_equal(pkt_tcp_flags_bogus(cases[i].flags), cases[i].bogus);
		assert_string_equal(pkt_tcp_flags_str(cases[i].flags, text, sizeof(text)),
				    cases[i].text);
		snprintf(want, sizeof(want), "bogus TCP flags %s", cases[i].text);
		expect(b, n, cases[i].bogus ? PKT_MALFORMED : PKT_OK, cases[i].bogus ? want : "");
	}
}

/* A UDP datagram of 8 + 40 bytes cut as a sender would: frag = offset in bytes. */
static size_t frag(uint8_t *b, uint8_t proto, uint16_t off, bool more, const uint8_t *data,
		   size_t len)
{
	return frame_ipv4(b, proto, 1, 2, (uint16_t)((more ? 0x2000 : 0) | off / 8), data, len);
}

static void test_fragments(void **state)
{
	uint8_t b[256], data[64] = {0};
	struct pkt p;
	size_t n;

	put16(data, 1000);
	put16(data + 2, 53);
	put16(data + 4, 48);
	/* First: holds the UDP header, ports read, length not compared. */
	n = frag(b, PKT_PROTO_UDP, 0, true, data, 24);
	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_true(p.flags & PKT_F_FRAG);
	assert_true(p.flags & PKT_F_FRAG_FIRST);
	assert_true(p.flags & PKT_F_L4);
	assert_int_equal(p.dport, 53);
	assert_true(pkt_frag_allowed(&p, PKT_FRAG_FIRST, why, sizeof(why)));
	assert_false(pkt_frag_allowed(&p, PKT_FRAG_DROP, why, sizeof(why)));
	assert_string_equal(why, "first IPv4 fragment (offset 0) refused by the fragment policy");
	/* A first fragment whose UDP length says it is all there lies. */
	put16(data + 4, 24);
	n = frag(b, PKT_PROTO_UDP, 0, true, data, 24);
	expect(b, n, PKT_MALFORMED, "UDP length 24 but the first fragment alone has 24");

	/* Middle and last: no L4 header, no ports. */
	n = frag(b, PKT_PROTO_UDP, 24, true, data, 16);
	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_true(p.flags & PKT_F_FRAG_LATER);
	assert_false(p.flags & PKT_F_L4);
	assert_int_equal(p.frag_off, 24);
	assert_int_equal(p.sport, 0);
	assert_false(pkt_frag_allowed(&p, PKT_FRAG_FIRST, why, sizeof(why)));
	assert_string_equal(why, "later IPv4 fragment (offset 24) refused by the fragment policy");
	assert_true(pkt_frag_allowed(&p, PKT_FRAG_ALLOW, why, sizeof(why)));
	n = frag(b, PKT_PROTO_UDP, 40, false, data, 5);
	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_true(p.flags & PKT_F_FRAG_LATER);
	assert_int_equal(p.l4_len, 5);
	/* Not fragments at all pass every policy. */
	n = frame_udp(b, 1, 1, 2, 2, 0);
	assert_int_equal(parse(b, n, &p), PKT_OK);
	assert_true(pkt_frag_allowed(&p, PKT_FRAG_DROP, why, sizeof(why)));

	/* Tiny first fragments (RFC 1858) hold no whole header. */
	n = frag(b, PKT_PROTO_TCP, 0, true, data, 16);
	expect(b, n, PKT_MALFORMED, "first fragment of 16 bytes does not hold the TCP header");
	n = frag(b, PKT_PROTO_UDP, 0, true, data, 0);
	expect(b, n, PKT_MALFORMED, "empty IPv4 fragment");
	/* Overlapping the TCP header from offset 8 (RFC 1858), or 16. */
	n = frag(b, PKT_PROTO_TCP, 8, true, data, 16);
	expect(b, n, PKT_MALFORMED, "TCP fragment at offset 8 overlaps the TCP header");
	n = frag(b, PKT_PROTO_TCP, 16, false, data, 3);
	expect(b, n, PKT_MALFORMED, "TCP fragment at offset 16 overlaps the TCP header");
	n = frag(b, PKT_PROTO_TCP, 24, false, data, 3);
	expect(b, n, PKT_OK, NULL);
	/* Not a multiple of 8 with more to come; beyond 65535 (ping of death); DF and MF. */
	n = frag(b, PKT_PROTO_UDP, 24, true, data, 12);
	expect(b, n, PKT_MALFORMED,
	       "IPv4 fragment of 12 bytes, not a multiple of 8, with more to come");
	n = frag(b, PKT_PROTO_ICMP, 65528, false, data, 16);
	expect(b, n, PKT_MALFORMED, "IPv4 fragment at 65528 of 16 bytes ends beyond 65535");
	n = frame_ipv4(b, PKT_PROTO_UDP, 1, 2, 0x6000, data, 16);
	expect(b, n, PKT_MALFORMED, "IPv4 fragment with don't-fragment set");
	/* A fragmented ICMP error is refused: its quote could not be trusted. */
	n = frag(b, PKT_PROTO_ICMP, 0, true, (const uint8_t[16]){PKT_ICMP_UNREACH}, 16);
	expect(b, n, PKT_MALFORMED, "fragmented ICMP error");
}

static void test_vlan(void **state)
{
	uint8_t b[256], t[260];
	struct pkt p;
	size_t n = frame_tcp(b, 1, 1000, 2, 22, PKT_TCP_SYN, 0);

	memcpy(t, b, 12);
	put16(t + 12, PKT_ETHERTYPE_VLAN);
	put16(t + 14, 0x2000 | 100); /* priority 1, id 100 */
	memcpy(t + 16, b + 12, n - 12);
	assert_int_equal(parse(t, n + 4, &p), PKT_OK);
	assert_true(p.flags & PKT_F_VLAN);
	assert_int_equal(p.vlan_id, 100);
	assert_int_equal(p.l3_off, 18);
	assert_int_equal(p.dport, 22);
	expect(t, 17, PKT_MALFORMED, "truncated 802.1Q tag (17 bytes)");

	put16(t + 16, PKT_ETHERTYPE_VLAN);
	expect(t, n + 4, PKT_REFUSED, "stacked VLAN tags");
	put16(t + 12, PKT_ETHERTYPE_QINQ);
	expect(t, n + 4, PKT_REFUSED, "802.1ad (QinQ) tag");
}

static void test_other_ethertypes(void **state)
{
	uint8_t b[128] = {0};
	struct pkt p;
	size_t n = frame_eth(b, PKT_ETHERTYPE_IPV6);

	b[n] = 0x60;
	put16(b + n + 4, 8);
	b[n + 6] = 58;
	b[n + 7] = 255;
	b[n + 8] = 0xfe;
	b[n + 9] = 0x80;
	assert_int_equal(parse(b, n + 48, &p), PKT_REFUSED);
	assert_string_equal(why, "IPv6 not handled (next header 58)");
	assert_int_equal(p.l3, PKT_L3_IPV6);
	assert_int_equal(p.ip6_src[0], 0xfe);
	expect(b, n + 47, PKT_MALFORMED, "IPv6 payload length 8 beyond frame of 61 bytes");
	expect(b, n + 39, PKT_MALFORMED, "truncated IPv6 header (39 bytes)");

	put16(b + 12, 0x88cc); /* LLDP */
	expect(b, 60, PKT_REFUSED, "EtherType 0x88cc not handled");
	put16(b + 12, 46); /* an 802.3 length */
	expect(b, 60, PKT_REFUSED, "802.3 length field 46, not Ethernet II");
	b[6] = 0x01; /* group bit in the source MAC */
	expect(b, 60, PKT_MALFORMED, "multicast source MAC");
	uint8_t *big = calloc(1, 65536 + 32);

	assert_non_null(big);
	expect(big, 65536 + 32, PKT_MALFORMED, "frame of 65568 bytes too long");
	free(big);
}

static void test_captured(void **state)
{
	struct pkt p;

	assert_int_equal(parse(cap_echo_request, sizeof(cap_echo_request), &p), PKT_OK);
	assert_int_equal(p.src, IP4(127, 0, 0, 1));
	assert_int_equal(p.icmp_type, PKT_ICMP_ECHO);
	assert_int_equal(p.icmp_id, 0x1ccb);
	assert_int_equal(p.icmp_seq, 1);
	assert_int_equal(p.ip_len, 84);
	assert_true(p.flags & PKT_F_DF);
	assert_int_equal(parse(cap_echo_reply, sizeof(cap_echo_reply), &p), PKT_OK);
	assert_int_equal(p.icmp_type, PKT_ICMP_ECHO_REPLY);
	assert_int_equal(p.icmp_id, 0x1ccb);

	/* Linux's SYN carries options: a data offset of 40. */
	assert_int_equal(parse(cap_tcp_syn, sizeof(cap_tcp_syn), &p), PKT_OK);
	assert_int_equal(p.sport, 46732);
	assert_int_equal(p.dport, 9);
	assert_int_equal(p.tcp_flags, PKT_TCP_SYN);
	assert_int_equal(p.tcp_seq, 4161259744u);
	assert_int_equal(p.payload_off, 14 + 20 + 40);
	assert_int_equal(parse(cap_tcp_rst_ack, sizeof(cap_tcp_rst_ack), &p), PKT_OK);
	assert_int_equal(p.tcp_flags, PKT_TCP_RST | PKT_TCP_ACK);
	assert_int_equal(p.tcp_ack, 4161259745u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp),
	    cmocka_unit_test(test_udp),
	    cmocka_unit_test(test_icmp),
	    cmocka_unit_test(test_arp),
	    cmocka_unit_test(test_truncations),
	    cmocka_unit_test(test_ipv4_header),
	    cmocka_unit_test(test_tcp_header),
	    cmocka_unit_test(test_tcp_flags),
	    cmocka_unit_test(test_fragments),
	    cmocka_unit_test(test_vlan),
	    cmocka_unit_test(test_other_ethertypes),
	    cmocka_unit_test(test_captured),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
