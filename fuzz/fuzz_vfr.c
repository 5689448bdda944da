/*
 * The VFR's datapath on hostile frames: one VFR kept across inputs, with a
 * NAT network, a routed one and an RSIP one, a few ports and the uplink.
 * The input is a sequence of records: a byte choosing the port (its high
 * bit: an offload header follows), a byte of clock step, two bytes of
 * length, then the 12-byte virtio_net_hdr if any and the frame. A frame
 * forwarded with an offload must be one the receiver's side can finish
 * (cut into frames, checksum completed): the VFR checked it. Now and then the VFR is
 * freed and taken over again from its state region, as after a restart.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/vfr.h"

#define CAP 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t emitted;

static void count_frame(void *ctx, const uint8_t *f, size_t len)
{
	if (len > 14 + VFR_MTU)
		abort();
	emitted += f[len - 1];
}

static void emit(void *ctx, uint32_t port, const uint8_t *f, size_t len,
		 const struct virtio_net_hdr *off)
{
	static uint8_t buf[VFR_GSO_FRAME_MAX];

	if (len > (off ? VFR_GSO_FRAME_MAX : VFR_FRAME_MAX) ||
	    (port != VFR_UPLINK && port >= CT_MAX_DOMAINS))
		abort();
	emitted += f[0] + len; /* reads the whole frame's first byte: ASan checks it is there */
	if (!off)
		return;
	if (off->gso_type == VIRTIO_NET_HDR_GSO_TCPV4) {
		if (offload_tcp4_segment(f, len, off->gso_size, buf, 14 + VFR_MTU, count_frame, NULL))
			abort();
		return;
	}
	memcpy(buf, f, len);
	if (off->gso_type != VIRTIO_NET_HDR_GSO_NONE ||
	    offload_csum_complete(buf, len, off->csum_start, off->csum_offset))
		abort();
}

static void log_line(void *ctx, const char *line)
{
	if (!memchr(line, 0, 256))
		abort();
}

static void flow(void *ctx, const struct ipfix_flow *f) {}

static const uint32_t port_ids[] = {VFR_UPLINK, 2, 3, 4, 5, 6};

static void configure(struct vfr *v)
{
	struct vfr_uplink_config u = {
	    .mac = {2, 0, 0, 0, 0, 1}, .addr = 0xcb007107, .prefix = 24, .gateway = 0xcb007101};
	struct vfr_net_config n[] = {
	    {.id = 1,
	     .name = "lan",
	     .subnet = 0x0a000100,
	     .prefix = 24,
	     .dns = 0x0a000135,
	     .mode = VFR_UPLINK_NAT,
	     .frag_policy = PKT_FRAG_FIRST},
	    {.id = 2,
	     .name = "dmz",
	     .subnet = 0x0a000200,
	     .prefix = 24,
	     .mode = VFR_UPLINK_ROUTED,
	     .default_action = VFR_REJECT},
	    {.id = 3,
	     .name = "pub",
	     .subnet = 0xcb007100,
	     .prefix = 24,
	     .gateway = 0xcb007101,
	     .mode = VFR_UPLINK_RSIP,
	     .frag_policy = PKT_FRAG_ALLOW},
	};
	struct vfr_port_config p[] = {
	    {.id = 2, .name = "web", .net = 1, .mac = {0x52, 0x54, 0, 0, 0, 2}, .addr = 0x0a000102},
	    {.id = 3,
	     .name = "db",
	     .net = 1,
	     .mac = {0x52, 0x54, 0, 0, 0, 3},
	     .addr = 0x0a000103,
	     .rate_pps = 100},
	    {.id = 4, .name = "app", .net = 2, .mac = {0x52, 0x54, 0, 0, 0, 4}, .addr = 0x0a000204},
	    {.id = 5,
	     .name = "r1",
	     .net = 3,
	     .mac = {0x52, 0x54, 0, 0, 0, 5},
	     .addr = 0xcb007107,
	     .slice = {20000, 20999}},
	    {.id = 6,
	     .name = "r2",
	     .net = 3,
	     .mac = {0x52, 0x54, 0, 0, 0, 6},
	     .addr = 0xcb007107,
	     .slice = {21000, 21999}},
	};
	char err[160];
	uint32_t id;
	size_t i;

	if (vfr_set_uplink(v, &u, err, sizeof(err)))
		abort();
	for (i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		if (vfr_add_net(v, &n[i], err, sizeof(err)))
			abort();
	for (i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (vfr_add_port(v, &p[i], err, sizeof(err)))
			abort();
	if (vfr_rule_add(v, "reject in proto tcp to domain app port 22", -1, &id, err,
			 sizeof(err)) ||
	    vfr_rule_add(v, "accept in proto udp to network pub", -1, &id, err, sizeof(err)) ||
	    vfr_rule_add(v, "drop out proto udp to any port 53", -1, &id, err, sizeof(err)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static _Alignas(64) uint8_t region[1 << 20];
	static struct vfr *v;
	static uint64_t now = 1000;
	static unsigned runs;
	struct vfr_callbacks cb = {.emit = emit, .log = log_line, .flow = flow};
	char err[160];
	size_t off = 0;

	if (vfr_state_size(CAP) > sizeof(region))
		abort();
	if (!v) {
		if (vfr_new(region, sizeof(region), true, CAP, 42, &cb, &v, err, sizeof(err)))
			abort();
		configure(v);
	}
	while (off + 4 <= size) {
		uint32_t port = port_ids[(data[off] & 0x7f) % (sizeof(port_ids) / sizeof(port_ids[0]))];
		size_t len = (size_t)data[off + 2] << 8 | data[off + 3];
		struct virtio_net_hdr h;
		bool has_off = data[off] & 0x80;

		now += (uint64_t)data[off + 1] * 37;
		off += 4;
		if (has_off) {
			if (size - off < sizeof(h))
				break;
			memcpy(&h, data + off, sizeof(h));
			off += sizeof(h);
		}
		if (len > size - off)
			len = size - off;
		vfr_input_offload(v, port, data + off, len, has_off ? &h : NULL, now,
				  now + 1700000000000ull);
		off += len;
	}
	if (++runs % 64 == 0)
		vfr_tick(v, now, now + 1700000000000ull);
	if (runs % 512 == 0) {
		/* A restart: the same region taken over, the configuration handed again. */
		vfr_free(v);
		v = NULL;
		if (vfr_new(region, sizeof(region), false, CAP, 42, &cb, &v, err, sizeof(err)))
			abort();
		configure(v);
	}
	return 0;
}
