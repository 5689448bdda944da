#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "devices/ivshmem.h"
#include "devices/platform.h"
#include "devices/serial.h"
#include "devices/virtio_balloon.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_console.h"
#include "devices/virtio_pci.h"
#include "devices/virtio_pmem.h"
#include "devices/virtio_rng.h"
#include "devices/vhost_user_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_vsock.h"
#include "devices/vhost_vsock.h"
#include "lib/log.h"
#include "lib/passed_fd.h"
#include "vmm/acpi.h"
#include "blk/counters.h"
#include "vmm/confine.h"
#include "vmm/cpu.h"
#include "vmm/gang.h"
#include "vmm/pci.h"

/* Addresses KVM needs for its own use on Intel hosts, above the PCI window. */
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define KVM_TSS_ADDR 0xfffbd000ULL

/* Memory slots this VMM uses at most: RAM's few, pmem's, ivshmem's; KVM offers hundreds. */
#define VM_MAX_MEMSLOTS 64

/* Everything one boot of a domain allocates, freed together. */
struct domain {
	struct vm vm;
	struct pci_bus pci;
	struct serial serial;
	struct rtc rtc;
	struct pvpanic pvpanic;
	struct virtio_dev rng;
	struct virtio_console console;
	struct virtio_blk disks[VM_MAX_DISKS];
	struct vhost_user_blk vdisks[VM_MAX_DISKS];
	struct virtio_balloon balloon;
	struct virtio_pmem pmems[VM_MAX_PMEM];
	unsigned npmems; /* added, so mapped */
	struct virtio_net nets[VM_MAX_NICS];
	struct vhost_user_net vnets[VM_MAX_NICS];
	struct ivshmem shms[VM_MAX_SHM];
	void *shm_maps[VM_MAX_SHM]; /* each region mapped for this boot, NULL if not */
	uint64_t shm_sizes[VM_MAX_SHM];
	unsigned nshms;             /* added, so destroyed */
	struct virtio_vsock vsock;   /* hybrid */
	struct vhost_vsock vvsock; /* the kernel's */
};

static void kick_vcpus(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->started)
			continue;
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, SIGUSR1);
	}
}

void vm_request_stop(struct vm *vm, enum vm_stop reason, const char *detail)
{
	int expected = VM_RUNNING;
	uint64_t one = 1;

	if (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason))
		return;
	snprintf(vm->stop_detail, sizeof(vm->stop_detail), "%s", detail);
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond); /* parked vCPUs and a waiting vm_pause */
	pthread_mutex_unlock(&vm->pause_lock);
	/* immediate_exit closes the window between a vCPU's check and KVM_RUN. */
	kick_vcpus(vm);
	if (write(vm->stop_eventfd, &one, sizeof(one)) < 0)
		log_warn("stop eventfd");
}

void vm_irq_line(struct vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};

	/* A device set built without KVM (fuzz/fuzz_devices.c) has no interrupt controller to tell. */
	if (vm->vm_fd < 0)
		return;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u", gsi);
}

/* The PCI bus's INTx lines are IOAPIC inputs (level: asserted while 1). */
static void pci_irq(void *opaque, unsigned gsi, int level)
{
	vm_irq_line(opaque, gsi, level);
}

int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		return -errno;
	return 0;
}

static unsigned started_vcpus(const struct vm *vm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		n += vm->vcpus[i].started ? 1 : 0;
	return n;
}

/* A vCPU thread waits here, out of guest mode, while gang scheduling holds it. */
static void vcpu_gang_wait(struct vm *vm, struct vcpu *v)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_mutex_lock(&vm->pause_lock);
	while (atomic_load(&v->gang_hold) && !atomic_load(&vm->paused) &&
	       atomic_load(&vm->stop_reason) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	clock_gettime(CLOCK_MONOTONIC, &b);
	atomic_fetch_add(&v->gang_held_ns, (unsigned long long)((b.tv_sec - a.tv_sec) * 1000000000ll +
								  (b.tv_nsec - a.tv_nsec)));
}

/* A vCPU thread waits here, out of guest mode, while the domain is paused. */
static void vcpu_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->paused) && atomic_load(&vm->stop_reason) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm)
{
	int ret = 0;

	if (atomic_exchange(&vm->paused, 1))
		return 0;
	kick_vcpus(vm);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < started_vcpus(vm) && atomic_load(&vm->stop_reason) == VM_RUNNING)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	if (atomic_load(&vm->stop_reason) != VM_RUNNING)
		ret = -ESHUTDOWN;
	pthread_mutex_unlock(&vm->pause_lock);
	/* The guest's kvmclock stops with it, so paused time does not show up as a jump. */
	if (!ret && ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->paused_clock) < 0) {
		log_warn("KVM_GET_CLOCK");
		vm->paused_clock.clock = 0;
	}
	return ret;
}

int vm_unpause(struct vm *vm)
{
	if (!atomic_load(&vm->paused))
		return 0;
	if (vm->paused_clock.clock) {
		struct kvm_clock_data c = {.clock = vm->paused_clock.clock};
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
			log_warn("KVM_SET_CLOCK");
	}
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->paused, 0);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

void vm_power_button(struct vm *vm)
{
	/* An edge on the GED's interrupt; its _EVT notifies the power button device. */
	vm_irq_line(vm, ACPI_GED_GSI, 1);
	vm_irq_line(vm, ACPI_GED_GSI, 0);
}

void vm_console_input(struct vm *vm, const void *buf, size_t n)
{
	/* Input the guest cannot take yet is dropped, as a real UART would. */
	if (vm->cfg->console == CONSOLE_VIRTIO)
		virtio_console_input(vm->vcon, buf, n);
	else
		serial_input(vm->serial, buf, n);
}

void vm_disk_stats(struct vm *vm, unsigned disk, struct vm_disk_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (disk >= vm->ndisks)
		return;
	if (!vm->disks[disk]) {
		/* Served by domus-blk, which counts; a foreign back-end does not tell. */
		const struct blk_counters *c = vm->disk_counters[disk];
		if (c) {
			st->read_ops = atomic_load(&c->read_ops);
			st->write_ops = atomic_load(&c->write_ops);
			st->read_bytes = atomic_load(&c->read_bytes);
			st->write_bytes = atomic_load(&c->write_bytes);
		}
		return;
	}
	st->read_ops = atomic_load(&vm->disks[disk]->read_ops);
	st->write_ops = atomic_load(&vm->disks[disk]->write_ops);
	st->read_bytes = atomic_load(&vm->disks[disk]->read_bytes);
	st->write_bytes = atomic_load(&vm->disks[disk]->write_bytes);
}

static void handle_io(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++) {
		if (!bus_dispatch(&vm->pio, run->io.port, data, run->io.size, write))
			log_debug("unclaimed port %s 0x%x size %u", write ? "write" : "read",
				  run->io.port, run->io.size);
		data += run->io.size;
	}
}

static void handle_system_event(struct vm *vm, struct kvm_run *run)
{
	switch (run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(vm, VM_POWEROFF, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(vm, VM_REBOOT, "guest rebooted");
		break;
	default:
		vm_request_stop(vm, VM_PANIC, "guest crashed (system event)");
		break;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char why[128];

	atomic_store(&v->tid, (int)gettid());
	if (vmm_confine_thread(VMM_THREAD_VCPU) < 0) {
		vm_request_stop(vm, VM_ERROR, "cannot load the vCPU thread's system-call filter");
		return NULL;
	}
	while (atomic_load(&vm->stop_reason) == VM_RUNNING) {
		if (atomic_load(&vm->paused)) {
			vcpu_park(vm);
			vmm_confine_test_forbidden_call();
			continue;
		}
		if (atomic_load(&v->gang_hold)) {
			vcpu_gang_wait(vm, v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			snprintf(why, sizeof(why), "vCPU %u: KVM_RUN failed: %s", v->id,
				 strerror(errno));
			vm_request_stop(vm, VM_ERROR, why);
			break;
		}
		atomic_fetch_add_explicit(&v->exits, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(v->run->exit_reason == KVM_EXIT_IO     ? &v->exits_io
					  : v->run->exit_reason == KVM_EXIT_MMIO ? &v->exits_mmio
										 : &v->exits_other,
					  1, memory_order_relaxed);
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(vm, v->run);
			break;
		case KVM_EXIT_MMIO:
			bus_dispatch(&vm->mmio, v->run->mmio.phys_addr, v->run->mmio.data,
				     v->run->mmio.len, v->run->mmio.is_write);
			break;
		case KVM_EXIT_SHUTDOWN:
			snprintf(why, sizeof(why), "vCPU %u triple fault: the guest reset the CPU by faulting", v->id);
			vm_request_stop(vm, VM_TRIPLE_FAULT, why);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			handle_system_event(vm, v->run);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(why, sizeof(why), "vCPU %u: VM entry failed (reason 0x%llx)", v->id,
				 (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
			vm_request_stop(vm, VM_ERROR, why);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(why, sizeof(why), "vCPU %u: KVM internal error (suberror %u)", v->id,
				 v->run->internal.suberror);
			vm_request_stop(vm, VM_ERROR, why);
			break;
		default:
			snprintf(why, sizeof(why), "vCPU %u: unexpected exit reason %u", v->id,
				 v->run->exit_reason);
			vm_request_stop(vm, VM_ERROR, why);
			break;
		}
	}
	return NULL;
}

const char *vm_kvm_device = "/dev/kvm";

static void kick_handler(int sig)
{
}

static int kvm_open_vm(struct vm *vm, char *err, size_t errlen)
{
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{KVM_CAP_IRQCHIP, "in-kernel irqchip"},
		{KVM_CAP_USER_MEMORY, "user memory"},
		{KVM_CAP_SIGNAL_MSI, "MSI injection"},
		{KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
		{KVM_CAP_PIT2, "PIT"},
		/* The I/O path without the VMM: kicks and interrupts as eventfds (docs/vmm.md). */
		{KVM_CAP_IOEVENTFD, "ioeventfds"},
		{KVM_CAP_IOEVENTFD_ANY_LENGTH, "ioeventfds of any length"},
		{KVM_CAP_IRQFD, "irqfds"},
		{KVM_CAP_IRQ_ROUTING, "interrupt routing"},
	};

	/* A confined domus-vmm has no /dev: it opened the device once, and passed it as /dev/fd/N. */
	vm->kvm_fd = passed_open(vm_kvm_device, O_RDWR);
	if (vm->kvm_fd < 0) {
		snprintf(err, errlen, "cannot open /dev/kvm: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm speaks an unknown API version");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks %s", caps[i].name);
			return -ENOTSUP;
		}
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	vm->irq_routes.vm_fd = vm->vm_fd;
	if (vm->vm_fd < 0 || vm->run_size <= 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){KVM_IDENTITY_MAP_ADDR}) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &(struct kvm_pit_config){0}) < 0) {
		snprintf(err, errlen, "setting up the VM's interrupt controllers: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int vm_add_memslot(struct vm *vm, uint64_t gpa, uint64_t size, void *host, bool readonly)
{
	struct kvm_userspace_memory_region mr = {
		.slot = vm->nslots,
		.flags = readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (readonly && ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return -ENOTSUP;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return -errno;
	vm->nslots++;
	return 0;
}

int vm_reserve_memslot(struct vm *vm)
{
	if (vm->nslots >= VM_MAX_MEMSLOTS)
		return -ENOSPC;
	return (int)vm->nslots++;
}

int vm_set_memslot(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region mr = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (vm->vm_fd < 0)
		return 0;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return -errno;
	return 0;
}

static int map_memory(struct vm *vm, uint64_t size, char *err, size_t errlen)
{
	int ret = gmem_create(&vm->mem, size);

	if (ret < 0) {
		snprintf(err, errlen, "cannot allocate %llu MiB of guest memory: %s",
			 (unsigned long long)(size >> 20), strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		struct gmem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region mr = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return -errno;
		}
	}
	vm->nslots = vm->mem.nregions;
	return 0;
}

/* The pmem regions, above all RAM (pmem_place); each maps its file, so unmapped at destroy. */
static int add_pmems(struct domain *d, const struct vm_config *cfg, const struct vm_resources *res)
{
	struct vm *vm = &d->vm;
	uint64_t gpas[VM_MAX_PMEM], ram_end = 0;
	int ret;

	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.regions[i];
		if (r->gpa + r->size > ram_end)
			ram_end = r->gpa + r->size;
	}
	pmem_place(ram_end, res->pmem_sizes, cfg->npmems, gpas);
	for (unsigned i = 0; i < cfg->npmems; i++) {
		d->npmems = i + 1;
		ret = virtio_pmem_add(vm, &d->pmems[i], &cfg->pmems[i], res->pmem_fds[i],
				      res->pmem_sizes[i], gpas[i]);
		if (ret < 0) {
			log_errno(ret, "pmem %s at 0x%llx", cfg->pmems[i].path, (unsigned long long)gpas[i]);
			return ret;
		}
		log_debug("pmem %s: %llu MiB at 0x%llx%s", cfg->pmems[i].path,
			  (unsigned long long)res->pmem_sizes[i] >> 20, (unsigned long long)gpas[i],
			  cfg->pmems[i].readonly ? ", read-only" : "");
	}
	return 0;
}

/* The ivshmem devices, their memory mapped for this boot (the guest's view follows BAR2). */
static int add_shms(struct domain *d, const struct vm_config *cfg, const struct vm_resources *res)
{
	int ret;

	for (unsigned i = 0; i < cfg->nshms; i++) {
		const struct ivshmem_backing *b = &res->shms[i];
		const char *name = cfg->shms[i].name[0] ? cfg->shms[i].name : cfg->shms[i].path;
		void *mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);

		if (mem == MAP_FAILED) {
			ret = -errno;
			log_errno(ret, "shm %s: mapping %llu bytes", name, (unsigned long long)b->size);
			return ret;
		}
		d->shm_maps[i] = mem;
		d->shm_sizes[i] = b->size;
		d->nshms = i + 1;
		ret = ivshmem_add(&d->vm, &d->shms[i], name, mem, b->size, b->client);
		if (ret == -ENOSPC) {
			log_warnx("shm %s: %llu MiB does not fit the PCI window (%llu MiB, shared by every "
				  "device)",
				  name, (unsigned long long)b->size >> 20,
				  (unsigned long long)PCI_MMIO_SIZE >> 20);
			return ret;
		}
		if (ret < 0) {
			log_errno(ret, "shm %s", name);
			return ret;
		}
		log_debug("shm %s: ivshmem-%s, %llu KiB", name, b->client ? "doorbell" : "plain",
			  (unsigned long long)b->size >> 10);
	}
	return 0;
}

static int add_devices(struct domain *d, const struct vm_config *cfg, const struct vm_resources *res,
		       int console_fd)
{
	struct vm *vm = &d->vm;
	int ret;

	vm->pci = &d->pci;
	vm->serial = &d->serial;
	vm->vcon = &d->console;
	if ((ret = pci_bus_init(&d->pci, &vm->pio, &vm->mmio)) < 0)
		return ret;
	d->pci.set_irq = pci_irq;
	d->pci.irq_opaque = vm;
	if ((ret = serial_add(vm, &d->serial, SERIAL_COM1_PORT, SERIAL_COM1_IRQ, console_fd)) < 0 ||
	    (ret = rtc_add(vm, &d->rtc)) < 0 || (ret = power_add(vm)) < 0)
		return ret;
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		unsigned nq = disk_queue_count(&cfg->disks[i], cfg->vcpus);

		if (cfg->disks[i].vhost_user)
			ret = vhost_user_blk_add(vm, &d->vdisks[i], cfg->disks[i].path, nq);
		else
			ret = virtio_blk_add(vm, &d->disks[i], res->disk_fds[i], cfg->disks[i].readonly, i,
					     nq);
		if (ret < 0)
			return ret;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		vm->disks[i] = cfg->disks[i].vhost_user ? NULL : &d->disks[i];
		vm->disk_counters[i] = res->disk_counters[i];
	}
	vm->ndisks = cfg->ndisks;
	for (unsigned i = 0; i < cfg->nnics; i++) {
		const struct nic_config *nc = &cfg->nics[i];

		if (nc->socket[0])
			ret = vhost_user_net_add(vm, &d->vnets[i], nc->socket, nc->mac);
		else
			ret = virtio_net_add(vm, &d->nets[i], res->tap_fds[i], res->tap_queues[i],
					     nc->mac);
		if (ret < 0) {
			log_errno(ret, "network interface %u (%s)", i, nc->socket[0] ? nc->socket : nc->tap);
			return ret;
		}
	}
	if ((ret = virtio_rng_add(vm, &d->rng)) < 0 ||
	    (ret = virtio_console_add(vm, &d->console, console_fd)) < 0 ||
	    (ret = pvpanic_add(vm, &d->pvpanic)) < 0)
		return ret;
	if ((ret = add_pmems(d, cfg, res)) < 0)
		return ret;
	/* Last: their BARs can be large, and BARs are placed in order, each aligned to its size. */
	if ((ret = add_shms(d, cfg, res)) < 0)
		return ret;
	if (cfg->vsock.cid) {
		if (cfg->vsock.vhost)
			ret = vhost_vsock_add(vm, &d->vvsock, &cfg->vsock, res->vsock_fd);
		else
			ret = virtio_vsock_add(vm, &d->vsock, &cfg->vsock, res->vsock_fd);
		if (ret < 0) {
			log_errno(ret, "vsock (CID %u)", cfg->vsock.cid);
			return ret;
		}
	}
	if (cfg->balloon) {
		vm->balloon = &d->balloon; /* destroyed with the domain even if adding fails */
		ret = virtio_balloon_add(vm, &d->balloon, cfg->balloon_deflate_on_oom,
					 cfg->memory_mib << 20);
		if (ret == 0)
			ret = virtio_balloon_start(&d->balloon);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * What gang scheduling reads of a vCPU: its KVM statistics file and where
 * halt_wait_ns and blocking lie in it. Without them stats_fd stays -1 and
 * gang_start says why.
 */
static void open_vcpu_stats(struct vcpu *v)
{
	struct kvm_stats_header h;
	size_t len;
	char *buf;
	int fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);

	if (fd < 0)
		return;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.name_size > 4096 || h.num_desc > 65536) {
		close(fd);
		return;
	}
	len = (size_t)h.desc_offset + (size_t)h.num_desc * (sizeof(struct kvm_stats_desc) + h.name_size);
	buf = malloc(len);
	if (buf && pread(fd, buf, len, 0) == (ssize_t)len &&
	    kvm_stats_find(buf, len, "halt_wait_ns", &v->halt_wait_offset) == 0 &&
	    kvm_stats_find(buf, len, "blocking", &v->blocking_offset) == 0) {
		v->stats_fd = fd;
		fd = -1;
	}
	free(buf);
	if (fd >= 0)
		close(fd);
}

static int create_vcpus(struct vm *vm, const struct boot_entry *entry, char *err, size_t errlen)
{
	int ret = cpu_fetch_supported_cpuid(vm->kvm_fd, &vm->supported_cpuid);

	if (ret < 0) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->id = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0) {
			snprintf(err, errlen, "creating vCPU %u: %s", i, strerror(errno));
			return -errno;
		}
		v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			snprintf(err, errlen, "mapping vCPU %u: %s", i, strerror(errno));
			return -errno;
		}
		v->stats_fd = -1;
		if (vm->cfg->gang_skew_us && vm->nvcpus > 1)
			open_vcpu_stats(v);
		ret = cpu_setup(v->fd, vm->supported_cpuid, i, vm->nvcpus,
				&(struct cpu_pv){.realtime = vm->cfg->cpu_dedicated,
						 .mp_hidden = vm->cfg->pv_mp_hidden},
				entry);
		if (ret < 0) {
			snprintf(err, errlen, "setting up vCPU %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The main thread waits here for the stop event, serving the frontend meanwhile. */
static void main_loop(struct vm *vm, const struct vm_frontend *fe, int sigfd)
{
	struct pollfd p[16];

	while (atomic_load(&vm->stop_reason) == VM_RUNNING) {
		unsigned n = 0;

		p[0] = (struct pollfd){.fd = vm->stop_eventfd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		p[2] = (struct pollfd){.fd = vm->defer_eventfd, .events = POLLIN};
		if (fe->poll_fds)
			n = fe->poll_fds(fe->opaque, p + 3, 13);
		if (poll(p, 3 + n, -1) < 0) {
			if (errno == EINTR)
				continue;
			vm_request_stop(vm, VM_ERROR, "poll failed");
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				char why[64];
				snprintf(why, sizeof(why), "stopped by signal %s",
					 strsignal((int)si.ssi_signo));
				vm_request_stop(vm, VM_INTERRUPTED, why);
			}
		}
		/* One budget of each deferred queue, then the control socket's turn again. */
		if (p[2].revents & POLLIN)
			virtio_run_deferred(vm);
		if (fe->poll_ready)
			fe->poll_ready(fe->opaque, vm, p + 3, n);
	}
}

static void domain_destroy(struct domain *d)
{
	struct vm *vm = &d->vm;

	/* First: nothing serves a device's kicks while it goes. */
	virtio_io_stop(vm);
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		vhost_user_blk_destroy(&d->vdisks[i]);
	for (unsigned i = 0; i < VM_MAX_NICS; i++) {
		vhost_user_net_destroy(&d->vnets[i]);
		virtio_net_destroy(&d->nets[i]);
	}
	virtio_vsock_destroy(&d->vsock);
	vhost_vsock_destroy(&d->vvsock);
	if (vm->balloon)
		virtio_balloon_destroy(vm->balloon);
	for (unsigned i = 0; i < d->npmems; i++)
		virtio_pmem_destroy(&d->pmems[i]);
	for (unsigned i = 0; i < d->nshms; i++) {
		ivshmem_destroy(&d->shms[i]);
		if (d->shm_maps[i])
			munmap(d->shm_maps[i], d->shm_sizes[i]);
	}
	for (unsigned i = 0; i < vm->nvirtio; i++)
		virtio_pci_release(vm->virtio_devs[i]);

	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			munmap(v->run, (size_t)vm->run_size);
		if (v->fd > 0)
			close(v->fd);
		if (v->stats_fd > 0)
			close(v->stats_fd);
	}
	free(vm->supported_cpuid);
	gmem_destroy(&vm->mem);
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	if (vm->stop_eventfd > 0)
		close(vm->stop_eventfd);
	if (vm->defer_eventfd > 0)
		close(vm->defer_eventfd);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
	free(d);
}

/* The kernel and initrd are in guest memory now; keeping a copy would only cost the host. */
static void drop_boot_files(struct vm_resources *res)
{
	kernel_free(res->kernel);
	free(res->initrd);
	res->initrd = NULL;
	res->initrd_size = 0;
}

enum vm_stop vm_run_once(const struct vm_config *cfg, struct vm_resources *res,
			 const struct vm_frontend *fe, char *detail, size_t detail_len)
{
	struct domain *d = calloc(1, sizeof(*d));
	struct vm *vm;
	struct boot_entry entry;
	struct acpi_layout layout;
	sigset_t block;
	int sigfd = -1;
	long rsdp;
	enum vm_stop reason;

	if (!d) {
		snprintf(detail, detail_len, "out of memory");
		drop_boot_files(res);
		return VM_ERROR;
	}
	vm = &d->vm;
	vm->cfg = cfg;
	vm->nvcpus = cfg->vcpus;
	vm->stop_eventfd = eventfd(0, EFD_CLOEXEC);
	vm->defer_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->vm_fd = vm->kvm_fd = -1;
	vm->io_epoll_fd = vm->io_stop_fd = vm->irq_routes.vm_fd = -1;
	pthread_mutex_init(&vm->defer_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	if (kvm_open_vm(vm, detail, detail_len) < 0 ||
	    map_memory(vm, vm_config_ram_mib(cfg) << 20, detail, detail_len) < 0)
		goto fail;
	if (add_devices(d, cfg, res, fe->console_fd) < 0) {
		snprintf(detail, detail_len, "setting up devices failed");
		goto fail;
	}
	{
		int ret = virtio_io_start(vm);
		if (ret < 0) {
			snprintf(detail, detail_len, "cannot start the I/O thread: %s", strerror(-ret));
			goto fail;
		}
	}
	layout = (struct acpi_layout){
		.nvcpus = cfg->vcpus, .pci_mmio_base = PCI_MMIO_BASE, .pci_mmio_size = PCI_MMIO_SIZE};
	rsdp = acpi_build(gmem_ptr(&vm->mem, BOOT_ACPI_ADDR, BOOT_ACPI_SIZE), BOOT_ACPI_SIZE,
			  BOOT_ACPI_ADDR, &layout);
	if (rsdp < 0) {
		snprintf(detail, detail_len, "building ACPI tables failed");
		goto fail;
	}
	boot_write_reset_vector(&vm->mem, ACPI_RESET_PORT, ACPI_RESET_VALUE);
	if (boot_setup(&vm->mem, res->kernel, res->initrd, res->initrd_size, cfg->cmdline,
		       BOOT_ACPI_ADDR + (uint64_t)rsdp, &entry, detail, detail_len) < 0)
		goto fail;
	drop_boot_files(res);
	if (create_vcpus(vm, &entry, detail, detail_len) < 0)
		goto fail;

	/* Only the main thread takes these, through a signalfd; vCPU threads get SIGUSR1 kicks. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	sigfd = signalfd(-1, &block, SFD_CLOEXEC);
	{
		struct sigaction sa = {.sa_handler = kick_handler};
		sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: KVM_RUN must return EINTR */
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]) != 0) {
			vm_request_stop(vm, VM_ERROR, "cannot start vCPU thread");
			break;
		}
		vm->vcpus[i].started = 1;
	}
	for (unsigned i = 0; i < d->nshms; i++)
		if (ivshmem_start(&d->shms[i]) < 0)
			vm_request_stop(vm, VM_ERROR, "cannot start an ivshmem device's thread");
	if (atomic_load(&vm->stop_reason) == VM_RUNNING && gang_start(vm, detail, detail_len) < 0)
		vm_request_stop(vm, VM_ERROR, detail);
	if (fe->vm_changed)
		fe->vm_changed(fe->opaque, vm);
	main_loop(vm, fe, sigfd);
	gang_stop(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	if (fe->stopped)
		fe->stopped(fe->opaque, vm, (enum vm_stop)atomic_load(&vm->stop_reason),
			    vm->stop_detail);
	if (fe->vm_changed)
		fe->vm_changed(fe->opaque, NULL);
	close(sigfd);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
	reason = (enum vm_stop)atomic_load(&vm->stop_reason);
	snprintf(detail, detail_len, "%s", vm->stop_detail);
	domain_destroy(d);
	return reason;
fail:
	drop_boot_files(res);
	domain_destroy(d);
	return VM_ERROR;
}
