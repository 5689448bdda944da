/* The Virtual Firewall Router's datapath (vfr.h, docs/net.md "The datapath"). */
#include "net/vfr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VFR_STATE_MAGIC 0x64766672u /* "dvfr" */
#define VFR_STATE_VERSION 2
#define VFR_NAT_PORT_MIN 1024 /* external ports NAT hands out: 1024-65535 */
#define VFR_NEIGH_MAX 16      /* uplink neighbours (the gateway, hosts on the link) */
#define VFR_NEIGH_TTL_MS 300000
#define VFR_ARP_RETRY_MS 1000 /* at most one ARP request per neighbour a second */
#define VFR_LOG_RATE 10	      /* log lines a second ... */
#define VFR_LOG_BURST 20      /* ... and at once */
#define VFR_LEASE_S 86400
#define VFR_LINE_MAX 256
#define NIL UINT32_MAX

/*
 * The state region: this header, the conntrack region (ct_init's layout),
 * then the NAT entries. Host byte order; the version changes with any
 * layout change.
 */
struct vfr_state_hdr {
	uint32_t magic, version;
	uint32_t ct_capacity, nat_capacity;
	uint64_t ct_off, nat_off, size;
	uint16_t port_pairs[CT_MAX_DOMAINS]; /* vfr_port_pairs_slot */
};

/*
 * One NAT translation, endpoint independent: (proto, in_addr, in_port) of a
 * domain is seen outside as (uplink address, ext_port), for every remote.
 * refs counts the conntrack flows using it; the last one leaving frees it.
 */
struct vfr_nat_entry {
	uint8_t used, proto;
	uint16_t ext_port;
	uint32_t in_addr;
	uint16_t in_port, pad;
	uint32_t domain, refs;
	uint32_t pad2;
	uint64_t last_ms;
};

struct vfr_net {
	bool used;
	struct vfr_net_config cfg;
	uint32_t mask, gw;
	uint8_t gw_mac[6];
};

struct vfr_port {
	bool used;
	struct vfr_port_config cfg;
	struct vfr_net *net;
	struct vfr_port_stats st;
	uint64_t tokens, last_ms; /* rate limit: milli-frames */
};

struct vfr_neigh {
	uint32_t addr;
	bool resolved;
	uint8_t mac[6];
	uint64_t seen_ms, asked_ms;
};

struct vfr {
	struct vfr_callbacks cb;
	struct vfr_state_hdr *hdr;
	struct ct_table *ct;
	struct vfr_ruleset *rules;
	struct rsip_table rsip;

	struct vfr_net nets[VFR_NETWORKS_MAX];
	struct vfr_port ports[VFR_MAX_PORTS];
	uint16_t port_of[CT_MAX_DOMAINS]; /* domain id -> index into ports + 1, 0: none */

	bool has_uplink;
	struct vfr_uplink_config up;
	uint32_t up_mask;
	struct vfr_port_stats up_st;
	struct vfr_neigh neigh[VFR_NEIGH_MAX];

	/* NAT: entries in the region, indexes on the heap (rebuilt on attach). */
	struct vfr_nat_entry *nat;
	uint32_t nat_cap, nat_count, nat_per_domain;
	uint32_t *nat_by_ext; /* [3][65536]: ICMP, TCP, UDP -> entry or NIL */
	uint32_t *nat_bucket, *nat_next, nat_nbuckets;
	uint32_t nat_dom[CT_MAX_DOMAINS];
	uint16_t nat_cursor[3];
	uint64_t seed;

	/* Rate-limited log: milli-lines. */
	uint64_t log_tokens, log_ms;
	uint64_t log_suppressed;
	bool log_started;

	int64_t wall_off; /* wall_ms - now of the latest call */

	/*
	 * The frame being forwarded, and what its sender left undone (a
	 * partial checksum, a segment to cut): it leaves with the frame, which
	 * counts as the wire frames it stands for.
	 */
	uint8_t fwd[VFR_GSO_FRAME_MAX];
	bool in_has_off;
	struct virtio_net_hdr in_off;
	struct offload_segs in_segs;
	uint8_t ans[VFR_FRAME_MAX]; /* answers: ARP, DHCP, RST, ICMP */
};

/* ---- bytes and checksums ---- */

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

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

/* RFC 1624: the checksum at c after a 16-bit word of what it covers went from o to n. */
static void csum_fix16(uint8_t *c, uint16_t o, uint16_t n)
{
	uint32_t s = (uint32_t)(uint16_t)~get16(c) + (uint16_t)~o + n;

	put16(c, pkt_sum_fold(s));
}

static void csum_fix32(uint8_t *c, uint32_t o, uint32_t n)
{
	csum_fix16(c, (uint16_t)(o >> 16), (uint16_t)(n >> 16));
	csum_fix16(c, (uint16_t)o, (uint16_t)n);
}

static void ip_csum(uint8_t *ip)
{
	put16(ip + 10, 0);
	put16(ip + 10, pkt_csum(ip, (size_t)(ip[0] & 0xf) * 4));
}

/* TCP/UDP checksum over the pseudo header and l4[0, len), written at l4 + at. */
static void l4_csum(uint8_t *l4, size_t len, size_t at, uint32_t src, uint32_t dst, uint8_t proto)
{
	uint32_t s =
	    (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + (uint32_t)len;
	uint16_t c;

	put16(l4 + at, 0);
	c = pkt_sum_fold(pkt_sum(s, l4, len));
	if (proto == PKT_PROTO_UDP && !c)
		c = 0xffff;
	put16(l4 + at, c);
}

static void ip_header(uint8_t *ip, uint16_t total, uint8_t proto, uint32_t src, uint32_t dst)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, total);
	put16(ip + 4, 0);
	put16(ip + 6, 0);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	ip_csum(ip);
}

static void eth_header(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16(f + 12, type);
}

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static bool mac_eq(const uint8_t *a, const uint8_t *b) { return !memcmp(a, b, 6); }

static bool mac_unicast_ok(const uint8_t *m)
{
	static const uint8_t zero[6];

	return !(m[0] & 1) && !mac_eq(m, zero);
}

static uint32_t prefix_mask(uint8_t prefix)
{
	return prefix ? (uint32_t)(0xffffffffu << (32 - prefix)) : 0;
}

static const char *ip_str(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
	return buf;
}

static const char *mac_str(const uint8_t *m, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

__attribute__((format(printf, 4, 5))) static int fail(int ret, char *err, size_t errlen,
						      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* ---- lookups ---- */

static struct vfr_port *port_get(struct vfr *v, uint32_t id)
{
	if (id == VFR_UPLINK || id >= CT_MAX_DOMAINS || !v->port_of[id])
		return NULL;
	return &v->ports[v->port_of[id] - 1];
}

static const char *port_name(struct vfr *v, uint32_t id)
{
	struct vfr_port *p = port_get(v, id);

	return p ? p->cfg.name : NULL;
}

static struct vfr_net *net_get(struct vfr *v, uint32_t id)
{
	unsigned i;

	for (i = 0; i < VFR_NETWORKS_MAX; i++)
		if (v->nets[i].used && v->nets[i].cfg.id == id)
			return &v->nets[i];
	return NULL;
}

/* The network (not RSIP: those share the uplink's address) whose subnet holds addr. */
static struct vfr_net *net_of_addr(struct vfr *v, uint32_t addr)
{
	unsigned i;

	for (i = 0; i < VFR_NETWORKS_MAX; i++) {
		struct vfr_net *n = &v->nets[i];

		if (n->used && n->cfg.mode != VFR_UPLINK_RSIP && (addr & n->mask) == n->cfg.subnet)
			return n;
	}
	return NULL;
}

/* The port of network n with address addr. */
static struct vfr_port *port_of_addr(struct vfr *v, const struct vfr_net *n, uint32_t addr)
{
	unsigned i;

	for (i = 0; i < VFR_MAX_PORTS; i++)
		if (v->ports[i].used && v->ports[i].net == n && v->ports[i].cfg.addr == addr)
			return &v->ports[i];
	return NULL;
}

/* ---- the rate-limited log ---- */

static void bucket_fill(uint64_t *tokens, uint64_t *last, uint64_t now, uint64_t per_ms,
			uint64_t cap)
{
	if (now > *last) {
		uint64_t add = (now - *last) * per_ms;

		*tokens = add >= cap || *tokens + add >= cap ? cap : *tokens + add;
	}
	*last = now;
}

__attribute__((format(printf, 3, 4))) static void vlog(struct vfr *v, uint64_t now, const char *fmt,
						       ...)
{
	char line[VFR_LINE_MAX];
	va_list ap;

	if (!v->cb.log)
		return;
	if (!v->log_started) {
		v->log_started = true;
		v->log_tokens = VFR_LOG_BURST * 1000;
		v->log_ms = now;
	}
	bucket_fill(&v->log_tokens, &v->log_ms, now, VFR_LOG_RATE, VFR_LOG_BURST * 1000);
	if (v->log_tokens < 1000) {
		v->log_suppressed++;
		return;
	}
	v->log_tokens -= 1000;
	if (v->log_suppressed) {
		snprintf(line, sizeof(line), "%llu lines suppressed",
			 (unsigned long long)v->log_suppressed);
		v->log_suppressed = 0;
		v->cb.log(v->cb.ctx, line);
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->cb.log(v->cb.ctx, line);
}

static const char *proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case PKT_PROTO_TCP:
		return "tcp";
	case PKT_PROTO_UDP:
		return "udp";
	case PKT_PROTO_ICMP:
		return "icmp";
	}
	snprintf(buf, len, "proto %u", proto);
	return buf;
}

/* "port 2 (web)", or "uplink". */
static const char *port_label(struct vfr *v, uint32_t id, char *buf, size_t len)
{
	const char *name = port_name(v, id);

	if (id == VFR_UPLINK)
		snprintf(buf, len, "uplink");
	else
		snprintf(buf, len, "port %u (%s)", id, name ? name : "?");
	return buf;
}

/* ---- emitting ---- */

static void emit(struct vfr *v, uint32_t port, const uint8_t *f, size_t len)
{
	/* Only the forwarded frame carries its sender's offloads; answers are the VFR's own. */
	const struct virtio_net_hdr *off = f == v->fwd && v->in_has_off ? &v->in_off : NULL;
	bool segment = off && off->gso_type != VIRTIO_NET_HDR_GSO_NONE;
	struct vfr_port_stats *st;
	struct vfr_port *p;

	if (port == VFR_UPLINK) {
		st = &v->up_st;
	} else {
		p = port_get(v, port);
		if (!p)
			return;
		st = &p->st;
	}
	st->tx_frames += segment ? v->in_segs.count : 1;
	st->tx_bytes += segment ? v->in_segs.wire_bytes : len;
	if (v->cb.emit)
		v->cb.emit(v->cb.ctx, port, f, len, off);
}

/* Pads a frame to Ethernet's 60 bytes (without FCS). */
static size_t pad60(uint8_t *f, size_t len)
{
	if (len < 60) {
		memset(f + len, 0, 60 - len);
		len = 60;
	}
	return len;
}

static void arp_frame(uint8_t *f, uint16_t op, const uint8_t *eth_dst, const uint8_t *sha,
		      uint32_t spa, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = f + PKT_ETH_HLEN;

	eth_header(f, eth_dst, sha, PKT_ETHERTYPE_ARP);
	put16(a, 1);
	put16(a + 2, PKT_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, sha, 6);
	put32(a + 14, spa);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
}

/* ---- uplink neighbours ---- */

static struct vfr_neigh *neigh_find(struct vfr *v, uint32_t addr)
{
	unsigned i;

	for (i = 0; i < VFR_NEIGH_MAX; i++)
		if (v->neigh[i].addr == addr && addr)
			return &v->neigh[i];
	return NULL;
}

/* The entry for addr, taking the least recently seen one when there is none. */
static struct vfr_neigh *neigh_slot(struct vfr *v, uint32_t addr)
{
	struct vfr_neigh *n = neigh_find(v, addr), *old = &v->neigh[0];
	unsigned i;

	if (n)
		return n;
	for (i = 0; i < VFR_NEIGH_MAX; i++) {
		if (!v->neigh[i].addr) {
			old = &v->neigh[i];
			break;
		}
		if (v->neigh[i].seen_ms < old->seen_ms)
			old = &v->neigh[i];
	}
	memset(old, 0, sizeof(*old));
	old->addr = addr;
	return old;
}

static void neigh_learn(struct vfr *v, uint32_t addr, const uint8_t *mac, uint64_t now)
{
	struct vfr_neigh *n;

	if (!addr || !mac_unicast_ok(mac) || (addr & v->up_mask) != (v->up.addr & v->up_mask) ||
	    addr == v->up.addr)
		return;
	n = neigh_slot(v, addr);
	memcpy(n->mac, mac, 6);
	n->resolved = true;
	n->seen_ms = now;
}

/* An ARP request on the uplink for addr, at most one a second per neighbour. */
static void neigh_ask(struct vfr *v, struct vfr_neigh *n, uint64_t now)
{
	static const uint8_t zero[6];

	if (n->asked_ms && now >= n->asked_ms && now - n->asked_ms < VFR_ARP_RETRY_MS)
		return;
	n->asked_ms = now ? now : 1;
	arp_frame(v->ans, 1, bcast_mac, v->up.mac, v->up.addr, zero, n->addr);
	emit(v, VFR_UPLINK, v->ans, pad60(v->ans, 42));
}

/*
 * Sends f (an IPv4 frame to dst) on the uplink, to the gateway or, on the
 * link, to dst itself. Unresolved: asks by ARP and drops (TCP retransmits).
 */
static bool uplink_send(struct vfr *v, uint8_t *f, size_t len, uint32_t dst, uint64_t now)
{
	uint32_t hop = dst;
	struct vfr_neigh *n;

	if (v->up.gateway && (dst & v->up_mask) != (v->up.addr & v->up_mask))
		hop = v->up.gateway;
	if ((hop & v->up_mask) != (v->up.addr & v->up_mask))
		return false; /* no gateway and not on the link */
	n = neigh_find(v, hop);
	if (!n) {
		n = neigh_slot(v, hop);
		n->seen_ms = now;
	}
	if (!n->resolved) {
		neigh_ask(v, n, now);
		return false;
	}
	/* A stale entry is still used while it is asked for again. */
	if (now > n->seen_ms && now - n->seen_ms > VFR_NEIGH_TTL_MS)
		neigh_ask(v, n, now);
	eth_header(f, n->mac, v->up.mac, PKT_ETHERTYPE_IPV4);
	emit(v, VFR_UPLINK, f, len);
	return true;
}

/* ---- NAT ---- */

static int nat_pidx(uint8_t proto)
{
	switch (proto) {
	case PKT_PROTO_ICMP:
		return 0;
	case PKT_PROTO_TCP:
		return 1;
	case PKT_PROTO_UDP:
		return 2;
	}
	return -1;
}

static uint32_t nat_hash(const struct vfr *v, uint8_t proto, uint32_t addr, uint16_t port)
{
	uint64_t x = v->seed ^ ((uint64_t)addr << 24) ^ ((uint64_t)port << 8) ^ proto;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x & (v->nat_nbuckets - 1);
}

static uint32_t nat_find_in(const struct vfr *v, uint8_t proto, uint32_t addr, uint16_t port)
{
	uint32_t i;

	if (!v->nat_nbuckets)
		return NIL;
	for (i = v->nat_bucket[nat_hash(v, proto, addr, port)]; i != NIL; i = v->nat_next[i]) {
		const struct vfr_nat_entry *e = &v->nat[i];

		if (e->proto == proto && e->in_addr == addr && e->in_port == port)
			return i;
	}
	return NIL;
}

static uint32_t nat_find_ext(const struct vfr *v, uint8_t proto, uint16_t port)
{
	int pi = nat_pidx(proto);

	return pi < 0 || !v->nat_by_ext ? NIL : v->nat_by_ext[(size_t)pi * 65536 + port];
}

static void nat_link(struct vfr *v, uint32_t i)
{
	struct vfr_nat_entry *e = &v->nat[i];
	uint32_t b = nat_hash(v, e->proto, e->in_addr, e->in_port);

	v->nat_next[i] = v->nat_bucket[b];
	v->nat_bucket[b] = i;
	v->nat_by_ext[(size_t)nat_pidx(e->proto) * 65536 + e->ext_port] = i;
	v->nat_count++;
	v->nat_dom[e->domain]++;
}

static void nat_free(struct vfr *v, uint32_t i)
{
	struct vfr_nat_entry *e = &v->nat[i];
	uint32_t *pp = &v->nat_bucket[nat_hash(v, e->proto, e->in_addr, e->in_port)];

	if (!e->used)
		return;
	while (*pp != NIL && *pp != i)
		pp = &v->nat_next[*pp];
	if (*pp == i)
		*pp = v->nat_next[i];
	v->nat_by_ext[(size_t)nat_pidx(e->proto) * 65536 + e->ext_port] = NIL;
	v->nat_count--;
	v->nat_dom[e->domain]--;
	memset(e, 0, sizeof(*e));
}

/* The translation for a domain's (proto, addr, port), made when there is none. NIL: refused. */
static uint32_t nat_get(struct vfr *v, uint32_t domain, uint8_t proto, uint32_t addr, uint16_t port,
			uint64_t now)
{
	uint32_t i = nat_find_in(v, proto, addr, port), n, owner;
	int pi = nat_pidx(proto);
	uint16_t p;

	if (i != NIL || pi < 0)
		return i;
	if (v->nat_count >= v->nat_cap || v->nat_dom[domain] >= v->nat_per_domain)
		return NIL;
	for (i = 0; i < v->nat_cap && v->nat[i].used; i++)
		;
	if (i == v->nat_cap)
		return NIL;
	/* The next free external port after the last one given; never one of an RSIP slice. */
	p = v->nat_cursor[pi];
	for (n = 0; n < 65536 - VFR_NAT_PORT_MIN; n++) {
		p = p < VFR_NAT_PORT_MIN || p == 65535 ? VFR_NAT_PORT_MIN : (uint16_t)(p + 1);
		if (v->nat_by_ext[(size_t)pi * 65536 + p] == NIL && rsip_owner(&v->rsip, p, &owner))
			break;
	}
	if (n == 65536 - VFR_NAT_PORT_MIN)
		return NIL;
	v->nat_cursor[pi] = p;
	v->nat[i] = (struct vfr_nat_entry){.used = 1,
					   .proto = proto,
					   .ext_port = p,
					   .in_addr = addr,
					   .in_port = port,
					   .domain = domain,
					   .last_ms = now};
	nat_link(v, i);
	return i;
}

/* The inside endpoint of a conntrack flow that crossed a NAT, or false. */
static bool nat_flow_key(const struct ct_flow *f, uint32_t *domain, uint32_t *addr, uint16_t *port)
{
	if (f->ends.src_domain && !f->ends.dst_domain) {
		*domain = f->ends.src_domain;
		*addr = f->src;
		*port = f->sport;
		return true;
	}
	if (f->ends.dst_domain && !f->ends.src_domain) {
		*domain = f->ends.dst_domain;
		*addr = f->dst;
		*port = f->dport;
		return true;
	}
	return false;
}

static uint32_t nat_of_flow(const struct vfr *v, const struct ct_flow *f)
{
	uint32_t domain, addr, i;
	uint16_t port;

	if (!nat_flow_key(f, &domain, &addr, &port))
		return NIL;
	i = nat_find_in(v, f->proto, addr, port);
	return i != NIL && v->nat[i].domain == domain ? i : NIL;
}

/* Whether the frame being forwarded has its L4 checksum left partial by its sender. */
static bool in_partial(const struct vfr *v)
{
	return v->in_has_off && (v->in_off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
}

/*
 * Rewrites the source (src) or destination address and port of the IPv4
 * packet in f to addr/port, with its checksums; for an ICMP error the
 * quoted datagram's other end too (its destination when the source is
 * rewritten: the quote goes the other way).
 */
static void nat_rewrite(uint8_t *f, const struct pkt *p, bool src, uint32_t addr, uint16_t port,
			bool partial)
{
	uint8_t *ip = f + p->l3_off, *l4 = f + p->l4_off;
	uint32_t old = get32(ip + (src ? 12 : 16));

	put32(ip + (src ? 12 : 16), addr);
	ip_csum(ip);
	if (!(p->flags & PKT_F_L4))
		return;
	if (p->proto == PKT_PROTO_TCP || p->proto == PKT_PROTO_UDP) {
		uint8_t *c = l4 + (p->proto == PKT_PROTO_TCP ? 16 : 6);
		uint8_t *pp = l4 + (src ? 0 : 2);
		uint16_t oport = get16(pp);

		put16(pp, port);
		if (partial) {
			/*
			 * The field holds the pseudo-header's sum, not yet
			 * complemented, for the receiver to complete over the
			 * ports and all: only the address in that sum changes.
			 */
			put16(c, (uint16_t)~get16(c));
			csum_fix32(c, old, addr);
			put16(c, (uint16_t)~get16(c));
			return;
		}
		if (p->proto == PKT_PROTO_UDP && !get16(c))
			return; /* no checksum */
		csum_fix32(c, old, addr);
		csum_fix16(c, oport, port);
		if (p->proto == PKT_PROTO_UDP && !get16(c))
			put16(c, 0xffff);
		return;
	}
	if (p->proto != PKT_PROTO_ICMP)
		return;
	if (p->flags & PKT_F_ICMP_ERROR) {
		uint8_t *in = l4 + 8, *inl4;
		size_t ihl;

		if (p->l4_len < 8 + 20)
			return;
		ihl = (size_t)(in[0] & 0xf) * 4;
		if (ihl < 20 || p->l4_len < 8 + ihl + 8)
			return;
		inl4 = in + ihl;
		put32(in + (src ? 16 : 12), addr);
		ip_csum(in);
		if (p->inner.proto == PKT_PROTO_ICMP) {
			put16(inl4 + 4, port);
		} else {
			uint16_t op = get16(inl4 + (src ? 2 : 0));
			uint32_t oa = src ? p->inner.dst : p->inner.src;

			put16(inl4 + (src ? 2 : 0), port);
			if (p->inner.proto == PKT_PROTO_UDP && get16(inl4 + 6)) {
				csum_fix32(inl4 + 6, oa, addr);
				csum_fix16(inl4 + 6, op, port);
			}
		}
	} else {
		put16(l4 + 4, port);
	}
	put16(l4 + 2, 0);
	put16(l4 + 2, pkt_csum(l4, p->l4_len));
}

/* ---- the state region ---- */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static void region_layout(uint32_t ct_capacity, struct vfr_state_hdr *h)
{
	h->magic = VFR_STATE_MAGIC;
	h->version = VFR_STATE_VERSION;
	h->ct_capacity = ct_capacity;
	h->nat_capacity = ct_capacity;
	h->ct_off = align8(sizeof(*h));
	h->nat_off = align8(h->ct_off + ct_region_size(ct_capacity));
	h->size = h->nat_off + (uint64_t)ct_capacity * sizeof(struct vfr_nat_entry);
}

size_t vfr_state_size(uint32_t ct_capacity)
{
	struct vfr_state_hdr h;

	region_layout(ct_capacity, &h);
	return (size_t)h.size;
}

static uint32_t per_domain_limit(uint32_t capacity) { return capacity / 4 ? capacity / 4 : 1; }

/* Drops NAT entries that make no sense or that no flow uses; indexes and refs rebuilt. */
static uint32_t nat_rebuild(struct vfr *v)
{
	uint32_t i, dropped = 0;

	v->nat_count = 0;
	memset(v->nat_dom, 0, sizeof(v->nat_dom));
	for (i = 0; i < v->nat_nbuckets; i++)
		v->nat_bucket[i] = NIL;
	for (i = 0; i < 3u * 65536; i++)
		v->nat_by_ext[i] = NIL;
	for (i = 0; i < v->nat_cap; i++) {
		struct vfr_nat_entry *e = &v->nat[i];

		if (!e->used && !memcmp(e, &(struct vfr_nat_entry){0}, sizeof(*e)))
			continue;
		if (e->used != 1 || nat_pidx(e->proto) < 0 || e->ext_port < VFR_NAT_PORT_MIN ||
		    !e->domain || e->domain >= CT_MAX_DOMAINS ||
		    nat_find_ext(v, e->proto, e->ext_port) != NIL ||
		    nat_find_in(v, e->proto, e->in_addr, e->in_port) != NIL ||
		    v->nat_dom[e->domain] >= v->nat_per_domain) {
			memset(e, 0, sizeof(*e));
			dropped++;
			continue;
		}
		e->refs = 0;
		nat_link(v, i);
	}
	for (i = 0; i < ct_capacity(v->ct); i++) {
		const struct ct_flow *f = ct_flow_get(v->ct, i);
		uint32_t n;

		if (f && (n = nat_of_flow(v, f)) != NIL)
			v->nat[n].refs++;
	}
	for (i = 0; i < v->nat_cap; i++) {
		if (v->nat[i].used && !v->nat[i].refs) {
			nat_free(v, i);
			dropped++;
		}
	}
	return dropped;
}

static void flow_done(void *ctx, const struct ct_flow *f);

int vfr_new(void *state, size_t len, bool fresh, uint32_t capacity, uint64_t seed,
	    const struct vfr_callbacks *cb, struct vfr **out, char *err, size_t errlen)
{
	struct vfr_state_hdr want, *h = state;
	struct rsip_config rc = {0};
	struct vfr *v;
	uint32_t nb;
	int ret;

	if (!state || ((uintptr_t)state & 7) || !capacity || capacity > (1u << 22))
		return fail(-EINVAL, err, errlen, "bad state region or capacity %u", capacity);
	region_layout(capacity, &want);
	if (len < want.size)
		return fail(-EINVAL, err, errlen, "state of %zu bytes, %u flows take %llu", len,
			    capacity, (unsigned long long)want.size);
	if (!fresh &&
	    (h->magic != want.magic || h->version != want.version ||
	     h->ct_capacity != want.ct_capacity || h->nat_capacity != want.nat_capacity ||
	     h->ct_off != want.ct_off || h->nat_off != want.nat_off || h->size != want.size))
		return fail(-EINVAL, err, errlen,
			    "state has magic 0x%08x version %u capacity %u, not a VFR of %u flows",
			    h->magic, h->version, h->ct_capacity, capacity);
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (cb)
		v->cb = *cb;
	v->seed = seed;
	v->nat_cap = capacity;
	v->nat_per_domain = per_domain_limit(capacity);
	for (nb = 1; nb < capacity; nb <<= 1)
		;
	v->nat_nbuckets = nb;
	v->nat_by_ext = malloc(3u * 65536 * sizeof(uint32_t));
	v->nat_bucket = malloc(nb * sizeof(uint32_t));
	v->nat_next = malloc(capacity * sizeof(uint32_t));
	if (!v->nat_by_ext || !v->nat_bucket || !v->nat_next) {
		ret = -ENOMEM;
		goto out;
	}
	ret = rsip_init(&v->rsip, &rc, err, errlen);
	if (ret)
		goto out;
	ret = vfr_ruleset_new(VFR_DROP, &v->rules);
	if (ret)
		goto out_rsip;
	if (fresh) {
		memset(state, 0, (size_t)want.size);
		*h = want;
		ret = ct_init((uint8_t *)state + want.ct_off, ct_region_size(capacity), capacity,
			      per_domain_limit(capacity), seed, &v->ct);
		if (ret)
			goto out_rules;
	} else {
		ret = ct_attach((uint8_t *)state + want.ct_off, ct_region_size(capacity), &v->ct,
				err, errlen);
		if (ret)
			goto out_rules;
		if (ct_capacity(v->ct) != capacity) {
			ret = fail(-EINVAL, err, errlen, "conntrack capacity %u, not %u",
				   ct_capacity(v->ct), capacity);
			ct_free(v->ct);
			goto out_rules;
		}
	}
	v->hdr = h;
	v->nat = (struct vfr_nat_entry *)((uint8_t *)state + want.nat_off);
	nat_rebuild(v);
	ct_set_done(v->ct, flow_done, v);
	*out = v;
	return 0;
out_rules:
	vfr_ruleset_free(v->rules);
out_rsip:
	rsip_free(&v->rsip);
out:
	free(v->nat_by_ext);
	free(v->nat_bucket);
	free(v->nat_next);
	free(v);
	return ret;
}

void vfr_free(struct vfr *v)
{
	if (!v)
		return;
	/* The flows stay in the region for the next process: no records for them here. */
	ct_set_done(v->ct, NULL, NULL);
	ct_free(v->ct);
	vfr_ruleset_free(v->rules);
	rsip_free(&v->rsip);
	free(v->nat_by_ext);
	free(v->nat_bucket);
	free(v->nat_next);
	free(v);
}

/* ---- configuration ---- */

int vfr_set_uplink(struct vfr *v, const struct vfr_uplink_config *u, char *err, size_t errlen)
{
	char a[16];

	if (!mac_unicast_ok(u->mac))
		return fail(-EINVAL, err, errlen, "uplink: MAC must be unicast and nonzero");
	if (!u->addr || !u->prefix || u->prefix > 32)
		return fail(-EINVAL, err, errlen, "uplink: address %s/%u",
			    ip_str(u->addr, a, sizeof(a)), u->prefix);
	if (u->gateway && ((u->gateway ^ u->addr) & prefix_mask(u->prefix)))
		return fail(-EINVAL, err, errlen, "uplink: gateway %s is not on the link",
			    ip_str(u->gateway, a, sizeof(a)));
	v->up = *u;
	v->up_mask = prefix_mask(u->prefix);
	v->has_uplink = true;
	memset(v->neigh, 0, sizeof(v->neigh));
	return 0;
}

int vfr_add_net(struct vfr *v, const struct vfr_net_config *n, char *err, size_t errlen)
{
	struct vfr_net *slot = NULL;
	uint32_t mask = prefix_mask(n->prefix), gw;
	char a[16], b[16];
	unsigned i;

	if (!n->id)
		return fail(-EINVAL, err, errlen, "network id 0");
	if (!n->name[0] || !memchr(n->name, 0, sizeof(n->name)))
		return fail(-EINVAL, err, errlen, "network %u: no name", n->id);
	if (n->prefix < 1 || n->prefix > 30 || (n->subnet & ~mask))
		return fail(-EINVAL, err, errlen, "network %u (%s): bad subnet %s/%u", n->id,
			    n->name, ip_str(n->subnet, a, sizeof(a)), n->prefix);
	if (n->mode > VFR_UPLINK_RSIP || n->default_action > VFR_REJECT ||
	    n->frag_policy > PKT_FRAG_ALLOW)
		return fail(-EINVAL, err, errlen, "network %u (%s): bad mode, action or policy",
			    n->id, n->name);
	gw = n->gateway ? n->gateway : n->subnet + 1;
	if ((gw & mask) != n->subnet || gw == n->subnet || gw == (n->subnet | ~mask))
		return fail(-EINVAL, err, errlen, "network %u (%s): gateway %s outside %s/%u",
			    n->id, n->name, ip_str(gw, a, sizeof(a)),
			    ip_str(n->subnet, b, sizeof(b)), n->prefix);
	for (i = 0; i < VFR_NETWORKS_MAX; i++) {
		struct vfr_net *o = &v->nets[i];

		if (!o->used) {
			if (!slot)
				slot = o;
			continue;
		}
		if (o->cfg.id == n->id || !strcmp(o->cfg.name, n->name))
			return fail(-EEXIST, err, errlen, "network %u (%s): exists as %u (%s)",
				    n->id, n->name, o->cfg.id, o->cfg.name);
		/* Routing needs every address in one network at most; RSIP ones share the uplink's.
		 */
		if (n->mode != VFR_UPLINK_RSIP && o->cfg.mode != VFR_UPLINK_RSIP &&
		    ((n->subnet ^ o->cfg.subnet) & mask & o->mask) == 0)
			return fail(-EEXIST, err, errlen,
				    "network %u (%s): %s/%u overlaps network %u (%s)", n->id,
				    n->name, ip_str(n->subnet, a, sizeof(a)), n->prefix, o->cfg.id,
				    o->cfg.name);
	}
	if (!slot)
		return fail(-ENOSPC, err, errlen, "network %u (%s): %d networks already", n->id,
			    n->name, VFR_NETWORKS_MAX);
	if (vfr_ruleset_set_default(v->rules, n->id, n->default_action))
		return fail(-ENOSPC, err, errlen, "network %u (%s): no room for its default", n->id,
			    n->name);
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->cfg = *n;
	slot->cfg.gateway = gw;
	slot->mask = mask;
	slot->gw = gw;
	/* The gateway's MAC: locally administered, unicast, 02:d0 then the network id. */
	slot->gw_mac[0] = 0x02;
	slot->gw_mac[1] = 0xd0;
	put32(slot->gw_mac + 2, n->id);
	return 0;
}

/* Whether mac is one the VFR itself uses (a gateway's, the uplink's). */
static bool mac_is_vfr(const struct vfr *v, const uint8_t *mac)
{
	unsigned i;

	if (v->has_uplink && mac_eq(mac, v->up.mac))
		return true;
	for (i = 0; i < VFR_NETWORKS_MAX; i++)
		if (v->nets[i].used && mac_eq(mac, v->nets[i].gw_mac))
			return true;
	return false;
}

/* A port's bucket holds a tenth of a second of its rate, at least 10 frames (milli-frames). */
static uint64_t port_burst(const struct vfr_port *p)
{
	uint64_t b = p->cfg.rate_pps / 10;

	return (b > 10 ? b : 10) * 1000;
}

int vfr_add_port(struct vfr *v, const struct vfr_port_config *p, char *err, size_t errlen)
{
	struct vfr_port *slot = NULL;
	struct vfr_net *n;
	char a[16], m[18];
	unsigned i;
	int ret;

	if (!p->id || p->id >= CT_MAX_DOMAINS)
		return fail(-EINVAL, err, errlen, "port %u: id out of range 1-%u", p->id,
			    CT_MAX_DOMAINS - 1);
	if (!p->name[0] || !memchr(p->name, 0, sizeof(p->name)))
		return fail(-EINVAL, err, errlen, "port %u: no name", p->id);
	if (v->port_of[p->id])
		return fail(-EEXIST, err, errlen, "port %u: exists (%s)", p->id,
			    port_name(v, p->id));
	n = net_get(v, p->net);
	if (!n)
		return fail(-EINVAL, err, errlen, "port %u (%s): no network %u", p->id, p->name,
			    p->net);
	if (!mac_unicast_ok(p->mac))
		return fail(-EINVAL, err, errlen, "port %u (%s): MAC %s is not unicast", p->id,
			    p->name, mac_str(p->mac, m, sizeof(m)));
	if (mac_is_vfr(v, p->mac))
		return fail(-EEXIST, err, errlen, "port %u (%s): MAC %s is the VFR's own", p->id,
			    p->name, mac_str(p->mac, m, sizeof(m)));
	if (n->cfg.mode != VFR_UPLINK_RSIP &&
	    ((p->addr & n->mask) != n->cfg.subnet || p->addr == n->cfg.subnet ||
	     p->addr == (n->cfg.subnet | ~n->mask) || p->addr == n->gw))
		return fail(-EINVAL, err, errlen, "port %u (%s): address %s is not a host of %s",
			    p->id, p->name, ip_str(p->addr, a, sizeof(a)), n->cfg.name);
	for (i = 0; i < VFR_MAX_PORTS; i++) {
		struct vfr_port *o = &v->ports[i];

		if (!o->used) {
			if (!slot)
				slot = o;
			continue;
		}
		if (!strcmp(o->cfg.name, p->name))
			return fail(-EEXIST, err, errlen, "port %u: name %s is taken by port %u",
				    p->id, p->name, o->cfg.id);
		if (mac_eq(o->cfg.mac, p->mac))
			return fail(-EEXIST, err, errlen,
				    "port %u: MAC %s is taken by port %u (%s)", p->id,
				    mac_str(p->mac, m, sizeof(m)), o->cfg.id, o->cfg.name);
		if (o->net == n && o->cfg.addr == p->addr && n->cfg.mode != VFR_UPLINK_RSIP)
			return fail(-EEXIST, err, errlen,
				    "port %u: address %s is taken by port %u (%s)", p->id,
				    ip_str(p->addr, a, sizeof(a)), o->cfg.id, o->cfg.name);
	}
	if (!slot)
		return fail(-ENOSPC, err, errlen, "port %u: %d ports already", p->id,
			    VFR_MAX_PORTS);
	if (n->cfg.mode == VFR_UPLINK_RSIP) {
		char why[160];

		if (!p->slice.start || p->slice.end < p->slice.start)
			return fail(-EINVAL, err, errlen, "port %u (%s): RSIP needs a slice", p->id,
				    p->name);
		ret = rsip_request(&v->rsip, p->id, p->slice, why, sizeof(why));
		if (ret)
			return fail(ret, err, errlen, "port %u (%s): %s", p->id, p->name, why);
	}
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->cfg = *p;
	slot->net = n;
	slot->tokens = port_burst(slot);
	v->port_of[p->id] = (uint16_t)(slot - v->ports + 1);
	return 0;
}

int vfr_remove_port(struct vfr *v, uint32_t id)
{
	struct vfr_port *p = port_get(v, id);
	uint32_t i;

	if (!p)
		return -ENOENT;
	for (i = 0; i < ct_capacity(v->ct); i++) {
		const struct ct_flow *f = ct_flow_get(v->ct, i);

		if (f && (f->ends.src_domain == id || f->ends.dst_domain == id))
			ct_remove(v->ct, i); /* its record, and its NAT reference, go */
	}
	for (i = 0; i < v->nat_cap; i++)
		if (v->nat[i].used && v->nat[i].domain == id)
			nat_free(v, i);
	if (p->net->cfg.mode == VFR_UPLINK_RSIP)
		rsip_release(&v->rsip, id);
	memset(p, 0, sizeof(*p));
	v->port_of[id] = 0;
	v->hdr->port_pairs[id] = 0;
	return 0;
}

uint16_t *vfr_port_pairs_slot(struct vfr *v, uint32_t id)
{
	return id > 0 && id < CT_MAX_DOMAINS ? &v->hdr->port_pairs[id] : NULL;
}

static int lookup(void *ctx, enum vfr_name_kind kind, const char *name, uint32_t *id)
{
	struct vfr *v = ctx;
	unsigned i;

	if (kind == VFR_NAME_DOMAIN) {
		for (i = 0; i < VFR_MAX_PORTS; i++)
			if (v->ports[i].used && !strcmp(v->ports[i].cfg.name, name)) {
				*id = v->ports[i].cfg.id;
				return 0;
			}
	} else {
		for (i = 0; i < VFR_NETWORKS_MAX; i++)
			if (v->nets[i].used && !strcmp(v->nets[i].cfg.name, name)) {
				*id = v->nets[i].cfg.id;
				return 0;
			}
	}
	return -ENOENT;
}

int vfr_rule_add(struct vfr *v, const char *text, long pos, uint32_t *id, char *err, size_t errlen)
{
	return vfr_rule_add_as(v, text, pos, 0, id, err, errlen);
}

int vfr_rule_add_as(struct vfr *v, const char *text, long pos, uint32_t want, uint32_t *id,
		    char *err, size_t errlen)
{
	struct vfr_rule r;
	int ret;

	ret = vfr_rule_parse(text, &r, err, errlen);
	if (ret)
		return ret;
	ret = vfr_rule_resolve(&r, lookup, v, err, errlen);
	if (ret)
		return ret;
	ret = vfr_ruleset_insert_as(v->rules, pos < 0 ? SIZE_MAX : (size_t)pos, &r, want, id);
	if (ret == -EEXIST)
		return fail(ret, err, errlen, "there is a rule %u already", want);
	if (ret)
		return fail(ret, err, errlen, "%d rules already", VFR_RULES_MAX);
	ct_rules_changed(v->ct, v->rules);
	return 0;
}

int vfr_rule_remove(struct vfr *v, uint32_t id, char *err, size_t errlen)
{
	if (vfr_ruleset_remove(v->rules, id))
		return fail(-ENOENT, err, errlen, "no rule %u", id);
	ct_rules_changed(v->ct, v->rules);
	return 0;
}

const struct vfr_ruleset *vfr_rules(const struct vfr *v) { return v->rules; }

const struct vfr_port_stats *vfr_port_stats(const struct vfr *v, uint32_t port)
{
	if (port == VFR_UPLINK)
		return v->has_uplink ? &v->up_st : NULL;
	if (port >= CT_MAX_DOMAINS || !v->port_of[port])
		return NULL;
	return &v->ports[v->port_of[port] - 1].st;
}

const struct ct_table *vfr_conntrack(const struct vfr *v) { return v->ct; }

/* ---- flow records ---- */

static uint64_t wall_of(const struct vfr *v, uint64_t mono)
{
	int64_t w = (int64_t)mono + v->wall_off;

	return w < 0 ? 0 : (uint64_t)w;
}

/* A flow as its record: the domains' names, times on the wall clock, the rule that accepts it now. */
static void flow_record(struct vfr *v, const struct ct_flow *f, struct ipfix_flow *r)
{
	struct vfr_match_input in;
	uint32_t rule = 0;

	*r = (struct ipfix_flow){
	    .start_ms = wall_of(v, f->start_ms),
	    .end_ms = wall_of(v, f->last_ms),
	    .src_domain = port_name(v, f->ends.src_domain),
	    .dst_domain = port_name(v, f->ends.dst_domain),
	    .src_port_if = f->ends.src_domain,
	    .dst_port_if = f->ends.dst_domain,
	    .src_addr = f->src,
	    .dst_addr = f->dst,
	    .src_port = f->sport,
	    .dst_port = f->dport,
	    .proto = f->proto,
	    .packets = f->packets[0],
	    .bytes = f->bytes[0],
	    .rev_packets = f->packets[1],
	    .rev_bytes = f->bytes[1],
	    .verdict = IPFIX_ACCEPT,
	};
	/* The flow keeps no rule id. */
	ct_flow_match_input(f, &in);
	vfr_rules_match(v->rules, &in, &rule);
	r->rule = rule;
}

static void flow_done(void *ctx, const struct ct_flow *f)
{
	struct vfr *v = ctx;
	uint32_t n = nat_of_flow(v, f);
	struct ipfix_flow r;

	if (n != NIL && v->nat[n].refs && !--v->nat[n].refs)
		nat_free(v, n);
	/* A closed connection was reported when it closed; what follows (the last ACK) is not news. */
	if (!v->cb.flow || (f->flags & CT_FLOW_F_REPORTED))
		return;
	flow_record(v, f, &r);
	v->cb.flow(v->cb.ctx, &r);
}

/*
 * A TCP connection is over when both ends sent FIN or one sent RST: its
 * record goes out then, as NetFlow and IPFIX exporters do, rather than
 * when the flow leaves the table two minutes later.
 */
static void flow_maybe_closed(struct vfr *v, uint32_t i)
{
	const struct ct_flow *f = ct_flow_get(v->ct, i);
	struct ipfix_flow r;

	if (!f || f->proto != PKT_PROTO_TCP || (f->flags & CT_FLOW_F_REPORTED) ||
	    (f->state != CT_TCP_TIME_WAIT && f->state != CT_TCP_CLOSED))
		return;
	ct_flow_set_flags(v->ct, i, CT_FLOW_F_REPORTED);
	if (!v->cb.flow)
		return;
	flow_record(v, f, &r);
	v->cb.flow(v->cb.ctx, &r);
}

void vfr_tick(struct vfr *v, uint64_t now, uint64_t wall_ms)
{
	v->wall_off = (int64_t)wall_ms - (int64_t)now;
	ct_expire(v->ct, now);
}

bool vfr_recheck_step(struct vfr *v, uint32_t budget)
{
	bool more;

	ct_recheck_step(v->ct, budget, &more);
	return more;
}

/* ---- the firewall ---- */

struct fw {
	struct vfr_match_input m;
	uint32_t from;		   /* the sending port */
	const uint8_t *orig;	   /* the frame as it came, for answers */
	const struct pkt *op;	   /* ... parsed */
	struct vfr_port_stats *st; /* the sender's counters */
};

static void deny_record(struct vfr *v, const struct pkt *p, const struct fw *w, enum vfr_action a,
			uint32_t rule, uint64_t now)
{
	struct ipfix_flow r = {
	    .start_ms = wall_of(v, now),
	    .end_ms = wall_of(v, now),
	    .src_domain = port_name(v, w->m.src_domain),
	    .dst_domain = port_name(v, w->m.dst_domain),
	    .src_port_if = w->m.src_domain,
	    .dst_port_if = w->m.dst_domain,
	    .src_addr = p->src,
	    .dst_addr = p->dst,
	    .src_port = w->m.sport,
	    .dst_port = w->m.dport,
	    .proto = p->proto,
	    .packets = p->wire_packets,
	    .bytes = p->wire_bytes,
	    .verdict = a == VFR_REJECT ? IPFIX_REJECT : IPFIX_DROP,
	    .rule = rule,
	};

	if (v->cb.flow)
		v->cb.flow(v->cb.ctx, &r);
}

/* The answer to a rejected packet: TCP RST, or ICMP unreachable (port for UDP, admin else). */
static void reject_answer(struct vfr *v, const struct fw *w)
{
	const struct pkt *p = w->op;
	uint8_t *f = v->ans, *ip = f + PKT_ETH_HLEN, *l4 = ip + 20;
	const uint8_t *src_mac = p->dst_mac;
	size_t len;

	if (w->from == VFR_UPLINK)
		src_mac = v->up.mac;
	if (p->proto == PKT_PROTO_TCP && (p->flags & PKT_F_L4)) {
		uint32_t seg = p->l4_len - (p->payload_off - p->l4_off);

		if (p->tcp_flags & PKT_TCP_RST)
			return;
		memset(l4, 0, 20);
		put16(l4, p->dport);
		put16(l4 + 2, p->sport);
		if (p->tcp_flags & PKT_TCP_ACK) {
			put32(l4 + 4, p->tcp_ack);
			l4[13] = PKT_TCP_RST;
		} else {
			seg += !!(p->tcp_flags & PKT_TCP_SYN) + !!(p->tcp_flags & PKT_TCP_FIN);
			put32(l4 + 8, p->tcp_seq + seg);
			l4[13] = PKT_TCP_RST | PKT_TCP_ACK;
		}
		l4[12] = 5 << 4;
		ip_header(ip, 40, PKT_PROTO_TCP, p->dst, p->src);
		l4_csum(l4, 20, 16, p->dst, p->src, PKT_PROTO_TCP);
		len = PKT_ETH_HLEN + 40;
	} else {
		size_t q = p->ip_len < 28 ? p->ip_len : 28;

		/* No errors about errors (RFC 1122). */
		if (p->proto == PKT_PROTO_ICMP && !(p->icmp_type == PKT_ICMP_ECHO))
			return;
		memset(l4, 0, 8);
		l4[0] = PKT_ICMP_UNREACH;
		l4[1] = p->proto == PKT_PROTO_UDP ? 3 : 13;
		memcpy(l4 + 8, w->orig + p->l3_off, q);
		put16(l4 + 2, pkt_csum(l4, 8 + q));
		ip_header(ip, (uint16_t)(28 + q), PKT_PROTO_ICMP, p->dst, p->src);
		len = PKT_ETH_HLEN + 28 + q;
	}
	eth_header(f, p->src_mac, src_mac, PKT_ETHERTYPE_IPV4);
	emit(v, w->from, f, pad60(f, len));
}

static void deny(struct vfr *v, const struct pkt *p, const struct fw *w, enum vfr_action a,
		 uint32_t rule, uint64_t now, const char *why)
{
	char pb[16], s[16], d[16], lab[VFR_NAME_MAX + 16], lab2[VFR_NAME_MAX + 24] = "";

	w->st->denied++;
	if (a == VFR_REJECT)
		w->st->rejected++;
	if (w->m.src_domain && w->m.dst_domain) {
		char t[VFR_NAME_MAX + 16];

		snprintf(lab2, sizeof(lab2), " to %s",
			 port_label(v, w->m.dst_domain, t, sizeof(t)));
	}
	port_label(v, w->m.src_domain ? w->m.src_domain : w->m.dst_domain, lab, sizeof(lab));
	if (w->m.has_ports)
		vlog(v, now, "%s %s %s %s:%u -> %s:%u %s%s %s %u",
		     a == VFR_REJECT ? "reject" : "deny", w->m.src_domain ? "out" : "in",
		     proto_name(p->proto, pb, sizeof(pb)), ip_str(p->src, s, sizeof(s)), w->m.sport,
		     ip_str(p->dst, d, sizeof(d)), w->m.dport, lab, lab2, why, rule);
	else
		vlog(v, now, "%s %s %s %s -> %s %s%s %s %u", a == VFR_REJECT ? "reject" : "deny",
		     w->m.src_domain ? "out" : "in", proto_name(p->proto, pb, sizeof(pb)),
		     ip_str(p->src, s, sizeof(s)), ip_str(p->dst, d, sizeof(d)), lab, lab2, why,
		     rule);
	deny_record(v, p, w, a, rule, now);
	if (a == VFR_REJECT)
		reject_answer(v, w);
}

enum fw_verdict { FW_PASS, FW_NEW, FW_DENIED };

/*
 * Conntrack and rules for p (the packet as the domain side sees it).
 * FW_NEW: the rules accept a new flow; fw_commit creates it.
 */
static enum fw_verdict fw_check(struct vfr *v, const struct pkt *p, struct fw *w, uint64_t now)
{
	enum vfr_action a;
	uint32_t flow, rule = 0;
	enum ct_result r;

	w->m.proto = p->proto;
	w->m.src = p->src;
	w->m.dst = p->dst;
	w->m.has_ports =
	    (p->flags & PKT_F_L4) && (p->proto == PKT_PROTO_TCP || p->proto == PKT_PROTO_UDP);
	w->m.sport = w->m.has_ports ? p->sport : 0;
	w->m.dport = w->m.has_ports ? p->dport : 0;
	r = ct_track(v->ct, p, now, &flow);
	switch (r) {
	case CT_ESTABLISHED:
		flow_maybe_closed(v, flow);
		return FW_PASS;
	case CT_RELATED:
		return FW_PASS;
	case CT_INVALID:
		w->st->denied++;
		return FW_DENIED;
	case CT_NEW:
	case CT_UNTRACKED:
		break;
	}
	a = vfr_rules_match(v->rules, &w->m, &rule);
	if (a != VFR_ACCEPT) {
		deny(v, p, w, a, rule, now, "rule");
		return FW_DENIED;
	}
	return r == CT_NEW ? FW_NEW : FW_PASS;
}

static bool fw_commit(struct vfr *v, const struct pkt *p, struct fw *w, uint64_t now,
		      uint32_t *flow)
{
	struct ct_ends e = {.dir = w->m.dir,
			    .src_domain = w->m.src_domain,
			    .dst_domain = w->m.dst_domain,
			    .src_net = w->m.src_net,
			    .dst_net = w->m.dst_net};
	int ret;

	*flow = CT_NIL;
	ret = ct_create(v->ct, p, &e, now, flow);
	if (ret == 0 || ret == -EEXIST)
		return true;
	w->st->denied++;
	if (ret == -ENOSPC || ret == -EDQUOT) {
		char lab[VFR_NAME_MAX + 16];

		vlog(v, now, "flow refused for %s: %s",
		     port_label(v, w->m.src_domain ? w->m.src_domain : w->m.dst_domain, lab,
				sizeof(lab)),
		     ret == -ENOSPC ? "table full" : "domain at its limit");
	}
	return false;
}

/* ---- from a domain ---- */

static void dhcp_opt(uint8_t *o, size_t *n, uint8_t code, const void *data, uint8_t len)
{
	o[(*n)++] = code;
	o[(*n)++] = len;
	memcpy(o + *n, data, len);
	*n += len;
}

static void dhcp_opt32(uint8_t *o, size_t *n, uint8_t code, uint32_t val)
{
	uint8_t b[4];

	put32(b, val);
	dhcp_opt(o, n, code, b, 4);
}

#define BOOTP_LEN 236
#define DHCP_COOKIE 0x63825363u
enum {
	DHCPDISCOVER = 1,
	DHCPOFFER,
	DHCPREQUEST,
	DHCPDECLINE,
	DHCPACK,
	DHCPNAK,
	DHCPRELEASE,
	DHCPINFORM
};

/*
 * A DHCP message from port pt (RFC 2131, the subset a fixed address needs).
 * Options are read with every length checked; overload (52) is ignored.
 */
static void dhcp_input(struct vfr *v, struct vfr_port *pt, const uint8_t *f, const struct pkt *p)
{
	const uint8_t *b = f + p->payload_off;
	size_t blen = p->l4_len >= 8 ? p->l4_len - 8 : 0, i = BOOTP_LEN + 4, n = 0;
	uint32_t req_ip = 0, server = 0, ciaddr, dst_ip;
	uint8_t type = 0, reply, *out = v->ans, *ip, *udp, *bp, *o;
	const uint8_t *dst_mac;
	struct vfr_net *net = pt->net;
	uint16_t flags;
	size_t len;

	if (blen < BOOTP_LEN + 4 || b[0] != 1 || b[1] != 1 || b[2] != 6 ||
	    get32(b + BOOTP_LEN) != DHCP_COOKIE || !mac_eq(b + 28, pt->cfg.mac))
		return;
	while (i < blen && b[i] != 255) {
		uint8_t code = b[i], l;

		if (code == 0) {
			i++;
			continue;
		}
		if (i + 2 > blen)
			break;
		l = b[i + 1];
		if (i + 2 + l > blen)
			break;
		if (code == 53 && l == 1)
			type = b[i + 2];
		else if (code == 50 && l == 4)
			req_ip = get32(b + i + 2);
		else if (code == 54 && l == 4)
			server = get32(b + i + 2);
		i += 2 + (size_t)l;
	}
	ciaddr = get32(b + 12);
	flags = get16(b + 10);
	switch (type) {
	case DHCPDISCOVER:
		reply = DHCPOFFER;
		break;
	case DHCPREQUEST:
		if (server && server != net->gw)
			return; /* the client chose another server */
		if (!req_ip)
			req_ip = ciaddr;
		reply = req_ip == pt->cfg.addr ? DHCPACK : DHCPNAK;
		break;
	case DHCPINFORM:
		reply = DHCPACK;
		break;
	default:
		return; /* RELEASE, DECLINE: the address is fixed anyway */
	}
	ip = out + PKT_ETH_HLEN;
	udp = ip + 20;
	bp = udp + 8;
	memset(bp, 0, BOOTP_LEN + 4);
	bp[0] = 2;
	bp[1] = 1;
	bp[2] = 6;
	memcpy(bp + 4, b + 4, 4); /* xid */
	put16(bp + 10, flags);
	memcpy(bp + 12, b + 12, 4); /* ciaddr */
	if (reply != DHCPNAK && type != DHCPINFORM)
		put32(bp + 16, pt->cfg.addr);
	memcpy(bp + 24, b + 24, 4);  /* giaddr */
	memcpy(bp + 28, b + 28, 16); /* chaddr */
	put32(bp + BOOTP_LEN, DHCP_COOKIE);
	o = bp + BOOTP_LEN + 4;
	dhcp_opt(o, &n, 53, &reply, 1);
	dhcp_opt32(o, &n, 54, net->gw);
	if (reply != DHCPNAK) {
		static const uint8_t mtu[2] = {VFR_MTU >> 8, VFR_MTU & 0xff};

		if (type != DHCPINFORM)
			dhcp_opt32(o, &n, 51, VFR_LEASE_S);
		dhcp_opt32(o, &n, 1, net->mask);
		dhcp_opt32(o, &n, 3, net->gw);
		if (net->cfg.dns)
			dhcp_opt32(o, &n, 6, net->cfg.dns);
		dhcp_opt(o, &n, 26, mtu, 2);
		if (net->cfg.mode == VFR_UPLINK_RSIP) {
			uint8_t s[8];
			int l = rsip_format_dhcp_option(pt->cfg.slice, s, sizeof(s));

			if (l > 0 && (size_t)l <= sizeof(s)) {
				memcpy(o + n, s, (size_t)l);
				n += (size_t)l;
			}
		}
	}
	o[n++] = 255;
	/* BOOTP's minimum message of 300 bytes: some clients want it. */
	len = BOOTP_LEN + 4 + n;
	if (len < 300) {
		memset(bp + len, 0, 300 - len);
		len = 300;
	}
	/* RFC 2131 4.1: to ciaddr when the client has one, else broadcast if asked (and NAKs). */
	if (reply == DHCPNAK || (!ciaddr && (flags & 0x8000))) {
		dst_mac = bcast_mac;
		dst_ip = 0xffffffffu;
	} else {
		dst_mac = pt->cfg.mac;
		dst_ip = ciaddr ? ciaddr : pt->cfg.addr;
	}
	put16(udp, 67);
	put16(udp + 2, 68);
	put16(udp + 4, (uint16_t)(8 + len));
	l4_csum(udp, 8 + len, 6, net->gw, dst_ip, PKT_PROTO_UDP);
	ip_header(ip, (uint16_t)(28 + len), PKT_PROTO_UDP, net->gw, dst_ip);
	eth_header(out, dst_mac, net->gw_mac, PKT_ETHERTYPE_IPV4);
	pt->st.dhcp_replies++;
	emit(v, pt->cfg.id, out, PKT_ETH_HLEN + 28 + len);
}

static void arp_from_domain(struct vfr *v, struct vfr_port *pt, const struct pkt *p)
{
	struct vfr_net *n = pt->net;
	const uint8_t *mac;
	struct vfr_port *o;

	/* Replies and gratuitous ARP are consumed; probes (sender 0) get no answer (DAD). */
	if (p->arp_op != 1 || !p->arp_spa || p->arp_tpa == pt->cfg.addr)
		return;
	if (p->arp_tpa == n->gw || n->cfg.mode == VFR_UPLINK_RSIP)
		mac = n->gw_mac;
	else if ((o = port_of_addr(v, n, p->arp_tpa)) != NULL)
		mac = o->cfg.mac;
	else
		mac = n->gw_mac; /* proxy ARP: everything else is behind the gateway */
	arp_frame(v->ans, 2, p->arp_sha, mac, p->arp_tpa, p->arp_sha, p->arp_spa);
	pt->st.arp_replies++;
	emit(v, pt->cfg.id, v->ans, pad60(v->ans, 42));
}

static void rsip_pkt(const struct pkt *p, struct rsip_packet *r)
{
	memset(r, 0, sizeof(*r));
	r->proto = p->proto;
	if (!(p->flags & PKT_F_L4))
		r->proto = 0xff; /* later fragments carry no port: refused */
	r->src_port = p->sport;
	r->dst_port = p->dport;
	r->icmp_type = p->icmp_type;
	r->icmp_id = p->icmp_id;
	if (p->flags & PKT_F_ICMP_ERROR) {
		r->inner_proto = p->inner.proto;
		r->inner_src_port = p->inner.sport;
		r->inner_dst_port = p->inner.dport;
	}
}

/* Decrements the TTL in f's IPv4 header; false when it would reach 0. */
static bool ttl_dec(uint8_t *f, const struct pkt *p)
{
	uint8_t *ip = f + p->l3_off;

	if (ip[8] <= 1)
		return false;
	csum_fix16(ip + 10, get16(ip + 8), (uint16_t)(get16(ip + 8) - 0x100));
	ip[8]--;
	return true;
}

/* The NAT key of an outbound packet of a domain: its (proto, port) seen from inside. */
static bool nat_out_key(const struct pkt *p, uint8_t *proto, uint32_t *addr, uint16_t *port)
{
	if (!(p->flags & PKT_F_L4) || (p->flags & PKT_F_FRAG))
		return false;
	if (p->flags & PKT_F_ICMP_ERROR) {
		if (!p->inner.has_ports)
			return false;
		*proto = p->inner.proto;
		*addr = p->inner.dst;
		*port = p->inner.dport;
		return true;
	}
	if (p->proto == PKT_PROTO_ICMP && p->icmp_type != PKT_ICMP_ECHO &&
	    p->icmp_type != PKT_ICMP_ECHO_REPLY)
		return false;
	*proto = p->proto;
	*addr = p->src;
	*port = p->proto == PKT_PROTO_ICMP ? p->icmp_id : p->sport;
	return nat_pidx(*proto) >= 0;
}

/* The NAT key of an inbound packet for the uplink's address: (proto, external port). */
static bool nat_in_key(const struct vfr *v, const struct pkt *p, uint8_t *proto, uint16_t *port)
{
	if (!(p->flags & PKT_F_L4) || (p->flags & PKT_F_FRAG))
		return false;
	if (p->flags & PKT_F_ICMP_ERROR) {
		if (!p->inner.has_ports || p->inner.src != v->up.addr)
			return false;
		*proto = p->inner.proto;
		*port = p->inner.sport;
		return true;
	}
	if (p->proto == PKT_PROTO_ICMP && p->icmp_type != PKT_ICMP_ECHO &&
	    p->icmp_type != PKT_ICMP_ECHO_REPLY)
		return false;
	*proto = p->proto;
	*port = p->proto == PKT_PROTO_ICMP ? p->icmp_id : p->dport;
	return nat_pidx(*proto) >= 0;
}

/*
 * A NAT network's packet out: the translation found (or, for a new flow,
 * made and referenced by it), the source rewritten. False: dropped.
 */
static bool nat_out(struct vfr *v, struct vfr_port *pt, uint8_t *f, const struct pkt *p,
		    struct fw *w, enum fw_verdict fv, uint64_t now)
{
	uint8_t proto = 0;
	uint32_t addr = 0, ni, flow;
	uint16_t port = 0;
	struct vfr_nat_entry *e;

	nat_out_key(p, &proto, &addr, &port);
	ni = fv == FW_NEW ? nat_get(v, pt->cfg.id, proto, addr, port, now)
			  : nat_find_in(v, proto, addr, port);
	if (ni == NIL) {
		if (fv == FW_NEW) {
			pt->st.denied++;
			vlog(v, now, "nat refused for port %u (%s): %s", pt->cfg.id, pt->cfg.name,
			     v->nat_count >= v->nat_cap ? "table full" : "domain at its limit");
		} else {
			pt->st.no_route++;
		}
		return false;
	}
	e = &v->nat[ni];
	if (fv == FW_NEW) {
		/* Referenced first: a closed flow the new one replaces lets go of it. */
		e->refs++;
		if (!fw_commit(v, p, w, now, &flow)) {
			if (!--e->refs)
				nat_free(v, ni);
			return false;
		}
	}
	e->last_ms = now;
	nat_rewrite(f, p, true, v->up.addr, e->ext_port, in_partial(v));
	return true;
}

/* An IPv4 packet from a domain going beyond every network, by its network's mode. */
static void to_uplink(struct vfr *v, struct vfr_port *pt, const uint8_t *frame, const struct pkt *p,
		      struct fw *w, uint64_t now)
{
	enum vfr_uplink_mode mode = pt->net->cfg.mode;
	size_t len = PKT_ETH_HLEN + p->ip_len;
	uint8_t *f = v->fwd, proto;
	enum fw_verdict fv;
	uint32_t addr, flow;
	uint16_t port;

	if (mode == VFR_UPLINK_NONE || !v->has_uplink || p->dst == v->up.addr ||
	    (mode == VFR_UPLINK_NAT && !nat_out_key(p, &proto, &addr, &port)) ||
	    (mode != VFR_UPLINK_RSIP && p->ttl <= 1)) {
		pt->st.no_route++;
		return;
	}
	if (mode == VFR_UPLINK_RSIP) {
		struct rsip_packet r;
		char s[16], d[16], pb[16];

		rsip_pkt(p, &r);
		if (!rsip_outbound_ok(&v->rsip, pt->cfg.id, &r)) {
			pt->st.spoofed++;
			vlog(v, now,
			     "spoofed: port %u (%s) sent %s %s:%u -> %s:%u outside its slice %u-%u",
			     pt->cfg.id, pt->cfg.name, proto_name(p->proto, pb, sizeof(pb)),
			     ip_str(p->src, s, sizeof(s)), p->sport, ip_str(p->dst, d, sizeof(d)),
			     p->dport, pt->cfg.slice.start, pt->cfg.slice.end);
			return;
		}
	}
	fv = fw_check(v, p, w, now);
	if (fv == FW_DENIED)
		return;
	memcpy(f, frame, len);
	if (mode == VFR_UPLINK_NAT) {
		if (!nat_out(v, pt, f, p, w, fv, now))
			return;
	} else if (fv == FW_NEW && !fw_commit(v, p, w, now, &flow)) {
		return;
	}
	/* RSIP: not a byte changed but the Ethernet header; routed and NAT: a hop. */
	if (mode != VFR_UPLINK_RSIP)
		ttl_dec(f, p);
	if (!uplink_send(v, f, len, p->dst, now))
		pt->st.no_route++;
}

/* An IPv4 packet from a domain (source checked): switched, routed or sent to the uplink. */
static void domain_ipv4(struct vfr *v, struct vfr_port *pt, const uint8_t *frame,
			const struct pkt *p, uint64_t now)
{
	struct vfr_net *n = pt->net, *dn;
	struct fw w = {.from = pt->cfg.id, .orig = frame, .op = p, .st = &pt->st};
	size_t len = PKT_ETH_HLEN + p->ip_len;
	char why[PKT_REASON_MAX];
	struct vfr_port *dp;
	enum fw_verdict fv;
	uint32_t flow;

	w.m.dir = VFR_DIR_OUT;
	w.m.src_domain = pt->cfg.id;
	w.m.src_net = n->cfg.id;
	/* Broadcast and multicast beyond ARP and DHCP: nothing on a VFR network needs them. */
	if ((p->dst_mac[0] & 1) || p->dst == 0xffffffffu || (p->dst >> 28) == 0xe ||
	    (n->cfg.mode != VFR_UPLINK_RSIP && p->dst == (n->cfg.subnet | ~n->mask))) {
		pt->st.no_route++;
		return;
	}
	if (!pkt_frag_allowed(p, n->cfg.frag_policy, why, sizeof(why))) {
		char lab[VFR_NAME_MAX + 16];

		pt->st.denied++;
		vlog(v, now, "deny %s: %s", port_label(v, pt->cfg.id, lab, sizeof(lab)), why);
		return;
	}
	dn = n->cfg.mode == VFR_UPLINK_RSIP ? NULL : net_of_addr(v, p->dst);
	if (!dn) {
		if (!mac_eq(p->dst_mac, n->gw_mac)) {
			pt->st.no_route++;
			return;
		}
		to_uplink(v, pt, frame, p, &w, now);
		return;
	}
	dp = port_of_addr(v, dn, p->dst);
	if (!dp || dp == pt ||
	    (dn == n ? !mac_eq(p->dst_mac, dp->cfg.mac) && !mac_eq(p->dst_mac, n->gw_mac)
		     : !mac_eq(p->dst_mac, n->gw_mac) || p->ttl <= 1)) {
		pt->st.no_route++;
		return;
	}
	w.m.dir = VFR_DIR_ANY;
	w.m.dst_domain = dp->cfg.id;
	w.m.dst_net = dn->cfg.id;
	fv = fw_check(v, p, &w, now);
	if (fv == FW_DENIED || (fv == FW_NEW && !fw_commit(v, p, &w, now, &flow)))
		return;
	memcpy(v->fwd, frame, len);
	if (dn != n) {
		ttl_dec(v->fwd, p);
		eth_header(v->fwd, dp->cfg.mac, dn->gw_mac, PKT_ETHERTYPE_IPV4);
	} else {
		memcpy(v->fwd, dp->cfg.mac, 6);
	}
	emit(v, dp->cfg.id, v->fwd, len);
}

__attribute__((format(printf, 4, 5))) static void spoofed(struct vfr *v, struct vfr_port *pt,
							  uint64_t now, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	pt->st.spoofed++;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	vlog(v, now, "spoofed: port %u (%s) %s", pt->cfg.id, pt->cfg.name, what);
}

static void from_domain(struct vfr *v, struct vfr_port *pt, const uint8_t *frame,
			const struct pkt *p, uint64_t now)
{
	char a[18];
	bool dhcp;

	if (!mac_eq(p->src_mac, pt->cfg.mac)) {
		spoofed(v, pt, now, "sent from MAC %s", mac_str(p->src_mac, a, sizeof(a)));
		return;
	}
	if (p->l3 == PKT_L3_ARP) {
		if (!mac_eq(p->arp_sha, pt->cfg.mac))
			spoofed(v, pt, now, "sent ARP for MAC %s",
				mac_str(p->arp_sha, a, sizeof(a)));
		else if (p->arp_spa && p->arp_spa != pt->cfg.addr)
			spoofed(v, pt, now, "sent ARP for address %s",
				ip_str(p->arp_spa, a, sizeof(a)));
		else
			arp_from_domain(v, pt, p);
		return;
	}
	if (p->l3 != PKT_L3_IPV4) {
		pt->st.refused++;
		return;
	}
	dhcp = p->proto == PKT_PROTO_UDP && (p->flags & PKT_F_L4) && !(p->flags & PKT_F_FRAG) &&
	       p->sport == 68 && p->dport == 67;
	if (p->src != pt->cfg.addr && !(dhcp && !p->src)) {
		spoofed(v, pt, now, "sent from address %s", ip_str(p->src, a, sizeof(a)));
		return;
	}
	if (dhcp && (p->dst == 0xffffffffu || p->dst == pt->net->gw)) {
		dhcp_input(v, pt, frame, p);
		return;
	}
	if (!p->src) {
		pt->st.no_route++;
		return;
	}
	domain_ipv4(v, pt, frame, p, now);
}

static void uplink_ipv4(struct vfr *v, const uint8_t *frame, const struct pkt *p, uint64_t now)
{
	struct fw w = {.from = VFR_UPLINK, .orig = frame, .op = p, .st = &v->up_st};
	size_t len = PKT_ETH_HLEN + p->ip_len;
	const struct pkt *view = p;
	struct vfr_port *pt = NULL;
	uint32_t ni = NIL, flow;
	char why[PKT_REASON_MAX];
	bool rsip = false;
	enum fw_verdict fv;
	struct pkt np;
	uint8_t proto;
	uint16_t port;

	if (!mac_eq(p->dst_mac, v->up.mac)) {
		v->up_st.no_route++;
		return;
	}
	memcpy(v->fwd, frame, len);
	if (p->dst == v->up.addr) {
		if (nat_in_key(v, p, &proto, &port))
			ni = nat_find_ext(v, proto, port);
		if (ni != NIL) {
			pt = port_get(v, v->nat[ni].domain);
			if (!pt || pt->net->cfg.mode != VFR_UPLINK_NAT) {
				v->up_st.no_route++;
				return;
			}
			nat_rewrite(v->fwd, p, false, v->nat[ni].in_addr, v->nat[ni].in_port,
				    in_partial(v));
			/* Conntrack and rules see the domain's side of the translation. */
			if (pkt_parse(v->fwd, len, &np, NULL, 0) != PKT_OK) {
				v->up_st.malformed++;
				return;
			}
			np.wire_packets = p->wire_packets;
			np.wire_bytes = p->wire_bytes;
			view = &np;
		} else {
			struct rsip_packet r;
			uint32_t dom;

			rsip_pkt(p, &r);
			if (rsip_demux(&v->rsip, &r, &dom) || !(pt = port_get(v, dom)) ||
			    pt->net->cfg.mode != VFR_UPLINK_RSIP) {
				v->up_st.no_route++;
				return;
			}
			rsip = true;
		}
	} else {
		struct vfr_net *n = net_of_addr(v, p->dst);

		if (!n || n->cfg.mode != VFR_UPLINK_ROUTED || !(pt = port_of_addr(v, n, p->dst))) {
			v->up_st.no_route++;
			return;
		}
	}
	w.m.dir = VFR_DIR_IN;
	w.m.dst_domain = pt->cfg.id;
	w.m.dst_net = pt->net->cfg.id;
	if (!pkt_frag_allowed(view, pt->net->cfg.frag_policy, why, sizeof(why))) {
		v->up_st.denied++;
		vlog(v, now, "deny in to port %u (%s): %s", pt->cfg.id, pt->cfg.name, why);
		return;
	}
	if (!rsip && view->ttl <= 1) {
		v->up_st.no_route++;
		return;
	}
	fv = fw_check(v, view, &w, now);
	if (fv == FW_DENIED)
		return;
	if (fv == FW_NEW) {
		if (ni != NIL)
			v->nat[ni].refs++; /* first: a closed flow replaced lets go of it */
		if (!fw_commit(v, view, &w, now, &flow)) {
			if (ni != NIL && !--v->nat[ni].refs)
				nat_free(v, ni);
			return;
		}
	}
	if (ni != NIL)
		v->nat[ni].last_ms = now;
	if (!rsip)
		ttl_dec(v->fwd, view);
	eth_header(v->fwd, pt->cfg.mac, pt->net->gw_mac, PKT_ETHERTYPE_IPV4);
	emit(v, pt->cfg.id, v->fwd, len);
}

static void from_uplink(struct vfr *v, const uint8_t *frame, const struct pkt *p, uint64_t now)
{
	if (p->l3 == PKT_L3_ARP) {
		/* Learnt only from ARP addressed to the VFR: requests for it, replies to it. */
		if (p->arp_tpa != v->up.addr)
			return;
		neigh_learn(v, p->arp_spa, p->arp_sha, now);
		if (p->arp_op == 1 && p->arp_spa) {
			arp_frame(v->ans, 2, p->arp_sha, v->up.mac, v->up.addr, p->arp_sha,
				  p->arp_spa);
			v->up_st.arp_replies++;
			emit(v, VFR_UPLINK, v->ans, pad60(v->ans, 42));
		}
		return;
	}
	if (p->l3 != PKT_L3_IPV4) {
		v->up_st.refused++;
		return;
	}
	uplink_ipv4(v, frame, p, now);
}

/*
 * Whether the offload off of frame p (len bytes) is one the VFR carries,
 * with why not; the frames it stands for go into p and v->in_segs.
 */
static bool offload_check(struct vfr *v, struct pkt *p, const uint8_t *frame, size_t len,
			  const struct virtio_net_hdr *off, char *why, size_t whylen)
{
	bool partial = off->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;

	v->in_off = *off;
	v->in_off.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM; /* DATA_VALID: nothing to carry */
	v->in_off.num_buffers = 0;
	v->in_off.hdr_len = 0;
	if (partial &&
	    (p->l3 != PKT_L3_IPV4 || !(p->flags & PKT_F_L4) || (p->flags & PKT_F_FRAG) ||
	     off->csum_start != p->l4_off ||
	     off->csum_offset != (p->proto == PKT_PROTO_TCP ? 16 : p->proto == PKT_PROTO_UDP ? 6 : 0))) {
		snprintf(why, whylen, "partial checksum at %u+%u is not the packet's TCP or UDP checksum",
			 off->csum_start, off->csum_offset);
		return false;
	}
	switch (off->gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		if (len > VFR_FRAME_MAX) {
			snprintf(why, whylen, "frame of %zu bytes is no segment to cut", len);
			return false;
		}
		v->in_has_off = partial;
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!partial || p->proto != PKT_PROTO_TCP) {
			snprintf(why, whylen, "TCP segment without its partial checksum");
			return false;
		}
		if (offload_tcp4_segs(frame, len, off->gso_size, PKT_ETH_HLEN + VFR_MTU, &v->in_segs, why,
				      whylen) < 0)
			return false;
		/* The headers' true length, whatever the sender wrote: a hint the receiver may use. */
		v->in_off.hdr_len = (uint16_t)v->in_segs.payload_off;
		p->wire_packets = v->in_segs.count;
		p->wire_bytes = v->in_segs.wire_bytes - v->in_segs.count * PKT_ETH_HLEN;
		v->in_has_off = true;
		return true;
	default:
		snprintf(why, whylen, "segment offload of type %u", off->gso_type);
		return false;
	}
}

void vfr_input(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len, uint64_t now,
	       uint64_t wall_ms)
{
	vfr_input_offload(v, port, frame, len, NULL, now, wall_ms);
}

void vfr_input_offload(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len,
		       const struct virtio_net_hdr *off, uint64_t now, uint64_t wall_ms)
{
	struct vfr_port_stats *st;
	struct vfr_port *pt = NULL;
	char why[PKT_REASON_MAX];
	enum pkt_verdict vd;
	uint64_t extra;
	struct pkt p;

	v->wall_off = (int64_t)wall_ms - (int64_t)now;
	v->in_has_off = false;
	if (port == VFR_UPLINK) {
		if (!v->has_uplink)
			return;
		st = &v->up_st;
	} else {
		pt = port_get(v, port);
		if (!pt)
			return;
		st = &pt->st;
	}
	st->rx_frames++;
	st->rx_bytes += len;
	if (pt && pt->cfg.rate_pps) {
		bucket_fill(&pt->tokens, &pt->last_ms, now, pt->cfg.rate_pps, port_burst(pt));
		if (pt->tokens < 1000) {
			st->rate_limited++;
			return;
		}
		pt->tokens -= 1000;
	}
	if (!frame || len > (offload_wanted(off) ? VFR_GSO_FRAME_MAX : VFR_FRAME_MAX)) {
		st->malformed++;
		return;
	}
	vd = pkt_parse(frame, len, &p, why, sizeof(why));
	if (vd == PKT_OK && offload_wanted(off) && !offload_check(v, &p, frame, len, off, why, sizeof(why)))
		vd = PKT_MALFORMED;
	if (vd != PKT_OK) {
		if (vd == PKT_MALFORMED) {
			char lab[VFR_NAME_MAX + 16];

			st->malformed++;
			vlog(v, now, "malformed from %s: %s", port_label(v, port, lab, sizeof(lab)),
			     why);
		} else {
			st->refused++;
		}
		v->in_has_off = false;
		return;
	}
	/* A segment counts as the frames it stands for, and pays for them. */
	extra = p.wire_packets - 1;
	if (extra) {
		st->rx_frames += extra;
		st->rx_bytes += v->in_segs.wire_bytes - len;
		if (pt && pt->cfg.rate_pps) {
			if (pt->tokens < extra * 1000) {
				st->rate_limited++;
				return;
			}
			pt->tokens -= extra * 1000;
		}
	}
	if (p.flags & PKT_F_VLAN) {
		st->refused++; /* no port of the VFR is a trunk */
		return;
	}
	if (pt)
		from_domain(v, pt, frame, &p, now);
	else
		from_uplink(v, frame, &p, now);
}
