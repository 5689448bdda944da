#include "net/netport.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/log.h"

#define VIRTIO_F_VERSION_1 32
#define CONFIG_LEN 12 /* mac, status, max_virtqueue_pairs, mtu */
/* TCP/IPv4's offloads: the VFR carries no IPv6. */
#define NETPORT_OFFLOADS                                                                            \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |                         \
	 (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |                    \
	 (1ULL << VIRTIO_NET_F_MRG_RXBUF))
#define FEATURE(f, bit) (((f) >> (bit)) & 1)

static int get_config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct netport *p = dev;
	/* Room for the fields of features not offered (speed, duplex, RSS): zeros. */
	uint8_t cfg[64] = {0};
	uint16_t status = VIRTIO_NET_S_LINK_UP, pairs = NETPORT_PAIRS_MAX, mtu = VFR_MTU;

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
	if (q == NETPORT_CTRL)
		p->ctrl_pending = true;
	else if (q & 1)
		p->tx_pending = true;
}

static const struct vhost_device_ops netport_ops = {
    .features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
		(1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_NET_F_MAC) |
		(1ULL << VIRTIO_NET_F_MTU) | (1ULL << VIRTIO_NET_F_STATUS) | NETPORT_OFFLOADS |
		(1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ),
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
	p->pairs = 1;
	pthread_mutex_init(&p->rx_lock, NULL);
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
	p->connected = p->tx_pending = p->ctrl_pending = p->tx_broken = false;
	p->rx_notify = 0;
	p->pairs = 1;
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
	pthread_mutex_destroy(&p->rx_lock);
}

/* The front-end is gone, or replaced: the next one's driver says its pairs anew. */
static void forget_pairs(struct netport *p)
{
	if (p->kept_pairs)
		*p->kept_pairs = 0;
}

int netport_accept(struct netport *p)
{
	/* One thread serves every port: the back-end never waits on a front-end (vhost_user.h). */
	int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	int ret;

	if (fd < 0)
		return -errno;
	if (p->connected)
		forget_pairs(p);
	netport_disconnect(p);
	/* A front-end back after this process restarted: its driver's pairs, as it said them. */
	if (p->kept_pairs && *p->kept_pairs >= 1 && *p->kept_pairs <= NETPORT_PAIRS_MAX)
		p->pairs = *p->kept_pairs;
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
	pthread_mutex_lock(&p->rx_lock);
	ret = netport_accept(p);
	pthread_mutex_unlock(&p->rx_lock);
	if (ret < 0 && ret != -EAGAIN)
		log_errno(ret, "port %u: accept", p->id);
}

void netport_vhost_ready(struct netport *p, const struct vhost_watch *w)
{
	int ret;

	if (!p->connected)
		return; /* dropped by an earlier event of this wake-up */
	pthread_mutex_lock(&p->rx_lock);
	if ((ret = vhost_backend_event(w)) < 0) {
		if (ret == -EPIPE)
			log_debug("port %u: %s", p->id, p->b.err);
		else
			log_warnx("port %u: front-end dropped: %s", p->id, p->b.err);
		forget_pairs(p);
		netport_disconnect(p);
	}
	pthread_mutex_unlock(&p->rx_lock);
}

static bool queue_usable(struct netport *p, unsigned q)
{
	return p->connected && p->b.q[q].started && !p->b.q[q].vq.broken;
}

static unsigned tx_queue(struct netport *p, unsigned q, unsigned budget)
{
	/* Not on the stack: a chain is 4 KiB of iovecs and a packet 64 KiB. */
	static _Thread_local struct virtq_chain c;
	static _Thread_local uint8_t packet[NETPORT_HDR_LEN + VFR_GSO_FRAME_MAX];
	unsigned taken = 0;

	if (!queue_usable(p, q))
		return 0;
	while (taken < budget) {
		int got = vhost_backend_pop(&p->b, q, &c);
		struct virtio_net_hdr h;
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
		/* Copied first: the header checked is the header used, whatever the driver does. */
		flen = c.out_len >= NETPORT_HDR_LEN + 14 && c.out_len <= sizeof(packet)
			   ? c.out_len - NETPORT_HDR_LEN
			   : 0;
		if (flen && virtq_chain_read(&c, 0, packet, NETPORT_HDR_LEN + flen) != NETPORT_HDR_LEN + flen)
			flen = 0;
		memcpy(&h, packet, sizeof(h));
		/* Copied out: the chain goes back before the VFR sees the frame. */
		vhost_backend_push(&p->b, q, c.head, 0);
		if (!flen || flen > VFR_GSO_FRAME_MAX ||
		    !virtio_net_tx_header_ok(&h, p->b.features, (size_t)flen)) {
			p->n.tx_bad++;
			continue;
		}
		p->n.tx_frames++;
		p->n.tx_by_pair[q / 2]++;
		if (offload_wanted(&h))
			p->n.tx_offloaded++;
		p->input(p->ctx, p, packet + NETPORT_HDR_LEN, (size_t)flen,
			 offload_wanted(&h) ? &h : NULL);
	}
	if (taken == budget)
		p->tx_pending = true;
	if (taken)
		vhost_backend_notify(&p->b, q);
	return taken;
}

/* The control queue: the number of queue pairs, and nothing else (no other CTRL_ feature). */
static void ctrl_serve(struct netport *p)
{
	static _Thread_local struct virtq_chain c;
	unsigned served = 0;
	int got;

	p->ctrl_pending = false;
	/* A ring's worth a round at most: a driver that keeps posting waits for the next one. */
	while (served < NETPORT_QUEUE_SIZE && queue_usable(p, NETPORT_CTRL) &&
	       (got = vhost_backend_pop(&p->b, NETPORT_CTRL, &c)) != 0) {
		uint8_t cmd[4], ack = VIRTIO_NET_ERR;
		uint16_t pairs;
		uint64_t len;

		if (got < 0) {
			log_warnx("port %u: the driver broke the control ring's rules", p->id);
			break;
		}
		/* class, command, then the command's data; the device writes one byte back. */
		len = c.out_len == sizeof(cmd) ? virtq_chain_read(&c, 0, cmd, sizeof(cmd)) : 0;
		if (virtio_net_ctrl_pairs_set(cmd, len, p->b.features, NETPORT_PAIRS_MAX, &pairs)) {
			p->pairs = pairs;
			if (p->kept_pairs)
				*p->kept_pairs = pairs;
			ack = VIRTIO_NET_OK;
		}
		if (c.in_len >= 1)
			virtq_chain_write(&c, 0, &ack, 1);
		vhost_backend_push(&p->b, NETPORT_CTRL, c.head, c.in_len >= 1 ? 1 : 0);
		served++;
	}
	if (served == NETPORT_QUEUE_SIZE)
		p->ctrl_pending = true;
	if (served)
		vhost_backend_notify(&p->b, NETPORT_CTRL);
}

unsigned netport_tx(struct netport *p, unsigned budget)
{
	unsigned taken = 0;

	p->tx_pending = false;
	if (p->ctrl_pending) {
		/* The pair count it sets is what netport_rx picks queues by. */
		pthread_mutex_lock(&p->rx_lock);
		ctrl_serve(p);
		pthread_mutex_unlock(&p->rx_lock);
	}
	/* Every transmit queue the driver started, whatever it said of pairs: a frame is a frame. */
	for (unsigned q = NETPORT_TX; q < NETPORT_CTRL && !p->tx_broken; q += 2)
		taken += tx_queue(p, q, budget);
	return taken;
}

/* Writes bytes [off, off + n) of header-then-frame into chain c at its offset at. */
static void write_span(struct virtq_chain *c, uint64_t at, const uint8_t *hdr, const uint8_t *frame,
		       size_t off, size_t n)
{
	if (off < NETPORT_HDR_LEN) {
		size_t h = NETPORT_HDR_LEN - off < n ? NETPORT_HDR_LEN - off : n;

		virtq_chain_write(c, at, hdr + off, h);
		at += h, off += h, n -= h;
	}
	if (n)
		virtq_chain_write(c, at, frame + (off - NETPORT_HDR_LEN), n);
}

/*
 * Puts the header h and frame[0, len) into the receive queue: one chain,
 * or with MRG_RXBUF as many as it takes (none taken when there are too
 * few: they go back for the next frame).
 */
static int rx_put(struct netport *p, unsigned q, const uint8_t *frame, size_t len,
		  struct virtio_net_hdr *h)
{
	static _Thread_local struct virtq_chain c;
	bool mergeable = FEATURE(p->b.features, VIRTIO_NET_F_MRG_RXBUF);
	uint16_t heads[VIRTIO_NET_RX_CHAINS_MAX];
	uint32_t lens[VIRTIO_NET_RX_CHAINS_MAX];
	size_t total = NETPORT_HDR_LEN + len, off = 0;
	unsigned n = 0;
	int got;

	h->num_buffers = 1; /* more: written into the first chain once all are filled */
	if (!queue_usable(p, q)) {
		p->n.rx_no_buffer++;
		return -ENOBUFS;
	}
	while (off < total) {
		size_t chunk;

		if (n == VIRTIO_NET_RX_CHAINS_MAX || (got = vhost_backend_pop(&p->b, q, &c)) <= 0) {
			while (n--)
				vhost_backend_unpop(&p->b, q);
			p->n.rx_no_buffer++;
			return -ENOBUFS;
		}
		chunk = c.in_len < total - off ? (size_t)c.in_len : total - off;
		if ((!mergeable && chunk < total) || (n == 0 && chunk < NETPORT_HDR_LEN)) {
			/* Too short for what the driver said it takes: it goes back empty. */
			while (n--)
				vhost_backend_unpop(&p->b, q);
			vhost_backend_push(&p->b, q, c.head, 0);
			p->n.rx_too_long++;
			p->rx_notify |= 1u << (q / 2);
			return -EMSGSIZE;
		}
		write_span(&c, 0, (const uint8_t *)h, frame, off, chunk);
		heads[n] = c.head;
		lens[n++] = (uint32_t)chunk;
		off += chunk;
	}
	if (n > 1) {
		/* The count goes into the first chain, which the loop no longer holds. */
		uint16_t count = (uint16_t)n;

		if (virtq_chain_at(&p->b.q[q].vq, heads[0], &c) < 0)
			return -EINVAL;
		virtq_chain_write(&c, offsetof(struct virtio_net_hdr, num_buffers), &count, sizeof(count));
	}
	for (unsigned i = 0; i < n; i++)
		vhost_backend_push(&p->b, q, heads[i], lens[i]);
	p->n.rx_frames++;
	p->n.rx_by_pair[q / 2]++;
	p->rx_notify |= 1u << (q / 2);
	return 0;
}

struct cut {
	struct netport *p;
	unsigned q;
	int ret;
};

static void rx_segment(void *ctx, const uint8_t *frame, size_t len)
{
	struct cut *k = ctx;
	struct virtio_net_hdr none = {0};
	int ret = rx_put(k->p, k->q, frame, len, &none);

	if (ret < 0)
		k->ret = ret;
}

/*
 * The receive queue for a frame: the pair its IPv4 flow hashes to, the
 * same for both directions and for every frame of a flow (so a flow's
 * frames stay in order); pair 0 for the rest.
 */
static unsigned rx_queue(const struct netport *p, const uint8_t *f, size_t len)
{
	uint32_t h, ports = 0;
	size_t ihl;

	if (p->pairs <= 1 || !FEATURE(p->b.features, VIRTIO_NET_F_MQ) || len < 34 || f[12] != 0x08 ||
	    f[13] != 0x00)
		return NETPORT_RX;
	ihl = (size_t)(f[14] & 0xf) * 4;
	if ((f[23] == 6 || f[23] == 17) && !((f[20] << 8 | f[21]) & 0x3fff) && len >= 14 + ihl + 4)
		ports = (uint32_t)(f[14 + ihl] << 8 | f[15 + ihl]) ^ (uint32_t)(f[16 + ihl] << 8 | f[17 + ihl]);
	h = ((uint32_t)f[26] << 24 | f[27] << 16 | f[28] << 8 | f[29]) ^
	    ((uint32_t)f[30] << 24 | f[31] << 16 | f[32] << 8 | f[33]) ^ ports ^ f[23];
	h *= 0x9e3779b1u; /* the high bits mixed from all of them */
	return 2 * ((h >> 16) % p->pairs);
}

int netport_rx_locked(struct netport *p, const uint8_t *frame, size_t len,
		      const struct virtio_net_hdr *off)
{
	/* A segment cut, or a frame whose checksum is completed. */
	static _Thread_local uint8_t buf[VFR_GSO_FRAME_MAX];
	struct virtio_net_hdr h = {0};
	unsigned q = rx_queue(p, frame, len);

	if (!offload_wanted(off))
		return rx_put(p, q, frame, len, &h);
	if (virtio_net_rx_header_ok(off, p->b.features, len)) {
		h = *off;
		p->n.rx_offloaded++;
		return rx_put(p, q, frame, len, &h);
	}
	/* The driver does not take it: done here, as a NIC without the offload would need. */
	if (off->gso_type == VIRTIO_NET_HDR_GSO_TCPV4) {
		struct cut k = {p, q, 0};

		if (offload_tcp4_segment(frame, len, off->gso_size, buf, 14 + VFR_MTU, rx_segment, &k) < 0) {
			p->n.rx_too_long++; /* the VFR checked it: not reached */
			return -EMSGSIZE;
		}
		p->n.rx_cut++;
		return k.ret;
	}
	if (len > sizeof(buf) || off->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		p->n.rx_too_long++;
		return -EMSGSIZE;
	}
	memcpy(buf, frame, len);
	if (offload_csum_complete(buf, len, off->csum_start, off->csum_offset) < 0) {
		p->n.rx_too_long++;
		return -EMSGSIZE;
	}
	p->n.rx_csum_done++;
	return rx_put(p, q, buf, len, &h);
}

int netport_rx(struct netport *p, const uint8_t *frame, size_t len, const struct virtio_net_hdr *off)
{
	int ret;

	pthread_mutex_lock(&p->rx_lock);
	ret = netport_rx_locked(p, frame, len, off);
	pthread_mutex_unlock(&p->rx_lock);
	return ret;
}

void netport_flush(struct netport *p)
{
	pthread_mutex_lock(&p->rx_lock);
	for (unsigned i = 0; i < NETPORT_PAIRS_MAX && p->connected; i++)
		if (p->rx_notify & (1u << i))
			vhost_backend_notify(&p->b, 2 * i);
	p->rx_notify = 0;
	pthread_mutex_unlock(&p->rx_lock);
}
