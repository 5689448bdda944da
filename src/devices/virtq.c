#include "devices/virtq.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

void virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->max_size = max_size;
	vq->size = max_size;
	vq->msix_vector = 0xffff;
}

void virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->mem, vq->max_size);
}

static uint16_t *avail_idx_ptr(struct virtq *vq)
{
	return gmem_ptr(vq->mem, vq->avail_gpa + 2, 2);
}

int virtq_enable(struct virtq *vq)
{
	uint64_t n = vq->size;

	if (n == 0 || (n & (n - 1)) || n > vq->max_size)
		return -EINVAL;
	/* Alignment the spec requires: 16 for descriptors, 2 avail, 4 used. */
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return -EINVAL;
	if (!gmem_ptr(vq->mem, vq->desc_gpa, 16 * n) ||
	    !gmem_ptr(vq->mem, vq->avail_gpa, 6 + 2 * n) ||
	    !gmem_ptr(vq->mem, vq->used_gpa, 6 + 8 * n))
		return -EINVAL;
	vq->enabled = true;
	vq->broken = false;
	return 0;
}

static int mark_broken(struct virtq *vq)
{
	vq->broken = true;
	return -EINVAL;
}

/* Maps one descriptor's buffer and appends it to the chain. */
static int chain_add(struct virtq *vq, struct virtq_chain *c, const struct virtq_desc *d)
{
	void *p;
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;

	if (c->nout + c->nin >= VIRTQ_MAX_CHAIN)
		return -EINVAL;
	/* Readable buffers must all come before writable ones. */
	if (!writable && c->nin)
		return -EINVAL;
	if (d->len == 0) /* allowed, and nothing to map */
		return 0;
	p = gmem_ptr(vq->mem, d->addr, d->len);
	if (!p)
		return -EINVAL;
	c->iov[c->nout + c->nin] = (struct iovec){.iov_base = p, .iov_len = d->len};
	if (writable) {
		c->nin++;
		c->in_len += d->len;
	} else {
		c->nout++;
		c->out_len += d->len;
	}
	return 0;
}

static int walk_indirect(struct virtq *vq, struct virtq_chain *c, const struct virtq_desc *d)
{
	const struct virtq_desc *table;
	uint32_t n, i = 0, seen = 0;

	if (!vq->indirect || (d->flags & VIRTQ_DESC_F_NEXT) || (d->len % 16) || d->len == 0)
		return -EINVAL;
	n = d->len / 16;
	if (n > VIRTQ_MAX_CHAIN)
		return -EINVAL;
	table = gmem_ptr(vq->mem, d->addr, d->len);
	if (!table)
		return -EINVAL;
	for (;;) {
		struct virtq_desc e;

		memcpy(&e, &table[i], sizeof(e));
		/* An indirect table may not point at another one. */
		if (e.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		if (chain_add(vq, c, &e) < 0)
			return -EINVAL;
		if (!(e.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (e.next >= n || ++seen >= n) /* out of the table, or a loop */
			return -EINVAL;
		i = e.next;
	}
}

int virtq_chain_at(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	const struct virtq_desc *table;
	uint16_t i;
	unsigned seen = 0;

	if (vq->broken)
		return -EINVAL;
	if (head >= vq->size)
		return mark_broken(vq);
	table = gmem_ptr(vq->mem, vq->desc_gpa, 16ULL * vq->size);
	if (!table)
		return mark_broken(vq);

	memset(c, 0, offsetof(struct virtq_chain, iov));
	c->head = head;
	i = head;
	for (;;) {
		struct virtq_desc d;

		memcpy(&d, &table[i], sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (walk_indirect(vq, c, &d) < 0)
				return mark_broken(vq);
			break;
		}
		if (chain_add(vq, c, &d) < 0)
			return mark_broken(vq);
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		/* A chain longer than the table must revisit a descriptor: a loop. */
		if (d.next >= vq->size || ++seen >= vq->size)
			return mark_broken(vq);
		i = d.next;
	}
	return 0;
}

int virtq_pop_avail(struct virtq *vq, struct virtq_chain *c)
{
	uint16_t *idxp, avail_idx, head;

	if (vq->broken)
		return -EINVAL;
	if (!vq->enabled)
		return 0;
	idxp = avail_idx_ptr(vq);
	if (!idxp)
		return mark_broken(vq);
	avail_idx = atomic_load_explicit((_Atomic uint16_t *)idxp, memory_order_acquire);
	if (avail_idx == vq->last_avail) {
		uint16_t *ae;

		if (!vq->event_idx)
			return 0;
		/*
		 * Out of work: tell the driver to kick for the next entry
		 * (avail_event), then look again. The full fence orders our
		 * store before the reload, pairing with the driver's barrier
		 * between publishing avail->idx and reading avail_event;
		 * without it both sides can miss each other and a kick is lost.
		 */
		ae = gmem_ptr(vq->mem, vq->used_gpa + 4 + 8ULL * vq->size, 2);
		if (!ae)
			return mark_broken(vq);
		atomic_store_explicit((_Atomic uint16_t *)ae, vq->last_avail, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		avail_idx = atomic_load_explicit((_Atomic uint16_t *)idxp, memory_order_acquire);
		if (avail_idx == vq->last_avail)
			return 0;
	}
	/* More new entries than the ring holds means a corrupt index. */
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return mark_broken(vq);
	{
		uint16_t *ring = gmem_ptr(vq->mem, vq->avail_gpa + 4, 2ULL * vq->size);
		if (!ring)
			return mark_broken(vq);
		head = ring[vq->last_avail & (vq->size - 1)];
	}
	if (virtq_chain_at(vq, head, c) < 0)
		return -EINVAL;
	vq->last_avail++;
	return 1;
}

void virtq_unpop_avail(struct virtq *vq)
{
	/* The driver may not touch an entry until it is used: the ring still holds it. */
	vq->last_avail--;
}

int virtq_push_used(struct virtq *vq, uint16_t head, uint32_t len)
{
	uint8_t *used = gmem_ptr(vq->mem, vq->used_gpa, 4 + 8ULL * vq->size);
	uint32_t elem[2] = {head, len};

	if (!used)
		return mark_broken(vq);
	memcpy(used + 4 + 8 * (vq->used_idx & (vq->size - 1)), elem, 8);
	vq->used_idx++;
	/*
	 * Release: the element must be visible to the driver before the index
	 * that publishes it.
	 */
	atomic_store_explicit((_Atomic uint16_t *)(used + 2), vq->used_idx, memory_order_release);
	return 0;
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, new_idx, event;
	uint16_t *flags, *ue;

	/*
	 * Full fence: our used->idx store must be ordered before we read the
	 * driver's flags or used_event, or we can miss a driver that just
	 * asked for an interrupt.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	if (!vq->event_idx) {
		flags = gmem_ptr(vq->mem, vq->avail_gpa, 2);
		return !flags || !(*(volatile uint16_t *)flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	old = vq->signalled_used;
	new_idx = vq->used_idx;
	ue = gmem_ptr(vq->mem, vq->avail_gpa + 4 + 2ULL * vq->size, 2);
	if (!ue)
		return true;
	event = *(volatile uint16_t *)ue;
	if (!vq->signalled_used_valid) {
		vq->signalled_used_valid = true;
		vq->signalled_used = new_idx;
		return true;
	}
	vq->signalled_used = new_idx;
	/* vring_need_event(): did used->idx move past used_event since the last interrupt? */
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < c->nout && done < len; i++) {
		uint64_t l = c->iov[i].iov_len, n;
		if (off >= l) {
			off -= l;
			continue;
		}
		n = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)dst + done, (uint8_t *)c->iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, uint64_t len)
{
	uint64_t done = 0;

	for (unsigned i = c->nout; i < c->nout + c->nin && done < len; i++) {
		uint64_t l = c->iov[i].iov_len, n;
		if (off >= l) {
			off -= l;
			continue;
		}
		n = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)c->iov[i].iov_base + off, (const uint8_t *)src + done, n);
		done += n;
		off = 0;
	}
	return done;
}
