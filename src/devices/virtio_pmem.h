/*
 * virtio-pmem (virtio 1.2, section 5.19): a file given to the guest as
 * persistent memory. The file is mapped MAP_SHARED into the VMM and that
 * mapping is a KVM memory slot, so the guest's loads are the host's page
 * cache pages: a filesystem mounted with -o dax in the guest reads the file
 * with no copy in guest RAM, and every domain that maps the same file
 * shares the same host pages.
 *
 * Guest-visible layout:
 *   config space: le64 start (guest-physical address), le64 size
 *   one request queue: a request is { le32 type } device-readable followed
 *   by { le32 ret } device-writable; type 0 is a flush, ret 0 is success.
 *
 * Read-only devices (the default) are a KVM_MEM_READONLY slot over a
 * PROT_READ mapping of a file opened O_RDONLY: guest writes exit to the
 * VMM as MMIO, are dropped and counted, and a flush is a no-op.
 */
#ifndef DOMUS_VIRTIO_PMEM_H
#define DOMUS_VIRTIO_PMEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio_pci.h"
#include "vmm/config.h"

#define VIRTIO_ID_PMEM 27

/*
 * A backing file's size must be a whole number of 2 MiB: Linux maps the
 * region's pages for DAX (devm_memremap_pages) in 2 MiB subsections and
 * refuses a region that is not made of them.
 */
#define PMEM_SIZE_ALIGN (2ULL << 20)
#define PMEM_MAX_SIZE (64ULL << 30)
/*
 * Regions start on a 1 GiB boundary above all RAM: far more than the
 * 2 MiB Linux needs, and the guest can then map the region with 1 GiB pages.
 */
#define PMEM_GPA_ALIGN (1ULL << 30)

/*
 * Opens and checks a backing file: a regular file, not empty, a multiple
 * of PMEM_SIZE_ALIGN, at most PMEM_MAX_SIZE; opened read-only for a
 * read-only device. Returns the descriptor with its size in *size, or
 * -errno with a message naming the file and the reason in err.
 */
int pmem_open(const struct pmem_config *pc, uint64_t *size, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Where n regions of the given sizes go: the first at the first
 * PMEM_GPA_ALIGN boundary at or above both ram_end and 4 GiB (so never in
 * the PCI hole below 4 GiB, whose BARs are 32-bit, nor in high RAM), each
 * next one at the first boundary after the previous one's end.
 */
void pmem_place(uint64_t ram_end, const uint64_t *sizes, unsigned n, uint64_t *gpas);

struct virtio_pmem {
	struct virtio_dev vd;
	const char *path;
	int fd;
	bool readonly;
	uint8_t *host; /* the file's mapping, size bytes */
	uint64_t size;
	uint64_t gpa;
	_Atomic unsigned long long flushes;
	_Atomic unsigned long long ignored_writes; /* guest stores into a read-only region */
	_Atomic bool warned;
};

/* The device's ops (virtio-pci calls them); public so tests can drive the request queue. */
extern const struct virtio_device_ops virtio_pmem_ops;

/*
 * Maps the open file fd (size bytes, from pmem_open) at guest-physical
 * gpa and adds the device. fd stays the caller's. Returns 0 or -errno.
 */
int virtio_pmem_add(struct vm *vm, struct virtio_pmem *p, const struct pmem_config *pc, int fd,
		    uint64_t size, uint64_t gpa) __attribute__((warn_unused_result));
/* Unmaps the file (after the VM, which maps it, is gone). */
void virtio_pmem_destroy(struct virtio_pmem *p);

#endif
