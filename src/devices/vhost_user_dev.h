/*
 * What every vhost-user device of the VMM shares (vhost_user_blk.c,
 * vhost_user_net.c): the VMM keeps the PCI transport and hands the back-end
 * guest memory, the rings and the queues' eventfds; KVM signals the kick
 * eventfd on the driver's notify and turns the back-end's call into the
 * queue's MSI-X interrupt, so the VMM is not on the I/O path. When the back-end dies, a
 * thread waits for its successor on the same socket and hands it the same
 * memory and rings (and, for devices that keep one, the same inflight
 * area): the guest sees a pause.
 */
#ifndef DOMUS_VHOST_USER_DEV_H
#define DOMUS_VHOST_USER_DEV_H

#include <pthread.h>
#include <stdbool.h>

#include "devices/virtio_pci.h"
#include "vhost/frontend.h"

struct vhost_user_dev;

struct vhost_user_dev_hooks {
	const char *kind; /* "vhost-user-blk", for messages */
	/*
	 * Requests taken by a back-end that died are finished by its successor
	 * (the inflight area); without it a queue restarts from what the driver
	 * sees completed, and what was taken is taken again.
	 */
	bool inflight;
	/* A (new) back-end is about to get the queues: what it must learn again. May be NULL. */
	int (*prepare)(struct vhost_user_dev *u, char *err, size_t errlen);
};

struct vhost_user_dev {
	struct virtio_dev vdev;
	struct vhost_frontend fe;
	const struct vhost_user_dev_hooks *hooks;
	char path[108];
	unsigned nqueues;
	/*
	 * The queues' kick and call eventfds are vdev's: the same ones for
	 * every back-end that comes, and the ones KVM signals (ioeventfd) and
	 * delivers (irqfd), so a kick and a completion go between the guest
	 * and the back-end without the VMM.
	 */
	int stop_fd;
	int rescan_fd; /* the transport re-bound irqfds: the call thread looks again */
	int inflight_fd; /* kept across back-end restarts */
	uint64_t inflight_size;
	bool started;	/* the driver set DRIVER_OK and the queues run */
	bool connected; /* a back-end process serves us now */
	unsigned reconnects;
	pthread_t thread;
	bool active;
};

/* Connects to the back-end at path and makes the eventfds; 0 or -errno with why in err. */
int vhost_user_dev_open(struct vhost_user_dev *u, const char *path, unsigned nqueues,
			const struct vhost_user_dev_hooks *hooks, char *err, size_t errlen);
/* Closes what vhost_user_dev_open made, for a device never added. */
void vhost_user_dev_close(struct vhost_user_dev *u);
/*
 * Adds the device to the VM's PCI bus (ops' priv is owner) and starts the
 * call thread. On failure everything vhost_user_dev_open made is closed.
 */
int vhost_user_dev_add(struct vm *vm, struct vhost_user_dev *u, const struct virtio_device_ops *ops,
		       void *owner, uint64_t features) __attribute__((warn_unused_result));
/*
 * The transport's callbacks, for the device's ops table as they are (lock
 * held); vd is the vdev of a struct vhost_user_dev.
 */
void vhost_user_dev_queue_notify(struct virtio_dev *vd, unsigned q);
void vhost_user_dev_reset(struct virtio_dev *vd);
/* DRIVER_OK: every queue must be enabled; they go to the back-end now or when it comes. */
void vhost_user_dev_driver_ok(struct virtio_dev *vd);
/* The transport bound or unbound queues' irqfds: the call thread watches the others. */
void vhost_user_dev_irqfds_changed(struct virtio_dev *vd);
/* Stops the call thread and disconnects; for the VM's teardown. */
void vhost_user_dev_destroy(struct vhost_user_dev *u);

#endif
