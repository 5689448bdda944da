/*
 * Guest physical memory: one memfd (so driver domains can map it over
 * vhost-user), mapped once, split into a region below the PCI hole and one
 * above 4 GiB.  Everything that touches guest memory goes through
 * gmem_ptr(), which refuses any range that is not wholly inside one region.
 */
#ifndef DOMUS_GUEST_MEM_H
#define DOMUS_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 8 /* the VMM uses 2; a vhost-user backend maps up to 8 */
/* RAM stops here below 4 GiB; the rest of the 32-bit space is the PCI hole. */
#define GMEM_LOW_LIMIT 0xC0000000ULL
#define GMEM_HIGH_BASE 0x100000000ULL

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	uint64_t fd_offset;
};

struct guest_mem {
	int fd;          /* memfd, -1 when the memory is a plain host buffer */
	uint8_t *base;   /* the whole mapping */
	uint64_t size;   /* total RAM in bytes */
	unsigned nregions;
	struct gmem_region regions[GMEM_MAX_REGIONS];
};

/* Creates guest RAM of `size` bytes in a memfd. Returns 0 or -errno. */
int gmem_create(struct guest_mem *gm, uint64_t size) __attribute__((warn_unused_result));
/* Wraps a host buffer as guest memory at gpa 0 (for tests and tools). */
void gmem_wrap(struct guest_mem *gm, void *buf, uint64_t size);
void gmem_destroy(struct guest_mem *gm);

/* Host pointer to [gpa, gpa+len) or NULL if any byte of it is not RAM. */
void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* Copy in or out; return 0 or -EFAULT. */
int gmem_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
/*
 * Gives [gpa, gpa+len) back to the host: the pages are freed, and read as
 * zeros when next touched. The range must lie in one region and be
 * page-aligned. 0, -EFAULT (not RAM) or -EINVAL (unaligned), or -errno.
 */
int gmem_discard(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* The guest-physical address of a host pointer into guest RAM, or -1 if it is not one. */
int64_t gmem_gpa_of(const struct guest_mem *gm, const void *host, uint64_t len);
/* End of RAM below the PCI hole. */
uint64_t gmem_low_end(const struct guest_mem *gm);

#endif
