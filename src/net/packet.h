/*
 * The VFR's frame parser: one Ethernet frame as a domain (or the uplink)
 * sent it, taken apart into the fields the switch, the firewall and
 * connection tracking need. Every frame is hostile until parsed: every
 * length is checked before the bytes behind it are read, and a frame that
 * lies about itself (truncated headers, lengths beyond the frame, a bad
 * IPv4 header checksum, impossible fragments, bogus TCP flags) is
 * PKT_MALFORMED with a short reason for the log. A well formed frame that
 * domus-net does not handle (IPv4 options, IPv6, other EtherTypes, stacked
 * VLAN tags) is PKT_REFUSED, also with a reason. docs/net.md lists the
 * rules.
 *
 * Fields are in host byte order; offsets are from the frame's first byte.
 */
#ifndef DOMUS_NET_PACKET_H
#define DOMUS_NET_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_ETH_HLEN 14
#define PKT_VLAN_HLEN 4
#define PKT_ETHERTYPE_IPV4 0x0800
#define PKT_ETHERTYPE_ARP 0x0806
#define PKT_ETHERTYPE_VLAN 0x8100
#define PKT_ETHERTYPE_QINQ 0x88a8
#define PKT_ETHERTYPE_IPV6 0x86dd

#define PKT_PROTO_ICMP 1
#define PKT_PROTO_TCP 6
#define PKT_PROTO_UDP 17

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10
#define PKT_TCP_URG 0x20

#define PKT_ICMP_ECHO_REPLY 0
#define PKT_ICMP_UNREACH 3
#define PKT_ICMP_SOURCE_QUENCH 4
#define PKT_ICMP_REDIRECT 5
#define PKT_ICMP_ECHO 8
#define PKT_ICMP_TIME_EXCEEDED 11
#define PKT_ICMP_PARAM_PROBLEM 12

#define PKT_REASON_MAX 96

enum pkt_verdict {
	PKT_OK = 0,
	PKT_MALFORMED, /* the frame lies about itself: hostile */
	PKT_REFUSED,   /* well formed, but not something domus-net lets through */
};

enum pkt_l3 { PKT_L3_NONE = 0, PKT_L3_ARP, PKT_L3_IPV4, PKT_L3_IPV6 };

/* flags */
#define PKT_F_VLAN 0x01	      /* one 802.1Q tag, in vlan_id */
#define PKT_F_FRAG 0x02	      /* an IPv4 fragment (MF set or offset > 0) */
#define PKT_F_FRAG_FIRST 0x04 /* offset 0, MF set: holds the whole L4 header */
#define PKT_F_FRAG_LATER 0x08 /* offset > 0: no L4 header, no ports */
#define PKT_F_L4 0x10	      /* the L4 fields below are valid */
#define PKT_F_ICMP_ERROR 0x20 /* an ICMP error whose embedded header is in inner */
#define PKT_F_DF 0x40	      /* IPv4 don't-fragment */

/* The original datagram an ICMP error quotes: its IPv4 header and first 8 bytes. */
struct pkt_inner {
	uint32_t src, dst;
	uint8_t proto;
	uint16_t sport, dport; /* TCP/UDP ports, or for ICMP echo the id in both */
	uint8_t icmp_type;
	bool has_ports;
};

struct pkt {
	uint32_t len; /* the frame's length */
	uint32_t flags;
	uint8_t dst_mac[6], src_mac[6];
	uint16_t vlan_id;   /* with PKT_F_VLAN */
	uint16_t ethertype; /* after the tag, if any */
	enum pkt_l3 l3;
	uint32_t l3_off, l4_off, payload_off;

	/* ARP (Ethernet, IPv4) */
	uint16_t arp_op;
	uint8_t arp_sha[6], arp_tha[6];
	uint32_t arp_spa, arp_tpa;

	/* IPv4 */
	uint32_t src, dst;
	uint8_t proto, ttl, tos;
	uint16_t ip_len; /* total length: what the datagram says it is, <= the frame */
	uint16_t ip_id;
	uint32_t frag_off; /* in bytes */
	uint32_t l4_len;   /* bytes from l4_off to the datagram's end */
	/*
	 * The IPv4 packets on the wire this one stands for, and their bytes:
	 * 1 and ip_len as parsed; more for a TCP segment its sender left to
	 * cut (the VFR sets them from its offload header, net/offload.h).
	 */
	uint32_t wire_packets, wire_bytes;

	/* IPv6: recognised only (PKT_REFUSED), these for the log */
	uint8_t ip6_src[16], ip6_dst[16];
	uint8_t ip6_next;

	/* L4, with PKT_F_L4 */
	uint16_t sport, dport; /* TCP/UDP; for ICMP echo/reply the id in both */
	uint8_t tcp_flags;
	uint32_t tcp_seq, tcp_ack;
	uint16_t tcp_win;
	uint16_t udp_len;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq;
	struct pkt_inner inner; /* with PKT_F_ICMP_ERROR */
};

/*
 * Parses the frame buf[0, len) into p (always fully written, zeroed first).
 * Returns PKT_OK, or PKT_MALFORMED / PKT_REFUSED with the reason in why
 * (may be NULL): "truncated IPv4 header", "IPv4 total length 1500 beyond
 * frame of 60 bytes", ... Reads no byte outside buf[0, len).
 */
enum pkt_verdict pkt_parse(const uint8_t *buf, size_t len, struct pkt *p, char *why, size_t whylen);

/* What the firewall does with fragments (docs/net.md). */
enum pkt_frag_policy {
	PKT_FRAG_DROP = 0, /* every fragment dropped: the default */
	PKT_FRAG_FIRST, /* first fragments go to the rules with their ports; later ones dropped */
	PKT_FRAG_ALLOW, /* later fragments too, matched as if they had no ports */
};

/*
 * Whether a parsed IPv4 packet p passes the fragment policy: true for a
 * packet that is no fragment; false with the reason in why otherwise.
 */
bool pkt_frag_allowed(const struct pkt *p, enum pkt_frag_policy policy, char *why, size_t whylen);

/* True when TCP flags are a combination no real stack sends (SYN+FIN, null, xmas, ...). */
bool pkt_tcp_flags_bogus(uint8_t flags);
/* The flags as text: "SYN,ACK" ("none" for 0); returns buf. */
const char *pkt_tcp_flags_str(uint8_t flags, char *buf, size_t len);
/* The RFC 1071 checksum of buf[0, len) (the value as read big-endian: 0 when a header sums right).
 */
uint16_t pkt_csum(const uint8_t *buf, size_t len);
/*
 * The same in parts: s plus the ones' complement sum of buf[0, len) as
 * big-endian words, not folded (at most 64 KiB and a pseudo-header in all),
 * and the checksum of such a sum, folded and complemented.
 */
uint32_t pkt_sum(uint32_t s, const uint8_t *buf, size_t len);
uint16_t pkt_sum_fold(uint32_t s);

#endif
