/*
 * The client side of the ivshmem server protocol (QEMU's ivshmem-spec.txt,
 * "The ivshmem Client-Server Protocol"). The server talks, the client only
 * listens: every message is one little-endian int64, some with one file
 * descriptor (SCM_RIGHTS):
 *
 *   1. the protocol version, 0, no fd
 *   2. the client's own peer ID (0..65535), no fd
 *   3. -1 with the shared memory's fd
 *   then, at any time:
 *   4. a peer ID with an eventfd: the next vector of that peer, in order
 *      (for the client's own ID: the eventfds it is interrupted through)
 *   5. a peer ID without an fd: that peer left, its eventfds are closed
 *
 * The server is not trusted: a message out of order, a second memory, a
 * descriptor of the wrong kind, an ID out of range or more than one fd
 * ends the connection with an error naming what was wrong; eventfds past
 * the configured vectors are closed, as the spec says; a departure of an
 * unknown peer is ignored. What was received (the memory, the eventfds)
 * stays usable after the connection ends.
 */
#ifndef DOMUS_IVSHMEM_PROTO_H
#define DOMUS_IVSHMEM_PROTO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IVSHMEM_PROTOCOL_VERSION 0
#define IVSHMEM_MAX_VECTORS 64 /* the MSI-X vectors a device offers at most */
#define IVSHMEM_MAX_PEERS 64   /* other peers a client keeps eventfds of */
#define IVSHMEM_MAX_ID 65535   /* the Doorbell register has 16 bits for it */

enum ivshmem_client_state {
	IVSHMEM_WANT_VERSION,
	IVSHMEM_WANT_ID,
	IVSHMEM_WANT_MEMORY,
	IVSHMEM_READY,  /* memory received: peers and vectors may come */
	IVSHMEM_CLOSED, /* the connection ended (error or server gone) */
};

struct ivshmem_peer {
	int id; /* -1: free entry */
	unsigned nfds;
	int fds[IVSHMEM_MAX_VECTORS]; /* vector i interrupts the peer through fds[i] */
};

struct ivshmem_client {
	/*
	 * Held while the peer table changes (the thread reading the socket)
	 * and while a doorbell looks a peer up and writes its eventfd (vCPUs).
	 */
	pthread_mutex_t lock;
	int sock; /* -1 once closed */
	enum ivshmem_client_state state;
	unsigned vectors; /* configured: eventfds past these are closed */
	int id;           /* own peer ID, -1 before it came */
	int mem_fd;       /* -1 before it came */
	uint64_t mem_size;
	unsigned nown;
	int own_fds[IVSHMEM_MAX_VECTORS]; /* incoming: vector i rings on own_fds[i] */
	struct ivshmem_peer peers[IVSHMEM_MAX_PEERS];
	/* A message being received: stream sockets may split it. */
	uint8_t partial[8];
	unsigned have;
	int partial_fd;
};

/* An empty client on connected socket sock (owned from now on), for vectors (1..64) vectors. */
void ivshmem_client_init(struct ivshmem_client *c, int sock, unsigned vectors);
/* Closes the socket and every descriptor received. */
void ivshmem_client_destroy(struct ivshmem_client *c);

/*
 * Handles one whole message: value, and fd (-1: none), which the client
 * owns from then on (keeps or closes). Returns 0 when it was taken or
 * ignored as the spec allows, or -EPROTO (-EPROTONOSUPPORT for a version)
 * with what was wrong in err; the caller then ends the connection
 * (ivshmem_client_close). Takes c->lock itself.
 */
int ivshmem_client_message(struct ivshmem_client *c, int64_t value, int fd, char *err,
			   size_t errlen);

/*
 * Reads what the socket has (one recvmsg, at most one message) and
 * handles it. 0: progress or nothing there yet (non-blocking socket);
 * -EPIPE: the server closed the connection; other -errno: a protocol or
 * socket error, with err filled. On any error the caller calls
 * ivshmem_client_close.
 */
int ivshmem_client_read(struct ivshmem_client *c, char *err, size_t errlen);

/*
 * Reads messages until the memory has come (state READY), waiting at most
 * timeout_ms in all; for a blocking start before the device exists.
 * 0, -ETIMEDOUT, or an error of ivshmem_client_read (err filled).
 */
int ivshmem_client_handshake(struct ivshmem_client *c, int timeout_ms, char *err, size_t errlen);

/*
 * Ends the connection: the socket is closed and the other peers' eventfds
 * with it (no doorbells to peers without a server telling who left); the
 * memory and the own eventfds stay.
 */
void ivshmem_client_close(struct ivshmem_client *c);

/*
 * Rings vector of peer id (8-byte eventfd write of 1; a ring to the own
 * ID interrupts this client). 0, or -ENOENT when no such peer or vector
 * is connected (the spec says: ignored).
 */
int ivshmem_client_ring(struct ivshmem_client *c, unsigned id, unsigned vector);

/* Whether fd is an anonymous-inode descriptor (what an eventfd is), as fstat tells. */
bool ivshmem_fd_is_eventfd(int fd);

#endif
