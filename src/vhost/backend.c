#include "vhost/backend.h"

#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define VIRTIO_F_VERSION_1 32
#define SUPPORTED_PROTOCOL                                                                   \
	((1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ULL << VHOST_USER_PROTOCOL_F_CONFIG) | \
	 (1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
#define INFLIGHT_ALIGN 64

void vhost_backend_init(struct vhost_backend *b, int sock, const struct vhost_device_ops *ops,
			void *dev)
{
	memset(b, 0, sizeof(*b));
	b->sock = sock;
	b->ops = ops;
	b->dev = dev;
	b->mem.fd = -1;
	b->epfd = -1;
	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++) {
		virtq_init(&b->q[i].vq, &b->mem, ops->queue_size);
		b->q[i].kick_fd = b->q[i].call_fd = -1;
		b->kick_watched[i] = -1;
	}
}

/* Queue qi's kick out of the epoll set: before its descriptor is closed or replaced. */
static void kick_unwatch(struct vhost_backend *b, unsigned qi)
{
	if (b->epfd >= 0 && b->kick_watched[qi] >= 0)
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->kick_watched[qi], NULL);
	b->kick_watched[qi] = -1;
}

/* Queue qi's kick in the set while the queue runs. */
static int kick_watch(struct vhost_backend *b, unsigned qi)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &b->kick_watch[qi]};

	if (b->epfd < 0 || !b->q[qi].started || b->kick_watched[qi] == b->q[qi].kick_fd)
		return 0;
	kick_unwatch(b, qi);
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->q[qi].kick_fd, &ev) < 0)
		return -errno;
	b->kick_watched[qi] = b->q[qi].kick_fd;
	return 0;
}

int vhost_backend_watch(struct vhost_backend *b, int epfd, int kind)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &b->sock_watch};
	int ret = 0;

	b->epfd = epfd;
	b->sock_watch = (struct vhost_watch){{kind, b}, b, -1};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, b->sock, &ev) < 0) {
		b->epfd = -1;
		return -errno;
	}
	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++) {
		b->kick_watch[i] = (struct vhost_watch){{kind, b}, b, (int)i};
		if (ret == 0)
			ret = kick_watch(b, i);
	}
	if (ret < 0)
		vhost_backend_unwatch(b);
	return ret;
}

void vhost_backend_unwatch(struct vhost_backend *b)
{
	if (b->epfd < 0)
		return;
	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++)
		kick_unwatch(b, i);
	if (b->sock >= 0)
		epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->sock, NULL);
	b->epfd = -1;
}

static void unmap_memory(struct vhost_backend *b)
{
	for (unsigned i = 0; i < VHOST_USER_MAX_REGIONS; i++) {
		if (b->maps[i])
			munmap(b->maps[i], b->map_len[i]);
		b->maps[i] = NULL;
	}
	b->mem.nregions = 0;
}

static void stop_queue(struct vhost_backend *b, unsigned qi)
{
	struct vhost_queue *q = &b->q[qi];

	kick_unwatch(b, qi);
	q->started = false;
	q->vq.enabled = false;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
}

static int fail(struct vhost_backend *b, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct vhost_backend *b, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
	return ret;
}

static size_t inflight_queue_bytes(uint16_t queue_size)
{
	size_t n = sizeof(struct inflight_queue) + (size_t)queue_size * sizeof(struct inflight_desc);
	return (n + INFLIGHT_ALIGN - 1) & ~(size_t)(INFLIGHT_ALIGN - 1);
}

static void unmap_inflight(struct vhost_backend *b)
{
	if (b->inflight)
		munmap(b->inflight, b->inflight_size);
	b->inflight = NULL;
	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++)
		b->q[i].inflight = NULL;
}

static int map_inflight(struct vhost_backend *b, int fd, uint64_t size, uint64_t offset,
			uint16_t nqueues, uint16_t queue_size)
{
	void *p;

	if (nqueues == 0 || nqueues > VHOST_BACKEND_MAX_QUEUES || queue_size == 0 ||
	    queue_size > VIRTQ_MAX_SIZE || size < nqueues * inflight_queue_bytes(queue_size) ||
	    size > (64u << 20) || offset % 4096)
		return fail(b, -EINVAL, "inflight area of %llu bytes for %u queues of %u",
			    (unsigned long long)size, nqueues, queue_size);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return fail(b, -errno, "mapping the inflight area: %s", strerror(errno));
	unmap_inflight(b);
	b->inflight = p;
	b->inflight_size = size;
	b->inflight_queue_size = queue_size;
	b->inflight_queues = nqueues;
	for (unsigned i = 0; i < nqueues; i++)
		b->q[i].inflight = (struct inflight_queue *)((uint8_t *)p + i * inflight_queue_bytes(queue_size));
	return 0;
}

static int by_counter(const void *a, const void *bb, void *arg)
{
	const struct inflight_queue *iq = arg;
	uint64_t ca = iq->desc[*(const uint16_t *)a].counter, cb = iq->desc[*(const uint16_t *)bb].counter;

	return ca < cb ? -1 : ca > cb;
}

/*
 * After a restart: what the previous process took and did not complete is
 * served again, oldest first, and the avail index resumes past it.
 */
static void recover_inflight(struct vhost_backend *b, struct vhost_queue *q)
{
	struct inflight_queue *iq = q->inflight;
	uint16_t ring_used = q->vq.used_idx;

	q->nresubmit = q->next_resubmit = 0;
	q->counter = 0;
	if (iq && q->vq.size > b->inflight_queue_size) {
		/* The area was sized for smaller rings than this one: it cannot track it. */
		log_warnx("queue %u: inflight area for %u entries, ring of %u; not tracked",
			  (unsigned)(q - b->q), b->inflight_queue_size, q->vq.size);
		q->inflight = NULL;
		return;
	}
	if (!iq || iq->desc_num != q->vq.size || iq->version != 1) {
		if (iq) {
			memset(iq, 0, inflight_queue_bytes(b->inflight_queue_size));
			iq->version = 1;
			iq->desc_num = q->vq.size;
			iq->used_idx = ring_used;
		}
		return;
	}
	/* A completion that reached the used ring but not our record: it is done. */
	if (iq->used_idx != ring_used) {
		uint16_t last = iq->last_batch_head;
		if (last < q->vq.size)
			iq->desc[last].inflight = 0;
		iq->used_idx = ring_used;
	}
	/* The front-end can write this memory at any time: our ring size bounds every index. */
	for (uint16_t h = 0; h < q->vq.size; h++) {
		if (iq->desc[h].counter > q->counter)
			q->counter = iq->desc[h].counter;
		if (iq->desc[h].inflight)
			q->resubmit[q->nresubmit++] = h;
	}
	qsort_r(q->resubmit, q->nresubmit, sizeof(q->resubmit[0]), by_counter, iq);
	q->vq.last_avail = (uint16_t)(ring_used + q->nresubmit);
	b->resubmitted += q->nresubmit;
	if (q->nresubmit)
		log_info("queue %u: %u requests a previous back-end took are served again",
			 (unsigned)(q - b->q), q->nresubmit);
}

int vhost_backend_pop(struct vhost_backend *b, unsigned qi, struct virtq_chain *c)
{
	struct vhost_queue *q = &b->q[qi];
	int ret;

	if (q->next_resubmit < q->nresubmit) {
		if (virtq_chain_at(&q->vq, q->resubmit[q->next_resubmit++], c) < 0)
			return -EINVAL;
		return 1;
	}
	ret = virtq_pop_avail(&q->vq, c);
	if (ret == 1 && q->inflight && c->head < q->vq.size) {
		q->inflight->desc[c->head].counter = ++q->counter;
		atomic_thread_fence(memory_order_release);
		q->inflight->desc[c->head].inflight = 1;
	}
	return ret;
}

int vhost_backend_unpop(struct vhost_backend *b, unsigned qi)
{
	struct vhost_queue *q = &b->q[qi];

	/* An inflight area already marked it taken, and a resubmitted one is no new request. */
	if (q->inflight || q->nresubmit)
		return -EINVAL;
	virtq_unpop_avail(&q->vq);
	return 0;
}

int vhost_backend_push(struct vhost_backend *b, unsigned qi, uint16_t head, uint32_t len)
{
	struct vhost_queue *q = &b->q[qi];
	struct inflight_queue *iq = q->inflight && head < q->vq.size ? q->inflight : NULL;
	int ret;

	if (iq) {
		iq->last_batch_head = head;
		atomic_thread_fence(memory_order_release);
	}
	ret = virtq_push_used(&q->vq, head, len);
	if (iq) {
		atomic_thread_fence(memory_order_release);
		iq->desc[head].inflight = 0;
		atomic_thread_fence(memory_order_release);
		iq->used_idx = q->vq.used_idx;
	}
	return ret;
}

void vhost_backend_close(struct vhost_backend *b)
{
	if (b->ops && b->ops->quiesce && b->sock >= 0)
		b->ops->quiesce(b->dev, b);
	vhost_backend_unwatch(b);
	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++) {
		stop_queue(b, i);
		if (b->q[i].call_fd >= 0)
			close(b->q[i].call_fd);
		b->q[i].call_fd = -1;
	}
	unmap_memory(b);
	unmap_inflight(b);
	if (b->sock >= 0)
		close(b->sock);
	b->sock = -1;
}

/* A front-end address to a guest-physical one, through the memory table. */
static int ua_to_gpa(const struct vhost_backend *b, uint64_t ua, uint64_t *gpa)
{
	for (unsigned i = 0; i < b->mem.nregions; i++) {
		const struct gmem_region *r = &b->mem.regions[i];
		if (ua >= b->region_ua[i] && ua - b->region_ua[i] < r->size) {
			*gpa = r->gpa + (ua - b->region_ua[i]);
			return 0;
		}
	}
	return -EFAULT;
}

static int set_mem_table(struct vhost_backend *b, struct vhost_user_msg *m)
{
	const struct vhost_user_memory *mem = &m->payload.memory;

	for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++)
		if (b->q[i].started)
			return fail(b, -EBUSY, "SET_MEM_TABLE while queue %u runs", i);
	unmap_memory(b);
	for (uint32_t i = 0; i < mem->nregions; i++) {
		const struct vhost_user_region *r = &mem->regions[i];
		size_t len = (size_t)(r->memory_size + r->mmap_offset);
		void *p;

		if (len < r->memory_size)
			return fail(b, -EINVAL, "region %u too large", i);
		{
			/* Mapping past the file's end would turn the first touch there into SIGBUS. */
			struct stat st;
			if (fstat(m->fds[i], &st) < 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size < len)) {
				unmap_memory(b);
				return fail(b, -EINVAL, "region %u (%llu bytes at %llu) is larger than its file",
					    i, (unsigned long long)r->memory_size,
					    (unsigned long long)r->mmap_offset);
			}
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[i], 0);
		if (p == MAP_FAILED) {
			unmap_memory(b);
			return fail(b, -errno, "mapping region %u (%llu bytes): %s", i,
				    (unsigned long long)r->memory_size, strerror(errno));
		}
		b->maps[i] = p;
		b->map_len[i] = len;
		b->region_ua[i] = r->userspace_addr;
		b->mem.regions[i] = (struct gmem_region){
			.gpa = r->guest_phys_addr,
			.size = r->memory_size,
			.host = (uint8_t *)p + r->mmap_offset,
			.fd_offset = r->mmap_offset,
		};
		b->mem.nregions = i + 1;
	}
	return 0;
}

/* A queue runs once it has addresses and a kick fd, and is enabled. */
static int maybe_start(struct vhost_backend *b, unsigned qi)
{
	struct vhost_queue *q = &b->q[qi];
	uint16_t *used_idx;

	if (q->started || !q->have_addr || q->kick_fd < 0 || !q->enabled)
		return 0;
	if (ua_to_gpa(b, q->desc_ua, &q->vq.desc_gpa) < 0 ||
	    ua_to_gpa(b, q->avail_ua, &q->vq.avail_gpa) < 0 ||
	    ua_to_gpa(b, q->used_ua, &q->vq.used_gpa) < 0)
		return fail(b, -EFAULT, "queue %u: ring addresses outside the memory table", qi);
	q->vq.event_idx = b->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	q->vq.indirect = b->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (virtq_enable(&q->vq) < 0)
		return fail(b, -EINVAL, "queue %u: rings of size %u do not fit in guest memory", qi,
			    q->vq.size);
	/* The used index is the driver-visible truth, also after a reconnect. */
	used_idx = gmem_ptr(&b->mem, q->vq.used_gpa + 2, 2);
	q->vq.used_idx = *used_idx;
	recover_inflight(b, q);
	q->started = true;
	if (kick_watch(b, qi) < 0)
		return fail(b, -errno, "queue %u: adding its kick to the epoll set: %s", qi,
			    strerror(errno));
	/* Work queued before we started is picked up now. */
	b->ops->queue_kicked(b->dev, b, qi);
	return 0;
}

static int queue_index(struct vhost_backend *b, uint32_t index, unsigned *qi)
{
	if (index >= b->ops->num_queues)
		return fail(b, -EINVAL, "queue %u does not exist (%u queues)", index,
			    b->ops->num_queues);
	*qi = index;
	return 0;
}

static uint64_t protocol_offered(const struct vhost_backend *b)
{
	uint64_t p = SUPPORTED_PROTOCOL;

	if (b->ops->no_inflight)
		p &= ~(1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	return p;
}

static void reply_u64(struct vhost_user_msg *r, uint64_t v)
{
	r->hdr.size = 8;
	r->payload.u64 = v;
}

/* Handles m; fills r if a reply is due. Returns 0 or -errno (b->err says why). */
static int dispatch(struct vhost_backend *b, struct vhost_user_msg *m, struct vhost_user_msg *r,
		    bool *reply)
{
	unsigned qi = 0;
	int ret;

	switch (m->hdr.request) {
	case VHOST_USER_SET_MEM_TABLE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
	case VHOST_USER_SET_INFLIGHT_FD:
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		/* Requests in flight point into the memory and rings these change. */
		if (b->ops->quiesce)
			b->ops->quiesce(b->dev, b);
		break;
	default:
		break;
	}
	if ((m->hdr.request == VHOST_USER_GET_INFLIGHT_FD ||
	     m->hdr.request == VHOST_USER_SET_INFLIGHT_FD) && b->ops->no_inflight)
		return fail(b, -ENOTSUP, "%s: this device keeps no inflight area",
			    vhost_user_request_name(m->hdr.request));
	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		reply_u64(r, b->ops->features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
		*reply = true;
		return 0;
	case VHOST_USER_SET_FEATURES:
		if (m->payload.u64 & ~(b->ops->features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
			return fail(b, -EINVAL, "SET_FEATURES 0x%llx: bits we did not offer",
				    (unsigned long long)m->payload.u64);
		b->features = m->payload.u64;
		return 0;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(r, protocol_offered(b));
		*reply = true;
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		b->protocol_features = m->payload.u64 & protocol_offered(b);
		return 0;
	case VHOST_USER_SET_OWNER:
		b->owner = true;
		return 0;
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_RESET_DEVICE:
		for (unsigned i = 0; i < VHOST_BACKEND_MAX_QUEUES; i++)
			stop_queue(b, i);
		b->features = 0;
		return 0;
	case VHOST_USER_GET_QUEUE_NUM:
		reply_u64(r, b->ops->num_queues);
		*reply = true;
		return 0;
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		reply_u64(r, VHOST_USER_MAX_REGIONS);
		*reply = true;
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return set_mem_table(b, m);
	case VHOST_USER_SET_VRING_NUM:
		if ((ret = queue_index(b, m->payload.state.index, &qi)) < 0)
			return ret;
		if (m->payload.state.num == 0 || m->payload.state.num > b->ops->queue_size ||
		    (m->payload.state.num & (m->payload.state.num - 1)))
			return fail(b, -EINVAL, "queue %u: size %u (a power of two up to %u)", qi,
				    m->payload.state.num, b->ops->queue_size);
		b->q[qi].vq.size = (uint16_t)m->payload.state.num;
		return 0;
	case VHOST_USER_SET_VRING_ADDR:
		if ((ret = queue_index(b, m->payload.addr.index, &qi)) < 0)
			return ret;
		b->q[qi].desc_ua = m->payload.addr.desc;
		b->q[qi].avail_ua = m->payload.addr.avail;
		b->q[qi].used_ua = m->payload.addr.used;
		b->q[qi].have_addr = true;
		return maybe_start(b, qi);
	case VHOST_USER_SET_VRING_BASE:
		if ((ret = queue_index(b, m->payload.state.index, &qi)) < 0)
			return ret;
		b->q[qi].vq.last_avail = (uint16_t)m->payload.state.num;
		return 0;
	case VHOST_USER_GET_VRING_BASE:
		if ((ret = queue_index(b, m->payload.state.index, &qi)) < 0)
			return ret;
		stop_queue(b, qi);
		/* Without protocol features a queue is enabled by its kick fd; it stops here. */
		b->q[qi].enabled = false;
		r->hdr.size = sizeof(r->payload.state);
		r->payload.state.index = qi;
		r->payload.state.num = b->q[qi].vq.last_avail;
		*reply = true;
		return 0;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL: {
		bool kick = m->hdr.request == VHOST_USER_SET_VRING_KICK;
		int fd = m->nfds ? m->fds[0] : -1;
		int *slot;

		if ((ret = queue_index(b, (uint32_t)(m->payload.u64 & VHOST_USER_VRING_INDEX_MASK),
				       &qi)) < 0)
			return ret;
		if (!(m->payload.u64 & VHOST_USER_VRING_NOFD) && fd < 0)
			return fail(b, -EINVAL, "%s for queue %u without a descriptor",
				    vhost_user_request_name(m->hdr.request), qi);
		slot = kick ? &b->q[qi].kick_fd : &b->q[qi].call_fd;
		if (kick)
			kick_unwatch(b, qi); /* before its descriptor closes */
		if (*slot >= 0)
			close(*slot);
		*slot = fd;
		m->nfds = 0; /* ours now */
		if (kick && !(b->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
			b->q[qi].enabled = true;
		if (kick && b->q[qi].started && fd >= 0 && kick_watch(b, qi) < 0)
			return fail(b, -errno, "queue %u: adding its kick to the epoll set: %s", qi,
				    strerror(errno));
		return kick ? maybe_start(b, qi) : 0;
	}
	case VHOST_USER_SET_VRING_ERR:
		return 0; /* errors are reported by NEEDS_RESET through the front-end */
	case VHOST_USER_SET_VRING_ENABLE:
		if ((ret = queue_index(b, m->payload.state.index, &qi)) < 0)
			return ret;
		b->q[qi].enabled = m->payload.state.num != 0;
		if (!b->q[qi].enabled) {
			kick_unwatch(b, qi);
			b->q[qi].started = false;
			b->q[qi].vq.enabled = false;
			return 0;
		}
		return maybe_start(b, qi);
	case VHOST_USER_GET_CONFIG:
		*r = *m;
		r->nfds = 0;
		if (!b->ops->get_config ||
		    b->ops->get_config(b->dev, r->payload.config.region, m->payload.config.offset,
				       m->payload.config.size) < 0)
			r->payload.config.size = 0; /* an empty reply tells the front-end it failed */
		r->hdr.size = 12 + r->payload.config.size;
		*reply = true;
		return 0;
	case VHOST_USER_SET_CONFIG:
		/* A write to a read-only field is the driver's mistake: ignored, as hardware would. */
		if (b->ops->set_config)
			b->ops->set_config(b->dev, m->payload.config.region, m->payload.config.offset,
					   m->payload.config.size);
		return 0;
	case VHOST_USER_GET_INFLIGHT_FD: {
		const struct vhost_user_inflight *in = &m->payload.inflight;
		size_t size;
		int fd;

		if (in->num_queues == 0 || in->num_queues > b->ops->num_queues || in->queue_size == 0 ||
		    in->queue_size > b->ops->queue_size)
			return fail(b, -EINVAL, "GET_INFLIGHT_FD for %u queues of %u", in->num_queues,
				    in->queue_size);
		size = in->num_queues * inflight_queue_bytes(in->queue_size);
		fd = memfd_create("inflight", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
			if (fd >= 0)
				close(fd);
			return fail(b, -errno, "inflight memfd: %s", strerror(errno));
		}
		ret = map_inflight(b, fd, size, 0, in->num_queues, in->queue_size);
		if (ret < 0) {
			close(fd);
			return ret;
		}
		r->hdr.size = sizeof(r->payload.inflight);
		r->payload.inflight = (struct vhost_user_inflight){size, 0, in->num_queues, in->queue_size, 0};
		r->fds[0] = fd;
		r->nfds = 1;
		*reply = true;
		return 0;
	}
	case VHOST_USER_SET_INFLIGHT_FD: {
		const struct vhost_user_inflight *in = &m->payload.inflight;
		return map_inflight(b, m->fds[0], in->mmap_size, in->mmap_offset, in->num_queues,
				    in->queue_size);
	}
	case VHOST_USER_SET_STATUS:
		return 0;
	case VHOST_USER_GET_STATUS:
		reply_u64(r, 0);
		*reply = true;
		return 0;
	default:
		return fail(b, -ENOTSUP, "%s is not supported", vhost_user_request_name(m->hdr.request));
	}
}

int vhost_backend_handle(struct vhost_backend *b)
{
	struct vhost_user_msg m, r;
	bool reply = false;
	int ret = vhost_user_recv_nowait(b->sock, &m, b->err, sizeof(b->err));

	if (ret == -EAGAIN)
		return 0; /* woken for nothing */
	if (ret < 0) {
		if (ret == -EPIPE && !b->err[0])
			snprintf(b->err, sizeof(b->err), "the front-end closed the connection");
		return ret;
	}
	memset(&r.hdr, 0, sizeof(r.hdr));
	r.nfds = 0;
	ret = dispatch(b, &m, &r, &reply);
	vhost_user_close_fds(&m);
	if (!reply && (m.hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
	    (b->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
		/* REPLY_ACK: zero for success, the error otherwise; the connection survives. */
		reply_u64(&r, ret < 0 ? 1 : 0);
		reply = true;
		ret = 0;
	}
	if (reply) {
		r.hdr.request = m.hdr.request;
		r.hdr.flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
		ret = vhost_user_send_nowait(b->sock, &r) < 0
			      ? fail(b, -EPIPE, "cannot reply to %s (the front-end reads no replies)",
				     vhost_user_request_name(m.hdr.request))
			      : ret;
		vhost_user_close_fds(&r); /* ours were dup'ed into the message */
	}
	return ret;
}

unsigned vhost_backend_poll_fds(struct vhost_backend *b, struct pollfd *p, unsigned max)
{
	unsigned n = 0;

	if (max == 0)
		return 0;
	p[n++] = (struct pollfd){.fd = b->sock, .events = POLLIN};
	for (unsigned i = 0; i < b->ops->num_queues && n < max; i++)
		if (b->q[i].started)
			p[n++] = (struct pollfd){.fd = b->q[i].kick_fd, .events = POLLIN};
	return n;
}

int vhost_backend_poll_ready(struct vhost_backend *b, const struct pollfd *p, unsigned n)
{
	for (unsigned k = 1; k < n; k++) {
		uint64_t v;
		if (!(p[k].revents & POLLIN))
			continue;
		for (unsigned i = 0; i < b->ops->num_queues; i++)
			if (b->q[i].started && b->q[i].kick_fd == p[k].fd) {
				if (read(p[k].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					return fail(b, -errno, "kick fd of queue %u: %s", i,
						    strerror(errno));
				b->ops->queue_kicked(b->dev, b, i);
			}
	}
	if (n && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return vhost_backend_handle(b);
	return 0;
}

int vhost_backend_event(const struct vhost_watch *w)
{
	struct vhost_backend *b = w->b;
	uint64_t v;

	if (w->q < 0)
		return vhost_backend_handle(b);
	if (!b->q[w->q].started)
		return 0; /* stopped by a message handled in the same wake-up */
	if (read(b->q[w->q].kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return fail(b, -errno, "kick fd of queue %d: %s", w->q, strerror(errno));
	b->ops->queue_kicked(b->dev, b, (unsigned)w->q);
	return 0;
}

bool vhost_backend_has_avail(struct vhost_backend *b, unsigned qi)
{
	struct vhost_queue *q = &b->q[qi];
	const volatile uint16_t *idx;

	if (!q->started)
		return false;
	if (q->next_resubmit < q->nresubmit)
		return true;
	/* The driver's avail index, as virtq_pop_avail reads it (it checks the range again). */
	idx = gmem_ptr(&b->mem, q->vq.avail_gpa + 2, 2);
	return idx && *idx != q->vq.last_avail;
}

void vhost_backend_notify(struct vhost_backend *b, unsigned qi)
{
	uint64_t one = 1;
	struct vhost_queue *q = &b->q[qi];

	if (q->call_fd >= 0 && virtq_should_notify(&q->vq) && write(q->call_fd, &one, 8) < 0)
		snprintf(b->err, sizeof(b->err), "call fd of queue %u: %s", qi, strerror(errno));
}
