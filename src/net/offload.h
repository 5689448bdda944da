/*
 * virtio-net's offload header (virtio 1.2, 5.1.6) and what a device does
 * for the offloads a receiver does not take: completing a checksum the
 * sender left partial, cutting a TCP/IPv4 segment of up to 64 KiB into
 * frames of one MTU. Shared by the in-VMM NIC (src/devices/virtio_net.c),
 * domus-net's ports (netport.c) and the VFR, which counts a segment as the
 * frames it stands for. Pure: no I/O, no allocation.
 */
#ifndef DOMUS_NET_OFFLOAD_H
#define DOMUS_NET_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_NET_F_CSUM 0	  /* the device completes checksums the driver left partial */
#define VIRTIO_NET_F_GUEST_CSUM 1 /* the driver takes frames with partial checksums */
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7 /* the driver takes TCP/IPv4 segments up to 64 KiB */
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_HOST_TSO4 11 /* the device takes them from the driver */
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_MRG_RXBUF 15 /* a received frame may span several buffers */
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17 /* a control queue, the last one */
#define VIRTIO_NET_F_MQ 22	/* several queue pairs, chosen over the control queue */
/* The control queue's one command we take (virtio 1.2, 5.1.6.5.5), and its answers. */
#define VIRTIO_NET_CTRL_MQ 4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1
/* Queue pairs a device may offer (the control queue makes the 16th of VIRTIO_MAX_QUEUES). */
#define VIRTIO_NET_PAIRS_MAX 7
#define VIRTIO_NET_S_LINK_UP 1

#define VIRTIO_NET_HDR_LEN 12	  /* struct virtio_net_hdr_v1, VERSION_1 */
#define VIRTIO_NET_FRAME_MAX 1518 /* Ethernet, one VLAN tag, no FCS: what we carry */
/* A TSO frame: an IP packet of at most 64 KiB behind an Ethernet header and a VLAN tag. */
#define VIRTIO_NET_GSO_FRAME_MAX (65535 + 18)
#define VIRTIO_NET_RX_CHAINS_MAX 64 /* buffers one received frame may span */

/* struct virtio_net_hdr_v1 (virtio 1.2, 5.1.6), little-endian like the hosts we run on. */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_TCPV6 4

/*
 * Whether a header the driver put before a frame of frame_len bytes asks
 * only for what features negotiated (virtio 1.2, 5.1.6.2): a checksum to
 * complete needs CSUM, a TSO segment HOST_TSO4/6 and a partial checksum,
 * a frame longer than VIRTIO_NET_FRAME_MAX a TSO segment.
 */
bool virtio_net_tx_header_ok(const struct virtio_net_hdr *h, uint64_t features, size_t frame_len);
/* The same for a header before a frame for the driver: GUEST_CSUM, GUEST_TSO4/6. */
bool virtio_net_rx_header_ok(const struct virtio_net_hdr *h, uint64_t features, size_t frame_len);
/*
 * A control-queue command (cmd[0, len): class, command, data) as a
 * device with max_pairs pairs takes it: VQ_PAIRS_SET with MQ negotiated
 * and 1 to max_pairs pairs, the count in *pairs; false for anything else,
 * which the device answers with VIRTIO_NET_ERR.
 */
bool virtio_net_ctrl_pairs_set(const uint8_t *cmd, size_t len, uint64_t features,
			       unsigned max_pairs, uint16_t *pairs);

/* Whether h asks a device for anything: a checksum to complete or a segment to cut. */
static inline bool offload_wanted(const struct virtio_net_hdr *h)
{
	return h && ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h->gso_type != VIRTIO_NET_HDR_GSO_NONE);
}

/*
 * Completes the partial checksum of frame[0, len): the ones' complement
 * sum of frame[csum_start, len) (the sender left the pseudo-header's sum
 * in the field) stored at csum_start + csum_offset. 0, or -EINVAL when
 * the field is not inside the frame.
 */
int offload_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset);

/* What a TCP/IPv4 segment of gso_size bytes a frame stands for, read from its headers. */
struct offload_segs {
	uint32_t l3_off, l4_off, payload_off; /* IPv4 header, TCP header, payload */
	uint32_t count;			      /* frames on the wire */
	uint32_t wire_bytes;		      /* their Ethernet bytes, headers repeated */
};

/*
 * The frames frame[0, len) (Ethernet, IPv4 without a VLAN tag, TCP) cut
 * into pieces of gso_size payload bytes makes. 0, or -EINVAL naming what
 * is wrong in why (may be NULL): not TCP/IPv4, a fragment, headers beyond
 * the frame, an IPv4 length that is not the frame's, a size below
 * OFFLOAD_MSS_MIN or one whose frames would exceed max_frame bytes.
 */
#define OFFLOAD_MSS_MIN 48 /* Linux's smallest TCP segment size: a frame cut into 1366 at most */
int offload_tcp4_segs(const uint8_t *frame, size_t len, uint16_t gso_size, size_t max_frame,
		      struct offload_segs *s, char *why, size_t whylen);

/*
 * Cuts frame[0, len) as offload_tcp4_segs counts it and hands each frame,
 * checksums complete, to out: IPv4 length, identification (one more each
 * frame) and header checksum, TCP sequence number, FIN and PSH only on the
 * last, CWR only on the first, the TCP checksum computed whole (whatever
 * the field held). buf holds one frame (max_frame bytes, as counted).
 * 0 or -EINVAL.
 */
typedef void (*offload_out_fn)(void *ctx, const uint8_t *frame, size_t len);
int offload_tcp4_segment(const uint8_t *frame, size_t len, uint16_t gso_size, uint8_t *buf,
			 size_t max_frame, offload_out_fn out, void *ctx);

#endif
