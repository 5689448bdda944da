/* The VFR's frame parser (see packet.h and docs/net.md). */
#include "net/packet.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

__attribute__((format(printf, 4, 5))) static enum pkt_verdict
fail(char *why, size_t whylen, enum pkt_verdict v, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return v;
}

#define MALFORMED(...) fail(why, whylen, PKT_MALFORMED, __VA_ARGS__)
#define REFUSED(...) fail(why, whylen, PKT_REFUSED, __VA_ARGS__)

uint32_t pkt_sum(uint32_t s, const uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += get16(buf + i);
	if (len & 1)
		s += (uint32_t)buf[len - 1] << 8;
	return s;
}

uint16_t pkt_sum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

uint16_t pkt_csum(const uint8_t *buf, size_t len) { return pkt_sum_fold(pkt_sum(0, buf, len)); }

bool pkt_tcp_flags_bogus(uint8_t f)
{
	f &= 0x3f; /* ECE and CWR (RFC 3168) may go with anything */
	if (f == 0)
		return true; /* null scan */
	if ((f & (PKT_TCP_SYN | PKT_TCP_FIN)) == (PKT_TCP_SYN | PKT_TCP_FIN))
		return true;
	if ((f & (PKT_TCP_SYN | PKT_TCP_RST)) == (PKT_TCP_SYN | PKT_TCP_RST))
		return true;
	if ((f & (PKT_TCP_FIN | PKT_TCP_RST)) == (PKT_TCP_FIN | PKT_TCP_RST))
		return true;
	if ((f & (PKT_TCP_FIN | PKT_TCP_URG | PKT_TCP_PSH)) ==
	    (PKT_TCP_FIN | PKT_TCP_URG | PKT_TCP_PSH))
		return true; /* xmas */
	/* Only a first SYN and a RST may come without ACK; FIN, PSH or URG alone are scans. */
	if (!(f & PKT_TCP_ACK) && !(f & (PKT_TCP_SYN | PKT_TCP_RST)))
		return true;
	return false;
}

const char *pkt_tcp_flags_str(uint8_t flags, char *buf, size_t len)
{
	static const char *const names[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
	size_t used = 0;
	unsigned i;

	if (!len)
		return buf;
	buf[0] = 0;
	if (!flags) {
		snprintf(buf, len, "none");
		return buf;
	}
	for (i = 0; i < 8; i++) {
		if (!(flags & (1u << i)))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i]);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	return buf;
}

static void ip_str(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

static enum pkt_verdict parse_arp(const uint8_t *b, uint32_t avail, struct pkt *p, char *why,
				  size_t whylen)
{
	if (avail < 8)
		return MALFORMED("truncated ARP header (%u bytes)", avail);
	if (get16(b) != 1)
		return REFUSED("ARP hardware type %u, not Ethernet", get16(b));
	if (get16(b + 2) != PKT_ETHERTYPE_IPV4)
		return REFUSED("ARP protocol type 0x%04x, not IPv4", get16(b + 2));
	if (b[4] != 6 || b[5] != 4)
		return MALFORMED("ARP address lengths %u and %u for Ethernet and IPv4", b[4], b[5]);
	if (avail < 28)
		return MALFORMED("truncated ARP packet (%u of 28 bytes)", avail);
	p->arp_op = get16(b + 6);
	if (p->arp_op != 1 && p->arp_op != 2)
		return REFUSED("ARP operation %u", p->arp_op);
	memcpy(p->arp_sha, b + 8, 6);
	p->arp_spa = get32(b + 14);
	memcpy(p->arp_tha, b + 18, 6);
	p->arp_tpa = get32(b + 24);
	return PKT_OK;
}

/* The datagram an ICMP error quotes, at b[0, avail). */
static enum pkt_verdict parse_inner(const uint8_t *b, uint32_t avail, struct pkt *p, char *why,
				    size_t whylen)
{
	struct pkt_inner *in = &p->inner;
	uint32_t ihl;

	if (avail < 20)
		return MALFORMED("ICMP error quotes a truncated IPv4 header (%u bytes)", avail);
	if (b[0] >> 4 != 4)
		return MALFORMED("ICMP error quotes IP version %u", b[0] >> 4);
	ihl = (b[0] & 0xfu) * 4;
	if (ihl < 20)
		return MALFORMED("ICMP error quotes an IPv4 header length of %u", ihl);
	/* RFC 792: the header and the first 64 bits of the datagram's data. */
	if (avail < ihl + 8)
		return MALFORMED("ICMP error quotes %u bytes, less than its header and 8 more",
				 avail);
	in->proto = b[9];
	in->src = get32(b + 12);
	in->dst = get32(b + 16);
	if (get16(b + 6) & 0x1fff)
		return PKT_OK; /* a later fragment: no ports to find the flow by */
	b += ihl;
	switch (in->proto) {
	case PKT_PROTO_TCP:
	case PKT_PROTO_UDP:
		in->sport = get16(b);
		in->dport = get16(b + 2);
		in->has_ports = true;
		break;
	case PKT_PROTO_ICMP:
		in->icmp_type = b[0];
		if (b[0] != PKT_ICMP_ECHO && b[0] != PKT_ICMP_ECHO_REPLY)
			return MALFORMED("ICMP error about ICMP type %u, not an echo", b[0]);
		in->sport = in->dport = get16(b + 4);
		in->has_ports = true;
		break;
	}
	return PKT_OK;
}

static bool icmp_is_error(uint8_t type)
{
	return type == PKT_ICMP_UNREACH || type == PKT_ICMP_SOURCE_QUENCH ||
	       type == PKT_ICMP_REDIRECT || type == PKT_ICMP_TIME_EXCEEDED ||
	       type == PKT_ICMP_PARAM_PROBLEM;
}

static enum pkt_verdict parse_l4(const uint8_t *buf, struct pkt *p, char *why, size_t whylen)
{
	const uint8_t *b = buf + p->l4_off;
	uint32_t n = p->l4_len;
	bool first = p->flags & PKT_F_FRAG_FIRST;
	char fl[40];

	switch (p->proto) {
	case PKT_PROTO_TCP: {
		uint32_t doff;

		if (n < 20)
			return MALFORMED(
			    first ? "first fragment of %u bytes does not hold the TCP header"
				  : "truncated TCP header (%u bytes)",
			    n);
		doff = (uint32_t)(b[12] >> 4) * 4;
		if (doff < 20)
			return MALFORMED("TCP data offset %u below 20", doff);
		if (doff > n)
			return MALFORMED(
			    first ? "first fragment of %u bytes does not hold the TCP "
				    "header of %u"
				  : "TCP header of %2$u bytes beyond the %1$u in the datagram",
			    n, doff);
		p->sport = get16(b);
		p->dport = get16(b + 2);
		p->tcp_seq = get32(b + 4);
		p->tcp_ack = get32(b + 8);
		p->tcp_flags = b[13];
		p->tcp_win = get16(b + 14);
		p->payload_off = p->l4_off + doff;
		if (pkt_tcp_flags_bogus(p->tcp_flags))
			return MALFORMED("bogus TCP flags %s",
					 pkt_tcp_flags_str(p->tcp_flags, fl, sizeof(fl)));
		if (!p->sport || !p->dport)
			return REFUSED("TCP port 0");
		break;
	}
	case PKT_PROTO_UDP:
		if (n < 8)
			return MALFORMED(
			    first ? "first fragment of %u bytes does not hold the UDP header"
				  : "truncated UDP header (%u bytes)",
			    n);
		p->sport = get16(b);
		p->dport = get16(b + 2);
		p->udp_len = get16(b + 4);
		p->payload_off = p->l4_off + 8;
		if (p->udp_len < 8)
			return MALFORMED("UDP length %u below 8", p->udp_len);
		/* A first fragment holds only part of the datagram the length counts. */
		if (!first && p->udp_len != n)
			return MALFORMED("UDP length %u but %u bytes in the datagram", p->udp_len,
					 n);
		if (first && p->udp_len <= n)
			return MALFORMED("UDP length %u but the first fragment alone has %u",
					 p->udp_len, n);
		if (!p->sport || !p->dport)
			return REFUSED("UDP port 0");
		break;
	case PKT_PROTO_ICMP:
		/* Every type domus-net handles has 8 bytes of header (RFC 792). */
		if (n < 8)
			return MALFORMED(
			    first ? "first fragment of %u bytes does not hold the ICMP header"
				  : "truncated ICMP header (%u bytes)",
			    n);
		p->icmp_type = b[0];
		p->icmp_code = b[1];
		p->payload_off = p->l4_off + 8;
		if (p->icmp_type == PKT_ICMP_ECHO || p->icmp_type == PKT_ICMP_ECHO_REPLY) {
			p->icmp_id = get16(b + 4);
			p->icmp_seq = get16(b + 6);
			p->sport = p->dport = p->icmp_id;
		} else if (icmp_is_error(p->icmp_type)) {
			enum pkt_verdict v;

			if (first)
				return MALFORMED("fragmented ICMP error");
			v = parse_inner(b + 8, n - 8, p, why, whylen);
			if (v != PKT_OK)
				return v;
			p->flags |= PKT_F_ICMP_ERROR;
		}
		break;
	default:
		return PKT_OK; /* another protocol: matched by number, no L4 fields */
	}
	p->flags |= PKT_F_L4;
	return PKT_OK;
}

static enum pkt_verdict parse_ipv4(const uint8_t *buf, uint32_t avail, struct pkt *p, char *why,
				   size_t whylen)
{
	const uint8_t *b = buf + p->l3_off;
	uint32_t ihl, frag, data;
	uint16_t sum;
	char a[16];

	if (avail < 20)
		return MALFORMED("truncated IPv4 header (%u bytes)", avail);
	if (b[0] >> 4 != 4)
		return MALFORMED("IP version %u in an IPv4 frame", b[0] >> 4);
	ihl = (b[0] & 0xfu) * 4;
	if (ihl < 20)
		return MALFORMED("IPv4 header length %u below 20", ihl);
	if (ihl > avail)
		return MALFORMED("truncated IPv4 header (%u of %u bytes)", avail, ihl);
	p->tos = b[1];
	p->ip_len = get16(b + 2);
	p->ip_id = get16(b + 4);
	frag = get16(b + 6);
	p->ttl = b[8];
	p->proto = b[9];
	p->src = get32(b + 12);
	p->dst = get32(b + 16);
	if (p->ip_len < ihl)
		return MALFORMED("IPv4 total length %u shorter than its header of %u", p->ip_len,
				 ihl);
	/* Bytes past the total length are Ethernet padding (frames of at least 60 bytes). */
	if (p->ip_len > avail)
		return MALFORMED("IPv4 total length %u beyond frame of %u bytes", p->ip_len,
				 p->len);
	sum = pkt_csum(b, ihl);
	if (sum != 0)
		return MALFORMED("IPv4 header checksum 0x%04x wrong", get16(b + 10));
	if (frag & 0x8000)
		return MALFORMED("IPv4 reserved flag set");
	if (p->src >> 28 >= 0xe) {
		ip_str(p->src, a, sizeof(a));
		return MALFORMED("IPv4 source %s is multicast or reserved", a);
	}
	/* Options (source routes, record route, ...) are refused, not skipped: nothing needs them.
	 */
	if (ihl > 20)
		return REFUSED("IPv4 options (%u bytes)", ihl - 20);
	if (frag & 0x4000)
		p->flags |= PKT_F_DF;
	p->frag_off = (frag & 0x1fff) * 8u;
	p->l4_off = p->l3_off + ihl;
	p->l4_len = p->ip_len - ihl;
	p->wire_packets = 1;
	p->wire_bytes = p->ip_len;
	p->payload_off = p->l4_off;
	data = p->l4_len;
	if ((frag & 0x2000) || p->frag_off) {
		p->flags |= PKT_F_FRAG;
		if ((frag & 0x4000))
			return MALFORMED("IPv4 fragment with don't-fragment set");
		/* Fragments but the last carry a multiple of 8 bytes (RFC 791). */
		if ((frag & 0x2000) && data % 8)
			return MALFORMED(
			    "IPv4 fragment of %u bytes, not a multiple of 8, with more to "
			    "come",
			    data);
		if ((frag & 0x2000) && data == 0)
			return MALFORMED("empty IPv4 fragment");
		/* Ping of death: a datagram that would reassemble beyond 65535 bytes. */
		if (p->frag_off + data + ihl > 65535)
			return MALFORMED("IPv4 fragment at %u of %u bytes ends beyond 65535",
					 p->frag_off, data);
		/* RFC 1858: a fragment at offset 8 rewrites the TCP flags of the first. */
		if (p->proto == PKT_PROTO_TCP && p->frag_off > 0 && p->frag_off < 20)
			return MALFORMED("TCP fragment at offset %u overlaps the TCP header",
					 p->frag_off);
		if (p->frag_off) {
			p->flags |= PKT_F_FRAG_LATER;
			return PKT_OK;
		}
		p->flags |= PKT_F_FRAG_FIRST;
	}
	return parse_l4(buf, p, why, whylen);
}

static enum pkt_verdict parse_ipv6(const uint8_t *b, uint32_t avail, struct pkt *p, char *why,
				   size_t whylen)
{
	uint32_t plen;

	if (avail < 40)
		return MALFORMED("truncated IPv6 header (%u bytes)", avail);
	if (b[0] >> 4 != 6)
		return MALFORMED("IP version %u in an IPv6 frame", b[0] >> 4);
	plen = get16(b + 4);
	if (plen + 40 > avail)
		return MALFORMED("IPv6 payload length %u beyond frame of %u bytes", plen, p->len);
	p->ip6_next = b[6];
	p->ttl = b[7];
	memcpy(p->ip6_src, b + 8, 16);
	memcpy(p->ip6_dst, b + 24, 16);
	return REFUSED("IPv6 not handled (next header %u)", p->ip6_next);
}

enum pkt_verdict pkt_parse(const uint8_t *buf, size_t len, struct pkt *p, char *why, size_t whylen)
{
	uint32_t off = PKT_ETH_HLEN;
	uint16_t type;

	memset(p, 0, sizeof(*p));
	p->wire_packets = 1; /* wire_bytes: the IPv4 length, once it is known */
	if (why && whylen)
		why[0] = 0;
	/* Nothing on a virtqueue is longer than 64 KiB plus headers; refuse rather than wrap. */
	if (len > 65535 + PKT_ETH_HLEN + PKT_VLAN_HLEN)
		return MALFORMED("frame of %zu bytes too long", len);
	p->len = (uint32_t)len;
	if (len < PKT_ETH_HLEN)
		return MALFORMED("truncated Ethernet header (%zu bytes)", len);
	memcpy(p->dst_mac, buf, 6);
	memcpy(p->src_mac, buf + 6, 6);
	if (p->src_mac[0] & 1)
		return MALFORMED("multicast source MAC");
	type = get16(buf + 12);
	if (type == PKT_ETHERTYPE_VLAN) {
		/* One 802.1Q tag is taken (its id in vlan_id); stacked tags are refused. */
		if (len < PKT_ETH_HLEN + PKT_VLAN_HLEN)
			return MALFORMED("truncated 802.1Q tag (%zu bytes)", len);
		p->flags |= PKT_F_VLAN;
		p->vlan_id = get16(buf + 14) & 0x0fff;
		type = get16(buf + 16);
		off += PKT_VLAN_HLEN;
		if (type == PKT_ETHERTYPE_VLAN || type == PKT_ETHERTYPE_QINQ)
			return REFUSED("stacked VLAN tags");
	} else if (type == PKT_ETHERTYPE_QINQ) {
		return REFUSED("802.1ad (QinQ) tag");
	}
	p->ethertype = type;
	p->l3_off = off;
	if (type < 0x0600)
		return REFUSED("802.3 length field %u, not Ethernet II", type);
	switch (type) {
	case PKT_ETHERTYPE_ARP:
		p->l3 = PKT_L3_ARP;
		return parse_arp(buf + off, p->len - off, p, why, whylen);
	case PKT_ETHERTYPE_IPV4:
		p->l3 = PKT_L3_IPV4;
		return parse_ipv4(buf, p->len - off, p, why, whylen);
	case PKT_ETHERTYPE_IPV6:
		p->l3 = PKT_L3_IPV6;
		return parse_ipv6(buf + off, p->len - off, p, why, whylen);
	default:
		return REFUSED("EtherType 0x%04x not handled", type);
	}
}

bool pkt_frag_allowed(const struct pkt *p, enum pkt_frag_policy policy, char *why, size_t whylen)
{
	if (!(p->flags & PKT_F_FRAG))
		return true;
	if (policy == PKT_FRAG_ALLOW)
		return true;
	if (policy == PKT_FRAG_FIRST && (p->flags & PKT_F_FRAG_FIRST))
		return true;
	fail(why, whylen, PKT_REFUSED,
	     "%s IPv4 fragment (offset %u) refused by the fragment policy",
	     p->flags & PKT_F_FRAG_FIRST ? "first" : "later", p->frag_off);
	return false;
}
