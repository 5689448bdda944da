/*
 * Frames built byte by byte for the VFR's tests (test_net_packet.c,
 * test_net_conntrack.c): Ethernet II, IPv4 with a right header checksum,
 * TCP, UDP and ICMP. Every helper returns the frame's length.
 */
#ifndef DOMUS_TEST_NET_FRAMES_H
#define DOMUS_TEST_NET_FRAMES_H

#include <stdint.h>
#include <string.h>

#include "net/packet.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define ETH 14

static inline void put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static inline void put32(uint8_t *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b + 2, (uint16_t)v);
}

static inline size_t frame_eth(uint8_t *b, uint16_t type)
{
	static const uint8_t dst[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x02};
	static const uint8_t src[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x01};

	memcpy(b, dst, 6);
	memcpy(b + 6, src, 6);
	put16(b + 12, type);
	return ETH;
}

/* Recomputes the IPv4 header checksum of the header at b. */
static inline void ip_fix_csum(uint8_t *b)
{
	size_t ihl = (b[0] & 0xfu) * 4;

	b[10] = b[11] = 0;
	put16(b + 10, pkt_csum(b, ihl));
}

/* Ethernet + IPv4 (no options) + l4[0, l4len); frag is the flags/offset field. */
static inline size_t frame_ipv4(uint8_t *b, uint8_t proto, uint32_t src, uint32_t dst,
				uint16_t frag, const uint8_t *l4, size_t l4len)
{
	uint8_t *ip = b + frame_eth(b, PKT_ETHERTYPE_IPV4);

	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, 0x1234);
	put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	ip_fix_csum(ip);
	memcpy(ip + 20, l4, l4len);
	return ETH + 20 + l4len;
}

static inline size_t frame_tcp(uint8_t *b, uint32_t src, uint16_t sport, uint32_t dst,
			       uint16_t dport, uint8_t flags, size_t paylen)
{
	uint8_t l4[20 + 256] = {0};

	put16(l4, sport);
	put16(l4 + 2, dport);
	put32(l4 + 4, 1000);
	put32(l4 + 8, flags & PKT_TCP_ACK ? 2000 : 0);
	l4[12] = 5 << 4;
	l4[13] = flags;
	put16(l4 + 14, 65535);
	return frame_ipv4(b, PKT_PROTO_TCP, src, dst, 0, l4, 20 + paylen);
}

static inline size_t frame_udp(uint8_t *b, uint32_t src, uint16_t sport, uint32_t dst,
			       uint16_t dport, size_t paylen)
{
	uint8_t l4[8 + 256] = {0};

	put16(l4, sport);
	put16(l4 + 2, dport);
	put16(l4 + 4, (uint16_t)(8 + paylen));
	return frame_ipv4(b, PKT_PROTO_UDP, src, dst, 0, l4, 8 + paylen);
}

static inline size_t frame_echo(uint8_t *b, uint32_t src, uint32_t dst, uint8_t type, uint16_t id,
				uint16_t seq)
{
	uint8_t l4[16] = {type, 0};

	put16(l4 + 4, id);
	put16(l4 + 6, seq);
	put16(l4 + 2, pkt_csum(l4, sizeof(l4)));
	return frame_ipv4(b, PKT_PROTO_ICMP, src, dst, 0, l4, sizeof(l4));
}

/* An ICMP error from src to dst quoting the IPv4 datagram of the frame orig (header + 8). */
static inline size_t frame_icmp_error(uint8_t *b, uint32_t src, uint32_t dst, uint8_t type,
				      uint8_t code, const uint8_t *orig)
{
	uint8_t l4[8 + 28] = {type, code};

	memcpy(l4 + 8, orig + ETH, 28);
	put16(l4 + 2, pkt_csum(l4, sizeof(l4)));
	return frame_ipv4(b, PKT_PROTO_ICMP, src, dst, 0, l4, sizeof(l4));
}

#endif
