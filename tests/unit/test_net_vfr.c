/*
 * The VFR's datapath on crafted frames: DHCP, ARP, switching, routing,
 * anti-spoofing and its log, the rules with conntrack, NAT, RSIP, restarts
 * on the same state region, configuration errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/vfr.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define CAP 64
#define T0 1000000
#define WALL 1700000000000ull

struct out {
	uint32_t port;
	size_t len;
	bool has_off;
	struct virtio_net_hdr off;
	uint8_t f[VFR_GSO_FRAME_MAX];
};

struct cap {
	struct out out[16];
	unsigned nout;
	char lines[64][256];
	unsigned nlines;
	struct ipfix_flow flows[16];
	char flow_src[16][VFR_NAME_MAX];
	unsigned nflows;
};

static void cb_emit(void *ctx, uint32_t port, const uint8_t *f, size_t len,
		    const struct virtio_net_hdr *off)
{
	struct cap *c = ctx;

	assert_true(len <= (off ? VFR_GSO_FRAME_MAX : VFR_FRAME_MAX));
	if (c->nout < 16) {
		c->out[c->nout].port = port;
		c->out[c->nout].len = len;
		c->out[c->nout].has_off = off != NULL;
		if (off)
			c->out[c->nout].off = *off;
		memcpy(c->out[c->nout].f, f, len);
	}
	c->nout++;
}

static void cb_log(void *ctx, const char *line)
{
	struct cap *c = ctx;

	if (c->nlines < 64)
		snprintf(c->lines[c->nlines], sizeof(c->lines[0]), "%s", line);
	c->nlines++;
}

static void cb_flow(void *ctx, const struct ipfix_flow *f)
{
	struct cap *c = ctx;

	if (c->nflows < 16) {
		c->flows[c->nflows] = *f;
		snprintf(c->flow_src[c->nflows], VFR_NAME_MAX, "%s",
			 f->src_domain ? f->src_domain : "-");
	}
	c->nflows++;
}

static void reset(struct cap *c) { memset(c, 0, sizeof(*c)); }

static const uint8_t up_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t up_gw_mac[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
static const uint8_t gw1[6] = {0x02, 0xd0, 0, 0, 0, 1};
static const uint8_t gw2[6] = {0x02, 0xd0, 0, 0, 0, 2};
static const uint8_t gw3[6] = {0x02, 0xd0, 0, 0, 0, 3};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void mac_of(uint32_t port, uint8_t *m)
{
	static const uint8_t base[6] = {0x52, 0x54, 0, 0, 0, 0};

	memcpy(m, base, 6);
	m[5] = (uint8_t)port;
}

struct fix {
	void *region;
	size_t len;
	struct vfr *v;
	struct cap c;
};

static void configure(struct fix *x)
{
	struct vfr_uplink_config u = {
	    .addr = IP(203, 0, 113, 7), .prefix = 24, .gateway = IP(203, 0, 113, 1)};
	struct vfr_net_config n1 = {.id = 1,
				    .name = "lan",
				    .subnet = IP(10, 0, 1, 0),
				    .prefix = 24,
				    .dns = IP(10, 0, 1, 53),
				    .mode = VFR_UPLINK_NAT};
	struct vfr_net_config n2 = {.id = 2,
				    .name = "dmz",
				    .subnet = IP(10, 0, 2, 0),
				    .prefix = 24,
				    .mode = VFR_UPLINK_ROUTED};
	struct vfr_net_config n3 = {.id = 3,
				    .name = "pub",
				    .subnet = IP(203, 0, 113, 0),
				    .prefix = 24,
				    .gateway = IP(203, 0, 113, 1),
				    .mode = VFR_UPLINK_RSIP};
	struct vfr_port_config p = {0};
	char err[160];

	memcpy(u.mac, up_mac, 6);
	assert_int_equal(vfr_set_uplink(x->v, &u, err, sizeof(err)), 0);
	assert_int_equal(vfr_add_net(x->v, &n1, err, sizeof(err)), 0);
	assert_int_equal(vfr_add_net(x->v, &n2, err, sizeof(err)), 0);
	assert_int_equal(vfr_add_net(x->v, &n3, err, sizeof(err)), 0);
	const struct {
		uint32_t id, net, addr;
		const char *name;
		uint16_t s, e;
	} ports[] = {
	    {2, 1, IP(10, 0, 1, 2), "web", 0, 0},
	    {3, 1, IP(10, 0, 1, 3), "db", 0, 0},
	    {4, 2, IP(10, 0, 2, 4), "app", 0, 0},
	    {5, 3, IP(203, 0, 113, 7), "r1", 20000, 20999},
	    {6, 3, IP(203, 0, 113, 7), "r2", 21000, 21999},
	};
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.id = ports[i].id;
		p.net = ports[i].net;
		p.addr = ports[i].addr;
		snprintf(p.name, sizeof(p.name), "%s", ports[i].name);
		mac_of(p.id, p.mac);
		p.slice.start = ports[i].s;
		p.slice.end = ports[i].e;
		assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), 0);
	}
}

static struct fix *fix_new(void)
{
	struct fix *x = calloc(1, sizeof(*x));
	struct vfr_callbacks cb = {.ctx = &x->c, .emit = cb_emit, .log = cb_log, .flow = cb_flow};
	char err[160];

	x->len = vfr_state_size(CAP);
	x->region = aligned_alloc(64, (x->len + 63) & ~(size_t)63);
	assert_int_equal(vfr_new(x->region, x->len, true, CAP, 7, &cb, &x->v, err, sizeof(err)), 0);
	configure(x);
	return x;
}

static void fix_free(struct fix *x)
{
	vfr_free(x->v);
	free(x->region);
	free(x);
}

/* ---- frame builders ---- */

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

/* The TCP/UDP checksum check: 0 when the segment at ip's payload sums right. */
static uint16_t l4_check(const uint8_t *ip)
{
	static uint8_t buf[12 + 65535];
	size_t ihl = (size_t)(ip[0] & 0xf) * 4, len = get16(ip + 2) - ihl;

	memcpy(buf, ip + 12, 8);
	buf[8] = 0;
	buf[9] = ip[9];
	put16(buf + 10, (uint16_t)len);
	memcpy(buf + 12, ip + ihl, len);
	return pkt_csum(buf, 12 + len);
}

static void fill_l4_csum(uint8_t *ip)
{
	size_t ihl = 20;
	uint8_t *c = ip + ihl + (ip[9] == PKT_PROTO_TCP ? 16 : ip[9] == PKT_PROTO_UDP ? 6 : 2);

	put16(c, 0);
	if (ip[9] == PKT_PROTO_ICMP)
		put16(c, pkt_csum(ip + ihl, get16(ip + 2) - ihl));
	else
		put16(c, l4_check(ip));
}

/* Ethernet + IPv4 header for l4len bytes of proto; returns the frame's length. */
static size_t ip_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint8_t proto,
		       uint32_t src, uint32_t dst, size_t l4len)
{
	uint8_t *ip = f + 14;

	memset(f, 0, 14 + 20 + l4len);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, 0x1234);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, pkt_csum(ip, 20));
	return 14 + 20 + l4len;
}

static size_t tcp_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint32_t src,
			uint16_t sp, uint32_t dst, uint16_t dp, uint8_t flags, uint32_t seq,
			uint32_t ack)
{
	size_t len = ip_frame(f, dmac, smac, PKT_PROTO_TCP, src, dst, 20);
	uint8_t *t = f + 34;

	put16(t, sp);
	put16(t + 2, dp);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 65535);
	fill_l4_csum(f + 14);
	return len;
}

static size_t udp_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint32_t src,
			uint16_t sp, uint32_t dst, uint16_t dp, const void *data, size_t n)
{
	size_t len = ip_frame(f, dmac, smac, PKT_PROTO_UDP, src, dst, 8 + n);
	uint8_t *u = f + 34;

	put16(u, sp);
	put16(u + 2, dp);
	put16(u + 4, (uint16_t)(8 + n));
	memcpy(u + 8, data, n);
	fill_l4_csum(f + 14);
	return len;
}

static size_t arp_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint16_t op,
			const uint8_t *sha, uint32_t spa, uint32_t tpa)
{
	uint8_t *a = f + 14;

	memset(f, 0, 60);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	put16(f + 12, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, sha, 6);
	put32(a + 14, spa);
	put32(a + 24, tpa);
	return 60;
}

/* A DHCP message of type t from port's MAC, requesting req (0: none). */
static size_t dhcp_frame(uint8_t *f, uint32_t port, uint8_t t, uint32_t req, bool bcast_flag)
{
	uint8_t m[6], b[300] = {0};
	size_t n = 240;

	mac_of(port, m);
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	put32(b + 4, 0xdeadbeef);
	if (bcast_flag)
		put16(b + 10, 0x8000);
	memcpy(b + 28, m, 6);
	put32(b + 236, 0x63825363);
	b[n++] = 53;
	b[n++] = 1;
	b[n++] = t;
	if (req) {
		b[n++] = 50;
		b[n++] = 4;
		put32(b + n, req);
		n += 4;
	}
	b[n++] = 255;
	return udp_frame(f, bcast, m, 0, 68, 0xffffffffu, 67, b, 300);
}

static void input(struct fix *x, uint32_t port, const uint8_t *f, size_t len, uint64_t now)
{
	vfr_input(x->v, port, f, len, now, WALL + now);
}

/* The DHCP option code in the reply at o (the frame), or NULL. */
static const uint8_t *dhcp_option(const struct out *o, uint8_t code)
{
	size_t i = 14 + 20 + 8 + 240;

	while (i + 1 < o->len && o->f[i] != 255) {
		if (o->f[i] == code)
			return o->f + i;
		i += 2 + o->f[i + 1];
	}
	return NULL;
}

static void assert_valid(const struct out *o)
{
	struct pkt p;
	char why[PKT_REASON_MAX];

	assert_int_equal(pkt_parse(o->f, o->len, &p, why, sizeof(why)), PKT_OK);
	if (p.l3 == PKT_L3_IPV4 && (p.proto == PKT_PROTO_TCP || p.proto == PKT_PROTO_UDP))
		assert_int_equal(l4_check(o->f + 14), 0);
	if (p.l3 == PKT_L3_IPV4 && p.proto == PKT_PROTO_ICMP)
		assert_int_equal(pkt_csum(o->f + 34, p.l4_len), 0);
}

/* ---- tests ---- */

static void test_dhcp(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX];
	const uint8_t *o;
	struct pkt p;
	size_t len;

	len = dhcp_frame(f, 2, 1, 0, true);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_valid(&x->c.out[0]);
	assert_memory_equal(x->c.out[0].f, bcast, 6);
	assert_memory_equal(x->c.out[0].f + 6, gw1, 6);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.src, IP(10, 0, 1, 1));
	assert_int_equal(p.dst, 0xffffffffu);
	assert_int_equal(p.sport, 67);
	assert_int_equal(p.dport, 68);
	o = x->c.out[0].f + 42;
	assert_int_equal(o[0], 2);
	assert_int_equal(get32(o + 4), 0xdeadbeef);
	assert_int_equal(get32(o + 16), IP(10, 0, 1, 2));
	assert_int_equal(dhcp_option(&x->c.out[0], 53)[2], 2);
	assert_int_equal(get32(dhcp_option(&x->c.out[0], 1) + 2), 0xffffff00u);
	assert_int_equal(get32(dhcp_option(&x->c.out[0], 3) + 2), IP(10, 0, 1, 1));
	assert_int_equal(get32(dhcp_option(&x->c.out[0], 54) + 2), IP(10, 0, 1, 1));
	assert_int_equal(get32(dhcp_option(&x->c.out[0], 6) + 2), IP(10, 0, 1, 53));
	assert_int_equal(get32(dhcp_option(&x->c.out[0], 51) + 2), 86400);
	assert_null(dhcp_option(&x->c.out[0], 224));

	/* REQUEST for its address: ACK, unicast without the broadcast flag. */
	reset(&x->c);
	len = dhcp_frame(f, 2, 3, IP(10, 0, 1, 2), false);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_valid(&x->c.out[0]);
	assert_int_equal(dhcp_option(&x->c.out[0], 53)[2], 5);
	assert_int_equal(get32(x->c.out[0].f + 42 + 16), IP(10, 0, 1, 2));
	assert_int_equal(x->c.out[0].f[5], 2); /* to the port's MAC */
	assert_int_equal(get32(x->c.out[0].f + 30), IP(10, 0, 1, 2));

	/* Another address: NAK, broadcast. */
	reset(&x->c);
	len = dhcp_frame(f, 2, 3, IP(10, 0, 1, 9), false);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(dhcp_option(&x->c.out[0], 53)[2], 6);
	assert_int_equal(get32(x->c.out[0].f + 42 + 16), 0);
	assert_int_equal(vfr_port_stats(x->v, 2)->dhcp_replies, 3);

	/* RSIP: the shared address and the slice as option 224. */
	reset(&x->c);
	len = dhcp_frame(f, 5, 1, 0, true);
	input(x, 5, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(get32(x->c.out[0].f + 42 + 16), IP(203, 0, 113, 7));
	o = dhcp_option(&x->c.out[0], 224);
	assert_non_null(o);
	assert_memory_equal(o, "\xe0\x04\x4e\x20\x52\x07", 6);
	assert_memory_equal(x->c.out[0].f + 6, gw3, 6);

	/* Truncated options: ignored, no crash. */
	reset(&x->c);
	len = dhcp_frame(f, 2, 1, 0, true);
	f[14 + 20 + 8 + 240 + 1] = 200; /* option 53's length beyond the message */
	fill_l4_csum(f + 14);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 0);
	fix_free(x);
}

static void test_arp(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[64], m2[6], m3[6];

	mac_of(2, m2);
	mac_of(3, m3);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, IP(10, 0, 1, 2), IP(10, 0, 1, 1)), T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_memory_equal(x->c.out[0].f, m2, 6);
	assert_memory_equal(x->c.out[0].f + 6, gw1, 6);
	assert_int_equal(get16(x->c.out[0].f + 20), 2);
	assert_memory_equal(x->c.out[0].f + 22, gw1, 6);
	assert_int_equal(get32(x->c.out[0].f + 28), IP(10, 0, 1, 1));
	assert_memory_equal(x->c.out[0].f + 32, m2, 6);
	assert_int_equal(get32(x->c.out[0].f + 38), IP(10, 0, 1, 2));

	reset(&x->c);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, IP(10, 0, 1, 2), IP(10, 0, 1, 3)), T0);
	assert_int_equal(x->c.nout, 1);
	assert_memory_equal(x->c.out[0].f + 22, m3, 6);

	/* Beyond the network: proxy ARP with the gateway's MAC. */
	reset(&x->c);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, IP(10, 0, 1, 2), IP(8, 8, 8, 8)), T0);
	assert_int_equal(x->c.nout, 1);
	assert_memory_equal(x->c.out[0].f + 22, gw1, 6);

	/* Gratuitous ARP, probes and replies: consumed. */
	reset(&x->c);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, IP(10, 0, 1, 2), IP(10, 0, 1, 2)), T0);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, 0, IP(10, 0, 1, 2)), T0);
	input(x, 2, f, arp_frame(f, bcast, m2, 2, m2, IP(10, 0, 1, 2), IP(10, 0, 1, 3)), T0);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(vfr_port_stats(x->v, 2)->arp_replies, 3);
	assert_int_equal(vfr_port_stats(x->v, 2)->spoofed, 0);

	/* The uplink: requests for its address answered, the sender learnt. */
	reset(&x->c);
	input(x, VFR_UPLINK, f,
	      arp_frame(f, bcast, up_gw_mac, 1, up_gw_mac, IP(203, 0, 113, 1), IP(203, 0, 113, 7)),
	      T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, VFR_UPLINK);
	assert_memory_equal(x->c.out[0].f, up_gw_mac, 6);
	assert_memory_equal(x->c.out[0].f + 22, up_mac, 6);
	assert_int_equal(get32(x->c.out[0].f + 28), IP(203, 0, 113, 7));
	/* Requests for other addresses: not answered. */
	reset(&x->c);
	input(x, VFR_UPLINK, f,
	      arp_frame(f, bcast, up_gw_mac, 1, up_gw_mac, IP(203, 0, 113, 1), IP(203, 0, 113, 8)),
	      T0);
	assert_int_equal(x->c.nout, 0);
	fix_free(x);
}

static void test_switch_and_route(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6], m3[6], m4[6];
	struct pkt p;
	size_t len;

	mac_of(2, m2);
	mac_of(3, m3);
	mac_of(4, m4);
	/* Same network, addressed to the gateway's MAC: switched, destination MAC rewritten. */
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 22, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 3);
	assert_memory_equal(x->c.out[0].f, m3, 6);
	assert_memory_equal(x->c.out[0].f + 6, m2, 6);
	assert_memory_equal(x->c.out[0].f + 12, f + 12, len - 12);
	assert_int_equal(vfr_port_stats(x->v, 3)->tx_frames, 1);

	/* Another network: routed, TTL one less, header checksum right. */
	reset(&x->c);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40001, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 4);
	assert_memory_equal(x->c.out[0].f, m4, 6);
	assert_memory_equal(x->c.out[0].f + 6, gw2, 6);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.ttl, 63);
	assert_valid(&x->c.out[0]);

	/* Wrong destination MAC, broadcast, TTL 1: not forwarded. */
	reset(&x->c);
	len = tcp_frame(f, m4, m2, IP(10, 0, 1, 2), 40002, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	len =
	    tcp_frame(f, bcast, m2, IP(10, 0, 1, 2), 40002, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40002, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	f[14 + 8] = 1;
	put16(f + 24, 0);
	put16(f + 24, pkt_csum(f + 14, 20));
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(vfr_port_stats(x->v, 2)->no_route, 3);

	/* Flow records when flows expire: names, interfaces, wall-clock times. */
	vfr_tick(x->v, T0 + 40000, WALL + T0 + 40000);
	assert_int_equal(x->c.nflows, 2);
	assert_string_equal(x->c.flow_src[0], "web");
	assert_int_equal(x->c.flows[0].src_port_if, 2);
	assert_int_equal(x->c.flows[0].start_ms, WALL + T0);
	assert_int_equal(x->c.flows[0].verdict, IPFIX_ACCEPT);
	fix_free(x);
}

static void test_spoofing_and_log(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6], m3[6];
	size_t len;
	unsigned i;

	mac_of(2, m2);
	mac_of(3, m3);
	len = tcp_frame(f, gw1, m3, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 3), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m3, IP(10, 0, 1, 2), IP(10, 0, 1, 1)), T0);
	input(x, 2, f, arp_frame(f, bcast, m2, 1, m2, IP(10, 0, 1, 3), IP(10, 0, 1, 1)), T0);
	/* 0.0.0.0 is for DHCP only. */
	len = tcp_frame(f, gw1, m2, 0, 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(vfr_port_stats(x->v, 2)->spoofed, 5);
	assert_int_equal(x->c.nlines, 5);
	assert_string_equal(x->c.lines[0], "spoofed: port 2 (web) sent from MAC 52:54:00:00:00:03");
	assert_string_equal(x->c.lines[1], "spoofed: port 2 (web) sent from address 10.0.1.3");

	/* A flood: at most the burst, then what was suppressed is said. */
	reset(&x->c);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 9), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	for (i = 0; i < 1000; i++)
		input(x, 2, f, len, T0 + 1 + i / 100);
	assert_true(x->c.nlines <= 21);
	assert_int_equal(vfr_port_stats(x->v, 2)->spoofed, 1005);
	reset(&x->c);
	input(x, 2, f, len, T0 + 10000);
	assert_int_equal(x->c.nlines, 2);
	assert_non_null(strstr(x->c.lines[0], "lines suppressed"));
	fix_free(x);
}

static void test_rules(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6], m3[6];
	uint32_t id, id2;
	char err[160];
	struct pkt p;
	size_t len;

	mac_of(2, m2);
	mac_of(3, m3);
	assert_int_equal(
	    vfr_rule_add(x->v, "drop proto tcp to domain db port 22", -1, &id, err, sizeof(err)),
	    0);
	len =
	    tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 22, PKT_TCP_SYN, 100, 0);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(vfr_port_stats(x->v, 2)->denied, 1);
	assert_int_equal(x->c.nlines, 1);
	assert_string_equal(x->c.lines[0],
			    "deny out tcp 10.0.1.2:40000 -> 10.0.1.3:22 port 2 (web) to port 3 "
			    "(db) rule 1");
	assert_int_equal(x->c.nflows, 1);
	assert_int_equal(x->c.flows[0].verdict, IPFIX_DROP);
	assert_int_equal(x->c.flows[0].rule, id);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 0);

	/* Reject: a RST back to the sender. */
	assert_int_equal(
	    vfr_rule_add(x->v, "reject proto tcp to domain db port 22", 0, &id2, err, sizeof(err)),
	    0);
	reset(&x->c);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_valid(&x->c.out[0]);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.proto, PKT_PROTO_TCP);
	assert_int_equal(p.tcp_flags, PKT_TCP_RST | PKT_TCP_ACK);
	assert_int_equal(p.tcp_ack, 101);
	assert_int_equal(p.sport, 22);
	assert_int_equal(p.dport, 40000);
	assert_int_equal(p.src, IP(10, 0, 1, 3));
	assert_memory_equal(x->c.out[0].f, m2, 6);
	assert_int_equal(vfr_port_stats(x->v, 2)->rejected, 1);

	/* UDP rejected: ICMP port unreachable. */
	assert_int_equal(vfr_rule_add(x->v, "reject proto udp", 0, &id, err, sizeof(err)), 0);
	reset(&x->c);
	len = udp_frame(f, gw1, m2, IP(10, 0, 1, 2), 5000, IP(10, 0, 1, 3), 53, "x", 1);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_valid(&x->c.out[0]);
	assert_int_equal(x->c.out[0].f[34], 3);
	assert_int_equal(x->c.out[0].f[35], 3);
	assert_int_equal(vfr_rule_remove(x->v, id, err, sizeof(err)), 0);

	/* Without the rules: through. */
	assert_int_equal(vfr_rule_remove(x->v, id2, err, sizeof(err)), 0);
	assert_int_equal(vfr_rule_remove(x->v, 1, err, sizeof(err)), 0);
	assert_int_equal(vfr_rule_remove(x->v, 1, err, sizeof(err)), -ENOENT);
	reset(&x->c);
	len =
	    tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 22, PKT_TCP_SYN, 100, 0);
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 3);

	/* Names that do not resolve are refused. */
	assert_int_equal(vfr_rule_add(x->v, "drop to domain nosuch", -1, &id, err, sizeof(err)),
			 -ENOENT);
	assert_int_not_equal(vfr_rule_add(x->v, "allow", -1, &id, err, sizeof(err)), 0);
	fix_free(x);
}

static void test_recheck(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6], m4[6];
	uint32_t id;
	char err[160];
	size_t len;

	mac_of(2, m2);
	mac_of(4, m4);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	len = tcp_frame(f, gw2, m4, IP(10, 0, 2, 4), 80, IP(10, 0, 1, 2), 40000,
			PKT_TCP_SYN | PKT_TCP_ACK, 500, 2);
	input(x, 4, f, len, T0 + 1);
	len =
	    tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_ACK, 2, 501);
	input(x, 2, f, len, T0 + 2);
	assert_int_equal(x->c.nout, 3);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);

	/* A rule the flow still passes: it stays. */
	assert_int_equal(
	    vfr_rule_add(x->v, "drop proto tcp to domain app port 22", -1, &id, err, sizeof(err)),
	    0);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	reset(&x->c);
	input(x, 2, f, len, T0 + 3);
	assert_int_equal(x->c.nout, 1);

	/*
	 * One it does not: the change itself checks nothing (traffic does not
	 * wait for the table); the flow's next packet is judged by the new rules
	 * before it passes, so it is dropped and the flow gone with its record.
	 */
	assert_int_equal(
	    vfr_rule_add(x->v, "drop proto tcp to domain app port 80", 0, &id, err, sizeof(err)),
	    0);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	reset(&x->c);
	input(x, 2, f, len, T0 + 4);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 0);
	assert_int_equal(x->c.nflows, 1); /* its record */
	assert_int_equal(x->c.flows[0].packets, 3); /* the dropped packet is not counted in it */
	assert_false(vfr_recheck_step(x->v, VFR_RECHECK_BUDGET));

	/* A flow that sends nothing after the change goes by the sweep between rounds. */
	assert_int_equal(vfr_rule_remove(x->v, id, err, sizeof(err)), 0);
	assert_false(vfr_recheck_step(x->v, VFR_RECHECK_BUDGET));
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40001, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0 + 5);
	len = tcp_frame(f, gw2, m4, IP(10, 0, 2, 4), 80, IP(10, 0, 1, 2), 40001,
			PKT_TCP_SYN | PKT_TCP_ACK, 500, 2);
	input(x, 4, f, len, T0 + 6);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	assert_int_equal(
	    vfr_rule_add(x->v, "drop proto tcp to domain app port 80", 0, &id, err, sizeof(err)),
	    0);
	reset(&x->c);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	while (vfr_recheck_step(x->v, 1))
		;
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 0);
	assert_int_equal(x->c.nflows, 1);
	assert_int_equal(x->c.flows[0].packets + x->c.flows[0].rev_packets, 2);
	fix_free(x);
}

/*
 * A TCP connection's record goes out once, when it closes (both FINs),
 * with what was counted until then; expiry later sends no second one.
 * Rules keep the ids their supervisor gives them.
 */
static void test_record_at_close(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6], m4[6];
	uint32_t id;
	char err[160];
	size_t len;

	mac_of(2, m2);
	mac_of(4, m4);
	assert_int_equal(vfr_rule_add_as(x->v, "accept proto tcp to domain app port 80", -1, 42, &id,
					 err, sizeof(err)),
			 0);
	assert_int_equal(id, 42);
	assert_int_equal(vfr_rule_add_as(x->v, "accept proto udp", -1, 42, &id, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "42"));
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_SYN, 1, 0);
	input(x, 2, f, len, T0);
	len = tcp_frame(f, gw2, m4, IP(10, 0, 2, 4), 80, IP(10, 0, 1, 2), 40000,
			PKT_TCP_SYN | PKT_TCP_ACK, 500, 2);
	input(x, 4, f, len, T0 + 1);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80,
			PKT_TCP_ACK | PKT_TCP_FIN, 2, 501);
	input(x, 2, f, len, T0 + 2);
	assert_int_equal(x->c.nflows, 0); /* one FIN: not over */
	len = tcp_frame(f, gw2, m4, IP(10, 0, 2, 4), 80, IP(10, 0, 1, 2), 40000,
			PKT_TCP_ACK | PKT_TCP_FIN, 501, 3);
	input(x, 4, f, len, T0 + 3);
	assert_int_equal(x->c.nout, 4);
	assert_int_equal(x->c.nflows, 1);
	assert_int_equal(x->c.flows[0].packets, 2);
	assert_int_equal(x->c.flows[0].rev_packets, 2);
	assert_int_equal(x->c.flows[0].bytes, 80);
	assert_int_equal(x->c.flows[0].src_port, 40000);
	assert_int_equal(x->c.flows[0].rule, 42);
	/* The last ACK passes; the flow leaves the table later with no second record. */
	len =
	    tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 2, 4), 80, PKT_TCP_ACK, 3, 502);
	input(x, 2, f, len, T0 + 4);
	assert_int_equal(x->c.nout, 5);
	vfr_tick(x->v, T0 + 3600 * 1000, WALL + 3600 * 1000);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 0);
	assert_int_equal(x->c.nflows, 1);
	fix_free(x);
}

/* Makes the uplink's gateway known (the VFR asks when it first needs it). */
static void learn_gateway(struct fix *x, uint64_t now)
{
	uint8_t f[64];

	input(x, VFR_UPLINK, f,
	      arp_frame(f, up_mac, up_gw_mac, 2, up_gw_mac, IP(203, 0, 113, 1), IP(203, 0, 113, 7)),
	      now);
}

static void test_nat(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m2[6];
	uint16_t ext;
	struct pkt p;
	size_t len;

	mac_of(2, m2);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(198, 51, 100, 9), 443, PKT_TCP_SYN,
			7, 0);
	/* The gateway unknown: an ARP request on the uplink, the frame dropped. */
	input(x, 2, f, len, T0);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, VFR_UPLINK);
	assert_int_equal(get16(x->c.out[0].f + 12), 0x0806);
	assert_int_equal(get32(x->c.out[0].f + 38), IP(203, 0, 113, 1));
	learn_gateway(x, T0 + 1);

	reset(&x->c);
	input(x, 2, f, len, T0 + 2);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, VFR_UPLINK);
	assert_memory_equal(x->c.out[0].f, up_gw_mac, 6);
	assert_memory_equal(x->c.out[0].f + 6, up_mac, 6);
	assert_valid(&x->c.out[0]);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.src, IP(203, 0, 113, 7));
	assert_int_equal(p.dst, IP(198, 51, 100, 9));
	assert_true(p.sport >= 1024);
	assert_int_equal(p.ttl, 63);
	ext = p.sport;

	/* The answer comes back to the domain's address and port. */
	reset(&x->c);
	len = tcp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7), ext,
			PKT_TCP_SYN | PKT_TCP_ACK, 900, 8);
	input(x, VFR_UPLINK, f, len, T0 + 3);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_memory_equal(x->c.out[0].f, m2, 6);
	assert_memory_equal(x->c.out[0].f + 6, gw1, 6);
	assert_valid(&x->c.out[0]);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.dst, IP(10, 0, 1, 2));
	assert_int_equal(p.dport, 40000);
	assert_int_equal(p.src, IP(198, 51, 100, 9));

	/* Unsolicited to another port of the address: no translation, dropped. */
	reset(&x->c);
	len = tcp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7),
			(uint16_t)(ext + 1), PKT_TCP_SYN, 900, 0);
	input(x, VFR_UPLINK, f, len, T0 + 4);
	assert_int_equal(x->c.nout, 0);

	/* A UDP flow with its own translation, and an ICMP error about it demultiplexed. */
	reset(&x->c);
	len = udp_frame(f, gw1, m2, IP(10, 0, 1, 2), 5353, IP(198, 51, 100, 9), 53, "q", 1);
	input(x, 2, f, len, T0 + 5);
	assert_int_equal(x->c.nout, 1);
	assert_valid(&x->c.out[0]);
	{
		uint8_t q[28];
		uint8_t e[128];
		const uint8_t *ip = x->c.out[0].f + 14;

		memcpy(q, ip, 28);
		reset(&x->c);
		len = ip_frame(e, up_mac, up_gw_mac, PKT_PROTO_ICMP, IP(198, 51, 100, 9),
			       IP(203, 0, 113, 7), 8 + 28);
		e[34] = 3;
		e[35] = 3;
		memcpy(e + 42, q, 28);
		fill_l4_csum(e + 14);
		input(x, VFR_UPLINK, e, len, T0 + 6);
		assert_int_equal(x->c.nout, 1);
		assert_int_equal(x->c.out[0].port, 2);
		assert_valid(&x->c.out[0]);
		assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
		assert_int_equal(p.inner.src, IP(10, 0, 1, 2));
		assert_int_equal(p.inner.sport, 5353);
		assert_int_equal(pkt_csum(x->c.out[0].f + 42, 20), 0);
	}
	fix_free(x);
}

static void test_rsip(void **state)
{
	struct fix *x = fix_new();
	uint8_t f[VFR_FRAME_MAX], m5[6], m6[6];
	size_t len;

	mac_of(5, m5);
	mac_of(6, m6);
	learn_gateway(x, T0);
	/* In the slice: byte for byte beyond the Ethernet header. */
	len = udp_frame(f, gw3, m5, IP(203, 0, 113, 7), 20005, IP(198, 51, 100, 9), 53, "abc", 3);
	input(x, 5, f, len, T0 + 1);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, VFR_UPLINK);
	assert_int_equal(x->c.out[0].len, len);
	assert_memory_equal(x->c.out[0].f + 14, f + 14, len - 14);
	assert_memory_equal(x->c.out[0].f, up_gw_mac, 6);

	/* Outside it: dropped, counted, logged. */
	reset(&x->c);
	len = udp_frame(f, gw3, m5, IP(203, 0, 113, 7), 21005, IP(198, 51, 100, 9), 53, "abc", 3);
	input(x, 5, f, len, T0 + 2);
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(vfr_port_stats(x->v, 5)->spoofed, 1);
	assert_non_null(strstr(x->c.lines[0], "outside its slice 20000-20999"));

	/* r2's flow, and the answers to each: demultiplexed by port. */
	len = udp_frame(f, gw3, m6, IP(203, 0, 113, 7), 21005, IP(198, 51, 100, 9), 53, "abc", 3);
	input(x, 6, f, len, T0 + 3);
	reset(&x->c);
	len = udp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 53, IP(203, 0, 113, 7), 21005,
			"r", 1);
	input(x, VFR_UPLINK, f, len, T0 + 4);
	len = udp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 53, IP(203, 0, 113, 7), 20005,
			"r", 1);
	input(x, VFR_UPLINK, f, len, T0 + 4);
	assert_int_equal(x->c.nout, 2);
	assert_int_equal(x->c.out[0].port, 6);
	assert_memory_equal(x->c.out[0].f, m6, 6);
	assert_int_equal(x->c.out[1].port, 5);
	assert_memory_equal(x->c.out[1].f + 14, f + 14, len - 14);

	/* An ICMP error, by the embedded header's source port. */
	{
		uint8_t q[64], e[128];

		udp_frame(q, gw3, m5, IP(203, 0, 113, 7), 20005, IP(198, 51, 100, 9), 53, "abc", 3);
		len = ip_frame(e, up_mac, up_gw_mac, PKT_PROTO_ICMP, IP(198, 51, 100, 9),
			       IP(203, 0, 113, 7), 8 + 28);
		e[34] = 3;
		e[35] = 3;
		memcpy(e + 42, q + 14, 28);
		fill_l4_csum(e + 14);
		reset(&x->c);
		input(x, VFR_UPLINK, e, len, T0 + 5);
		assert_int_equal(x->c.nout, 1);
		assert_int_equal(x->c.out[0].port, 5);
	}
	/* Nobody's port: dropped. */
	reset(&x->c);
	len = udp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 53, IP(203, 0, 113, 7), 30000,
			"r", 1);
	input(x, VFR_UPLINK, f, len, T0 + 6);
	assert_int_equal(x->c.nout, 0);
	fix_free(x);
}

static void test_restart(void **state)
{
	struct fix *x = fix_new();
	struct vfr_callbacks cb = {.ctx = &x->c, .emit = cb_emit, .log = cb_log, .flow = cb_flow};
	uint8_t f[VFR_FRAME_MAX], m2[6];
	char err[160];
	uint16_t ext;
	struct pkt p;
	size_t len;

	mac_of(2, m2);
	learn_gateway(x, T0);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(198, 51, 100, 9), 443, PKT_TCP_SYN,
			7, 0);
	input(x, 2, f, len, T0 + 1);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	ext = p.sport;
	len = tcp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7), ext,
			PKT_TCP_SYN | PKT_TCP_ACK, 900, 8);
	input(x, VFR_UPLINK, f, len, T0 + 2);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(198, 51, 100, 9), 443, PKT_TCP_ACK,
			8, 901);
	input(x, 2, f, len, T0 + 3);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	/* Port 2's driver said it uses 3 queue pairs; port 3's nothing. */
	assert_null(vfr_port_pairs_slot(x->v, 0));
	assert_null(vfr_port_pairs_slot(x->v, CT_MAX_DOMAINS));
	*vfr_port_pairs_slot(x->v, 2) = 3;

	/* A new process on the same region, configured again. */
	vfr_free(x->v);
	reset(&x->c);
	assert_int_equal(vfr_new(x->region, x->len, false, CAP, 7, &cb, &x->v, err, sizeof(err)),
			 0);
	configure(x);
	assert_int_equal(ct_count(vfr_conntrack(x->v)), 1);
	assert_int_equal(*vfr_port_pairs_slot(x->v, 2), 3);
	assert_int_equal(*vfr_port_pairs_slot(x->v, 3), 0);
	len = tcp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7), ext,
			PKT_TCP_ACK, 901, 8);
	input(x, VFR_UPLINK, f, len, T0 + 4);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_valid(&x->c.out[0]);
	assert_int_equal(get16(x->c.out[0].f + 36), 40000);

	/* The wrong capacity or a header that is not ours: refused. */
	vfr_free(x->v);
	assert_int_equal(
	    vfr_new(x->region, x->len, false, CAP / 2, 7, &cb, &x->v, err, sizeof(err)), -EINVAL);
	memset(x->region, 0x5a, 16);
	assert_int_equal(vfr_new(x->region, x->len, false, CAP, 7, &cb, &x->v, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "magic"));
	x->v = NULL;
	free(x->region);
	free(x);
}

static void test_corrupt_region(void **state)
{
	struct fix *x = fix_new();
	struct vfr_callbacks cb = {.ctx = &x->c, .emit = cb_emit, .log = cb_log, .flow = cb_flow};
	uint8_t f[VFR_FRAME_MAX], m2[6];
	size_t nat_off = x->len - (size_t)CAP * 32, i;
	char err[160];
	int round;

	mac_of(2, m2);
	srand(1);
	for (round = 0; round < 20; round++) {
		uint8_t *r = x->region;
		int ret;

		vfr_free(x->v);
		/* Garbage in the NAT entries, and in the flows now and then. */
		for (i = nat_off; i < x->len; i++)
			r[i] = (uint8_t)rand();
		if (round & 1)
			for (i = 0; i < 200; i++)
				r[64 + (size_t)rand() % (nat_off - 64)] = (uint8_t)rand();
		ret = vfr_new(x->region, x->len, false, CAP, 7, &cb, &x->v, err, sizeof(err));
		if (ret) {
			assert_int_equal(ret, -EINVAL);
			assert_int_equal(
			    vfr_new(x->region, x->len, true, CAP, 7, &cb, &x->v, err, sizeof(err)),
			    0);
		}
		configure(x);
		learn_gateway(x, T0);
		size_t len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), (uint16_t)(40000 + round),
				       IP(198, 51, 100, 9), 443, PKT_TCP_SYN, 7, 0);
		input(x, 2, f, len, T0 + 1);
		vfr_tick(x->v, T0 + 100000000, WALL);
	}
	fix_free(x);
}

static void test_port_errors(void **state)
{
	struct fix *x = fix_new();
	struct vfr_port_config p = {.id = 7, .name = "mail", .net = 1, .addr = IP(10, 0, 1, 2)};
	struct vfr_net_config n = {
	    .id = 9, .name = "lan2", .subnet = IP(10, 0, 1, 128), .prefix = 25};
	char err[160];

	mac_of(7, p.mac);
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "port 7: address 10.0.1.2 is taken by port 2 (web)");
	p.addr = IP(10, 0, 2, 9);
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "port 7 (mail): address 10.0.2.9 is not a host of lan");
	p.addr = IP(10, 0, 1, 7);
	mac_of(3, p.mac);
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "port 7: MAC 52:54:00:00:00:03 is taken by port 3 (db)");
	mac_of(7, p.mac);
	p.net = 42;
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "port 7 (mail): no network 42");
	p.net = 1;
	p.id = 0;
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EINVAL);
	p.id = CT_MAX_DOMAINS;
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EINVAL);
	p.id = 2;
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EEXIST);
	/* RSIP: a slice is needed and may not overlap. */
	p.id = 7;
	p.net = 3;
	p.addr = IP(203, 0, 113, 7);
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), -EINVAL);
	p.slice.start = 20500;
	p.slice.end = 21499;
	assert_int_not_equal(vfr_add_port(x->v, &p, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "overlaps domain 5"));
	p.slice.start = 22000;
	p.slice.end = 22999;
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), 0);
	*vfr_port_pairs_slot(x->v, 7) = 2;
	assert_int_equal(vfr_remove_port(x->v, 7), 0);
	assert_int_equal(*vfr_port_pairs_slot(x->v, 7), 0); /* the next domain's driver says its own */
	assert_int_equal(vfr_remove_port(x->v, 7), -ENOENT);
	/* Networks: overlapping subnets refused. */
	assert_int_equal(vfr_add_net(x->v, &n, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "overlaps network 1 (lan)"));
	fix_free(x);
}

/*
 * A TCP frame from src to dst of n payload bytes as a sender leaving the
 * checksum partial writes it (the pseudo-header's sum in the field), and
 * its header: NEEDS_CSUM, and cut at mss when mss is nonzero.
 */
static size_t tcp_partial(uint8_t *f, struct virtio_net_hdr *h, const uint8_t *dmac,
			  const uint8_t *smac, uint32_t src, uint16_t sp, uint32_t dst, uint16_t dp,
			  size_t n, uint16_t mss)
{
	size_t len = ip_frame(f, dmac, smac, PKT_PROTO_TCP, src, dst, 20 + n);
	uint8_t *t = f + 34, ph[12];

	put16(t, sp);
	put16(t + 2, dp);
	put32(t + 4, 1000);
	put32(t + 8, 1);
	t[12] = 5 << 4;
	t[13] = PKT_TCP_ACK | PKT_TCP_PSH;
	put16(t + 14, 512);
	for (size_t i = 0; i < n; i++)
		t[20 + i] = (uint8_t)(i * 13);
	memcpy(ph, f + 26, 8);
	ph[8] = 0;
	ph[9] = PKT_PROTO_TCP;
	put16(ph + 10, (uint16_t)(20 + n));
	put16(t + 16, (uint16_t)~pkt_csum(ph, 12));
	memset(h, 0, sizeof(*h));
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->csum_start = 34;
	h->csum_offset = 16;
	if (mss) {
		h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		h->gso_size = mss;
		h->hdr_len = 9999; /* the sender's hint: not trusted */
	}
	return len;
}

struct cut {
	unsigned n;
	size_t bytes;
	struct out o;
};

static void cut_frame(void *ctx, const uint8_t *f, size_t len)
{
	struct cut *c = ctx;

	c->o.len = len;
	memcpy(c->o.f, f, len);
	assert_valid(&c->o);
	c->n++;
	c->bytes += len;
}

static void input_off(struct fix *x, uint32_t port, const uint8_t *f, size_t len,
		      const struct virtio_net_hdr *h, uint64_t now)
{
	vfr_input_offload(x->v, port, f, len, h, now, WALL + now);
}

static void test_offload(void **state)
{
	struct fix *x = fix_new();
	static uint8_t f[VFR_GSO_FRAME_MAX], seg[1514];
	struct virtio_net_hdr h;
	uint8_t m2[6], m3[6];
	const struct vfr_port_stats *s2, *s3;
	size_t len;

	mac_of(2, m2);
	mac_of(3, m3);
	len = tcp_frame(f, m3, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 5001, PKT_TCP_SYN, 999, 0);
	input(x, 2, f, len, T0);
	len = tcp_frame(f, m2, m3, IP(10, 0, 1, 3), 5001, IP(10, 0, 1, 2), 40000,
			PKT_TCP_SYN | PKT_TCP_ACK, 0, 1000);
	input(x, 3, f, len, T0);
	assert_int_equal(x->c.nout, 2);

	/* A segment of 4000 bytes cut at 1448 goes to db whole, with its offload: 3 frames' worth. */
	reset(&x->c);
	s2 = vfr_port_stats(x->v, 2);
	s3 = vfr_port_stats(x->v, 3);
	uint64_t rx0 = s2->rx_frames, rxb0 = s2->rx_bytes, tx0 = s3->tx_frames, txb0 = s3->tx_bytes;
	len = tcp_partial(f, &h, m3, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 5001, 4000, 1448);
	input_off(x, 2, f, len, &h, T0 + 1);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 3);
	assert_int_equal(x->c.out[0].len, len);
	assert_memory_equal(x->c.out[0].f, f, len);
	assert_true(x->c.out[0].has_off);
	assert_int_equal(x->c.out[0].off.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(x->c.out[0].off.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(x->c.out[0].off.gso_size, 1448);
	assert_int_equal(x->c.out[0].off.csum_start, 34);
	assert_int_equal(x->c.out[0].off.csum_offset, 16);
	assert_int_equal(x->c.out[0].off.hdr_len, 54);
	assert_int_equal(s2->rx_frames - rx0, 3);
	assert_int_equal(s2->rx_bytes - rxb0, len + 2 * 54);
	assert_int_equal(s3->tx_frames - tx0, 3);
	assert_int_equal(s3->tx_bytes - txb0, len + 2 * 54);
	/* Cut as a receiver without TSO gets it: every frame sums right. */
	struct cut cut = {0};

	assert_int_equal(
	    offload_tcp4_segment(x->c.out[0].f, len, 1448, seg, sizeof(seg), cut_frame, &cut), 0);
	assert_int_equal(cut.n, 3);
	assert_int_equal(cut.bytes, len + 2 * 54);

	/* A partial checksum alone is carried too, and counts one frame. */
	reset(&x->c);
	len = tcp_partial(f, &h, m3, m2, IP(10, 0, 1, 2), 40000, IP(10, 0, 1, 3), 5001, 100, 0);
	input_off(x, 2, f, len, &h, T0 + 2);
	assert_int_equal(x->c.nout, 1);
	assert_true(x->c.out[0].has_off);
	assert_int_equal(x->c.out[0].off.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(offload_csum_complete(x->c.out[0].f, len, 34, 16), 0);
	assert_valid(&x->c.out[0]);

	/*
	 * The flow's record (made as web's port goes) counts every frame on the
	 * wire: 1 SYN + 3 + 1 out, and their bytes.
	 */
	reset(&x->c);
	assert_int_equal(vfr_remove_port(x->v, 2), 0);
	assert_int_equal(x->c.nflows, 1);
	assert_int_equal(x->c.flows[0].packets, 5);
	assert_int_equal(x->c.flows[0].bytes, 40 + (4000 + 3 * 40) + (100 + 40));
	assert_int_equal(x->c.flows[0].rev_packets, 1);

	/* What the VFR does not carry is malformed, and nothing leaves (db's port here). */
	reset(&x->c);
	uint64_t bad0 = s3->malformed;
	len = tcp_partial(f, &h, m2, m3, IP(10, 0, 1, 3), 5001, IP(10, 0, 1, 2), 40000, 3000, 1448);
	h.csum_offset = 6;
	input_off(x, 3, f, len, &h, T0 + 3); /* the checksum somewhere else */
	h.csum_offset = 16;
	h.gso_size = 1461;
	input_off(x, 3, f, len, &h, T0 + 3); /* frames beyond the MTU */
	h.gso_size = 1448;
	h.gso_type = 3;
	input_off(x, 3, f, len, &h, T0 + 3); /* UDP fragmentation offload */
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.flags = 0;
	input_off(x, 3, f, len, &h, T0 + 3); /* a segment without its partial checksum */
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	input_off(x, 3, f, len, &h, T0 + 3); /* 3 KiB and no segment */
	input(x, 3, f, len, T0 + 3);	     /* the same without a header */
	assert_int_equal(x->c.nout, 0);
	assert_int_equal(s3->malformed - bad0, 6);
	assert_non_null(strstr(x->c.lines[0], "not the packet's TCP or UDP checksum"));
	fix_free(x);
}

/* NAT rewrites a partial checksum's pseudo-header sum: the receiver's completion sums right. */
static void test_offload_nat(void **state)
{
	struct fix *x = fix_new();
	static uint8_t f[VFR_GSO_FRAME_MAX];
	struct virtio_net_hdr h;
	uint8_t m2[6];
	uint16_t ext;
	struct pkt p;
	size_t len;

	mac_of(2, m2);
	len = tcp_frame(f, gw1, m2, IP(10, 0, 1, 2), 40000, IP(198, 51, 100, 9), 443, PKT_TCP_SYN, 999, 0);
	input(x, 2, f, len, T0); /* the gateway asked for, the SYN dropped */
	learn_gateway(x, T0 + 1);
	reset(&x->c);
	input(x, 2, f, len, T0 + 2);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	ext = p.sport;
	len = tcp_frame(f, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7), ext,
			PKT_TCP_SYN | PKT_TCP_ACK, 900, 1000);
	input(x, VFR_UPLINK, f, len, T0 + 2);

	reset(&x->c);
	len = tcp_partial(f, &h, gw1, m2, IP(10, 0, 1, 2), 40000, IP(198, 51, 100, 9), 443, 5000, 1448);
	input_off(x, 2, f, len, &h, T0 + 3);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, VFR_UPLINK);
	assert_true(x->c.out[0].has_off);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.src, IP(203, 0, 113, 7));
	assert_int_equal(p.sport, ext);
	assert_int_equal(offload_csum_complete(x->c.out[0].f, x->c.out[0].len, 34, 16), 0);
	assert_valid(&x->c.out[0]);
	assert_int_equal(vfr_port_stats(x->v, VFR_UPLINK)->tx_frames, 1 + 1 + 4); /* ARP, SYN, segment */

	/* Inbound, from the uplink's side, translated back. */
	reset(&x->c);
	len = tcp_partial(f, &h, up_mac, up_gw_mac, IP(198, 51, 100, 9), 443, IP(203, 0, 113, 7), ext,
			  600, 0);
	input_off(x, VFR_UPLINK, f, len, &h, T0 + 4);
	assert_int_equal(x->c.nout, 1);
	assert_int_equal(x->c.out[0].port, 2);
	assert_int_equal(pkt_parse(x->c.out[0].f, x->c.out[0].len, &p, NULL, 0), PKT_OK);
	assert_int_equal(p.dst, IP(10, 0, 1, 2));
	assert_int_equal(p.dport, 40000);
	assert_int_equal(offload_csum_complete(x->c.out[0].f, x->c.out[0].len, 34, 16), 0);
	assert_valid(&x->c.out[0]);
	fix_free(x);
}

static void test_rate_limit(void **state)
{
	struct fix *x = fix_new();
	struct vfr_port_config p = {
	    .id = 8, .name = "noisy", .net = 1, .addr = IP(10, 0, 1, 8), .rate_pps = 10};
	uint8_t f[64];
	char err[160];
	unsigned i;

	mac_of(8, p.mac);
	assert_int_equal(vfr_add_port(x->v, &p, err, sizeof(err)), 0);
	for (i = 0; i < 30; i++)
		input(x, 8, f, arp_frame(f, bcast, p.mac, 1, p.mac, p.addr, IP(10, 0, 1, 1)), T0);
	assert_int_equal(x->c.nout, 10);
	assert_int_equal(vfr_port_stats(x->v, 8)->rate_limited, 20);
	/* A second later: ten more. */
	reset(&x->c);
	for (i = 0; i < 30; i++)
		input(x, 8, f, arp_frame(f, bcast, p.mac, 1, p.mac, p.addr, IP(10, 0, 1, 1)),
		      T0 + 1000);
	assert_int_equal(x->c.nout, 10);
	fix_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dhcp),
	    cmocka_unit_test(test_arp),
	    cmocka_unit_test(test_switch_and_route),
	    cmocka_unit_test(test_spoofing_and_log),
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_recheck),
	    cmocka_unit_test(test_record_at_close),
	    cmocka_unit_test(test_nat),
	    cmocka_unit_test(test_rsip),
	    cmocka_unit_test(test_restart),
	    cmocka_unit_test(test_corrupt_region),
	    cmocka_unit_test(test_port_errors),
	    cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_offload),
	    cmocka_unit_test(test_offload_nat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
