#include "blkdriver.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtq.h"

/* Layout of the shared memory: rings, then per-slot headers and status bytes, then data. */
#define DESC_GPA 0x0ULL
#define AVAIL_GPA 0x4000ULL
#define USED_GPA 0x8000ULL
#define SLOTS_GPA 0x10000ULL /* 32 bytes per slot: 16 of header, the status at 16 */
#define DATA_GPA 0x100000ULL

struct blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static void *at(struct blkdrv *d, uint64_t gpa)
{
	return d->mem.base + gpa;
}

uint64_t blkdrv_header_gpa(unsigned slot)
{
	return SLOTS_GPA + 32ULL * slot;
}

uint64_t blkdrv_status_gpa(unsigned slot)
{
	return SLOTS_GPA + 32ULL * slot + 16;
}

uint64_t blkdrv_data_gpa(const struct blkdrv *d, unsigned slot)
{
	return DATA_GPA + (uint64_t)slot * d->max_bytes;
}

uint8_t *blkdrv_data(struct blkdrv *d, unsigned slot)
{
	return at(d, blkdrv_data_gpa(d, slot));
}

struct virtq_desc *blkdrv_desc(struct blkdrv *d)
{
	return at(d, DESC_GPA);
}

int blkdrv_open(struct blkdrv *d, const char *socket, uint64_t features, uint16_t qsize,
		unsigned slots, size_t max_bytes, char *err, size_t errlen)
{
	uint64_t size;
	int ret;

	memset(d, 0, sizeof(*d));
	d->kick_fd = d->call_fd = -1;
	d->fe.sock = -1;
	if (qsize == 0 || qsize > 1024 || (qsize & (qsize - 1)) || slots == 0 || slots > qsize / 3u ||
	    slots > 1024 || max_bytes == 0 || max_bytes % 4096) {
		snprintf(err, errlen, "%u requests of %zu bytes do not fit a ring of %u", slots, max_bytes,
			 qsize);
		return -EINVAL;
	}
	d->qsize = qsize;
	d->slots = slots;
	d->max_bytes = max_bytes;
	size = DATA_GPA + (uint64_t)slots * max_bytes;
	if ((ret = gmem_create(&d->mem, size)) < 0) {
		snprintf(err, errlen, "shared memory: %s", strerror(-ret));
		return ret;
	}
	d->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->kick_fd < 0 || d->call_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		blkdrv_close(d);
		return -errno;
	}
	if ((ret = vhost_frontend_connect(&d->fe, socket, err, errlen)) < 0 ||
	    (ret = vhost_frontend_get_config(&d->fe, d->config, sizeof(d->config), err, errlen)) < 0 ||
	    (ret = vhost_frontend_setup(&d->fe, features & d->fe.features, &d->mem, err, errlen)) < 0 ||
	    (ret = vhost_frontend_start_queue(&d->fe, &d->mem, 0, qsize, DESC_GPA, AVAIL_GPA, USED_GPA,
					      0, d->kick_fd, d->call_fd, err, errlen)) < 0) {
		blkdrv_close(d);
		return ret;
	}
	memcpy(&d->capacity, d->config, 8);
	return 0;
}

void blkdrv_close(struct blkdrv *d)
{
	vhost_frontend_close(&d->fe);
	if (d->kick_fd >= 0)
		close(d->kick_fd);
	if (d->call_fd >= 0)
		close(d->call_fd);
	d->kick_fd = d->call_fd = -1;
	if (d->mem.base)
		gmem_destroy(&d->mem);
	memset(&d->mem, 0, sizeof(d->mem));
}

void blkdrv_submit_head(struct blkdrv *d, uint16_t head)
{
	uint16_t *avail = at(d, AVAIL_GPA);

	avail[2 + d->avail_idx % d->qsize] = head;
	d->avail_idx++;
	/* The ring entry before the index, as the virtio memory model asks. */
	atomic_store_explicit((_Atomic uint16_t *)&avail[1], d->avail_idx, memory_order_release);
}

int blkdrv_submit(struct blkdrv *d, unsigned slot, uint32_t type, uint64_t sector, uint32_t len)
{
	struct virtq_desc *desc = blkdrv_desc(d);
	struct blk_header *h = at(d, blkdrv_header_gpa(slot));
	uint16_t head = (uint16_t)(slot * 3), n = head;
	bool device_writes = type == BLKDRV_T_IN || type == BLKDRV_T_GET_ID;

	if (slot >= d->slots || len > d->max_bytes)
		return -EINVAL;
	*h = (struct blk_header){.type = type, .sector = sector};
	*(uint8_t *)at(d, blkdrv_status_gpa(slot)) = BLKDRV_STATUS_NONE;
	desc[n] = (struct virtq_desc){blkdrv_header_gpa(slot), sizeof(*h), VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1)};
	n++;
	if (len) {
		desc[n] = (struct virtq_desc){blkdrv_data_gpa(d, slot), len,
					      (uint16_t)(VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0)),
					      (uint16_t)(n + 1)};
		n++;
	}
	desc[n] = (struct virtq_desc){blkdrv_status_gpa(slot), 1, VIRTQ_DESC_F_WRITE, 0};
	blkdrv_submit_head(d, head);
	return 0;
}

int blkdrv_kick(struct blkdrv *d)
{
	uint64_t one = 1;

	return write(d->kick_fd, &one, 8) == 8 ? 0 : -errno;
}

int blkdrv_reap(struct blkdrv *d, int timeout_ms,
		void (*done)(void *opaque, unsigned slot, uint8_t status, uint32_t len), void *opaque)
{
	uint16_t *used = at(d, USED_GPA);
	struct pollfd p = {.fd = d->call_fd, .events = POLLIN};
	uint64_t v;
	int n = 0;

	for (;;) {
		uint16_t idx = atomic_load_explicit((_Atomic uint16_t *)&used[1], memory_order_acquire);

		while (d->last_used != idx) {
			uint32_t *elem = (uint32_t *)(used + 2) + 2 * (d->last_used % d->qsize);
			unsigned slot = elem[0] / 3;
			d->last_used++;
			if (slot < d->slots)
				done(opaque, slot, *(uint8_t *)at(d, blkdrv_status_gpa(slot)), elem[1]);
			n++;
		}
		if (n)
			return n;
		if (poll(&p, 1, timeout_ms) <= 0)
			return 0;
		if (read(d->call_fd, &v, 8) < 0 && errno != EAGAIN)
			return -errno;
	}
}
