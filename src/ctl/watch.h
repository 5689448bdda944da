/* domusd's epoll loop: what kind of descriptor woke it, and the object it belongs to. */
#ifndef DOMUS_WATCH_H
#define DOMUS_WATCH_H

enum watch_kind {
	W_MHD,
	W_SIGNAL,
	W_CONTROL,
	W_PIDFD,
	W_PROXY_CLIENT,
	W_PROXY_VMM,
	W_PROXY_CLIENT_OUT, /* a slow console reader has room again (ptr: struct proxy) */
	W_BACKEND_PID,	 /* a driver domain's process ended (ptr: struct backend_proc) */
	W_BACKEND_TIMER, /* its restart is due */
	W_TASK,		 /* what a waiting task waits for (ptr: the task, lib/task.h) */
	W_SHM_LISTEN,	 /* a region's ivshmem server has a connection (ptr: struct shm_server) */
	W_SHM_PEER,	 /* a region's peer sent something, or went (ptr: struct shm_peer) */
};

#include "lib/watch.h"

/* domusd.c */
void watch_add(int fd, struct watch *w);
/* The same, for room to write. */
void watch_add_out(int fd, struct watch *w);
void watch_del(int fd);
extern const struct watch_loop domusd_loop;

#endif
