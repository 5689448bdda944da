/*
 * virtio-net (virtio 1.2, section 5.1): the guest sends
 * and receives Ethernet frames behind a 12-byte header. Two devices share
 * this header: the in-VMM one on a TAP device (virtio_net.c, the fallback
 * with no firewall-router on the path), which offers checksum offload,
 * TSO both ways, mergeable receive buffers and a queue pair per vCPU, the
 * TAP taking the same header; and the one whose queues a vhost-user back-end serves
 * (vhost_user_net.c: domus-net, or any vhost-user-net back-end).
 */
#ifndef DOMUS_VIRTIO_NET_H
#define DOMUS_VIRTIO_NET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/vhost_user_dev.h"
#include "devices/virtio_pci.h"
#include "net/offload.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_NET_RX 0
#define VIRTIO_NET_TX 1
#define VIRTIO_NET_QUEUE_SIZE 256

/* What the in-VMM device offers beyond MAC, status and MTU. */
#define VIRTIO_NET_OFFLOADS                                                                         \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |                         \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6) |                   \
	 (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |                     \
	 (1ULL << VIRTIO_NET_F_MRG_RXBUF))

/* The device config space: mac, status, max_virtqueue_pairs, mtu. */
struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

/*
 * A queue pair of the in-VMM device: receive queue 2 * index, transmit
 * queue 2 * index + 1, and its own queue of a multi-queue TAP, which its
 * thread reads into the receive queue.
 */
struct virtio_net_pair {
	struct virtio_net *net;
	unsigned index;
	int tap_fd;  /* this pair's queue of the TAP */
	int wake_fd; /* an eventfd: buffers posted, or the device stops (-1: no thread) */
	pthread_t thread;
	bool started;
};

/*
 * The in-VMM device on a TAP: a pair per queue of the TAP (one per vCPU,
 * at most VIRTIO_NET_PAIRS_MAX), and with more than one pair a control
 * queue (queue 2 * pairs) where the driver says how many it uses.
 */
struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_net_config config;
	unsigned pairs;         /* offered */
	uint16_t active_pairs;  /* the driver's (VQ_PAIRS_SET), 1 until it says */
	struct virtio_net_pair pair[VIRTIO_NET_PAIRS_MAX];
	bool active;
	uint8_t *tx_buf; /* a header and a frame the driver sends, VIRTIO_NET_HDR_LEN + GSO max */
	uint64_t rx_dropped, tx_dropped; /* no buffer, frames that did not fit */
};

/* The in-VMM device's operations (the fuzz target drives them directly). */
extern const struct virtio_device_ops virtio_net_ops;

/*
 * Adds the device on the TAP's queues tap_fds[0, ntaps) (from
 * tap_open_vnet, kept by the caller across reboots): a queue pair each.
 * 0 or -errno.
 */
int virtio_net_add(struct vm *vm, struct virtio_net *n, const int *tap_fds, unsigned ntaps,
		   const uint8_t mac[6]) __attribute__((warn_unused_result));
void virtio_net_destroy(struct virtio_net *n);
/*
 * Hands what one read from pair's queue of the TAP gave (a virtio_net_hdr,
 * then the frame) to the guest: what the receive threads do with each. It
 * goes to that pair's receive queue, or, when the driver uses fewer pairs,
 * to one it uses. Returns 0 once it is delivered or dropped (no header,
 * not an Ethernet frame, an offload the driver did not negotiate, no
 * driver, buffers too small, a broken queue), -EAGAIN when the guest has
 * not posted buffers enough: the caller keeps it until the next receive
 * kick.
 */
int virtio_net_receive_frame(struct virtio_net *n, unsigned pair, const void *packet, size_t len);

struct vhost_user_net {
	struct vhost_user_dev u;
	struct virtio_net_config config;
};

/* Connects to the back-end at path and adds the device with this MAC; 0 or -errno (logged). */
int vhost_user_net_add(struct vm *vm, struct vhost_user_net *n, const char *path,
		       const uint8_t mac[6]) __attribute__((warn_unused_result));
void vhost_user_net_destroy(struct vhost_user_net *n);

/*
 * Opens (creating if need be) the TAP interface name, IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, each frame after a 12-byte virtio-net header, as domus-net's
 * uplink takes them: it may hand over partial checksums and TCP/IPv4
 * segments (TUN_F_CSUM | TUN_F_TSO4), which the VFR carries (net/vfr.h).
 * fd or -errno with err.
 */
int tap_open_uplink(const char *name, char *err, size_t errlen);
/*
 * The same with no offloads yet (set when the driver's are known), and
 * up to want queues (IFF_MULTI_QUEUE), a descriptor each in fds: the
 * in-VMM device's. A TAP that already exists with one queue gives one.
 * The number of queues opened, or -errno with err.
 */
int tap_open_vnet(const char *name, unsigned want, int *fds, char *err, size_t errlen);

#endif
