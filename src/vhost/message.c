#include "vhost/vhost_user.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const names[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
	[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
	[VHOST_USER_SET_OWNER] = "SET_OWNER",
	[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
	[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
	[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
	[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
	[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
	[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
	[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
	[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
	[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
	[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VHOST_USER_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
	[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
	[VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
	[VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VHOST_USER_SET_STATUS] = "SET_STATUS",
	[VHOST_USER_GET_STATUS] = "GET_STATUS",
};

const char *vhost_user_request_name(uint32_t request)
{
	return request < VHOST_USER_REQUEST_MAX && names[request] ? names[request] : "unknown";
}

/* What each request carries: payload size (SIZE_VAR: checked below) and descriptors. */
#define SIZE_VAR 0xffffffffu
static const struct {
	uint32_t size;
	unsigned min_fds, max_fds;
} shape[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = {0, 0, 0},
	[VHOST_USER_SET_FEATURES] = {8, 0, 0},
	[VHOST_USER_SET_OWNER] = {0, 0, 0},
	[VHOST_USER_RESET_OWNER] = {0, 0, 0},
	[VHOST_USER_SET_MEM_TABLE] = {SIZE_VAR, 0, VHOST_USER_MAX_REGIONS},
	[VHOST_USER_SET_LOG_BASE] = {SIZE_VAR, 0, 1},
	[VHOST_USER_SET_LOG_FD] = {0, 1, 1},
	[VHOST_USER_SET_VRING_NUM] = {8, 0, 0},
	[VHOST_USER_SET_VRING_ADDR] = {sizeof(struct vhost_user_vring_addr), 0, 0},
	[VHOST_USER_SET_VRING_BASE] = {8, 0, 0},
	[VHOST_USER_GET_VRING_BASE] = {8, 0, 0},
	[VHOST_USER_SET_VRING_KICK] = {8, 0, 1},
	[VHOST_USER_SET_VRING_CALL] = {8, 0, 1},
	[VHOST_USER_SET_VRING_ERR] = {8, 0, 1},
	[VHOST_USER_GET_PROTOCOL_FEATURES] = {0, 0, 0},
	[VHOST_USER_SET_PROTOCOL_FEATURES] = {8, 0, 0},
	[VHOST_USER_GET_QUEUE_NUM] = {0, 0, 0},
	[VHOST_USER_SET_VRING_ENABLE] = {8, 0, 0},
	[VHOST_USER_SET_BACKEND_REQ_FD] = {0, 1, 1},
	[VHOST_USER_GET_CONFIG] = {SIZE_VAR, 0, 0},
	[VHOST_USER_SET_CONFIG] = {SIZE_VAR, 0, 0},
	[VHOST_USER_GET_INFLIGHT_FD] = {sizeof(struct vhost_user_inflight), 0, 0},
	[VHOST_USER_SET_INFLIGHT_FD] = {sizeof(struct vhost_user_inflight), 1, 1},
	[VHOST_USER_RESET_DEVICE] = {0, 0, 0},
	[VHOST_USER_GET_MAX_MEM_SLOTS] = {0, 0, 0},
	[VHOST_USER_SET_STATUS] = {8, 0, 0},
	[VHOST_USER_GET_STATUS] = {0, 0, 0},
};

int vhost_user_check(const struct vhost_user_msg *m, char *err, size_t errlen)
{
	uint32_t r = m->hdr.request, size = m->hdr.size;
	const char *name = vhost_user_request_name(r);

	if (r >= VHOST_USER_REQUEST_MAX || !names[r]) {
		snprintf(err, errlen, "unknown request %u", r);
		return -EPROTO;
	}
	if ((m->hdr.flags & VHOST_USER_FLAG_VERSION_MASK) != VHOST_USER_VERSION) {
		snprintf(err, errlen, "%s: protocol version %u, expected %u", name,
			 m->hdr.flags & VHOST_USER_FLAG_VERSION_MASK, VHOST_USER_VERSION);
		return -EPROTO;
	}
	if (size > sizeof(m->payload)) {
		snprintf(err, errlen, "%s: payload of %u bytes", name, size);
		return -EPROTO;
	}
	if (m->hdr.flags & VHOST_USER_FLAG_REPLY) {
		/* A reply: a u64 (a value, or a REPLY_ACK), or the shape of what was asked. */
		uint32_t want = 8;
		unsigned fds = 0;
		if (r == VHOST_USER_GET_CONFIG)
			want = size >= 12 && m->payload.config.size <= VHOST_USER_MAX_CONFIG
				       ? 12 + m->payload.config.size
				       : 12;
		else if (r == VHOST_USER_GET_INFLIGHT_FD)
			want = sizeof(struct vhost_user_inflight), fds = 1;
		if (size != want || m->nfds != fds) {
			snprintf(err, errlen, "reply to %s: %u bytes and %u descriptors", name, size, m->nfds);
			return -EPROTO;
		}
		return 0;
	}
	if (shape[r].size != SIZE_VAR && size != shape[r].size) {
		snprintf(err, errlen, "%s: payload of %u bytes, expected %u", name, size, shape[r].size);
		return -EPROTO;
	}
	if (m->nfds < shape[r].min_fds || m->nfds > shape[r].max_fds) {
		snprintf(err, errlen, "%s: %u file descriptors, expected %u to %u", name, m->nfds,
			 shape[r].min_fds, shape[r].max_fds);
		return -EPROTO;
	}
	switch (r) {
	case VHOST_USER_SET_MEM_TABLE: {
		const struct vhost_user_memory *mem = &m->payload.memory;
		if (size < 8 || mem->nregions == 0 || mem->nregions > VHOST_USER_MAX_REGIONS ||
		    size != 8 + mem->nregions * sizeof(struct vhost_user_region) ||
		    m->nfds != mem->nregions) {
			snprintf(err, errlen, "SET_MEM_TABLE: %u regions in %u bytes with %u descriptors",
				 size >= 8 ? mem->nregions : 0, size, m->nfds);
			return -EPROTO;
		}
		for (uint32_t i = 0; i < mem->nregions; i++) {
			const struct vhost_user_region *reg = &mem->regions[i];
			if (reg->memory_size == 0 ||
			    reg->guest_phys_addr + reg->memory_size < reg->guest_phys_addr ||
			    reg->userspace_addr + reg->memory_size < reg->userspace_addr ||
			    reg->mmap_offset + reg->memory_size < reg->mmap_offset) {
				snprintf(err, errlen, "SET_MEM_TABLE: region %u wraps around", i);
				return -EPROTO;
			}
		}
		break;
	}
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		if (size < 12 || m->payload.config.size > VHOST_USER_MAX_CONFIG ||
		    size != 12 + m->payload.config.size) {
			snprintf(err, errlen, "%s: config of %u bytes in a payload of %u", name,
				 size >= 12 ? m->payload.config.size : 0, size);
			return -EPROTO;
		}
		break;
	case VHOST_USER_SET_LOG_BASE:
		if (size != 8 && size != 16) {
			snprintf(err, errlen, "SET_LOG_BASE: payload of %u bytes", size);
			return -EPROTO;
		}
		break;
	default:
		break;
	}
	return 0;
}

void vhost_user_close_fds(struct vhost_user_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

static int recv_message(int sock, struct vhost_user_msg *m, int flags, char *err, size_t errlen)
{
	char control[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
	struct iovec iov = {.iov_base = &m->hdr, .iov_len = sizeof(m->hdr)};
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *c;
	ssize_t n;
	size_t got = 0;

	memset(m, 0, sizeof(*m));
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -EPIPE;
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN; /* nothing yet */
	if (n < 0) {
		snprintf(err, errlen, "recvmsg: %s", strerror(errno));
		return -errno;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (unsigned i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (m->nfds < VHOST_USER_MAX_FDS)
					m->fds[m->nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		vhost_user_close_fds(m);
		snprintf(err, errlen, "too many file descriptors");
		return -EPROTO;
	}
	if ((size_t)n != sizeof(m->hdr)) {
		vhost_user_close_fds(m);
		snprintf(err, errlen, "short header (%zd bytes)", n);
		return -EPROTO;
	}
	if (m->hdr.size > sizeof(m->payload)) {
		vhost_user_close_fds(m);
		snprintf(err, errlen, "%s: payload of %u bytes", vhost_user_request_name(m->hdr.request),
			 m->hdr.size);
		return -EPROTO;
	}
	while (got < m->hdr.size) {
		n = recv(sock, m->payload.bytes + got, m->hdr.size - got, flags);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			vhost_user_close_fds(m);
			snprintf(err, errlen, n < 0 && errno == EAGAIN ? "half a message, the rest not sent"
								       : "the payload ended early");
			return n == 0 ? -EPIPE : errno == EAGAIN ? -EPROTO : -errno;
		}
		got += (size_t)n;
	}
	if (vhost_user_check(m, err, errlen) < 0) {
		vhost_user_close_fds(m);
		return -EPROTO;
	}
	return 0;
}

int vhost_user_recv(int sock, struct vhost_user_msg *m, char *err, size_t errlen)
{
	return recv_message(sock, m, 0, err, errlen);
}

int vhost_user_recv_nowait(int sock, struct vhost_user_msg *m, char *err, size_t errlen)
{
	return recv_message(sock, m, MSG_DONTWAIT, err, errlen);
}

static int send_message(int sock, const struct vhost_user_msg *m, int flags)
{
	char control[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
	struct iovec iov[2] = {
		{.iov_base = (void *)&m->hdr, .iov_len = sizeof(m->hdr)},
		{.iov_base = (void *)&m->payload, .iov_len = m->hdr.size},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->hdr.size ? 2 : 1};
	ssize_t n;

	if (m->hdr.size > sizeof(m->payload) || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	if (m->nfds) {
		struct cmsghdr *c;
		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
		memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(m->hdr) + m->hdr.size ? 0 : -EIO;
}

int vhost_user_send(int sock, const struct vhost_user_msg *m)
{
	return send_message(sock, m, 0);
}

int vhost_user_send_nowait(int sock, const struct vhost_user_msg *m)
{
	return send_message(sock, m, MSG_DONTWAIT);
}
