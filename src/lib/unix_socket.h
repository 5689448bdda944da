/* Unix domain sockets by path: the one place that fills a sockaddr_un. */
#ifndef DOMUS_UNIX_SOCKET_H
#define DOMUS_UNIX_SOCKET_H

/* A listening socket of type (SOCK_STREAM, SOCK_SEQPACKET) at path, replacing a stale one. fd or -errno. */
int unix_listen(const char *path, int type, int backlog);
/*
 * A socket of type connected to path. fd or -errno (-ENAMETOOLONG for a path
 * sun_path cannot hold). With SOCK_NONBLOCK in type, a listener whose backlog
 * is full is -EAGAIN rather than a wait.
 */
int unix_connect(const char *path, int type);
/*
 * A process that may not reach paths itself (a confined domus-vmm under
 * `domus run`) has unix_connect ask broker instead, which returns a
 * connected descriptor or -errno; NULL connects directly again.
 */
void unix_connect_set_broker(int (*broker)(const char *path, int type));

#include <stddef.h>
#include <sys/types.h>

#define UNIX_MAX_FDS 32 /* descriptors one message may carry */

/* One message with nfds descriptors attached (SCM_RIGHTS). 0 or -errno. */
int unix_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);
/*
 * One message into buf (at most len bytes) and its descriptors (close-on-exec)
 * into fds; *nfds says how many. The length, 0 at end of stream, or -errno;
 * a message or descriptor list cut short is -EMSGSIZE, with nothing kept.
 */
ssize_t unix_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max, unsigned *nfds);

#endif
