/*
 * A driver-domain child of `domus run` (domus-blk, domus-net): started
 * with a control socket (lib/ctlproc.h), handed what it serves by the
 * owner's serve(), and watched by a thread that starts it again when it
 * dies, after 50 ms, or after twice the last wait (up to 5 s) when it died
 * within a second of starting, and hands it everything again. What it
 * serves (listening sockets, images, memfds) is the owner's, kept open
 * across restarts, so a restarted child carries on where the last left.
 */
#ifndef DOMUS_CHILD_SUPERVISOR_H
#define DOMUS_CHILD_SUPERVISOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct child_supervisor {
	const char *name; /* for messages: "domus-blk" */
	const char
	    *lost; /* logged when it cannot be started again: "the domain's disks stay stopped" */
	char program[4096];
	bool verbose;
	/* Starts `program --control-fd 3`; the control socket in *ctl_fd. 0 or -errno with err. */
	int (*spawn)(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		     size_t errlen);
	/* Hands the child at ctl_fd everything it serves. 0 or -errno with err. */
	int (*serve)(void *opaque, int ctl_fd, char *err, size_t errlen);
	void *opaque;
	pid_t pid;
	int pidfd, ctl_fd, stop_fd;
	unsigned restarts;
	pthread_t thread;
	bool running;
};

/* Fills s; nothing starts. */
void child_supervisor_init(struct child_supervisor *s, const char *name, const char *lost,
			   int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
			   int (*serve)(void *, int, char *, size_t), void *opaque);
/*
 * Where the program is, by find (blkctl_find_program, netctl_find_program)
 * from this program's own path. 0, or -ENOENT when it is not executable.
 */
int child_supervisor_find(struct child_supervisor *s, void (*find)(char *, size_t, const char *));
/*
 * Starts the child, serves it, and the thread that restarts it. 0, or
 * -errno with why in err (the child's own answer, when it refused).
 */
int child_supervisor_start(struct child_supervisor *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops the thread; the child's control socket closes, it gets 5 s to exit, then SIGKILL. */
void child_supervisor_stop(struct child_supervisor *s);
/*
 * How long to wait before starting a child again after one that lived
 * lifetime_ms: 50 ms, doubled (up to 5 s) while each dies within a second.
 */
unsigned child_restart_delay_ms(unsigned previous_ms, long lifetime_ms);
/* What a child's end says beyond its number: "" or, for SIGSYS, that its sandbox stopped it. */
const char *child_end_note(int code, int status);

#endif
