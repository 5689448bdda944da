/*
 * tcpchan: the channel's messages over a TCP connection, so that the
 * benchmark measures the shared ring and TCP with the same tool (main.c's
 * serve, ping, sink and stream run over either). A message is a u32
 * little-endian length and that many bytes; an empty one ends a session,
 * as on the ring. One connection per session: the server accepts one
 * client on PORT (any address), the client connects to an IPv4 HOST:PORT.
 */
#ifndef SHMCHAN_TCP_H
#define SHMCHAN_TCP_H

#include <stddef.h>
#include <sys/types.h>

/* The largest message, as on the biggest ring the server makes. */
#define TCPCHAN_MAX_MSG ((1u << 20) - 4)

struct tcpchan;

/* Server: listens on PORT and waits up to timeout_ms for one client: 0 or
 * -errno (-ETIMEDOUT). */
int tcpchan_accept(struct tcpchan **out, const char *port, int timeout_ms);
/* Client: connects to HOST:PORT (IPv4 dotted quad), retrying until the
 * server listens or timeout_ms passed: 0, -EINVAL (not HOST:PORT), -errno. */
int tcpchan_connect(struct tcpchan **out, const char *hostport, int timeout_ms);
/* Blocking, with shmchan_send/recv's meaning: 0 or a length, -EMSGSIZE,
 * -EPROTO (the peer sent a length over TCPCHAN_MAX_MSG, or closed
 * mid-message or before the session's end), -errno. */
int tcpchan_send(struct tcpchan *t, const void *msg, size_t len);
ssize_t tcpchan_recv(struct tcpchan *t, void *buf, size_t cap);
void tcpchan_close(struct tcpchan *t);

#endif
