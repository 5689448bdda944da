#ifndef DOMUS_VIRTIO_BLK_H
#define DOMUS_VIRTIO_BLK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_pci.h"

struct virtio_blk {
	struct virtio_dev vdev;
	int fd;
	bool readonly;
	uint64_t sectors;
	char serial[24];
	/* Completed requests, read by the control thread for `domus top`. */
	_Atomic unsigned long long read_ops, write_ops, read_bytes, write_bytes;
};

/*
 * Adds a virtio-blk device serving the image open on fd, with nqueues
 * request queues (1 to VM_MAX_DISK_QUEUES; more than one offers
 * VIRTIO_BLK_F_MQ). Returns 0 or -errno (-EINVAL: a queue count out of range).
 */
int virtio_blk_add(struct vm *vm, struct virtio_blk *blk, int fd, bool readonly, unsigned index,
		   unsigned nqueues)
	__attribute__((warn_unused_result));

#endif
