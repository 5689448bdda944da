/*
 * A driver domain's process (domus-blk, domus-net), under domusd or under
 * `domus run`'s front: started with a control socket (lib/ctlproc.h),
 * watched through its pidfd in the owner's event loop, started again when
 * it dies after 50 ms, or after twice the last wait (up to 5 s) when it
 * died within a second of starting, so a crash loop is backed off, not
 * spun. What it serves is the owner's, kept open across restarts, and
 * handed to each process started by the owner's started().
 */
#ifndef DOMUS_BACKEND_PROC_H
#define DOMUS_BACKEND_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/watch.h"

struct backend_proc {
	const char *name; /* for messages */
	char program[PATH_MAX];
	bool verbose;
	/* Starts `program --control-fd 3`; the control socket in *ctl_fd. 0 or -errno with err. */
	int (*spawn)(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		     size_t errlen);
	/*
	 * A process was started (first or again): hand it what it serves. 0, or
	 * -errno with why in err: the first start fails with it, a restart ends
	 * that process and backs off. May be NULL.
	 */
	int (*started)(struct backend_proc *p, bool again, char *err, size_t errlen);
	const struct watch_loop *loop;
	pid_t pid; /* 0 while not running */
	int pidfd, ctl_fd, timer_fd;
	long started_ms;
	unsigned delay_ms;
	unsigned restarts;
	struct watch w_pid, w_timer; /* kinds the owner's loop dispatches on */
};

/*
 * Fills p; nothing starts. The owner's loop calls backend_proc_exited when
 * a descriptor registered with w_pid's kind is readable, and
 * backend_proc_restart for w_timer's.
 */
void backend_proc_init(struct backend_proc *p, const char *name, const char *program,
		       int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
		       int (*started)(struct backend_proc *, bool, char *, size_t),
		       const struct watch_loop *loop, int pid_kind, int timer_kind);
/*
 * Where the program is, by find (blkctl_find_program, netctl_find_program)
 * from this program's own path. 0, or -ENOENT when it is not executable.
 */
int backend_proc_find(struct backend_proc *p, void (*find)(char *, size_t, const char *));
/* Starts the process unless it runs or a restart is pending. 0 or -errno with err. */
int backend_proc_ensure(struct backend_proc *p, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Whether a process runs now (a request can be sent on ctl_fd). */
bool backend_proc_running(const struct backend_proc *p);
/* The pidfd is readable: the process ended; logs it and arms the restart. */
void backend_proc_exited(struct backend_proc *p);
/* The restart timer is readable. */
void backend_proc_restart(struct backend_proc *p);
/* Ends the process: its control socket closes, it gets 5 s to exit, then SIGKILL. */
void backend_proc_stop(struct backend_proc *p);
/*
 * How long to wait before starting a process again after one that lived
 * lifetime_ms: 50 ms, doubled (up to 5 s) while each dies within a second.
 */
unsigned backend_restart_delay_ms(unsigned previous_ms, long lifetime_ms);
/* What a process's end says beyond its number: "" or, for SIGSYS, that its sandbox stopped it. */
const char *backend_end_note(int code, int status);

#endif
