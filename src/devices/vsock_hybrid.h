/*
 * virtio-vsock's hybrid back-end (Firecracker's mapping of a guest's
 * AF_VSOCK stream ports to host Unix sockets), free of KVM and of the
 * virtqueues: it takes the packets the guest sends and hands out the ones
 * it is owed, so tests and the fuzzer drive it with plain buffers.
 *
 *  - Guest to host: a REQUEST to CID 2 port P connects to the Unix socket
 *    "SOCKET_P"; RESPONSE when it answers, RST when it does not.
 *  - Host to guest: a program connects to SOCKET and writes "CONNECT P\n";
 *    the guest's port P gets a REQUEST from a host port of ours, and its
 *    RESPONSE makes us answer "OK HOSTPORT\n"; its RST closes the socket.
 *
 * Flow control is virtio's credit (virtio 1.2, 5.10.6.3): a host socket is
 * read only while the guest has room (buf_alloc - (tx_cnt - fwd_cnt)), so a
 * host peer that floods waits in its own socket buffer; what the guest sends
 * beyond the room we advertised resets the connection. Everything a guest
 * writes in a header is checked; nothing it does grows our memory past one
 * buffer per connection and a bounded table.
 */
#ifndef DOMUS_VSOCK_HYBRID_H
#define DOMUS_VSOCK_HYBRID_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#define VSOCK_HOST_CID 2
#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

/* SHUTDOWN's flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

/* struct virtio_vsock_hdr: little-endian, packed, 44 bytes before the payload. */
#define VSOCK_HDR_LEN 44

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

/* Header to and from its wire form. */
void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_LEN], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_LEN]);

#define VSOCK_MAX_CONNS 64
/* What we advertise per connection: the most guest data we hold unwritten. */
#define VSOCK_BUF_ALLOC (256 * 1024)
/* The largest payload we take in one packet (Linux sends at most 64 KiB). */
#define VSOCK_MAX_PKT (64 * 1024)
/* RSTs owed for packets that belong to no connection; more are dropped. */
#define VSOCK_MAX_ORPHAN_RST 64
/* The first port we pick for host-initiated connections (ports above are ours). */
#define VSOCK_HOST_PORT_BASE 0x40000000u
/* "CONNECT 4294967295\n" and a little slack. */
#define VSOCK_CONNECT_LINE_MAX 32

enum vsock_conn_state {
	VSOCK_FREE = 0,
	VSOCK_HOST_LINE,     /* a host program connected; its CONNECT line is awaited */
	VSOCK_HOST_REQUEST,  /* we sent the guest a REQUEST; its RESPONSE is awaited */
	VSOCK_ESTABLISHED,
};

struct vsock_conn {
	enum vsock_conn_state state;
	int fd;
	uint32_t local_port; /* the host side's port (source of what we send the guest) */
	uint32_t peer_port;  /* the guest's port */
	/* Guest to host: bytes taken, bytes written to the host socket, the part still held. */
	uint32_t rx_cnt, fwd_cnt, fwd_cnt_sent;
	uint8_t *held;
	uint32_t nheld;
	/* Host to guest: bytes sent, and the guest's last advertised buffer and count. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	bool readable;        /* the host socket polled readable; read until EAGAIN */
	bool host_eof;        /* the host program will send no more: SHUTDOWN SEND owed or sent */
	bool guest_no_send;   /* the guest sent SHUTDOWN SEND */
	bool guest_no_rcv;    /* the guest sent SHUTDOWN RCV */
	bool host_wr_shut;    /* shutdown(SHUT_WR) done on the host socket */
	/* Control packets owed to the guest. */
	bool owe_request, owe_response, owe_credit, owe_shutdown, owe_rst;
	char line[VSOCK_CONNECT_LINE_MAX];
	unsigned nline;
	uint64_t accepted; /* VSOCK_HOST_LINE: when it was accepted, in accepts (oldest goes first) */
};

struct vsock_counters {
	unsigned long long rst_sent, dropped, bad_header, host_connects, guest_connects;
	unsigned long long host_silent_evicted; /* host programs that never wrote CONNECT, closed for newer ones */
};

struct vsock_hybrid {
	uint64_t guest_cid;
	char socket_path[108];
	int listen_fd; /* -1: no host-initiated connections */
	struct vsock_conn conns[VSOCK_MAX_CONNS];
	struct vsock_hdr orphan_rst[VSOCK_MAX_ORPHAN_RST];
	unsigned norphan;
	unsigned next_rx;     /* round-robin start among connections */
	uint32_t next_port;   /* the next host port to try for host-initiated connections */
	uint64_t accepts;     /* host connections accepted so far */
	int poll_map[VSOCK_MAX_CONNS + 1]; /* poll_fds' entries: a connection's index, -1 the listener */
	struct vsock_counters count;
};

/*
 * Sets up the back-end for a guest with guest_cid; listen_fd is the
 * listening socket at socket_path (taken over), or -1. 0 or -EINVAL.
 */
int vsock_hybrid_init(struct vsock_hybrid *h, uint64_t guest_cid, const char *socket_path,
		      int listen_fd) __attribute__((warn_unused_result));
/* Closes every connection and the listening socket. */
void vsock_hybrid_close(struct vsock_hybrid *h);
/* The driver reset the device: every connection goes, the listening socket stays. */
void vsock_hybrid_reset(struct vsock_hybrid *h);

/*
 * A packet the guest put on its transmit queue: the 44 header bytes and
 * avail bytes of payload after them. Never fails: what is wrong is answered
 * with RST or dropped, and counted.
 */
void vsock_hybrid_from_guest(struct vsock_hybrid *h, const uint8_t *hdr, const void *payload,
			     uint32_t avail);
/* Whether a packet may be owed to the guest (cheap; to_guest may still find none). */
bool vsock_hybrid_rx_pending(const struct vsock_hybrid *h);
/*
 * The next packet for the guest: its header into hdr, its payload (at most
 * room bytes) into buf. Returns the payload's length (0 for control
 * packets), or -EAGAIN when nothing is owed.
 */
int vsock_hybrid_to_guest(struct vsock_hybrid *h, uint8_t hdr[VSOCK_HDR_LEN], void *buf,
			  uint32_t room);

/* The descriptors to watch: fills at most max of p; returns how many. */
unsigned vsock_hybrid_poll_fds(struct vsock_hybrid *h, struct pollfd *p, unsigned max);
/* Acts on what poll reported for the same entries: accepts, writes held data, marks readable. */
void vsock_hybrid_poll_ready(struct vsock_hybrid *h, const struct pollfd *p, unsigned n);

#endif
