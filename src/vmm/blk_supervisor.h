/*
 * The disk driver domain of one domain's process: a domus-blk child that
 * serves the domain's disks (opened here, passed as descriptors, so the
 * child needs no paths), and a thread that starts it again when it dies,
 * backing off if it dies as soon as it starts.
 */
#ifndef DOMUS_BLK_SUPERVISOR_H
#define DOMUS_BLK_SUPERVISOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/config.h"

/* What domus-blk counts per disk, in shared memory (its --stats-fd). */
struct blk_counters {
	_Atomic uint64_t read_ops, write_ops, read_bytes, write_bytes;
};

struct blk_supervisor {
	char dir[64];          /* private directory of the sockets */
	char *argv[64];
	int fds[VM_MAX_DISKS]; /* the images, passed to every domus-blk started */
	unsigned nfds;
	pid_t pid;
	int pidfd;
	int stop_fd;
	unsigned restarts;
	int stats_fd;
	struct blk_counters *stats; /* VM_MAX_DISKS slots, in the order of fds */
	int slot[VM_MAX_DISKS];     /* a domain's disk's slot, -1 if domus-blk does not serve it */
	pthread_t thread;
	bool running;
};

/*
 * Starts domus-blk for the disks of cfg whose fds[i] >= 0 and rewrites
 * those disks in cfg as vhost-user disks on its sockets. 0, or -errno with
 * domus-blk's own message logged.
 */
int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const int *fds);
/* domus-blk's counters for the domain's disk i, NULL if it does not serve it. */
struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i);
/*
 * How long to wait before starting domus-blk again after one that lived
 * lifetime_ms: 50 ms, doubled (up to 5 s) while each dies within a second.
 */
unsigned blk_restart_delay_ms(unsigned previous_ms, long lifetime_ms);
/* Stops supervising, ends domus-blk and removes its sockets. */
void blk_supervisor_stop(struct blk_supervisor *s);

#endif
