/*
 * virtio-blk requests of domus-blk's disks, carried out on one io_uring per
 * process: a request is split where the image's layout splits it
 * (image_map), each piece that sits in a file becomes a readv or writev
 * (O_DIRECT when the disk asks for it and the buffers allow), the rest
 * (zeros, compressed clusters, copy on write) is done at once through the
 * image layer. Many requests of many disks are in flight together; each
 * completes when its last piece does, in whatever order.
 *
 * A read piece in a file opened read-only goes through the engine's shared
 * cache (blk/cache.h) when it has one: copied from the cache when every
 * block it touches is there, else the missing blocks are read whole into
 * the cache on the ring and the piece is copied from them when they land.
 */
#ifndef DOMUS_BLK_IO_H
#define DOMUS_BLK_IO_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk/cache.h"
#include "blk/counters.h"
#include "blk/image.h"
#include "blk/sched.h"
#include "vhost/backend.h"

/* Queues a disk serves (GET_QUEUE_NUM); the front-end uses as many as its guest's vCPUs. */
#define BLK_NUM_QUEUES 16
#define BLK_QUEUE_SIZE 256
#define BLK_MAX_DISCARD_SEGMENTS 32


struct blk_engine;

struct blk_disk {
	struct image *img;
	char id[21];
	bool writeback; /* false: a write completes only once it is on stable storage */
	struct blk_counters *stats; /* NULL when nobody reads them */
	struct vhost_device_ops ops; /* per disk: read-only disks say so */
	struct vhost_backend b;
	bool connected;
	struct blk_engine *engine;
	unsigned inflight;      /* requests taken and not yet completed */
	uint32_t notify_queues; /* queues with completions the driver has not been told of */
	bool notify_listed;
	unsigned long long requests, errors;
	unsigned long long queue_requests[BLK_NUM_QUEUES]; /* completed, by the queue they came on */
	struct blk_sched_group *group; /* whose QoS its requests go by */
};

struct blk_engine {
	struct io_uring ring;
	bool have_ring; /* false: io_uring is not available and every request is served at once */
	/*
	 * A slow disk, for tests: each request's completion is held back delay_us
	 * after the one before it (so depth requests in flight take depth times as
	 * long), the loop free meanwhile.
	 */
	unsigned delay_us;
	void *delayed, **delayed_tail; /* the requests held back, in the order they complete */
	uint64_t delayed_last_ns;      /* when the last of them completes */
	struct blk_disk *notify[64]; /* disks with notify_queues set */
	unsigned nnotify;
	void *free_requests;
	unsigned nfree;
	struct blk_cache *cache; /* reads of files that cannot change; NULL: none */
	/* Requests wait in the scheduler until it starts them, at most depth in flight at once. */
	struct blk_sched sched;
	unsigned depth, started;
};

/* Sets up the ring, restricted to the operations requests use. 0, or -errno with why in err
 * (the engine then serves requests synchronously). */
int blk_engine_init(struct blk_engine *e, char *err, size_t errlen);
/* The descriptor to poll for completions; -1 without a ring. */
int blk_engine_fd(struct blk_engine *e);
/*
 * Takes every request queue q of d has into the scheduler (a disk with no
 * group: starts it). The caller pumps once it has taken every disk's.
 */
void blk_engine_kicked(struct blk_disk *d, unsigned q);
/* Completes what has finished, without waiting and without starting more. */
void blk_engine_complete(struct blk_engine *e);
/* Completes what has finished, without waiting, and starts what the scheduler lets go. */
void blk_engine_reap(struct blk_engine *e);
/* Starts what the scheduler lets go now (after a timeout). */
void blk_engine_pump(struct blk_engine *e);
/* Nanoseconds until a request waiting for a limit or held back by delay_us is due; -1 if none. */
int64_t blk_engine_timeout_ns(struct blk_engine *e);
/* The monotonic clock, in ns: the scheduler's time. */
uint64_t blk_engine_now(void);
/* Puts d in group g (made if need be), its waiting requests with it. 0 or -ENOMEM. */
int blk_disk_set_group(struct blk_disk *d, const char *group);
/* Out of its group, before d goes away (nothing of it may wait or be in flight). */
void blk_disk_leave_group(struct blk_disk *d);
/* Waits until d has nothing in flight (before its memory goes away). */
void blk_engine_drain(struct blk_disk *d);
void blk_engine_close(struct blk_engine *e);
/* The device operations of a disk: features, config space (with its writeback byte). */
void blk_disk_init_ops(struct blk_disk *d, bool readonly);

#endif
