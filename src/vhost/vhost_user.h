/*
 * The vhost-user protocol as QEMU's docs/interop/vhost-user.rst describes
 * it: messages on a Unix socket, a 12-byte header and a payload whose size
 * depends on the request, file descriptors beside some of them.
 */
#ifndef DOMUS_VHOST_USER_H
#define DOMUS_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_REQUEST_MAX = 41,
};

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_STATUS 16
/* A virtio feature bit that says the protocol features exist. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VHOST_USER_VERSION 0x1
#define VHOST_USER_FLAG_VERSION_MASK 0x3
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_MAX_FDS 8
#define VHOST_USER_MAX_CONFIG 256
#define VHOST_USER_VRING_INDEX_MASK 0xff
#define VHOST_USER_VRING_NOFD (1u << 8)

struct vhost_user_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;  /* front-end virtual addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;
} __attribute__((packed));

struct vhost_user_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));

struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
} __attribute__((packed));

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHOST_USER_MAX_CONFIG];
} __attribute__((packed));

/* Not packed: QEMU sends it with its natural padding, 24 bytes. */
struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;
};
_Static_assert(sizeof(struct vhost_user_inflight) == 24, "vhost-user inflight payload");

union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_memory memory;
	struct vhost_user_config config;
	struct vhost_user_inflight inflight;
	uint8_t bytes[sizeof(struct vhost_user_memory)];
};

struct vhost_user_msg {
	struct vhost_user_header hdr;
	union vhost_user_payload payload;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

/*
 * Checks a received message: known request, version, a payload of the
 * size its request has, the file descriptors it may carry. Returns 0 or
 * -EPROTO with what is wrong in err.
 */
int vhost_user_check(const struct vhost_user_msg *m, char *err, size_t errlen);
/* Receives one message with its descriptors; 0, -EPIPE at end of stream, or -errno (-EAGAIN: none there, nowait). */
int vhost_user_recv(int sock, struct vhost_user_msg *m, char *err, size_t errlen);
/* Sends one message (header, m->hdr.size bytes of payload, m->nfds descriptors). */
int vhost_user_send(int sock, const struct vhost_user_msg *m);
/*
 * The same, never waiting: a back-end that serves many front-ends in one
 * thread reads a message only when its start is there, takes only one
 * that came whole, and drops a front-end that leaves no room for its
 * reply (-EAGAIN) at once, so a front-end that floods or stalls costs
 * itself its connection, never the others their time.
 */
int vhost_user_recv_nowait(int sock, struct vhost_user_msg *m, char *err, size_t errlen);
int vhost_user_send_nowait(int sock, const struct vhost_user_msg *m);
/* Closes the descriptors a message carried. */
void vhost_user_close_fds(struct vhost_user_msg *m);
const char *vhost_user_request_name(uint32_t request);

#endif
