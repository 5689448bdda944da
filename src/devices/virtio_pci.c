#include "devices/virtio_pci.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/confine.h"
#include "vmm/vm.h"

#define BAR_SIZE 0x8000
#define COMMON_OFF 0x0000
#define ISR_OFF 0x1000
#define DEVICE_OFF 0x2000
#define NOTIFY_OFF 0x3000
#define MSIX_TABLE_OFF 0x4000
#define MSIX_PBA_OFF 0x5000
#define NOTIFY_MULTIPLIER 4

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000

struct __attribute__((packed)) virtio_pci_cap {
	uint8_t cap_vndr;
	uint8_t cap_next;
	uint8_t cap_len;
	uint8_t cfg_type;
	uint8_t bar;
	uint8_t id;
	uint8_t padding[2];
	uint32_t offset;
	uint32_t length;
	uint32_t notify_off_multiplier; /* notify capability only */
};

struct __attribute__((packed)) msix_cap {
	uint8_t id;
	uint8_t next;
	uint16_t ctrl;
	uint32_t table;
	uint32_t pba;
};

int virtio_driver_ready(const struct virtio_dev *vd)
{
	return (vd->status & VIRTIO_STATUS_DRIVER_OK) && !(vd->status & VIRTIO_STATUS_NEEDS_RESET);
}

static uint16_t msix_ctrl(const struct virtio_dev *vd)
{
	uint16_t c;
	memcpy(&c, vd->pdev.config + vd->msix_cap + 2, 2);
	return c;
}

static void msix_fire(struct virtio_dev *vd, uint16_t vector)
{
	struct msix_entry *e;
	uint16_t ctrl = msix_ctrl(vd);

	if (vector >= vd->nvectors || !(ctrl & MSIX_CTRL_ENABLE))
		return;
	e = &vd->msix[vector];
	if ((ctrl & MSIX_CTRL_MASKALL) || (e->ctrl & 1)) {
		vd->msix_pending |= 1ULL << vector;
		return;
	}
	vd->msix_pending &= ~(1ULL << vector);
	vm_signal_msi(vd->vm, ((uint64_t)e->addr_hi << 32) | e->addr_lo, e->data);
}

/* Delivers interrupts that were held while their vector or the function was masked. */
static void msix_flush_pending(struct virtio_dev *vd)
{
	for (uint16_t v = 0; v < vd->nvectors; v++)
		if (vd->msix_pending & (1ULL << v))
			msix_fire(vd, v);
}

/* Whether vector v delivers now: MSI-X on, the function and the vector unmasked. */
static bool vector_live(const struct virtio_dev *vd, uint16_t v)
{
	uint16_t ctrl = msix_ctrl(vd);

	return v < vd->nvectors && (ctrl & MSIX_CTRL_ENABLE) && !(ctrl & MSIX_CTRL_MASKALL) &&
	       !(vd->msix[v].ctrl & 1);
}

/* Queue q's interrupt: through its irqfd when KVM delivers it, else as an MSI now or pending. */
static void queue_fire(struct virtio_dev *vd, unsigned q)
{
	uint64_t one = 1;

	vd->isr |= 1;
	if (vd->irqfd_gsi[q]) {
		/* EAGAIN: the count is at its maximum, so an interrupt is on its way already. */
		if (write(vd->call_fd[q], &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn("%s: queue %u's call eventfd", vd->ops->name, q);
		return;
	}
	msix_fire(vd, vd->vqs[q].msix_vector);
}

void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q)
{
	struct virtq *vq = &vd->vqs[q];

	if (!virtq_should_notify(vq))
		return;
	queue_fire(vd, q);
}

void virtio_queue_signal(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->nqueues)
		return;
	queue_fire(vd, q);
}

/*
 * The MSI route of every live vector, as the guest programmed it. A masked
 * vector's route stays as it was: nothing is bound to it meanwhile. Lock held.
 */
static void sync_routes(struct virtio_dev *vd)
{
	int ret;

	if (!vd->gsi_base)
		return;
	for (uint16_t v = 0; v < vd->nvectors; v++) {
		const struct msix_entry *e = &vd->msix[v];
		if (!vector_live(vd, v))
			continue;
		ret = irq_routes_set_msi(&vd->vm->irq_routes, vd->gsi_base + v, true,
					 (uint64_t)e->addr_hi << 32 | e->addr_lo, e->data);
		if (ret < 0)
			log_errno(ret, "%s: routing MSI-X vector %u", vd->ops->name, v);
	}
}

/* Binds queue q's call eventfd to gsi (0: to nothing). Lock held. */
static void bind_irqfd(struct virtio_dev *vd, unsigned q, unsigned gsi)
{
	struct kvm_irqfd f = {.fd = (uint32_t)vd->call_fd[q]};

	if (vd->irqfd_gsi[q]) {
		f.gsi = vd->irqfd_gsi[q];
		f.flags = KVM_IRQFD_FLAG_DEASSIGN;
		if (ioctl(vd->vm->vm_fd, KVM_IRQFD, &f) < 0)
			log_warn("%s: KVM_IRQFD deassign, queue %u", vd->ops->name, q);
		vd->irqfd_gsi[q] = 0;
	}
	if (!gsi)
		return;
	f.gsi = gsi;
	f.flags = 0;
	/* KVM delivers at once what the eventfd holds already: a completion while it was unbound. */
	if (ioctl(vd->vm->vm_fd, KVM_IRQFD, &f) < 0)
		log_warn("%s: KVM_IRQFD, queue %u on GSI %u", vd->ops->name, q, gsi);
	else
		vd->irqfd_gsi[q] = gsi;
}

/*
 * Each queue's call eventfd bound to its vector's GSI while the queue runs
 * and the vector is live, and to nothing otherwise: a masked vector's
 * interrupts then take the old way (msix_fire), which keeps them pending
 * in the PBA until the vector is unmasked. Lock held.
 */
static void sync_irqfds(struct virtio_dev *vd)
{
	bool changed = false;

	for (unsigned q = 0; q < vd->nqueues; q++) {
		const struct virtq *vq = &vd->vqs[q];
		unsigned want = 0;

		if (vd->gsi_base && vd->call_fd[q] >= 0 && vq->enabled &&
		    (vd->status & VIRTIO_STATUS_DRIVER_OK) && vector_live(vd, vq->msix_vector))
			want = vd->gsi_base + vq->msix_vector;
		if (want != vd->irqfd_gsi[q]) {
			bind_irqfd(vd, q, want);
			changed = true;
		}
	}
	if (changed && vd->ops->irqfds_changed)
		vd->ops->irqfds_changed(vd);
}

/* Assigns (addr != 0) or deassigns KVM's ioeventfd on queue q's notify address. */
static int kick_ioeventfd(struct virtio_dev *vd, unsigned q, uint64_t addr, bool assign)
{
	/* Length 0: any write there, whatever its width (Linux writes the queue's index, 16 bits). */
	struct kvm_ioeventfd io = {
		.addr = addr,
		.fd = vd->kick_fd[q],
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	return ioctl(vd->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/*
 * Each running queue's kick eventfd signalled by KVM on the driver's
 * writes to its notify address, where BAR0 decodes now; none while the
 * device is reset or BAR0 decodes nowhere. Lock held.
 */
static void sync_kicks(struct virtio_dev *vd)
{
	uint64_t bar = vd->pdev.maps[0].mapped_at;

	if (!vd->vm || vd->vm->vm_fd < 0)
		return;
	for (unsigned q = 0; q < vd->nqueues; q++) {
		uint64_t want = 0;
		int ret;

		if (vd->kick_fd[q] >= 0 && bar && vd->vqs[q].enabled && (vd->status & VIRTIO_STATUS_DRIVER_OK))
			want = bar + NOTIFY_OFF + (uint64_t)NOTIFY_MULTIPLIER * q;
		if (want == vd->kick_addr[q])
			continue;
		if (vd->kick_addr[q] && (ret = kick_ioeventfd(vd, q, vd->kick_addr[q], false)) < 0)
			log_errno(ret, "%s: KVM_IOEVENTFD deassign, queue %u", vd->ops->name, q);
		vd->kick_addr[q] = 0;
		/* Without it the driver's writes still come, as exits (kick()). */
		if (want && (ret = kick_ioeventfd(vd, q, want, true)) < 0)
			log_errno(ret, "%s: KVM_IOEVENTFD, queue %u", vd->ops->name, q);
		else
			vd->kick_addr[q] = want;
	}
}

/* After anything that moves a queue's kick or interrupt: status, MSI-X, vectors, BAR0. Lock held. */
static void sync_eventfds(struct virtio_dev *vd)
{
	if (!vd->vm || vd->vm->vm_fd < 0)
		return;
	sync_kicks(vd);
	sync_routes(vd);
	sync_irqfds(vd);
}

void virtio_config_changed(struct virtio_dev *vd)
{
	if (!(vd->status & VIRTIO_STATUS_DRIVER_OK))
		return; /* the driver reads the config when it is ready */
	vd->config_generation++;
	vd->isr |= 2;
	msix_fire(vd, vd->config_msix_vector);
}

void virtio_needs_reset(struct virtio_dev *vd, const char *why)
{
	if (vd->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warnx("%s: driver error (%s); device needs reset", vd->ops->name, why);
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	vd->config_generation++;
	vd->isr |= 2;
	msix_fire(vd, vd->config_msix_vector);
}

static void device_reset(struct virtio_dev *vd)
{
	for (unsigned i = 0; i < vd->nqueues; i++)
		virtq_reset(&vd->vqs[i]);
	vd->driver_features = 0;
	vd->device_feature_select = 0;
	vd->driver_feature_select = 0;
	vd->status = 0;
	vd->isr = 0;
	vd->config_msix_vector = VIRTIO_NO_VECTOR;
	vd->queue_select = 0;
	vd->msix_pending = 0;
	if (vd->ops->reset)
		vd->ops->reset(vd);
	sync_eventfds(vd); /* not running: no ioeventfds, no irqfds */
}

static struct virtq *selected_queue(struct virtio_dev *vd)
{
	return vd->queue_select < vd->nqueues ? &vd->vqs[vd->queue_select] : NULL;
}

static uint64_t common_read(struct virtio_dev *vd, unsigned off)
{
	struct virtq *vq = selected_queue(vd);

	switch (off) {
	case 0x00: return vd->device_feature_select;
	case 0x04:
		return vd->device_feature_select < 2
			       ? (uint32_t)(vd->device_features >> (32 * vd->device_feature_select))
			       : 0;
	case 0x08: return vd->driver_feature_select;
	case 0x0c:
		return vd->driver_feature_select < 2
			       ? (uint32_t)(vd->driver_features >> (32 * vd->driver_feature_select))
			       : 0;
	case 0x10: return vd->config_msix_vector;
	case 0x12: return vd->nqueues;
	case 0x14: return vd->status;
	case 0x15: return vd->config_generation;
	case 0x16: return vd->queue_select;
	case 0x18: return vq ? vq->size : 0;
	case 0x1a: return vq ? vq->msix_vector : VIRTIO_NO_VECTOR;
	case 0x1c: return vq ? vq->enabled : 0;
	case 0x1e: return vq ? vd->queue_select : 0; /* queue_notify_off */
	case 0x20: return vq ? (uint32_t)vq->desc_gpa : 0;
	case 0x24: return vq ? (uint32_t)(vq->desc_gpa >> 32) : 0;
	case 0x28: return vq ? (uint32_t)vq->avail_gpa : 0;
	case 0x2c: return vq ? (uint32_t)(vq->avail_gpa >> 32) : 0;
	case 0x30: return vq ? (uint32_t)vq->used_gpa : 0;
	case 0x34: return vq ? (uint32_t)(vq->used_gpa >> 32) : 0;
	default: return 0;
	}
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
	if (high)
		*v = (*v & 0xffffffffULL) | ((uint64_t)val << 32);
	else
		*v = (*v & ~0xffffffffULL) | val;
}

static void status_write(struct virtio_dev *vd, uint8_t val)
{
	if (val == 0) {
		device_reset(vd);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only what we offered, and only the modern interface. */
		if ((vd->driver_features & ~vd->device_features) ||
		    !(vd->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(vd->status & VIRTIO_STATUS_DRIVER_OK) &&
	    (val & VIRTIO_STATUS_FEATURES_OK)) {
		vd->status = (uint8_t)(val | (vd->status & VIRTIO_STATUS_NEEDS_RESET));
		if (vd->ops->driver_ok)
			vd->ops->driver_ok(vd);
		sync_eventfds(vd);
		return;
	}
	vd->status = (uint8_t)(val | (vd->status & VIRTIO_STATUS_NEEDS_RESET));
}

static void queue_enable(struct virtio_dev *vd, struct virtq *vq)
{
	vq->event_idx = vd->driver_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = vd->driver_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (virtq_enable(vq) < 0)
		virtio_needs_reset(vd, "queue rings outside guest memory or bad size");
}

static void common_write(struct virtio_dev *vd, unsigned off, uint32_t val)
{
	struct virtq *vq = selected_queue(vd);
	/* Queue registers are frozen once the queue is enabled. */
	bool qw = vq && !vq->enabled;

	switch (off) {
	case 0x00: vd->device_feature_select = val; break;
	case 0x08: vd->driver_feature_select = val; break;
	case 0x0c:
		if (vd->driver_feature_select < 2 && !(vd->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&vd->driver_features, vd->driver_feature_select == 1, val);
		break;
	case 0x10:
		vd->config_msix_vector = val < vd->nvectors ? (uint16_t)val : VIRTIO_NO_VECTOR;
		break;
	case 0x14: status_write(vd, (uint8_t)val); break;
	case 0x16: vd->queue_select = (uint16_t)val; break;
	case 0x18:
		if (qw)
			vq->size = (uint16_t)val;
		break;
	case 0x1a:
		if (vq) {
			vq->msix_vector = val < vd->nvectors ? (uint16_t)val : VIRTIO_NO_VECTOR;
			sync_eventfds(vd);
		}
		break;
	case 0x1c:
		if (qw && val == 1)
			queue_enable(vd, vq);
		break;
	case 0x20: if (qw) set_half(&vq->desc_gpa, false, val); break;
	case 0x24: if (qw) set_half(&vq->desc_gpa, true, val); break;
	case 0x28: if (qw) set_half(&vq->avail_gpa, false, val); break;
	case 0x2c: if (qw) set_half(&vq->avail_gpa, true, val); break;
	case 0x30: if (qw) set_half(&vq->used_gpa, false, val); break;
	case 0x34: if (qw) set_half(&vq->used_gpa, true, val); break;
	default: break;
	}
}

/* Register width in the common config, by offset (0 = not a register start). */
static unsigned common_width(unsigned off)
{
	switch (off) {
	case 0x00: case 0x04: case 0x08: case 0x0c:
	case 0x20: case 0x24: case 0x28: case 0x2c: case 0x30: case 0x34:
		return 4;
	case 0x10: case 0x12: case 0x16: case 0x18: case 0x1a: case 0x1c: case 0x1e:
		return 2;
	case 0x14: case 0x15:
		return 1;
	default:
		return 0;
	}
}

static void notify(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->nqueues || !vd->vqs[q].enabled || !virtio_driver_ready(vd))
		return;
	vd->ops->queue_notify(vd, q);
	if (vd->vqs[q].broken)
		virtio_needs_reset(vd, "malformed descriptor chain");
}

/*
 * A notify that came as an exit (no ioeventfd yet, or none possible): to
 * the kick eventfd when something serves it (the back-end, the I/O
 * thread), so the vCPU does no device work; inline without either.
 */
static void kick(struct virtio_dev *vd, unsigned q)
{
	uint64_t one = 1;

	if (q < vd->nqueues && vd->kick_fd[q] >= 0 &&
	    (vd->ops->backend_kicks || (vd->vm && vd->vm->io_running))) {
		if (write(vd->kick_fd[q], &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn("%s: queue %u's kick eventfd", vd->ops->name, q);
		return;
	}
	notify(vd, q);
}

bool virtio_budget_left(struct virtio_dev *vd, unsigned q, unsigned *served, unsigned budget)
{
	if (*served >= budget) {
		virtio_queue_defer(vd, q);
		return false;
	}
	(*served)++;
	return true;
}

void virtio_queue_defer(struct virtio_dev *vd, unsigned q)
{
	struct vm *vm = vd->vm;
	uint64_t one = 1;

	if (!vm || vm->defer_eventfd <= 0)
		return;
	vd->deferred_queues |= 1u << q;
	pthread_mutex_lock(&vm->defer_lock);
	if (!vd->deferred_listed) {
		vd->deferred_listed = true;
		vd->next_deferred = vm->deferred;
		vm->deferred = vd;
	}
	pthread_mutex_unlock(&vm->defer_lock);
	if (write(vm->defer_eventfd, &one, sizeof(one)) < 0) {
		/* Full (2^64 - 2 wake-ups pending): the main thread is on its way already. */
	}
}

void virtio_run_deferred(struct vm *vm)
{
	struct virtio_dev *batch[64];
	unsigned n = 0;
	uint64_t count, one = 1;

	if (read(vm->defer_eventfd, &count, sizeof(count)) < 0) {
		/* Nothing pending (EAGAIN): an earlier pass took it. */
	}
	/* Taken off the list under its lock: a vCPU may list a device again meanwhile. */
	pthread_mutex_lock(&vm->defer_lock);
	while (vm->deferred && n < sizeof(batch) / sizeof(batch[0])) {
		struct virtio_dev *vd = vm->deferred;
		vm->deferred = vd->next_deferred;
		vd->deferred_listed = false;
		batch[n++] = vd;
	}
	if (vm->deferred && write(vm->defer_eventfd, &one, sizeof(one)) < 0) {
		/* Wake-ups pending already. */
	}
	pthread_mutex_unlock(&vm->defer_lock);
	for (unsigned i = 0; i < n; i++) {
		struct virtio_dev *vd = batch[i];
		uint32_t queues;

		pthread_mutex_lock(&vd->lock);
		queues = vd->deferred_queues;
		vd->deferred_queues = 0;
		for (unsigned q = 0; q < vd->nqueues; q++)
			if (queues & (1u << q))
				notify(vd, q);
		pthread_mutex_unlock(&vd->lock);
	}
}

static void msix_table_access(struct virtio_dev *vd, uint64_t off, void *data, unsigned len,
			      bool write)
{
	unsigned idx = (unsigned)(off / 16), word = (unsigned)(off % 16) / 4;
	uint32_t *w;

	if (idx >= vd->nvectors || len != 4 || (off & 3)) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	w = &((uint32_t *)&vd->msix[idx])[word];
	if (!write) {
		memcpy(data, w, 4);
		return;
	}
	memcpy(w, data, 4);
	sync_eventfds(vd); /* a live vector's new message, or a vector (un)masked */
	if (word == 3 && !(vd->msix[idx].ctrl & 1) && (vd->msix_pending & (1ULL << idx)))
		msix_fire(vd, (uint16_t)idx);
}

static void bar_read(struct pci_device *pdev, int bar, uint64_t off, void *data, unsigned len)
{
	struct virtio_dev *vd = pdev->opaque;
	uint64_t v = 0;

	memset(data, 0, len);
	pthread_mutex_lock(&vd->lock);
	if (off < ISR_OFF) {
		if (common_width((unsigned)off) == len) {
			v = common_read(vd, (unsigned)off);
			memcpy(data, &v, len);
		}
	} else if (off == ISR_OFF) {
		/* Reading the ISR acknowledges it. */
		*(uint8_t *)data = vd->isr;
		vd->isr = 0;
	} else if (off >= DEVICE_OFF && off < NOTIFY_OFF) {
		unsigned o = (unsigned)(off - DEVICE_OFF);
		if (o < vd->ops->config_size && len <= vd->ops->config_size - o && vd->ops->config_read)
			vd->ops->config_read(vd, o, data, len);
	} else if (off >= MSIX_TABLE_OFF && off < MSIX_PBA_OFF) {
		msix_table_access(vd, off - MSIX_TABLE_OFF, data, len, false);
	} else if (off >= MSIX_PBA_OFF && off < MSIX_PBA_OFF + 8) {
		unsigned o = (unsigned)(off - MSIX_PBA_OFF);
		if (len <= 8 - o)
			memcpy(data, (uint8_t *)&vd->msix_pending + o, len);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void bar_write(struct pci_device *pdev, int bar, uint64_t off, const void *data,
		      unsigned len)
{
	struct virtio_dev *vd = pdev->opaque;
	uint32_t v = 0;

	if (len <= 4)
		memcpy(&v, data, len);
	pthread_mutex_lock(&vd->lock);
	if (off < ISR_OFF) {
		if (common_width((unsigned)off) == len)
			common_write(vd, (unsigned)off, v);
	} else if (off >= DEVICE_OFF && off < NOTIFY_OFF) {
		unsigned o = (unsigned)(off - DEVICE_OFF);
		if (o < vd->ops->config_size && len <= vd->ops->config_size - o &&
		    vd->ops->config_write)
			vd->ops->config_write(vd, o, data, len);
	} else if (off >= NOTIFY_OFF && off < MSIX_TABLE_OFF) {
		kick(vd, (unsigned)(off - NOTIFY_OFF) / NOTIFY_MULTIPLIER);
	} else if (off >= MSIX_TABLE_OFF && off < MSIX_PBA_OFF) {
		msix_table_access(vd, off - MSIX_TABLE_OFF, (void *)data, len, true);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void config_written(struct pci_device *pdev, unsigned offset, unsigned len)
{
	struct virtio_dev *vd = pdev->opaque;

	/* The MSI-X enable or function-mask bits may have changed. */
	pthread_mutex_lock(&vd->lock);
	sync_eventfds(vd);
	msix_flush_pending(vd);
	pthread_mutex_unlock(&vd->lock);
}

/* BAR0 moved or stopped decoding: the notify addresses' ioeventfds follow. */
static void bars_changed(struct pci_device *pdev)
{
	struct virtio_dev *vd = pdev->opaque;

	pthread_mutex_lock(&vd->lock);
	sync_eventfds(vd);
	pthread_mutex_unlock(&vd->lock);
}

static const struct pci_device_ops virtio_pci_ops = {
	.bar_read = bar_read,
	.bar_write = bar_write,
	.config_written = config_written,
	.bars_changed = bars_changed,
};

static void add_virtio_cap(struct pci_device *pdev, uint8_t type, uint32_t off, uint32_t len)
{
	struct virtio_pci_cap cap = {
		.cap_vndr = PCI_CAP_ID_VNDR,
		.cap_len = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16,
		.cfg_type = type,
		.bar = 0,
		.offset = off,
		.length = len,
		.notify_off_multiplier = NOTIFY_MULTIPLIER,
	};
	pci_add_capability(pdev, &cap, cap.cap_len);
}

int virtio_pci_add(struct vm *vm, struct virtio_dev *vd, const struct virtio_device_ops *ops,
		   void *priv, uint64_t features)
{
	return virtio_pci_add_queues(vm, vd, ops, priv, features, ops->nqueues);
}

int virtio_pci_add_queues(struct vm *vm, struct virtio_dev *vd, const struct virtio_device_ops *ops,
			  void *priv, uint64_t features, unsigned nqueues)
{
	struct msix_cap mc = {
		.id = PCI_CAP_ID_MSIX,
		.ctrl = (uint16_t)nqueues, /* the table's size less one: nqueues + 1 vectors */
		.table = MSIX_TABLE_OFF, /* BIR 0 */
		.pba = MSIX_PBA_OFF,
	};

	int ret;

	if (nqueues == 0 || nqueues > VIRTIO_MAX_QUEUES || ops->config_size > NOTIFY_OFF - DEVICE_OFF)
		return -EINVAL;
	memset(vd, 0, sizeof(*vd));
	vd->ops = ops;
	vd->priv = priv;
	vd->vm = vm;
	vd->nqueues = nqueues;
	vd->nvectors = nqueues + 1;
	pthread_mutex_init(&vd->lock, NULL);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		vd->kick_fd[q] = vd->call_fd[q] = -1;
		vd->kicks[q] = (struct virtio_kick){.vd = vd, .q = q};
	}
	if (vm->nvirtio == sizeof(vm->virtio_devs) / sizeof(vm->virtio_devs[0]))
		return -ENOSPC;
	vm->virtio_devs[vm->nvirtio++] = vd;
	/*
	 * A back-end needs its eventfds whatever runs it; an in-VMM device
	 * only where KVM signals them (not in a device set built for a fuzzer).
	 */
	if (vm->vm_fd >= 0 || ops->backend_kicks) {
		for (unsigned q = 0; q < nqueues; q++) {
			vd->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			vd->call_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (vd->kick_fd[q] < 0 || vd->call_fd[q] < 0)
				return -errno;
		}
	}
	if (vm->vm_fd >= 0 && (ret = irq_routes_alloc(&vm->irq_routes, vd->nvectors, &vd->gsi_base)) < 0)
		return ret;
	vd->device_features = features | (1ULL << VIRTIO_F_VERSION_1) |
			      (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
			      (1ULL << VIRTIO_RING_F_EVENT_IDX);
	for (unsigned i = 0; i < nqueues; i++)
		virtq_init(&vd->vqs[i], &vm->mem, ops->queue_size);
	for (unsigned i = 0; i < VIRTIO_MSIX_VECTORS; i++)
		vd->msix[i].ctrl = 1; /* vectors start masked */
	vd->config_msix_vector = VIRTIO_NO_VECTOR;

	vd->pdev.ops = &virtio_pci_ops;
	vd->pdev.opaque = vd;
	vd->pdev.bars[0] = (struct pci_bar){.size = BAR_SIZE, .is_64 = true};
	vd->pdev.config[PCI_REVISION_ID] = 1; /* modern device */
	add_virtio_cap(&vd->pdev, VIRTIO_PCI_CAP_COMMON_CFG, COMMON_OFF, 0x38);
	add_virtio_cap(&vd->pdev, VIRTIO_PCI_CAP_ISR_CFG, ISR_OFF, 1);
	add_virtio_cap(&vd->pdev, VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_OFF,
		       ops->config_size ? ops->config_size : 4);
	add_virtio_cap(&vd->pdev, VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFF,
		       NOTIFY_MULTIPLIER * nqueues);
	vd->msix_cap = pci_add_capability(&vd->pdev, &mc, sizeof(mc));
	if (!vd->msix_cap)
		return -ENOSPC;
	/* The guest may set MSI-X enable and function mask, nothing else in the capability. */
	vd->pdev.wmask[vd->msix_cap + 3] = 0xc0;
	return pci_device_add(vm->pci, &vd->pdev, 0x1af4, (uint16_t)(0x1040 + ops->device_id),
			      ops->pci_class, 0x1af4, 0x1100);
}

void virtio_pci_release(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (vd->vm && vd->vm->vm_fd >= 0) {
			if (vd->irqfd_gsi[q])
				bind_irqfd(vd, q, 0);
			if (vd->kick_addr[q] && kick_ioeventfd(vd, q, vd->kick_addr[q], false) == 0)
				vd->kick_addr[q] = 0;
		}
		if (vd->kick_fd[q] >= 0)
			close(vd->kick_fd[q]);
		if (vd->call_fd[q] >= 0)
			close(vd->call_fd[q]);
		vd->kick_fd[q] = vd->call_fd[q] = -1;
	}
	pthread_mutex_unlock(&vd->lock);
}

/* The I/O thread: each kick KVM signalled, served as the notify it stands for. */
static void *io_thread(void *arg)
{
	struct vm *vm = arg;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		vm_request_stop(vm, VM_ERROR, "cannot load the I/O thread's system-call filter");
		return NULL;
	}
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(vm->io_epoll_fd, ev, 16, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			vm_request_stop(vm, VM_ERROR, "the I/O thread's epoll_wait failed");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct virtio_kick *k = ev[i].data.ptr;
			uint64_t count;

			if (!k)
				return NULL; /* the stop eventfd */
			/* Several kicks since the last look are one: the device drains its queue. */
			if (read(k->vd->kick_fd[k->q], &count, sizeof(count)) != sizeof(count))
				continue;
			pthread_mutex_lock(&k->vd->lock);
			notify(k->vd, k->q);
			pthread_mutex_unlock(&k->vd->lock);
		}
	}
}

int virtio_io_start(struct vm *vm)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ret;

	vm->io_epoll_fd = vm->io_stop_fd = -1;
	if (vm->vm_fd < 0)
		return 0;
	vm->io_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	vm->io_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->io_epoll_fd < 0 || vm->io_stop_fd < 0)
		return -errno;
	ev.data.ptr = NULL;
	if (epoll_ctl(vm->io_epoll_fd, EPOLL_CTL_ADD, vm->io_stop_fd, &ev) < 0)
		return -errno;
	for (unsigned i = 0; i < vm->nvirtio; i++) {
		struct virtio_dev *vd = vm->virtio_devs[i];
		if (vd->ops->backend_kicks)
			continue;
		for (unsigned q = 0; q < vd->nqueues; q++) {
			if (vd->kick_fd[q] < 0)
				continue;
			ev.data.ptr = &vd->kicks[q];
			if (epoll_ctl(vm->io_epoll_fd, EPOLL_CTL_ADD, vd->kick_fd[q], &ev) < 0)
				return -errno;
		}
	}
	if ((ret = pthread_create(&vm->io_thread, NULL, io_thread, vm)) != 0)
		return -ret;
	vm->io_running = true;
	return 0;
}

void virtio_io_stop(struct vm *vm)
{
	uint64_t one = 1;

	if (vm->io_running) {
		if (write(vm->io_stop_fd, &one, sizeof(one)) < 0)
			log_warn("stopping the I/O thread");
		pthread_join(vm->io_thread, NULL);
		vm->io_running = false;
	}
	if (vm->io_epoll_fd >= 0)
		close(vm->io_epoll_fd);
	if (vm->io_stop_fd >= 0)
		close(vm->io_stop_fd);
	vm->io_epoll_fd = vm->io_stop_fd = -1;
}
