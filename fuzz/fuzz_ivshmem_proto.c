/*
 * The client side of the ivshmem server protocol under a hostile server.
 * The input is a sequence of operations: raw bytes sent down the socket
 * (with a descriptor of some kind or none), whole messages handed to the
 * parser, doorbells rung, the connection closed. The client may refuse and
 * close; it must never crash, hang, leak a descriptor or write anywhere
 * but an eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/ivshmem_proto.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A descriptor of the kind the input picks: none, eventfd, memfd (of some size), pipe, socket. */
static int make_fd(struct fuzz_input *in)
{
	unsigned kind = (unsigned)fuzz_take(in, 1);
	int p[2], fd;

	switch (kind % 6) {
	case 1:
		return eventfd(0, EFD_CLOEXEC);
	case 2:
		fd = memfd_create("fuzz", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)((kind >> 3) * 4096)) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	case 3:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		close(p[0]);
		return p[1];
	case 4:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
			return -1;
		close(p[1]);
		return p[0];
	default:
		return -1;
	}
}

static void send_bytes(int sock, const uint8_t *bytes, size_t len, int fd)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *cm;
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.b;
		msg.msg_controllen = sizeof(control.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	(void)sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = {data, size};
	struct ivshmem_client c;
	char err[256];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	ivshmem_client_init(&c, sv[1], (unsigned)fuzz_take(&in, 1) % 8 + 1);
	for (unsigned step = 0; in.left && step < 256; step++) {
		unsigned op = (unsigned)fuzz_take(&in, 1) % 4;
		int fd;

		if (op == 0) {
			/* Bytes down the socket, then everything the client will read of them. */
			size_t len;
			const uint8_t *bytes = fuzz_take_bytes(&in, (size_t)fuzz_take(&in, 1) % 33, &len);
			fd = make_fd(&in);
			if (sv[0] >= 0 && len)
				send_bytes(sv[0], bytes, len, fd);
			if (fd >= 0)
				close(fd);
			for (unsigned i = 0; i < 64 && c.sock >= 0; i++) {
				unsigned have = c.have;
				int ret = ivshmem_client_read(&c, err, sizeof(err));
				if (ret < 0) {
					ivshmem_client_close(&c);
					break;
				}
				if (c.have == have && have == 0)
					break; /* nothing more there */
			}
		} else if (op == 1) {
			/* A whole message, as if read. */
			int64_t value = (int64_t)fuzz_take(&in, 8);
			if (value > 70000 || value < -3)
				value %= 70000;
			fd = make_fd(&in);
			if (ivshmem_client_message(&c, value, fd, err, sizeof(err)) < 0)
				ivshmem_client_close(&c);
		} else if (op == 2) {
			(void)ivshmem_client_ring(&c, (unsigned)fuzz_take(&in, 2), (unsigned)fuzz_take(&in, 2));
		} else if (sv[0] >= 0) {
			/* The server goes away. */
			close(sv[0]);
			sv[0] = -1;
		}
	}
	ivshmem_client_destroy(&c);
	if (sv[0] >= 0)
		close(sv[0]);
	return 0;
}
