/*
 * domus-blk's confinement, entered once its images are open and its
 * sockets listen: the privileges of an unprivileged user of its own
 * (domus-blk, made by dist/sysusers.d; nobody where it does not exist),
 * no new privileges, and a seccomp allow-list of what serving requests
 * needs (no open, no socket, no exec). Its io_uring is restricted to
 * reads, writes and syncs when it is made (blk/blk_io.c).
 */
#ifndef DOMUS_BLK_SANDBOX_H
#define DOMUS_BLK_SANDBOX_H

#include <stddef.h>

/* Runs as user (NULL: domus-blk, else nobody) when started as root. 0, or -errno with what failed in err. */
int blk_sandbox_enter(const char *user, char *err, size_t errlen);

#endif
