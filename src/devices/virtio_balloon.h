/*
 * virtio-balloon (virtio 1.2, section 5.5): the control domain sets how
 * many of the guest's pages the balloon should hold; the guest's driver
 * inflates (gives pages back) or deflates (takes them again) towards it.
 * Pages given back, inflated or reported free, are punched out of the
 * guest-RAM memfd, so the host really gets them back. The guest also sends
 * memory statistics on request, and may deflate by itself under memory
 * pressure (deflate on OOM) when the domain allows it.
 *
 * The queues are served by a worker thread per device, which a notify only
 * wakes (KVM signals its eventfd, so a notify does not even leave the
 * kernel): it drains every queue, sorts the page numbers of all the inflate
 * and reporting buffers it took, punches each run of contiguous pages with
 * one call, and returns the buffers together, one interrupt per queue. The
 * guest's vCPUs never wait on a punch.
 */
#ifndef DOMUS_VIRTIO_BALLOON_H
#define DOMUS_VIRTIO_BALLOON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "devices/virtio_pci.h"

#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_REPORTING 5

/* The statistics tags of section 5.5.6.3. */
enum balloon_stat {
	BALLOON_STAT_SWAP_IN,
	BALLOON_STAT_SWAP_OUT,
	BALLOON_STAT_MAJOR_FAULTS,
	BALLOON_STAT_MINOR_FAULTS,
	BALLOON_STAT_FREE,
	BALLOON_STAT_TOTAL,
	BALLOON_STAT_AVAILABLE,
	BALLOON_STAT_CACHES,
	BALLOON_STAT_HUGETLB_ALLOCS,
	BALLOON_STAT_HUGETLB_FAILURES,
	BALLOON_STAT_COUNT,
};

struct balloon_stats {
	uint64_t val[BALLOON_STAT_COUNT];
	uint32_t have; /* bit n: tag n was reported */
};

/* A run of guest pages, from the PFN lists of the inflate and deflate queues. */
struct balloon_range {
	uint64_t gpa;
	uint64_t len;
};

/*
 * Runs of pages one batch of the worker holds at most: 64 MiB of scattered
 * 4 KiB pages, far more of contiguous ones (Linux sends 256 pages a
 * buffer). A buffer is taken only while the batch has room for all it may
 * hold, so none is cut short by its neighbours.
 */
#define BALLOON_BATCH_RANGES 16384

/*
 * Parses a statistics buffer (packed {le16 tag; le64 value} entries) from
 * a guest with ram_bytes of RAM. Unknown tags are skipped. Returns 0, or
 * -EINVAL with why in err (a partial entry, memory figures beyond RAM or
 * contradicting each other); *out is then untouched.
 */
int balloon_stats_parse(const uint8_t *buf, size_t len, uint64_t ram_bytes, struct balloon_stats *out,
			char *err, size_t errlen);
/*
 * Turns n little-endian 32-bit PFNs (4 KiB frames) into runs of
 * consecutive pages, at most max. PFNs that are not guest RAM are left
 * out and counted in *bad. Returns the number of runs.
 */
unsigned balloon_pfn_ranges(const struct guest_mem *mem, const uint8_t *pfns, unsigned n,
			    struct balloon_range *out, unsigned max, unsigned *bad);
/*
 * Sorts n page-aligned runs of guest RAM by address and merges those that
 * overlap or touch (when the merged run is still inside one RAM region), in
 * place. Bytes that were in more than one run (a page sent twice) are added
 * to *dup_bytes, once per extra time. Returns the number of runs left.
 */
unsigned balloon_coalesce(const struct guest_mem *mem, struct balloon_range *r, unsigned n,
			  uint64_t *dup_bytes);

/* More than the kinds of driver error the device tells apart (see note_error). */
#define BALLOON_ERROR_KINDS 8

struct virtio_balloon {
	struct virtio_dev vd;
	const struct guest_mem *mem;
	uint64_t ram_pages;
	bool deflate_on_oom;
	_Atomic uint32_t target_pages; /* how many pages the balloon should hold */
	_Atomic uint32_t actual_pages; /* how many the driver says it holds */
	int event_fd;                  /* written when actual changes or statistics arrive */
	/* The worker (none in tests and fuzz targets: a notify then serves the queues itself). */
	int wake_fd;                   /* eventfd: a queue notified (by KVM or queue_notify), or stop */
	pthread_t worker;
	bool worker_running;
	bool stopping;
	struct balloon_range batch[BALLOON_BATCH_RANGES]; /* runs to punch, the serving thread's */
	/*
	 * A batch punches with vd.lock released. A reset bumps the generation
	 * (the worker then punches no further and returns none of the buffers it
	 * took: they belong to the queues before the reset) and waits until
	 * the batch is out of the punching (in_batch false, idle signalled), so
	 * that no page the driver owns again after a reset is punched later.
	 */
	_Atomic uint32_t reset_gen;
	uint32_t batch_gen; /* the generation the batch in flight started in */
	bool in_batch;
	pthread_cond_t idle;
	/* The rest under vd.lock. */
	bool stats_held; /* the driver's statistics buffer is with us */
	uint16_t stats_head;
	struct balloon_stats stats;
	struct timespec stats_time; /* CLOCK_MONOTONIC of the last good statistics; 0 for none */
	uint64_t inflated, deflated;   /* pages, since boot */
	uint64_t reported_bytes;       /* free page reporting, since boot */
	uint64_t bad_pfns;             /* PFNs outside RAM the driver sent */
	uint64_t dup_pages;            /* pages sent twice in one batch (punched once) */
	uint64_t batches, punches;     /* the worker's batches, and discard calls they made */
	char last_error[160];
	/* The kinds of driver error logged already (their formats): each is logged once a boot. */
	const char *logged_errors[BALLOON_ERROR_KINDS];
};

struct balloon_info {
	uint64_t ram_bytes, target_bytes, actual_bytes;
	uint64_t inflated_pages, deflated_pages, reported_bytes, bad_pfns;
	bool deflate_on_oom;
	bool have_stats;
	double stats_age; /* seconds */
	struct balloon_stats stats;
	char last_error[160];
};

/* The device's operations (the fuzz target drives them directly). */
extern const struct virtio_device_ops virtio_balloon_ops;

int virtio_balloon_add(struct vm *vm, struct virtio_balloon *b, bool deflate_on_oom,
		       uint64_t target_bytes) __attribute__((warn_unused_result));
/* Starts the device's worker thread (after virtio_balloon_add). 0 or -errno. */
int virtio_balloon_start(struct virtio_balloon *b) __attribute__((warn_unused_result));
/*
 * One pass of the worker: serves every queue, a batch at a time, until they
 * are empty or 8 batches are done (then a worker wakes itself for more).
 * Called with vd.lock held, which it releases while it punches. For the
 * worker, and for tests and fuzz targets without one.
 */
void virtio_balloon_serve(struct virtio_balloon *b);
/* Sets the domain's memory (RAM minus the balloon); -ERANGE if above RAM. Any thread. */
int virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes);
/* Asks the guest for fresh statistics (they arrive later; event_fd says when). */
void virtio_balloon_request_stats(struct virtio_balloon *b);
void virtio_balloon_info(struct virtio_balloon *b, struct balloon_info *info);
void virtio_balloon_destroy(struct virtio_balloon *b);

#endif
