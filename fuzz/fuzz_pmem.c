/*
 * virtio-pmem's request queue under a hostile driver: the input is guest
 * memory (rings, descriptors, requests) and the device serves the queue as
 * on a kick. It may answer, or put itself in NEEDS_RESET; it must never
 * touch memory outside the guest buffer nor crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_pmem.h"

#define MEM 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[MEM];
	static struct guest_mem gm;
	static struct virtio_pmem p;
	struct virtq *vq = &p.vd.vqs[0];

	if (size < 2)
		return 0;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 2, size - 2 < MEM ? size - 2 : MEM);
	gmem_wrap(&gm, mem, MEM);
	memset(&p, 0, sizeof(p));
	p.vd.ops = &virtio_pmem_ops;
	p.vd.priv = &p;
	p.path = "fuzz";
	/* Either mode: a read-write flush fsyncs fd -1, fails, and is answered with an error. */
	p.readonly = data[1] & 1;
	p.fd = -1;
	virtq_init(vq, &gm, 64);
	/* The first two bytes choose the queue size and ring features. */
	vq->size = (uint16_t)(1u << (data[0] % 7));
	vq->indirect = data[1] & 2;
	vq->event_idx = data[1] & 4;
	vq->desc_gpa = 0x0;
	vq->avail_gpa = 0x4000;
	vq->used_gpa = 0x6000;
	if (virtq_enable(vq) < 0)
		return 0;
	virtio_pmem_ops.queue_notify(&p.vd, 0);
	return 0;
}
