/*
 * The front-end side of vhost-user, for the VMM: connect to a back-end,
 * negotiate, hand it guest memory (the memfd) and the rings of each queue,
 * with eventfds for kicks and calls.
 */
#ifndef DOMUS_VHOST_FRONTEND_H
#define DOMUS_VHOST_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "vhost/vhost_user.h"
#include "vmm/guest_mem.h"

/* How long a reply may take; a back-end that takes longer is dropped (and reconnected). */
#define VHOST_FRONTEND_REPLY_MS 10000

struct vhost_frontend {
	int sock;
	uint64_t features;          /* the back-end's virtio features */
	uint64_t protocol_features; /* agreed */
	unsigned max_queues;
};

/* Connects and learns the back-end's features; 0 or -errno with why in err. */
int vhost_frontend_connect(struct vhost_frontend *f, const char *path, char *err, size_t errlen);
void vhost_frontend_close(struct vhost_frontend *f);
int vhost_frontend_get_config(struct vhost_frontend *f, void *buf, uint32_t len, char *err,
			      size_t errlen);
/* Writes len bytes of the back-end's config space at off (the driver wrote them). */
int vhost_frontend_set_config(struct vhost_frontend *f, uint32_t off, const void *buf, uint32_t len,
			      char *err, size_t errlen);
/* SET_FEATURES with what the driver acked, and the guest's memory table. */
int vhost_frontend_setup(struct vhost_frontend *f, uint64_t driver_features,
			 const struct guest_mem *mem, char *err, size_t errlen);
/*
 * The inflight area (INFLIGHT_SHMFD) of nqueues queues, if the back-end has
 * it: asked for once (*fd < 0), then handed to every back-end process
 * after, so a new one finds what its predecessor left unfinished in every
 * queue. 0 or -errno.
 */
int vhost_frontend_inflight(struct vhost_frontend *f, uint16_t nqueues, uint16_t queue_size, int *fd,
			    uint64_t *size, char *err, size_t errlen);
/* Hands queue q's rings (guest-physical) to the back-end and enables it. */
int vhost_frontend_start_queue(struct vhost_frontend *f, const struct guest_mem *mem, unsigned q,
			       uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
			       uint16_t last_avail, int kick_fd, int call_fd, char *err,
			       size_t errlen);
/* Stops queue q; returns its next available index, or -errno. */
int vhost_frontend_stop_queue(struct vhost_frontend *f, unsigned q);

#endif
