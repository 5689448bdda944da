/*
 * The disk driver domain of `domus run`: a domus-blk child that serves the
 * domain's disks, handed to it over its control socket (vmm/blkctl.h: the
 * images and backing files opened here, so the child needs no paths), and
 * a thread that starts it again when it dies, backing off if it dies as
 * soon as it starts, and hands it the disks again.
 */
#ifndef DOMUS_BLK_SUPERVISOR_H
#define DOMUS_BLK_SUPERVISOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/blkctl.h"
#include "vmm/child_supervisor.h"
#include "vmm/config.h"

/* What domus-blk counts per disk, in shared memory (its --stats-fd). */
struct blk_counters {
	_Atomic uint64_t read_ops, write_ops, read_bytes, write_bytes;
};

struct blk_supervisor {
	char dir[64]; /* private directory of the sockets */
	struct child_supervisor child;		/* domus-blk */
	struct blkctl_disk disks[VM_MAX_DISKS]; /* handed to every domus-blk started */
	bool served[VM_MAX_DISKS];
	int stats_fd;
	struct blk_counters *stats; /* one slot per disk of the domain */
};

/*
 * Starts domus-blk for the disks of cfg with served[i] set and rewrites
 * those disks in cfg as vhost-user disks on its sockets. 0, or -errno with
 * the reason (a bad image, domus-blk's own message) logged.
 */
int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const bool *served);
/* domus-blk's counters for the domain's disk i, NULL if it does not serve it. */
struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i);
/* Stops supervising, ends domus-blk and removes its sockets. */
void blk_supervisor_stop(struct blk_supervisor *s);

#endif
