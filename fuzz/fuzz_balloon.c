/*
 * virtio-balloon's queues under a hostile driver: the input is guest memory
 * (rings, descriptors, PFN lists, statistics, reported ranges) and the
 * features the driver took; the device serves one queue as on a kick, as
 * its worker does (a batch: taken, sorted, merged, punched, returned). It
 * may take pages back, ignore what is not RAM, or put itself in
 * NEEDS_RESET; it must never touch memory outside the guest buffer nor
 * crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_balloon.h"

#define MEM 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[MEM] __attribute__((aligned(4096)));
	static struct guest_mem gm;
	static struct virtio_balloon b;
	unsigned q;
	struct virtq *vq;

	if (size < 3)
		return 0;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 3, size - 3 < MEM ? size - 3 : MEM);
	gmem_wrap(&gm, mem, MEM);
	memset(&b, 0, sizeof(b));
	b.vd.ops = &virtio_balloon_ops;
	b.vd.priv = &b;
	b.mem = &gm;
	b.ram_pages = MEM >> 12;
	b.event_fd = -1;
	b.wake_fd = -1; /* no worker: the notify serves the queues, a batch at a time */
	b.vd.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		      VIRTIO_STATUS_DRIVER_OK;
	pthread_mutex_init(&b.vd.lock, NULL);
	pthread_cond_init(&b.idle, NULL);
	/* The first bytes choose the features (stats, reporting), the queue, its size and ring features. */
	b.vd.driver_features = (data[0] & 1 ? 1ULL << VIRTIO_BALLOON_F_STATS_VQ : 0) |
			       (data[0] & 2 ? 1ULL << VIRTIO_BALLOON_F_REPORTING : 0);
	q = (data[0] >> 2) % 4;
	vq = &b.vd.vqs[q];
	virtq_init(vq, &gm, 64);
	vq->size = (uint16_t)(1u << (data[1] % 7));
	vq->indirect = data[2] & 1;
	vq->event_idx = data[2] & 2;
	vq->desc_gpa = 0x0;
	vq->avail_gpa = 0x4000;
	vq->used_gpa = 0x6000;
	if (virtq_enable(vq) < 0)
		return 0;
	virtio_balloon_ops.queue_notify(&b.vd, q);
	/* A statistics buffer held, then asked back, as the timer does. */
	virtio_balloon_request_stats(&b);
	pthread_cond_destroy(&b.idle);
	pthread_mutex_destroy(&b.vd.lock);
	return 0;
}
