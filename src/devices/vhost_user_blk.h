/*
 * A virtio-blk device whose requests a vhost-user back-end (domus-blk,
 * qemu-storage-daemon) serves, on devices/vhost_user_dev.c: a back-end
 * that dies is waited for and its successor finishes, through the
 * inflight area, what it had taken.
 */
#ifndef DOMUS_VHOST_USER_BLK_H
#define DOMUS_VHOST_USER_BLK_H

#include <stdint.h>

#include "devices/vhost_user_dev.h"

#define VHOST_USER_BLK_CONFIG 60

struct vhost_user_blk {
	struct vhost_user_dev u;
	uint8_t config[VHOST_USER_BLK_CONFIG];
};

/*
 * Connects to the back-end at path and adds the device with nqueues
 * queues (1 to VIRTIO_MAX_QUEUES), fewer if the back-end serves fewer;
 * 0 or -errno (logged).
 */
int vhost_user_blk_add(struct vm *vm, struct vhost_user_blk *d, const char *path, unsigned nqueues)
	__attribute__((warn_unused_result));
/*
 * The queues a device gets: those wanted, as many as the back-end serves
 * (backend_queues, its GET_QUEUE_NUM) and only one unless it offers
 * VIRTIO_BLK_F_MQ in backend_features; never 0.
 */
unsigned vhost_user_blk_queue_count(unsigned wanted, uint64_t backend_features,
				    unsigned backend_queues);
/* Stops the interrupt thread and disconnects; for the VM's teardown. */
void vhost_user_blk_destroy(struct vhost_user_blk *d);

#endif
