/*
 * virtio-blk (virtio 1.2, section 5.2) on a raw image file, in the VMM.
 * Requests are served synchronously on the vCPU thread that kicked the
 * queue; the out-of-process backend (domus-blk) is the default elsewhere.
 * With VIRTIO_BLK_F_MQ the guest has a queue (and an MSI-X vector) per
 * vCPU; they share the device's lock, so here they save the guest's
 * block layer its cross-CPU completions more than they add parallelism.
 */
#include "devices/virtio_blk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/config.h"

#define BLK_NOTIFY_BUDGET 32 /* requests per notify (virtio_budget_left) */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR 512
#define BLK_QUEUE_SIZE 256
#define BLK_ID_BYTES 20

struct __attribute__((packed)) virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues; /* VIRTIO_BLK_F_MQ */
};
_Static_assert(sizeof(struct virtio_blk_config) == 36, "virtio-blk config through num_queues");
_Static_assert(VM_MAX_DISK_QUEUES <= VIRTIO_MAX_QUEUES, "a disk's queues fit the transport");

struct __attribute__((packed)) virtio_blk_req_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static void blk_config_read(struct virtio_dev *vd, unsigned off, void *data, unsigned len)
{
	struct virtio_blk *blk = vd->priv;
	struct virtio_blk_config cfg = {
		.capacity = blk->sectors,
		.seg_max = VIRTQ_MAX_CHAIN - 2,
		.blk_size = SECTOR,
		.num_queues = (uint16_t)vd->nqueues,
	};

	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* Reads or writes the data part of a request: bytes [skip, skip+len) of the chain's iovecs. */
static int blk_rw(struct virtio_blk *blk, const struct iovec *iov, unsigned n, uint64_t skip,
		  uint64_t len, uint64_t pos, bool write)
{
	for (unsigned i = 0; i < n && len; i++) {
		uint8_t *p = iov[i].iov_base;
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l -= skip;
		skip = 0;
		if (l > len)
			l = len;
		while (l) {
			ssize_t r = write ? pwrite(blk->fd, p, l, (off_t)pos)
					  : pread(blk->fd, p, l, (off_t)pos);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -errno : -EIO;
			p += r;
			l -= (uint64_t)r;
			len -= (uint64_t)r;
			pos += (uint64_t)r;
		}
	}
	return 0;
}

static uint8_t blk_request(struct virtio_blk *blk, const struct virtq_chain *c, uint32_t *written)
{
	struct virtio_blk_req_header h;
	uint64_t len, pos;

	*written = 0;
	if (virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h))
		return VIRTIO_BLK_S_IOERR;
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		len = h.type == VIRTIO_BLK_T_IN ? c->in_len - 1 : c->out_len - sizeof(h);
		if (len % SECTOR || h.sector > blk->sectors || len / SECTOR > blk->sectors - h.sector)
			return VIRTIO_BLK_S_IOERR;
		pos = h.sector * SECTOR;
		if (h.type == VIRTIO_BLK_T_OUT) {
			if (blk->readonly)
				return VIRTIO_BLK_S_IOERR;
			if (blk_rw(blk, c->iov, c->nout, sizeof(h), len, pos, true) < 0)
				return VIRTIO_BLK_S_IOERR;
			atomic_fetch_add(&blk->write_ops, 1);
			atomic_fetch_add(&blk->write_bytes, len);
			return VIRTIO_BLK_S_OK;
		}
		if (blk_rw(blk, c->iov + c->nout, c->nin, 0, len, pos, false) < 0)
			return VIRTIO_BLK_S_IOERR;
		atomic_fetch_add(&blk->read_ops, 1);
		atomic_fetch_add(&blk->read_bytes, len);
		*written = (uint32_t)len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		/* What the guest flushed must be on the host's disk before we say so. */
		return fdatasync(blk->fd) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		char id[BLK_ID_BYTES] = {0};
		/* The id is at most 20 bytes and not NUL-terminated when it is that long. */
		memcpy(id, blk->serial, strnlen(blk->serial, sizeof(id)));
		*written = (uint32_t)virtq_chain_write(c, 0, id,
						       c->in_len - 1 < sizeof(id) ? c->in_len - 1
										  : sizeof(id));
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void blk_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_blk *blk = vd->priv;
	struct virtq *vq = &vd->vqs[q];
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;

	while (virtio_budget_left(vd, q, &served, BLK_NOTIFY_BUDGET) && virtq_pop_avail(vq, &c) == 1) {
		uint32_t written = 0;
		uint8_t status;

		/* The status byte is the last writable byte of the chain. */
		if (c.in_len < 1) {
			vq->broken = true;
			break;
		}
		status = blk_request(blk, &c, &written);
		virtq_chain_write(&c, c.in_len - 1, &status, 1);
		if (virtq_push_used(vq, c.head, written + 1) < 0)
			break;
		any = true;
	}
	if (any)
		virtio_queue_interrupt(vd, q);
}

static const struct virtio_device_ops virtio_blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x018000, /* mass storage, other */
	.nqueues = 1,
	.queue_size = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
};

int virtio_blk_add(struct vm *vm, struct virtio_blk *blk, int fd, bool readonly, unsigned index,
		   unsigned nqueues)
{
	struct stat st;
	uint64_t features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ULL << VIRTIO_BLK_F_FLUSH);

	if (nqueues == 0 || nqueues > VM_MAX_DISK_QUEUES)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	memset(blk, 0, sizeof(*blk));
	blk->fd = fd;
	blk->readonly = readonly;
	blk->sectors = (uint64_t)st.st_size / SECTOR;
	snprintf(blk->serial, sizeof(blk->serial), "domus-disk%u", index);
	if (readonly)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	/* One queue is a plain device: a driver that knows no MQ sees nothing new. */
	if (nqueues > 1)
		features |= 1ULL << VIRTIO_BLK_F_MQ;
	return virtio_pci_add_queues(vm, &blk->vdev, &virtio_blk_ops, blk, features, nqueues);
}
