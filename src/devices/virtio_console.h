#ifndef DOMUS_VIRTIO_CONSOLE_H
#define DOMUS_VIRTIO_CONSOLE_H

#include <stddef.h>

#include "devices/virtio_pci.h"

#define VCON_INPUT_BUF 4096

struct virtio_console {
	struct virtio_dev vdev;
	int out_fd;
	/* Input that arrived while the guest had no receive buffer posted. */
	unsigned char pending[VCON_INPUT_BUF];
	size_t npending;
};

int virtio_console_add(struct vm *vm, struct virtio_console *con, int out_fd)
	__attribute__((warn_unused_result));
/* Queues terminal input for the guest; returns how many bytes were taken. */
size_t virtio_console_input(struct virtio_console *con, const void *buf, size_t len);

#endif
