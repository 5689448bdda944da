/*
 * A virtio-blk device whose requests a vhost-user back-end (domus-blk,
 * qemu-storage-daemon) serves: the VMM keeps the PCI transport, hands the
 * back-end guest memory and the rings, forwards the driver's kicks to it,
 * and turns its calls into the queue's MSI-X interrupt. When the back-end
 * dies, the device waits for its successor on the same socket, hands it
 * the same memory, rings and inflight area, and the guest sees a pause.
 */
#ifndef DOMUS_VHOST_USER_BLK_H
#define DOMUS_VHOST_USER_BLK_H

#include <pthread.h>
#include <stdbool.h>

#include "devices/virtio_pci.h"
#include "vhost/frontend.h"

#define VHOST_USER_BLK_CONFIG 60

struct vhost_user_blk {
	struct virtio_dev vdev;
	struct vhost_frontend fe;
	char path[108];
	uint8_t config[VHOST_USER_BLK_CONFIG];
	int kick_fd, call_fd, stop_fd;
	int inflight_fd; /* kept across back-end restarts */
	uint64_t inflight_size;
	bool started;   /* the driver set DRIVER_OK and the queue runs */
	bool connected; /* a back-end process serves us now */
	unsigned reconnects;
	pthread_t thread;
	bool active;
};

/* Connects to the back-end at path and adds the device; 0 or -errno (logged). */
int vhost_user_blk_add(struct vm *vm, struct vhost_user_blk *d, const char *path)
	__attribute__((warn_unused_result));
/* Stops the interrupt thread and disconnects; for the VM's teardown. */
void vhost_user_blk_destroy(struct vhost_user_blk *d);

#endif
