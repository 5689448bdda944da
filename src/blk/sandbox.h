/*
 * domus-blk's confinement, entered once its images are open and its
 * sockets listen: no more privileges than user nobody's, and a seccomp
 * allow-list of what serving requests needs (no open, no socket, no exec).
 */
#ifndef DOMUS_BLK_SANDBOX_H
#define DOMUS_BLK_SANDBOX_H

#include <stddef.h>

/* 0, or -errno with what failed in err. */
int blk_sandbox_enter(char *err, size_t errlen);

#endif
