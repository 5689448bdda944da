/*
 * The supervisor's end of domus-blk's control socket, shared by the two
 * supervisors: domusd (one domus-blk for the host) and `domus run` (one
 * for its domain). A disk is prepared once: its image and backing chain
 * opened and checked here (so a bad image is refused before anything
 * starts, with the reason), its listening socket made, the "add" message
 * written. The same descriptors and message are handed to every domus-blk
 * started after, so a restarted one serves the disk on the same socket.
 * The protocol is in docs/blk.md.
 */
#ifndef DOMUS_BLKCTL_H
#define DOMUS_BLKCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/cache.h"
#include "blk/image.h"
#include "blk/sched.h"
#include "lib/unix_socket.h"
#include "vmm/config.h"

struct blkctl_disk {
	char id[32];
	char socket[108];
	char *text; /* the add message */
	int fds[UNIX_MAX_FDS];
	unsigned nfds;
};

/* A disk's image opened: what domus-blk is handed for it. */
struct blkctl_image {
	int image;  /* the image */
	int direct; /* the same image opened with O_DIRECT (cache=none, directsync), or -1 */
	unsigned nbacking;
	int backing[IMAGE_MAX_CHAIN];
	char names[IMAGE_MAX_CHAIN][IMAGE_NAME_MAX]; /* as the images name them */
};

/*
 * Opens dc's image with its whole backing chain, checked, and the O_DIRECT
 * twin its cache mode needs. 0, or -errno with the reason in err (which
 * names the file) and nothing left open.
 */
int blkctl_image_open(const struct disk_config *dc, struct blkctl_image *img, char *err,
		      size_t errlen);
void blkctl_image_close(struct blkctl_image *img);

/*
 * Prepares disk dc as id, listening at socket; stats_fd (or -1) is a
 * counters file in which domus-blk counts it in slot. The image is opened
 * (its path) unless opened holds it already, whose descriptors are then
 * taken over. 0, or -errno with the reason in err (and nothing left open).
 */
int blkctl_disk_open(struct blkctl_disk *d, const char *id, const struct disk_config *dc,
		     const char *socket, int stats_fd, unsigned slot, struct blkctl_image *opened,
		     char *err, size_t errlen);
/* Closes what the disk holds; removes its socket if remove_socket. */
void blkctl_disk_close(struct blkctl_disk *d, bool remove_socket);
/* Starts `program --control-fd 3`; its end of the socket in *ctl_fd. 0 or -errno with err. */
int blkctl_spawn(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		 size_t errlen);
/* Hands d to the domus-blk at ctl_fd and waits (10 s at most) for its answer. */
int blkctl_add(int ctl_fd, const struct blkctl_disk *d, char *err, size_t errlen);
int blkctl_remove(int ctl_fd, const char *id, char *err, size_t errlen);
/* The shared read cache's limit in bytes (0: none); lowering it evicts at once. 0 or -errno. */
int blkctl_cache_limit(int ctl_fd, uint64_t bytes, char *err, size_t errlen);
/* The shared read cache's counters, size and limit. 0 or -errno with err. */
int blkctl_cache_stats(int ctl_fd, struct blk_cache_stats *out, char *err, size_t errlen);
/*
 * Disk id's requests go by group (made if need be; disks named in the same
 * group share it) with QoS spec (blk/qos.h, the whole of it: keys left out
 * take their defaults). A reservation the disk cannot honour with the
 * others' is refused with the figures. 0 or -errno with err.
 */
int blkctl_qos(int ctl_fd, const char *id, const char *group, const char *spec, char *err, size_t errlen);
/* The scheduler's counters of group, and the percentage of its reservation met (-1: none). */
int blkctl_qos_stats(int ctl_fd, const char *group, struct blk_sched_stats *out, int *reserve_met,
		     char *err, size_t errlen);
/* The scheduler's settings: "op-ns=N,byte-ps=N,capacity-pct=N,depth=N" (any of them). */
int blkctl_sched(int ctl_fd, const char *settings, char *err, size_t errlen);
/* DOMUS_BLK, else domus-blk beside program `near` (installed), else in the build tree. */
void blkctl_find_program(char *out, size_t len, const char *near);

#endif
