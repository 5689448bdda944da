#include "net/offload.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/packet.h"

#define FEATURE(f, bit) (((f) >> (bit)) & 1)

#define ETH_HLEN 14
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

bool virtio_net_tx_header_ok(const struct virtio_net_hdr *h, uint64_t features, size_t frame_len)
{
	bool partial = h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;

	if ((h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
	    (partial && !FEATURE(features, VIRTIO_NET_F_CSUM)))
		return false;
	switch (h->gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return frame_len <= VIRTIO_NET_FRAME_MAX;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!FEATURE(features, VIRTIO_NET_F_HOST_TSO4))
			return false;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!FEATURE(features, VIRTIO_NET_F_HOST_TSO6))
			return false;
		break;
	default:
		return false; /* UFO, USO, ECN: not offered */
	}
	/* A segment to cut needs its checksum left to the device, and a size to cut it to. */
	return partial && h->gso_size > 0 && frame_len <= VIRTIO_NET_GSO_FRAME_MAX;
}

bool virtio_net_rx_header_ok(const struct virtio_net_hdr *h, uint64_t features, size_t frame_len)
{
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !FEATURE(features, VIRTIO_NET_F_GUEST_CSUM))
		return false;
	switch (h->gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return frame_len <= VIRTIO_NET_FRAME_MAX;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return FEATURE(features, VIRTIO_NET_F_GUEST_TSO4) &&
		       frame_len <= VIRTIO_NET_GSO_FRAME_MAX;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return FEATURE(features, VIRTIO_NET_F_GUEST_TSO6) &&
		       frame_len <= VIRTIO_NET_GSO_FRAME_MAX;
	default:
		return false;
	}
}

bool virtio_net_ctrl_pairs_set(const uint8_t *cmd, size_t len, uint64_t features,
			       unsigned max_pairs, uint16_t *pairs)
{
	uint16_t n;

	if (len != 4 || cmd[0] != VIRTIO_NET_CTRL_MQ || cmd[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    !FEATURE(features, VIRTIO_NET_F_MQ))
		return false;
	n = (uint16_t)(cmd[2] | cmd[3] << 8); /* little-endian, as the driver writes it */
	if (n < 1 || n > max_pairs)
		return false;
	*pairs = n;
	return true;
}

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }

static void put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

int offload_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	size_t at = (size_t)csum_start + csum_offset;
	uint16_t c;

	if (csum_start >= len || at + 2 > len)
		return -EINVAL;
	c = pkt_csum(frame + csum_start, len - csum_start);
	/* 0 would say "no checksum" to UDP: the same sum written the other way (RFC 768). */
	put16(frame + at, c ? c : 0xffff);
	return 0;
}

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int offload_tcp4_segs(const uint8_t *f, size_t len, uint16_t gso_size, size_t max_frame,
		      struct offload_segs *s, char *why, size_t whylen)
{
	size_t ihl, doff, payload;

	memset(s, 0, sizeof(*s));
	if (len < ETH_HLEN + 20 || get16(f + 12) != 0x0800)
		return bad(why, whylen, "segment is not IPv4 behind an untagged Ethernet header");
	ihl = (size_t)(f[ETH_HLEN] & 0xf) * 4;
	if ((f[ETH_HLEN] >> 4) != 4 || ihl < 20 || ETH_HLEN + ihl + 20 > len)
		return bad(why, whylen, "segment's IPv4 or TCP header beyond the frame");
	if (f[ETH_HLEN + 9] != 6)
		return bad(why, whylen, "segment of protocol %u, not TCP", f[ETH_HLEN + 9]);
	if (get16(f + ETH_HLEN + 6) & 0x3fff)
		return bad(why, whylen, "segment is an IPv4 fragment");
	if (get16(f + ETH_HLEN + 2) != len - ETH_HLEN)
		return bad(why, whylen, "segment's IPv4 length %u is not its frame's %zu",
			   get16(f + ETH_HLEN + 2), len - ETH_HLEN);
	doff = (size_t)(f[ETH_HLEN + ihl + 12] >> 4) * 4;
	if (doff < 20 || ETH_HLEN + ihl + doff > len)
		return bad(why, whylen, "segment's TCP header beyond the frame");
	s->l3_off = ETH_HLEN;
	s->l4_off = (uint32_t)(ETH_HLEN + ihl);
	s->payload_off = (uint32_t)(ETH_HLEN + ihl + doff);
	if (gso_size < OFFLOAD_MSS_MIN)
		return bad(why, whylen, "segment size %u below %u", gso_size, OFFLOAD_MSS_MIN);
	if (s->payload_off + (size_t)gso_size > max_frame)
		return bad(why, whylen, "segment size %u makes frames of %zu bytes, beyond %zu", gso_size,
			   (size_t)s->payload_off + gso_size, max_frame);
	payload = len - s->payload_off;
	s->count = payload ? (uint32_t)((payload + gso_size - 1) / gso_size) : 1;
	s->wire_bytes = (uint32_t)(len + (size_t)(s->count - 1) * s->payload_off);
	return 0;
}

int offload_tcp4_segment(const uint8_t *frame, size_t len, uint16_t gso_size, uint8_t *buf,
			 size_t max_frame, offload_out_fn out, void *ctx)
{
	struct offload_segs s;
	uint32_t seq, hdr, off = 0;
	uint16_t id;
	int ret;

	if ((ret = offload_tcp4_segs(frame, len, gso_size, max_frame, &s, NULL, 0)) < 0)
		return ret;
	hdr = s.payload_off;
	id = get16(frame + s.l3_off + 4);
	seq = (uint32_t)get16(frame + s.l4_off + 4) << 16 | get16(frame + s.l4_off + 6);
	for (uint32_t i = 0; i < s.count; i++) {
		size_t chunk = len - hdr - off < gso_size ? len - hdr - off : gso_size;
		uint8_t *ip = buf + s.l3_off, *tcp = buf + s.l4_off;
		size_t tcp_len = hdr - s.l4_off + chunk;
		uint32_t sum;

		memcpy(buf, frame, hdr);
		memcpy(buf + hdr, frame + hdr + off, chunk);
		put16(ip + 2, (uint16_t)(hdr - s.l3_off + chunk));
		put16(ip + 4, (uint16_t)(id + i));
		put16(ip + 10, 0);
		put16(ip + 10, pkt_csum(ip, s.l4_off - s.l3_off));
		put16(tcp + 4, (uint16_t)((seq + off) >> 16));
		put16(tcp + 6, (uint16_t)(seq + off));
		if (i + 1 < s.count)
			tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i > 0)
			tcp[13] &= (uint8_t)~TCP_CWR;
		put16(tcp + 16, 0);
		sum = pkt_sum(0, ip + 12, 8) + 6 + (uint32_t)tcp_len; /* the pseudo-header */
		put16(tcp + 16, pkt_sum_fold(pkt_sum(sum, tcp, tcp_len)));
		out(ctx, buf, hdr + chunk);
		off += (uint32_t)chunk;
	}
	return 0;
}
