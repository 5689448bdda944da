/* virtio-rng (virtio 1.2, section 5.4): the guest's entropy comes from the host's getrandom(). */
#include "devices/virtio_rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/*
 * What one buffer gets at most: a guest asking for gigabytes at a time does
 * not hold the vCPU thread (and the device's lock) while the host makes them.
 */
#define RNG_MAX_PER_BUFFER 65536
#define RNG_NOTIFY_BUDGET 8 /* buffers per notify (virtio_budget_left) */

static void rng_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtq *vq = &vd->vqs[q];
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;

	while (virtio_budget_left(vd, q, &served, RNG_NOTIFY_BUDGET) && virtq_pop_avail(vq, &c) == 1) {
		uint64_t filled = 0;

		for (unsigned i = c.nout; i < c.nout + c.nin && filled < RNG_MAX_PER_BUFFER; i++) {
			size_t want = c.iov[i].iov_len < RNG_MAX_PER_BUFFER - filled
					      ? c.iov[i].iov_len
					      : (size_t)(RNG_MAX_PER_BUFFER - filled);
			ssize_t n = getrandom(c.iov[i].iov_base, want, 0);
			if (n < 0)
				break;
			filled += (uint64_t)n;
			if ((size_t)n < want)
				break;
		}
		if (virtq_push_used(vq, c.head, (uint32_t)filled) < 0)
			break;
		any = true;
	}
	if (any)
		virtio_queue_interrupt(vd, q);
}

static const struct virtio_device_ops virtio_rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = 0xff0000,
	.nqueues = 1,
	.queue_size = 64,
	.config_size = 0,
	.queue_notify = rng_queue_notify,
};

int virtio_rng_add(struct vm *vm, struct virtio_dev *vd)
{
	return virtio_pci_add(vm, vd, &virtio_rng_ops, NULL, 0);
}
