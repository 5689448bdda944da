/*
 * The guest channel's rings and header (tests/guest/shmchan) over a plain
 * buffer standing for the ivshmem region: messages of many sizes, wrap-around
 * of the ring and of the free-running indices, full and empty, the doorbell
 * flags, two threads passing messages, and a hostile peer's header, indices
 * and lengths refused. The region is allocated to its exact size so that
 * ASan sees any access past it.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shmchan.h"

#define SERVER_ID 3
#define CLIENT_ID 7

struct pair {
	void *mem;
	size_t size;
	struct shmchan_link server, client;
};

/* A region with rings of ring_size bytes, a server and a client attached. */
static void pair_open(struct pair *p, uint32_t ring_size)
{
	p->size = SHMCHAN_DATA_OFF + 2 * (size_t)ring_size;
	p->mem = malloc(p->size);
	assert_non_null(p->mem);
	memset(p->mem, 0xa5, p->size);
	assert_int_equal(shmchan_link_init(&p->server, p->mem, p->size, SERVER_ID), 0);
	assert_int_equal(p->server.tx.size, ring_size);
	assert_int_equal(shmchan_link_accept(&p->server), -EAGAIN);
	assert_int_equal(shmchan_link_attach(&p->client, p->mem, p->size, CLIENT_ID), 0);
	assert_int_equal(p->client.peer_id, SERVER_ID);
	assert_int_equal(shmchan_link_accept(&p->server), 0);
	assert_int_equal(p->server.peer_id, CLIENT_ID);
}

static void pair_close(struct pair *p)
{
	free(p->mem);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed * 31 + i * 7);
}

static void test_layout(void **state)
{
	struct shmchan_link l;
	struct pair p;
	size_t big = 4u << 20;
	void *mem = malloc(big);

	/* A 4 MiB region: the biggest ring that fits twice after the header. */
	assert_non_null(mem);
	assert_int_equal(shmchan_link_init(&l, mem, big, 0), 0);
	assert_int_equal(l.tx.size, 1u << 20);
	assert_ptr_equal(l.tx.data, (uint8_t *)mem + SHMCHAN_DATA_OFF);
	assert_ptr_equal(l.rx.data, (uint8_t *)mem + SHMCHAN_DATA_OFF + (1u << 20));
	free(mem);
	/* Too small for two of the smallest rings. */
	mem = malloc(SHMCHAN_DATA_OFF + 64);
	assert_non_null(mem);
	assert_int_equal(shmchan_link_init(&l, mem, SHMCHAN_DATA_OFF + 64, 0), -ENOSPC);
	free(mem);
	/* Each side's tx is the other's rx. */
	pair_open(&p, 64);
	assert_ptr_equal(p.server.tx.ctrl, p.client.rx.ctrl);
	assert_ptr_equal(p.server.rx.data, p.client.tx.data);
	assert_int_equal(shmchan_link_accept(&p.server), 0);
	/* The slot is taken: a second client (or the next session's, too
	 * early) waits for the server to lay the region out again. */
	assert_int_equal(shmchan_link_attach(&l, p.mem, p.size, CLIENT_ID + 1), -EAGAIN);
	assert_int_equal(shmchan_link_attach(&l, p.mem, p.size, CLIENT_ID), -EAGAIN);
	assert_int_equal(shmchan_link_init(&p.server, p.mem, p.size, SERVER_ID), 0);
	assert_int_equal(shmchan_link_attach(&l, p.mem, p.size, CLIENT_ID + 1), 0);
	assert_int_equal(shmchan_link_accept(&p.server), 0);
	assert_int_equal(p.server.peer_id, CLIENT_ID + 1);
	pair_close(&p);
}

/* Every size from 0 to the largest, both ways, so records wrap at every offset. */
static void test_sizes(void **state)
{
	uint8_t out[256], in[256];
	struct pair p;
	bool notify;
	size_t max;

	pair_open(&p, 256);
	max = p.server.tx.size - 4;
	assert_int_equal(shmchan_ring_send(&p.server.tx, out, max + 1, &notify), -EMSGSIZE);
	/* An empty message needs no buffer on either side. */
	assert_int_equal(shmchan_ring_send(&p.server.tx, NULL, 0, &notify), 0);
	assert_int_equal(shmchan_ring_recv(&p.client.rx, NULL, 0, &notify), 0);
	for (int round = 0; round < 3; round++) {
		for (size_t n = 0; n <= max; n++) {
			struct shmchan_ring *tx = n % 2 ? &p.server.tx : &p.client.tx;
			struct shmchan_ring *rx = n % 2 ? &p.client.rx : &p.server.rx;

			fill(out, n, (unsigned)(n + round));
			assert_int_equal(shmchan_ring_send(tx, out, n, &notify), 0);
			assert_false(notify);
			memset(in, 0, sizeof(in));
			assert_int_equal(shmchan_ring_recv(rx, in, sizeof(in), &notify), (ssize_t)n);
			assert_false(notify);
			assert_memory_equal(in, out, n);
			assert_int_equal(shmchan_ring_recv(rx, in, sizeof(in), &notify), -EAGAIN);
		}
	}
	pair_close(&p);
}

static void test_full_empty(void **state)
{
	uint8_t msg[12], in[64];
	struct pair p;
	bool notify;
	int sent = 0;

	pair_open(&p, 256);
	assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), -EAGAIN);
	/* 16-byte records (a length and 12 bytes): 16 fill 256 exactly. */
	for (;;) {
		fill(msg, sizeof(msg), (unsigned)sent);
		int r = shmchan_ring_send(&p.server.tx, msg, sizeof(msg), &notify);
		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 0);
		sent++;
	}
	assert_int_equal(sent, 16);
	/* The writer sleeps for space: freeing some asks for its doorbell. */
	shmchan_ring_set_waiting(&p.server.tx, true);
	assert_int_equal(shmchan_ring_recv(&p.client.rx, in, 4, &notify), -EMSGSIZE);
	assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), 12);
	assert_true(notify);
	shmchan_ring_set_waiting(&p.server.tx, false);
	fill(msg, sizeof(msg), 99);
	assert_int_equal(shmchan_ring_send(&p.server.tx, msg, sizeof(msg), &notify), 0);
	assert_false(notify);
	for (int i = 1; i < 16; i++) {
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), 12);
		fill(msg, sizeof(msg), (unsigned)i);
		assert_memory_equal(in, msg, 12);
	}
	assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), 12);
	fill(msg, sizeof(msg), 99);
	assert_memory_equal(in, msg, 12);
	/* The reader sleeps for data: the next message asks for its doorbell. */
	assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), -EAGAIN);
	shmchan_ring_set_waiting(&p.client.rx, true);
	assert_int_equal(shmchan_ring_send(&p.server.tx, msg, 1, &notify), 0);
	assert_true(notify);
	pair_close(&p);
}

/* The free-running indices wrap at 2^32 in the middle of a record. */
static void test_index_wrap(void **state)
{
	uint8_t out[100], in[100];
	struct pair p;
	bool notify;
	uint32_t start = 0xffffffc0u;

	pair_open(&p, 128);
	p.server.tx.pos = p.client.rx.pos = start;
	atomic_store(&p.server.tx.ctrl->prod, start);
	atomic_store(&p.server.tx.ctrl->cons, start);
	for (unsigned i = 0; i < 20; i++) {
		fill(out, 50 + i, i);
		assert_int_equal(shmchan_ring_send(&p.server.tx, out, 50 + i, &notify), 0);
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify),
				 (ssize_t)(50 + i));
		assert_memory_equal(in, out, 50 + i);
	}
	assert_true(p.client.rx.pos < start);
	pair_close(&p);
}

struct stream_arg {
	struct shmchan_ring *tx;
	unsigned count;
};

static void *stream_producer(void *opaque)
{
	struct stream_arg *a = opaque;
	uint8_t msg[200];
	bool notify;

	for (unsigned i = 0; i < a->count; i++) {
		size_t n = 4 + i % 190;
		int r;

		memcpy(msg, &i, 4);
		fill(msg + 4, n - 4, i);
		/* Yield: the machine may have fewer free CPUs than threads. */
		while ((r = shmchan_ring_send(a->tx, msg, n, &notify)) == -EAGAIN)
			sched_yield();
		if (r)
			return (void *)1;
	}
	return NULL;
}

/* Two threads, as two guests: every message arrives whole and in order. */
static void test_two_threads(void **state)
{
	struct stream_arg a;
	uint8_t in[200], want[200];
	struct pair p;
	pthread_t t;
	bool notify;
	void *ret;

	pair_open(&p, 512);
	a = (struct stream_arg){.tx = &p.client.tx, .count = 100000};
	assert_int_equal(pthread_create(&t, NULL, stream_producer, &a), 0);
	for (unsigned i = 0; i < a.count; i++) {
		size_t n = 4 + i % 190;
		ssize_t r;

		while ((r = shmchan_ring_recv(&p.server.rx, in, sizeof(in), &notify)) == -EAGAIN)
			sched_yield();
		assert_int_equal(r, (ssize_t)n);
		memcpy(want, &i, 4);
		fill(want + 4, n - 4, i);
		assert_memory_equal(in, want, n);
	}
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	pair_close(&p);
}

/* A hostile producer: indices and lengths that would read outside the ring. */
static void test_hostile_producer(void **state)
{
	struct {
		uint32_t prod, len;
		const char *why;
	} cases[] = {
		{256 + 4, 0, "producer index outside the ring"},
		{0xfffffffcu, 0, "producer index outside the ring"},
		{6, 0, "producer index not on a record boundary"},
		{8, 8, "message length beyond what the producer published"},
		{8, 5, "message length beyond what the producer published"},
		{256, 253, "message length beyond what the producer published"},
		{256, 0xffffffffu, "message length beyond what the producer published"},
		{256, 0x80000000u, "message length beyond what the producer published"},
	};
	uint8_t in[300];
	bool notify;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pair p;
		uint32_t len = htole32(cases[i].len);

		pair_open(&p, 256);
		memcpy(p.client.rx.data, &len, 4);
		atomic_store(&p.client.rx.ctrl->prod, cases[i].prod);
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), -EPROTO);
		assert_string_equal(p.client.rx.broken, cases[i].why);
		/* Broken stays broken, even if the peer puts things back. */
		atomic_store(&p.client.rx.ctrl->prod, 0);
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), -EPROTO);
		pair_close(&p);
	}
}

/* A hostile consumer: an index that claims more space than the ring has. */
static void test_hostile_consumer(void **state)
{
	/* After one 12-byte record: ahead of the producer, far ahead, more
	 * than a ring behind. */
	uint32_t bad[] = {16, 0x80000000u, (uint32_t)(12 - 260)};
	uint8_t msg[8] = {0};
	bool notify;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pair p;

		pair_open(&p, 256);
		assert_int_equal(shmchan_ring_send(&p.server.tx, msg, 8, &notify), 0);
		atomic_store(&p.server.tx.ctrl->cons, bad[i]);
		assert_int_equal(shmchan_ring_send(&p.server.tx, msg, 8, &notify), -EPROTO);
		assert_string_equal(p.server.tx.broken, "consumer index outside the ring");
		pair_close(&p);
	}
	/* Ours is kept locally: a peer rewriting our own index changes nothing. */
	{
		struct pair p;
		uint8_t in[8];

		pair_open(&p, 256);
		assert_int_equal(shmchan_ring_send(&p.server.tx, msg, 8, &notify), 0);
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), 8);
		atomic_store(&p.server.tx.ctrl->prod, 0x1000);
		assert_int_equal(shmchan_ring_send(&p.server.tx, msg, 8, &notify), 0);
		assert_int_equal(atomic_load(&p.server.tx.ctrl->prod), 24);
		assert_int_equal(shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify), 8);
		pair_close(&p);
	}
}

/* A hostile or absent server: the header is checked before any ring is used. */
static void test_hostile_header(void **state)
{
	size_t size = SHMCHAN_DATA_OFF + 2 * 256;
	struct shmchan_hdr *h = malloc(size);
	struct shmchan_link l;

	assert_non_null(h);
	memset(h, 0, size);
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EAGAIN);
	assert_int_equal(shmchan_link_attach(&l, h, SHMCHAN_DATA_OFF - 1, CLIENT_ID), -ENOSPC);
	assert_int_equal(shmchan_link_init(&l, h, size, SERVER_ID), 0);
	atomic_store(&h->magic, 0x12345678);
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EAGAIN);
	atomic_store(&h->magic, SHMCHAN_MAGIC);
	h->version = 2;
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EPROTONOSUPPORT);
	h->version = SHMCHAN_VERSION;
	for (uint32_t rs = 0; rs < 4; rs++) {
		uint32_t bad[] = {0, 32, 384, 512};

		h->ring_size = bad[rs];
		assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EPROTO);
	}
	h->ring_size = 0x80000000u;
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EPROTO);
	h->ring_size = 256;
	h->server_id = 0x10000;
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EPROTO);
	h->server_id = CLIENT_ID;
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), -EPROTO);
	h->server_id = SERVER_ID;
	assert_int_equal(shmchan_link_attach(&l, h, size, CLIENT_ID), 0);
	assert_int_equal(l.tx.size, 256);
	/* A client ID that is no peer's, or the server's own. */
	assert_int_equal(shmchan_link_init(&l, h, size, SERVER_ID), 0);
	atomic_store(&h->client_id, 0x12345);
	assert_int_equal(shmchan_link_accept(&l), -EPROTO);
	assert_string_equal(l.rx.broken, "the client's ID is not another peer's");
	assert_int_equal(shmchan_link_init(&l, h, size, SERVER_ID), 0);
	atomic_store(&h->client_id, SERVER_ID);
	assert_int_equal(shmchan_link_accept(&l), -EPROTO);
	free(h);
}

/* Random indices and bytes from the peer: recv returns a message that fits
 * what was published, or an error; ASan watches the accesses. */
static void test_random_peer(void **state)
{
	uint8_t in[128];
	bool notify;
	struct pair p;

	srand(17);
	for (int i = 0; i < 20000; i++) {
		ssize_t r;
		uint32_t prod, pos;

		pair_open(&p, 128);
		for (size_t j = 0; j < 128; j++)
			p.client.rx.data[j] = (uint8_t)rand();
		pos = p.client.rx.pos = (uint32_t)rand() << 2;
		prod = i % 2 ? pos + (uint32_t)(rand() % 160) : (uint32_t)rand();
		atomic_store(&p.client.rx.ctrl->prod, prod);
		r = shmchan_ring_recv(&p.client.rx, in, sizeof(in), &notify);
		if (r >= 0) {
			/* The whole record was published, and taken whole. */
			assert_true(4 + (((uint32_t)r + 3) & ~3u) <= prod - pos);
			assert_int_equal(p.client.rx.pos - pos, 4 + (((uint32_t)r + 3) & ~3u));
		} else {
			assert_true(r == -EAGAIN || r == -EPROTO || r == -EMSGSIZE);
		}
		pair_close(&p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_full_empty),
		cmocka_unit_test(test_index_wrap),
		cmocka_unit_test(test_two_threads),
		cmocka_unit_test(test_hostile_producer),
		cmocka_unit_test(test_hostile_consumer),
		cmocka_unit_test(test_hostile_header),
		cmocka_unit_test(test_random_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
