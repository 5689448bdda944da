#include "devices/vhost_user_blk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "vmm/vm.h"

#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define CONFIG_WRITEBACK 32 /* the one writable byte of config space */
#define CONFIG_NUM_QUEUES 34 /* le16 */
/* The device features a guest may see; multiqueue only when the device has more than one. */
#define BLK_FEATURES_PASSED ((1ULL << 2) | (1ULL << 4) | (1ULL << 5) | (1ULL << 6) | (1ULL << 9) | \
			     (1ULL << 10) | (1ULL << 11) | (1ULL << 13) | (1ULL << 14))

unsigned vhost_user_blk_queue_count(unsigned wanted, uint64_t backend_features,
				    unsigned backend_queues)
{
	unsigned n = wanted ? wanted : 1;

	if (!(backend_features & (1ULL << VIRTIO_BLK_F_MQ)))
		return 1;
	if (n > backend_queues)
		n = backend_queues;
	if (n > VIRTIO_MAX_QUEUES)
		n = VIRTIO_MAX_QUEUES;
	return n ? n : 1;
}

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
	if (d->u.connected && d->u.started &&
	    vhost_frontend_set_config(&d->u.fe, CONFIG_WRITEBACK, data, 1, err, sizeof(err)) < 0)
		log_warnx("vhost-user-blk %s: cache mode: %s", d->u.path, err);
}

/*
 * A back-end that restarted must learn the guest's cache mode again; one
 * that serves fewer queues than the device has cannot take them over.
 */
static int prepare(struct vhost_user_dev *u, char *err, size_t errlen)
{
	struct vhost_user_blk *d = u->vdev.priv;

	if (vhost_user_blk_queue_count(u->nqueues, u->fe.features, u->fe.max_queues) < u->nqueues) {
		snprintf(err, errlen, "the back-end serves %u queues, the device has %u",
			 u->fe.features & (1ULL << VIRTIO_BLK_F_MQ) ? u->fe.max_queues : 1, u->nqueues);
		return -EINVAL;
	}
	if (!(u->vdev.driver_features & (1ULL << VIRTIO_BLK_F_CONFIG_WCE)))
		return 0;
	return vhost_frontend_set_config(&u->fe, CONFIG_WRITEBACK, &d->config[CONFIG_WRITEBACK], 1,
					 err, errlen);
}

static const struct vhost_user_dev_hooks blk_hooks = {
	.kind = "vhost-user-blk",
	.inflight = true,
	.prepare = prepare,
};

static const struct virtio_device_ops vhost_user_blk_ops = {
	.name = "vhost-user-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x010000, /* mass storage, SCSI (as QEMU's virtio-blk) */
	.nqueues = 1,
	.queue_size = 256,
	.config_size = VHOST_USER_BLK_CONFIG,
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = vhost_user_dev_queue_notify,
	.reset = vhost_user_dev_reset,
	.driver_ok = vhost_user_dev_driver_ok,
	.backend_kicks = true,
	.irqfds_changed = vhost_user_dev_irqfds_changed,
};

int vhost_user_blk_add(struct vm *vm, struct vhost_user_blk *d, const char *path, unsigned nqueues)
{
	char err[256];
	uint64_t features;
	int ret;

	memset(d, 0, sizeof(*d));
	/* Eventfds for as many queues as asked; the back-end may serve fewer (below). */
	if ((ret = vhost_user_dev_open(&d->u, path, nqueues ? nqueues : 1, &blk_hooks, err,
				       sizeof(err))) < 0 ||
	    (ret = vhost_frontend_get_config(&d->u.fe, d->config, sizeof(d->config), err,
					     sizeof(err))) < 0) {
		log_warnx("disk %s: %s", path, err);
		vhost_user_dev_close(&d->u);
		return ret;
	}
	d->u.nqueues = vhost_user_blk_queue_count(nqueues, d->u.fe.features, d->u.fe.max_queues);
	if (d->u.nqueues < nqueues)
		log_info("disk %s: the back-end serves %u queues of the %u asked for", path,
			 d->u.nqueues, nqueues);
	/* The guest reads our queue count, never the back-end's larger one. */
	d->config[CONFIG_NUM_QUEUES] = (uint8_t)d->u.nqueues;
	d->config[CONFIG_NUM_QUEUES + 1] = (uint8_t)(d->u.nqueues >> 8);
	features = d->u.fe.features & BLK_FEATURES_PASSED;
	if (d->u.nqueues > 1)
		features |= 1ULL << VIRTIO_BLK_F_MQ;
	return vhost_user_dev_add(vm, &d->u, &vhost_user_blk_ops, d, features);
}

void vhost_user_blk_destroy(struct vhost_user_blk *d)
{
	vhost_user_dev_destroy(&d->u);
}
