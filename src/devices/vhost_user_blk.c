#include "devices/vhost_user_blk.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/vm.h"

#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define CONFIG_WRITEBACK 32 /* the one writable byte of config space */
/* The device features a guest may see: all but multiqueue (one queue here). */
#define BLK_FEATURES_PASSED ((1ULL << 2) | (1ULL << 4) | (1ULL << 5) | (1ULL << 6) | (1ULL << 9) | \
			     (1ULL << 10) | (1ULL << 11) | (1ULL << 13) | (1ULL << 14))

static struct vhost_user_blk *of(struct virtio_dev *vd)
{
	return vd->priv;
}

static void config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	memcpy(data, of(vd)->config + off, len);
}

/* The guest's cache mode (writeback or write-through): kept, and told to the back-end. */
static void config_write(struct virtio_dev *vd, unsigned off, const void *data, unsigned len)
{
	struct vhost_user_blk *d = of(vd);
	char err[256];

	if (off != CONFIG_WRITEBACK || len != 1 || *(const uint8_t *)data > 1 ||
	    !(vd->driver_features & (1ULL << VIRTIO_BLK_F_CONFIG_WCE)))
		return;
	d->config[CONFIG_WRITEBACK] = *(const uint8_t *)data;
	if (d->connected && d->started &&
	    vhost_frontend_set_config(&d->fe, CONFIG_WRITEBACK, data, 1, err, sizeof(err)) < 0)
		log_warnx("vhost-user-blk %s: cache mode: %s", d->path, err);
}

static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	uint64_t one = 1;

	if (q == 0 && of(vd)->started && write(of(vd)->kick_fd, &one, 8) < 0)
		log_warn("vhost-user-blk: kick");
}

static void stop(struct vhost_user_blk *d)
{
	if (d->started && d->connected && vhost_frontend_stop_queue(&d->fe, 0) < 0)
		log_warnx("vhost-user-blk: the back-end did not stop its queue");
	d->started = false;
}

/* Hands the back-end memory, inflight area and queue 0. Lock held. */
static int start_backend(struct vhost_user_blk *d, char *err, size_t errlen)
{
	struct virtio_dev *vd = &d->vdev;
	struct virtq *vq = &vd->vqs[0];
	uint16_t *used_idx = gmem_ptr(&vd->vm->mem, vq->used_gpa + 2, 2);
	int ret;

	if (!used_idx) {
		snprintf(err, errlen, "the used ring is outside guest memory");
		return -EFAULT;
	}
	if ((ret = vhost_frontend_setup(&d->fe, vd->driver_features, &vd->vm->mem, err, errlen)) < 0 ||
	    /* A back-end that restarted must learn the guest's cache mode again. */
	    ((vd->driver_features & (1ULL << VIRTIO_BLK_F_CONFIG_WCE)) &&
	     (ret = vhost_frontend_set_config(&d->fe, CONFIG_WRITEBACK, &d->config[CONFIG_WRITEBACK], 1,
					      err, errlen)) < 0) ||
	    (ret = vhost_frontend_inflight(&d->fe, vq->size, &d->inflight_fd, &d->inflight_size, err,
					   errlen)) < 0)
		return ret;
	/* What the driver sees completed; a back-end with an inflight area knows the rest. */
	return vhost_frontend_start_queue(&d->fe, &vd->vm->mem, 0, vq->size, vq->desc_gpa,
					  vq->avail_gpa, vq->used_gpa, *used_idx, d->kick_fd,
					  d->call_fd, err, errlen);
}

static void reset(struct virtio_dev *vd)
{
	stop(of(vd));
}

static void driver_ok(struct virtio_dev *vd)
{
	struct vhost_user_blk *d = of(vd);
	char err[256];

	if (!vd->vqs[0].enabled) {
		virtio_needs_reset(vd, "DRIVER_OK without queue 0");
		return;
	}
	d->started = true;
	/* Without a back-end now, the next one is handed the queue when it comes. */
	if (d->connected && start_backend(d, err, sizeof(err)) < 0)
		log_warnx("vhost-user-blk %s: %s; waiting for the back-end to come back", d->path, err);
}

/* The back-end went away: forget its connection, keep everything the guest sees. */
static void backend_lost(struct vhost_user_blk *d)
{
	pthread_mutex_lock(&d->vdev.lock);
	vhost_frontend_close(&d->fe);
	d->connected = false;
	pthread_mutex_unlock(&d->vdev.lock);
	log_warnx("vhost-user-blk %s: the back-end went away; waiting for it", d->path);
}

/* A back-end listens again: negotiate and hand it the running queue. */
static bool backend_back(struct vhost_user_blk *d)
{
	struct vhost_frontend fe;
	char err[256];
	bool ok = true;

	if (vhost_frontend_connect(&fe, d->path, err, sizeof(err)) < 0)
		return false;
	pthread_mutex_lock(&d->vdev.lock);
	d->fe = fe;
	d->connected = true;
	if (d->started && start_backend(d, err, sizeof(err)) < 0) {
		vhost_frontend_close(&d->fe);
		d->connected = false;
		ok = false;
	}
	pthread_mutex_unlock(&d->vdev.lock);
	if (ok) {
		d->reconnects++;
		log_info("vhost-user-blk %s: the back-end is back (reconnect %u)", d->path, d->reconnects);
	}
	return ok;
}

/*
 * Calls from the back-end become the queue's interrupt; a back-end that
 * hangs up is waited for and reconnected.
 */
static void *call_thread(void *arg)
{
	struct vhost_user_blk *d = arg;

	for (;;) {
		struct pollfd p[3] = {{.fd = d->call_fd, .events = POLLIN},
				      {.fd = d->stop_fd, .events = POLLIN},
				      {.fd = d->connected ? d->fe.sock : -1, .events = POLLRDHUP}};
		uint64_t v;

		if (poll(p, 3, d->connected ? -1 : 20) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		if ((p[0].revents & POLLIN) && read(d->call_fd, &v, sizeof(v)) == sizeof(v)) {
			pthread_mutex_lock(&d->vdev.lock);
			virtio_queue_signal(&d->vdev, 0);
			pthread_mutex_unlock(&d->vdev.lock);
		}
		if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
			backend_lost(d);
		if (!d->connected)
			backend_back(d);
	}
}

static const struct virtio_device_ops vhost_user_blk_ops = {
	.name = "vhost-user-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x010000, /* mass storage, SCSI (as QEMU's virtio-blk) */
	.nqueues = 1,
	.queue_size = 256,
	.config_size = VHOST_USER_BLK_CONFIG,
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = queue_notify,
	.reset = reset,
	.driver_ok = driver_ok,
};

int vhost_user_blk_add(struct vm *vm, struct vhost_user_blk *d, const char *path)
{
	char err[256];
	int ret;

	memset(d, 0, sizeof(*d));
	d->kick_fd = d->call_fd = d->stop_fd = d->inflight_fd = -1;
	snprintf(d->path, sizeof(d->path), "%s", path);
	if (vm->mem.fd < 0) {
		log_warnx("disk %s: vhost-user needs guest memory in a memfd", path);
		return -EINVAL;
	}
	if ((ret = vhost_frontend_connect(&d->fe, path, err, sizeof(err))) < 0 ||
	    (ret = vhost_frontend_get_config(&d->fe, d->config, sizeof(d->config), err,
					     sizeof(err))) < 0) {
		log_warnx("disk %s: %s", path, err);
		vhost_frontend_close(&d->fe);
		return ret;
	}
	/* One queue: the guest must not read a larger num_queues from config space. */
	d->config[34] = 1;
	d->config[35] = 0;
	d->connected = true;
	d->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->kick_fd < 0 || d->call_fd < 0 || d->stop_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = virtio_pci_add(vm, &d->vdev, &vhost_user_blk_ops, d, d->fe.features & BLK_FEATURES_PASSED);
	if (ret < 0)
		goto fail;
	if (pthread_create(&d->thread, NULL, call_thread, d) != 0) {
		ret = -EAGAIN;
		goto fail;
	}
	d->active = true;
	return 0;
fail:
	if (d->kick_fd >= 0)
		close(d->kick_fd);
	if (d->call_fd >= 0)
		close(d->call_fd);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	vhost_frontend_close(&d->fe);
	return ret;
}

void vhost_user_blk_destroy(struct vhost_user_blk *d)
{
	uint64_t one = 1;

	if (!d->active)
		return;
	if (write(d->stop_fd, &one, 8) < 0)
		log_warn("vhost-user-blk: stop");
	pthread_join(d->thread, NULL);
	vhost_frontend_close(&d->fe);
	close(d->kick_fd);
	close(d->call_fd);
	close(d->stop_fd);
	if (d->inflight_fd >= 0)
		close(d->inflight_fd);
	d->active = false;
}
