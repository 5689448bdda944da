/*
 * virtio-vsock served by the host kernel's vhost-vsock (/dev/vhost-vsock,
 * module vhost_vsock): the kernel reads and fills the receive and transmit
 * queues in guest memory itself, and host programs reach the guest with
 * AF_VSOCK at its CID. The VMM keeps the PCI transport and the event queue;
 * the kernel gets the transport's kick and call eventfds, which KVM signals
 * on the driver's notify (an ioeventfd) and delivers as the queue's MSI-X
 * interrupt (an irqfd); a device thread takes the calls of queues whose
 * vector is masked (or MSI-X off), which stay pending as MSI-X wants.
 */
#ifndef DOMUS_VHOST_VSOCK_H
#define DOMUS_VHOST_VSOCK_H

#include <pthread.h>
#include <stdbool.h>

#include "devices/virtio_pci.h"
#include "vmm/config.h"

#define VHOST_VSOCK_DEVICE "/dev/vhost-vsock"

struct vhost_vsock {
	struct virtio_dev vdev;
	int vhost_fd; /* the domain's, kept across boots (vhost_vsock_open) */
	uint64_t cid;
	uint64_t host_features;
	int stop_fd;
	int rescan_fd; /* the transport re-bound irqfds: the thread looks again */
	bool running;
	bool active;
	pthread_t thread;
};

/*
 * Opens /dev/vhost-vsock, owns it and gives it the guest's CID: done once
 * per domain, before the VMM confines itself. fd, or -errno with why in err
 * (no such device: the module is not loaded; the CID is another VM's).
 */
int vhost_vsock_open(const struct vsock_config *cfg, char *err, size_t errlen);
/* Adds the device on vhost_fd (not taken) and starts its thread. 0 or -errno. */
int vhost_vsock_add(struct vm *vm, struct vhost_vsock *v, const struct vsock_config *cfg,
		    int vhost_fd) __attribute__((warn_unused_result));
/* Stops the kernel's queues and the thread. */
void vhost_vsock_destroy(struct vhost_vsock *v);

#endif
