/*
 * vhost-user messages from a hostile front-end: the input is the byte
 * stream the back-end reads from its socket. Every message is checked and
 * handled (or the connection dropped) without crashing or leaking.
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void kicked(void *dev, struct vhost_backend *b, unsigned q)
{
	struct virtq_chain c;

	while (virtq_pop_avail(&b->q[q].vq, &c) > 0)
		virtq_push_used(&b->q[q].vq, c.head, 0);
	vhost_backend_notify(b, q);
}

static int config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	if (off > 16 || len > 16 - off)
		return -1;
	memset(buf, 0x42, len);
	return 0;
}

static const struct vhost_device_ops ops = {
	.features = (1ULL << 32) | (1ULL << 29) | (1ULL << 28),
	.num_queues = 2,
	.queue_size = 256,
	.get_config = config,
	.queue_kicked = kicked,
};

/*
 * The back-end answers on the socket: left unread, the replies would fill
 * its buffer and the next reply would block the back-end in sendmsg for
 * good, hanging the fuzzer.
 */
static void discard_replies(int sock)
{
	char buf[4096];

	while (recv(sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_backend b;
	int sv[2];

	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	{
		int buf = 1 << 20;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	}
	if (write(sv[0], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[0], SHUT_WR);
	vhost_backend_init(&b, sv[1], &ops, NULL);
	for (int i = 0; i < 1000 && vhost_backend_handle(&b) == 0; i++)
		discard_replies(sv[0]);
	vhost_backend_close(&b);
	close(sv[0]);
	return 0;
}
