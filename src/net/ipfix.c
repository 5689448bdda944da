/* Flow records as JSON lines and IPFIX messages: see ipfix.h. */
#include "net/ipfix.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The template's fields: IANA element id and length, in record order. */
static const uint16_t fields[IPFIX_N_FIELDS][2] = {
    {8, 4},   /* sourceIPv4Address */
    {12, 4},  /* destinationIPv4Address */
    {7, 2},   /* sourceTransportPort */
    {11, 2},  /* destinationTransportPort */
    {4, 1},   /* protocolIdentifier */
    {1, 8},   /* octetDeltaCount */
    {2, 8},   /* packetDeltaCount */
    {152, 8}, /* flowStartMilliseconds */
    {153, 8}, /* flowEndMilliseconds */
    {10, 4},  /* ingressInterface */
    {14, 4},  /* egressInterface */
    {89, 1},  /* forwardingStatus */
};

void ipfix_exporter_init(struct ipfix_exporter *x, uint32_t odid, uint32_t mtu)
{
	*x = (struct ipfix_exporter){
	    .odid = odid, .mtu = mtu ? mtu : 1500, .refresh_ms = IPFIX_TEMPLATE_REFRESH_MS};
}

/* Network byte order writers: IPFIX is big-endian throughout (RFC 7011 section 3). */
static uint8_t *put8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	p = put32(p, (uint32_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static uint8_t *put_template(uint8_t *p)
{
	p = put16(p, IPFIX_SET_TEMPLATE);
	p = put16(p, IPFIX_TEMPLATE_SET_LEN);
	p = put16(p, IPFIX_TEMPLATE_ID);
	p = put16(p, IPFIX_N_FIELDS);
	for (size_t i = 0; i < IPFIX_N_FIELDS; i++) {
		p = put16(p, fields[i][0]);
		p = put16(p, fields[i][1]);
	}
	return p;
}

static uint8_t fwd_status(enum ipfix_verdict v)
{
	/* RFC 7270: the two high bits say forwarded (01) or dropped (10), the rest why. */
	return v == IPFIX_ACCEPT ? IPFIX_FWD_FORWARDED : IPFIX_FWD_DROPPED_ACL;
}

static uint8_t *put_record(uint8_t *p, const struct ipfix_flow *f, bool reverse)
{
	p = put32(p, reverse ? f->dst_addr : f->src_addr);
	p = put32(p, reverse ? f->src_addr : f->dst_addr);
	p = put16(p, reverse ? f->dst_port : f->src_port);
	p = put16(p, reverse ? f->src_port : f->dst_port);
	p = put8(p, f->proto);
	p = put64(p, reverse ? f->rev_bytes : f->bytes);
	p = put64(p, reverse ? f->rev_packets : f->packets);
	p = put64(p, f->start_ms);
	p = put64(p, f->end_ms);
	p = put32(p, reverse ? f->dst_port_if : f->src_port_if);
	p = put32(p, reverse ? f->src_port_if : f->dst_port_if);
	return put8(p, fwd_status(f->verdict));
}

static size_t records_of(const struct ipfix_flow *f) { return f->rev_packets ? 2 : 1; }

int ipfix_encode(struct ipfix_exporter *x, uint64_t now_ms, const struct ipfix_flow *flows,
		 size_t n, size_t *used, uint8_t *buf, size_t len)
{
	size_t max = len, records = 0, i = 0;
	uint32_t refresh = x->refresh_ms ? x->refresh_ms : IPFIX_TEMPLATE_REFRESH_MS;
	bool tmpl = !x->template_sent || now_ms - x->template_ms >= refresh;
	uint8_t *p = buf + IPFIX_HEADER_LEN, *set;

	*used = 0;
	if (x->mtu <= IPFIX_UDP_OVERHEAD)
		return -EMSGSIZE;
	if (max > x->mtu - IPFIX_UDP_OVERHEAD)
		max = x->mtu - IPFIX_UDP_OVERHEAD;
	/* Room for the worst first message, so every message makes progress. */
	if (max < IPFIX_HEADER_LEN + IPFIX_TEMPLATE_SET_LEN + 4 + 2 * IPFIX_RECORD_LEN)
		return -EMSGSIZE;
	if (!n && !tmpl)
		return 0;
	if (tmpl)
		p = put_template(p);
	if (n) {
		set = p;
		p += 4;
		while (i < n) {
			size_t k = records_of(&flows[i]);
			if ((size_t)(p - buf) + k * IPFIX_RECORD_LEN > max)
				break;
			p = put_record(p, &flows[i], false);
			if (k == 2)
				p = put_record(p, &flows[i], true);
			records += k;
			i++;
		}
		put16(set, IPFIX_TEMPLATE_ID);
		put16(set + 2, (uint16_t)(p - set));
	}
	put16(buf, IPFIX_VERSION);
	put16(buf + 2, (uint16_t)(p - buf));
	put32(buf + 4, (uint32_t)(now_ms / 1000));
	/* The number of data records sent before this message (RFC 7011 section 3.1). */
	put32(buf + 8, x->seq);
	put32(buf + 12, x->odid);
	x->seq += (uint32_t)records;
	if (tmpl) {
		x->template_sent = true;
		x->template_ms = now_ms;
	}
	*used = i;
	return (int)(p - buf);
}

int ipfix_export(struct ipfix_exporter *x, int fd, uint64_t now_ms, const struct ipfix_flow *flows,
		 size_t n)
{
	uint8_t buf[65536];
	size_t done = 0, used;
	int len;

	do {
		len = ipfix_encode(x, now_ms, flows + done, n - done, &used, buf, sizeof(buf));
		if (len < 0)
			return len;
		if (len && send(fd, buf, (size_t)len, 0) < 0)
			return -errno;
		done += used;
	} while (done < n);
	return 0;
}

const char *ipfix_verdict_name(enum ipfix_verdict v)
{
	switch (v) {
	case IPFIX_ACCEPT:
		return "accept";
	case IPFIX_DROP:
		return "drop";
	case IPFIX_REJECT:
		return "reject";
	}
	return "unknown";
}

static void addr_text(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

int ipfix_json_line(const struct ipfix_flow *f, char *buf, size_t len)
{
	char src[16], dst[16];
	json_t *o;
	size_t n;

	addr_text(f->src_addr, src, sizeof(src));
	addr_text(f->dst_addr, dst, sizeof(dst));
	/* Counters above 2^63 do not happen on one flow; json_int_t is signed. */
	o = json_pack("{s:I,s:I,s:s?,s:s?,s:i,s:s,s:i,s:s,s:i,s:I,s:I,s:I,s:I,s:s,s:I}", "start",
		      (json_int_t)f->start_ms, "end", (json_int_t)f->end_ms, "src_domain",
		      f->src_domain, "dst_domain", f->dst_domain, "proto", (int)f->proto, "src",
		      src, "sport", (int)f->src_port, "dst", dst, "dport", (int)f->dst_port,
		      "packets", (json_int_t)f->packets, "bytes", (json_int_t)f->bytes,
		      "rev_packets", (json_int_t)f->rev_packets, "rev_bytes",
		      (json_int_t)f->rev_bytes, "verdict", ipfix_verdict_name(f->verdict), "rule",
		      (json_int_t)f->rule);
	if (!o)
		return -ENOMEM;
	n = json_dumpb(o, buf, len, JSON_COMPACT);
	json_decref(o);
	if (!n)
		return -ENOMEM;
	if (n + 2 > len)
		return -ENOSPC;
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return (int)(n + 1);
}
