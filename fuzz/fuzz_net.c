/*
 * The in-VMM virtio-net device under a hostile driver, with neither TAP nor
 * receive thread: the input is the ring features and sizes, a sequence of
 * transmit kicks, frames arriving from the TAP (each behind the header
 * the TAP gives, offloads or not), receive kicks and writes
 * to guest memory, then the guest memory itself (rings, descriptors,
 * frames to send, buffers to receive into). With FLAG_PAIRS the device has
 * two queue pairs and a control queue, and each operation names its pair. What the device sends goes to
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
#define FLAG_PAIRS 0x10    /* two queue pairs (MQ) and the control queue */

enum op {
	OP_TRANSMIT,
	OP_RECEIVE,
	OP_RECEIVE_KICK,
	OP_MEM_WRITE,
	OP_CONTROL_KICK,
	OP_COUNT,
};

/* Queue q's rings (part 0: descriptors, 1: available, 2: used), 12 KiB a queue from 0. */
static uint64_t ring_gpa(unsigned q, unsigned part)
{
	return (uint64_t)q * 0x3000 + (uint64_t)part * 0x1000;
}

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
	net.pairs = flags & FLAG_PAIRS ? 2 : 1;
	net.active_pairs = 1;
	for (unsigned i = 0; i < net.pairs; i++)
		net.pair[i] = (struct virtio_net_pair){.net = &net, .index = i, .tap_fd = fuzz_sink_fd(),
						       .wake_fd = fuzz_sink_fd()};
	net.tx_buf = tx_buf;
	if (flags & FLAG_OFFLOADS)
		net.vdev.driver_features = VIRTIO_NET_OFFLOADS;
	if (flags & FLAG_PAIRS)
		net.vdev.driver_features |= (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ);
	memcpy(net.config.mac, mac, sizeof(mac));
	net.config.status = VIRTIO_NET_S_LINK_UP;
	if (flags & FLAG_DRIVER_OK)
		net.vdev.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				  VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	for (unsigned q = 0; q < (net.pairs > 1 ? 2 * net.pairs + 1 : 2); q++) {
		struct virtq *vq = &net.vdev.vqs[q];

		virtq_init(vq, &gm, VIRTIO_NET_QUEUE_SIZE);
		vq->size = (uint16_t)(1u << (size_log2[q % 2] % 9));
		vq->event_idx = flags & FLAG_EVENT_IDX;
		vq->indirect = flags & FLAG_INDIRECT;
		vq->desc_gpa = ring_gpa(q, 0);
		vq->avail_gpa = ring_gpa(q, 1);
		vq->used_gpa = ring_gpa(q, 2);
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
static void receive(struct fuzz_input *in, unsigned pair)
{
	size_t len;
	const uint8_t *bytes = fuzz_take_bytes(in, (size_t)fuzz_take(in, 2), &len);
	uint8_t *frame = malloc(len ? len : 1);

	if (!frame)
		abort();
	memcpy(frame, bytes, len);
	(void)virtio_net_receive_frame(&net, pair, frame, len);
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
		unsigned op = (unsigned)fuzz_take(&ops, 1);
		/* The operation's pair: the byte's high bit, with two pairs. */
		unsigned pair = net.pairs > 1 ? op >> 7 : 0;

		switch ((enum op)(op % OP_COUNT)) {
		case OP_TRANSMIT: kick(2 * pair + VIRTIO_NET_TX); break;
		case OP_RECEIVE: receive(&ops, pair); break;
		case OP_RECEIVE_KICK: kick(2 * pair + VIRTIO_NET_RX); break;
		case OP_MEM_WRITE: fuzz_poke(&ops, ram, MEM); break;
		case OP_CONTROL_KICK: kick(4); break; /* not enabled with one pair: nothing */
		case OP_COUNT: break;
		}
	}
	pthread_mutex_destroy(&net.vdev.lock);
	return 0;
}
