/*
 * tcpchan (tcp.h): the channel's messages over TCP, for comparing the ring
 * with TCP between the same two guests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tcp.h"

struct tcpchan {
	int fd;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || !v || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* Round trips are what is measured: no Nagle delay on small messages. */
static int wrap(struct tcpchan **out, int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		close(fd);
		return -errno;
	}
	*out = malloc(sizeof(**out));
	if (!*out) {
		close(fd);
		return -ENOMEM;
	}
	(*out)->fd = fd;
	return 0;
}

int tcpchan_accept(struct tcpchan **out, const char *port, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	struct pollfd pfd = {.events = POLLIN};
	int one = 1, r, fd;

	if (parse_port(port, &sa.sin_port))
		return -EINVAL;
	sa.sin_port = htons(sa.sin_port);
	pfd.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (pfd.fd < 0)
		return -errno;
	if (setsockopt(pfd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(pfd.fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(pfd.fd, 1)) {
		r = -errno;
		close(pfd.fd);
		return r;
	}
	r = poll(&pfd, 1, timeout_ms);
	if (r <= 0) {
		r = r ? -errno : -ETIMEDOUT;
		close(pfd.fd);
		return r;
	}
	fd = accept4(pfd.fd, NULL, NULL, SOCK_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	close(pfd.fd);
	return r ? r : wrap(out, fd);
}

int tcpchan_connect(struct tcpchan **out, const char *hostport, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = strrchr(hostport, ':');
	char host[INET_ADDRSTRLEN];
	long end = now_ms() + timeout_ms;
	int fd, r;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host) || parse_port(colon + 1, &sa.sin_port))
		return -EINVAL;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	sa.sin_port = htons(sa.sin_port);
	/* The server may not listen yet: try again every 50 ms. */
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return wrap(out, fd);
		r = -errno;
		close(fd);
		if ((r != -ECONNREFUSED && r != -ENETUNREACH && r != -EHOSTUNREACH) || now_ms() >= end)
			return r;
		usleep(50000);
	}
}

static int write_all(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* 0, or -EPROTO when the peer closed before n bytes. */
static int read_all(int fd, void *p, size_t n)
{
	ssize_t got;

	while (n) {
		got = read(fd, p, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (!got)
			return -EPROTO;
		p = (uint8_t *)p + got;
		n -= (size_t)got;
	}
	return 0;
}

int tcpchan_send(struct tcpchan *t, const void *msg, size_t len)
{
	uint8_t hdr[4];
	int r;

	if (len > TCPCHAN_MAX_MSG)
		return -EMSGSIZE;
	for (int i = 0; i < 4; i++)
		hdr[i] = (uint8_t)(len >> (8 * i));
	/* One write for a small message: one segment per message. */
	if (len <= 4096 - sizeof(hdr)) {
		uint8_t frame[4096];

		memcpy(frame, hdr, sizeof(hdr));
		memcpy(frame + sizeof(hdr), msg, len);
		return write_all(t->fd, frame, sizeof(hdr) + len);
	}
	r = write_all(t->fd, hdr, sizeof(hdr));
	return r ? r : write_all(t->fd, msg, len);
}

ssize_t tcpchan_recv(struct tcpchan *t, void *buf, size_t cap)
{
	uint8_t hdr[4];
	uint32_t len;
	int r;

	r = read_all(t->fd, hdr, sizeof(hdr));
	if (r)
		return r;
	len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	/* A length we cannot take leaves the stream out of step: the session
	 * is over. */
	if (len > TCPCHAN_MAX_MSG || len > cap)
		return len > TCPCHAN_MAX_MSG ? -EPROTO : -EMSGSIZE;
	r = read_all(t->fd, buf, len);
	return r ? r : (ssize_t)len;
}

void tcpchan_close(struct tcpchan *t)
{
	if (!t)
		return;
	close(t->fd);
	free(t);
}
