/* Unix domain sockets by path: the one place that fills a sockaddr_un. */
#ifndef DOMUS_UNIX_SOCKET_H
#define DOMUS_UNIX_SOCKET_H

/* A listening socket of type (SOCK_STREAM, SOCK_SEQPACKET) at path, replacing a stale one. fd or -errno. */
int unix_listen(const char *path, int type, int backlog);
/* A socket of type connected to path. fd or -errno (-ENAMETOOLONG for a path sun_path cannot hold). */
int unix_connect(const char *path, int type);

#endif
