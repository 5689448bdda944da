/*
 * The in-VMM virtio-net device on a TAP interface: what domus run uses
 * with --net tap=NAME, with no firewall-router on the path (domus-net is
 * the default under domusd). Frames the guest sends are written to the
 * TAP from the transmit kick; a thread reads the TAP into receive buffers.
 * A frame read while the guest has posted no buffer waits for its next
 * receive kick rather than being dropped, and the TAP is not read until
 * it is delivered, so the host's queue (not ours) absorbs bursts.
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

static void transmit(struct virtio_net *n)
{
	struct virtq *vq = &n->vdev.vqs[VIRTIO_NET_TX];
	uint8_t *buf = n->tx_buf;
	const size_t cap = VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX;
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;
	int r = 0;

	while (virtio_budget_left(&n->vdev, VIRTIO_NET_TX, &served, NET_TX_NOTIFY_BUDGET) &&
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
		    write(n->tap_fd, buf, len) < 0)
			n->tx_dropped++;
		if (virtq_push_used(vq, c.head, 0) < 0)
			break;
		any = true;
	}
	if (r < 0)
		virtio_needs_reset(&n->vdev, "transmit queue broken");
	if (any)
		virtio_queue_interrupt(&n->vdev, VIRTIO_NET_TX);
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_net *n = of(vd);
	uint64_t one = 1;

	if (q == VIRTIO_NET_TX)
		transmit(n);
	else if (write(n->stop_fd, &one, 8) < 0) /* buffers posted: the thread looks again */
		log_warn("virtio-net: wake");
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
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, off) < 0)
		log_warn("virtio-net: the TAP's offloads");
}

static void driver_ok(struct virtio_dev *vd)
{
	set_tap_offloads(of(vd), vd->driver_features);
}

static void reset(struct virtio_dev *vd)
{
	/* The next driver (a reboot, another kernel) may take no offloads. */
	set_tap_offloads(of(vd), 0);
}

/*
 * Puts packet (header and frame, len bytes) into the receive queue: one
 * buffer, or as many as it takes where the driver negotiated MRG_RXBUF
 * (the first buffer's header says how many). 1 delivered, 0 dropped,
 * -EAGAIN too few buffers yet (none is used: those taken go back),
 * -EINVAL the queue is broken.
 */
static int receive_into_buffers(struct virtio_net *n, const uint8_t *packet, size_t len)
{
	struct virtq *vq = &n->vdev.vqs[VIRTIO_NET_RX];
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
				virtio_queue_interrupt(&n->vdev, VIRTIO_NET_RX);
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
	virtio_queue_interrupt(&n->vdev, VIRTIO_NET_RX);
	return 1;
}

int virtio_net_receive_frame(struct virtio_net *n, const void *packet, size_t len)
{
	struct virtq *vq = &n->vdev.vqs[VIRTIO_NET_RX];
	const uint8_t *p = packet;
	struct virtio_net_hdr h;
	int ret = 0, r;

	pthread_mutex_lock(&n->vdev.lock);
	if (len < VIRTIO_NET_HDR_LEN + ETH_HEADER_LEN) {
		n->rx_dropped++; /* not a frame */
	} else if (!virtio_driver_ready(&n->vdev) || !vq->enabled) {
		n->rx_dropped++; /* no driver: the frame goes, as on a link that is down */
	} else if (memcpy(&h, p, sizeof(h)),
		   !virtio_net_rx_header_ok(&h, n->vdev.driver_features, len - VIRTIO_NET_HDR_LEN)) {
		/* Offloads the driver does not take: read before its TUNSETOFFLOAD, or too long. */
		n->rx_dropped++;
	} else {
		r = receive_into_buffers(n, p, len);
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
	struct virtio_net *n = arg;
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
		struct pollfd p[2] = {{.fd = n->stop_fd, .events = POLLIN},
				      {.fd = pending ? -1 : n->tap_fd, .events = POLLIN}};
		uint64_t v;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			if (read(n->stop_fd, &v, sizeof(v)) == sizeof(v) && !n->active) {
				free(frame);
				return NULL;
			}
		}
		if (!pending && (p[1].revents & POLLIN))
			pending = read(n->tap_fd, frame, cap);
		if (pending < 0) {
			pending = 0; /* a read error: nothing to deliver */
			continue;
		}
		if (pending && virtio_net_receive_frame(n, frame, (size_t)pending) != -EAGAIN)
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

/* offloads: TUNSETOFFLOAD's flags, what the TAP may hand its reader. */
static int open_tap(const char *name, unsigned offloads, char *err, size_t errlen)
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
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
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
	return open_tap(name, TUN_F_CSUM | TUN_F_TSO4, err, errlen);
}

int tap_open_vnet(const char *name, char *err, size_t errlen)
{
	return open_tap(name, 0, err, errlen);
}

int virtio_net_add(struct vm *vm, struct virtio_net *n, int tap_fd, const uint8_t mac[6])
{
	int ret;

	memset(n, 0, sizeof(*n));
	n->tap_fd = tap_fd;
	memcpy(n->config.mac, mac, 6);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = 1;
	n->config.mtu = 1500;
	n->tx_buf = malloc(VIRTIO_NET_HDR_LEN + VIRTIO_NET_GSO_FRAME_MAX);
	if (!n->tx_buf)
		return -ENOMEM;
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0) {
		free(n->tx_buf);
		return -errno;
	}
	ret = virtio_pci_add(vm, &n->vdev, &virtio_net_ops, n,
			     (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
				 (1ULL << VIRTIO_NET_F_MTU) | VIRTIO_NET_OFFLOADS);
	n->active = true;
	if (ret == 0 && pthread_create(&n->thread, NULL, rx_thread, n) != 0)
		ret = -EAGAIN;
	if (ret < 0) {
		n->active = false;
		close(n->stop_fd);
		free(n->tx_buf);
		return ret;
	}
	return 0;
}

void virtio_net_destroy(struct virtio_net *n)
{
	uint64_t one = 1;

	if (!n->active)
		return;
	n->active = false;
	if (write(n->stop_fd, &one, 8) < 0)
		log_warn("virtio-net: stop");
	pthread_join(n->thread, NULL);
	close(n->stop_fd);
	free(n->tx_buf);
	n->tx_buf = NULL;
}
