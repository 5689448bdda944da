#include "devices/ivshmem_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void ivshmem_client_init(struct ivshmem_client *c, int sock, unsigned vectors)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->sock = sock;
	c->state = IVSHMEM_WANT_VERSION;
	c->vectors = vectors < 1 ? 1 : vectors > IVSHMEM_MAX_VECTORS ? IVSHMEM_MAX_VECTORS : vectors;
	c->id = -1;
	c->mem_fd = -1;
	c->partial_fd = -1;
	for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++)
		c->peers[i].id = -1;
}

static void drop_peer(struct ivshmem_peer *p)
{
	for (unsigned i = 0; i < p->nfds; i++)
		close_fd(&p->fds[i]);
	p->nfds = 0;
	p->id = -1;
}

void ivshmem_client_close(struct ivshmem_client *c)
{
	pthread_mutex_lock(&c->lock);
	close_fd(&c->sock);
	close_fd(&c->partial_fd);
	c->have = 0;
	for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++)
		if (c->peers[i].id >= 0)
			drop_peer(&c->peers[i]);
	c->state = IVSHMEM_CLOSED;
	pthread_mutex_unlock(&c->lock);
}

void ivshmem_client_destroy(struct ivshmem_client *c)
{
	ivshmem_client_close(c);
	close_fd(&c->mem_fd);
	for (unsigned i = 0; i < c->nown; i++)
		close_fd(&c->own_fds[i]);
	c->nown = 0;
	pthread_mutex_destroy(&c->lock);
}

bool ivshmem_fd_is_eventfd(int fd)
{
	struct stat st;

	/*
	 * An eventfd is an anonymous inode: no file type bits. So are timerfds
	 * and epoll fds, which a write of 8 bytes cannot harm; what matters is
	 * refusing pipes, sockets and files, whose writes could block or land.
	 */
	return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == 0;
}

/* Closes the message's descriptor (if any) and says what was wrong; returns ret. */
static int __attribute__((format(printf, 5, 6)))
proto_error(int fd, char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (fd >= 0)
		close(fd);
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static struct ivshmem_peer *find_peer(struct ivshmem_client *c, int id)
{
	for (unsigned i = 0; i < IVSHMEM_MAX_PEERS; i++)
		if (c->peers[i].id == id)
			return &c->peers[i];
	return NULL;
}

/* A peer's eventfd (connect notification, or one of the client's own vectors). Lock held. */
static int add_eventfd(struct ivshmem_client *c, int id, int fd, char *err, size_t errlen)
{
	struct ivshmem_peer *p;
	int flags;

	if (!ivshmem_fd_is_eventfd(fd))
		return proto_error(fd, err, errlen, -EPROTO,
				   "ivshmem server: peer %d's descriptor is not an eventfd", id);
	/* Never block a vCPU (doorbell) or the reading thread on it. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return proto_error(fd, err, errlen, -EPROTO,
				   "ivshmem server: peer %d's eventfd cannot be made non-blocking", id);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (id == c->id) {
		if (c->nown == c->vectors) {
			close(fd); /* more vectors than configured: the spec says close it */
			return 0;
		}
		c->own_fds[c->nown++] = fd;
		return 0;
	}
	p = find_peer(c, id);
	if (!p) {
		p = find_peer(c, -1);
		if (!p) {
			close(fd);
			snprintf(err, errlen, "ivshmem server: more than %u peers; peer %d ignored",
				 IVSHMEM_MAX_PEERS, id);
			return 0;
		}
		p->id = id;
		p->nfds = 0;
	}
	if (p->nfds == c->vectors) {
		close(fd);
		return 0;
	}
	p->fds[p->nfds++] = fd;
	return 0;
}

static int message_locked(struct ivshmem_client *c, int64_t value, int fd, char *err, size_t errlen)
{
	struct stat st;
	struct ivshmem_peer *p;

	switch (c->state) {
	case IVSHMEM_WANT_VERSION:
		if (fd >= 0)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: the version message (%lld) carries a descriptor",
					   (long long)value);
		if (value != IVSHMEM_PROTOCOL_VERSION)
			return proto_error(fd, err, errlen, -EPROTONOSUPPORT,
					   "ivshmem server speaks protocol version %lld, not 0",
					   (long long)value);
		c->state = IVSHMEM_WANT_ID;
		return 0;
	case IVSHMEM_WANT_ID:
		if (fd >= 0)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: the ID message (%lld) carries a descriptor",
					   (long long)value);
		if (value < 0 || value > IVSHMEM_MAX_ID)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: own ID %lld is out of range 0..65535",
					   (long long)value);
		c->id = (int)value;
		c->state = IVSHMEM_WANT_MEMORY;
		return 0;
	case IVSHMEM_WANT_MEMORY:
		if (value != -1 || fd < 0)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: expected -1 with the shared memory, got %lld",
					   (long long)value);
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: the shared memory descriptor is not a "
					   "non-empty file or memfd (%lld)",
					   (long long)value);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		c->mem_fd = fd;
		c->mem_size = (uint64_t)st.st_size;
		c->state = IVSHMEM_READY;
		return 0;
	case IVSHMEM_READY:
		if (value < 0 || value > IVSHMEM_MAX_ID)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: peer ID %lld is out of range 0..65535",
					   (long long)value);
		if (fd >= 0)
			return add_eventfd(c, (int)value, fd, err, errlen);
		if (value == c->id)
			return proto_error(fd, err, errlen, -EPROTO,
					   "ivshmem server: told this client (%lld) that it left",
					   (long long)value);
		p = find_peer(c, (int)value);
		if (p)
			drop_peer(p);
		return 0; /* an unknown peer leaving is nothing to do */
	case IVSHMEM_CLOSED:
	default:
		return proto_error(fd, err, errlen, -EPIPE,
				   "ivshmem server: message %lld after the connection ended",
				   (long long)value);
	}
}

int ivshmem_client_message(struct ivshmem_client *c, int64_t value, int fd, char *err,
			   size_t errlen)
{
	int ret;

	err[0] = 0;
	pthread_mutex_lock(&c->lock);
	ret = message_locked(c, value, fd, err, errlen);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Closes every descriptor of an SCM_RIGHTS message but the first, which it returns; counts them. */
static int take_fds(struct msghdr *msg, unsigned *count)
{
	int first = -1;

	*count = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (first < 0)
				first = fd;
			else
				close(fd);
			(*count)++;
		}
	}
	return first;
}

int ivshmem_client_read(struct ivshmem_client *c, char *err, size_t errlen)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} control;
	struct iovec iov;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	unsigned nfds;
	ssize_t n;
	int fd;
	int64_t value;

	err[0] = 0;
	if (c->sock < 0) {
		snprintf(err, errlen, "ivshmem server: not connected");
		return -EPIPE;
	}
	/* Never past the message's end, so a descriptor always comes with a message's first byte. */
	iov.iov_base = c->partial + c->have;
	iov.iov_len = sizeof(c->partial) - c->have;
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof(control.buf);
	n = recvmsg(c->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		snprintf(err, errlen, "ivshmem server: recvmsg: %s", strerror(errno));
		return -errno;
	}
	fd = take_fds(&msg, &nfds);
	if (n == 0) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "ivshmem server closed the connection%s",
			 c->have ? " in the middle of a message" : "");
		return -EPIPE;
	}
	if (nfds > 1 || (msg.msg_flags & MSG_CTRUNC)) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "ivshmem server: %u descriptors with one message (one at most)",
			 nfds);
		return -EPROTO;
	}
	if (fd >= 0) {
		if (c->have || c->partial_fd >= 0) {
			close(fd);
			snprintf(err, errlen, "ivshmem server: a descriptor in the middle of a message");
			return -EPROTO;
		}
		c->partial_fd = fd;
	}
	c->have += (unsigned)n;
	if (c->have < sizeof(c->partial))
		return 0;
	/* Little-endian on the wire, whatever the host's order. */
	value = 0;
	for (unsigned i = 0; i < 8; i++)
		value |= (int64_t)((uint64_t)c->partial[i] << (8 * i));
	fd = c->partial_fd;
	c->partial_fd = -1;
	c->have = 0;
	return ivshmem_client_message(c, value, fd, err, errlen);
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int ivshmem_client_handshake(struct ivshmem_client *c, int timeout_ms, char *err, size_t errlen)
{
	long long deadline = now_ms() + timeout_ms;

	while (c->state != IVSHMEM_READY) {
		struct pollfd p = {.fd = c->sock, .events = POLLIN};
		long long left = deadline - now_ms();
		int ret;

		if (c->sock < 0) {
			snprintf(err, errlen, "ivshmem server: not connected");
			return -EPIPE;
		}
		if (left <= 0) {
			snprintf(err, errlen,
				 "ivshmem server: no shared memory within %d ms of connecting "
				 "(is it an ivshmem server?)",
				 timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(err, errlen, "ivshmem server: poll: %s", strerror(errno));
			return -errno;
		}
		if ((ret = ivshmem_client_read(c, err, errlen)) < 0)
			return ret;
	}
	return 0;
}

int ivshmem_client_ring(struct ivshmem_client *c, unsigned id, unsigned vector)
{
	static const uint64_t one = 1;
	struct ivshmem_peer *p;
	int fd = -1;

	pthread_mutex_lock(&c->lock);
	if ((int)id == c->id && id <= IVSHMEM_MAX_ID) {
		if (vector < c->nown)
			fd = c->own_fds[vector];
	} else if (id <= IVSHMEM_MAX_ID && (p = find_peer(c, (int)id)) != NULL) {
		if (vector < p->nfds)
			fd = p->fds[vector];
	}
	/*
	 * Written under the lock, so the descriptor cannot be closed (the peer
	 * leaving) and reused meanwhile; the write does not block (O_NONBLOCK),
	 * and a full counter (EAGAIN) means the peer has interrupts pending anyway.
	 */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* nothing to do: see above */
	}
	pthread_mutex_unlock(&c->lock);
	return fd >= 0 ? 0 : -ENOENT;
}
