/*
 * The in-VMM virtio-net device on a TAP interface: what domus run uses
 * with --net tap=NAME, with no firewall-router on the path (domus-net is
 * the default under domusd). Frames the guest sends are written to the
 * TAP from the transmit kick; a thread reads the TAP into receive buffers.
 * A frame read while the guest has posted no buffer waits for its next
 * receive kick rather than being dropped, and the TAP is not read until
 * it is delivered, so the host's queue (not ours) absorbs bursts.
 */
#include "devices/virtio_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
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

static void transmit(struct virtio_net *n)
{
	struct virtq *vq = &n->vdev.vqs[VIRTIO_NET_TX];
	uint8_t frame[VIRTIO_NET_HDR_LEN + VIRTIO_NET_FRAME_MAX];
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;
	int r = 0;

	while (virtio_budget_left(&n->vdev, VIRTIO_NET_TX, &served, NET_TX_NOTIFY_BUDGET) &&
	       (r = virtq_pop_avail(vq, &c)) == 1) {
		uint64_t len = virtq_chain_read(&c, 0, frame, sizeof(frame));

		/* A chain longer than a frame, or with no frame behind the header, is not sent. */
		if (c.out_len > sizeof(frame) || len < VIRTIO_NET_HDR_LEN + ETH_HEADER_LEN ||
		    write(n->tap_fd, frame + VIRTIO_NET_HDR_LEN, len - VIRTIO_NET_HDR_LEN) < 0)
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

static void reset(struct virtio_dev *vd)
{
	(void)vd;
}

int virtio_net_receive_frame(struct virtio_net *n, const void *frame, size_t len)
{
	struct virtq *vq = &n->vdev.vqs[VIRTIO_NET_RX];
	uint8_t hdr[VIRTIO_NET_HDR_LEN] = {0};
	struct virtq_chain c;
	int ret = 0, r;

	hdr[10] = 1; /* num_buffers */
	pthread_mutex_lock(&n->vdev.lock);
	if (len < ETH_HEADER_LEN || len > VIRTIO_NET_FRAME_MAX) {
		n->rx_dropped++; /* not a frame, or beyond what a guest may be handed */
	} else if (!virtio_driver_ready(&n->vdev) || !vq->enabled) {
		n->rx_dropped++; /* no driver: the frame goes, as on a link that is down */
	} else if ((r = virtq_pop_avail(vq, &c)) == 1) {
		if (c.in_len < sizeof(hdr) + len) {
			n->rx_dropped++;
			len = 0;
		} else {
			virtq_chain_write(&c, 0, hdr, sizeof(hdr));
			virtq_chain_write(&c, sizeof(hdr), frame, len);
		}
		if (virtq_push_used(vq, c.head, len ? (uint32_t)(sizeof(hdr) + len) : 0) == 0)
			virtio_queue_interrupt(&n->vdev, VIRTIO_NET_RX);
	} else if (r < 0) {
		virtio_needs_reset(&n->vdev, "receive queue broken");
		n->rx_dropped++;
	} else {
		ret = -EAGAIN;
	}
	pthread_mutex_unlock(&n->vdev.lock);
	return ret;
}

static void *rx_thread(void *arg)
{
	struct virtio_net *n = arg;
	uint8_t frame[VIRTIO_NET_FRAME_MAX + 64];
	ssize_t pending = 0;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("virtio-net: cannot load the receive thread's system-call filter");
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = n->stop_fd, .events = POLLIN},
				      {.fd = pending ? -1 : n->tap_fd, .events = POLLIN}};
		uint64_t v;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			if (read(n->stop_fd, &v, sizeof(v)) == sizeof(v) && !n->active)
				return NULL;
		}
		if (!pending && (p[1].revents & POLLIN))
			pending = read(n->tap_fd, frame, sizeof(frame));
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
};

int tap_open(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr = {0};
	int fd, ret;

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
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	strcpy(ifr.ifr_name, name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		snprintf(err, errlen, "TAP %s: %s", name, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
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
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0)
		return -errno;
	ret = virtio_pci_add(vm, &n->vdev, &virtio_net_ops, n,
			     (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
				 (1ULL << VIRTIO_NET_F_MTU));
	n->active = true;
	if (ret == 0 && pthread_create(&n->thread, NULL, rx_thread, n) != 0)
		ret = -EAGAIN;
	if (ret < 0) {
		n->active = false;
		close(n->stop_fd);
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
}
