/* virtio-pmem: see virtio_pmem.h. */
#include "devices/virtio_pmem.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/passed_fd.h"
#include "vmm/vm.h"

#define PMEM_REQ_FLUSH 0
#define PMEM_RESP_OK 0
#define PMEM_RESP_EIO 1
#define PMEM_NOTIFY_BUDGET 8 /* requests per notify (virtio_budget_left) */
#define PMEM_QUEUE_SIZE 64 /* Linux keeps one flush in flight per waiter; 64 is plenty */

struct pmem_config_space {
	uint64_t start;
	uint64_t size;
};

int pmem_open(const struct pmem_config *pc, uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	fd = passed_open(pc->path, pc->readonly ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open pmem %s%s: %s", pc->path,
			 pc->readonly ? "" : " for writing (drop ,rw to share it read-only)",
			 strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "pmem %s: %s", pc->path, strerror(-ret));
		goto fail;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "pmem %s is not a regular file", pc->path);
		goto fail;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "pmem %s is empty", pc->path);
		goto fail;
	}
	if ((uint64_t)st.st_size > PMEM_MAX_SIZE) {
		snprintf(err, errlen, "pmem %s is too large: %llu MiB, at most %llu MiB", pc->path,
			 (unsigned long long)st.st_size >> 20, PMEM_MAX_SIZE >> 20);
		goto fail;
	}
	if ((uint64_t)st.st_size % PMEM_SIZE_ALIGN) {
		snprintf(err, errlen,
			 "pmem %s: size %llu bytes is not a multiple of 2 MiB (the guest maps "
			 "persistent memory in 2 MiB sections; truncate -s to round it up)",
			 pc->path, (unsigned long long)st.st_size);
		goto fail;
	}
	/* As for disks: root could write a file nobody may write; whoever marked it so meant it. */
	if (!pc->readonly && !(st.st_mode & 0222)) {
		snprintf(err, errlen,
			 "pmem %s is read-only (mode %04o); drop ,rw to attach it read-only",
			 pc->path, st.st_mode & 07777);
		goto fail;
	}
	*size = (uint64_t)st.st_size;
	return fd;
fail:
	close(fd);
	return ret;
}

void pmem_place(uint64_t ram_end, const uint64_t *sizes, unsigned n, uint64_t *gpas)
{
	uint64_t next = ram_end > GMEM_HIGH_BASE ? ram_end : GMEM_HIGH_BASE;

	for (unsigned i = 0; i < n; i++) {
		next = (next + PMEM_GPA_ALIGN - 1) & ~(PMEM_GPA_ALIGN - 1);
		gpas[i] = next;
		next += sizes[i];
	}
}

static void pmem_config_read(struct virtio_dev *vd, unsigned offset, void *data, unsigned len)
{
	struct virtio_pmem *p = vd->priv;
	struct pmem_config_space cfg = {.start = htole64(p->gpa), .size = htole64(p->size)};

	/* The transport checked offset + len against config_size. */
	memcpy(data, (uint8_t *)&cfg + offset, len);
}

/* Makes what the guest stored in a read-write region durable in the file. */
static uint32_t pmem_flush(struct virtio_pmem *p)
{
	atomic_fetch_add(&p->flushes, 1);
	log_debug("virtio-pmem %s: flush%s", p->path,
		  p->readonly ? " (read-only: nothing to do)" : "");
	if (p->readonly)
		return PMEM_RESP_OK;
	/*
	 * The guest's stores went straight into the file's page cache through
	 * the shared mapping; fsync writes those pages back. It runs on the
	 * vCPU that asked, which waits for the answer anyway.
	 */
	if (fsync(p->fd) < 0) {
		log_warn("virtio-pmem %s: flush", p->path);
		return PMEM_RESP_EIO;
	}
	return PMEM_RESP_OK;
}

static void pmem_queue_notify(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pmem *p = vd->priv;
	struct virtq *vq = &vd->vqs[q];
	struct virtq_chain c;
	bool any = false;
	unsigned served = 0;
	int r = 0;

	/* Each request may be a flush (fsync): a few per turn. */
	while (virtio_budget_left(vd, q, &served, PMEM_NOTIFY_BUDGET) &&
	       (r = virtq_pop_avail(vq, &c)) == 1) {
		uint32_t type, ret;

		/* Lengths are the guest's: a request too short to be one is a broken driver. */
		if (c.out_len < sizeof(type) || c.in_len < sizeof(ret)) {
			virtio_needs_reset(vd, "pmem request without a 4-byte type or reply buffer");
			return;
		}
		virtq_chain_read(&c, 0, &type, sizeof(type));
		if (le32toh(type) == PMEM_REQ_FLUSH)
			ret = pmem_flush(p);
		else
			ret = PMEM_RESP_EIO; /* a request type a newer spec may define */
		ret = htole32(ret);
		virtq_chain_write(&c, 0, &ret, sizeof(ret));
		if (virtq_push_used(vq, c.head, sizeof(ret)) < 0)
			break;
		any = true;
	}
	if (r < 0)
		virtio_needs_reset(vd, "malformed pmem request queue");
	if (any)
		virtio_queue_interrupt(vd, q);
}

/*
 * A store into a read-only region: KVM could not complete it and handed it
 * to us as MMIO. The file is not the guest's to change, so the store is
 * dropped; it is counted, and said once, since a guest may store often.
 */
static void pmem_ro_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
	struct virtio_pmem *p = opaque;

	atomic_fetch_add(&p->ignored_writes, 1);
	if (!atomic_exchange(&p->warned, true))
		log_warnx("virtio-pmem %s: the guest wrote to the read-only image (at offset 0x%llx); "
			  "writes are ignored", p->path, (unsigned long long)offset);
}

/* KVM serves reads from the slot itself; an emulated read-modify-write may still come here. */
static void pmem_ro_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
	struct virtio_pmem *p = opaque;

	if (offset >= p->size || len > p->size - offset) {
		memset(data, 0xff, len);
		return;
	}
	memcpy(data, p->host + offset, len);
}

static const struct bus_ops pmem_ro_ops = {
	.read = pmem_ro_read,
	.write = pmem_ro_write,
};

const struct virtio_device_ops virtio_pmem_ops = {
	.name = "virtio-pmem",
	.device_id = VIRTIO_ID_PMEM,
	.pci_class = 0x058000, /* memory controller, other */
	.nqueues = 1,
	.queue_size = PMEM_QUEUE_SIZE,
	.config_size = sizeof(struct pmem_config_space),
	.config_read = pmem_config_read,
	.queue_notify = pmem_queue_notify,
};

int virtio_pmem_add(struct vm *vm, struct virtio_pmem *p, const struct pmem_config *pc, int fd,
		    uint64_t size, uint64_t gpa)
{
	struct stat st;
	void *host;
	int ret;

	p->path = pc->path;
	p->fd = fd;
	p->readonly = pc->readonly;
	p->gpa = gpa;
	/* Checked at open; a file cut short since would fault the guest's accesses. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < size)
		return -ESTALE;
	host = mmap(NULL, size, pc->readonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (host == MAP_FAILED)
		return -errno;
	p->host = host;
	p->size = size;
	ret = vm_add_memslot(vm, gpa, size, host, pc->readonly);
	if (ret < 0)
		return ret;
	if (pc->readonly && (ret = bus_register(&vm->mmio, gpa, size, &pmem_ro_ops, p)) < 0)
		return ret;
	return virtio_pci_add(vm, &p->vd, &virtio_pmem_ops, p, 0);
}

void virtio_pmem_destroy(struct virtio_pmem *p)
{
	unsigned long long n = atomic_load(&p->ignored_writes);

	if (n)
		log_info("virtio-pmem %s: %llu guest writes to the read-only image ignored", p->path, n);
	if (p->host)
		munmap(p->host, p->size);
	p->host = NULL;
}
