/*
 * Split virtqueues (virtio 1.2, section 2.7), device side.
 *
 * Ring layout in guest memory, all little-endian:
 *   descriptor table: size x { u64 addr; u32 len; u16 flags; u16 next; }
 *   available ring:   u16 flags; u16 idx; u16 ring[size]; u16 used_event;
 *   used ring:        u16 flags; u16 idx; { u32 id; u32 len; } ring[size]; u16 avail_event;
 *
 * Every index, length and address read from the rings is checked the way
 * bhyve's vq_getchain does; a queue that breaks the rules is marked broken,
 * and the device then signals NEEDS_RESET rather than touching it again.
 */
#ifndef DOMUS_VIRTQ_H
#define DOMUS_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/guest_mem.h"

#define VIRTQ_MAX_SIZE 1024
/* Longest chain a device accepts, direct and indirect together. */
#define VIRTQ_MAX_CHAIN 256

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq {
	const struct guest_mem *mem;
	uint16_t size;      /* a power of two, set by the driver */
	uint16_t max_size;
	bool enabled;
	bool broken;
	bool event_idx;     /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;      /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint16_t msix_vector;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used;
	bool signalled_used_valid;
};

/* A descriptor chain mapped into host memory: readable buffers first, then writable. */
struct virtq_chain {
	uint16_t head;
	unsigned nout;    /* device-readable iovecs */
	unsigned nin;     /* device-writable iovecs, after the readable ones */
	uint64_t out_len;
	uint64_t in_len;
	struct iovec iov[VIRTQ_MAX_CHAIN];
};

void virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t max_size);
void virtq_reset(struct virtq *vq);
/*
 * Checks that the rings lie in guest memory and enables the queue.
 * Returns 0 or -EINVAL (size not a power of two, ring outside RAM, ...).
 */
int virtq_enable(struct virtq *vq);
/*
 * Takes the next available chain. Returns 1 with *chain filled, 0 if none
 * is available, -EINVAL if the driver broke the rules (the queue is then
 * marked broken and returns -EINVAL from now on).
 */
int virtq_pop_avail(struct virtq *vq, struct virtq_chain *chain);
/*
 * Maps the chain that starts at descriptor head (a request taken earlier,
 * resubmitted after a back-end restart). 0, or -EINVAL and the queue broken.
 */
int virtq_chain_at(struct virtq *vq, uint16_t head, struct virtq_chain *c);
/*
 * Gives back the chain the last virtq_pop_avail took, unused (nothing was
 * pushed since): the next pop takes it again. For a device that learns only
 * after taking a buffer that it has nothing to put in it.
 */
void virtq_unpop_avail(struct virtq *vq);
/* Returns a chain to the driver with `len` bytes written into it. */
int virtq_push_used(struct virtq *vq, uint16_t head, uint32_t len);
/* Whether the driver wants an interrupt for what was pushed since the last one. */
bool virtq_should_notify(struct virtq *vq);

/* Copies between a chain's readable / writable iovecs and a flat buffer. */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len);
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, uint64_t len);

#endif
