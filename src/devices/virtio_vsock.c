/*
 * virtio-vsock with the hybrid back-end: a device thread does all the work
 * (the back-end connects to host sockets, which a vCPU thread may not), so
 * a notify only wakes it. It holds the device's lock while it moves
 * packets; no call it makes under it blocks (host sockets are non-blocking).
 */
#include "devices/virtio_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/unix_socket.h"
#include "vmm/confine.h"

#define VSOCK_BUDGET 256 /* packets per queue per turn, before the sockets are polled again */
#define VSOCK_TURNS 8    /* turns per wake-up; with work left the thread wakes itself */

static struct virtio_vsock *of(struct virtio_dev *vd)
{
	return vd->priv;
}

static void wake(struct virtio_vsock *v)
{
	uint64_t one = 1;

	if (write(v->wake_fd, &one, 8) < 0 && errno != EAGAIN)
		log_warn("virtio-vsock: wake");
}

static void config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	uint8_t cfg[VIRTIO_VSOCK_CONFIG_LEN];
	uint64_t cid = of(vd)->cid;

	for (unsigned i = 0; i < sizeof(cfg); i++, cid >>= 8)
		cfg[i] = (uint8_t)cid;
	memcpy(data, cfg + off, len);
}

static void config_write(struct virtio_dev *vd, unsigned off, const void *data, unsigned len)
{
	(void)vd, (void)off, (void)data, (void)len; /* guest_cid is read-only */
}

/* The driver's kick, from the VM's I/O thread (KVM signalled the queue's kick eventfd). */
static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	(void)q;
	wake(of(vd));
}

static void driver_ok(struct virtio_dev *vd)
{
	wake(of(vd));
}

static void reset(struct virtio_dev *vd)
{
	struct virtio_vsock *v = of(vd);

	/* The thread closes the connections: it is the one polling their descriptors. */
	v->reset_pending = true;
	wake(v);
}

/* The guest's packets, at most a budget of them; whether any was taken. */
static bool serve_tx(struct virtio_vsock *v)
{
	struct virtio_dev *vd = &v->vdev;
	struct virtq *vq = &vd->vqs[VIRTIO_VSOCK_TX];
	struct virtq_chain c;
	unsigned n = 0;
	int r = 0;

	while (n < VSOCK_BUDGET && (r = virtq_pop_avail(vq, &c)) == 1) {
		uint64_t got = virtq_chain_read(&c, 0, v->bounce, VSOCK_HDR_LEN + VSOCK_MAX_PKT);

		/* A buffer too short for a header is no packet: returned, nothing answered. */
		if (got >= VSOCK_HDR_LEN)
			vsock_hybrid_from_guest(&v->hybrid, v->bounce, v->bounce + VSOCK_HDR_LEN,
						(uint32_t)(got - VSOCK_HDR_LEN));
		else
			v->hybrid.count.bad_header++;
		if (virtq_push_used(vq, c.head, 0) < 0)
			break;
		n++;
	}
	if (r < 0 || vq->broken)
		virtio_needs_reset(vd, "transmit queue broken");
	if (n)
		virtio_queue_interrupt(vd, VIRTIO_VSOCK_TX);
	return n > 0;
}

/* Packets owed to the guest, while it has buffers for them; whether any was delivered. */
static bool serve_rx(struct virtio_vsock *v)
{
	struct virtio_dev *vd = &v->vdev;
	struct virtq *vq = &vd->vqs[VIRTIO_VSOCK_RX];
	struct virtq_chain c;
	unsigned n = 0;
	int r = 0;

	while (n < VSOCK_BUDGET && vsock_hybrid_rx_pending(&v->hybrid) &&
	       (r = virtq_pop_avail(vq, &c)) == 1) {
		uint64_t room = c.in_len > VSOCK_HDR_LEN ? c.in_len - VSOCK_HDR_LEN : 0;
		int len;

		if (c.in_len < VSOCK_HDR_LEN) {
			virtio_needs_reset(vd, "receive buffer shorter than a packet header");
			return n > 0;
		}
		if (room > VSOCK_MAX_PKT)
			room = VSOCK_MAX_PKT;
		len = vsock_hybrid_to_guest(&v->hybrid, v->bounce, v->bounce + VSOCK_HDR_LEN,
					    (uint32_t)room);
		if (len < 0) {
			virtq_unpop_avail(vq); /* nothing after all: the buffer waits for the next packet */
			break;
		}
		virtq_chain_write(&c, 0, v->bounce, VSOCK_HDR_LEN + (uint64_t)len);
		if (virtq_push_used(vq, c.head, VSOCK_HDR_LEN + (uint32_t)len) < 0)
			break;
		n++;
	}
	if (r < 0 || vq->broken)
		virtio_needs_reset(vd, "receive queue broken");
	if (n)
		virtio_queue_interrupt(vd, VIRTIO_VSOCK_RX);
	return n > 0;
}

void virtio_vsock_serve(struct virtio_vsock *v)
{
	bool more = true;

	if (v->reset_pending) {
		vsock_hybrid_reset(&v->hybrid);
		v->reset_pending = false;
	}
	for (unsigned turn = 0; more && turn < VSOCK_TURNS; turn++) {
		if (!virtio_driver_ready(&v->vdev))
			return;
		more = serve_tx(v);
		more |= serve_rx(v);
	}
	if (more)
		wake(v); /* work left after our turns: the sockets' turn, then ours again */
}

static void *vsock_thread(void *arg)
{
	struct virtio_vsock *v = arg;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("virtio-vsock: cannot load the device thread's system-call filter");
		return NULL;
	}
	for (;;) {
		struct pollfd p[VSOCK_MAX_CONNS + 2];
		unsigned n;
		uint64_t val;

		pthread_mutex_lock(&v->vdev.lock);
		if (v->reset_pending) {
			vsock_hybrid_reset(&v->hybrid);
			v->reset_pending = false;
		}
		n = vsock_hybrid_poll_fds(&v->hybrid, p + 1, VSOCK_MAX_CONNS + 1);
		pthread_mutex_unlock(&v->vdev.lock);
		p[0] = (struct pollfd){.fd = v->wake_fd, .events = POLLIN};
		if (poll(p, n + 1, -1) < 0)
			continue;
		if ((p[0].revents & POLLIN) && read(v->wake_fd, &val, sizeof(val)) < 0 && errno != EAGAIN)
			log_warn("virtio-vsock: wake");
		pthread_mutex_lock(&v->vdev.lock);
		if (v->stopping) {
			pthread_mutex_unlock(&v->vdev.lock);
			return NULL;
		}
		vsock_hybrid_poll_ready(&v->hybrid, p + 1, n);
		virtio_vsock_serve(v);
		pthread_mutex_unlock(&v->vdev.lock);
	}
}

const struct virtio_device_ops virtio_vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.pci_class = 0x078000, /* communication, other */
	.nqueues = 3,
	.queue_size = VIRTIO_VSOCK_QUEUE_SIZE,
	.config_size = VIRTIO_VSOCK_CONFIG_LEN,
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = queue_notify,
	.reset = reset,
	.driver_ok = driver_ok,
};

int virtio_vsock_listen(const struct vsock_config *cfg, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	/* Only a stale socket is replaced: a typo must not delete someone's file. */
	if (lstat(cfg->socket, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "vsock socket %s exists and is not a socket", cfg->socket);
		return -EEXIST;
	}
	fd = unix_listen(cfg->socket, SOCK_STREAM, 16);
	if (fd < 0)
		snprintf(err, errlen, "vsock socket %s: %s", cfg->socket, strerror(-fd));
	return fd;
}

int virtio_vsock_add(struct vm *vm, struct virtio_vsock *v, const struct vsock_config *cfg,
		     int listen_fd)
{
	int lfd = -1, ret;

	memset(v, 0, sizeof(*v));
	v->cid = cfg->cid;
	v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->wake_fd < 0)
		return -errno;
	v->bounce = malloc(VSOCK_HDR_LEN + VSOCK_MAX_PKT);
	if (!v->bounce) {
		ret = -ENOMEM;
		goto fail;
	}
	if (listen_fd >= 0 && (lfd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		ret = -errno;
		goto fail;
	}
	if ((ret = vsock_hybrid_init(&v->hybrid, cfg->cid, cfg->socket, lfd)) < 0) {
		if (lfd >= 0)
			close(lfd);
		goto fail;
	}
	if ((ret = virtio_pci_add(vm, &v->vdev, &virtio_vsock_ops, v, 0)) < 0)
		goto fail_hybrid;
	if (pthread_create(&v->thread, NULL, vsock_thread, v) != 0) {
		ret = -EAGAIN;
		goto fail_hybrid;
	}
	v->active = true;
	return 0;
fail_hybrid:
	vsock_hybrid_close(&v->hybrid);
fail:
	free(v->bounce);
	v->bounce = NULL;
	close(v->wake_fd);
	v->wake_fd = -1;
	return ret;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v->active)
		return;
	pthread_mutex_lock(&v->vdev.lock);
	v->stopping = true;
	pthread_mutex_unlock(&v->vdev.lock);
	wake(v);
	pthread_join(v->thread, NULL);
	vsock_hybrid_close(&v->hybrid);
	close(v->wake_fd);
	free(v->bounce);
	v->bounce = NULL;
	v->active = false;
}
