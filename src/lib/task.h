/*
 * Cooperative tasks for a single-threaded daemon. A piece of work (domusd:
 * one API request) runs on a stack of its own and gives the loop back
 * whenever it waits, for a descriptor or for an event another part of the
 * daemon signals, so a domain's process that is slow to answer holds only
 * the client that asked it. The code that waits keeps its straight-line
 * shape (as QEMU's coroutines do); everything still runs on the loop's one
 * thread, so no locks, but the daemon's state may change across a wait.
 *
 * The loop: a watch of kind task_watch_kind (given to task_init) that fires
 * goes to task_watch_ready(); epoll's timeout is at most
 * task_next_timeout_ms(); task_run_due() is called after each wake-up.
 */
#ifndef DOMUS_LIB_TASK_H
#define DOMUS_LIB_TASK_H

#include <stdbool.h>

#include "lib/watch.h"

struct task;

/* Something tasks wait for, until task_event_signal() wakes all of them. */
struct task_event {
	struct task *waiters;
};

struct task_loop {
	/* Watch fd for events (EPOLLIN/EPOLLOUT); 0 or -errno (-EEXIST: fd is watched already). */
	int (*add)(int fd, unsigned events, struct watch *w);
	void (*del)(int fd);
};

void task_init(const struct task_loop *loop, int watch_kind);

/*
 * Runs fn(arg) as a task until it ends or first waits. Returns 1 when it
 * ended, 0 when it waits (done(arg) is called from the loop once it ends),
 * -errno when no task could be made (fn did not run). Called in a task,
 * runs fn there and returns 1.
 */
int task_run(void (*fn)(void *), void (*done)(void *), void *arg);

/* Whether the caller runs in a task (and may wait without holding the loop). */
bool task_in_task(void);
/* Tasks started and not ended yet. */
unsigned task_count(void);

/*
 * Waits until fd has events (POLLIN/POLLOUT) or timeout_ms (-1: no limit)
 * passes: 0, or -ETIMEDOUT. Outside a task this is poll().
 */
int task_wait_fd(int fd, unsigned events, int timeout_ms);
/*
 * In a task: waits until ev is signalled or timeout_ms passes; 0 or
 * -ETIMEDOUT. Outside a task there is no one to signal it: -EWOULDBLOCK.
 */
int task_event_wait(struct task_event *ev, int timeout_ms);
/* Wakes every task waiting on ev (they run from the loop, after the caller). */
void task_event_signal(struct task_event *ev);

/* The loop's side. */
void task_watch_ready(struct watch *w);
int task_next_timeout_ms(void);
void task_run_due(void);

#endif
