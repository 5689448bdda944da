/*
 * A driver-domain process under a supervisor (domus-blk, domus-net): it is
 * started as `program --control-fd 3` on one end of a SOCK_SEQPACKET
 * socketpair, and every request is one message of text with descriptors
 * attached, answered by one message "ok[ DETAIL]" or "error REASON".
 * vmm/blkctl.c and net/netctl.c speak their protocols on top of this.
 */
#ifndef DOMUS_CTLPROC_H
#define DOMUS_CTLPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CTLPROC_REPLY_MAX 65536 /* the longest answer read */

/*
 * Starts program as argv0 with `--control-fd 3` and -v (verbose) or
 * --quiet; it dies with the caller (PR_SET_PDEATHSIG). Its end of the
 * socket in *ctl_fd. 0 or -errno with err.
 */
int ctlproc_spawn(const char *program, const char *argv0, bool verbose, pid_t *pid, int *ctl_fd,
		  char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * Every process started as argv0 from now on joins the cgroup whose
 * directory dirfd is (a cgroup v2 directory, kept open by the caller)
 * before it runs: domusd gives domus-blk and domus-net their own.
 */
void ctlproc_set_cgroup(const char *argv0, int dirfd);
/*
 * Every process started as argv0 from now on is given `--threads n` (0:
 * none, its own default): domusd's --blk-threads for domus-blk.
 */
void ctlproc_set_threads(const char *argv0, unsigned n);
/*
 * The same with `--poll-us us` (0: none): how long a back-end polls its
 * queues after a batch (domusd's --blk-poll-us and --net-poll-us).
 */
void ctlproc_set_poll_us(const char *argv0, unsigned us);
/* Moves the calling process into the cgroup dirfd is; async-signal-safe. 0 or -errno. */
int ctlproc_join_cgroup(int dirfd);
/*
 * Sends text with nfds descriptors and waits timeout_ms at most for the
 * answer. 0 with what follows "ok " or "ok\n" (possibly "") in detail (if not NULL;
 * a detail not asked for is an error), or -errno with err: the REASON of an
 * "error" answer (-EINVAL), or what went wrong on the socket; who names the
 * process in those messages.
 */
int ctlproc_request(int ctl_fd, const char *who, const char *text, const int *fds, unsigned nfds,
		    int timeout_ms, char *detail, size_t detail_len, char *err, size_t errlen);
/*
 * Where the program called name is: the environment variable env if set,
 * else beside the program `near` (installed side by side), else at
 * tree_dir/name relative to near's directory (the build tree).
 */
void ctlproc_find_program(char *out, size_t len, const char *env, const char *name,
			  const char *tree_dir, const char *near);

#endif
