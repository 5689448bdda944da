/* A domain: the KVM VM, its vCPU threads, memory, buses and devices. */
#ifndef DOMUS_VM_H
#define DOMUS_VM_H

#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/ivshmem.h"
#include "net/offload.h"
#include "vmm/boot.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/guest_mem.h"
#include "vmm/irq_routes.h"

/* Why a domain stopped; the first reason reported wins. */
enum vm_stop {
	VM_RUNNING = 0,
	VM_POWEROFF,
	VM_REBOOT,
	VM_PANIC,
	VM_TRIPLE_FAULT,
	VM_ERROR,
	VM_INTERRUPTED,
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	int started;
	_Atomic int tid; /* the thread's id, once it runs: domusd reads its /proc entries */
	_Atomic unsigned long long exits; /* KVM_RUN returns, for statistics */
	/*
	 * Of those, why: port I/O, MMIO, and everything else (system events,
	 * failures; a kick out of KVM_RUN by a signal is not an exit and not
	 * counted). Each one is a trip through the VMM's user space, which the
	 * I/O path avoids (ioeventfds, irqfds; docs/vmm.md).
	 */
	_Atomic unsigned long long exits_io, exits_mmio, exits_other;
	/* Gang scheduling (vmm/gang.c): KVM's statistics of this vCPU, -1 without them. */
	int stats_fd;
	uint64_t halt_wait_offset, blocking_offset;
	_Atomic int gang_hold;                  /* stay out of guest mode until cleared */
	_Atomic unsigned long long gang_held_ns; /* time spent held */
};

struct pci_bus;
struct serial;
struct virtio_console;
struct virtio_blk;
struct blk_counters;
struct virtio_balloon;
struct virtio_dev;

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	int run_size;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct pci_bus *pci;
	struct serial *serial;
	struct virtio_console *vcon;
	unsigned nvcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct kvm_cpuid2 *supported_cpuid;
	_Atomic int stop_reason;
	char stop_detail[128];
	int stop_eventfd; /* written when stop_reason is set */

	/*
	 * Device work past a notify's budget, done by the main thread between
	 * its other work (virtio_queue_defer): the devices with queues to
	 * serve again, and the eventfd that wakes the main thread for them.
	 */
	pthread_mutex_t defer_lock;
	struct virtio_dev *deferred;
	int defer_eventfd;

	/* Pausing: vCPU threads park on pause_cond while paused is set. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	_Atomic int paused;
	unsigned parked;
	struct kvm_clock_data paused_clock;
	struct virtio_blk *disks[VM_MAX_DISKS];
	struct blk_counters *disk_counters[VM_MAX_DISKS]; /* disks domus-blk serves */
	unsigned ndisks;
	struct virtio_balloon *balloon; /* NULL without one */
	unsigned nslots;                /* KVM memory slots in use: RAM's, then devices' */
	struct gang *gang;              /* the co-scheduling controller, NULL without gang */

	/* MSI routes for the devices' irqfds (vmm/irq_routes.h). */
	struct irq_routes irq_routes;
	/*
	 * The I/O thread (virtio_io_start): epoll over the in-VMM devices'
	 * kick eventfds, and the eventfd that stops it. -1 without one.
	 */
	int io_epoll_fd, io_stop_fd;
	pthread_t io_thread;
	bool io_running;
	/* Every virtio device of this boot, for the transport's release at teardown. */
	struct virtio_dev *virtio_devs[32];
	unsigned nvirtio;
};

/*
 * How a running domain meets the world outside the VMM: where its console
 * output goes, and which descriptors the main thread watches for it (the
 * terminal for `domus run`, the control socket for domus-vmm).
 */
struct vm_frontend {
	int console_fd;
	/* Fills at most max entries of p; returns how many. */
	unsigned (*poll_fds)(void *opaque, struct pollfd *p, unsigned max);
	/* Called with the same entries once poll returns. */
	void (*poll_ready)(void *opaque, struct vm *vm, struct pollfd *p, unsigned n);
	/* Called when a boot's VM is built and running, and when it is gone (NULL). */
	void (*vm_changed)(void *opaque, struct vm *vm);
	/* Called once the vCPUs have stopped, before the VM is torn down. */
	void (*stopped)(void *opaque, struct vm *vm, enum vm_stop reason, const char *detail);
	void *opaque;
};

struct vm_disk_stats {
	unsigned long long read_ops, write_ops, read_bytes, write_bytes;
};

/* The KVM device each boot opens: "/dev/kvm", or "/dev/fd/N" once the VMM is confined. */
extern const char *vm_kvm_device;

/* Records why the VM stops (first caller wins) and kicks every vCPU out of KVM_RUN. */
void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *detail);
/*
 * Stops every vCPU and the guest's clock; returns once no vCPU runs guest
 * code, or -ESHUTDOWN if the domain stopped meanwhile. Main thread only.
 */
int vm_pause(struct vm *vm);
/* Resumes the vCPUs; the guest's clock goes on from where it was paused. */
int vm_unpause(struct vm *vm);
/* Presses the ACPI power button: the guest's OS decides what to do. */
void vm_power_button(struct vm *vm);
/* Console input typed by a user, to the console the domain reads. */
void vm_console_input(struct vm *vm, const void *buf, size_t n);
void vm_disk_stats(struct vm *vm, unsigned disk, struct vm_disk_stats *st);
/* Injects an edge on an ISA/IOAPIC interrupt line. */
void vm_irq_line(struct vm *vm, unsigned gsi, int level);
/*
 * Maps host memory [host, host+size) at guest-physical gpa as the next KVM
 * memory slot; read-only makes guest writes exit as MMIO. 0 or -errno.
 */
int vm_add_memslot(struct vm *vm, uint64_t gpa, uint64_t size, void *host, bool readonly)
	__attribute__((warn_unused_result));
/* Reserves the next KVM memory slot number for a mapping that moves (a BAR); the slot or -ENOSPC. */
int vm_reserve_memslot(struct vm *vm) __attribute__((warn_unused_result));
/*
 * Maps reserved slot at gpa (size 0: unmaps it). Without KVM (a device set
 * built for a fuzzer or a test) there is nothing to map: 0. 0 or -errno.
 */
int vm_set_memslot(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host)
	__attribute__((warn_unused_result));
/* Sends an MSI; returns 0 or -errno. */
int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data);

/*
 * What one boot of a domain needs: the loaded kernel and initrd, which the
 * boot consumes (they are freed once copied into the guest, and read again
 * for the next boot), and the open disks, which outlive it.
 */
struct vm_resources {
	struct kernel_image *kernel;
	uint8_t *initrd;
	uint64_t initrd_size;
	int disk_fds[VM_MAX_DISKS];
	struct blk_counters *disk_counters[VM_MAX_DISKS]; /* domus-blk's, for its disks */
	int pmem_fds[VM_MAX_PMEM]; /* the pmem backing files, checked (pmem_open) */
	uint64_t pmem_sizes[VM_MAX_PMEM];
	/* The in-VMM network devices' TAP queues (a queue pair each); none for vhost-user ones. */
	int tap_fds[VM_MAX_NICS][VIRTIO_NET_PAIRS_MAX];
	unsigned tap_queues[VM_MAX_NICS];
	struct ivshmem_backing shms[VM_MAX_SHM]; /* the ivshmem devices' memory and servers */
	int vsock_fd; /* vsock: the hybrid's listening socket or /dev/vhost-vsock; -1 without */
};

/*
 * Builds the VM, boots it and runs it until it stops; returns the stop
 * reason, with a description in detail. Frees res's kernel and initrd.
 */
enum vm_stop vm_run_once(const struct vm_config *cfg, struct vm_resources *res,
			 const struct vm_frontend *fe, char *detail, size_t detail_len);

#endif
