#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/virtio_net.h"
#include "lib/log.h"
#include "vmm/vm.h"

/* What the guest may see of the back-end's features; MAC is ours, from the domain's config. */
#define NET_FEATURES_PASSED                                                                         \
	((1ULL << VIRTIO_NET_F_MTU) | (1ULL << VIRTIO_NET_F_STATUS) | VIRTIO_NET_OFFLOADS |           \
	 NET_FEATURES_MQ)
/*
 * Several queue pairs: the back-end serves the control queue as well (the
 * number of pairs the driver uses is all it says there), so the device
 * has its queues as the back-end counts them, the control queue last.
 */
#define NET_FEATURES_MQ ((1ULL << VIRTIO_NET_F_MQ) | (1ULL << VIRTIO_NET_F_CTRL_VQ))
#define NET_PAIRS_MAX ((VIRTIO_MAX_QUEUES - 1) / 2)

static struct vhost_user_net *of(struct virtio_dev *vd)
{
	return vd->priv;
}

static void config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	memcpy(data, (const uint8_t *)&of(vd)->config + off, len);
}

/* Nothing in a virtio-net config space is the driver's to write (MAC is ours). */
static void config_write(struct virtio_dev *vd, unsigned off, const void *data, unsigned len)
{
	(void)vd, (void)off, (void)data, (void)len;
}

/*
 * No inflight area: a frame a dead back-end took and never completed is
 * taken again by the next one (sent twice, or a receive buffer used
 * again); the network above already copes with duplicates and loss.
 */
static const struct vhost_user_dev_hooks net_hooks = {
	.kind = "vhost-user-net",
	.inflight = false,
};

static const struct virtio_device_ops vhost_user_net_ops = {
	.name = "vhost-user-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = 0x020000, /* network, Ethernet */
	.nqueues = 2,
	.queue_size = VIRTIO_NET_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_net_config),
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = vhost_user_dev_queue_notify,
	.reset = vhost_user_dev_reset,
	.driver_ok = vhost_user_dev_driver_ok,
	.backend_kicks = true,
	.irqfds_changed = vhost_user_dev_irqfds_changed,
};

int vhost_user_net_add(struct vm *vm, struct vhost_user_net *n, const char *path,
		       const uint8_t mac[6])
{
	struct virtio_net_config be = {0};
	char err[256];
	uint64_t features;
	uint16_t pairs;
	int ret;

	memset(n, 0, sizeof(*n));
	if ((ret = vhost_user_dev_open(&n->u, path, 2 * NET_PAIRS_MAX + 1, &net_hooks, err,
				       sizeof(err))) < 0 ||
	    ((n->u.fe.features & ((1ULL << VIRTIO_NET_F_MTU) | NET_FEATURES_MQ)) &&
	     (ret = vhost_frontend_get_config(&n->u.fe, &be, sizeof(be), err, sizeof(err))) < 0)) {
		log_warnx("network %s: %s", path, err);
		vhost_user_dev_close(&n->u);
		return ret;
	}
	features = (n->u.fe.features & NET_FEATURES_PASSED) | (1ULL << VIRTIO_NET_F_MAC);
	pairs = be.max_virtqueue_pairs < NET_PAIRS_MAX ? be.max_virtqueue_pairs : NET_PAIRS_MAX;
	if ((features & NET_FEATURES_MQ) != NET_FEATURES_MQ || pairs < 2 ||
	    n->u.fe.max_queues < 2u * pairs + 1) {
		features &= ~NET_FEATURES_MQ;
		pairs = 1;
	}
	n->u.nqueues = pairs > 1 ? 2u * pairs + 1 : 2;
	memcpy(n->config.mac, mac, 6);
	n->config.status = VIRTIO_NET_S_LINK_UP;
	n->config.max_virtqueue_pairs = pairs;
	n->config.mtu = (features & (1ULL << VIRTIO_NET_F_MTU)) ? be.mtu : 1500;
	return vhost_user_dev_add(vm, &n->u, &vhost_user_net_ops, n, features);
}

void vhost_user_net_destroy(struct vhost_user_net *n)
{
	vhost_user_dev_destroy(&n->u);
}
