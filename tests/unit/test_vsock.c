/*
 * virtio-vsock's hybrid back-end: a synthetic guest driver's packets
 * against real host Unix sockets (both directions, credit, half-close, RST,
 * hostile headers), and the device's queues with a fake guest memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio_vsock.h"
#include "devices/vsock_hybrid.h"
#include "lib/unix_socket.h"

#define GUEST_CID 3

struct fixture {
	char dir[64];
	char sock[128];
	struct vsock_hybrid h;
	uint8_t buf[VSOCK_MAX_PKT];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int lfd;

	strcpy(f->dir, "/tmp/test-vsock-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/v.sock", f->dir);
	lfd = unix_listen(f->sock, SOCK_STREAM, 8);
	assert_true(lfd >= 0);
	assert_int_equal(vsock_hybrid_init(&f->h, GUEST_CID, f->sock, lfd), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vsock_hybrid_close(&f->h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The guest sends one packet; fields not given are a well-behaved guest's. */
static void guest_send_full(struct fixture *f, uint64_t src_cid, uint64_t dst_cid, uint16_t type,
			    uint16_t op, uint32_t sport, uint32_t dport, uint32_t flags,
			    const void *data, uint32_t len, uint32_t hdr_len, uint32_t buf_alloc,
			    uint32_t fwd_cnt)
{
	struct vsock_hdr hd = {.src_cid = src_cid, .dst_cid = dst_cid, .src_port = sport,
			       .dst_port = dport, .len = hdr_len, .type = type, .op = op,
			       .flags = flags, .buf_alloc = buf_alloc, .fwd_cnt = fwd_cnt};
	uint8_t raw[VSOCK_HDR_LEN];

	vsock_hdr_encode(&hd, raw);
	vsock_hybrid_from_guest(&f->h, raw, data, len);
}

static void guest_send(struct fixture *f, uint16_t op, uint32_t sport, uint32_t dport,
		       uint32_t flags, const void *data, uint32_t len)
{
	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, op, sport, dport, flags, data,
			len, len, 1 << 20, 0);
}

/* One round of the device thread's poll, waiting at most ms. */
static void poll_once(struct fixture *f, int ms)
{
	struct pollfd p[VSOCK_MAX_CONNS + 1];
	unsigned n = vsock_hybrid_poll_fds(&f->h, p, VSOCK_MAX_CONNS + 1);

	if (poll(p, n, ms) > 0)
		vsock_hybrid_poll_ready(&f->h, p, n);
}

/*
 * The next packet for the guest, polling the host sockets for up to two
 * seconds (a bound, not a sleep: it returns as soon as one is owed).
 * Returns the payload length, or -EAGAIN if none came.
 */
static int guest_recv_wait(struct fixture *f, struct vsock_hdr *hd, uint32_t room, int ms)
{
	uint8_t raw[VSOCK_HDR_LEN];

	for (int i = 0; i <= ms / 10; i++) {
		int n = vsock_hybrid_to_guest(&f->h, raw, f->buf, room);

		if (n >= 0) {
			vsock_hdr_decode(raw, hd);
			assert_int_equal(hd->src_cid, VSOCK_HOST_CID);
			assert_int_equal(hd->dst_cid, GUEST_CID);
			assert_int_equal(hd->type, VSOCK_TYPE_STREAM);
			assert_int_equal(hd->len, (uint32_t)n);
			return n;
		}
		if (ms)
			poll_once(f, 10);
	}
	return -EAGAIN;
}

static int guest_recv(struct fixture *f, struct vsock_hdr *hd)
{
	return guest_recv_wait(f, hd, VSOCK_MAX_PKT, 2000);
}

static void expect_nothing(struct fixture *f)
{
	struct vsock_hdr hd;

	assert_int_equal(guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 0), -EAGAIN);
}

/* Reads exactly len bytes from a host socket within two seconds. */
static void host_read(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		assert_int_equal(poll(&p, 1, 2000), 1);
		n = read(fd, (char *)buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

static void host_expect_eof(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(fd, &c, 1), 0);
}

/* Closed by us with what it wrote unread: end of stream or a reset, no data. */
static void host_expect_closed(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;
	ssize_t n;

	assert_int_equal(poll(&p, 1, 2000), 1);
	n = read(fd, &c, 1);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

/* A host service listening at SOCKET_port. */
static int host_service(struct fixture *f, unsigned port)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s_%u", f->sock, port);
	fd = unix_listen(path, SOCK_STREAM, 8);
	assert_true(fd >= 0);
	return fd;
}

/* The guest's port gport connects to the host's port; returns the host side's socket. */
static int guest_connected(struct fixture *f, int listener, uint32_t gport, uint32_t port)
{
	struct vsock_hdr hd;
	int fd;

	guest_send(f, VSOCK_OP_REQUEST, gport, port, 0, NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RESPONSE);
	assert_int_equal(hd.src_port, port);
	assert_int_equal(hd.dst_port, gport);
	assert_int_equal(hd.buf_alloc, VSOCK_BUF_ALLOC);
	fd = accept(listener, NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

static void guest_to_host_service(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 5000), fd = guest_connected(f, l, 1234, 5000);
	struct vsock_hdr hd;
	char got[16];

	guest_send(f, VSOCK_OP_RW, 1234, 5000, 0, "hello", 5);
	host_read(fd, got, 5);
	assert_memory_equal(got, "hello", 5);
	assert_int_equal(write(fd, "world!", 6), 6);
	assert_int_equal(guest_recv(f, &hd), 6);
	assert_int_equal(hd.op, VSOCK_OP_RW);
	assert_int_equal(hd.src_port, 5000);
	assert_int_equal(hd.dst_port, 1234);
	assert_int_equal(hd.fwd_cnt, 5); /* what reached the host, as credit */
	assert_memory_equal(f->buf, "world!", 6);
	assert_int_equal(f->h.count.guest_connects, 1);
	close(fd);
	close(l);
}

static void guest_connect_refused(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr hd;

	guest_send(f, VSOCK_OP_REQUEST, 1234, 4999, 0, NULL, 0); /* nobody at SOCKET_4999 */
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	assert_int_equal(hd.src_port, 4999);
	assert_int_equal(hd.dst_port, 1234);
	expect_nothing(f);
}

/* A host program connects with "CONNECT port\n"; returns its socket, the REQUEST in *req. */
static int host_connects(struct fixture *f, const char *line, struct vsock_hdr *req)
{
	int fd = unix_connect(f->sock, SOCK_STREAM);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	assert_int_equal(guest_recv(f, req), 0);
	assert_int_equal(req->op, VSOCK_OP_REQUEST);
	return fd;
}

static void host_to_guest_service(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr req, hd;
	char ok[32], want[32];
	int fd = host_connects(f, "CONNECT 52\nearly", &req);

	assert_int_equal(req.dst_port, 52);
	assert_true(req.src_port >= VSOCK_HOST_PORT_BASE);
	expect_nothing(f); /* no data before the guest accepts */
	guest_send(f, VSOCK_OP_RESPONSE, 52, req.src_port, 0, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", req.src_port);
	host_read(fd, ok, strlen(want));
	assert_memory_equal(ok, want, strlen(want));
	/* What the program wrote after its line is the guest's first data. */
	assert_int_equal(guest_recv(f, &hd), 5);
	assert_int_equal(hd.op, VSOCK_OP_RW);
	assert_memory_equal(f->buf, "early", 5);
	guest_send(f, VSOCK_OP_RW, 52, req.src_port, 0, "pong", 4);
	host_read(fd, ok, 4);
	assert_memory_equal(ok, "pong", 4);
	close(fd);
	/* The program went: the guest hears SHUTDOWN SEND, then closes its end and gets RST. */
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_SHUTDOWN);
	assert_int_equal(hd.flags, VSOCK_SHUTDOWN_SEND);
	guest_send(f, VSOCK_OP_SHUTDOWN, 52, req.src_port, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND,
		   NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	expect_nothing(f);
}

static void host_connect_refused_by_guest(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr req;
	int fd = host_connects(f, "CONNECT 53\n", &req);

	guest_send(f, VSOCK_OP_RST, 53, req.src_port, 0, NULL, 0);
	host_expect_eof(fd);
	expect_nothing(f);
	close(fd);
}

static void bad_connect_lines(void **state)
{
	struct fixture *f = *state;
	const char *lines[] = {"CONNECT\n", "CONNECT 99999999999\n", "connect 5\n", "CONNECT 5x\n",
			       "CONNECT 1234567890123456789012345678901234567890\n"};
	struct vsock_hdr hd;

	for (unsigned i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int fd = unix_connect(f->sock, SOCK_STREAM);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, lines[i], strlen(lines[i])), (ssize_t)strlen(lines[i]));
		for (int k = 0; k < 5; k++)
			poll_once(f, 20);
		host_expect_closed(fd); /* closed, and the guest heard nothing */
		assert_int_equal(guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 0), -EAGAIN);
		close(fd);
	}
	assert_int_equal(f->h.count.host_connects, 0);
}

/* The guest's credit bounds what we read from a flooding host program. */
static void credit_throttles_host(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6000), fd;
	struct vsock_hdr hd;
	char data[100];

	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 7, 6000, 0,
			NULL, 0, 0, 16, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RESPONSE);
	fd = accept(l, NULL, NULL);
	memset(data, 'x', sizeof(data));
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(guest_recv(f, &hd), 16);
	assert_int_equal(guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 100), -EAGAIN);
	/* The guest consumed 10 of them: 10 more may come. */
	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE, 7,
			6000, 0, NULL, 0, 0, 16, 10);
	assert_int_equal(guest_recv(f, &hd), 10);
	assert_int_equal(guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 50), -EAGAIN);
	/* And a small receive buffer bounds a packet too. */
	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE, 7,
			6000, 0, NULL, 0, 0, 1000, 26);
	assert_int_equal(guest_recv_wait(f, &hd, 30, 2000), 30);
	assert_int_equal(guest_recv(f, &hd), 44);
	close(fd);
	close(l);
}

/* Guest data the host does not read is held up to what we advertised; past it, RST. */
static void guest_overrun_is_reset(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6001), fd = guest_connected(f, l, 8, 6001);
	static uint8_t chunk[VSOCK_MAX_PKT];
	struct vsock_hdr hd;
	unsigned sent = 0;
	bool reset = false;

	/* The host's socket buffer plus our VSOCK_BUF_ALLOC, and then some. */
	for (unsigned i = 0; i < 64 && !reset; i++) {
		guest_send(f, VSOCK_OP_RW, 8, 6001, 0, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		while (guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 0) >= 0)
			reset |= hd.op == VSOCK_OP_RST;
	}
	assert_true(reset);
	assert_true(sent > VSOCK_BUF_ALLOC);
	assert_true(f->h.count.bad_header >= 1);
	close(fd);
	close(l);
}

/* Held data drains as the host reads, and the guest hears of the room. */
static void held_data_drains_with_credit(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6002), fd = guest_connected(f, l, 9, 6002);
	static uint8_t chunk[VSOCK_MAX_PKT], sink[VSOCK_MAX_PKT];
	struct vsock_hdr hd;
	uint32_t sent = 0, got = 0, credit_fwd = 0;

	for (uint32_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	/* Exactly what the guest may send unanswered: our buffer's worth. */
	for (unsigned i = 0; i < VSOCK_BUF_ALLOC / sizeof(chunk); i++) {
		guest_send(f, VSOCK_OP_RW, 9, 6002, 0, chunk, sizeof(chunk));
		sent += sizeof(chunk);
	}
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	for (int turns = 0; got < sent && turns < 1000; turns++) {
		ssize_t n = read(fd, sink, sizeof(sink));

		if (n > 0)
			got += (uint32_t)n;
		poll_once(f, n > 0 ? 0 : 10);
		while (guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 0) >= 0) {
			assert_int_not_equal(hd.op, VSOCK_OP_RST);
			if (hd.op == VSOCK_OP_CREDIT_UPDATE)
				credit_fwd = hd.fwd_cnt;
		}
	}
	assert_int_equal(got, sent);
	for (int i = 0; i < 20 && credit_fwd != sent; i++) {
		poll_once(f, 10);
		while (guest_recv_wait(f, &hd, VSOCK_MAX_PKT, 0) >= 0)
			if (hd.op == VSOCK_OP_CREDIT_UPDATE)
				credit_fwd = hd.fwd_cnt;
	}
	assert_true(credit_fwd >= sent - VSOCK_BUF_ALLOC / 2);
	close(fd);
	close(l);
}

static void credit_request_answered(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6003), fd = guest_connected(f, l, 10, 6003);
	struct vsock_hdr hd;

	guest_send(f, VSOCK_OP_RW, 10, 6003, 0, "abc", 3);
	guest_send(f, VSOCK_OP_CREDIT_REQUEST, 10, 6003, 0, NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(hd.fwd_cnt, 3);
	assert_int_equal(hd.buf_alloc, VSOCK_BUF_ALLOC);
	close(fd);
	close(l);
}

/* The host half-closes: SHUTDOWN SEND; the guest still sends; its own SHUTDOWN ends it. */
static void half_close_both_ways(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6004), fd = guest_connected(f, l, 11, 6004);
	struct vsock_hdr hd;
	char got[8];

	assert_int_equal(write(fd, "bye", 3), 3);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_int_equal(guest_recv(f, &hd), 3);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_SHUTDOWN);
	assert_int_equal(hd.flags, VSOCK_SHUTDOWN_SEND);
	guest_send(f, VSOCK_OP_RW, 11, 6004, 0, "more", 4);
	host_read(fd, got, 4);
	assert_memory_equal(got, "more", 4);
	guest_send(f, VSOCK_OP_SHUTDOWN, 11, 6004, VSOCK_SHUTDOWN_SEND, NULL, 0);
	host_expect_eof(fd);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	/* Gone: a packet on it now is answered with RST. */
	guest_send(f, VSOCK_OP_RW, 11, 6004, 0, "x", 1);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	close(fd);
	close(l);
}

/* The guest half-closes: the host reads EOF and may still send. */
static void guest_half_close(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6005), fd = guest_connected(f, l, 12, 6005);
	struct vsock_hdr hd;

	guest_send(f, VSOCK_OP_SHUTDOWN, 12, 6005, VSOCK_SHUTDOWN_SEND, NULL, 0);
	host_expect_eof(fd);
	assert_int_equal(write(fd, "late", 4), 4);
	assert_int_equal(guest_recv(f, &hd), 4);
	assert_memory_equal(f->buf, "late", 4);
	/* Data after the guest's own SHUTDOWN SEND breaks the rules. */
	guest_send(f, VSOCK_OP_RW, 12, 6005, 0, "x", 1);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	close(fd);
	close(l);
}

static void hostile_headers(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6006), fd = guest_connected(f, l, 13, 6006);
	struct vsock_hdr hd;
	char c;

	/* Not from this guest, or not to the host: dropped, no answer. */
	guest_send_full(f, 4, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, VSOCK_OP_RW, 13, 6006, 0, "a", 1, 1,
			1 << 20, 0);
	guest_send_full(f, GUEST_CID, 7, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 13, 6006, 0, NULL, 0, 0,
			1 << 20, 0);
	expect_nothing(f);
	/* A type we do not speak, a packet for no connection: RST. */
	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, 2, VSOCK_OP_REQUEST, 99, 6006, 0, NULL, 0, 0,
			1 << 20, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	guest_send(f, VSOCK_OP_RW, 98, 6006, 0, "a", 1);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	assert_int_equal(hd.dst_port, 98);
	/* An RST for no connection is not answered. */
	guest_send(f, VSOCK_OP_RST, 97, 6006, 0, NULL, 0);
	expect_nothing(f);
	/* A length beyond what the buffer holds resets the connection, and the host sees it close. */
	guest_send_full(f, GUEST_CID, VSOCK_HOST_CID, VSOCK_TYPE_STREAM, VSOCK_OP_RW, 13, 6006, 0, "ab",
			2, 4000, 1 << 20, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	assert_int_equal(hd.dst_port, 13);
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
	/* Ops out of order or unknown on a live connection: RST. */
	fd = guest_connected(f, l, 14, 6006);
	guest_send(f, VSOCK_OP_RESPONSE, 14, 6006, 0, NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	close(fd);
	fd = guest_connected(f, l, 15, 6006);
	guest_send(f, 99, 15, 6006, 0, NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	close(fd);
	/* A flood of garbage owes a bounded number of RSTs. */
	for (unsigned i = 0; i < 10000; i++)
		guest_send(f, VSOCK_OP_RW, 20000 + i, 1, 0, "z", 1);
	assert_true(f->h.norphan <= VSOCK_MAX_ORPHAN_RST);
	assert_true(f->h.count.dropped >= 10000 - VSOCK_MAX_ORPHAN_RST);
	close(l);
}

static void table_full(void **state)
{
	struct fixture *f = *state;
	int l = host_service(f, 6007), fds[VSOCK_MAX_CONNS];
	struct vsock_hdr hd;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		fds[i] = guest_connected(f, l, 100 + i, 6007);
	guest_send(f, VSOCK_OP_REQUEST, 999, 6007, 0, NULL, 0);
	assert_int_equal(guest_recv(f, &hd), 0);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	/* A host program finds the table full too: closed at once. */
	{
		int c = unix_connect(f->sock, SOCK_STREAM);
		assert_true(c >= 0);
		poll_once(f, 50);
		close(c);
	}
	vsock_hybrid_reset(&f->h); /* the driver reset: every connection goes */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		host_expect_eof(fds[i]);
		close(fds[i]);
	}
	close(l);
}

/*
 * A table full of host programs that connect and never write their CONNECT
 * line: the next program takes the oldest one's place (that one sees its
 * connection closed), and is served.
 */
static void silent_hosts_evicted(void **state)
{
	struct fixture *f = *state;
	int silent[VSOCK_MAX_CONNS], fd;
	struct vsock_hdr req;
	unsigned accepted = 0;

	/* One at a time, each accepted before the next: the listener's backlog is short. */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		silent[i] = unix_connect(f->sock, SOCK_STREAM);
		assert_true(silent[i] >= 0);
		for (int tries = 0; tries < 200 && accepted <= i; tries++) {
			poll_once(f, 10);
			accepted = 0;
			for (unsigned j = 0; j < VSOCK_MAX_CONNS; j++)
				accepted += f->h.conns[j].state == VSOCK_HOST_LINE;
		}
		assert_int_equal(accepted, i + 1);
	}
	assert_int_equal(f->h.count.host_silent_evicted, 0);
	fd = host_connects(f, "CONNECT 77\n", &req);
	assert_int_equal(req.dst_port, 77);
	assert_int_equal(f->h.count.host_silent_evicted, 1);
	host_expect_eof(silent[0]);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		close(silent[i]);
	close(fd);
}

static void spec_parse(void **state)
{
	struct vsock_config v;
	char err[256];

	(void)state;
	assert_int_equal(vsock_spec_parse("cid=3,socket=/run/x.sock", &v, err, sizeof(err)), 0);
	assert_int_equal(v.cid, 3);
	assert_string_equal(v.socket, "/run/x.sock");
	assert_false(v.vhost);
	assert_int_equal(vsock_spec_parse("cid=4294967294,vhost", &v, err, sizeof(err)), 0);
	assert_int_equal(v.cid, 4294967294u);
	assert_true(v.vhost);
	assert_int_equal(vsock_spec_parse("backend=vhost,cid=7", &v, err, sizeof(err)), 0);
	assert_true(v.vhost);
	assert_int_equal(vsock_spec_parse("cid=5,backend=hybrid,socket=/s", &v, err, sizeof(err)), 0);
	assert_false(v.vhost);
	const char *bad[] = {"cid=2,vhost", "cid=0,vhost", "cid=1,socket=/s", "cid=4294967295,vhost",
			     "cid=99999999999999999999,vhost", "cid=-3,vhost", "cid=x,vhost",
			     "socket=/s", "cid=3", "cid=3,vhost,socket=/s", "cid=3,socket=",
			     "cid=3,backend=kernel", "cid=3,vhost,colour=red", ""};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(vsock_spec_parse(bad[i], &v, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != 0);
	}
	assert_int_equal(vsock_spec_parse("cid=3,socket=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
					  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
					  &v, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "longer"));
}

/* ---- The device's queues, with a fake guest memory ---- */

#define MEM_SIZE (1 << 20)
#define QSIZE 8
#define RXQ 0x1000 /* each queue: desc at +0, avail at +0x100, used at +0x200 */
#define TXQ 0x2000
#define DATA 0x10000

struct devfix {
	uint8_t *mem_buf;
	struct guest_mem mem;
	struct virtio_vsock v;
	uint16_t next_desc[2];
};

static void queue_setup(struct devfix *d, unsigned q, uint64_t base)
{
	struct virtq *vq = &d->v.vdev.vqs[q];

	virtq_init(vq, &d->mem, QSIZE);
	vq->size = QSIZE;
	vq->desc_gpa = base;
	vq->avail_gpa = base + 0x100;
	vq->used_gpa = base + 0x200;
	assert_int_equal(virtq_enable(vq), 0);
}

/* Offers one buffer of len bytes at gpa on queue q (writable for the receive queue). */
static void offer(struct devfix *d, unsigned q, uint64_t gpa, uint32_t len)
{
	uint64_t base = q == VIRTIO_VSOCK_RX ? RXQ : TXQ;
	uint16_t i = d->next_desc[q]++ % QSIZE;
	struct virtq_desc *desc = (struct virtq_desc *)(d->mem_buf + base);
	uint16_t *avail = (uint16_t *)(d->mem_buf + base + 0x100);

	desc[i] = (struct virtq_desc){.addr = gpa, .len = len,
				      .flags = q == VIRTIO_VSOCK_RX ? VIRTQ_DESC_F_WRITE : 0};
	avail[2 + avail[1] % QSIZE] = i;
	avail[1]++;
}

static uint16_t used_idx(struct devfix *d, unsigned q)
{
	uint16_t idx;

	memcpy(&idx, d->mem_buf + (q == VIRTIO_VSOCK_RX ? RXQ : TXQ) + 0x200 + 2, 2);
	return idx;
}

static void device_queues(void **state)
{
	struct devfix *d = calloc(1, sizeof(*d));
	struct vsock_hdr hd = {.src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = 40,
			       .dst_port = 41, .type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RW, .len = 1};
	char dir[] = "/tmp/test-vsockdev-XXXXXX", path[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	d->mem_buf = calloc(1, MEM_SIZE);
	gmem_wrap(&d->mem, d->mem_buf, MEM_SIZE);
	d->v.vdev.ops = &virtio_vsock_ops;
	d->v.vdev.priv = &d->v;
	d->v.vdev.status = VIRTIO_STATUS_DRIVER_OK;
	d->v.bounce = malloc(VSOCK_HDR_LEN + VSOCK_MAX_PKT);
	d->v.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(vsock_hybrid_init(&d->v.hybrid, GUEST_CID, path, -1), 0);
	queue_setup(d, VIRTIO_VSOCK_RX, RXQ);
	queue_setup(d, VIRTIO_VSOCK_TX, TXQ);

	/* A receive buffer and nothing owed: it stays the guest's. */
	offer(d, VIRTIO_VSOCK_RX, DATA, 4096);
	virtio_vsock_serve(&d->v);
	assert_int_equal(used_idx(d, VIRTIO_VSOCK_RX), 0);
	/* A packet for no connection: it is used, and the kept buffer carries the RST. */
	vsock_hdr_encode(&hd, d->mem_buf + DATA + 0x8000);
	d->mem_buf[DATA + 0x8000 + VSOCK_HDR_LEN] = 'x';
	offer(d, VIRTIO_VSOCK_TX, DATA + 0x8000, VSOCK_HDR_LEN + 1);
	/* A buffer too short for a header is used and ignored. */
	offer(d, VIRTIO_VSOCK_TX, DATA + 0x9000, 10);
	virtio_vsock_serve(&d->v);
	assert_int_equal(used_idx(d, VIRTIO_VSOCK_TX), 2);
	assert_int_equal(used_idx(d, VIRTIO_VSOCK_RX), 1);
	vsock_hdr_decode(d->mem_buf + DATA, &hd);
	assert_int_equal(hd.op, VSOCK_OP_RST);
	assert_int_equal(hd.dst_port, 40);
	assert_int_equal(hd.src_port, 41);
	assert_int_equal(hd.dst_cid, GUEST_CID);
	assert_false(d->v.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	/* A receive buffer shorter than a header breaks the rules: NEEDS_RESET, no crash. */
	hd = (struct vsock_hdr){.src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = 42,
				.dst_port = 41, .type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RW, .len = 1};
	vsock_hdr_encode(&hd, d->mem_buf + DATA + 0x8000);
	offer(d, VIRTIO_VSOCK_TX, DATA + 0x8000, VSOCK_HDR_LEN + 1);
	offer(d, VIRTIO_VSOCK_RX, DATA + 0x100, 8);
	virtio_vsock_serve(&d->v);
	assert_true(d->v.vdev.status & VIRTIO_STATUS_NEEDS_RESET);

	vsock_hybrid_close(&d->v.hybrid);
	free(d->v.bounce);
	close(d->v.wake_fd);
	free(d->mem_buf);
	free(d);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(guest_to_host_service, setup, teardown),
		cmocka_unit_test_setup_teardown(guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(host_to_guest_service, setup, teardown),
		cmocka_unit_test_setup_teardown(host_connect_refused_by_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_connect_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(credit_throttles_host, setup, teardown),
		cmocka_unit_test_setup_teardown(guest_overrun_is_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(held_data_drains_with_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(credit_request_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(half_close_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(guest_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(silent_hosts_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(table_full, setup, teardown),
		cmocka_unit_test(spec_parse),
		cmocka_unit_test(device_queues),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
