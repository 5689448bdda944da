/*
 * One domain's port of domus-net: a virtio-net device served over
 * vhost-user to one front-end at a time (the domain's VMM, or
 * tests/netdriver), on a listening socket the supervisor passed.
 *
 * The device: VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU (1500)
 * and VIRTIO_NET_F_STATUS (link always up), one queue pair, and the
 * offloads of TCP/IPv4: CSUM, GUEST_CSUM, HOST_TSO4, GUEST_TSO4 and
 * MRG_RXBUF (net/offload.h), and MQ with CTRL_VQ: up to NETPORT_PAIRS_MAX
 * queue pairs. A frame for the domain goes to the receive queue of the
 * pair its flow hashes to (addresses, protocol and ports, the same either
 * way); every transmit queue is served.
 * Its config space (virtio 1.2, 5.1.4), little-endian:
 *   u8 mac[6]; u16 status (1: link up); u16 max_virtqueue_pairs; u16 mtu (1500)
 * Every frame on either queue starts with struct virtio_net_hdr_v1 (12
 * bytes: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
 * num_buffers).
 *   queue 0, receive: each chain is device-writable; a frame goes whole
 *     into one chain, header first, or with MRG_RXBUF into as many chains
 *     as it takes (num_buffers in the first). What the driver did not
 *     negotiate is done here: a partial checksum completed, a segment cut
 *     into frames of one MTU. No chain (or too few), or a chain shorter
 *     than the frame, drops it, counted.
 *   queue 1, transmit: each chain is device-readable, header and frame; a
 *     header asking for what was not negotiated, or a frame shorter than
 *     14 bytes or longer than the header allows, is dropped and counted,
 *     the chain returned all the same.
 *
 * No inflight area: after a restart the front-end resumes both rings from
 * the used index, so a frame taken and not completed is sent again (a
 * duplicate frame, which Ethernet allows) and a receive buffer not
 * completed is simply filled later.
 */
#ifndef DOMUS_NET_NETPORT_H
#define DOMUS_NET_NETPORT_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/watch.h"
#include "net/offload.h"
#include "net/vfr.h"
#include "vhost/backend.h"

/*
 * Queue pairs: a driver that negotiates MQ uses one per vCPU, up to
 * NETPORT_PAIRS_MAX, and says how many on the control queue
 * (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET). Pair i is receive queue 2i and
 * transmit queue 2i + 1; the control queue comes after the last pair.
 */
#define NETPORT_PAIRS_MAX 4
#define NETPORT_RX 0
#define NETPORT_TX 1
#define NETPORT_CTRL (2 * NETPORT_PAIRS_MAX)
#define NETPORT_QUEUES (2 * NETPORT_PAIRS_MAX + 1)
#define NETPORT_QUEUE_SIZE 256
#define NETPORT_HDR_LEN 12 /* struct virtio_net_hdr_v1 */


struct netport;

/*
 * A frame the port's driver sent (already checked for length), and its
 * header when it asks for an offload (NULL otherwise).
 */
typedef void (*netport_input_fn)(void *ctx, struct netport *p, const uint8_t *frame, size_t len,
				 const struct virtio_net_hdr *off);

struct netport_counters {
	uint64_t tx_frames, tx_bad; /* taken from the transmit queue; dropped for their length */
	uint64_t rx_frames,
	    rx_no_buffer;     /* put in the receive queue; dropped for want of a buffer */
	uint64_t rx_too_long; /* dropped: longer than the buffer offered */
	uint64_t tx_offloaded; /* taken with a partial checksum or as a segment to cut */
	uint64_t rx_offloaded; /* put in the receive queue that way */
	uint64_t rx_cut, rx_csum_done; /* segments cut, checksums completed for the driver */
	uint64_t tx_by_pair[NETPORT_PAIRS_MAX], rx_by_pair[NETPORT_PAIRS_MAX]; /* frames per queue */
	uint64_t connects;
};

/*
 * Threads (domus-net --threads): a port's transmit queues, its connection
 * and its kicks are served by one thread, its owner; any thread may put
 * frames in its receive queues. rx_lock orders the two: netport_rx and
 * netport_flush take it, and the owner holds it while it changes what
 * they use (the connection's messages, which map memory and set rings,
 * a disconnect, the pair count the control queue sets).
 */
struct netport {
	uint32_t id;
	pthread_mutex_t rx_lock;
	uint8_t mac[6];
	int listen_fd;
	bool connected;
	bool tx_pending;   /* frames may be left in a transmit queue: serve them next round */
	bool ctrl_pending; /* the control queue was kicked */
	uint32_t rx_notify; /* receive queues (a bit per pair) with completions not yet signalled */
	uint16_t pairs;	    /* pairs the driver uses: 1 until it says more */
	/*
	 * Where the driver's pairs outlive this process (a slot of the VFR's
	 * state region, vfr_port_pairs_slot; NULL: nowhere): a restarted
	 * domus-net's port takes them from there, since the driver, which
	 * said it once, does not say it again. 0 once the front-end hangs up.
	 */
	uint16_t *kept_pairs;
	bool tx_broken;	 /* the driver broke the transmit ring's rules: it stops until reconnect */
	struct vhost_backend b;
	/*
	 * The loop's epoll set: the listening socket is in it while no
	 * front-end is connected, the connection and its kicks while one is
	 * (vhost_backend_watch); each added and removed as it comes and goes.
	 */
	int epfd;
	int vhost_kind;
	struct watch listen_watch;
	netport_input_fn input;
	void *ctx;
	struct netport_counters n;
};

/* A port on listen_fd (taken over), its frames to input. */
void netport_init(struct netport *p, uint32_t id, const uint8_t mac[6], int listen_fd,
		  netport_input_fn input, void *ctx);
/* Drops the front-end and closes the listening socket (no other thread may use it then). */
void netport_close(struct netport *p);
/* Accepts a front-end (after the previous one has gone); 0 or -errno. */
int netport_accept(struct netport *p);
void netport_disconnect(struct netport *p);
/*
 * Puts the port in epoll set epfd: events of its listening socket point to
 * listen_watch (kind listen_kind, ptr the port), those of a connection to
 * a struct vhost_watch of kind vhost_kind. 0 or -errno.
 */
int netport_watch(struct netport *p, int epfd, int listen_kind, int vhost_kind)
    __attribute__((warn_unused_result));
/* A listen_kind event: accepts the front-end waiting, if there is one. */
void netport_listen_ready(struct netport *p);
/* A vhost_kind event of the port's connection; drops the front-end if it must go. */
void netport_vhost_ready(struct netport *p, const struct vhost_watch *w);
/*
 * Answers the control queue, then takes up to budget frames from each
 * transmit queue and hands each to input; tx_pending says whether more
 * may be there. Returns frames taken.
 */
unsigned netport_tx(struct netport *p, unsigned budget);
/*
 * Puts one frame in the receive queue, with off (NULL: none) what its
 * sender left undone: passed on where the driver negotiated it, done here
 * where it did not. 0, or -ENOBUFS / -EMSGSIZE (dropped, counted).
 */
int netport_rx(struct netport *p, const uint8_t *frame, size_t len,
	       const struct virtio_net_hdr *off);
/* The same, for a caller holding rx_lock across several frames to the port. */
int netport_rx_locked(struct netport *p, const uint8_t *frame, size_t len,
		      const struct virtio_net_hdr *off);
/* Signals the receive completions made since the last call, if the driver wants them. */
void netport_flush(struct netport *p);

#endif
