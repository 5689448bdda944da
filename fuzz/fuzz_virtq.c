/*
 * The virtqueue under a hostile driver: the input is guest memory (rings,
 * descriptors, buffers) and the device pops and pushes until the queue is
 * empty or broken. Nothing outside the guest buffer may be touched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtq.h"

#define MEM 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t mem[MEM];
	struct guest_mem gm;
	struct virtq vq;
	struct virtq_chain c;
	uint16_t qsize = 16;

	if (size < 2)
		return 0;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 2, size - 2 < MEM ? size - 2 : MEM);
	gmem_wrap(&gm, mem, MEM);
	virtq_init(&vq, &gm, 256);
	/* The first two bytes choose the queue size and features. */
	vq.size = (uint16_t)(1u << (data[0] % 10));
	vq.indirect = data[1] & 1;
	vq.event_idx = data[1] & 2;
	vq.desc_gpa = 0x0;
	vq.avail_gpa = 0x4000;
	vq.used_gpa = 0x6000;
	(void)qsize;
	if (virtq_enable(&vq) < 0)
		return 0;
	for (int i = 0; i < 512; i++) {
		int r = virtq_pop_avail(&vq, &c);
		if (r != 1)
			break;
		/* Touch every byte the chain claims, as a device would. */
		for (unsigned j = 0; j < c.nout + c.nin; j++) {
			volatile uint8_t *p = c.iov[j].iov_base;
			if (c.iov[j].iov_len)
				(void)p[c.iov[j].iov_len - 1];
		}
		virtq_chain_write(&c, 0, "x", 1);
		virtq_push_used(&vq, c.head, (uint32_t)c.in_len);
		virtq_should_notify(&vq);
	}
	return 0;
}
