/*
 * The channel's rings and header in shared memory, with no device: what
 * both sides do to the region, checked against a peer that writes anything.
 * The layout is described in shmchan.h.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "shmchan.h"

static uint32_t round4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

/* Copies n <= r->size bytes in or out at index idx, wrapping at the end
 * (an empty message may come with a NULL buffer). */
static void ring_put(struct shmchan_ring *r, uint32_t idx, const void *src, uint32_t n)
{
	uint32_t off = idx & (r->size - 1), first = n < r->size - off ? n : r->size - off;

	if (!n)
		return;
	memcpy(r->data + off, src, first);
	memcpy(r->data, (const uint8_t *)src + first, n - first);
}

static void ring_get(const struct shmchan_ring *r, uint32_t idx, void *dst, uint32_t n)
{
	uint32_t off = idx & (r->size - 1), first = n < r->size - off ? n : r->size - off;

	if (!n)
		return;
	memcpy(dst, r->data + off, first);
	memcpy((uint8_t *)dst + first, r->data, n - first);
}

static int ring_broken(struct shmchan_ring *r, const char *why)
{
	r->broken = why;
	return -EPROTO;
}

int shmchan_ring_send(struct shmchan_ring *r, const void *msg, size_t len, bool *notify)
{
	uint32_t cons, used, need, len_le;

	*notify = false;
	if (r->broken)
		return -EPROTO;
	if (len > r->size - 4)
		return -EMSGSIZE;
	need = 4 + round4((uint32_t)len);
	/* Acquire: the consumer's reads of the space it frees happen before our
	 * writes into it. The index is the peer's: read once, then checked. */
	cons = atomic_load_explicit(&r->ctrl->cons, memory_order_acquire);
	used = r->pos - cons;
	if (used > r->size)
		return ring_broken(r, "consumer index outside the ring");
	if (r->size - used < need)
		return -EAGAIN;
	len_le = htole32((uint32_t)len);
	ring_put(r, r->pos, &len_le, 4);
	ring_put(r, r->pos + 4, msg, (uint32_t)len);
	r->pos += need;
	/* Release: the record is written before the consumer can see it. */
	atomic_store_explicit(&r->ctrl->prod, r->pos, memory_order_release);
	/* Full fence: our prod store is ordered before the load of the
	 * consumer's flag, as its flag store is before its load of prod. */
	atomic_thread_fence(memory_order_seq_cst);
	*notify = atomic_load_explicit(&r->ctrl->reader_waiting, memory_order_relaxed) != 0;
	return 0;
}

ssize_t shmchan_ring_recv(struct shmchan_ring *r, void *buf, size_t cap, bool *notify)
{
	uint32_t prod, used, len;

	*notify = false;
	if (r->broken)
		return -EPROTO;
	/* Acquire: the record's bytes are read after the index that published
	 * them. The index is the peer's: read once, then checked. */
	prod = atomic_load_explicit(&r->ctrl->prod, memory_order_acquire);
	used = prod - r->pos;
	if (used == 0)
		return -EAGAIN;
	if (used > r->size)
		return ring_broken(r, "producer index outside the ring");
	if (used % 4)
		return ring_broken(r, "producer index not on a record boundary");
	ring_get(r, r->pos, &len, 4);
	len = le32toh(len);
	if (len > r->size - 4 || 4 + (uint64_t)round4(len) > used)
		return ring_broken(r, "message length beyond what the producer published");
	if (len > cap)
		return -EMSGSIZE;
	ring_get(r, r->pos + 4, buf, len);
	r->pos += 4 + round4(len);
	/* Release: our reads of the record happen before the producer may
	 * reuse its space. */
	atomic_store_explicit(&r->ctrl->cons, r->pos, memory_order_release);
	/* Full fence: as in send, between our index store and its flag load. */
	atomic_thread_fence(memory_order_seq_cst);
	*notify = atomic_load_explicit(&r->ctrl->writer_waiting, memory_order_relaxed) != 0;
	return (ssize_t)len;
}

void shmchan_ring_set_waiting(struct shmchan_ring *r, bool waiting)
{
	_Atomic uint32_t *flag = r->producer ? &r->ctrl->writer_waiting : &r->ctrl->reader_waiting;

	atomic_store_explicit(flag, waiting ? 1u : 0u, memory_order_relaxed);
	/* Full fence: the flag is visible before we look at the peer's index
	 * again (the other half of the pairing in send and recv). */
	atomic_thread_fence(memory_order_seq_cst);
}

static void link_rings(struct shmchan_link *l, uint32_t ring_size)
{
	uint8_t *data = (uint8_t *)l->hdr + SHMCHAN_DATA_OFF;
	/* Ring 0 carries server -> client, ring 1 client -> server. */
	int tx = l->server ? 0 : 1;

	l->tx = (struct shmchan_ring){.ctrl = &l->hdr->ring[tx],
				      .data = data + (size_t)tx * ring_size,
				      .size = ring_size,
				      .producer = true};
	l->rx = (struct shmchan_ring){.ctrl = &l->hdr->ring[!tx],
				      .data = data + (size_t)!tx * ring_size,
				      .size = ring_size,
				      .producer = false};
}

static bool ring_size_fits(uint64_t ring_size, size_t mem_size)
{
	return SHMCHAN_DATA_OFF + 2 * ring_size <= mem_size;
}

int shmchan_link_init(struct shmchan_link *l, void *mem, size_t mem_size, uint32_t self_id)
{
	struct shmchan_hdr *h = mem;
	uint32_t ring_size = SHMCHAN_RING_MAX;

	if (!ring_size_fits(SHMCHAN_RING_MIN, mem_size))
		return -ENOSPC;
	while (!ring_size_fits(ring_size, mem_size))
		ring_size >>= 1;
	/* No magic while the header is half-written: a client waits. */
	atomic_store_explicit(&h->magic, 0, memory_order_seq_cst);
	h->version = SHMCHAN_VERSION;
	h->ring_size = ring_size;
	h->server_id = self_id;
	for (int i = 0; i < 2; i++) {
		atomic_store_explicit(&h->ring[i].prod, 0, memory_order_relaxed);
		atomic_store_explicit(&h->ring[i].cons, 0, memory_order_relaxed);
		atomic_store_explicit(&h->ring[i].reader_waiting, 0, memory_order_relaxed);
		atomic_store_explicit(&h->ring[i].writer_waiting, 0, memory_order_relaxed);
	}
	/* Release, and last: a client that claims the free slot finds the
	 * header and the empty rings above. */
	atomic_store_explicit(&h->client_id, SHMCHAN_NO_PEER, memory_order_release);
	/* Release: a client that sees the magic sees the header above. */
	atomic_store_explicit(&h->magic, SHMCHAN_MAGIC, memory_order_release);
	*l = (struct shmchan_link){.hdr = h,
				   .mem_size = mem_size,
				   .self_id = self_id,
				   .peer_id = SHMCHAN_NO_PEER,
				   .server = true};
	link_rings(l, ring_size);
	return 0;
}

int shmchan_link_accept(struct shmchan_link *l)
{
	uint32_t id = atomic_load_explicit(&l->hdr->client_id, memory_order_acquire);

	if (id == SHMCHAN_NO_PEER)
		return -EAGAIN;
	if (id > 0xffff || id == l->self_id)
		return ring_broken(&l->rx, "the client's ID is not another peer's");
	l->peer_id = id;
	return 0;
}

int shmchan_link_attach(struct shmchan_link *l, void *mem, size_t mem_size, uint32_t self_id)
{
	struct shmchan_hdr *h = mem;
	uint32_t version, ring_size, server_id, free_slot = SHMCHAN_NO_PEER;

	if (mem_size < SHMCHAN_DATA_OFF)
		return -ENOSPC;
	/* Acquire: the header the server wrote before its magic. */
	if (atomic_load_explicit(&h->magic, memory_order_acquire) != SHMCHAN_MAGIC)
		return -EAGAIN;
	/* Each read once into a local; the locals are what we use from now on. */
	version = *(volatile uint32_t *)&h->version;
	ring_size = *(volatile uint32_t *)&h->ring_size;
	server_id = *(volatile uint32_t *)&h->server_id;
	if (version != SHMCHAN_VERSION)
		return -EPROTONOSUPPORT;
	if (ring_size < SHMCHAN_RING_MIN || (ring_size & (ring_size - 1)) ||
	    !ring_size_fits(ring_size, mem_size))
		return -EPROTO;
	if (server_id > 0xffff || server_id == self_id)
		return -EPROTO;
	/* Claim the client's slot: a header whose slot is taken is a session
	 * going on or over, which the server has yet to lay out again. */
	if (!atomic_compare_exchange_strong_explicit(&h->client_id, &free_slot, self_id,
						     memory_order_acq_rel, memory_order_acquire))
		return -EAGAIN;
	*l = (struct shmchan_link){.hdr = h,
				   .mem_size = mem_size,
				   .self_id = self_id,
				   .peer_id = server_id,
				   .server = false};
	link_rings(l, ring_size);
	return 0;
}
