/*
 * The modern virtio-over-PCI transport (virtio 1.2, section 4.1), with MSI-X.
 * A device supplies a const ops table; the transport owns feature
 * negotiation, the queues' registers, interrupts and the device status.
 *
 * BAR0 (64-bit memory, 32 KiB) is laid out as:
 *   0x0000 common configuration    0x1000 ISR status
 *   0x2000 device configuration    0x3000 queue notify, 4 bytes per queue
 *   0x4000 MSI-X table             0x5000 MSI-X pending bits
 */
#ifndef DOMUS_VIRTIO_PCI_H
#define DOMUS_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtq.h"
#include "vmm/pci.h"

/* A multiqueue disk has a queue per vCPU, at most 16 (config.h's VM_MAX_DISK_QUEUES). */
#define VIRTIO_MAX_QUEUES 16
#define VIRTIO_MSIX_VECTORS (VIRTIO_MAX_QUEUES + 1)
#define VIRTIO_NO_VECTOR 0xffff

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5

struct vm;
struct virtio_dev;

struct virtio_device_ops {
	const char *name;
	uint16_t device_id;
	uint32_t pci_class;
	unsigned nqueues;
	uint16_t queue_size;
	unsigned config_size;
	/* Device config space; offsets are checked against config_size by the transport. */
	void (*config_read)(struct virtio_dev *vd, unsigned offset, void *data, unsigned len);
	void (*config_write)(struct virtio_dev *vd, unsigned offset, const void *data, unsigned len);
	/* The driver kicked queue q; called with vd->lock held. */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* The driver reset the device; called with vd->lock held. */
	void (*reset)(struct virtio_dev *vd);
	/* The driver set DRIVER_OK: its queues and features are final. Lock held. May be NULL. */
	void (*driver_ok)(struct virtio_dev *vd);
	/*
	 * A back-end reads the queues' kick eventfds and writes their call
	 * eventfds itself (a vhost-user process, the kernel's vhost): the VMM's I/O thread leaves them
	 * alone, and queue_notify is called only for kicks KVM did not take.
	 */
	bool backend_kicks;
	/*
	 * Which queues' call eventfds KVM delivers now (irqfd_gsi) changed:
	 * a back-end's call thread watches the others. Lock held. May be NULL.
	 */
	void (*irqfds_changed)(struct virtio_dev *vd);
};

struct msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t ctrl; /* bit 0: masked */
};

/* What the VM's I/O thread gets back from epoll for a queue's kick eventfd. */
struct virtio_kick {
	struct virtio_dev *vd;
	unsigned q;
};

struct virtio_dev {
	const struct virtio_device_ops *ops;
	void *priv;
	struct vm *vm;
	struct pci_device pdev;
	pthread_mutex_t lock;
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint16_t config_msix_vector;
	uint16_t queue_select;
	unsigned msix_cap;
	unsigned nqueues;  /* ops->nqueues, or the device's own count (virtio_pci_add_queues) */
	unsigned nvectors; /* MSI-X vectors: one per queue and one for config changes */
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	struct msix_entry msix[VIRTIO_MSIX_VECTORS];
	uint64_t msix_pending;
	/*
	 * The I/O path without the VMM (docs/vmm.md). Each queue has a kick
	 * eventfd, which KVM signals on the driver's notify write (an
	 * ioeventfd at kick_addr, assigned from DRIVER_OK to reset), and a
	 * call eventfd, which KVM turns into the queue's MSI-X interrupt (an
	 * irqfd on GSI irqfd_gsi, 0 while not bound: the vector masked,
	 * MSI-X off, the queue not running). -1 fds: none (no KVM).
	 */
	int kick_fd[VIRTIO_MAX_QUEUES], call_fd[VIRTIO_MAX_QUEUES];
	uint64_t kick_addr[VIRTIO_MAX_QUEUES]; /* 0: no ioeventfd */
	unsigned irqfd_gsi[VIRTIO_MAX_QUEUES];
	unsigned gsi_base; /* vector v's MSI route is GSI gsi_base + v; 0: none */
	struct virtio_kick kicks[VIRTIO_MAX_QUEUES];
	/* Queues whose notify ran out of budget (lock held), and the VM's list of such devices. */
	uint32_t deferred_queues;
	bool deferred_listed;
	struct virtio_dev *next_deferred;
};

/*
 * Adds a virtio device to the VM's PCI bus, offering `features` (device
 * specific bits; the transport adds VERSION_1 and the ring features).
 */
int virtio_pci_add(struct vm *vm, struct virtio_dev *vd, const struct virtio_device_ops *ops,
		   void *priv, uint64_t features) __attribute__((warn_unused_result));
/*
 * The same with nqueues queues (1 to VIRTIO_MAX_QUEUES) rather than
 * ops->nqueues: a device whose queue count is its configuration's
 * (virtio-blk's multiqueue). -EINVAL for a count out of range.
 */
int virtio_pci_add_queues(struct vm *vm, struct virtio_dev *vd, const struct virtio_device_ops *ops,
			  void *priv, uint64_t features, unsigned nqueues)
	__attribute__((warn_unused_result));
/* Interrupts the driver for queue q if it wants one. Called with vd->lock held. */
void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q);

/*
 * The work one notify does is bounded: a device serves at most budget
 * requests of a queue per call, on whichever thread kicked it (a vCPU's,
 * holding vd->lock), and the rest later, from the VM's main thread, a
 * budget at a time. So no guest holds a device's lock, or its vCPU thread,
 * for longer than one budget, however fast it refills its queues. In a
 * device's loop: while (virtio_budget_left(vd, q, &served, BUDGET) && pop...).
 */
bool virtio_budget_left(struct virtio_dev *vd, unsigned q, unsigned *served, unsigned budget);
/* Queue q of vd is served again from the main thread (lock held). */
void virtio_queue_defer(struct virtio_dev *vd, unsigned q);
/* The main thread: serves the deferred queues, one budget each. */
void virtio_run_deferred(struct vm *vm);
/* Interrupts the driver for queue q unconditionally (a back-end already decided). Lock held. */
void virtio_queue_signal(struct virtio_dev *vd, unsigned q);
/* Tells the driver its device's config space changed. Lock held. */
void virtio_config_changed(struct virtio_dev *vd);
/* Puts the device into NEEDS_RESET after the driver broke the rules. Lock held. */
void virtio_needs_reset(struct virtio_dev *vd, const char *why);
/* Whether the driver has set DRIVER_OK and the device is usable. */
int virtio_driver_ready(const struct virtio_dev *vd);

/*
 * The VM's I/O thread: serves the in-VMM devices' queues when KVM signals
 * their kick eventfds, so a driver's notify costs its vCPU no exit and no
 * device work. Started once the devices are added, stopped before they go.
 * 0 or -errno.
 */
int virtio_io_start(struct vm *vm) __attribute__((warn_unused_result));
void virtio_io_stop(struct vm *vm);
/* Unbinds and closes what the transport made for vd (its eventfds). */
void virtio_pci_release(struct virtio_dev *vd);

#endif
