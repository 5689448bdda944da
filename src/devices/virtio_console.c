/*
 * virtio-console (virtio 1.2, section 5.3) with a single port and no
 * multiport control queue: queue 0 carries input to the guest, queue 1
 * output from it, which goes to the terminal beside the serial console.
 */
#include "devices/virtio_console.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define RX_QUEUE 0
#define TX_QUEUE 1
#define CON_NOTIFY_BUDGET 64 /* buffers per notify (virtio_budget_left) */
#define CON_MAX_PER_BUFFER (64 * 1024)

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the terminal went away; the guest must not block on it */
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* Moves pending input into the guest's receive buffers. Lock held. */
static void con_flush_input(struct virtio_console *con)
{
	struct virtio_dev *vd = &con->vdev;
	struct virtq *vq = &vd->vqs[RX_QUEUE];
	struct virtq_chain c;
	bool any = false;

	while (con->npending && virtio_driver_ready(vd) && virtq_pop_avail(vq, &c) == 1) {
		uint64_t n = virtq_chain_write(&c, 0, con->pending, con->npending);
		memmove(con->pending, con->pending + n, con->npending - n);
		con->npending -= n;
		if (virtq_push_used(vq, c.head, (uint32_t)n) < 0)
			break;
		any = true;
	}
	if (any)
		virtio_queue_interrupt(vd, RX_QUEUE);
	if (vq->broken)
		virtio_needs_reset(vd, "malformed receive chain");
}

static void con_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_console *con = vd->priv;
	struct virtq *vq = &vd->vqs[q];
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;

	if (q == RX_QUEUE) {
		con_flush_input(con);
		return;
	}
	while (virtio_budget_left(vd, q, &served, CON_NOTIFY_BUDGET) && virtq_pop_avail(vq, &c) == 1) {
		uint64_t left = CON_MAX_PER_BUFFER; /* past it, the guest's own loss */

		for (unsigned i = 0; i < c.nout && left; i++) {
			size_t len = c.iov[i].iov_len < left ? c.iov[i].iov_len : (size_t)left;
			write_all(con->out_fd, c.iov[i].iov_base, len);
			left -= len;
		}
		if (virtq_push_used(vq, c.head, 0) < 0)
			break;
		any = true;
	}
	if (any)
		virtio_queue_interrupt(vd, q);
}

static void con_config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	/* cols, rows, max_nr_ports, emerg_wr: meaningful only with features we do not offer. */
	uint8_t cfg[12] = {0};
	memcpy(data, cfg + off, len);
}

static const struct virtio_device_ops virtio_console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = 0x078000, /* communication, other */
	.nqueues = 2,
	.queue_size = 128,
	.config_size = 12,
	.config_read = con_config_read,
	.queue_notify = con_queue_notify,
};

int virtio_console_add(struct vm *vm, struct virtio_console *con, int out_fd)
{
	memset(con, 0, sizeof(*con));
	con->out_fd = out_fd;
	return virtio_pci_add(vm, &con->vdev, &virtio_console_ops, con, 0);
}

size_t virtio_console_input(struct virtio_console *con, const void *buf, size_t len)
{
	size_t room;

	pthread_mutex_lock(&con->vdev.lock);
	room = sizeof(con->pending) - con->npending;
	if (len > room)
		len = room;
	memcpy(con->pending + con->npending, buf, len);
	con->npending += len;
	con_flush_input(con);
	pthread_mutex_unlock(&con->vdev.lock);
	return len;
}
