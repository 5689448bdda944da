/*
 * `domus run`'s front: the process the user started, which keeps what a
 * domain's process may not do itself. It starts and supervises the
 * driver domains (domus-blk for the disks, domus-net for --net vfr),
 * starts domus-vmm in the foreground on them, passes it the terminal,
 * forwards the signals it gets, and exits with its status. domus-vmm,
 * started as root, confines itself as under domusd, as a user of its own
 * (vmm/confine.h); no process forks from a VMM.
 */
#ifndef DOMUS_RUN_FRONT_H
#define DOMUS_RUN_FRONT_H

#include "vmm/config.h"

/* Runs the domain cfg describes; returns `domus run`'s exit status (vmm/run.h). */
int run_front(const struct vm_config *cfg);

#endif
