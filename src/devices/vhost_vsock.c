/*
 * virtio-vsock on the host kernel's vhost-vsock (vhost_vsock.h).
 */
#include "devices/vhost_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio_vsock.h"
#include "lib/log.h"
#include "vmm/confine.h"
#include "vmm/vm.h"

#define NKERNEL_QUEUES 2 /* receive and transmit; the event queue stays with us */

int vhost_vsock_open(const struct vsock_config *cfg, char *err, size_t errlen)
{
	uint64_t cid = cfg->cid;
	int fd = open(VHOST_VSOCK_DEVICE, O_RDWR | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			snprintf(err, errlen,
				 "vsock vhost: %s: %s (the host's vhost_vsock module is not loaded: "
				 "modprobe vhost_vsock)",
				 VHOST_VSOCK_DEVICE, strerror(errno));
		else
			snprintf(err, errlen, "vsock vhost: %s: %s", VHOST_VSOCK_DEVICE, strerror(errno));
		return ret;
	}
	if (ioctl(fd, VHOST_SET_OWNER) < 0) {
		ret = -errno;
		snprintf(err, errlen, "vsock vhost: VHOST_SET_OWNER: %s", strerror(errno));
		close(fd);
		return ret;
	}
	if (ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &cid) < 0) {
		ret = -errno;
		if (errno == EADDRINUSE)
			snprintf(err, errlen, "vsock vhost: CID %u is in use by another VM on this host",
				 cfg->cid);
		else
			snprintf(err, errlen, "vsock vhost: CID %u: %s", cfg->cid, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

static struct vhost_vsock *of(struct virtio_dev *vd)
{
	return vd->priv;
}

static void config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	uint8_t cfg[VIRTIO_VSOCK_CONFIG_LEN];
	uint64_t cid = of(vd)->cid;

	for (unsigned i = 0; i < sizeof(cfg); i++, cid >>= 8)
		cfg[i] = (uint8_t)cid;
	memcpy(data, cfg + off, len);
}

static void config_write(struct virtio_dev *vd, unsigned off, const void *data, unsigned len)
{
	(void)vd, (void)off, (void)data, (void)len;
}

/*
 * The driver's kicks reach the kernel through the kick eventfds (the
 * transport writes one KVM did not take); the event queue's is ours, and
 * nothing to do.
 */
static void queue_notify(struct virtio_dev *vd, unsigned q)
{
	(void)vd, (void)q;
}

/* The kernel's calls of queues whose irqfd is not bound come to the thread: it looks again. */
static void irqfds_changed(struct virtio_dev *vd)
{
	uint64_t one = 1;

	if (write(of(vd)->rescan_fd, &one, 8) < 0 && errno != EAGAIN)
		log_warn("vhost-vsock: waking its thread");
}

static void stop_kernel(struct vhost_vsock *v)
{
	int off = 0;

	if (v->running && ioctl(v->vhost_fd, VHOST_VSOCK_SET_RUNNING, &off) < 0)
		log_warn("vhost-vsock: VHOST_VSOCK_SET_RUNNING 0");
	v->running = false;
}

static void reset(struct virtio_dev *vd)
{
	stop_kernel(of(vd));
}

/* Guest RAM as the kernel maps it: each region at its host address. */
static int set_mem_table(struct vhost_vsock *v)
{
	const struct guest_mem *gm = &v->vdev.vm->mem;
	struct vhost_memory *m = calloc(1, sizeof(*m) + gm->nregions * sizeof(m->regions[0]));
	int ret = 0;

	if (!m)
		return -ENOMEM;
	m->nregions = gm->nregions;
	for (unsigned i = 0; i < gm->nregions; i++)
		m->regions[i] = (struct vhost_memory_region){
			.guest_phys_addr = gm->regions[i].gpa,
			.memory_size = gm->regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)gm->regions[i].host,
		};
	if (ioctl(v->vhost_fd, VHOST_SET_MEM_TABLE, m) < 0)
		ret = -errno;
	free(m);
	return ret;
}

/* The rings of queue q, checked to lie in guest RAM, handed to the kernel. */
static int set_queue(struct vhost_vsock *v, unsigned q, const char **what)
{
	const struct guest_mem *gm = &v->vdev.vm->mem;
	struct virtq *vq = &v->vdev.vqs[q];
	void *desc = gmem_ptr(gm, vq->desc_gpa, 16ULL * vq->size);
	void *avail = gmem_ptr(gm, vq->avail_gpa, 6 + 2ULL * vq->size);
	void *used = gmem_ptr(gm, vq->used_gpa, 6 + 8ULL * vq->size);
	struct vhost_vring_state num = {.index = q, .num = vq->size};
	struct vhost_vring_state base = {.index = q, .num = vq->last_avail};
	struct vhost_vring_file kick = {.index = q, .fd = v->vdev.kick_fd[q]};
	struct vhost_vring_file call = {.index = q, .fd = v->vdev.call_fd[q]};
	struct vhost_vring_addr addr = {
		.index = q,
		.desc_user_addr = (uint64_t)(uintptr_t)desc,
		.avail_user_addr = (uint64_t)(uintptr_t)avail,
		.used_user_addr = (uint64_t)(uintptr_t)used,
	};

	*what = "rings outside guest memory";
	if (!desc || !avail || !used)
		return -EFAULT;
	*what = "VHOST_SET_VRING_NUM";
	if (ioctl(v->vhost_fd, VHOST_SET_VRING_NUM, &num) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_BASE";
	if (ioctl(v->vhost_fd, VHOST_SET_VRING_BASE, &base) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_ADDR";
	if (ioctl(v->vhost_fd, VHOST_SET_VRING_ADDR, &addr) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_KICK";
	if (ioctl(v->vhost_fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return -errno;
	*what = "VHOST_SET_VRING_CALL";
	if (ioctl(v->vhost_fd, VHOST_SET_VRING_CALL, &call) < 0)
		return -errno;
	return 0;
}

/* DRIVER_OK: features, memory and both rings to the kernel, then it runs. Lock held. */
static void driver_ok(struct virtio_dev *vd)
{
	struct vhost_vsock *v = of(vd);
	uint64_t features = vd->driver_features & v->host_features;
	const char *what = "VHOST_SET_FEATURES";
	int on = 1, ret;

	for (unsigned q = 0; q < NKERNEL_QUEUES; q++)
		if (!vd->vqs[q].enabled) {
			virtio_needs_reset(vd, "DRIVER_OK with a queue not enabled");
			return;
		}
	ret = ioctl(v->vhost_fd, VHOST_SET_FEATURES, &features) < 0 ? -errno : 0;
	if (ret == 0) {
		what = "VHOST_SET_MEM_TABLE";
		ret = set_mem_table(v);
	}
	for (unsigned q = 0; q < NKERNEL_QUEUES && ret == 0; q++)
		ret = set_queue(v, q, &what);
	if (ret == 0) {
		what = "VHOST_VSOCK_SET_RUNNING";
		ret = ioctl(v->vhost_fd, VHOST_VSOCK_SET_RUNNING, &on) < 0 ? -errno : 0;
	}
	if (ret < 0) {
		log_warnx("vhost-vsock: %s: %s", what, strerror(-ret));
		virtio_needs_reset(vd, "the kernel's vhost-vsock refused the queues");
		return;
	}
	/* The transport assigns the queues' ioeventfds and irqfds once this returns. */
	v->running = true;
}

/* The kernel's calls of the queues whose irqfd is not bound become their interrupts here. */
static void *call_thread(void *arg)
{
	struct vhost_vsock *v = arg;
	struct virtio_dev *vd = &v->vdev;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("vhost-vsock: cannot load the device thread's system-call filter");
		return NULL;
	}
	for (;;) {
		struct pollfd p[NKERNEL_QUEUES + 2];
		uint64_t val;

		pthread_mutex_lock(&vd->lock);
		for (unsigned q = 0; q < NKERNEL_QUEUES; q++)
			p[q] = (struct pollfd){.fd = !vd->irqfd_gsi[q] ? vd->call_fd[q] : -1, .events = POLLIN};
		pthread_mutex_unlock(&vd->lock);
		p[NKERNEL_QUEUES] = (struct pollfd){.fd = v->stop_fd, .events = POLLIN};
		p[NKERNEL_QUEUES + 1] = (struct pollfd){.fd = v->rescan_fd, .events = POLLIN};
		if (poll(p, NKERNEL_QUEUES + 2, -1) < 0)
			continue;
		if (p[NKERNEL_QUEUES].revents)
			return NULL;
		if ((p[NKERNEL_QUEUES + 1].revents & POLLIN) && read(v->rescan_fd, &val, sizeof(val)) < 0) {
			/* Taken by an earlier pass. */
		}
		for (unsigned q = 0; q < NKERNEL_QUEUES; q++)
			if ((p[q].revents & POLLIN) && read(vd->call_fd[q], &val, sizeof(val)) == sizeof(val)) {
				pthread_mutex_lock(&vd->lock);
				virtio_queue_signal(vd, q);
				pthread_mutex_unlock(&vd->lock);
			}
	}
}

static const struct virtio_device_ops vhost_vsock_ops = {
	.name = "vhost-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.pci_class = 0x078000,
	.nqueues = 3,
	.queue_size = VIRTIO_VSOCK_QUEUE_SIZE,
	.config_size = VIRTIO_VSOCK_CONFIG_LEN,
	.config_read = config_read,
	.config_write = config_write,
	.queue_notify = queue_notify,
	.reset = reset,
	.driver_ok = driver_ok,
	/* The kernel reads the rx and tx queues' kick eventfds and writes their call eventfds. */
	.backend_kicks = true,
	.irqfds_changed = irqfds_changed,
};

static void close_fds(struct vhost_vsock *v)
{
	if (v->stop_fd >= 0)
		close(v->stop_fd);
	if (v->rescan_fd >= 0)
		close(v->rescan_fd);
	v->stop_fd = v->rescan_fd = -1;
}

int vhost_vsock_add(struct vm *vm, struct vhost_vsock *v, const struct vsock_config *cfg,
		    int vhost_fd)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->vhost_fd = vhost_fd;
	v->cid = cfg->cid;
	/* The queues' kick and call eventfds are the transport's (virtio_pci_add). */
	v->stop_fd = eventfd(0, EFD_CLOEXEC);
	v->rescan_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->stop_fd < 0 || v->rescan_fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (ioctl(vhost_fd, VHOST_GET_FEATURES, &v->host_features) < 0) {
		ret = -errno;
		goto fail;
	}
	/* The transport offers the ring features; a kernel without one must not see it negotiated. */
	if ((ret = virtio_pci_add(vm, &v->vdev, &vhost_vsock_ops, v, 0)) < 0)
		goto fail;
	v->vdev.device_features &= v->host_features;
	if (pthread_create(&v->thread, NULL, call_thread, v) != 0) {
		ret = -EAGAIN;
		goto fail;
	}
	v->active = true;
	return 0;
fail:
	close_fds(v);
	return ret;
}

void vhost_vsock_destroy(struct vhost_vsock *v)
{
	uint64_t one = 1;

	if (!v->active)
		return;
	pthread_mutex_lock(&v->vdev.lock);
	stop_kernel(v);
	pthread_mutex_unlock(&v->vdev.lock);
	if (write(v->stop_fd, &one, 8) < 0)
		log_warn("vhost-vsock: stop");
	pthread_join(v->thread, NULL);
	close_fds(v);
	v->active = false;
}
