/*
 * The disk driver domain of `domus run`: a domus-blk child of the front
 * (ctl/run_front.c) that serves the domain's disks, handed to it over its
 * control socket (vmm/blkctl.h: the images and backing files opened here,
 * so the child needs no paths), started again by lib/backend_proc.h in the
 * front's loop when it dies, and handed the disks again.
 */
#ifndef DOMUS_BLK_SUPERVISOR_H
#define DOMUS_BLK_SUPERVISOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/blkctl.h"
#include "blk/counters.h"
#include "lib/backend_proc.h"
#include "vmm/config.h"


struct blk_supervisor {
	char dir[64]; /* private directory of the sockets */
	struct backend_proc proc;		/* domus-blk */
	struct blkctl_disk disks[VM_MAX_DISKS]; /* handed to every domus-blk started */
	bool served[VM_MAX_DISKS];
	int stats_fd;
	struct blk_counters *stats; /* one slot per disk of the domain */
};

/*
 * Starts domus-blk for the disks of cfg with served[i] set and rewrites
 * those disks in cfg as vhost-user disks on its sockets; loop and the kinds
 * are the front's (lib/backend_proc.h). 0, or -errno with
 * the reason (a bad image, domus-blk's own message) logged.
 */
int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const bool *served,
			 const struct watch_loop *loop, int pid_kind, int timer_kind);
/* domus-blk's counters for the domain's disk i, NULL if it does not serve it. */
struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i);
/* Stops supervising, ends domus-blk and removes its sockets. */
void blk_supervisor_stop(struct blk_supervisor *s);

#endif
