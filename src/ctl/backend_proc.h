/*
 * A driver domain's process under domusd (domus-blk, domus-net): started
 * with a control socket, watched through its pidfd, started again when it
 * dies after 50 ms, or after twice the last wait (up to 5 s) when it died
 * within a second of starting, so a crash loop is backed off, not spun.
 * What it serves is handed to it again by the owner's started() each time.
 */
#ifndef DOMUS_BACKEND_PROC_H
#define DOMUS_BACKEND_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctl/watch.h"

struct backend_proc {
	const char *name; /* for messages */
	char program[PATH_MAX];
	/* Starts `program --control-fd 3`; the control socket in *ctl_fd. 0 or -errno with err. */
	int (*spawn)(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		     size_t errlen);
	/* A process was started (first or again): hand it what it serves. May be NULL. */
	void (*started)(struct backend_proc *p, bool again);
	pid_t pid; /* 0 while not running */
	int pidfd, ctl_fd, timer_fd;
	long started_ms;
	unsigned delay_ms;
	unsigned restarts;
	struct watch w_pid, w_timer;
};

void backend_proc_init(struct backend_proc *p, const char *name, const char *program,
		       int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
		       void (*started)(struct backend_proc *, bool));
/* Starts the process unless it runs or a restart is pending. 0 or -errno with err. */
int backend_proc_ensure(struct backend_proc *p, char *err, size_t errlen);
/* Whether a process runs now (a request can be sent on ctl_fd). */
bool backend_proc_running(const struct backend_proc *p);
/* The pidfd is readable: the process ended; logs it and arms the restart. */
void backend_proc_exited(struct backend_proc *p);
/* The restart timer is readable. */
void backend_proc_restart(struct backend_proc *p);
/* Ends the process: its control socket closes, it gets 5 s to exit, then SIGKILL. */
void backend_proc_stop(struct backend_proc *p);

#endif
