/*
 * vhost-user messages and the back-end's handling of them, over a
 * socketpair: well-formed messages round-trip with their descriptors;
 * malformed ones are refused with a reason and their descriptors closed;
 * a back-end negotiates, maps memory, starts a queue and serves a kick.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost/backend.h"

static int sv[2];
static char err[256];

static int setup(void **state)
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static int teardown(void **state)
{
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static struct vhost_user_msg msg(uint32_t request, uint32_t size)
{
	struct vhost_user_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr.request = request;
	m.hdr.flags = VHOST_USER_VERSION;
	m.hdr.size = size;
	return m;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_round_trip(void **state)
{
	struct vhost_user_msg m = msg(VHOST_USER_SET_VRING_KICK, 8), got;
	int efd = eventfd(0, EFD_CLOEXEC);

	m.payload.u64 = 1;
	m.fds[0] = efd;
	m.nfds = 1;
	assert_int_equal(vhost_user_send(sv[0], &m), 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, err, sizeof(err)), 0);
	assert_int_equal(got.hdr.request, VHOST_USER_SET_VRING_KICK);
	assert_int_equal(got.payload.u64, 1);
	assert_int_equal(got.nfds, 1);
	assert_true(fd_open(got.fds[0]));
	vhost_user_close_fds(&got);
	close(efd);
}

/* Sends m raw (its header as given) and expects recv to refuse it, naming why. */
static void expect_refused(struct vhost_user_msg *m, const char *why)
{
	struct vhost_user_msg got;
	int efd = -1;

	if (m->nfds) {
		efd = eventfd(0, EFD_CLOEXEC);
		for (unsigned i = 0; i < m->nfds; i++)
			m->fds[i] = efd;
	}
	assert_int_equal(vhost_user_send(sv[0], m), 0);
	err[0] = 0;
	assert_int_equal(vhost_user_recv(sv[1], &got, err, sizeof(err)), -EPROTO);
	if (!strstr(err, why))
		fail_msg("refused with '%s', expected '%s'", err, why);
	assert_int_equal(got.nfds, 0);
	if (efd >= 0)
		close(efd);
}

static void test_malformed(void **state)
{
	struct vhost_user_msg m;

	m = msg(99, 0);
	expect_refused(&m, "unknown request 99");
	m = msg(VHOST_USER_SET_FEATURES, 4);
	expect_refused(&m, "payload of 4 bytes, expected 8");
	m = msg(VHOST_USER_GET_FEATURES, 0);
	m.hdr.flags = 2;
	expect_refused(&m, "protocol version 2");
	m = msg(VHOST_USER_SET_VRING_NUM, 8);
	m.nfds = 1;
	expect_refused(&m, "1 file descriptors, expected 0 to 0");
	m = msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	expect_refused(&m, "0 file descriptors, expected 1 to 1");
	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + 2 * sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 2;
	m.payload.memory.regions[0].memory_size = m.payload.memory.regions[1].memory_size = 4096;
	m.nfds = 1;
	expect_refused(&m, "2 regions");
	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0].memory_size = 4096;
	m.payload.memory.regions[0].guest_phys_addr = UINT64_MAX - 100;
	m.nfds = 1;
	expect_refused(&m, "wraps around");
	m = msg(VHOST_USER_GET_CONFIG, 12 + 8);
	m.payload.config.size = 300;
	expect_refused(&m, "config of 300 bytes");
}

static void test_oversized_header(void **state)
{
	struct vhost_user_header h = {VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, 1u << 20};
	struct vhost_user_msg got;

	assert_int_equal(write(sv[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(vhost_user_recv(sv[1], &got, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "payload of 1048576 bytes"));
	/* A header cut short, then the end of the stream. */
	assert_int_equal(write(sv[0], &h, 5), 5);
	shutdown(sv[0], SHUT_WR);
	assert_true(vhost_user_recv(sv[1], &got, err, sizeof(err)) < 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, err, sizeof(err)), -EPIPE);
}

/* ---- a back-end with a device that counts kicks ---- */

static int kicks;

static void kicked(void *dev, struct vhost_backend *b, unsigned q)
{
	struct virtq_chain c;

	kicks++;
	while (virtq_pop_avail(&b->q[q].vq, &c) > 0)
		virtq_push_used(&b->q[q].vq, c.head, 0);
	vhost_backend_notify(b, q);
}

static int config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	if (off + len > 8)
		return -EINVAL;
	memcpy(buf, &"ABCDEFGH"[off], len);
	return 0;
}

static const struct vhost_device_ops dev_ops = {
	.features = (1ULL << 32) | (1ULL << 28),
	.num_queues = 2,
	.queue_size = 64,
	.get_config = config,
	.queue_kicked = kicked,
};

/* The front-end's side: send m, let the back-end handle it, return its reply if any. */
static int exchange(struct vhost_backend *b, struct vhost_user_msg *m, struct vhost_user_msg *reply)
{
	int ret;

	assert_int_equal(vhost_user_send(sv[0], m), 0);
	ret = vhost_backend_handle(b);
	if (reply) {
		assert_int_equal(vhost_user_recv(sv[0], reply, err, sizeof(err)), 0);
		assert_true(reply->hdr.flags & VHOST_USER_FLAG_REPLY);
		assert_int_equal(reply->hdr.request, m->hdr.request);
	}
	return ret;
}

static void test_backend(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m, r;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC);
	uint8_t *guest;
	uint16_t *avail, *used;

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	guest = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(guest != MAP_FAILED);
	vhost_backend_init(&b, sv[1], &dev_ops, NULL);

	m = msg(VHOST_USER_GET_FEATURES, 0);
	exchange(&b, &m, &r);
	assert_int_equal(r.payload.u64, dev_ops.features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
	m = msg(VHOST_USER_GET_PROTOCOL_FEATURES, 0);
	exchange(&b, &m, &r);
	assert_true(r.payload.u64 & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	m = msg(VHOST_USER_SET_PROTOCOL_FEATURES, 8);
	m.payload.u64 = 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK | 1ULL << VHOST_USER_PROTOCOL_F_CONFIG;
	assert_int_equal(exchange(&b, &m, NULL), 0);

	/* Features we did not offer: refused; with REPLY_ACK asked, an ack of 1 and we go on. */
	m = msg(VHOST_USER_SET_FEATURES, 8);
	m.hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
	m.payload.u64 = 1ULL << 40;
	assert_int_equal(exchange(&b, &m, &r), 0);
	assert_int_equal(r.payload.u64, 1);
	assert_non_null(strstr(b.err, "bits we did not offer"));
	m.payload.u64 = dev_ops.features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(exchange(&b, &m, &r), 0);
	assert_int_equal(r.payload.u64, 0);

	m = msg(VHOST_USER_GET_CONFIG, 12 + 4);
	m.payload.config.offset = 2;
	m.payload.config.size = 4;
	exchange(&b, &m, &r);
	assert_int_equal(r.payload.config.size, 4);
	assert_memory_equal(r.payload.config.region, "CDEF", 4);

	/* Guest memory at gpa 0x100000, the front-end's address 0x7f0000000000. */
	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0] = (struct vhost_user_region){0x100000, 1 << 20, 0x7f0000000000, 0};
	m.fds[0] = memfd;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), 0);

	m = msg(VHOST_USER_SET_VRING_NUM, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 100}; /* not a power of two */
	assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
	m.payload.state = (struct vhost_user_vring_state){5, 16}; /* no such queue */
	assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
	m.payload.state = (struct vhost_user_vring_state){0, 16};
	assert_int_equal(exchange(&b, &m, NULL), 0);

	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){
		.index = 0, .desc = 0x7f0000000000, .avail = 0x7f0000001000, .used = 0x7f0000002000};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = 0;
	m.fds[0] = kick;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), 0);
	assert_false(b.q[0].started); /* protocol features: it waits to be enabled */
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 1};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	assert_true(b.q[0].started);
	kicks = 0;

	/* The driver makes descriptor 3 available and kicks. */
	avail = (uint16_t *)(guest + 0x1000);
	used = (uint16_t *)(guest + 0x2000);
	memcpy(guest + 3 * 16, &(struct virtq_desc){.addr = 0x100000 + 0x8000, .len = 64}, 16);
	avail[2] = 3;
	avail[1] = 1;
	{
		uint64_t one = 1;
		struct pollfd p[4];
		unsigned n;
		assert_int_equal(write(kick, &one, 8), 8);
		n = vhost_backend_poll_fds(&b, p, 4);
		assert_int_equal(n, 2);
		assert_int_equal(poll(p, n, 1000), 1);
		assert_int_equal(vhost_backend_poll_ready(&b, p, n), 0);
	}
	assert_int_equal(kicks, 1);
	assert_int_equal(used[1], 1);
	assert_int_equal(*(uint32_t *)(guest + 0x2004), 3);

	m = msg(VHOST_USER_GET_VRING_BASE, 8);
	m.payload.state.index = 0;
	exchange(&b, &m, &r);
	assert_int_equal(r.payload.state.num, 1);
	assert_false(b.q[0].started);

	/* A ring outside the memory table does not start. */
	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){.index = 1, .desc = 0x1000, .avail = 0x2000,
							.used = 0x3000};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){1, 1};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = 1;
	m.fds[0] = kick;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), -EFAULT);
	assert_non_null(strstr(b.err, "outside the memory table"));

	b.sock = -1; /* the socketpair is the fixture's */
	vhost_backend_close(&b);
	munmap(guest, 1 << 20);
	close(memfd);
	close(kick);
}

/*
 * The inflight area across a back-end's death: requests taken and not
 * completed are served again by the next back-end, oldest first, and a
 * completion that reached the used ring but not the record is not.
 */
static int no_kick_counting;

/* A device that leaves the taking of requests to the test. */
static void take_nothing(void *dev, struct vhost_backend *b, unsigned q)
{
	no_kick_counting++;
}

static const struct vhost_device_ops passive_ops = {
	.features = (1ULL << 32) | (1ULL << 28),
	.num_queues = 2,
	.queue_size = 64,
	.get_config = config,
	.queue_kicked = take_nothing,
};

static int new_backend_queue(struct vhost_backend *b, int sock, int memfd, int inflight_fd,
			     uint64_t inflight_size, uint16_t inflight_queue_size, int kick)
{
	struct vhost_user_msg m;

	vhost_backend_init(b, sock, &passive_ops, NULL);
	m = msg(VHOST_USER_SET_PROTOCOL_FEATURES, 8);
	m.payload.u64 = 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_FEATURES, 8);
	m.payload.u64 = dev_ops.features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0] = (struct vhost_user_region){0, 1 << 20, 0x10000000, 0};
	/* The descriptors point at gpa 0x8000 and up, inside this one region. */
	m.fds[0] = memfd;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){inflight_size, 0, 1, inflight_queue_size, 0};
	m.fds[0] = inflight_fd;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_NUM, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 16};
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){
		.index = 0, .desc = 0x10000000, .avail = 0x10001000, .used = 0x10002000};
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.fds[0] = kick;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 1};
	return exchange(b, &m, NULL);
}

static void test_inflight_recovery(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m, r;
	struct virtq_chain c;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC), ifd;
	uint64_t isize;
	uint8_t *guest;
	uint16_t *avail, *used;

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	guest = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	avail = (uint16_t *)(guest + 0x1000);
	used = (uint16_t *)(guest + 0x2000);
	/* Six requests, heads 0..5, each one 512-byte descriptor. */
	for (uint16_t h = 0; h < 6; h++) {
		memcpy(guest + h * 16, &(struct virtq_desc){.addr = 0x8000 + h * 512u, .len = 512}, 16);
		avail[2 + h] = h;
	}
	avail[1] = 6;

	/* The first back-end sizes the area. */
	vhost_backend_init(&b, sv[1], &dev_ops, NULL);
	m = msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){0, 0, 1, 16, 0};
	exchange(&b, &m, &r);
	assert_int_equal(r.nfds, 1);
	ifd = r.fds[0];
	isize = r.payload.inflight.mmap_size;
	assert_true(isize >= 16 + 16 * 16);
	b.sock = -1;
	vhost_backend_close(&b);

	/* Back-end 1 takes four requests, completes heads 0 and 2, then dies. */
	assert_int_equal(new_backend_queue(&b, sv[1], memfd, ifd, isize, 16, kick), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vhost_backend_pop(&b, 0, &c), 1);
		assert_int_equal(c.head, i);
	}
	assert_int_equal(vhost_backend_push(&b, 0, 0, 1), 0);
	assert_int_equal(vhost_backend_push(&b, 0, 2, 1), 0);
	/* Head 3's completion reaches the used ring, and it dies before recording it. */
	b.q[0].inflight->last_batch_head = 3;
	assert_int_equal(virtq_push_used(&b.q[0].vq, 3, 1), 0);
	assert_int_equal(used[1], 3);
	b.sock = -1;
	vhost_backend_close(&b);

	/* Back-end 2 serves head 1 again (taken, not completed), not 3, then 4 and 5 anew. */
	assert_int_equal(new_backend_queue(&b, sv[1], memfd, ifd, isize, 16, kick), 0);
	assert_int_equal(b.resubmitted, 1);
	assert_int_equal(vhost_backend_pop(&b, 0, &c), 1);
	assert_int_equal(c.head, 1);
	assert_int_equal(vhost_backend_pop(&b, 0, &c), 1);
	assert_int_equal(c.head, 4);
	assert_int_equal(vhost_backend_pop(&b, 0, &c), 1);
	assert_int_equal(c.head, 5);
	assert_int_equal(vhost_backend_pop(&b, 0, &c), 0);
	b.sock = -1;
	vhost_backend_close(&b);
	munmap(guest, 1 << 20);
	close(memfd);
	close(kick);
	close(ifd);
}

/* ---- multiqueue: every queue of a disk, hostile indexes refused ---- */

static const struct vhost_device_ops mq_ops = {
	.features = (1ULL << 32) | (1ULL << 28) | (1ULL << 12),
	.num_queues = VHOST_BACKEND_MAX_QUEUES,
	.queue_size = 64,
	.get_config = config,
	.queue_kicked = take_nothing,
};

/* Queue qi of 16 entries, its rings at gpa 0x3000 * qi (front-end address 0x10000000 + gpa). */
static void mq_start_queue(struct vhost_backend *b, unsigned qi, int kick)
{
	uint64_t base = 0x10000000 + 0x3000ULL * qi;
	struct vhost_user_msg m = msg(VHOST_USER_SET_VRING_NUM, 8);

	m.payload.state = (struct vhost_user_vring_state){qi, 16};
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){
		.index = qi, .desc = base, .avail = base + 0x1000, .used = base + 0x2000};
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = qi;
	m.fds[0] = kick;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){qi, 1};
	assert_int_equal(exchange(b, &m, NULL), 0);
	assert_true(b->q[qi].started);
}

/* A back-end of mq_ops with guest memory and the inflight area of nqueues queues. */
static void mq_backend(struct vhost_backend *b, int memfd, int ifd, uint64_t isize, uint16_t nqueues)
{
	struct vhost_user_msg m;

	vhost_backend_init(b, sv[1], &mq_ops, NULL);
	m = msg(VHOST_USER_SET_PROTOCOL_FEATURES, 8);
	m.payload.u64 = 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD | 1ULL << VHOST_USER_PROTOCOL_F_MQ;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_FEATURES, 8);
	m.payload.u64 = mq_ops.features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0] = (struct vhost_user_region){0, 1 << 20, 0x10000000, 0};
	m.fds[0] = memfd;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){isize, 0, nqueues, 16, 0};
	m.fds[0] = ifd;
	m.nfds = 1;
	assert_int_equal(exchange(b, &m, NULL), 0);
}

/*
 * GET_QUEUE_NUM says how many queues the device serves; a queue index at
 * or past it, in any request that names one, and an inflight area for none
 * or too many queues, are refused with a reason, never served.
 */
static void test_mq_hostile(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m, r;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC);

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	vhost_backend_init(&b, sv[1], &mq_ops, NULL);
	m = msg(VHOST_USER_GET_PROTOCOL_FEATURES, 0);
	exchange(&b, &m, &r);
	assert_true(r.payload.u64 & (1ULL << VHOST_USER_PROTOCOL_F_MQ));
	m = msg(VHOST_USER_GET_QUEUE_NUM, 0);
	exchange(&b, &m, &r);
	assert_int_equal(r.payload.u64, VHOST_BACKEND_MAX_QUEUES);

	for (uint32_t bad = VHOST_BACKEND_MAX_QUEUES; bad <= 0xff; bad += 0xef) {
		m = msg(VHOST_USER_SET_VRING_NUM, 8);
		m.payload.state = (struct vhost_user_vring_state){bad, 16};
		assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
		assert_non_null(strstr(b.err, "does not exist (16 queues)"));
		m = msg(VHOST_USER_SET_VRING_KICK, 8);
		m.payload.u64 = bad;
		m.fds[0] = kick;
		m.nfds = 1;
		assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
		m = msg(VHOST_USER_GET_VRING_BASE, 8);
		m.payload.state = (struct vhost_user_vring_state){bad, 0};
		assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
	}
	for (uint16_t n = 0; n <= VHOST_BACKEND_MAX_QUEUES + 1; n += VHOST_BACKEND_MAX_QUEUES + 1) {
		m = msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
		m.payload.inflight = (struct vhost_user_inflight){0, 0, n, 16, 0};
		assert_int_equal(exchange(&b, &m, NULL), -EINVAL);
		assert_non_null(strstr(b.err, "GET_INFLIGHT_FD for"));
	}
	/* All sixteen: each queue its own record in the area. */
	m = msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){0, 0, VHOST_BACKEND_MAX_QUEUES, 16, 0};
	exchange(&b, &m, &r);
	assert_int_equal(r.nfds, 1);
	assert_int_equal(r.payload.inflight.num_queues, VHOST_BACKEND_MAX_QUEUES);
	for (unsigned q = 1; q < VHOST_BACKEND_MAX_QUEUES; q++)
		assert_true((uint8_t *)b.q[q].inflight >= (uint8_t *)b.q[q - 1].inflight->desc + 16 * 16);
	close(r.fds[0]);
	b.sock = -1;
	vhost_backend_close(&b);
	close(memfd);
	close(kick);
}

/*
 * The inflight area of a multiqueue device: a back-end that dies with
 * requests taken on several queues leaves each to its successor, which
 * serves them again on the queue they came from.
 */
static void test_mq_inflight_recovery(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m, r;
	struct virtq_chain c;
	const unsigned nq = 3;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC), ifd;
	uint64_t isize;
	uint8_t *guest;

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	guest = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(guest != MAP_FAILED);
	/* Each queue: heads 0..3 available, 512-byte buffers of its own. */
	for (unsigned q = 0; q < nq; q++) {
		uint16_t *avail = (uint16_t *)(guest + 0x3000 * q + 0x1000);
		for (uint16_t h = 0; h < 4; h++) {
			struct virtq_desc d = {.addr = 0x10000 + q * 0x1000 + h * 512u, .len = 512};
			memcpy(guest + 0x3000 * q + h * 16, &d, 16);
			guest[d.addr] = (uint8_t)(16 * q + h); /* which request this is */
			avail[2 + h] = h;
		}
		avail[1] = 4;
	}
	vhost_backend_init(&b, sv[1], &mq_ops, NULL);
	m = msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){0, 0, nq, 16, 0};
	exchange(&b, &m, &r);
	assert_int_equal(r.nfds, 1);
	ifd = r.fds[0];
	isize = r.payload.inflight.mmap_size;
	b.sock = -1;
	vhost_backend_close(&b);

	/* Back-end 1 takes q+1 requests of queue q, completes the first of each, and dies. */
	mq_backend(&b, memfd, ifd, isize, nq);
	for (unsigned q = 0; q < nq; q++) {
		mq_start_queue(&b, q, kick);
		for (unsigned i = 0; i <= q; i++) {
			assert_int_equal(vhost_backend_pop(&b, q, &c), 1);
			assert_int_equal(c.head, i);
		}
		assert_int_equal(vhost_backend_push(&b, q, 0, 1), 0);
	}
	b.sock = -1;
	vhost_backend_close(&b);

	/* Back-end 2: on queue q, heads 1..q again, then what was never taken. */
	mq_backend(&b, memfd, ifd, isize, nq);
	for (unsigned q = 0; q < nq; q++)
		mq_start_queue(&b, q, kick);
	assert_int_equal(b.resubmitted, 0 + 1 + 2);
	for (unsigned q = 0; q < nq; q++) {
		for (uint16_t h = 1; h < 4; h++) {
			assert_int_equal(vhost_backend_pop(&b, q, &c), 1);
			assert_int_equal(c.head, h);
			assert_int_equal(*(uint8_t *)c.iov[0].iov_base, 16 * q + h);
		}
		assert_int_equal(vhost_backend_pop(&b, q, &c), 0);
	}
	b.sock = -1;
	vhost_backend_close(&b);
	munmap(guest, 1 << 20);
	close(memfd);
	close(kick);
	close(ifd);
}

/* A front-end that hands an inflight area too small for its ring: not used, no stray access. */
static void test_inflight_too_small(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC);
	int ifd = memfd_create("inflight", MFD_CLOEXEC);
	struct virtq_chain c;

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	assert_int_equal(ftruncate(ifd, 64), 0);
	/* An area with room for one entry, then a ring of 16: the queue runs, untracked. */
	assert_int_equal(new_backend_queue(&b, sv[1], memfd, ifd, 64, 1, kick), 0);
	assert_true(b.q[0].started);
	assert_null(b.q[0].inflight);
	assert_int_equal(vhost_backend_pop(&b, 0, &c), 0);
	(void)m;
	b.sock = -1;
	vhost_backend_close(&b);
	close(memfd);
	close(kick);
	close(ifd);
}

/*
 * A front-end that asks and never reads the replies, or sends half a
 * message: the back-end (one thread for every front-end in domus-blk and
 * domus-net) drops it instead of waiting for it. The sockets here have no
 * timeout: a back-end that waited would hang this test.
 */
static void test_backend_never_waits(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m;
	int small = 4096, ret = 0, handled = 0;

	(void)state;
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	vhost_backend_init(&b, sv[1], &dev_ops, NULL);
	/* Woken with nothing to read: nothing happens, the front-end stays. */
	assert_int_equal(vhost_backend_handle(&b), 0);
	m = msg(VHOST_USER_GET_FEATURES, 0);
	while (ret == 0 && handled < 100000) {
		assert_int_equal(vhost_user_send(sv[0], &m), 0);
		ret = vhost_backend_handle(&b);
		handled++;
	}
	assert_int_equal(ret, -EPIPE);
	assert_non_null(strstr(b.err, "reads no replies"));
	assert_true(handled > 1);

	/* Half a message: the header promises a payload that never comes. */
	vhost_backend_init(&b, sv[1], &dev_ops, NULL);
	while (recv(sv[0], &m, sizeof(m), MSG_DONTWAIT) > 0)
		;
	m = msg(VHOST_USER_SET_FEATURES, 8);
	assert_int_equal(write(sv[0], &m.hdr, sizeof(m.hdr)), sizeof(m.hdr));
	assert_int_equal(vhost_backend_handle(&b), -EPROTO);
	assert_non_null(strstr(b.err, "half a message"));
}

/* The events an epoll set has now (no wait): how many, the first's pointer in *first. */
static int ready_now(int ep, void **first)
{
	struct epoll_event ev[8];
	int n = epoll_wait(ep, ev, 8, 0);

	if (n > 0 && first)
		*first = ev[0].data.ptr;
	return n;
}

/*
 * vhost_backend_watch: the connection's socket is in the epoll set from the
 * start, a queue's kick from when it starts until it stops (and the
 * descriptor replaced by a new SET_VRING_KICK is taken out before it
 * closes); events point to struct vhost_watch with the loop's kind, and
 * vhost_backend_event serves them.
 */
static void test_backend_epoll(void **state)
{
	struct vhost_backend b;
	struct vhost_user_msg m;
	int memfd = memfd_create("guest", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int kick2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), ep = epoll_create1(EPOLL_CLOEXEC);
	uint64_t one = 1;
	void *got = NULL;
	const struct vhost_watch *w;

	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	vhost_backend_init(&b, sv[1], &dev_ops, NULL);
	assert_int_equal(vhost_backend_watch(&b, ep, 7), 0);
	assert_int_equal(ready_now(ep, NULL), 0);

	/* A message on the socket: its event, served by vhost_backend_event. */
	m = msg(VHOST_USER_SET_FEATURES, 8);
	m.payload.u64 = dev_ops.features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(vhost_user_send(sv[0], &m), 0);
	assert_int_equal(ready_now(ep, &got), 1);
	w = got;
	assert_int_equal(w->w.kind, 7);
	assert_ptr_equal(w->b, &b);
	assert_int_equal(w->q, -1);
	assert_int_equal(vhost_backend_event(w), 0);
	assert_int_equal(b.features, m.payload.u64);
	assert_int_equal(ready_now(ep, NULL), 0);

	m = msg(VHOST_USER_SET_MEM_TABLE, 8 + sizeof(struct vhost_user_region));
	m.payload.memory.nregions = 1;
	m.payload.memory.regions[0] = (struct vhost_user_region){0x100000, 1 << 20, 0x7f0000000000, 0};
	m.fds[0] = memfd;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_NUM, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 16};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){
		.index = 0, .desc = 0x7f0000000000, .avail = 0x7f0000001000, .used = 0x7f0000002000};
	assert_int_equal(exchange(&b, &m, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = 0;
	m.fds[0] = kick;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), 0);
	/* Not started yet (protocol features: it waits for ENABLE): a kick is not watched. */
	assert_int_equal(write(kick, &one, 8), 8);
	assert_int_equal(ready_now(ep, NULL), 0);
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){0, 1};
	kicks = 0;
	assert_int_equal(exchange(&b, &m, NULL), 0);
	assert_int_equal(kicks, 1); /* work from before it started is looked at once */
	assert_int_equal(ready_now(ep, &got), 1);
	w = got;
	assert_int_equal(w->q, 0);
	assert_int_equal(vhost_backend_event(w), 0);
	assert_int_equal(kicks, 2);
	assert_int_equal(ready_now(ep, NULL), 0); /* the kick was read */

	/* A new kick descriptor: the old one leaves the set, the new one is in it. */
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = 0;
	m.fds[0] = kick2;
	m.nfds = 1;
	assert_int_equal(exchange(&b, &m, NULL), 0);
	assert_int_equal(b.kick_watched[0], b.q[0].kick_fd); /* the descriptor received */
	assert_int_equal(write(kick2, &one, 8), 8);
	assert_int_equal(ready_now(ep, &got), 1);
	assert_int_equal(((const struct vhost_watch *)got)->q, 0);
	assert_int_equal(vhost_backend_event(got), 0);

	/* Stopped: its kick is out of the set. */
	m = msg(VHOST_USER_GET_VRING_BASE, 8);
	m.payload.state.index = 0;
	{
		struct vhost_user_msg r;
		exchange(&b, &m, &r);
	}
	assert_int_equal(b.kick_watched[0], -1);
	assert_int_equal(ready_now(ep, NULL), 0);

	vhost_backend_unwatch(&b);
	assert_int_equal(b.epfd, -1);
	m = msg(VHOST_USER_GET_FEATURES, 0);
	assert_int_equal(vhost_user_send(sv[0], &m), 0);
	assert_int_equal(ready_now(ep, NULL), 0); /* the socket too */
	b.sock = -1; /* the socketpair is the fixture's */
	vhost_backend_close(&b);
	close(memfd);
	close(ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_epoll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflight_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflight_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mq_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mq_inflight_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_never_waits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
