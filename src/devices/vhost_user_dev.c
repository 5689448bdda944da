#include "devices/vhost_user_dev.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/vm.h"
#include "vmm/confine.h"

void vhost_user_dev_close(struct vhost_user_dev *u)
{
	if (u->stop_fd >= 0)
		close(u->stop_fd);
	if (u->rescan_fd >= 0)
		close(u->rescan_fd);
	u->stop_fd = u->rescan_fd = -1;
	vhost_frontend_close(&u->fe);
}

int vhost_user_dev_open(struct vhost_user_dev *u, const char *path, unsigned nqueues,
			const struct vhost_user_dev_hooks *hooks, char *err, size_t errlen)
{
	int ret;

	memset(u, 0, sizeof(*u));
	u->fe.sock = -1;
	u->stop_fd = u->rescan_fd = u->inflight_fd = -1;
	u->hooks = hooks;
	u->nqueues = nqueues;
	if (nqueues == 0 || nqueues > VIRTIO_MAX_QUEUES) {
		snprintf(err, errlen, "%u queues: at most %u", nqueues, VIRTIO_MAX_QUEUES);
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(u->path)) {
		snprintf(err, errlen, "socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(u->path, path);
	if ((ret = vhost_frontend_connect(&u->fe, path, err, errlen)) < 0)
		return ret;
	u->connected = true;
	/* The queues' kick and call eventfds are the transport's (virtio_pci_add): KVM signals them. */
	u->stop_fd = eventfd(0, EFD_CLOEXEC);
	u->rescan_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->stop_fd < 0 || u->rescan_fd < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "eventfd: %s", strerror(errno));
	vhost_user_dev_close(u);
	return ret;
}

static struct vhost_user_dev *of(struct virtio_dev *vd)
{
	return (struct vhost_user_dev *)((char *)vd - offsetof(struct vhost_user_dev, vdev));
}

void vhost_user_dev_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct vhost_user_dev *u = of(vd);
	uint64_t one = 1;

	if (q < u->nqueues && u->started && write(vd->kick_fd[q], &one, 8) < 0 && errno != EAGAIN)
		log_warn("%s: kick", u->hooks->kind);
}

void vhost_user_dev_irqfds_changed(struct virtio_dev *vd)
{
	struct vhost_user_dev *u = of(vd);
	uint64_t one = 1;

	if (u->rescan_fd >= 0 && write(u->rescan_fd, &one, 8) < 0 && errno != EAGAIN)
		log_warn("%s: waking the call thread", u->hooks->kind);
}

void vhost_user_dev_reset(struct virtio_dev *vd)
{
	struct vhost_user_dev *u = of(vd);

	for (unsigned q = 0; q < u->nqueues; q++)
		if (u->started && u->connected && vhost_frontend_stop_queue(&u->fe, q) < 0)
			log_warnx("%s: the back-end did not stop queue %u", u->hooks->kind, q);
	u->started = false;
}

/* Hands the back-end memory, the device's state and every queue. Lock held. */
static int start_backend(struct vhost_user_dev *u, char *err, size_t errlen)
{
	struct virtio_dev *vd = &u->vdev;
	int ret;

	if ((ret = vhost_frontend_setup(&u->fe, vd->driver_features, &vd->vm->mem, err, errlen)) < 0 ||
	    (u->hooks->prepare && (ret = u->hooks->prepare(u, err, errlen)) < 0) ||
	    (u->hooks->inflight &&
	     (ret = vhost_frontend_inflight(&u->fe, (uint16_t)u->nqueues, vd->vqs[0].size,
					    &u->inflight_fd, &u->inflight_size, err, errlen)) < 0))
		return ret;
	for (unsigned q = 0; q < u->nqueues; q++) {
		struct virtq *vq = &vd->vqs[q];
		uint16_t *used_idx;

		/* A queue the driver left off (a network driver without MQ uses one pair) is not started. */
		if (!vq->enabled)
			continue;
		used_idx = gmem_ptr(&vd->vm->mem, vq->used_gpa + 2, 2);
		if (!used_idx) {
			snprintf(err, errlen, "queue %u: the used ring is outside guest memory", q);
			return -EFAULT;
		}
		/* What the driver sees completed; a back-end with an inflight area knows the rest. */
		ret = vhost_frontend_start_queue(&u->fe, &vd->vm->mem, q, vq->size, vq->desc_gpa,
						 vq->avail_gpa, vq->used_gpa, *used_idx, vd->kick_fd[q],
						 vd->call_fd[q], err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void vhost_user_dev_driver_ok(struct virtio_dev *vd)
{
	struct vhost_user_dev *u = of(vd);
	char err[256];

	if (!u->vdev.vqs[0].enabled) {
		virtio_needs_reset(&u->vdev, "DRIVER_OK with its first queue not enabled");
		return;
	}
	u->started = true;
	/* Without a back-end now, the next one is handed the queues when it comes. */
	if (u->connected && start_backend(u, err, sizeof(err)) < 0)
		log_warnx("%s %s: %s; waiting for the back-end to come back", u->hooks->kind, u->path,
			  err);
}

/* The back-end went away: forget its connection, keep everything the guest sees. */
static void backend_lost(struct vhost_user_dev *u)
{
	pthread_mutex_lock(&u->vdev.lock);
	vhost_frontend_close(&u->fe);
	u->connected = false;
	pthread_mutex_unlock(&u->vdev.lock);
	log_warnx("%s %s: the back-end went away; waiting for it", u->hooks->kind, u->path);
}

/* A back-end listens again: negotiate and hand it the running queues. */
static bool backend_back(struct vhost_user_dev *u)
{
	struct vhost_frontend fe;
	char err[256];
	bool ok = true;

	if (vhost_frontend_connect(&fe, u->path, err, sizeof(err)) < 0)
		return false;
	pthread_mutex_lock(&u->vdev.lock);
	u->fe = fe;
	u->connected = true;
	if (u->started && start_backend(u, err, sizeof(err)) < 0) {
		vhost_frontend_close(&u->fe);
		u->connected = false;
		ok = false;
	} else if (u->started) {
		/*
		 * The dead back-end may have moved a used index and died before
		 * its interrupt; with event indexes the next one would then see
		 * no reason to interrupt, and a driver waiting for it (a full
		 * transmit queue) waits for good. A spurious one costs nothing.
		 */
		for (unsigned q = 0; q < u->nqueues; q++)
			virtio_queue_signal(&u->vdev, q);
	}
	pthread_mutex_unlock(&u->vdev.lock);
	if (ok) {
		u->reconnects++;
		log_info("%s %s: the back-end is back (reconnect %u)", u->hooks->kind, u->path,
			 u->reconnects);
	}
	return ok;
}

/*
 * A back-end that hangs up is waited for and reconnected. Its calls reach
 * the guest through KVM (irqfds) while MSI-X delivers; the calls of queues
 * whose irqfd is not bound (MSI-X off, the vector masked) come here and
 * take the transport's way, which keeps a masked vector's interrupt
 * pending. The transport wakes the thread (rescan_fd) when that set changes.
 */
static void *call_thread(void *arg)
{
	struct vhost_user_dev *u = arg;
	struct virtio_dev *vd = &u->vdev;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		log_warnx("%s %s: cannot load the device thread's system-call filter", u->hooks->kind, u->path);
		return NULL;
	}
	for (;;) {
		struct pollfd p[VIRTIO_MAX_QUEUES + 3];
		unsigned n = u->nqueues;
		uint64_t v;

		pthread_mutex_lock(&vd->lock);
		for (unsigned q = 0; q < n; q++)
			p[q] = (struct pollfd){.fd = !vd->irqfd_gsi[q] ? vd->call_fd[q] : -1, .events = POLLIN};
		pthread_mutex_unlock(&vd->lock);
		p[n] = (struct pollfd){.fd = u->stop_fd, .events = POLLIN};
		p[n + 1] = (struct pollfd){.fd = u->connected ? u->fe.sock : -1, .events = POLLRDHUP};
		p[n + 2] = (struct pollfd){.fd = u->rescan_fd, .events = POLLIN};
		if (poll(p, n + 3, u->connected ? -1 : 20) < 0)
			continue;
		if (p[n].revents)
			return NULL;
		if ((p[n + 2].revents & POLLIN) && read(u->rescan_fd, &v, sizeof(v)) < 0) {
			/* Taken by an earlier pass. */
		}
		for (unsigned q = 0; q < n; q++)
			if ((p[q].revents & POLLIN) && read(vd->call_fd[q], &v, sizeof(v)) == sizeof(v)) {
				pthread_mutex_lock(&vd->lock);
				virtio_queue_signal(vd, q);
				pthread_mutex_unlock(&vd->lock);
			}
		if (p[n + 1].revents & (POLLRDHUP | POLLHUP | POLLERR))
			backend_lost(u);
		if (!u->connected)
			backend_back(u);
	}
}

int vhost_user_dev_add(struct vm *vm, struct vhost_user_dev *u, const struct virtio_device_ops *ops,
		       void *owner, uint64_t features)
{
	int ret;

	if (vm->mem.fd < 0) {
		log_warnx("%s %s: vhost-user needs guest memory in a memfd", u->hooks->kind, u->path);
		ret = -EINVAL;
		goto fail;
	}
	if ((ret = virtio_pci_add_queues(vm, &u->vdev, ops, owner, features, u->nqueues)) < 0)
		goto fail;
	if (pthread_create(&u->thread, NULL, call_thread, u) != 0) {
		ret = -EAGAIN;
		goto fail;
	}
	u->active = true;
	return 0;
fail:
	vhost_user_dev_close(u);
	return ret;
}

void vhost_user_dev_destroy(struct vhost_user_dev *u)
{
	uint64_t one = 1;

	if (!u->active)
		return;
	if (write(u->stop_fd, &one, 8) < 0)
		log_warn("%s: stop", u->hooks->kind);
	pthread_join(u->thread, NULL);
	vhost_user_dev_close(u);
	if (u->inflight_fd >= 0)
		close(u->inflight_fd);
	u->inflight_fd = -1;
	u->active = false;
}
