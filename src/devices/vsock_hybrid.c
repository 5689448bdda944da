/*
 * virtio-vsock's hybrid back-end: connections between the guest's AF_VSOCK
 * stream sockets and host Unix sockets (vsock_hybrid.h says the mapping).
 */
#include "devices/vsock_hybrid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/unix_socket.h"

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* The wire layout (virtio 1.2, 5.10.6): offsets of struct virtio_vsock_hdr's fields. */
void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_LEN], struct vsock_hdr *h)
{
	h->src_cid = get_le(raw + 0, 8);
	h->dst_cid = get_le(raw + 8, 8);
	h->src_port = (uint32_t)get_le(raw + 16, 4);
	h->dst_port = (uint32_t)get_le(raw + 20, 4);
	h->len = (uint32_t)get_le(raw + 24, 4);
	h->type = (uint16_t)get_le(raw + 28, 2);
	h->op = (uint16_t)get_le(raw + 30, 2);
	h->flags = (uint32_t)get_le(raw + 32, 4);
	h->buf_alloc = (uint32_t)get_le(raw + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(raw + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_LEN])
{
	put_le(raw + 0, h->src_cid, 8);
	put_le(raw + 8, h->dst_cid, 8);
	put_le(raw + 16, h->src_port, 4);
	put_le(raw + 20, h->dst_port, 4);
	put_le(raw + 24, h->len, 4);
	put_le(raw + 28, h->type, 2);
	put_le(raw + 30, h->op, 2);
	put_le(raw + 32, h->flags, 4);
	put_le(raw + 36, h->buf_alloc, 4);
	put_le(raw + 40, h->fwd_cnt, 4);
}

int vsock_hybrid_init(struct vsock_hybrid *h, uint64_t guest_cid, const char *socket_path,
		      int listen_fd)
{
	memset(h, 0, sizeof(*h));
	h->listen_fd = -1;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		h->conns[i].fd = -1;
	if (guest_cid <= VSOCK_HOST_CID || guest_cid > 0xfffffffeULL ||
	    strlen(socket_path) >= sizeof(h->socket_path))
		return -EINVAL;
	h->guest_cid = guest_cid;
	strcpy(h->socket_path, socket_path);
	h->listen_fd = listen_fd;
	h->next_port = VSOCK_HOST_PORT_BASE;
	return 0;
}

static void conn_free(struct vsock_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->held);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void vsock_hybrid_reset(struct vsock_hybrid *h)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		conn_free(&h->conns[i]);
	h->norphan = 0;
}

void vsock_hybrid_close(struct vsock_hybrid *h)
{
	vsock_hybrid_reset(h);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	h->listen_fd = -1;
}

/*
 * The connection is over on our side: the host socket closes now and the
 * guest is owed an RST, after which the slot is free. One the guest never
 * heard of (a CONNECT line not yet read) just goes.
 */
static void conn_kill(struct vsock_conn *c)
{
	if (c->state == VSOCK_HOST_LINE) {
		conn_free(c);
		return;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->held);
	c->held = NULL;
	c->nheld = 0;
	c->owe_request = c->owe_response = c->owe_credit = c->owe_shutdown = false;
	c->readable = false;
	c->owe_rst = true;
}

static struct vsock_conn *conn_find(struct vsock_hybrid *h, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &h->conns[i];

		/* A host program still writing its CONNECT line is nobody the guest knows. */
		if (c->state != VSOCK_FREE && c->state != VSOCK_HOST_LINE &&
		    c->local_port == local_port && c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

static struct vsock_conn *conn_alloc(struct vsock_hybrid *h)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (h->conns[i].state == VSOCK_FREE)
			return &h->conns[i];
	return NULL;
}

/* An RST answering a packet that belongs to no connection; dropped when too many are owed. */
static void orphan_rst(struct vsock_hybrid *h, const struct vsock_hdr *in)
{
	struct vsock_hdr *r;

	if (in->op == VSOCK_OP_RST)
		return; /* never answer an RST: two ends could bounce them for ever */
	if (h->norphan == VSOCK_MAX_ORPHAN_RST) {
		h->count.dropped++;
		return;
	}
	r = &h->orphan_rst[h->norphan++];
	memset(r, 0, sizeof(*r));
	r->src_cid = VSOCK_HOST_CID;
	r->dst_cid = h->guest_cid;
	r->src_port = in->dst_port;
	r->dst_port = in->src_port;
	r->type = VSOCK_TYPE_STREAM;
	r->op = VSOCK_OP_RST;
}

/* What the guest may still send before it must wait for us (its view of our buffer). */
static uint32_t guest_view_free(const struct vsock_conn *c)
{
	uint32_t used = c->rx_cnt - c->fwd_cnt_sent;

	return used >= VSOCK_BUF_ALLOC ? 0 : VSOCK_BUF_ALLOC - used;
}

/* What we may still send the guest: its buf_alloc less what it has not consumed. */
static uint32_t guest_credit(const struct vsock_conn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

/*
 * After data left for the host: tell the guest about the room when it may
 * be running short, not after every write (a credit update is a packet).
 */
static void maybe_credit(struct vsock_conn *c)
{
	if (c->fwd_cnt != c->fwd_cnt_sent && guest_view_free(c) < VSOCK_BUF_ALLOC / 2)
		c->owe_credit = true;
}

/*
 * What follows from the shutdowns so far: the guest's end of sending is
 * passed on once its data is written; with both directions done the
 * connection ends with an RST (which completes a Linux guest's close).
 */
static void conn_settle(struct vsock_conn *c)
{
	if (c->fd < 0 || c->nheld)
		return;
	if (c->guest_no_send && !c->host_wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->guest_no_send && (c->guest_no_rcv || (c->host_eof && !c->owe_shutdown)))
		conn_kill(c);
}

/* Writes held guest data to the host socket; false if the connection died. */
static bool flush_held(struct vsock_conn *c)
{
	while (c->nheld) {
		ssize_t n = send(c->fd, c->held, c->nheld, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_kill(c);
			return false;
		}
		memmove(c->held, c->held + n, c->nheld - (uint32_t)n);
		c->nheld -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	maybe_credit(c);
	conn_settle(c);
	return true;
}

/* Guest data for the host: written now as far as the socket takes it, the rest held. */
static void guest_data(struct vsock_hybrid *h, struct vsock_conn *c, const uint8_t *p, uint32_t len)
{
	uint32_t sent = 0;

	/* Past the room we advertised: the guest broke flow control. */
	if (len > VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt)) {
		h->count.bad_header++;
		conn_kill(c);
		return;
	}
	c->rx_cnt += len;
	if (c->nheld == 0) {
		while (sent < len) {
			ssize_t n = send(c->fd, p + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				conn_kill(c);
				return;
			}
			sent += (uint32_t)n;
		}
		c->fwd_cnt += sent;
	}
	if (sent < len) {
		if (!c->held && !(c->held = malloc(VSOCK_BUF_ALLOC))) {
			conn_kill(c);
			return;
		}
		/* Fits: rx_cnt - fwd_cnt, all of it held, is within VSOCK_BUF_ALLOC (checked above). */
		memcpy(c->held + c->nheld, p + sent, len - sent);
		c->nheld += len - sent;
	}
	maybe_credit(c);
}

/* The guest connects to the host's port: "SOCKET_PORT" answers, or the guest gets an RST. */
static void guest_connect(struct vsock_hybrid *h, const struct vsock_hdr *in)
{
	struct vsock_conn *c = conn_alloc(h);
	char path[sizeof(h->socket_path) + 16];
	int fd;

	if (!c || !h->socket_path[0]) {
		orphan_rst(h, in);
		return;
	}
	snprintf(path, sizeof(path), "%s_%u", h->socket_path, in->dst_port);
	/* Non-blocking: a host listener that does not accept must not stall the device. */
	fd = unix_connect(path, SOCK_STREAM | SOCK_NONBLOCK);
	if (fd < 0) {
		orphan_rst(h, in);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->state = VSOCK_ESTABLISHED;
	c->local_port = in->dst_port;
	c->peer_port = in->src_port;
	c->peer_buf_alloc = in->buf_alloc;
	c->peer_fwd_cnt = in->fwd_cnt;
	c->owe_response = true;
	h->count.guest_connects++;
}

/* The guest accepted a host program's connection: tell the program our port. */
static void guest_accepted(struct vsock_conn *c)
{
	char ok[32];
	int len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

	c->state = VSOCK_ESTABLISHED;
	if (send(c->fd, ok, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len)
		conn_kill(c); /* the program went away (its buffer cannot be full yet) */
}

void vsock_hybrid_from_guest(struct vsock_hybrid *h, const uint8_t *raw, const void *payload,
			     uint32_t avail)
{
	struct vsock_hdr in;
	struct vsock_conn *c;

	vsock_hdr_decode(raw, &in);
	/* Not from this guest or not to the host: no one to answer (the guest's own bug). */
	if (in.src_cid != h->guest_cid || in.dst_cid != VSOCK_HOST_CID) {
		h->count.bad_header++;
		h->count.dropped++;
		return;
	}
	if (in.type != VSOCK_TYPE_STREAM) {
		h->count.bad_header++;
		orphan_rst(h, &in);
		return;
	}
	c = conn_find(h, in.dst_port, in.src_port);
	if (in.op == VSOCK_OP_REQUEST) {
		if (c) {
			conn_kill(c); /* a second REQUEST on a live connection: both ends are confused */
			return;
		}
		guest_connect(h, &in);
		return;
	}
	if (!c) {
		orphan_rst(h, &in);
		return;
	}
	if (c->owe_rst) { /* over on our side; its RST is on the way */
		if (in.op == VSOCK_OP_RST)
			conn_free(c);
		return;
	}
	c->peer_buf_alloc = in.buf_alloc;
	c->peer_fwd_cnt = in.fwd_cnt;
	switch (in.op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == VSOCK_HOST_REQUEST)
			guest_accepted(c);
		else
			conn_kill(c);
		break;
	case VSOCK_OP_RST:
		conn_free(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != VSOCK_ESTABLISHED) {
			conn_kill(c);
			break;
		}
		c->guest_no_rcv |= !!(in.flags & VSOCK_SHUTDOWN_RCV);
		c->guest_no_send |= !!(in.flags & VSOCK_SHUTDOWN_SEND);
		conn_settle(c);
		break;
	case VSOCK_OP_RW:
		/* Data before the connection is up, after the guest's end, or longer than sent. */
		if (c->state != VSOCK_ESTABLISHED || c->guest_no_send || in.len > avail ||
		    in.len > VSOCK_MAX_PKT) {
			h->count.bad_header++;
			conn_kill(c);
			break;
		}
		guest_data(h, c, payload, in.len);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the credit fields are taken above, from every packet */
	case VSOCK_OP_CREDIT_REQUEST:
		c->owe_credit = true;
		break;
	default:
		h->count.bad_header++;
		conn_kill(c);
		break;
	}
}

static bool conn_may_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_ESTABLISHED && c->fd >= 0 && !c->host_eof && !c->guest_no_rcv;
}

static bool conn_owes(const struct vsock_conn *c)
{
	return c->owe_rst || c->owe_request || c->owe_response || c->owe_shutdown || c->owe_credit ||
	       (c->readable && conn_may_read(c) && guest_credit(c) > 0);
}

bool vsock_hybrid_rx_pending(const struct vsock_hybrid *h)
{
	if (h->norphan)
		return true;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (h->conns[i].state != VSOCK_FREE && conn_owes(&h->conns[i]))
			return true;
	return false;
}

static void conn_header(const struct vsock_hybrid *h, struct vsock_conn *c, struct vsock_hdr *o,
			uint16_t op)
{
	memset(o, 0, sizeof(*o));
	o->src_cid = VSOCK_HOST_CID;
	o->dst_cid = h->guest_cid;
	o->src_port = c->local_port;
	o->dst_port = c->peer_port;
	o->type = VSOCK_TYPE_STREAM;
	o->op = op;
	o->buf_alloc = VSOCK_BUF_ALLOC;
	o->fwd_cnt = c->fwd_cnt;
	/* Every header carries our credit: no separate update is owed now. */
	c->fwd_cnt_sent = c->fwd_cnt;
	c->owe_credit = false;
}

/* The connection's next packet for the guest into o (and buf); payload length or -EAGAIN. */
static int conn_next(struct vsock_hybrid *h, struct vsock_conn *c, struct vsock_hdr *o, void *buf,
		     uint32_t room)
{
	if (c->owe_rst) {
		conn_header(h, c, o, VSOCK_OP_RST);
		h->count.rst_sent++;
		conn_free(c);
		return 0;
	}
	if (c->owe_request) {
		c->owe_request = false;
		conn_header(h, c, o, VSOCK_OP_REQUEST);
		return 0;
	}
	if (c->owe_response) {
		c->owe_response = false;
		conn_header(h, c, o, VSOCK_OP_RESPONSE);
		return 0;
	}
	if (c->readable && conn_may_read(c) && room > 0) {
		uint32_t want = guest_credit(c);
		ssize_t n = 0;

		if (want > room)
			want = room;
		if (want > VSOCK_MAX_PKT)
			want = VSOCK_MAX_PKT;
		if (want > 0) {
			n = recv(c->fd, buf, want, MSG_DONTWAIT);
			if (n > 0) {
				conn_header(h, c, o, VSOCK_OP_RW);
				o->len = (uint32_t)n;
				c->tx_cnt += (uint32_t)n;
				return (int)n;
			}
			c->readable = false;
			if (n == 0) {
				/* The host program half-closed (or closed): it sends no more. */
				c->host_eof = true;
				c->owe_shutdown = true;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_kill(c);
				return conn_next(h, c, o, buf, room);
			}
		}
	}
	if (c->owe_shutdown) {
		c->owe_shutdown = false;
		conn_header(h, c, o, VSOCK_OP_SHUTDOWN);
		o->flags = VSOCK_SHUTDOWN_SEND;
		conn_settle(c); /* both directions may be over now: the RST comes next */
		return 0;
	}
	if (c->owe_credit) {
		conn_header(h, c, o, VSOCK_OP_CREDIT_UPDATE);
		return 0;
	}
	return -EAGAIN;
}

int vsock_hybrid_to_guest(struct vsock_hybrid *h, uint8_t raw[VSOCK_HDR_LEN], void *buf,
			  uint32_t room)
{
	struct vsock_hdr o;

	if (h->norphan) {
		vsock_hdr_encode(&h->orphan_rst[0], raw);
		memmove(h->orphan_rst, h->orphan_rst + 1, --h->norphan * sizeof(h->orphan_rst[0]));
		h->count.rst_sent++;
		return 0;
	}
	for (unsigned k = 0; k < VSOCK_MAX_CONNS; k++) {
		unsigned i = (h->next_rx + k) % VSOCK_MAX_CONNS;
		struct vsock_conn *c = &h->conns[i];
		int n;

		if (c->state == VSOCK_FREE || c->state == VSOCK_HOST_LINE)
			continue;
		n = conn_next(h, c, &o, buf, room);
		if (n >= 0) {
			h->next_rx = (i + 1) % VSOCK_MAX_CONNS; /* the next connection goes first next time */
			vsock_hdr_encode(&o, raw);
			return n;
		}
	}
	return -EAGAIN;
}

/* A port of ours no other connection uses, for a host-initiated connection. */
static uint32_t pick_port(struct vsock_hybrid *h)
{
	for (;;) {
		uint32_t p = h->next_port++;
		bool used = false;

		if (h->next_port < VSOCK_HOST_PORT_BASE)
			h->next_port = VSOCK_HOST_PORT_BASE;
		for (unsigned i = 0; i < VSOCK_MAX_CONNS && !used; i++)
			used = h->conns[i].state != VSOCK_FREE && h->conns[i].local_port == p;
		if (!used)
			return p; /* at most VSOCK_MAX_CONNS turns */
	}
}

/* "CONNECT PORT" (the newline taken off): the port, or -1. */
static int64_t parse_connect(const char *line)
{
	uint64_t port = 0;
	const char *p;

	if (strncmp(line, "CONNECT ", 8))
		return -1;
	p = line + 8;
	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		port = port * 10 + (uint64_t)(*p - '0');
		if (port > 0xffffffffULL)
			return -1;
	}
	return (int64_t)port;
}

/*
 * A host program's first line, a byte at a time so that nothing after the
 * newline (its first data for the guest) is taken with it.
 */
static void read_connect_line(struct vsock_hybrid *h, struct vsock_conn *c)
{
	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		int64_t port;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			conn_free(c);
			return;
		}
		if (ch != '\n') {
			if (c->nline == sizeof(c->line) - 1) {
				conn_free(c); /* no CONNECT line is this long */
				return;
			}
			c->line[c->nline++] = ch;
			continue;
		}
		c->line[c->nline] = 0;
		if (c->nline && c->line[c->nline - 1] == '\r')
			c->line[c->nline - 1] = 0;
		port = parse_connect(c->line);
		if (port < 0) {
			conn_free(c);
			return;
		}
		c->peer_port = (uint32_t)port;
		c->local_port = pick_port(h);
		c->state = VSOCK_HOST_REQUEST;
		c->owe_request = true;
		h->count.host_connects++;
		return;
	}
}

/*
 * The host connection that has waited longest without its CONNECT line, or
 * NULL: a table full of programs that connect and say nothing must not
 * lock out the next one, so the newcomer takes the oldest one's place.
 */
static struct vsock_conn *oldest_silent(struct vsock_hybrid *h)
{
	struct vsock_conn *oldest = NULL;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &h->conns[i];
		if (c->state == VSOCK_HOST_LINE && (!oldest || c->accepted < oldest->accepted))
			oldest = c;
	}
	return oldest;
}

static void accept_host(struct vsock_hybrid *h)
{
	struct vsock_conn *c;
	int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	c = conn_alloc(h);
	if (!c && (c = oldest_silent(h))) {
		conn_free(c);
		h->count.host_silent_evicted++;
	}
	if (!c) {
		close(fd); /* the table is full of live connections: the program sees its own closed */
		return;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->state = VSOCK_HOST_LINE;
	c->accepted = h->accepts++;
}

unsigned vsock_hybrid_poll_fds(struct vsock_hybrid *h, struct pollfd *p, unsigned max)
{
	unsigned n = 0;

	if (h->listen_fd >= 0 && n < max && (conn_alloc(h) || oldest_silent(h))) {
		h->poll_map[n] = -1;
		p[n++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS && n < max; i++) {
		struct vsock_conn *c = &h->conns[i];
		short ev = 0;

		if (c->state == VSOCK_FREE || c->fd < 0)
			continue;
		if (c->state == VSOCK_HOST_LINE || (!c->readable && conn_may_read(c)))
			ev |= POLLIN;
		if (c->nheld)
			ev |= POLLOUT;
		if (!ev)
			continue; /* nothing to learn from it until the guest moves */
		h->poll_map[n] = (int)i;
		p[n++] = (struct pollfd){.fd = c->fd, .events = ev};
	}
	return n;
}

void vsock_hybrid_poll_ready(struct vsock_hybrid *h, const struct pollfd *p, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		struct vsock_conn *c;

		if (!p[k].revents)
			continue;
		if (h->poll_map[k] < 0) {
			accept_host(h);
			continue;
		}
		c = &h->conns[h->poll_map[k]];
		if (c->fd != p[k].fd)
			continue; /* gone since the poll */
		if (c->state == VSOCK_HOST_LINE) {
			read_connect_line(h, c);
			continue;
		}
		if ((p[k].revents & POLLOUT) && !flush_held(c))
			continue;
		if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
			c->readable = true;
	}
}
