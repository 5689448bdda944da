/*
 * virtio-vsock's hybrid back-end under a hostile guest and host programs:
 * the input is a sequence of steps — packets from the guest (any header,
 * any payload length, mostly aimed at this guest's real connections), the
 * guest taking packets into buffers of any size, and host programs that
 * connect, send CONNECT lines or garbage, write, read, half-close and go.
 * The back-end may answer with anything the protocol allows; it must not
 * crash, leak, or break its own bounds (table size, held bytes, credit).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/vsock_hybrid.h"
#include "fuzz_input.h"
#include "lib/unix_socket.h"

#define GUEST_CID 3
#define NSERVICES 3 /* host services at SOCKET_1 .. SOCKET_3 */
#define NHOST 16     /* host-side sockets the input plays with */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char sock_path[64];
static int services[NSERVICES + 1];

/* One directory, its listeners made once: the paths the guest's REQUESTs reach. */
static void setup_once(void)
{
	static char dir[] = "/tmp/fuzz-vsock-XXXXXX";
	char path[96];

	if (sock_path[0])
		return;
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/v", dir);
	for (unsigned p = 1; p <= NSERVICES; p++) {
		snprintf(path, sizeof(path), "%s_%u", sock_path, p);
		services[p] = unix_listen(path, SOCK_STREAM | SOCK_NONBLOCK, 64);
		if (services[p] < 0)
			abort();
	}
}

static void check_bounds(const struct vsock_hybrid *h)
{
	if (h->norphan > VSOCK_MAX_ORPHAN_RST)
		abort();
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = &h->conns[i];

		if (c->nheld > VSOCK_BUF_ALLOC || c->rx_cnt - c->fwd_cnt > VSOCK_BUF_ALLOC)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vsock_hybrid h;
	static uint8_t payload[VSOCK_MAX_PKT], buf[VSOCK_MAX_PKT];
	struct fuzz_input in = {data, size};
	int host[NHOST], lfd;
	unsigned steps = 0;

	setup_once();
	for (unsigned i = 0; i < NHOST; i++)
		host[i] = -1;
	lfd = unix_listen(sock_path, SOCK_STREAM | SOCK_NONBLOCK, 64);
	if (lfd < 0 || vsock_hybrid_init(&h, GUEST_CID, sock_path, lfd) < 0)
		abort();
	while (in.left && steps++ < 256) {
		unsigned op = (unsigned)fuzz_take(&in, 1) % 10, k = (unsigned)fuzz_take(&in, 1) % NHOST;

		switch (op) {
		case 0: {
			/* A guest packet: aimed at our ports and connections unless the input says not. */
			uint8_t raw[VSOCK_HDR_LEN];
			size_t len, plen = (size_t)fuzz_take(&in, 2);
			const uint8_t *hb = fuzz_take_bytes(&in, VSOCK_HDR_LEN, &len);
			struct vsock_hdr hd;

			memset(raw, 0, sizeof(raw));
			memcpy(raw, hb, len);
			vsock_hdr_decode(raw, &hd);
			if (!(hd.flags & 0x80000000u)) {
				hd.src_cid = GUEST_CID;
				hd.dst_cid = VSOCK_HOST_CID;
				hd.type = VSOCK_TYPE_STREAM;
				hd.op = (uint16_t)(hd.op % 8);
				hd.dst_port = hd.dst_port % 2 ? hd.dst_port % (NSERVICES + 1)
							      : VSOCK_HOST_PORT_BASE + hd.dst_port % 4;
				hd.src_port %= 4;
				hd.flags &= 3;
			}
			vsock_hdr_encode(&hd, raw);
			if (plen > sizeof(payload))
				plen = sizeof(payload);
			memset(payload, 'p', plen);
			vsock_hybrid_from_guest(&h, raw, payload, (uint32_t)plen);
			break;
		}
		case 1: {
			uint8_t raw[VSOCK_HDR_LEN];
			uint32_t room = (uint32_t)fuzz_take(&in, 2) % (VSOCK_MAX_PKT + 1);
			int n = vsock_hybrid_to_guest(&h, raw, buf, room);

			if (n > (int)room)
				abort();
			break;
		}
		case 2: /* a host service accepts a connection the guest asked for */
			if (host[k] < 0)
				host[k] = accept4(services[1 + k % NSERVICES], NULL, NULL, SOCK_NONBLOCK);
			break;
		case 3: { /* a host program writes (a flood, or its CONNECT line) */
			size_t len;
			const uint8_t *b = fuzz_take_bytes(&in, (size_t)fuzz_take(&in, 1), &len);

			if (host[k] >= 0 && send(host[k], b, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* full, or the other end went: either is the program's business */
			}
			break;
		}
		case 4:
			if (host[k] >= 0 && recv(host[k], buf, sizeof(buf), MSG_DONTWAIT) < 0) {
				/* nothing there yet */
			}
			break;
		case 5:
			if (host[k] >= 0)
				shutdown(host[k], SHUT_WR);
			break;
		case 6:
			if (host[k] >= 0)
				close(host[k]);
			host[k] = -1;
			break;
		case 7: {
			struct pollfd p[VSOCK_MAX_CONNS + 1];
			unsigned n = vsock_hybrid_poll_fds(&h, p, VSOCK_MAX_CONNS + 1);

			if (poll(p, n, 0) > 0)
				vsock_hybrid_poll_ready(&h, p, n);
			break;
		}
		case 8: /* a host program connects to the hybrid socket */
			if (host[k] < 0) {
				host[k] = unix_connect(sock_path, SOCK_STREAM | SOCK_NONBLOCK);
				if (host[k] >= 0 && fuzz_take(&in, 1) & 1) {
					char line[32];
					int n = snprintf(line, sizeof(line), "CONNECT %u\n",
							 (unsigned)fuzz_take(&in, 1) % 4);

					if (send(host[k], line, (size_t)n, MSG_NOSIGNAL) < 0) {
						/* the table was full: closed on us */
					}
				}
			}
			break;
		case 9:
			vsock_hybrid_reset(&h);
			break;
		}
		check_bounds(&h);
	}
	vsock_hybrid_close(&h);
	for (unsigned i = 0; i < NHOST; i++)
		if (host[i] >= 0)
			close(host[i]);
	/* Connections the guest asked for that no one accepted go with the input. */
	for (unsigned p = 1; p <= NSERVICES; p++) {
		int fd;

		while ((fd = accept4(services[p], NULL, NULL, SOCK_NONBLOCK)) >= 0)
			close(fd);
	}
	return 0;
}
