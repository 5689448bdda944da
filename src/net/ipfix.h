/*
 * Flow records of domus-net's VFR: one JSON line per flow for the log, and
 * IPFIX (RFC 7011) messages for a collector such as nfdump's nfcapd. The
 * encoder is pure (time passed in, bytes into the caller's buffer) and
 * tested alone (tests/unit/test_net_ipfix.c); ipfix_export sends what it
 * encodes on a connected UDP socket.
 *
 * A flow here is both directions of a connection, as the VFR's conntrack
 * sees it. IPFIX gets it as up to two unidirectional data records (the
 * reverse one only when packets went back), so collectors that know no
 * biflows (RFC 5103) count every byte in the right direction.
 *
 * The template (id IPFIX_TEMPLATE_ID) has these IANA information elements,
 * in this order, 54 bytes a record:
 *   sourceIPv4Address(8) 4, destinationIPv4Address(12) 4,
 *   sourceTransportPort(7) 2, destinationTransportPort(11) 2,
 *   protocolIdentifier(4) 1, octetDeltaCount(1) 8, packetDeltaCount(2) 8,
 *   flowStartMilliseconds(152) 8, flowEndMilliseconds(153) 8,
 *   ingressInterface(10) 4, egressInterface(14) 4 (the domains' VFR ports),
 *   forwardingStatus(89) 1 (RFC 7270: 64 forwarded, 129 dropped by a rule).
 * The rule's id is only in the JSON line: IANA has no element for it.
 */
#ifndef DOMUS_NET_IPFIX_H
#define DOMUS_NET_IPFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPFIX_VERSION 10
#define IPFIX_HEADER_LEN 16
#define IPFIX_SET_TEMPLATE 2
#define IPFIX_TEMPLATE_ID 256
#define IPFIX_N_FIELDS 12
#define IPFIX_RECORD_LEN 54
/* Set header, template record header, 4 bytes a field. */
#define IPFIX_TEMPLATE_SET_LEN (4 + 4 + 4 * IPFIX_N_FIELDS)
/*
 * Over UDP a collector that starts late, or restarts, knows no template
 * until it is sent again (RFC 7011 section 8.4): once a minute loses at
 * most a minute of records and costs 56 bytes.
 */
#define IPFIX_TEMPLATE_REFRESH_MS 60000
/* IPv4 and UDP headers: what an IPFIX message leaves of the path MTU. */
#define IPFIX_UDP_OVERHEAD 28

#define IPFIX_FWD_FORWARDED 64
#define IPFIX_FWD_DROPPED_ACL 129

enum ipfix_verdict { IPFIX_ACCEPT, IPFIX_DROP, IPFIX_REJECT };

struct ipfix_flow {
	uint64_t start_ms, end_ms;	     /* since the epoch */
	const char *src_domain, *dst_domain; /* NULL: outside, beyond the uplink */
	uint32_t src_port_if, dst_port_if;   /* the domains' VFR ports, as interface indexes */
	uint32_t src_addr, dst_addr;	     /* IPv4, host order */
	uint16_t src_port, dst_port;
	uint8_t proto;
	uint64_t packets, bytes;	 /* source to destination */
	uint64_t rev_packets, rev_bytes; /* back */
	enum ipfix_verdict verdict;
	uint32_t rule; /* the rule that decided; 0: the default policy */
};

/* One exporter per collector and observation domain. */
struct ipfix_exporter {
	uint32_t odid;
	uint32_t mtu;	     /* path MTU to the collector; messages stay within it */
	uint32_t refresh_ms; /* 0: IPFIX_TEMPLATE_REFRESH_MS */
	uint32_t seq;	     /* data records sent so far, modulo 2^32 */
	bool template_sent;
	uint64_t template_ms; /* when it was last sent */
};

void ipfix_exporter_init(struct ipfix_exporter *x, uint32_t odid, uint32_t mtu);

/*
 * Encodes one message at now_ms into buf: the template if it is due, then
 * as many of flows[0..n) as fit within the MTU and len, both records of a
 * flow always in the same message. Sets *used to the flows taken and
 * returns the message's length; -EMSGSIZE when the MTU or len cannot hold
 * the header, the template and one flow. A message with no flows is made
 * only when the template is due (to refresh it); otherwise 0 is returned.
 */
int ipfix_encode(struct ipfix_exporter *x, uint64_t now_ms, const struct ipfix_flow *flows,
		 size_t n, size_t *used, uint8_t *buf, size_t len);

/* Encodes and sends all n flows on fd (a connected UDP socket). 0 or -errno. */
int ipfix_export(struct ipfix_exporter *x, int fd, uint64_t now_ms, const struct ipfix_flow *flows,
		 size_t n);

/*
 * One flow as a JSON line, newline included:
 * {"start":..,"end":..,"src_domain":"a","dst_domain":null,"proto":6,
 *  "src":"10.0.0.2","sport":40000,"dst":"192.0.2.1","dport":80,
 *  "packets":..,"bytes":..,"rev_packets":..,"rev_bytes":..,
 *  "verdict":"accept","rule":3}
 * Returns its length, -ENOSPC when len cannot hold it (and the NUL), -ENOMEM.
 */
int ipfix_json_line(const struct ipfix_flow *f, char *buf, size_t len);

const char *ipfix_verdict_name(enum ipfix_verdict v);

#endif
