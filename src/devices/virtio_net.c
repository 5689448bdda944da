/*
 * The in-VMM virtio-net device on a TAP interface: what domus run uses
 * with --net tap=NAME, with no firewall-router on the path (domus-net is
 * the default under domusd). Frames the guest sends are written to the
 * TAP from the transmit kick; a thread reads the TAP into receive buffers.
 * A frame read while the guest has posted no buffer waits for its next
 * receive kick rather than being dropped, and the TAP is not read until
 * it is delivered, so the host's queue (not ours) absorbs bursts.
 *
 * Several queue pairs (a vCPU's each) sit on a multi-queue TAP
 * (IFF_MULTI_QUEUE), one TAP queue and one receive thread per pair, so
 * the host's kernel spreads flows over the pairs and each pair's
 * interrupts go to its own vCPU. The driver says over the control queue
 * how many it uses (VQ_PAIRS_SET); what a TAP queue beyond them reads goes
 * to one it uses.
 *
 * Offloads pass through: the TAP speaks virtio's own header (IFF_VNET_HDR),
 * so a TSO segment or a partial checksum from the guest goes to the host's
 * stack as it is, and the TAP hands the guest what its driver negotiated
 * (TUNSETOFFLOAD, set at DRIVER_OK), large segments spread over several
 * receive buffers where the driver takes mergeable ones.
 */
#include "devices/virtio_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/vm.h"
#include "vmm/confine.h"

#define ETH_HEADER_LEN 14
#define NET_TX_NOTIFY_BUDGET 64 /* frames per notify (virtio_budget_left) */

static struct virtio_net *of(struct virtio_dev *vd)
{
	return vd->priv;
}

static void config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	memcpy(data, (const uint8_t *)&of(vd)->config + off, len);
}

static void config_write(struct virtio_dev *vd, unsigned off, const void *data, unsigned len)
{
	(void)vd, (void)off, (void)data, (void)len;
}

#define FEATURE(f, bit) (((f) >> (bit)) & 1)

static void transmit(struct virtio_net *n, unsigned pair)
{
	unsigned q = 2 * pair + 1;
	struct virtq *vq = &n->vdev.vqs[q];
	uint8_t *buf = n->tx_buf;
	const size_t cap = VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX;
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;
	int r = 0;

	while (virtio_budget_left(&n->vdev, q, &served, NET_TX_NOTIFY_BUDGET) &&
	       (r = virtq_pop_avail(vq, &c)) == 1) {
		/* Copied first: the header checked is the header sent, whatever the guest does meanwhile. */
		uint64_t len = c.out_len <= cap ? virtq_chain_read(&c, 0, buf, cap) : 0;
		struct virtio_net_hdr h;

		memcpy(&h, buf, sizeof(h));
		/*
		 * A chain longer than a frame, with no frame behind the header, or
		 * asking for an offload it did not negotiate is not sent; the
		 * host's kernel checks the rest (where the checksum goes, the
		 * segment size) and refuses what is wrong with it.
		 */
		if (len < VIRTIO_NET_HDR_LEN + ETH_HEADER_LEN ||
		    !virtio_net_tx_header_ok(&h, n->vdev.driver_features, len - VIRTIO_NET_HDR_LEN) ||
		    write(n->pair[pair].tap_fd, buf, len) < 0)
			n->tx_dropped++;
		if (virtq_push_used(vq, c.head, 0) < 0)
			break;
		any = true;
	}
	if (r < 0)
		virtio_needs_reset(&n->vdev, "transmit queue broken");
	if (any)
		virtio_queue_interrupt(&n->vdev, q);
}

/* The control queue (with more than one pair): how many pairs the driver uses, nothing else. */
static void control(struct virtio_net *n)
{
	unsigned q = 2 * n->pairs;
	struct virtq *vq = &n->vdev.vqs[q];
	struct virtq_chain c;
	unsigned served = 0;
	bool any = false;
	int r = 0;

	while (virtio_budget_left(&n->vdev, q, &served, NET_TX_NOTIFY_BUDGET) &&
	       (r = virtq_pop_avail(vq, &c)) == 1) {
		uint8_t cmd[4], ack = VIRTIO_NET_ERR;
		uint64_t len = c.out_len == sizeof(cmd) ? virtq_chain_read(&c, 0, cmd, sizeof(cmd)) : 0;
		uint16_t pairs;

		if (virtio_net_ctrl_pairs_set(cmd, len, n->vdev.driver_features, n->pairs, &pairs)) {
			n->active_pairs = pairs;
			ack = VIRTIO_NET_OK;
		}
		/* The device's answer: the first byte it may write. */
		if (c.in_len >= 1)
			virtq_chain_write(&c, 0, &ack, 1);
		if (virtq_push_used(vq, c.head, c.in_len >= 1 ? 1 : 0) < 0)
			break;
		any = true;
	}
	if (r < 0)
		virtio_needs_reset(&n->vdev, "control queue broken");
	if (any)
		virtio_queue_interrupt(&n->vdev, q);
}

/* The pair whose receive queue takes what TAP queue pair reads: itself, or one the driver uses. */
static unsigned rx_pair(const struct virtio_net *n, unsigned pair)
{
	return pair < n->active_pairs ? pair : pair % n->active_pairs;
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_net *n = of(vd);
	uint64_t one = 1;

	if (n->pairs > 1 && q == 2 * n->pairs) {
		control(n);
	} else if (q / 2 >= n->pairs) {
		return; /* no such queue: the transport offers none */
	} else if (q & 1) {
		transmit(n, q / 2);
	} else {
		/* Buffers posted: the threads that deliver into this queue look again. */
		for (unsigned i = 0; i < n->pairs; i++)
			if (rx_pair(n, i) == q / 2 && n->pair[i].wake_fd >= 0 &&
			    write(n->pair[i].wake_fd, &one, 8) < 0)
				log_warn("virtio-net: wake");
	}
}

/* What the TAP may hand the guest: what its driver takes, and no more. */
static void set_tap_offloads(struct virtio_net *n, uint64_t f)
{
	unsigned off = 0;

	if (FEATURE(f, VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (FEATURE(f, VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (FEATURE(f, VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	/* The offloads are the TAP device's, whichever queue sets them. */
	if (ioctl(n->pair[0].tap_fd, TUNSETOFFLOAD, off) < 0)
		log_warn("virtio-net: the TAP's offloads");
}

static void driver_ok(struct virtio_dev *vd)
{
	set_tap_offloads(of(vd), vd->driver_features);
}

static void reset(struct virtio_dev *vd)
{
	/* The next driver (a reboot, another kernel) may take no offloads, and one pair. */
	set_tap_offloads(of(vd), 0);
	of(vd)->active_pairs = 1;
}

/*
 * Puts packet (header and frame, len bytes) into the receive queue: one
 * buffer, or as many as it takes where the driver negotiated MRG_RXBUF
 * (the first buffer's header says how many). 1 delivered, 0 dropped,
 * -EAGAIN too few buffers yet (none is used: those taken go back),
 * -EINVAL the queue is broken.
 */
static int receive_into_buffers(struct virtio_net *n, unsigned q, const uint8_t *packet,
				size_t len)
{
	struct virtq *vq = &n->vdev.vqs[q];
	bool mergeable = FEATURE(n->vdev.driver_features, VIRTIO_NET_F_MRG_RXBUF);
	uint16_t heads[VIRTIO_NET_RX_CHAINS_MAX];
	uint32_t lens[VIRTIO_NET_RX_CHAINS_MAX];
	struct virtq_chain c;
	unsigned taken = 0;
	size_t off = 0;
	uint16_t count;
	int r;

	if (len == 0)
		return 0;
	while (off < len) {
		uint64_t chunk;

		if (taken == VIRTIO_NET_RX_CHAINS_MAX || taken == vq->size) {
			/* Buffers so small that even all of them cannot hold it: no wait will help. */
			while (taken--)
				virtq_unpop_avail(vq);
			return 0;
		}
		if ((r = virtq_pop_avail(vq, &c)) <= 0) {
			while (taken--)
				virtq_unpop_avail(vq);
			return r < 0 ? r : -EAGAIN;
		}
		chunk = c.in_len < len - off ? c.in_len : len - off;
		if ((!mergeable && chunk < len) || (taken == 0 && chunk < VIRTIO_NET_HDR_LEN)) {
			/*
			 * A first buffer too small for what the driver said it
			 * takes (only a first one can be: without MRG_RXBUF there
			 * is no second): it goes back empty.
			 */
			if (virtq_push_used(vq, c.head, 0) == 0)
				virtio_queue_interrupt(&n->vdev, q);
			return 0;
		}
		virtq_chain_write(&c, 0, packet + off, chunk);
		heads[taken] = c.head;
		lens[taken++] = (uint32_t)chunk;
		off += chunk;
	}
	count = (uint16_t)taken;
	/* The count goes into the first buffer, which the loop no longer holds: its head says where. */
	if (virtq_chain_at(vq, heads[0], &c) < 0)
		return -EINVAL;
	virtq_chain_write(&c, offsetof(struct virtio_net_hdr, num_buffers), &count, sizeof(count));
	if (!FEATURE(n->vdev.driver_features, VIRTIO_NET_F_GUEST_CSUM) &&
	    packet[offsetof(struct virtio_net_hdr, flags)]) {
		/*
		 * Without GUEST_CSUM the flags must be 0 (virtio 1.2, 5.1.6.4.1):
		 * the TAP's DATA_VALID goes (NEEDS_CSUM never came this far).
		 */
		uint8_t none = 0;

		virtq_chain_write(&c, offsetof(struct virtio_net_hdr, flags), &none, sizeof(none));
	}
	for (unsigned i = 0; i < taken; i++)
		if (virtq_push_used(vq, heads[i], lens[i]) < 0)
			return -EINVAL;
	virtio_queue_interrupt(&n->vdev, q);
	return 1;
}

int virtio_net_receive_frame(struct virtio_net *n, unsigned pair, const void *packet, size_t len)
{
	const uint8_t *p = packet;
	struct virtio_net_hdr h;
	struct virtq *vq;
	int ret = 0, r;
	unsigned q;

	pthread_mutex_lock(&n->vdev.lock);
	q = 2 * rx_pair(n, pair < n->pairs ? pair : 0);
	vq = &n->vdev.vqs[q];
	if (len < VIRTIO_NET_HDR_LEN + ETH_HEADER_LEN) {
		n->rx_dropped++; /* not a frame */
	} else if (!virtio_driver_ready(&n->vdev) || !vq->enabled) {
		n->rx_dropped++; /* no driver: the frame goes, as on a link that is down */
	} else if (memcpy(&h, p, sizeof(h)),
		   !virtio_net_rx_header_ok(&h, n->vdev.driver_features, len - VIRTIO_NET_HDR_LEN)) {
		/* Offloads the driver does not take: read before its TUNSETOFFLOAD, or too long. */
		n->rx_dropped++;
	} else {
		r = receive_into_buffers(n, q, p, len);
		if (r == -EAGAIN) {
			ret = -EAGAIN;
		} else if (r < 0) {
			virtio_needs_reset(&n->vdev, "receive queue broken");
			n->rx_dropped++;
		} else if (r == 0) {
			n->rx_dropped++;
		}
	}
	pthread_mutex_unlock(&n->vdev.lock);
	return ret;
}

static void *rx_thread(void *arg)
{
	struct virtio_net_pair *pr = arg;
	struct virtio_net *n = pr->net;
	/* A header and the largest frame, and a byte more: a read that fills it was too long. */
	const size_t cap = VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX + 1;
	uint8_t *frame = malloc(cap);
	ssize_t pending = 0;

	if (!frame) {
		log_warnx("virtio-net: no memory for the receive thread's buffer");
		return NULL;
	}
	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("virtio-net: cannot load the receive thread's system-call filter");
		free(frame);
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = pr->wake_fd, .events = POLLIN},
				      {.fd = pending ? -1 : pr->tap_fd, .events = POLLIN}};
		uint64_t v;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			if (read(pr->wake_fd, &v, sizeof(v)) == sizeof(v) && !n->active) {
				free(frame);
				return NULL;
			}
		}
		if (!pending && (p[1].revents & POLLIN))
			pending = read(pr->tap_fd, frame, cap);
		if (pending < 0) {
			pending = 0; /* a read error: nothing to deliver */
			continue;
		}
		if (pending &&
		    virtio_net_receive_frame(n, pr->index, frame, (size_t)pending) != -EAGAIN)
			pending = 0;
	}
}

const struct virtio_device_ops virtio_net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = 0x020000,
	.nqueues = 2,
	.queue_size = VIRTIO_NET_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_net_config),
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = queue_notify,
	.reset = reset,
	.driver_ok = driver_ok,
};

/*
 * A descriptor of the TAP interface name (IFF_MULTI_QUEUE: one of its
 * queues), each frame behind a 12-byte virtio-net header; offloads:
 * TUNSETOFFLOAD's flags, what the TAP may hand its reader.
 */
static int open_tap(const char *name, bool multi_queue, unsigned offloads, char *err,
		    size_t errlen)
{
	struct ifreq ifr = {0};
	int fd, ret, hdr_len = VIRTIO_NET_HDR_LEN;

	if (strlen(name) >= IFNAMSIZ) {
		snprintf(err, errlen, "TAP name '%s' longer than %d bytes", name, IFNAMSIZ - 1);
		return -ENAMETOOLONG;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "/dev/net/tun: %s", strerror(errno));
		return ret;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
	strcpy(ifr.ifr_name, name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
		ret = -errno;
		snprintf(err, errlen, "TAP %s: %s", name, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

int tap_open_uplink(const char *name, char *err, size_t errlen)
{
	return open_tap(name, false, TUN_F_CSUM | TUN_F_TSO4, err, errlen);
}

int tap_open_vnet(const char *name, unsigned want, int *fds, char *err, size_t errlen)
{
	unsigned n = 0;
	int fd;

	if (want > 1) {
		for (; n < want; n++) {
			if ((fd = open_tap(name, true, 0, err, errlen)) < 0)
				break;
			fds[n] = fd;
		}
		if (n > 0)
			return (int)n;
		/* EINVAL: the TAP exists with one queue (made without IFF_MULTI_QUEUE). */
		if (fd != -EINVAL)
			return fd;
	}
	if ((fd = open_tap(name, false, 0, err, errlen)) < 0)
		return fd;
	fds[0] = fd;
	return 1;
}

int virtio_net_add(struct vm *vm, struct virtio_net *n, const int *tap_fds, unsigned ntaps,
		   const uint8_t mac[6])
{
	uint64_t features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
			    (1ULL << VIRTIO_NET_F_MTU) | VIRTIO_NET_OFFLOADS;
	int ret;

	if (ntaps < 1 || ntaps > VIRTIO_NET_PAIRS_MAX)
		return -EINVAL;
	memset(n, 0, sizeof(*n));
	n->pairs = ntaps;
	n->active_pairs = 1;
	for (unsigned i = 0; i < ntaps; i++)
		n->pair[i] = (struct virtio_net_pair){.net = n, .index = i, .tap_fd = tap_fds[i],
						      .wake_fd = -1};
	memcpy(n->config.mac, mac, 6);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = (uint16_t)ntaps;
	n->config.mtu = 1500;
	if (ntaps > 1)
		features |= (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ);
	n->tx_buf = malloc(VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX);
	if (!n->tx_buf)
		return -ENOMEM;
	ret = virtio_pci_add_queues(vm, &n->vdev, &virtio_net_ops, n, features,
				    ntaps > 1 ? 2 * ntaps + 1 : 2);
	n->active = true;
	for (unsigned i = 0; ret == 0 && i < ntaps; i++) {
		struct virtio_net_pair *p = &n->pair[i];

		if ((p->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0)
			ret = -errno;
		else if (pthread_create(&p->thread, NULL, rx_thread, p) != 0)
			ret = -EAGAIN;
		else
			p->started = true;
	}
	if (ret < 0) {
		virtio_net_destroy(n);
		return ret;
	}
	return 0;
}

void virtio_net_destroy(struct virtio_net *n)
{
	uint64_t one = 1;

	if (!n->tx_buf)
		return;
	n->active = false;
	for (unsigned i = 0; i < n->pairs; i++) {
		struct virtio_net_pair *p = &n->pair[i];

		if (p->started) {
			if (write(p->wake_fd, &one, 8) < 0)
				log_warn("virtio-net: stop");
			pthread_join(p->thread, NULL);
			p->started = false;
		}
		if (p->wake_fd >= 0)
			close(p->wake_fd);
		p->wake_fd = -1;
	}
	free(n->tx_buf);
	n->tx_buf = NULL;
}
