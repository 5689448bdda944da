/*
 * The in-VMM virtio-net device's offloads, driven by a synthetic driver in
 * host memory: the headers each side may send, a TSO segment spread over
 * mergeable receive buffers (and the count in the first), a frame waiting
 * for buffers enough, buffers too small without MRG_RXBUF, and a TSO
 * segment from the guest passed to the TAP whole, or refused when the
 * driver did not negotiate it; two queue pairs and the control queue.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio_net.h"

#define MEM_SIZE (4 << 20)
#define QSIZE 64
#define DATA 0x100000
#define RX_BUF 1526 /* what Linux posts for one frame: a header and 1514 bytes */

#define QUEUES 5 /* two pairs and the control queue, for the multiqueue case */

/* Queue q's rings (part 0: descriptors, 1: available, 2: used), 12 KiB a queue from 0. */
static uint64_t ring_gpa(unsigned q, unsigned part)
{
	return (uint64_t)q * 0x3000 + (uint64_t)part * 0x1000;
}

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtio_net net;
	uint8_t tx_buf[VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX];
	int tap[2];          /* the device writes [0], the test reads [1] */
	int tap2[2];         /* the second pair's TAP queue, the multiqueue case */
	uint16_t next_desc[QUEUES];
	uint64_t next_data;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = calloc(1, MEM_SIZE);
	assert_non_null(f->ram);
	gmem_wrap(&f->mem, f->ram, MEM_SIZE);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->tap), 0);
	f->net.vdev.ops = &virtio_net_ops;
	f->net.vdev.priv = &f->net;
	pthread_mutex_init(&f->net.vdev.lock, NULL);
	f->net.pairs = f->net.active_pairs = 1;
	f->net.pair[0] = (struct virtio_net_pair){.net = &f->net, .tap_fd = f->tap[0], .wake_fd = -1};
	f->net.tx_buf = f->tx_buf;
	f->net.vdev.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	f->net.vdev.driver_features = VIRTIO_NET_OFFLOADS;
	for (unsigned q = 0; q < QUEUES; q++) {
		struct virtq *vq = &f->net.vdev.vqs[q];

		virtq_init(vq, &f->mem, QSIZE);
		vq->size = QSIZE;
		vq->desc_gpa = ring_gpa(q, 0);
		vq->avail_gpa = ring_gpa(q, 1);
		vq->used_gpa = ring_gpa(q, 2);
		assert_int_equal(virtq_enable(vq), 0);
	}
	f->tap2[0] = f->tap2[1] = -1;
	f->next_data = DATA;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pthread_mutex_destroy(&f->net.vdev.lock);
	close(f->tap[0]);
	close(f->tap[1]);
	if (f->tap2[0] >= 0) {
		close(f->tap2[0]);
		close(f->tap2[1]);
	}
	free(f->ram);
	free(f);
	return 0;
}

static struct virtq_desc *desc(struct fixture *f, unsigned q, unsigned i)
{
	return (struct virtq_desc *)(f->ram + ring_gpa(q, 0)) + i;
}

static uint16_t *avail(struct fixture *f, unsigned q)
{
	return (uint16_t *)(f->ram + ring_gpa(q, 1));
}

static uint16_t used_idx(struct fixture *f, unsigned q)
{
	uint16_t idx;

	memcpy(&idx, f->ram + ring_gpa(q, 2) + 2, 2);
	return idx;
}

/* The used ring's entry i: the head and the length the device wrote. */
static void used_elem(struct fixture *f, unsigned q, unsigned i, uint32_t *id, uint32_t *len)
{
	const uint8_t *e = f->ram + ring_gpa(q, 2) + 4 + 8 * (i % QSIZE);

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/* Offers a chain of one descriptor per length; returns the guest address of the first buffer. */
static uint64_t offer(struct fixture *f, unsigned q, const uint32_t *lens, unsigned n, uint16_t flags)
{
	uint16_t head = f->next_desc[q], idx = avail(f, q)[1];
	uint64_t first = f->next_data;

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = f->next_desc[q]++ % QSIZE;

		*desc(f, q, d) = (struct virtq_desc){
		    .addr = f->next_data,
		    .len = lens[i],
		    .flags = (uint16_t)(flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
		    .next = (uint16_t)(f->next_desc[q] % QSIZE),
		};
		f->next_data += lens[i];
	}
	avail(f, q)[2 + idx % QSIZE] = (uint16_t)(head % QSIZE);
	avail(f, q)[1] = (uint16_t)(idx + 1);
	return first;
}

/* Receive buffers as Linux posts them with MRG_RXBUF: one writable descriptor each, on queue q. */
static uint64_t post_rx_on(struct fixture *f, unsigned q, unsigned count)
{
	uint32_t len = RX_BUF;
	uint64_t first = 0;

	for (unsigned i = 0; i < count; i++) {
		uint64_t at = offer(f, q, &len, 1, VIRTQ_DESC_F_WRITE);
		if (i == 0)
			first = at;
	}
	return first;
}

static uint64_t post_rx(struct fixture *f, unsigned count)
{
	return post_rx_on(f, VIRTIO_NET_RX, count);
}

/* A header and a frame of len bytes (a pattern the test can check), as the TAP hands them. */
static uint8_t *packet(uint8_t gso_type, uint16_t gso_size, size_t frame_len)
{
	uint8_t *p = malloc(VIRTIO_NET_HDR_LEN + frame_len);
	struct virtio_net_hdr h = {
	    .flags = gso_type ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0,
	    .gso_type = gso_type,
	    .gso_size = gso_size,
	    .csum_start = 34,
	    .csum_offset = 16,
	    .num_buffers = 0xbeef, /* the TAP's padding: the device sets it */
	};

	assert_non_null(p);
	memcpy(p, &h, sizeof(h));
	for (size_t i = 0; i < frame_len; i++)
		p[VIRTIO_NET_HDR_LEN + i] = (uint8_t)(i * 7 + i / 251);
	return p;
}

static void test_header_checks(void **state)
{
	const uint64_t all = VIRTIO_NET_OFFLOADS;
	const uint64_t no_tso = all & ~((1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
				       (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6));
	struct virtio_net_hdr plain = {0};
	struct virtio_net_hdr csum = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
	struct virtio_net_hdr tso4 = csum, tso6 = csum, bad = csum;

	(void)state;
	tso4.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	tso4.gso_size = 1448;
	tso6.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	tso6.gso_size = 1428;

	/* From the guest. */
	assert_true(virtio_net_tx_header_ok(&plain, 0, 1514));
	assert_false(virtio_net_tx_header_ok(&plain, all, 1519)); /* no TSO: one frame at most */
	assert_true(virtio_net_tx_header_ok(&csum, all, 1514));
	assert_false(virtio_net_tx_header_ok(&csum, 0, 1514)); /* CSUM not negotiated */
	assert_true(virtio_net_tx_header_ok(&tso4, all, 65000));
	assert_true(virtio_net_tx_header_ok(&tso6, all, VIRTIO_NET_GSO_FRAME_MAX));
	assert_false(virtio_net_tx_header_ok(&tso6, all, VIRTIO_NET_GSO_FRAME_MAX + 1));
	assert_false(virtio_net_tx_header_ok(&tso4, no_tso, 65000));
	bad = tso4;
	bad.flags = 0; /* a segment without its checksum left to the device */
	assert_false(virtio_net_tx_header_ok(&bad, all, 9000));
	bad = tso4;
	bad.gso_size = 0;
	assert_false(virtio_net_tx_header_ok(&bad, all, 9000));
	bad = tso4;
	bad.gso_type = 3; /* UDP fragmentation: not offered */
	assert_false(virtio_net_tx_header_ok(&bad, all, 9000));
	bad = tso4;
	bad.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | 0x80; /* ECN: not offered */
	assert_false(virtio_net_tx_header_ok(&bad, all, 9000));
	bad = csum;
	bad.flags |= VIRTIO_NET_HDR_F_DATA_VALID; /* a receive-side flag */
	assert_false(virtio_net_tx_header_ok(&bad, all, 1514));

	/* From the TAP, for the guest. */
	csum.flags = VIRTIO_NET_HDR_F_DATA_VALID;
	assert_true(virtio_net_rx_header_ok(&csum, 0, 1514));
	assert_true(virtio_net_rx_header_ok(&tso4, all, 65000));
	assert_false(virtio_net_rx_header_ok(&tso4, no_tso, 65000));
	assert_false(virtio_net_rx_header_ok(&tso4, 0, 65000)); /* nor a partial checksum */
	assert_false(virtio_net_rx_header_ok(&plain, all, 1519));
}

static void expect_frame_in(struct fixture *f, uint64_t gpa, const uint8_t *pkt, size_t len)
{
	/* The buffers were offered one after another: the frame reads straight through. */
	assert_memory_equal(f->ram + gpa + VIRTIO_NET_HDR_LEN, pkt + VIRTIO_NET_HDR_LEN,
			    len - VIRTIO_NET_HDR_LEN);
	assert_memory_equal(f->ram + gpa, pkt, offsetof(struct virtio_net_hdr, num_buffers));
}

static uint16_t num_buffers_at(struct fixture *f, uint64_t gpa)
{
	uint16_t n;

	memcpy(&n, f->ram + gpa + offsetof(struct virtio_net_hdr, num_buffers), 2);
	return n;
}

static void test_tso_spans_mergeable_buffers(void **state)
{
	struct fixture *f = *state;
	size_t len = VIRTIO_NET_HDR_LEN + 9000;
	unsigned need = (unsigned)((len + RX_BUF - 1) / RX_BUF);
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_TCPV4, 1448, 9000);
	uint64_t first = post_rx(f, 8);
	uint32_t id, ulen, total = 0;

	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, len), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), need);
	for (unsigned i = 0; i < need; i++) {
		used_elem(f, VIRTIO_NET_RX, i, &id, &ulen);
		assert_int_equal(id, i); /* in the order they were offered */
		assert_true(ulen == RX_BUF || i == need - 1);
		total += ulen;
	}
	assert_int_equal(total, len);
	assert_int_equal(num_buffers_at(f, first), need);
	expect_frame_in(f, first, pkt, len);
	assert_int_equal(f->net.rx_dropped, 0);

	/* A plain frame after it takes one buffer of those left, and says so. */
	free(pkt);
	pkt = packet(VIRTIO_NET_HDR_GSO_NONE, 0, 1000);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, VIRTIO_NET_HDR_LEN + 1000), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), need + 1);
	assert_int_equal(num_buffers_at(f, first + (uint64_t)need * RX_BUF), 1);
	free(pkt);
}

static void test_frame_waits_for_buffers_enough(void **state)
{
	struct fixture *f = *state;
	size_t len = VIRTIO_NET_HDR_LEN + 6000;
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_TCPV6, 1428, 6000);
	uint64_t first = post_rx(f, 2);

	/* Two buffers hold 3052 bytes: nothing is used, the frame waits for the next kick. */
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, len), -EAGAIN);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 0);
	post_rx(f, 3);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, len), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 4);
	assert_int_equal(num_buffers_at(f, first), 4);
	expect_frame_in(f, first, pkt, len);
	free(pkt);
}

static void test_small_buffer_without_mergeable(void **state)
{
	struct fixture *f = *state;
	size_t len = VIRTIO_NET_HDR_LEN + 9000;
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_TCPV4, 1448, 9000);
	uint32_t big = VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX, id, ulen;
	uint64_t at;

	/* TSO taken but not MRG_RXBUF: the driver must post buffers for a whole segment. */
	f->net.vdev.driver_features = VIRTIO_NET_OFFLOADS & ~(1ULL << VIRTIO_NET_F_MRG_RXBUF);
	post_rx(f, 1);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, len), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 1);
	used_elem(f, VIRTIO_NET_RX, 0, &id, &ulen);
	assert_int_equal(ulen, 0); /* it goes back empty */
	assert_int_equal(f->net.rx_dropped, 1);

	/* A buffer big enough (Linux's "big packets", several descriptors) takes it whole. */
	at = offer(f, VIRTIO_NET_RX, &big, 1, VIRTQ_DESC_F_WRITE);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, len), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 2);
	used_elem(f, VIRTIO_NET_RX, 1, &id, &ulen);
	assert_int_equal(ulen, len);
	assert_int_equal(num_buffers_at(f, at), 1);
	expect_frame_in(f, at, pkt, len);
	free(pkt);
}

static void test_offload_not_negotiated_is_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_TCPV4, 1448, 9000);

	/* A TAP that still had offloads on from the driver before (the reset turns them off). */
	f->net.vdev.driver_features = 0;
	post_rx(f, 8);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, VIRTIO_NET_HDR_LEN + 9000), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 0);
	assert_int_equal(f->net.rx_dropped, 1);
	free(pkt);
}

/* The kernel's DATA_VALID reaches a driver that takes checksum offload, and only that one. */
static void test_data_valid_only_with_guest_csum(void **state)
{
	struct fixture *f = *state;
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_NONE, 0, 600);
	uint64_t at;

	pkt[offsetof(struct virtio_net_hdr, flags)] = VIRTIO_NET_HDR_F_DATA_VALID;
	at = post_rx(f, 1);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, VIRTIO_NET_HDR_LEN + 600), 0);
	assert_int_equal(f->ram[at + offsetof(struct virtio_net_hdr, flags)], VIRTIO_NET_HDR_F_DATA_VALID);

	f->net.vdev.driver_features = 0;
	at = post_rx(f, 1);
	assert_int_equal(virtio_net_receive_frame(&f->net, 0, pkt, VIRTIO_NET_HDR_LEN + 600), 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RX), 2);
	assert_int_equal(f->ram[at + offsetof(struct virtio_net_hdr, flags)], 0);
	assert_memory_equal(f->ram + at + VIRTIO_NET_HDR_LEN, pkt + VIRTIO_NET_HDR_LEN, 600);
	free(pkt);
}

static void kick(struct fixture *f, unsigned q)
{
	pthread_mutex_lock(&f->net.vdev.lock);
	virtio_net_ops.queue_notify(&f->net.vdev, q);
	pthread_mutex_unlock(&f->net.vdev.lock);
}

/* Sends header + frame as the guest would (header and frame in two descriptors) on queue q. */
static void guest_sends_on(struct fixture *f, unsigned q, const uint8_t *pkt, size_t len)
{
	uint32_t lens[2] = {VIRTIO_NET_HDR_LEN, (uint32_t)(len - VIRTIO_NET_HDR_LEN)};
	uint64_t at = offer(f, q, lens, 2, 0);

	memcpy(f->ram + at, pkt, len);
	kick(f, q);
}

static void guest_sends(struct fixture *f, const uint8_t *pkt, size_t len)
{
	guest_sends_on(f, VIRTIO_NET_TX, pkt, len);
}

static void test_tso_segment_goes_to_the_tap_whole(void **state)
{
	struct fixture *f = *state;
	size_t len = VIRTIO_NET_HDR_LEN + 20000;
	uint8_t *pkt = packet(VIRTIO_NET_HDR_GSO_TCPV4, 1448, 20000);
	uint8_t *got = malloc(len + 1);

	assert_non_null(got);
	guest_sends(f, pkt, len);
	assert_int_equal(recv(f->tap[1], got, len + 1, MSG_DONTWAIT), (ssize_t)len);
	assert_memory_equal(got, pkt, len);
	assert_int_equal(f->net.tx_dropped, 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_TX), 1);

	/* Without HOST_TSO4 the same segment is refused, and the chain still goes back. */
	f->net.vdev.driver_features = VIRTIO_NET_OFFLOADS & ~(1ULL << VIRTIO_NET_F_HOST_TSO4);
	guest_sends(f, pkt, len);
	assert_int_equal(recv(f->tap[1], got, len + 1, MSG_DONTWAIT), -1);
	assert_int_equal(f->net.tx_dropped, 1);
	assert_int_equal(used_idx(f, VIRTIO_NET_TX), 2);
	free(got);
	free(pkt);
}

/*
 * The driver's command on the control queue (queue 4 of two pairs): class,
 * command, the pair count, then a byte for the device's answer. Returns it.
 */
static uint8_t control(struct fixture *f, uint8_t class, uint8_t cmd, uint16_t pairs)
{
	uint32_t lens[2] = {4, 1};
	uint64_t at = f->next_data;
	uint8_t msg[4] = {class, cmd, (uint8_t)pairs, (uint8_t)(pairs >> 8)};
	uint16_t head = f->next_desc[4], idx = avail(f, 4)[1];

	/* Readable then writable: offer() makes all alike, so the chain is built here. */
	for (unsigned i = 0; i < 2; i++) {
		*desc(f, 4, f->next_desc[4] % QSIZE) = (struct virtq_desc){
		    .addr = f->next_data,
		    .len = lens[i],
		    .flags = (uint16_t)(i == 0 ? VIRTQ_DESC_F_NEXT : VIRTQ_DESC_F_WRITE),
		    .next = (uint16_t)((f->next_desc[4] + 1) % QSIZE),
		};
		f->next_desc[4]++;
		f->next_data += lens[i];
	}
	memcpy(f->ram + at, msg, 4);
	f->ram[at + 4] = 0xee;
	avail(f, 4)[2 + idx % QSIZE] = (uint16_t)(head % QSIZE);
	avail(f, 4)[1] = (uint16_t)(idx + 1);
	kick(f, 4);
	return f->ram[at + 4];
}

/*
 * Two queue pairs on two TAP queues: until the driver says it uses both,
 * what the second TAP queue reads goes to the first pair; then to the
 * second; the second pair's transmit queue goes to its TAP queue; a count
 * out of range, or another command, is refused and changes nothing.
 */
static void test_queue_pairs(void **state)
{
	struct fixture *f = *state;
	size_t len = VIRTIO_NET_HDR_LEN + 600;
	uint8_t *pkt = packet(0, 0, 600);
	uint8_t got[VIRTIO_NET_HDR_LEN + 601];
	uint64_t at0, at1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->tap2), 0);
	f->net.pairs = 2;
	f->net.pair[1] = (struct virtio_net_pair){.net = &f->net, .index = 1, .tap_fd = f->tap2[0],
						  .wake_fd = -1};
	f->net.vdev.driver_features =
	    VIRTIO_NET_OFFLOADS | (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ);
	at0 = post_rx_on(f, 0, 2);
	at1 = post_rx_on(f, 2, 1);

	/* One pair in use: the second TAP queue's frame goes to the first pair. */
	assert_int_equal(virtio_net_receive_frame(&f->net, 1, pkt, len), 0);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(used_idx(f, 2), 0);
	expect_frame_in(f, at0, pkt, len);

	assert_int_equal(control(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2), VIRTIO_NET_OK);
	assert_int_equal(f->net.active_pairs, 2);
	assert_int_equal(used_idx(f, 4), 1);
	pkt[VIRTIO_NET_HDR_LEN] ^= 0xff; /* another frame */
	assert_int_equal(virtio_net_receive_frame(&f->net, 1, pkt, len), 0);
	assert_int_equal(used_idx(f, 2), 1);
	assert_int_equal(used_idx(f, 0), 1);
	expect_frame_in(f, at1, pkt, len);

	/* The second pair sends on its own TAP queue. */
	guest_sends_on(f, 3, pkt, len);
	assert_int_equal(recv(f->tap2[1], got, sizeof(got), MSG_DONTWAIT), (ssize_t)len);
	assert_memory_equal(got, pkt, len);
	assert_int_equal(recv(f->tap[1], got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(used_idx(f, 3), 1);

	/* Three pairs of two, none, another class: refused, still two. */
	assert_int_equal(control(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 3), VIRTIO_NET_ERR);
	assert_int_equal(control(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0), VIRTIO_NET_ERR);
	assert_int_equal(control(f, 0 /* RX mode */, 0, 1), VIRTIO_NET_ERR);
	assert_int_equal(f->net.active_pairs, 2);
	/* Without MQ negotiated, no count is taken. */
	f->net.vdev.driver_features &= ~(1ULL << VIRTIO_NET_F_MQ);
	assert_int_equal(control(f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 1), VIRTIO_NET_ERR);
	assert_int_equal(f->net.active_pairs, 2);
	assert_int_equal(used_idx(f, 4), 5);
	free(pkt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_checks),
	    cmocka_unit_test_setup_teardown(test_tso_spans_mergeable_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_frame_waits_for_buffers_enough, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_small_buffer_without_mergeable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_offload_not_negotiated_is_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_valid_only_with_guest_csum, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tso_segment_goes_to_the_tap_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_pairs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
