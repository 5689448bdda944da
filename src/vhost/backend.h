/*
 * The back-end side of vhost-user: one front-end connection, its memory
 * table mapped, its virtqueues served through devices/virtq.c (every
 * address and index checked as for an in-VMM device), kicks and calls on
 * eventfds. A device (domus-blk's disk) supplies features, config space
 * and what to do with a kicked queue.
 */
#ifndef DOMUS_VHOST_BACKEND_H
#define DOMUS_VHOST_BACKEND_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtq.h"
#include "lib/watch.h"
#include "vhost/vhost_user.h"
#include "vmm/guest_mem.h"

#define VHOST_BACKEND_MAX_QUEUES 16 /* a multiqueue disk's, one per vCPU up to 16 */

struct vhost_backend;

struct vhost_device_ops {
	uint64_t features; /* the device's virtio features, ring and version bits included */
	unsigned num_queues;
	uint16_t queue_size;
	/*
	 * No INFLIGHT_SHMFD: a device whose requests may be served twice after a
	 * restart (virtio-net: a frame sent again) needs no record of them.
	 */
	bool no_inflight;
	/* Fills len bytes of config space from off; 0 or -EINVAL. */
	int (*get_config)(void *dev, uint8_t *buf, uint32_t off, uint32_t len);
	/* The driver wrote config space; 0 or -EINVAL for what is not writable. May be NULL. */
	int (*set_config)(void *dev, const uint8_t *buf, uint32_t off, uint32_t len);
	/*
	 * Finish every request taken: called before the memory table changes, a
	 * queue stops or the connection closes, since requests in flight point
	 * into that memory. May be NULL for devices that complete at once.
	 */
	void (*quiesce)(void *dev, struct vhost_backend *b);
	/* The driver kicked queue q: take and complete what it made available. */
	void (*queue_kicked)(void *dev, struct vhost_backend *b, unsigned q);
};

/*
 * The inflight area (INFLIGHT_SHMFD), one per queue in a memfd the
 * front-end keeps across our restarts: which requests were taken and not
 * yet completed, so that a new back-end process resubmits them.
 */
struct inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter; /* order taken */
};

struct inflight_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head; /* the head being completed */
	uint16_t used_idx;        /* the used index once it is */
	struct inflight_desc desc[];
};

struct vhost_queue {
	struct virtq vq;
	int kick_fd, call_fd;
	bool have_addr, enabled, started;
	uint64_t desc_ua, avail_ua, used_ua;
	struct inflight_queue *inflight; /* NULL without the inflight area */
	uint64_t counter;
	uint16_t resubmit[VIRTQ_MAX_SIZE]; /* heads to serve again, oldest first */
	unsigned nresubmit, next_resubmit;
};

/*
 * What an epoll event of a back-end's descriptor points to (epoll_event.data.ptr):
 * w.kind is the loop's own (vhost_backend_watch), q the queue whose kick
 * it is, or -1 for the front-end's socket.
 */
struct vhost_watch {
	struct watch w;
	struct vhost_backend *b;
	int q;
};

struct vhost_backend {
	int sock;
	/*
	 * The epoll set the connection's descriptors are in (vhost_backend_watch),
	 * -1 when its owner polls them instead (vhost_backend_poll_fds). Each
	 * descriptor is added once, when it comes (the connection, a queue
	 * started), and removed when it goes, never per wake-up.
	 */
	int epfd;
	struct vhost_watch sock_watch, kick_watch[VHOST_BACKEND_MAX_QUEUES];
	int kick_watched[VHOST_BACKEND_MAX_QUEUES]; /* the kick fd in the set, or -1 */
	const struct vhost_device_ops *ops;
	void *dev;
	uint64_t features;          /* acked by the front-end */
	uint64_t protocol_features; /* acked */
	bool owner;
	struct guest_mem mem;
	uint64_t region_ua[VHOST_USER_MAX_REGIONS]; /* front-end address of each region */
	void *maps[VHOST_USER_MAX_REGIONS];
	size_t map_len[VHOST_USER_MAX_REGIONS];
	struct vhost_queue q[VHOST_BACKEND_MAX_QUEUES];
	void *inflight;
	size_t inflight_size;
	uint16_t inflight_queue_size;
	unsigned inflight_queues;
	unsigned long long resubmitted; /* requests served again after a restart */
	char err[256]; /* why the connection was dropped */
};

void vhost_backend_init(struct vhost_backend *b, int sock, const struct vhost_device_ops *ops,
			void *dev);
/* Frees what the connection holds: mappings, eventfds, the socket. */
void vhost_backend_close(struct vhost_backend *b);
/* Reads and handles one message; 0, or -errno to drop the front-end (why in b->err). */
int vhost_backend_handle(struct vhost_backend *b);
/* The socket and the started queues' kick fds; returns how many entries were filled. */
unsigned vhost_backend_poll_fds(struct vhost_backend *b, struct pollfd *p, unsigned max);
/* Dispatches poll results; returns -errno when the front-end must be dropped. */
int vhost_backend_poll_ready(struct vhost_backend *b, const struct pollfd *p, unsigned n);
/*
 * Takes the next request of queue q: first those a previous back-end took
 * and did not complete, then new ones. 1 with *c, 0 if none, -EINVAL if
 * the driver broke the ring's rules.
 */
int vhost_backend_pop(struct vhost_backend *b, unsigned q, struct virtq_chain *c);
/* Completes a request taken with vhost_backend_pop. */
int vhost_backend_push(struct vhost_backend *b, unsigned q, uint16_t head, uint32_t len);
/*
 * Gives back, unused, the last new request taken from q (a queue without
 * an inflight area: a device that found it needs more buffers than there
 * are). 0, or -EINVAL for a queue with an inflight area.
 */
int vhost_backend_unpop(struct vhost_backend *b, unsigned q);
/*
 * From now on the connection's descriptors live in epoll set epfd, their
 * events pointing to struct vhost_watch with w.kind = kind; queues started
 * later are added as they start. 0 or -errno.
 */
int vhost_backend_watch(struct vhost_backend *b, int epfd, int kind)
    __attribute__((warn_unused_result));
/* Takes them out of the set again (before the connection moves to another loop). */
void vhost_backend_unwatch(struct vhost_backend *b);
/* An event of vhost_watch w: a message, or a kick. -errno when the front-end must be dropped. */
int vhost_backend_event(const struct vhost_watch *w);
/*
 * Whether queue q has requests to take (new avail entries or ones to
 * resubmit), read from the ring without taking any: a busy-polling loop's
 * test.
 */
bool vhost_backend_has_avail(struct vhost_backend *b, unsigned q);
/* Signals the front-end's call eventfd for queue q if the driver wants it. */
void vhost_backend_notify(struct vhost_backend *b, unsigned q);

#endif
