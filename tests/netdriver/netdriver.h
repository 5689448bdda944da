/*
 * A virtio-net driver that speaks vhost-user itself, without a VM: its
 * "guest memory" is a memfd it shares with the back-end (domus-net), where
 * it lays out the receive ring (queue 0) and the transmit ring (queue 1)
 * by hand, one 2 KiB buffer per descriptor, kicks and calls on eventfds.
 * Features: VERSION_1, MAC, MTU, STATUS (netdrv_open_features: those the
 * caller asks for); each buffer is the 12-byte virtio_net_hdr_v1 and a
 * frame, the header zero unless the caller writes one (netdrv_send_hdr).
 * A frame received must fit one buffer. As Linux's driver under load, it
 * asks for no transmit interrupt and for a receive one only while it
 * waits (VIRTQ_AVAIL_F_NO_INTERRUPT otherwise).
 *
 * Guest-physical layout (qsize entries per ring, at most 256):
 *   0x0000 RX descriptors  0x1000 RX avail  0x2000 RX used
 *   0x4000 TX descriptors  0x5000 TX avail  0x6000 TX used
 *   0x10000 RX buffers (2 KiB each), then TX buffers (2 KiB each)
 * TX slot i is descriptor i and buffer i; the device completes transmit
 * chains in order, so slots are used round robin.
 */
#ifndef DOMUS_NETDRIVER_H
#define DOMUS_NETDRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtq.h"
#include "vhost/frontend.h"
#include "vmm/guest_mem.h"

#define NETDRV_HDR_LEN 12
#define NETDRV_BUF_LEN 2048
#define NETDRV_MAX_QSIZE 256
#define NETDRV_FEATURES ((1ULL << 32) | (1ULL << 5) | (1ULL << 3) | (1ULL << 16))

struct netdrv {
	struct vhost_frontend fe;
	struct guest_mem mem;
	uint16_t qsize;
	uint64_t want; /* features asked for */
	int kick_fd[2], call_fd[2]; /* per queue: 0 receive, 1 transmit */
	uint8_t mac[6];		    /* from the config space */
	uint16_t status, mtu;
	uint16_t rx_avail, rx_seen; /* receive buffers posted; completions read */
	uint16_t tx_avail, tx_seen; /* transmit chains posted; completions read */
};

/*
 * Connects to the back-end at socket, negotiates, shares memory and starts
 * both queues of qsize with every receive buffer posted. With mac not
 * NULL, the device's MAC must be it (-EPROTO if not). 0 or -errno with err.
 */
int netdrv_open(struct netdrv *d, const char *socket, const uint8_t *mac, uint16_t qsize, char *err,
		size_t errlen);
/* The same asking for features (of those the device offers). */
int netdrv_open_features(struct netdrv *d, const char *socket, const uint8_t *mac, uint16_t qsize,
			 uint64_t features, char *err, size_t errlen);
/*
 * A back-end that died: connects again on socket and hands the new one the
 * same memory and rings, each queue resumed from its used index (frames
 * taken and not completed are sent again). 0 or -errno with err.
 */
int netdrv_reconnect(struct netdrv *d, const char *socket, char *err, size_t errlen);
void netdrv_close(struct netdrv *d);
/* Queues one frame on the transmit ring (no kick). 0, -EAGAIN when the ring is full, -EMSGSIZE. */
int netdrv_send(struct netdrv *d, const void *frame, size_t len);
/* The same behind the 12-byte header hdr (NULL: zeros). */
int netdrv_send_hdr(struct netdrv *d, const void *hdr, const void *frame, size_t len);
/* Tells the device the transmit ring has work. 0 or -errno. */
int netdrv_kick(struct netdrv *d);
/* Transmit chains completed so far are taken back; returns how many slots are free. */
unsigned netdrv_tx_free(struct netdrv *d);
/*
 * The next received frame into buf (at most len bytes), its buffer posted
 * again. Waits up to timeout_ms; returns the frame's length, 0 if none came,
 * or -errno.
 */
int netdrv_receive(struct netdrv *d, void *buf, size_t len, int timeout_ms);
/* The same with the buffer's 12-byte header copied into hdr (NULL: not). */
int netdrv_receive_hdr(struct netdrv *d, void *hdr, void *buf, size_t len, int timeout_ms);
/*
 * A 64-byte Ethernet frame into f (64 bytes): IPv4 from 10.0.0.src to
 * 10.0.0.dst (header checksum set), UDP 40000 to dport without a checksum,
 * seq in the first four bytes of the 22-byte payload. Returns 64.
 */
size_t netdrv_udp_frame(uint8_t *f, const uint8_t *from, const uint8_t *to, uint8_t src,
			uint8_t dst, uint16_t dport, uint32_t seq);
/* For forged chains: the transmit descriptors, the next slot, publishing a head. */
struct virtq_desc *netdrv_tx_desc(struct netdrv *d);
uint16_t netdrv_tx_slot(const struct netdrv *d);
uint64_t netdrv_tx_buf_gpa(const struct netdrv *d, uint16_t slot);
void netdrv_tx_submit_head(struct netdrv *d, uint16_t head);

#endif
