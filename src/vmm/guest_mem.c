#include "vmm/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int gmem_create(struct guest_mem *gm, uint64_t size)
{
	uint64_t low = size < GMEM_LOW_LIMIT ? size : GMEM_LOW_LIMIT;
	void *p;
	int fd;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	if (size == 0 || (size & 0xfff))
		return -EINVAL;
	fd = memfd_create("domus-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	/* MAP_NORESERVE: a domain's RAM is committed as the guest touches it. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;
		close(fd);
		return err;
	}
	/*
	 * Huge pages where the host allows them for shared memory
	 * (transparent_hugepage/shmem_enabled "advise" or "always"): KVM then
	 * maps guest RAM in 2 MiB pages, a nested-paging fault per 2 MiB the
	 * guest touches rather than per 4 KiB, and fewer TLB misses after.
	 * Where the host says "never" this does nothing.
	 */
	madvise(p, size, MADV_HUGEPAGE);
	gm->fd = fd;
	gm->base = p;
	gm->size = size;
	gm->regions[0] = (struct gmem_region){.gpa = 0, .size = low, .host = p, .fd_offset = 0};
	gm->nregions = 1;
	if (size > low) {
		gm->regions[1] = (struct gmem_region){
			.gpa = GMEM_HIGH_BASE, .size = size - low, .host = gm->base + low, .fd_offset = low};
		gm->nregions = 2;
	}
	return 0;
}

void gmem_wrap(struct guest_mem *gm, void *buf, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	gm->size = size;
	gm->regions[0] = (struct gmem_region){.gpa = 0, .size = size, .host = buf};
	gm->nregions = 1;
}

void gmem_destroy(struct guest_mem *gm)
{
	if (gm->fd >= 0) {
		munmap(gm->base, gm->size);
		close(gm->fd);
	}
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
}

void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < gm->nregions; i++) {
		const struct gmem_region *r = &gm->regions[i];
		/* Written so that no sum can wrap: both tests are on offsets. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int gmem_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t gmem_low_end(const struct guest_mem *gm)
{
	return gm->regions[0].size;
}

int gmem_discard(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	uint8_t *p;

	if ((gpa | len) & 0xfff)
		return -EINVAL;
	if (len == 0)
		return 0;
	p = gmem_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	if (gm->fd < 0) {
		/* A plain buffer (tests): private anonymous memory is dropped by DONTNEED. */
		return madvise(p, len, MADV_DONTNEED) < 0 ? -errno : 0;
	}
	/*
	 * A hole in the memfd frees the pages for every process that maps it
	 * (domus-blk too); MADV_DONTNEED would only drop this mapping's view.
	 */
	if (fallocate(gm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(p - gm->base),
		      (off_t)len) < 0)
		return -errno;
	return 0;
}

int64_t gmem_gpa_of(const struct guest_mem *gm, const void *host, uint64_t len)
{
	const uint8_t *h = host;

	for (unsigned i = 0; i < gm->nregions; i++) {
		const struct gmem_region *r = &gm->regions[i];
		if (h < r->host || (uint64_t)(h - r->host) >= r->size)
			continue;
		if (len > r->size - (uint64_t)(h - r->host))
			return -1;
		return (int64_t)(r->gpa + (uint64_t)(h - r->host));
	}
	return -1;
}
