#include "net/netport.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/log.h"

#define VIRTIO_F_VERSION_1 32
#define CONFIG_LEN 12 /* mac, status, max_virtqueue_pairs, mtu */

static int get_config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct netport *p = dev;
	/* Room for the fields of features not offered (speed, duplex, RSS): zeros. */
	uint8_t cfg[64] = {0};
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = 1, mtu = VFR_MTU;

	memcpy(cfg, p->mac, 6);
	memcpy(cfg + 6, &status, 2);
	memcpy(cfg + 8, &pairs, 2);
	memcpy(cfg + 10, &mtu, 2);
	if (off > sizeof(cfg) || len > sizeof(cfg) - off)
		return -EINVAL;
	memcpy(buf, cfg + off, len);
	return 0;
}

static void queue_kicked(void *dev, struct vhost_backend *b, unsigned q)
{
	struct netport *p = dev;

	/*
	 * Transmit is served by the loop, a budget per port per round, so one
	 * flooding driver cannot hold the others (domus-net.c). New receive
	 * buffers need nothing: frames are put in them as they come.
	 */
	if (q == NETPORT_TX)
		p->tx_pending = true;
}

static const struct vhost_device_ops netport_ops = {
    .features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		(1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_NET_F_MAC) |
		(1ULL << VIRTIO_NET_F_MTU) | (1ULL << VIRTIO_NET_F_STATUS),
    .num_queues = NETPORT_QUEUES,
    .queue_size = NETPORT_QUEUE_SIZE,
    .no_inflight = true,
    .get_config = get_config,
    .queue_kicked = queue_kicked,
};

void netport_init(struct netport *p, uint32_t id, const uint8_t mac[6], int listen_fd,
		  netport_input_fn input, void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	memcpy(p->mac, mac, 6);
	p->listen_fd = listen_fd;
	p->input = input;
	p->ctx = ctx;
	p->b.sock = -1;
	p->epfd = -1;
}

static int listen_watch(struct netport *p, int op)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->listen_watch};

	if (p->epfd < 0 || p->listen_fd < 0)
		return 0;
	return epoll_ctl(p->epfd, op, p->listen_fd, &ev) < 0 ? -errno : 0;
}

int netport_watch(struct netport *p, int epfd, int listen_kind, int vhost_kind)
{
	p->epfd = epfd;
	p->vhost_kind = vhost_kind;
	p->listen_watch = (struct watch){listen_kind, p};
	return listen_watch(p, EPOLL_CTL_ADD);
}

void netport_disconnect(struct netport *p)
{
	bool was = p->connected;

	if (p->connected)
		vhost_backend_close(&p->b);
	p->connected = p->tx_pending = p->rx_notify = p->tx_broken = false;
	/* The next front-end may come now. */
	if (was && listen_watch(p, EPOLL_CTL_ADD) < 0)
		log_warn("port %u: watching its socket again", p->id);
}

void netport_close(struct netport *p)
{
	netport_disconnect(p);
	listen_watch(p, EPOLL_CTL_DEL); /* in the set now whether it was connected or not */
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	p->listen_fd = -1;
}

int netport_accept(struct netport *p)
{
	/* One thread serves every port: the back-end never waits on a front-end (vhost_user.h). */
	int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	int ret;

	if (fd < 0)
		return -errno;
	netport_disconnect(p);
	vhost_backend_init(&p->b, fd, &netport_ops, p);
	if (p->epfd >= 0 && (ret = vhost_backend_watch(&p->b, p->epfd, p->vhost_kind)) < 0) {
		vhost_backend_close(&p->b);
		return ret;
	}
	/* One front-end at a time: the next is accepted once this one has gone. */
	listen_watch(p, EPOLL_CTL_DEL);
	p->connected = true;
	p->n.connects++;
	return 0;
}

void netport_listen_ready(struct netport *p)
{
	int ret;

	if (p->connected)
		return; /* an event from before it connected */
	ret = netport_accept(p);
	if (ret < 0 && ret != -EAGAIN)
		log_errno(ret, "port %u: accept", p->id);
}

void netport_vhost_ready(struct netport *p, const struct vhost_watch *w)
{
	int ret;

	if (!p->connected)
		return; /* dropped by an earlier event of this wake-up */
	if ((ret = vhost_backend_event(w)) < 0) {
		if (ret == -EPIPE)
			log_debug("port %u: %s", p->id, p->b.err);
		else
			log_warnx("port %u: front-end dropped: %s", p->id, p->b.err);
		netport_disconnect(p);
	}
}

static bool queue_usable(struct netport *p, unsigned q)
{
	return p->connected && p->b.q[q].started && !p->b.q[q].vq.broken;
}

unsigned netport_tx(struct netport *p, unsigned budget)
{
	/* Static: one thread, and a chain is 4 KiB of iovecs. */
	static struct virtq_chain c;
	uint8_t frame[VFR_FRAME_MAX];
	unsigned taken = 0;

	p->tx_pending = false;
	if (!queue_usable(p, NETPORT_TX))
		return 0;
	while (taken < budget) {
		int got = vhost_backend_pop(&p->b, NETPORT_TX, &c);
		uint64_t flen;

		if (got < 0) {
			log_warnx(
			    "port %u: the driver broke the transmit ring's rules; the queue stops "
			    "until it reconnects",
			    p->id);
			p->tx_broken = true;
			break;
		}
		if (got == 0)
			break;
		taken++;
		flen = c.out_len >= NETPORT_HDR_LEN ? c.out_len - NETPORT_HDR_LEN : 0;
		if (flen < 14 || flen > VFR_FRAME_MAX ||
		    virtq_chain_read(&c, NETPORT_HDR_LEN, frame, flen) != flen) {
			p->n.tx_bad++;
			vhost_backend_push(&p->b, NETPORT_TX, c.head, 0);
			continue;
		}
		/* Copied out: the chain goes back before the VFR sees the frame. */
		vhost_backend_push(&p->b, NETPORT_TX, c.head, 0);
		p->n.tx_frames++;
		p->input(p->ctx, p, frame, (size_t)flen);
	}
	if (taken == budget)
		p->tx_pending = true;
	if (taken)
		vhost_backend_notify(&p->b, NETPORT_TX);
	return taken;
}

int netport_rx(struct netport *p, const uint8_t *frame, size_t len)
{
	static struct virtq_chain c;
	/* No offloads: no flags, no GSO, one buffer per frame (virtio 1.2, 5.1.6.4). */
	static const uint8_t hdr[NETPORT_HDR_LEN] = {[10] = 1};
	int got;

	if (!queue_usable(p, NETPORT_RX) || (got = vhost_backend_pop(&p->b, NETPORT_RX, &c)) <= 0) {
		p->n.rx_no_buffer++;
		return -ENOBUFS;
	}
	if (c.in_len < NETPORT_HDR_LEN + len) {
		/* The chain goes back empty: the driver reuses it for the next frame. */
		p->n.rx_too_long++;
		vhost_backend_push(&p->b, NETPORT_RX, c.head, 0);
		p->rx_notify = true;
		return -EMSGSIZE;
	}
	virtq_chain_write(&c, 0, hdr, NETPORT_HDR_LEN);
	virtq_chain_write(&c, NETPORT_HDR_LEN, frame, len);
	vhost_backend_push(&p->b, NETPORT_RX, c.head, (uint32_t)(NETPORT_HDR_LEN + len));
	p->n.rx_frames++;
	p->rx_notify = true;
	return 0;
}

void netport_flush(struct netport *p)
{
	if (p->rx_notify && p->connected)
		vhost_backend_notify(&p->b, NETPORT_RX);
	p->rx_notify = false;
}
