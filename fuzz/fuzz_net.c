/*
 * The in-VMM virtio-net device under a hostile driver, with neither TAP nor
 * receive thread: the input is the ring features and sizes, a sequence of
 * transmit kicks, frames arriving from the TAP (each behind the header
 * the TAP gives, offloads or not), receive kicks and writes
 * to guest memory, then the guest memory itself (rings, descriptors,
 * frames to send, buffers to receive into). What the device sends goes to
 * /dev/null. It may send, deliver, drop, or put itself in NEEDS_RESET; it
 * must never touch memory outside the guest buffer or the frame, nor crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_net.h"

#include "fuzz_input.h"

#define MEM 65536
#define HEADER_LEN 5 /* flags, two queue sizes, the length of the operations */

/* The first input byte. */
#define FLAG_EVENT_IDX 0x01
#define FLAG_INDIRECT 0x02
#define FLAG_DRIVER_OK 0x04
#define FLAG_OFFLOADS 0x08 /* the driver took checksums, TSO and mergeable buffers */

enum op {
	OP_TRANSMIT,
	OP_RECEIVE,
	OP_RECEIVE_KICK,
	OP_MEM_WRITE,
	OP_COUNT,
};

/* Where the rings are: the receive queue's in the first 12 KiB, the transmit queue's next. */
static const uint64_t ring_gpas[2][3] = {
	[VIRTIO_NET_RX] = {0x0000, 0x1000, 0x2000},
	[VIRTIO_NET_TX] = {0x3000, 0x4000, 0x5000},
};

static struct virtio_net net;
static struct guest_mem gm;
static uint8_t tx_buf[VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX];

static void build_device(uint8_t flags, const uint8_t size_log2[2])
{
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

	memset(&net, 0, sizeof(net));
	net.vdev.ops = &virtio_net_ops;
	net.vdev.priv = &net;
	pthread_mutex_init(&net.vdev.lock, NULL);
	net.tap_fd = fuzz_sink_fd();
	net.tx_buf = tx_buf;
	if (flags & FLAG_OFFLOADS)
		net.vdev.driver_features = VIRTIO_NET_OFFLOADS;
	net.stop_fd = fuzz_sink_fd();
	memcpy(net.config.mac, mac, sizeof(mac));
	net.config.status = VIRTIO_NET_S_LINK_UP;
	if (flags & FLAG_DRIVER_OK)
		net.vdev.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				  VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	for (unsigned q = 0; q < 2; q++) {
		struct virtq *vq = &net.vdev.vqs[q];

		virtq_init(vq, &gm, VIRTIO_NET_QUEUE_SIZE);
		vq->size = (uint16_t)(1u << (size_log2[q] % 9));
		vq->event_idx = flags & FLAG_EVENT_IDX;
		vq->indirect = flags & FLAG_INDIRECT;
		vq->desc_gpa = ring_gpas[q][0];
		vq->avail_gpa = ring_gpas[q][1];
		vq->used_gpa = ring_gpas[q][2];
		(void)virtq_enable(vq); /* a queue left disabled is a case too */
	}
}

/* A kick as the transport passes it on: only for an enabled queue of a ready driver, lock held. */
static void kick(unsigned q)
{
	if (!net.vdev.vqs[q].enabled || !virtio_driver_ready(&net.vdev))
		return;
	pthread_mutex_lock(&net.vdev.lock);
	virtio_net_ops.queue_notify(&net.vdev, q);
	pthread_mutex_unlock(&net.vdev.lock);
}

/* A frame of a 16-bit length (at most what is left), in a buffer of exactly that size. */
static void receive(struct fuzz_input *in)
{
	size_t len;
	const uint8_t *bytes = fuzz_take_bytes(in, (size_t)fuzz_take(in, 2), &len);
	uint8_t *frame = malloc(len ? len : 1);

	if (!frame)
		abort();
	memcpy(frame, bytes, len);
	(void)virtio_net_receive_frame(&net, frame, len);
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *ram = fuzz_guest_ram(MEM);
	struct fuzz_input ops;
	size_t ops_len;

	if (size < HEADER_LEN)
		return 0;
	ops_len = (size_t)data[3] | (size_t)data[4] << 8;
	if (ops_len > size - HEADER_LEN)
		ops_len = size - HEADER_LEN;
	ops = (struct fuzz_input){data + HEADER_LEN, ops_len};
	memset(ram, 0, MEM);
	memcpy(ram, data + HEADER_LEN + ops_len,
	       size - HEADER_LEN - ops_len < MEM ? size - HEADER_LEN - ops_len : MEM);
	gmem_wrap(&gm, ram, MEM);
	build_device(data[0], data + 1);
	while (ops.left) {
		switch ((enum op)(fuzz_take(&ops, 1) % OP_COUNT)) {
		case OP_TRANSMIT: kick(VIRTIO_NET_TX); break;
		case OP_RECEIVE: receive(&ops); break;
		case OP_RECEIVE_KICK: kick(VIRTIO_NET_RX); break;
		case OP_MEM_WRITE: fuzz_poke(&ops, ram, MEM); break;
		case OP_COUNT: break;
		}
	}
	pthread_mutex_destroy(&net.vdev.lock);
	return 0;
}
