/*
 * One shared-memory region's ivshmem server, speaking QEMU's protocol
 * (docs/specs/ivshmem-spec.txt in QEMU) on a Unix stream socket, so that
 * domus-vmm's ivshmem devices and unmodified QEMUs share the region.
 *
 * Every message is a little-endian int64, some with one descriptor
 * (SCM_RIGHTS). A peer that connects is sent: 0 (the protocol's version),
 * its ID (0..SHM_MAX_PEERS-1, the lowest free), -1 with the memory's
 * memfd; then for every other peer that peer's ID once per vector, each
 * with that peer's eventfd for the vector; then its own ID once per vector
 * with its own eventfds. Every other peer is sent the newcomer's ID once
 * per vector with its eventfds. When a peer goes, its eventfds are closed
 * here and every other peer is sent its ID without a descriptor. Peers send
 * nothing; what they send is read and dropped.
 *
 * Hostile peers: the sockets never block. A peer whose socket cannot take
 * a message at once (its buffer is full: it does not read) is dropped, as
 * is one that connects past SHM_MAX_PEERS. Nothing here exits or aborts.
 */
#ifndef DOMUS_SHM_SERVER_H
#define DOMUS_SHM_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/watch.h"

#define SHM_MAX_PEERS 64
#define SHM_SOCKET_PATH_MAX 108 /* sun_path */

/* One peer's eventfds, one per vector (the server made them). */
struct shm_peer {
	struct shm_server *srv;
	int fd;	     /* the connection */
	unsigned id; /* the peer ID, its index in srv->peers */
	pid_t pid;   /* SO_PEERCRED when it connected (0: not known) */
	uid_t uid;
	bool dead;	/* to be dropped once the message under way is sent */
	bool announced; /* the others were told of it: they hear of its departure */
	struct watch w;
	int eventfds[]; /* srv->vectors of them */
};

struct shm_server {
	char path[SHM_SOCKET_PATH_MAX];
	int listen_fd;
	int memfd;	  /* borrowed from the region: sent, never closed here */
	unsigned vectors; /* eventfds per peer; 0 for a plain region */
	uid_t owner; /* may connect, as root and domusd's user may (the socket's mode agrees) */
	struct shm_peer *peers[SHM_MAX_PEERS]; /* by ID */
	unsigned npeers;
	uint64_t refused; /* connections turned away (past SHM_MAX_PEERS, or no eventfds) */
	uint64_t dropped; /* peers dropped for not reading */
	const struct watch_loop *loop;
	struct watch w_listen;
	int peer_kind; /* the watch kind of peers' sockets (ptr: struct shm_peer) */
};

/*
 * Listens at path (replacing a stale socket there), the socket's owner
 * uid:gid and mode 0600; the listening socket is watched with listen_kind
 * (ptr: the server), peers' sockets with peer_kind. 0 or -errno.
 */
int shm_server_start(struct shm_server *srv, const char *path, int memfd, unsigned vectors,
		     uid_t uid, gid_t gid, const struct watch_loop *loop, int listen_kind,
		     int peer_kind) __attribute__((warn_unused_result));
/* The listening socket is readable: takes the connections waiting. */
void shm_server_accept(struct shm_server *srv);
/* A peer's socket is readable: what it sent is dropped; at its end it goes. */
void shm_server_peer_readable(struct shm_peer *p);
/* Drops every peer (they are told nothing: their sockets close), removes the socket. */
void shm_server_stop(struct shm_server *srv);

#endif
