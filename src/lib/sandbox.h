/*
 * A driver domain's confinement, entered once every descriptor it needs at
 * the start is open: the privileges of an unprivileged user of its own
 * (made by tools/deps and dist/sysusers.d, and required) when started as
 * root, no new privileges, and a seccomp allow-list of system calls that
 * the caller (blk/sandbox.c, net/sandbox.c) gives and comments, with
 * mmap/mprotect never executable and fcntl limited to flags and
 * duplicating. Any other call kills the process (SIGSYS).
 */
#ifndef DOMUS_SANDBOX_H
#define DOMUS_SANDBOX_H

#include <seccomp.h>
#include <stddef.h>

/*
 * Runs as user (NULL: default_user; it must exist) when started as root,
 * then loads the allow-list allowed[0, n). 0, or -errno with what failed
 * in err.
 */
/*
 * Adds one allowed call to ctx, its arguments held where they matter (as
 * above: mmap/mprotect never executable, fcntl on flags and duplicating).
 * 0 or -errno from libseccomp.
 */
int sandbox_allow(scmp_filter_ctx ctx, int nr);
int sandbox_enter(const char *user, const char *default_user, const int *allowed, size_t n,
		  char *err, size_t errlen);

#endif
