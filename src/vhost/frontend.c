#include "vhost/frontend.h"

#include "lib/unix_socket.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WANT_PROTOCOL                                                                        \
	((1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ULL << VHOST_USER_PROTOCOL_F_CONFIG) | \
	 (1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

static struct vhost_user_msg msg(uint32_t request, uint32_t size)
{
	struct vhost_user_msg m;

	memset(&m.hdr, 0, sizeof(m.hdr));
	m.hdr.request = request;
	m.hdr.flags = VHOST_USER_VERSION;
	m.hdr.size = size;
	m.nfds = 0;
	return m;
}

/*
 * Sends m; waits for the reply when the request has one, or for the
 * REPLY_ACK when the back-end speaks it, so errors surface here.
 */
static int call(struct vhost_frontend *f, struct vhost_user_msg *m, struct vhost_user_msg *reply,
		char *err, size_t errlen)
{
	struct vhost_user_msg r;
	bool ack = !reply && (f->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	int ret;

	if (ack)
		m->hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
	ret = vhost_user_send(f->sock, m);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", vhost_user_request_name(m->hdr.request), strerror(-ret));
		return ret;
	}
	if (!reply && !ack)
		return 0;
	{
		/* A back-end that hangs rather than dies must not hold the vCPU that asked. */
		struct pollfd p = {.fd = f->sock, .events = POLLIN};
		if (poll(&p, 1, VHOST_FRONTEND_REPLY_MS) == 0) {
			snprintf(err, errlen, "the back-end did not answer %s within %d s; dropping it",
				 vhost_user_request_name(m->hdr.request), VHOST_FRONTEND_REPLY_MS / 1000);
			/* The hang-up makes the VMM reconnect, as after the back-end's death. */
			shutdown(f->sock, SHUT_RDWR);
			return -ETIMEDOUT;
		}
	}
	ret = vhost_user_recv(f->sock, reply ? reply : &r, err, errlen);
	if (ret < 0)
		return ret;
	if (!reply) {
		vhost_user_close_fds(&r);
		if (r.hdr.request != m->hdr.request || r.payload.u64 != 0) {
			snprintf(err, errlen, "the back-end refused %s",
				 vhost_user_request_name(m->hdr.request));
			return -EIO;
		}
	}
	return 0;
}

int vhost_frontend_connect(struct vhost_frontend *f, const char *path, char *err, size_t errlen)
{
	struct vhost_user_msg m, r;
	int ret;

	memset(f, 0, sizeof(*f));
	f->sock = unix_connect(path, SOCK_STREAM);
	if (f->sock < 0) {
		ret = f->sock;
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(-ret));
		f->sock = -1;
		return ret;
	}
	m = msg(VHOST_USER_GET_FEATURES, 0);
	if ((ret = call(f, &m, &r, err, errlen)) < 0)
		goto fail;
	f->features = r.payload.u64;
	if (!(f->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))) {
		snprintf(err, errlen, "the back-end at %s lacks protocol features", path);
		ret = -ENOTSUP;
		goto fail;
	}
	m = msg(VHOST_USER_GET_PROTOCOL_FEATURES, 0);
	if ((ret = call(f, &m, &r, err, errlen)) < 0)
		goto fail;
	if (!(r.payload.u64 & (1ULL << VHOST_USER_PROTOCOL_F_CONFIG))) {
		snprintf(err, errlen, "the back-end at %s does not give its config space", path);
		ret = -ENOTSUP;
		goto fail;
	}
	m = msg(VHOST_USER_SET_PROTOCOL_FEATURES, 8);
	m.payload.u64 = r.payload.u64 & WANT_PROTOCOL;
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		goto fail;
	f->protocol_features = m.payload.u64;
	f->max_queues = 1;
	if (f->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_MQ)) {
		m = msg(VHOST_USER_GET_QUEUE_NUM, 0);
		if ((ret = call(f, &m, &r, err, errlen)) < 0)
			goto fail;
		f->max_queues = r.payload.u64 ? (unsigned)r.payload.u64 : 1;
	}
	m = msg(VHOST_USER_SET_OWNER, 0);
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		goto fail;
	return 0;
fail:
	vhost_frontend_close(f);
	return ret;
}

void vhost_frontend_close(struct vhost_frontend *f)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
}

int vhost_frontend_get_config(struct vhost_frontend *f, void *buf, uint32_t len, char *err,
			      size_t errlen)
{
	struct vhost_user_msg m = msg(VHOST_USER_GET_CONFIG, 12 + len), r;
	int ret;

	if (len > VHOST_USER_MAX_CONFIG)
		return -EINVAL;
	memset(&m.payload.config, 0, sizeof(m.payload.config));
	m.payload.config.size = len;
	if ((ret = call(f, &m, &r, err, errlen)) < 0)
		return ret;
	if (r.payload.config.size != len) {
		snprintf(err, errlen, "the back-end gave %u bytes of config space, not %u",
			 r.payload.config.size, len);
		return -EIO;
	}
	memcpy(buf, r.payload.config.region, len);
	return 0;
}

int vhost_frontend_set_config(struct vhost_frontend *f, uint32_t off, const void *buf, uint32_t len,
			      char *err, size_t errlen)
{
	struct vhost_user_msg m = msg(VHOST_USER_SET_CONFIG, 12 + len);

	if (len > VHOST_USER_MAX_CONFIG)
		return -EINVAL;
	memset(&m.payload.config, 0, sizeof(m.payload.config));
	m.payload.config.offset = off;
	m.payload.config.size = len;
	memcpy(m.payload.config.region, buf, len);
	return call(f, &m, NULL, err, errlen);
}

int vhost_frontend_setup(struct vhost_frontend *f, uint64_t driver_features,
			 const struct guest_mem *mem, char *err, size_t errlen)
{
	struct vhost_user_msg m = msg(VHOST_USER_SET_FEATURES, 8);
	int ret;

	m.payload.u64 = driver_features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_MEM_TABLE, (uint32_t)(8 + mem->nregions * sizeof(struct vhost_user_region)));
	memset(&m.payload.memory, 0, sizeof(m.payload.memory));
	m.payload.memory.nregions = mem->nregions;
	for (unsigned i = 0; i < mem->nregions; i++) {
		/* Each region's own address is what the rings' addresses are given in. */
		m.payload.memory.regions[i] = (struct vhost_user_region){
			.guest_phys_addr = mem->regions[i].gpa,
			.memory_size = mem->regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host,
			.mmap_offset = mem->regions[i].fd_offset,
		};
		m.fds[i] = mem->fd;
	}
	m.nfds = mem->nregions;
	return call(f, &m, NULL, err, errlen);
}

static uint64_t host_addr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	return (uint64_t)(uintptr_t)gmem_ptr(mem, gpa, len);
}

int vhost_frontend_start_queue(struct vhost_frontend *f, const struct guest_mem *mem, unsigned q,
			       uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
			       uint16_t last_avail, int kick_fd, int call_fd, char *err,
			       size_t errlen)
{
	struct vhost_user_msg m;
	int ret;

	m = msg(VHOST_USER_SET_VRING_NUM, 8);
	m.payload.state = (struct vhost_user_vring_state){q, size};
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_VRING_BASE, 8);
	m.payload.state = (struct vhost_user_vring_state){q, last_avail};
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	m.payload.addr = (struct vhost_user_vring_addr){
		.index = q,
		.desc = host_addr(mem, desc, 16ULL * size),
		.avail = host_addr(mem, avail, 6 + 2ULL * size),
		.used = host_addr(mem, used, 6 + 8ULL * size),
	};
	if (!m.payload.addr.desc || !m.payload.addr.avail || !m.payload.addr.used) {
		snprintf(err, errlen, "queue %u: rings outside guest memory", q);
		return -EFAULT;
	}
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_VRING_CALL, 8);
	m.payload.u64 = q;
	m.fds[0] = call_fd;
	m.nfds = 1;
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = q;
	m.fds[0] = kick_fd;
	m.nfds = 1;
	if ((ret = call(f, &m, NULL, err, errlen)) < 0)
		return ret;
	m = msg(VHOST_USER_SET_VRING_ENABLE, 8);
	m.payload.state = (struct vhost_user_vring_state){q, 1};
	return call(f, &m, NULL, err, errlen);
}

int vhost_frontend_stop_queue(struct vhost_frontend *f, unsigned q)
{
	struct vhost_user_msg m = msg(VHOST_USER_GET_VRING_BASE, 8), r;
	char err[128];
	int ret;

	m.payload.state = (struct vhost_user_vring_state){q, 0};
	ret = call(f, &m, &r, err, sizeof(err));
	return ret < 0 ? ret : (int)(uint16_t)r.payload.state.num;
}

int vhost_frontend_inflight(struct vhost_frontend *f, uint16_t nqueues, uint16_t queue_size, int *fd,
			    uint64_t *size,
			    char *err, size_t errlen)
{
	struct vhost_user_msg m, r;
	int ret;

	if (!(f->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)))
		return 0;
	if (*fd < 0) {
		/* The back-end sizes the area; we keep it for its successors. */
		m = msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
		m.payload.inflight = (struct vhost_user_inflight){0, 0, nqueues, queue_size, 0};
		if ((ret = call(f, &m, &r, err, errlen)) < 0)
			return ret;
		if (r.nfds != 1) {
			vhost_user_close_fds(&r);
			snprintf(err, errlen, "GET_INFLIGHT_FD: no descriptor in the reply");
			return -EPROTO;
		}
		*fd = r.fds[0];
		*size = r.payload.inflight.mmap_size;
	}
	m = msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	m.payload.inflight = (struct vhost_user_inflight){*size, 0, nqueues, queue_size, 0};
	m.fds[0] = *fd;
	m.nfds = 1;
	return call(f, &m, NULL, err, errlen);
}
