/*
 * The host's disk driver domain: one domus-blk process serving the disks of
 * every domain domusd runs. domusd opens each image and its backing chain
 * (so a bad image is refused when the domain is created, with the reason),
 * makes the disk's listening socket, and passes both to domus-blk over a
 * control socket. The sockets and images stay open here: when domus-blk
 * dies, it is started again (backing off if it dies at once), handed every
 * disk again, and each VMM, whose connection to the socket path never went
 * away, reconnects and has its unfinished requests served again.
 */
#ifndef DOMUS_BLKHOST_H
#define DOMUS_BLKHOST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <stdint.h>

#include "blk/cache.h"
#include "lib/backend_proc.h"
#include "vmm/blkctl.h"
#include "vmm/config.h"

struct blkhost_disk;

struct blkhost {
	struct backend_proc proc; /* domus-blk */
	char dir[PATH_MAX - 64];  /* the disks' sockets */
	struct blkhost_disk *disks;
	uint64_t cache_max_mib;  /* the shared read cache's limit never goes past this */
	uint64_t cache_limit;    /* bytes, told to every domus-blk started */
	bool cache_limit_set;    /* false: domus-blk's own default until domusd decides */
	struct blk_sched_settings sched; /* the scheduler's, told to every domus-blk started */
	bool sched_set;                  /* false: domus-blk's defaults, nothing to tell */
};

/* Where the program is and where sockets go; starts nothing yet. */
void blkhost_init(struct blkhost *h, const char *program, const char *dir);
/*
 * Serves disk index of domain domid through domus-blk, starting it if it
 * is not running; its socket's path in socket. stats_fd (or -1) is the
 * domain's counters file; domus-blk counts this disk in slot index. The
 * image is the one opened for the client (its descriptors are taken over,
 * or closed on failure). 0, or -errno with the reason in err.
 */
int blkhost_attach(struct blkhost *h, unsigned domid, unsigned index, const struct disk_config *dc,
		   struct blkctl_image *image, int stats_fd, char *socket, size_t socklen, char *err,
		   size_t errlen);
/*
 * The disk scheduler (docs/blk.md): disk index of domid goes by group
 * (blkhost_group_name) with QoS spec (blk/qos.h, canonical, the whole of
 * it). Told to domus-blk now and to every one started after. A reservation
 * the host's disk cannot honour is refused (-ENOSPC, the figures in err)
 * and nothing changes.
 */
int blkhost_set_qos(struct blkhost *h, unsigned domid, unsigned index, const char *group,
		    const char *spec, char *err, size_t errlen);
/* The group of a disk: "domD" for the domain's disks together, "D-I" for disk I alone. */
void blkhost_group_name(char *out, size_t len, unsigned domid, int own_index);
/* The scheduler's counters of a group; zeros when domus-blk does not run. */
int blkhost_qos_stats(struct blkhost *h, const char *group, struct blk_sched_stats *out,
		      int *reserve_met, char *err, size_t errlen);
/*
 * Applies settings ("op-ns=..,depth=..", any of them: blk/sched.h) to the
 * scheduler's, now if domus-blk runs and to every one started after.
 * -EINVAL (nothing changes) for bad settings, other -errno if the running
 * domus-blk did not take them (kept for the next one all the same); the
 * reason in err.
 */
int blkhost_sched(struct blkhost *h, const char *settings, char *err, size_t errlen);
/* The settings in force, all of them. */
json_t *blkhost_sched_json(const struct blkhost *h);
/* Stops serving every disk of domid. */
void blkhost_detach(struct blkhost *h, unsigned domid);
/* Ends domus-blk (at domusd's exit; domains wait for the next domusd's). */
void blkhost_stop(struct blkhost *h);

/*
 * The shared read cache (docs/blk.md). blkhost_cache_limit sets its limit
 * in bytes, now if domus-blk runs and again whenever one is started;
 * lowering it evicts at once and the memory goes back to the host.
 * 0, or -errno with the reason in err (the limit is kept for the next
 * domus-blk all the same).
 */
int blkhost_cache_limit(struct blkhost *h, uint64_t bytes, char *err, size_t errlen);
/*
 * Sets the limit from the idle memory of the host (what domains have not
 * claimed): half of it, at most cache_max_mib (mem_account_cache_mib).
 * domusd calls it whenever a domain is admitted (before it starts) or
 * goes; a memory policy calls it with what it means to leave idle before
 * it takes memory back from domains, so the cache shrinks first. The MiB
 * the cache gave back, if freed_mib. 0, or -errno with the reason in err.
 */
int blkhost_cache_fit(struct blkhost *h, uint64_t idle_mib, uint64_t *freed_mib, char *err,
		      size_t errlen);
/* The cache's counters; zeros and the limit to be when domus-blk does not run. 0 or -errno. */
int blkhost_cache_stats(struct blkhost *h, struct blk_cache_stats *out, char *err, size_t errlen);
/* GET /v1/host's "blk_cache" object: size, limit, hits, misses, bytes, hit_ratio (NULL: none). */
json_t *blkhost_cache_json(struct blkhost *h);

#endif
