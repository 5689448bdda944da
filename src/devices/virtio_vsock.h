/*
 * virtio-vsock (virtio 1.2, section 5.10): queue 0 carries packets to the
 * guest, queue 1 packets from it, queue 2 events (none are sent: they are
 * for migration). The config space is the guest's CID (le64).
 *
 * Two back-ends: the hybrid one in the VMM (vsock_hybrid.h: host Unix
 * sockets), served by a device thread that polls the host sockets and is
 * woken by the driver's notifies; and the host kernel's vhost-vsock
 * (vhost_vsock.h), which serves queues 0 and 1 itself.
 */
#ifndef DOMUS_VIRTIO_VSOCK_H
#define DOMUS_VIRTIO_VSOCK_H

#include <pthread.h>
#include <stdbool.h>

#include "devices/virtio_pci.h"
#include "devices/vsock_hybrid.h"
#include "vmm/config.h"

#define VIRTIO_ID_VSOCK 19
#define VIRTIO_VSOCK_RX 0
#define VIRTIO_VSOCK_TX 1
#define VIRTIO_VSOCK_EVENT 2
#define VIRTIO_VSOCK_QUEUE_SIZE 256
#define VIRTIO_VSOCK_CONFIG_LEN 8

struct virtio_vsock {
	struct virtio_dev vdev;
	struct vsock_hybrid hybrid; /* under vdev.lock, touched only by the device thread */
	uint64_t cid;
	int wake_fd;       /* eventfd: queues notified, a reset, or stop */
	bool reset_pending; /* the driver reset the device; the thread drops the connections */
	bool stopping;
	bool active;
	pthread_t thread;
	uint8_t *bounce; /* one packet: header and VSOCK_MAX_PKT of payload */
};

/*
 * The hybrid back-end's listening socket at cfg->socket, made before the VMM
 * confines itself (it outlives the domain's reboots). fd, or -errno with
 * why in err.
 */
int virtio_vsock_listen(const struct vsock_config *cfg, char *err, size_t errlen);
/*
 * Adds the hybrid device (listen_fd is duplicated, not taken) and starts
 * its thread. 0 or -errno.
 */
int virtio_vsock_add(struct vm *vm, struct virtio_vsock *v, const struct vsock_config *cfg,
		     int listen_fd) __attribute__((warn_unused_result));
/* Stops the thread and closes every connection. */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* Moves what can move between the queues and the back-end. Lock held; for the thread and tests. */
void virtio_vsock_serve(struct virtio_vsock *v);
/* The ops of the hybrid device, for tests that drive the transport's callbacks. */
extern const struct virtio_device_ops virtio_vsock_ops;

#endif
