/*
 * domus-net: the Virtual Firewall Router's driver domain. One process for
 * the host serves every domain's virtio-net over vhost-user and the
 * uplink's TAP, with the datapath of net/vfr.h between them.
 *
 *   domus-net --control-fd N [--user NAME] [--no-sandbox] [--threads N] [--poll-us N]
 *             [-v] [-q]
 *
 * Everything comes over the control socket (SOCK_SEQPACKET, net/netctl.h,
 * docs/net.md): the state memfd, the uplink's TAP, networks, ports with
 * their listening sockets, rules, flow outputs and captures. It exits when
 * that socket hangs up, and with its parent (PR_SET_PDEATHSIG).
 *
 * Threads: the main thread reads the supervisor's messages and keeps the
 * 1 s tick (vfr_tick, flow export); --threads N workers (default 1) move
 * the frames. Each port is served by one worker, the one with fewest ports
 * when it came, from that worker's epoll set: its listening socket or its
 * front-end's connection and kicks, each descriptor added when it comes
 * and removed when it goes, never per wake-up; worker 0 also reads the
 * TAP. Locks, outermost first:
 *   world: a writer-first rwlock. A worker holds it shared for a round,
 *     the tick likewise; the main thread holds it alone while it carries
 *     out a message (ports, rules, captures, stats), so no round sees a
 *     port come or go, and counters are read whole.
 *   vfr_lock: the VFR's tables (conntrack, NAT, neighbours, its log, flow
 *     records) are one router's. A worker holds it while a batch (a port's
 *     transmit queues, the TAP) goes through vfr_input, taken once for
 *     the batch; with more than one worker what the VFR sends is queued
 *     (struct outbox) and put in the receivers' rings after, outside it,
 *     so that the copies into the receivers' memory of several workers
 *     run at once (one worker delivers at once, under it).
 *   a port's rx_lock (net/netport.h): whoever fills its receive queues.
 * A rule change rechecks the flows a few at a time between worker 0's
 * rounds (vfr_recheck_step), never while every port waits. Fairness: each
 * round takes at most
 * TX_BUDGET frames from each port's transmit queue (and from the TAP), so
 * a domain that floods gets its share and no more; a port with frames left
 * is served again next round without waiting for a kick. --poll-us N:
 * after a round that took frames, the transmit rings are watched for N
 * microseconds more before the loop sleeps, so the next frame of a
 * request-answer exchange is taken without a kick's round through epoll.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/unix_socket.h"
#include "net/netctl.h"
#include "net/netport.h"
#include "net/pcap.h"
#include "net/sandbox.h"
#include "net/vfr.h"

#define TX_BUDGET 64   /* frames per port (and from the TAP) per round */
#define FLOW_BATCH 64  /* flow records kept for one IPFIX export */
#define IPFIX_MTU 1500 /* path MTU assumed towards the collector */
#define EVENTS_MAX 64 /* epoll events taken per wake-up */
#define WORKERS_MAX 16
/*
 * What the VFR sends for one batch (TX_BUDGET frames from each of a port's
 * transmit queues, or from the TAP), queued to be delivered outside
 * vfr_lock: room for an answer besides each frame, and for each frame at
 * MTU size (a batch of 64 KiB segments is delivered in parts).
 */
#define OUTBOX_FRAMES (2 * TX_BUDGET * NETPORT_PAIRS_MAX)
#define OUTBOX_BYTES (TX_BUDGET * NETPORT_PAIRS_MAX * VFR_FRAME_MAX)

/* What an epoll event is of (struct watch's kind). */
enum { W_CONTROL = 1, W_TIMER, W_TAP, W_LISTEN, W_VHOST, W_WAKE };

static struct watch tap_watch = {W_TAP, NULL};

static int watch_fd(int epfd, int fd, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

struct net_worker {
	unsigned index;
	pthread_t thread;
	int epfd;
	int wake_fd; /* an eventfd: the main thread's word that there is work, or an end */
	struct watch wake_watch;
	uint32_t port_ids[VFR_MAX_PORTS]; /* the ports it serves (changed under world, alone) */
	unsigned nports;
	struct outbox *outbox; /* its thread's, made before it starts */
};

static struct net_worker workers[WORKERS_MAX];
static unsigned nworkers = 1;
static struct net_worker *port_worker[CT_MAX_DOMAINS];
static pthread_rwlock_t world;
/* Adaptive: a worker spins a little before it sleeps, since the holder lets go within a batch. */
static pthread_mutex_t vfr_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
/* Bumped (under world, alone) when a port goes: events read before may point to it. */
static uint64_t world_gen;
static atomic_bool rechecking; /* a rule change's sweep is under way: worker 0 steps it */
static atomic_int stopping;

static struct vfr *vfr;
static void *state_map;
static size_t state_len;
static struct netport *ports[CT_MAX_DOMAINS]; /* by domain id */
static uint32_t port_ids[VFR_MAX_PORTS];
static unsigned nports;
static char port_names[CT_MAX_DOMAINS][VFR_NAME_MAX];
static struct {
	uint32_t id;
	char name[VFR_NAME_MAX];
} nets[VFR_NETWORKS_MAX];
static unsigned nnets;
static int tap_fd = -1; /* each frame after a virtio-net header (tap_open_uplink) */
static atomic_uint_fast64_t tap_dropped; /* frames the TAP would not take */
/* Frames with work left to the other side (written by every worker, and by worker 0). */
static atomic_uint_fast64_t tap_tx_offloaded;
static uint64_t tap_rx_offloaded;
/* Captures are written by every worker, in turn. */
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint capturing; /* how many capture_fd are open */
static int capture_fd[CT_MAX_DOMAINS];
static int flow_json_fd = -1, flow_udp_fd = -1;
static struct ipfix_exporter exporter;
static struct ipfix_flow flow_batch[FLOW_BATCH];
static char flow_names[FLOW_BATCH][2][VFR_NAME_MAX];
static unsigned nflows;
static _Thread_local uint64_t now_ms, wall_ms, wall_us;
static bool quiet;
static unsigned poll_us;

static void clock_update(void)
{
	struct timespec m, w;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &w);
	now_ms = (uint64_t)m.tv_sec * 1000 + (uint64_t)m.tv_nsec / 1000000;
	wall_us = (uint64_t)w.tv_sec * 1000000 + (uint64_t)w.tv_nsec / 1000;
	wall_ms = wall_us / 1000;
}

/* ---- frames as the wire carries them ---- */

/*
 * Hands frame[0, len) to out as the frames on a wire: off's segment cut
 * at its size, or its partial checksum completed (in a copy: the frame
 * is the VFR's or the driver's). A frame whose offload is impossible
 * (the VFR checked the ones it forwards) goes nowhere.
 */
static void wire_frames(const uint8_t *frame, size_t len, const struct virtio_net_hdr *off,
			offload_out_fn out, void *ctx)
{
	static _Thread_local uint8_t buf[VFR_GSO_FRAME_MAX];

	if (!offload_wanted(off)) {
		out(ctx, frame, len);
	} else if (off->gso_type == VIRTIO_NET_HDR_GSO_TCPV4) {
		offload_tcp4_segment(frame, len, off->gso_size, buf, PKT_ETH_HLEN + VFR_MTU, out, ctx);
	} else if (off->gso_type == VIRTIO_NET_HDR_GSO_NONE && len <= sizeof(buf)) {
		memcpy(buf, frame, len);
		if (offload_csum_complete(buf, len, off->csum_start, off->csum_offset) == 0)
			out(ctx, buf, len);
	}
}

/* ---- captures ---- */

static void capture_frame(void *ctx, const uint8_t *frame, size_t len)
{
	uint32_t port = *(const uint32_t *)ctx;
	int ret;

	if (capture_fd[port] < 0)
		return; /* a segment before failed */
	ret = pcap_write_frame(capture_fd[port], wall_us, frame, len);
	if (ret < 0) {
		/* A record cut short leaves the file unreadable past it: the capture ends there. */
		log_errno(ret, "capture of port %u stops", port);
		close(capture_fd[port]);
		capture_fd[port] = -1;
		atomic_fetch_sub(&capturing, 1);
	}
}

/*
 * A frame as the wire carries it: a segment its sender left to cut is
 * recorded as the frames it stands for, checksums complete, as a driver
 * without TSO receives them (the same cut: the same bytes).
 */
static void capture(uint32_t port, const uint8_t *frame, size_t len,
		    const struct virtio_net_hdr *off)
{
	if (port >= CT_MAX_DOMAINS || !atomic_load_explicit(&capturing, memory_order_relaxed))
		return;
	pthread_mutex_lock(&capture_lock);
	if (capture_fd[port] >= 0)
		wire_frames(frame, len, off, capture_frame, &port);
	pthread_mutex_unlock(&capture_lock);
}

/* ---- the datapath's callbacks ---- */

/*
 * The TAP takes what the VFR kept (a partial checksum, a TCP/IPv4 segment)
 * as it is: the host's stack, or the NIC behind it, does the work.
 */
static void tap_write(const uint8_t *frame, size_t len, const struct virtio_net_hdr *off)
{
	struct virtio_net_hdr hdr = {0};
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)frame, len}};

	if (offload_wanted(off)) {
		hdr = *off;
		hdr.num_buffers = 0;
		atomic_fetch_add_explicit(&tap_tx_offloaded, 1, memory_order_relaxed);
	}
	if (tap_fd < 0 || writev(tap_fd, iov, 2) != (ssize_t)(sizeof(hdr) + len))
		atomic_fetch_add_explicit(&tap_dropped, 1, memory_order_relaxed);
}

/*
 * The ports this thread put frames in since it last signalled them: each
 * is signalled once a round (touched_flush), not once a frame.
 */
static _Thread_local uint32_t touched[VFR_MAX_PORTS];
static _Thread_local unsigned ntouched;
static _Thread_local uint8_t touched_mark[CT_MAX_DOMAINS];

/*
 * The port whose rx_lock this thread holds across consecutive frames to it
 * (deliver), so that a batch to one port takes the lock once; NULL: none.
 */
static _Thread_local struct netport *rx_held;

static void rx_release(void)
{
	if (rx_held)
		pthread_mutex_unlock(&rx_held->rx_lock);
	rx_held = NULL;
}

static void deliver(uint32_t port, const uint8_t *frame, size_t len,
		    const struct virtio_net_hdr *off)
{
	struct netport *p;

	capture(port, frame, len, off);
	if (port == VFR_UPLINK) {
		tap_write(frame, len, off);
		return;
	}
	if (port >= CT_MAX_DOMAINS || !(p = ports[port]))
		return;
	if (rx_held != p) {
		rx_release();
		pthread_mutex_lock(&p->rx_lock);
		rx_held = p;
	}
	netport_rx_locked(p, frame, len, off); /* a drop is counted by the port */
	if (!touched_mark[port] && ntouched < VFR_MAX_PORTS) {
		touched_mark[port] = 1;
		touched[ntouched++] = port;
	}
}

/* Under world (shared or alone). */
static void touched_flush(void)
{
	for (unsigned i = 0; i < ntouched; i++) {
		if (ports[touched[i]])
			netport_flush(ports[touched[i]]);
		touched_mark[touched[i]] = 0;
	}
	ntouched = 0;
}

/* The frames the VFR sent while this thread held vfr_lock, in order. */
struct outbox {
	unsigned n;
	size_t used;
	struct {
		uint32_t port;
		bool has_off;
		struct virtio_net_hdr off;
		size_t at, len;
	} f[OUTBOX_FRAMES];
	uint8_t bytes[OUTBOX_BYTES];
};

/* Each thread's, from the heap (too large for thread-local storage): outbox_new. */
static _Thread_local struct outbox *outbox;

static struct outbox *outbox_new(void) { return calloc(1, sizeof(struct outbox)); }

static _Thread_local bool vfr_held;

/* A batch's frames go through the VFR under one taking of vfr_lock, not one each. */
static void vfr_enter(void)
{
	if (!vfr_held) {
		pthread_mutex_lock(&vfr_lock);
		vfr_held = true;
	}
}

static void outbox_deliver(void);

/* The batch is over: the VFR goes, then what it sent is delivered (under world). */
static void vfr_leave(void)
{
	if (vfr_held) {
		pthread_mutex_unlock(&vfr_lock);
		vfr_held = false;
	}
	outbox_deliver();
}

/* Delivers what is queued: outside vfr_lock, under world. */
static void outbox_deliver(void)
{
	for (unsigned i = 0; i < outbox->n; i++)
		deliver(outbox->f[i].port, outbox->bytes + outbox->f[i].at, outbox->f[i].len,
			outbox->f[i].has_off ? &outbox->f[i].off : NULL);
	rx_release();
	outbox->n = 0;
	outbox->used = 0;
}

static void on_emit(void *ctx, uint32_t port, const uint8_t *frame, size_t len,
		    const struct virtio_net_hdr *off)
{
	/*
	 * One worker: nothing else would use the lock meanwhile, so the frame
	 * goes now, without the outbox's copy (the receiving port's lock is
	 * kept for the next frames to it, let go with the batch).
	 */
	if (nworkers == 1) {
		deliver(port, frame, len, off);
		return;
	}
	if (outbox->n == OUTBOX_FRAMES || len > sizeof(outbox->bytes) - outbox->used) {
		/* No room (segments of 64 KiB): what is queued, then this, in order, now. */
		outbox_deliver();
		deliver(port, frame, len, off);
		rx_release();
		return;
	}
	outbox->f[outbox->n].port = port;
	outbox->f[outbox->n].has_off = off != NULL;
	if (off)
		outbox->f[outbox->n].off = *off;
	outbox->f[outbox->n].at = outbox->used;
	outbox->f[outbox->n].len = len;
	memcpy(outbox->bytes + outbox->used, frame, len);
	outbox->used += len;
	outbox->n++;
}

static void on_log(void *ctx, const char *line) { log_info("%s", line); }

static void flows_flush(void)
{
	if (flow_udp_fd >= 0 && nflows &&
	    ipfix_export(&exporter, flow_udp_fd, wall_ms, flow_batch, nflows) < 0)
		log_warn("IPFIX export");
	nflows = 0;
}

static uint64_t flows_logged; /* records written as JSON lines */

static void on_flow(void *ctx, const struct ipfix_flow *f)
{
	char line[1024];
	int n;

	if (flow_json_fd >= 0 && (n = ipfix_json_line(f, line, sizeof(line))) > 0) {
		if (write(flow_json_fd, line, (size_t)n) != n)
			log_warn("flow log");
		else
			flows_logged++;
	}
	if (flow_udp_fd < 0)
		return;
	if (nflows == FLOW_BATCH)
		flows_flush();
	/* The record's names point into the VFR's memory: kept copies for the batch. */
	flow_batch[nflows] = *f;
	snprintf(flow_names[nflows][0], VFR_NAME_MAX, "%s", f->src_domain ? f->src_domain : "");
	snprintf(flow_names[nflows][1], VFR_NAME_MAX, "%s", f->dst_domain ? f->dst_domain : "");
	flow_batch[nflows].src_domain = f->src_domain ? flow_names[nflows][0] : NULL;
	flow_batch[nflows].dst_domain = f->dst_domain ? flow_names[nflows][1] : NULL;
	nflows++;
}

static const struct vfr_callbacks callbacks = {
    .emit = on_emit,
    .log = on_log,
    .flow = on_flow,
};

static void on_port_frame(void *ctx, struct netport *p, const uint8_t *frame, size_t len,
			  const struct virtio_net_hdr *off)
{
	capture(p->id, frame, len, off);
	vfr_enter(); /* left at the end of the port's batch (worker_main) */
	vfr_input_offload(vfr, p->id, frame, len, off, now_ms, wall_ms);
}

/* ---- parsing the supervisor's words ---- */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end || errno || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

static int parse_cidr(const char *s, uint32_t *addr, uint8_t *prefix)
{
	char buf[32], *slash;
	uint32_t p;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = 0;
	if (parse_ip(buf, addr) < 0 || parse_u32(slash + 1, 32, &p) < 0)
		return -EINVAL;
	*prefix = (uint8_t)p;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			 &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* Splits a line into at most max words at spaces; returns how many. */
static unsigned split(char *line, char **w, unsigned max)
{
	unsigned n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	return n;
}

/* ---- the supervisor's messages ---- */

struct request {
	char *args; /* the text after the command word */
	int *fds;   /* a descriptor taken is set to -1 here; the rest are closed */
	unsigned nfds;
	char *err; /* REASON of "error REASON" */
	size_t errlen;
	char *reply; /* the text after "ok" (NETCTL_MSG_MAX bytes) */
};

static int take_fd(struct request *r, unsigned i)
{
	int fd = r->fds[i];

	r->fds[i] = -1;
	return fd;
}

static int need_state(struct request *r, const char *cmd)
{
	if (vfr)
		return 0;
	snprintf(r->err, r->errlen, "%s: no state yet (send 'state' with the memfd first)", cmd);
	return -EINVAL;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* "state [capacity=N]" with the state memfd. */
static int cmd_state(struct request *r)
{
	char *w[2];
	unsigned n = split(r->args, w, 2);
	uint32_t capacity = NETCTL_CT_CAPACITY;
	struct stat st;
	uint64_t seed;
	bool fresh;
	int ret;

	if (vfr) {
		snprintf(r->err, r->errlen, "state: already given");
		return -EEXIST;
	}
	if (n > 1 || (n == 1 && (strncmp(w[0], "capacity=", 9) ||
				 parse_u32(w[0] + 9, 1u << 24, &capacity) < 0 || capacity == 0))) {
		snprintf(r->err, r->errlen,
			 "state: expected 'state [capacity=N]' (N: 1 to %u flows)", 1u << 24);
		return -EINVAL;
	}
	if (r->nfds != 1) {
		snprintf(r->err, r->errlen,
			 "state: expected the state memfd attached (%u descriptors)", r->nfds);
		return -EINVAL;
	}
	state_len = vfr_state_size(capacity);
	if (fstat(r->fds[0], &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < state_len) {
		snprintf(r->err, r->errlen,
			 "state: the memfd has %lld bytes, %zu needed for %u flows",
			 (long long)st.st_size, state_len, capacity);
		return -EINVAL;
	}
	state_map = mmap(NULL, state_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds[0], 0);
	if (state_map == MAP_FAILED) {
		state_map = NULL;
		snprintf(r->err, r->errlen, "state: mapping it: %s", strerror(errno));
		return -errno;
	}
	/*
	 * A memfd domusd has just made is all zeros; anything else was written
	 * by a VFR before us, and vfr_new checks what it finds and keeps what
	 * makes sense.
	 */
	fresh = all_zero(state_map, state_len);
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)now_ms * 0x9e3779b97f4a7c15ULL;
	ret = vfr_new(state_map, state_len, fresh, capacity, seed, &callbacks, &vfr, r->err,
		      r->errlen);
	if (ret < 0) {
		munmap(state_map, state_len);
		state_map = NULL;
		return ret;
	}
	if (fresh)
		snprintf(r->reply, NETCTL_MSG_MAX, "fresh");
	else
		snprintf(r->reply, NETCTL_MSG_MAX, "restored %" PRIu32 " flows",
			 ct_count(vfr_conntrack(vfr)));
	return 0;
}

/* "uplink MAC ADDR/PREFIX GATEWAY" with the TAP. */
static int cmd_uplink(struct request *r)
{
	char *w[4];
	unsigned n = split(r->args, w, 4);
	struct vfr_uplink_config u = {0};
	int ret;

	if ((ret = need_state(r, "uplink")) < 0)
		return ret;
	if (n != 3 || parse_mac(w[0], u.mac) < 0 || parse_cidr(w[1], &u.addr, &u.prefix) < 0 ||
	    parse_ip(w[2], &u.gateway) < 0) {
		snprintf(r->err, r->errlen, "uplink: expected 'uplink MAC ADDR/PREFIX GATEWAY'");
		return -EINVAL;
	}
	if (r->nfds != 1) {
		snprintf(r->err, r->errlen, "uplink: expected the TAP device attached");
		return -EINVAL;
	}
	if (tap_fd >= 0) {
		snprintf(r->err, r->errlen, "uplink: already given");
		return -EEXIST;
	}
	if ((ret = vfr_set_uplink(vfr, &u, r->err, r->errlen)) < 0)
		return ret;
	tap_fd = take_fd(r, 0);
	/* A TAP that cannot take a frame drops it: the loop never waits on it. */
	fcntl(tap_fd, F_SETFL, fcntl(tap_fd, F_GETFL) | O_NONBLOCK);
	if ((ret = watch_fd(workers[0].epfd, tap_fd, &tap_watch)) < 0) {
		snprintf(r->err, r->errlen, "uplink: epoll_ctl: %s", strerror(-ret));
		close(tap_fd);
		tap_fd = -1;
		return ret;
	}
	return 0;
}

/* The index of s in names[0, n) (the values of an enum in order), or -EINVAL. */
static int pick(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -EINVAL;
}

/* In the order of enum vfr_action, enum vfr_uplink_mode and enum pkt_frag_policy. */
static const char *const actions[] = {"accept", "drop", "reject"};
static const char *const modes[] = {"none", "routed", "nat", "rsip"};
static const char *const frags[] = {"drop", "first", "allow"};

/* "net NAME ID SUBNET/PREFIX GATEWAY mode=M default=A [dns=ADDR] [frag=drop|first|allow]" */
static int cmd_net(struct request *r)
{
	char *w[9];
	unsigned n = split(r->args, w, 9);
	struct vfr_net_config c = {0};
	bool mode = false, def = false;
	int ret;

	if ((ret = need_state(r, "net")) < 0)
		return ret;
	if (n < 6 || n > 8 || strlen(w[0]) >= VFR_NAME_MAX ||
	    parse_u32(w[1], UINT32_MAX, &c.id) < 0 || c.id == 0 ||
	    parse_cidr(w[2], &c.subnet, &c.prefix) < 0 || parse_ip(w[3], &c.gateway) < 0)
		goto usage;
	snprintf(c.name, sizeof(c.name), "%s", w[0]);
	for (unsigned i = 4; i < n; i++) {
		int v = -EINVAL;
		if (!strncmp(w[i], "mode=", 5) && (v = pick(w[i] + 5, modes, 4)) >= 0) {
			c.mode = (enum vfr_uplink_mode)v;
			mode = true;
		} else if (!strncmp(w[i], "default=", 8) && (v = pick(w[i] + 8, actions, 3)) >= 0) {
			c.default_action = (enum vfr_action)v;
			def = true;
		} else if (!strncmp(w[i], "frag=", 5) && (v = pick(w[i] + 5, frags, 3)) >= 0) {
			c.frag_policy = (enum pkt_frag_policy)v;
		} else if (strncmp(w[i], "dns=", 4) || parse_ip(w[i] + 4, &c.dns) < 0) {
			snprintf(r->err, r->errlen, "net %s: bad option '%.40s'", c.name, w[i]);
			return -EINVAL;
		}
	}
	if (!mode || !def)
		goto usage;
	if (nnets == VFR_NETWORKS_MAX) {
		snprintf(r->err, r->errlen, "net %s: at most %d networks", c.name,
			 VFR_NETWORKS_MAX);
		return -ENOSPC;
	}
	if ((ret = vfr_add_net(vfr, &c, r->err, r->errlen)) < 0)
		return ret;
	nets[nnets].id = c.id;
	snprintf(nets[nnets++].name, VFR_NAME_MAX, "%s", c.name);
	return 0;
usage:
	snprintf(r->err, r->errlen,
		 "net: expected 'net NAME ID SUBNET/PREFIX GATEWAY "
		 "mode=none|routed|nat|rsip default=accept|drop|reject [dns=A] [frag=F]'");
	return -EINVAL;
}

/* A network by name or by id. */
static int find_net(const char *s, uint32_t *id)
{
	uint32_t v;

	for (unsigned i = 0; i < nnets; i++)
		if (!strcmp(nets[i].name, s) ||
		    (parse_u32(s, UINT32_MAX, &v) == 0 && nets[i].id == v)) {
			*id = nets[i].id;
			return 0;
		}
	return -ENOENT;
}

/* "port ID NAME NET MAC ADDR [slice=START-END] [rate=PPS]" with the listening socket. */
static int cmd_port(struct request *r)
{
	char *w[8];
	unsigned n = split(r->args, w, 8);
	struct vfr_port_config c = {0};
	struct netport *p;
	struct net_worker *wk;
	int ret, listening = 0;
	socklen_t sl = sizeof(listening);

	if ((ret = need_state(r, "port")) < 0)
		return ret;
	if (n < 5 || n > 7 || parse_u32(w[0], CT_MAX_DOMAINS - 1, &c.id) < 0 || c.id == 0 ||
	    strlen(w[1]) >= VFR_NAME_MAX || parse_mac(w[3], c.mac) < 0 ||
	    parse_ip(w[4], &c.addr) < 0) {
		snprintf(r->err, r->errlen,
			 "port: expected 'port ID NAME NET MAC ADDR [slice=START-END] "
			 "[rate=PPS]' (ID 1 to %d)",
			 CT_MAX_DOMAINS - 1);
		return -EINVAL;
	}
	snprintf(c.name, sizeof(c.name), "%s", w[1]);
	for (unsigned i = 5; i < n; i++) {
		uint32_t lo, hi;
		char *dash;
		if (!strncmp(w[i], "rate=", 5) && parse_u32(w[i] + 5, UINT32_MAX, &c.rate_pps) == 0)
			continue;
		if (!strncmp(w[i], "slice=", 6) && (dash = strchr(w[i] + 6, '-'))) {
			*dash = 0;
			if (parse_u32(w[i] + 6, 65535, &lo) == 0 &&
			    parse_u32(dash + 1, 65535, &hi) == 0 && lo <= hi) {
				c.slice.start = (uint16_t)lo;
				c.slice.end = (uint16_t)hi;
				continue;
			}
			*dash = '-';
		}
		snprintf(r->err, r->errlen, "port %u: bad option '%.40s'", c.id, w[i]);
		return -EINVAL;
	}
	if (ports[c.id]) {
		snprintf(r->err, r->errlen, "port %u: already served", c.id);
		return -EEXIST;
	}
	if (find_net(w[2], &c.net) < 0) {
		snprintf(r->err, r->errlen, "port %u: no network '%.40s'", c.id, w[2]);
		return -ENOENT;
	}
	if (r->nfds != 1) {
		snprintf(r->err, r->errlen,
			 "port %u: expected its listening socket attached (%u descriptors)", c.id,
			 r->nfds);
		return -EINVAL;
	}
	if (getsockopt(r->fds[0], SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0 || !listening) {
		snprintf(r->err, r->errlen, "port %u: the descriptor is not a listening socket",
			 c.id);
		return -EINVAL;
	}
	if (nports == VFR_MAX_PORTS || !(p = malloc(sizeof(*p)))) {
		snprintf(r->err, r->errlen, "port %u: at most %d ports", c.id, VFR_MAX_PORTS);
		return -ENOSPC;
	}
	if ((ret = vfr_add_port(vfr, &c, r->err, r->errlen)) < 0) {
		free(p);
		return ret;
	}
	netport_init(p, c.id, c.mac, take_fd(r, 0), on_port_frame, NULL);
	p->kept_pairs = vfr_port_pairs_slot(vfr, c.id);
	fcntl(p->listen_fd, F_SETFL, fcntl(p->listen_fd, F_GETFL) | O_NONBLOCK);
	wk = &workers[0];
	for (unsigned i = 1; i < nworkers; i++)
		if (workers[i].nports < wk->nports)
			wk = &workers[i];
	if ((ret = netport_watch(p, wk->epfd, W_LISTEN, W_VHOST)) < 0) {
		snprintf(r->err, r->errlen, "port %u: epoll_ctl: %s", c.id, strerror(-ret));
		netport_close(p);
		free(p);
		vfr_remove_port(vfr, c.id);
		return ret;
	}
	ports[c.id] = p;
	port_ids[nports++] = c.id;
	port_worker[c.id] = wk;
	wk->port_ids[wk->nports++] = c.id;
	snprintf(port_names[c.id], VFR_NAME_MAX, "%s", c.name);
	if (!quiet)
		log_info("port %u (%s) on network %u", c.id, c.name, c.net);
	return 0;
}

static void stop_capture(uint32_t id)
{
	pthread_mutex_lock(&capture_lock);
	if (capture_fd[id] >= 0) {
		close(capture_fd[id]);
		atomic_fetch_sub(&capturing, 1);
	}
	capture_fd[id] = -1;
	pthread_mutex_unlock(&capture_lock);
}

/* "unport ID" */
static int cmd_unport(struct request *r)
{
	struct net_worker *w;
	uint32_t id;
	int ret;

	if ((ret = need_state(r, "unport")) < 0)
		return ret;
	if (parse_u32(r->args, CT_MAX_DOMAINS - 1, &id) < 0 || !ports[id]) {
		snprintf(r->err, r->errlen, "unport %.20s: no such port", r->args);
		return -ENOENT;
	}
	vfr_remove_port(vfr, id);
	netport_close(ports[id]);
	free(ports[id]);
	ports[id] = NULL;
	world_gen++;
	stop_capture(id);
	for (unsigned i = 0; i < nports; i++)
		if (port_ids[i] == id) {
			port_ids[i] = port_ids[--nports];
			break;
		}
	w = port_worker[id];
	port_worker[id] = NULL;
	for (unsigned i = 0; w && i < w->nports; i++)
		if (w->port_ids[i] == id) {
			w->port_ids[i] = w->port_ids[--w->nports];
			break;
		}
	return 0;
}

/* "rule add POS [id=N] TEXT", "rule remove ID" */
static int cmd_rule(struct request *r)
{
	char *save = NULL, *verb = strtok_r(r->args, " ", &save), *arg = strtok_r(NULL, " ", &save);
	char *text = save;
	uint32_t id;
	long pos;
	int ret;

	if ((ret = need_state(r, "rule")) < 0)
		return ret;
	if (verb && arg && !strcmp(verb, "add") && text && *text) {
		char *end;
		pos = strcmp(arg, "end") ? strtol(arg, &end, 10) : -1;
		if (strcmp(arg, "end") && (*end || pos < -1)) {
			snprintf(r->err, r->errlen,
				 "rule add: position '%.20s' (a number, -1 or end)", arg);
			return -EINVAL;
		}
		uint32_t want = 0;
		/* "id=N TEXT": the supervisor's id for the rule, the same after a restart. */
		if (!strncmp(text, "id=", 3)) {
			char *sp = strchr(text, ' ');
			if (sp)
				*sp = 0;
			if (!sp || parse_u32(text + 3, UINT32_MAX - 1, &want) < 0 || !want) {
				snprintf(r->err, r->errlen, "rule add: bad id '%.20s'", text);
				return -EINVAL;
			}
			text = sp + 1;
		}
		if ((ret = vfr_rule_add_as(vfr, text, pos, want, &id, r->err, r->errlen)) < 0)
			return ret;
		snprintf(r->reply, NETCTL_MSG_MAX, "%" PRIu32, id);
		return 0;
	}
	if (verb && arg && !strcmp(verb, "remove") && !*save) {
		if (parse_u32(arg, UINT32_MAX, &id) < 0) {
			snprintf(r->err, r->errlen, "rule remove: '%.20s' is not a rule id", arg);
			return -EINVAL;
		}
		return vfr_rule_remove(vfr, id, r->err, r->errlen);
	}
	snprintf(r->err, r->errlen, "rule: expected 'rule add POS TEXT' or 'rule remove ID'");
	return -EINVAL;
}

/* "rules": one "ID TEXT" line per rule. */
static int cmd_rules(struct request *r)
{
	const struct vfr_ruleset *rs;
	size_t off = 0;
	int ret;

	if ((ret = need_state(r, "rules")) < 0)
		return ret;
	rs = vfr_rules(vfr);
	r->reply[0] = 0;
	for (size_t i = 0; i < vfr_ruleset_count(rs); i++) {
		const struct vfr_rule *rule = vfr_ruleset_get(rs, i);
		char text[VFR_RULE_TEXT_MAX];
		vfr_rule_print(rule, text, sizeof(text));
		if (off + strlen(text) + 16 >= NETCTL_MSG_MAX) {
			snprintf(r->err, r->errlen, "rules: too many to answer in one message");
			return -E2BIG;
		}
		off += (size_t)snprintf(r->reply + off, NETCTL_MSG_MAX - off, "%s%" PRIu32 " %s",
					off ? "\n" : "", rule->id, text);
	}
	return 0;
}

/* "flows" with a JSON-lines file and, optionally, a connected UDP socket; none: off. */
static int cmd_flows(struct request *r)
{
	if (r->args[0] || r->nfds > 2) {
		snprintf(r->err, r->errlen, "flows: expected 'flows' and at most two descriptors");
		return -EINVAL;
	}
	flows_flush();
	if (flow_json_fd >= 0)
		close(flow_json_fd);
	if (flow_udp_fd >= 0)
		close(flow_udp_fd);
	flow_json_fd = r->nfds > 0 ? take_fd(r, 0) : -1;
	flow_udp_fd = r->nfds > 1 ? take_fd(r, 1) : -1;
	if (flow_udp_fd >= 0)
		ipfix_exporter_init(&exporter, 1, IPFIX_MTU);
	return 0;
}

/* "capture ID" with the file; "uncapture ID". ID 0 is the uplink. */
static int cmd_capture(struct request *r, bool start)
{
	const char *cmd = start ? "capture" : "uncapture";
	uint32_t id;
	int ret;

	if ((ret = need_state(r, cmd)) < 0)
		return ret;
	if (parse_u32(r->args, CT_MAX_DOMAINS - 1, &id) < 0 ||
	    (id == VFR_UPLINK ? tap_fd < 0 : !ports[id])) {
		snprintf(r->err, r->errlen, "%s %.20s: no such port", cmd, r->args);
		return -ENOENT;
	}
	if (!start) {
		if (capture_fd[id] < 0) {
			snprintf(r->err, r->errlen, "uncapture %u: no capture", id);
			return -ENOENT;
		}
		stop_capture(id);
		return 0;
	}
	if (r->nfds != 1) {
		snprintf(r->err, r->errlen, "capture %u: expected the file attached", id);
		return -EINVAL;
	}
	if ((ret = pcap_write_header(r->fds[0])) < 0) {
		snprintf(r->err, r->errlen, "capture %u: writing the pcap header: %s", id,
			 strerror(-ret));
		return ret;
	}
	stop_capture(id);
	pthread_mutex_lock(&capture_lock);
	capture_fd[id] = take_fd(r, 0);
	atomic_fetch_add(&capturing, 1);
	pthread_mutex_unlock(&capture_lock);
	return 0;
}

static json_t *port_json(uint32_t id, const char *name, const struct vfr_port_stats *s)
{
	return json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "id",
			 (json_int_t)id, "name", name, "rx_frames", (json_int_t)s->rx_frames,
			 "rx_bytes", (json_int_t)s->rx_bytes, "tx_frames", (json_int_t)s->tx_frames,
			 "tx_bytes", (json_int_t)s->tx_bytes, "malformed", (json_int_t)s->malformed,
			 "refused", (json_int_t)s->refused, "spoofed", (json_int_t)s->spoofed,
			 "denied", (json_int_t)s->denied, "rejected", (json_int_t)s->rejected,
			 "rate_limited", (json_int_t)s->rate_limited, "no_route",
			 (json_int_t)s->no_route, "arp_replies", (json_int_t)s->arp_replies,
			 "dhcp_replies", (json_int_t)s->dhcp_replies);
}

/* "stats": a JSON object (docs/net.md). */
static int cmd_stats(struct request *r)
{
	json_t *o, *list;
	const struct vfr_port_stats *s;
	const struct ct_table *ct;
	char *text;
	int ret;

	if ((ret = need_state(r, "stats")) < 0)
		return ret;
	ct = vfr_conntrack(vfr);
	list = json_array();
	for (unsigned i = 0; i < nports; i++) {
		struct netport *p = ports[port_ids[i]];
		json_t *j;
		if (!(s = vfr_port_stats(vfr, p->id)))
			continue;
		j = port_json(p->id, port_names[p->id], s);
		json_object_set_new(j, "connected", json_boolean(p->connected));
		json_object_set_new(j, "tx_broken", json_boolean(p->tx_broken));
		json_object_set_new(j, "pairs", json_integer(p->pairs));
		json_object_set_new(j, "worker", json_integer(port_worker[p->id]->index));
		{
			json_t *qs = json_array();

			for (unsigned k = 0; k < NETPORT_PAIRS_MAX; k++)
				json_array_append_new(qs, json_pack("{s:I,s:I}", "tx_frames",
								    (json_int_t)p->n.tx_by_pair[k],
								    "rx_frames",
								    (json_int_t)p->n.rx_by_pair[k]));
			json_object_set_new(j, "queue_pairs", qs);
		}
		json_object_set_new(
		    j, "virtio",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "tx_frames",
			      (json_int_t)p->n.tx_frames, "tx_bad", (json_int_t)p->n.tx_bad,
			      "rx_frames", (json_int_t)p->n.rx_frames, "rx_no_buffer",
			      (json_int_t)p->n.rx_no_buffer, "rx_too_long",
			      (json_int_t)p->n.rx_too_long, "connects", (json_int_t)p->n.connects,
			      "features", (json_int_t)(p->connected ? p->b.features : 0),
			      "tx_offloaded", (json_int_t)p->n.tx_offloaded, "rx_offloaded",
			      (json_int_t)p->n.rx_offloaded, "rx_cut", (json_int_t)p->n.rx_cut,
			      "rx_csum_done", (json_int_t)p->n.rx_csum_done));
		json_array_append_new(list, j);
	}
	o = json_pack("{s:o,s:{s:I,s:I},s:{s:I,s:I,s:I},s:I}", "ports", list, "conntrack", "count",
		      (json_int_t)ct_count(ct), "capacity", (json_int_t)ct_capacity(ct), "flows",
		      "logged", (json_int_t)flows_logged, "ipfix_records_sent",
		      (json_int_t)exporter.seq, "ipfix_pending", (json_int_t)nflows, "threads",
		      (json_int_t)nworkers);
	if (tap_fd >= 0 && (s = vfr_port_stats(vfr, VFR_UPLINK))) {
		json_t *u = port_json(VFR_UPLINK, "uplink", s);
		json_object_set_new(u, "tap_dropped", json_integer((json_int_t)atomic_load(&tap_dropped)));
		json_object_set_new(u, "tap_tx_offloaded",
				    json_integer((json_int_t)atomic_load(&tap_tx_offloaded)));
		json_object_set_new(u, "tap_rx_offloaded", json_integer((json_int_t)tap_rx_offloaded));
		json_object_set_new(o, "uplink", u);
	}
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text || strlen(text) >= NETCTL_MSG_MAX - 4) {
		free(text);
		snprintf(r->err, r->errlen, "stats: out of memory or too large");
		return -ENOMEM;
	}
	snprintf(r->reply, NETCTL_MSG_MAX, "%s", text);
	free(text);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct request *r);
} commands[] = {
    {"state", cmd_state}, {"uplink", cmd_uplink}, {"net", cmd_net},
    {"port", cmd_port},	  {"unport", cmd_unport}, {"rule", cmd_rule},
    {"rules", cmd_rules}, {"flows", cmd_flows},	  {"stats", cmd_stats},
};

/* One message from the supervisor; -EPIPE once it has gone. */
static int control_handle(int sock)
{
	static char text[NETCTL_MSG_MAX + 1], reply[NETCTL_MSG_MAX + 8], detail[NETCTL_MSG_MAX];
	char err[512] = "";
	int fds[UNIX_MAX_FDS];
	unsigned nfds = 0;
	ssize_t n = unix_recv_fds(sock, text, NETCTL_MSG_MAX, fds, UNIX_MAX_FDS, &nfds);
	struct request r = {
	    .fds = fds, .nfds = nfds, .err = err, .errlen = sizeof(err), .reply = detail};
	bool multiline = false;
	int ret = -EINVAL;

	if (n == 0 || n == -ECONNRESET)
		return -EPIPE;
	detail[0] = 0;
	if (n < 0) {
		ret = (int)n;
		snprintf(err, sizeof(err), "a message the supervisor sent was too large");
	} else {
		size_t len;
		text[n] = 0;
		/* One line: a trailing newline is forgiven. */
		if (n && text[n - 1] == '\n')
			text[n - 1] = 0;
		len = strcspn(text, " ");
		r.args = text + len + (text[len] == ' ');
		text[len] = 0;
		if (!strcmp(text, "capture") || !strcmp(text, "uncapture")) {
			pthread_rwlock_wrlock(&world);
			ret = cmd_capture(&r, text[0] == 'c');
			pthread_rwlock_unlock(&world);
		} else {
			size_t i;
			for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (!strcmp(text, commands[i].name))
					break;
			if (i < sizeof(commands) / sizeof(commands[0])) {
				/* Alone: no worker is in a round while ports, rules or counters change. */
				pthread_rwlock_wrlock(&world);
				ret = commands[i].fn(&r);
				outbox_deliver();
				touched_flush();
				/* A rule the message changed: its sweep starts now, without waiting for a frame. */
				if (vfr && vfr_recheck_step(vfr, 0))
					atomic_store(&rechecking, true);
				pthread_rwlock_unlock(&world);
				multiline =
				    commands[i].fn == cmd_rules || commands[i].fn == cmd_stats;
			} else {
				snprintf(err, sizeof(err), "unknown request '%.20s'", text);
			}
		}
		for (unsigned i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	if (ret < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret < 0) {
		log_warnx("%s", err);
		snprintf(reply, sizeof(reply), "error %s", err);
	} else {
		snprintf(reply, sizeof(reply), "ok%s%s",
			 detail[0] || multiline ? (multiline ? "\n" : " ") : "", detail);
	}
	return unix_send_fds(sock, reply, strlen(reply), NULL, 0) < 0 ? -EPIPE : 0;
}

/* ---- the loops ---- */

static void on_signal(int sig) { atomic_store(&stopping, 1); }

static void worker_wake(struct net_worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("waking worker %u", w->index);
}

/* Worker 0's: the host's partial checksums and TCP segments (tap_open_uplink's offloads) go through whole. */
static void tap_read(void)
{
	static _Thread_local uint8_t frame[VFR_GSO_FRAME_MAX + 1];
	struct virtio_net_hdr hdr;
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {frame, sizeof(frame)}};

	for (unsigned i = 0; i < TX_BUDGET; i++) {
		ssize_t n = readv(tap_fd, iov, 2);
		size_t len;

		if (n < 0)
			break;
		if (n <= (ssize_t)sizeof(hdr))
			continue;
		len = (size_t)n - sizeof(hdr);
		if (len > (offload_wanted(&hdr) ? VFR_GSO_FRAME_MAX : VFR_FRAME_MAX))
			continue; /* the TAP's MTU and offloads are ours; a longer frame is not forwarded */
		if (offload_wanted(&hdr))
			tap_rx_offloaded++;
		capture(VFR_UPLINK, frame, len, &hdr);
		vfr_enter();
		vfr_input_offload(vfr, VFR_UPLINK, frame, len, &hdr, now_ms, wall_ms);
	}
	vfr_leave();
}

static uint64_t mono_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* --poll-us: watches w's ports' transmit rings; true once one has a frame (tx_pending set). */
static bool busy_poll(struct net_worker *w)
{
	uint64_t until = mono_us() + poll_us;
	bool found = false;

	while (!found && !atomic_load(&stopping) && mono_us() < until)
		for (unsigned i = 0; i < w->nports; i++) {
			struct netport *p = ports[w->port_ids[i]];

			for (unsigned q = NETPORT_TX; p->connected && q < NETPORT_CTRL; q += 2)
				if (!p->b.q[q].vq.broken && vhost_backend_has_avail(&p->b, q)) {
					p->tx_pending = found = true;
					break;
				}
		}
	return found;
}

static void *worker_main(void *arg)
{
	struct net_worker *w = arg;
	struct epoll_event ev[EVENTS_MAX];
	bool worked = false;

	outbox = w->outbox;
	pthread_rwlock_rdlock(&world);
	while (!atomic_load(&stopping)) {
		bool pending = w->index == 0 && atomic_load(&rechecking);
		uint64_t gen = world_gen;
		int n;

		for (unsigned i = 0; i < w->nports; i++)
			pending |= ports[w->port_ids[i]]->tx_pending || ports[w->port_ids[i]]->ctrl_pending;
		if (!pending && worked && poll_us)
			pending = busy_poll(w);
		/* Asleep, it holds nothing: the main thread changes ports and rules then. */
		pthread_rwlock_unlock(&world);
		n = epoll_wait(w->epfd, ev, EVENTS_MAX, pending ? 0 : -1);
		pthread_rwlock_rdlock(&world);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("worker %u: epoll_wait", w->index);
			break;
		}
		/* A port went meanwhile: its events may point to it. The set gives the others again. */
		if (world_gen != gen)
			n = 0;
		clock_update();
		for (int i = 0; i < n; i++) {
			struct watch *wt = ev[i].data.ptr;
			uint64_t word;

			switch (wt->kind) {
			case W_WAKE:
				if (read(w->wake_fd, &word, sizeof(word)) < 0 && errno != EAGAIN)
					log_warn("worker %u: its eventfd", w->index);
				break;
			case W_TAP:
				if (tap_fd >= 0)
					tap_read();
				break;
			case W_LISTEN:
				netport_listen_ready(wt->ptr);
				break;
			case W_VHOST: {
				const struct vhost_watch *vw = (const struct vhost_watch *)wt;
				netport_vhost_ready(vw->b->dev, vw);
				break;
			}
			}
		}
		/* One round: at most TX_BUDGET frames from each port, then the receive signals. */
		worked = false;
		for (unsigned i = 0; i < w->nports; i++) {
			struct netport *p = ports[w->port_ids[i]];

			if (p->tx_pending || p->ctrl_pending) {
				worked |= netport_tx(p, TX_BUDGET) > 0;
				vfr_leave();
			}
		}
		touched_flush();
		/* A rule change's recheck: a slice between rounds, until every flow is seen. */
		if (w->index == 0 && atomic_load(&rechecking) && vfr) {
			bool more;

			vfr_enter();
			more = vfr_recheck_step(vfr, VFR_RECHECK_BUDGET);
			vfr_leave();
			touched_flush();
			if (!more)
				atomic_store(&rechecking, false);
		}
	}
	pthread_rwlock_unlock(&world);
	return NULL;
}

/* The main thread's: the supervisor's messages and the tick. */
static int serve(int epfd, int control_fd, int timer)
{
	static struct watch control_watch = {W_CONTROL, NULL}, timer_watch = {W_TIMER, NULL};
	struct epoll_event ev[2];

	if (watch_fd(epfd, control_fd, &control_watch) < 0 ||
	    watch_fd(epfd, timer, &timer_watch) < 0) {
		log_warn("the main thread's epoll set");
		return -errno;
	}
	while (!atomic_load(&stopping)) {
		int n = epoll_wait(epfd, ev, 2, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return -errno;
		}
		clock_update();
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;
			uint64_t ticks;

			if (w->kind == W_TIMER) {
				if (read(timer, &ticks, sizeof(ticks)) != sizeof(ticks))
					continue;
				pthread_rwlock_rdlock(&world);
				pthread_mutex_lock(&vfr_lock);
				if (vfr)
					vfr_tick(vfr, now_ms, wall_ms);
				flows_flush();
				pthread_mutex_unlock(&vfr_lock);
				outbox_deliver();
				touched_flush();
				pthread_rwlock_unlock(&world);
			} else if (control_handle(control_fd) < 0) {
				if (!quiet)
					log_info("the supervisor has gone; stopping");
				return 0;
			} else if (atomic_load(&rechecking)) {
				worker_wake(&workers[0]);
			}
		}
	}
	return 0;
}

/* Workers and their epoll sets: made before the sandbox, which has no epoll_create or clone. */
static int workers_start(void)
{
	pthread_rwlockattr_t attr;
	sigset_t all, old;
	int ret = 0;

	/* Writer first: a worker always coming back for its round would hold messages off for good. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&world, &attr);
	pthread_rwlockattr_destroy(&attr);
	/* Signals are the main thread's: workers start with them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < nworkers && ret == 0; i++) {
		struct net_worker *w = &workers[i];

		w->index = i;
		w->wake_watch = (struct watch){W_WAKE, w};
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		w->outbox = outbox_new();
		if (!w->outbox) {
			ret = -ENOMEM;
			log_warnx("worker %u: out of memory", i);
		} else if (w->epfd < 0 || w->wake_fd < 0 ||
			   watch_fd(w->epfd, w->wake_fd, &w->wake_watch) < 0) {
			ret = -errno;
			log_warn("worker %u", i);
		} else if ((ret = -pthread_create(&w->thread, NULL, worker_main, w)) < 0) {
			log_errno(ret, "worker %u", i);
		}
		if (ret < 0)
			nworkers = i; /* the ones started are stopped */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static void workers_stop(void)
{
	atomic_store(&stopping, 1);
	for (unsigned i = 0; i < nworkers; i++)
		worker_wake(&workers[i]);
	for (unsigned i = 0; i < nworkers; i++) {
		pthread_join(workers[i].thread, NULL);
		free(workers[i].outbox);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"control-fd", required_argument, NULL, 'C'},
	    {"user", required_argument, NULL, 'u'},
	    {"no-sandbox", no_argument, NULL, 'N'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"poll-us", required_argument, NULL, 'P'},
	    {"threads", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	const char *user = NULL;
	int opt, verbose = 0, control_fd = -1, ret, timer, main_epfd;
	struct itimerspec second = {{1, 0}, {1, 0}};
	bool no_sandbox = false;
	char err[512];
	struct sigaction sa = {.sa_handler = on_signal};

	while ((opt = getopt_long(argc, argv, "vq", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (opt) {
		case 'C':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 3 || v > 1023)
				goto usage;
			control_fd = (int)v;
			break;
		case 'u':
			user = optarg;
			break;
		case 'N':
			no_sandbox = true;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'q':
			quiet = true;
			break;
		case 'P':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1000000) {
				fprintf(stderr, "domus-net: --poll-us %s: 0 to 1000000\n", optarg);
				return 2;
			}
			poll_us = (unsigned)v;
			break;
		case 'T':
			v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > WORKERS_MAX) {
				fprintf(stderr, "domus-net: --threads %s: 1 to %d\n", optarg, WORKERS_MAX);
				return 2;
			}
			nworkers = (unsigned)v;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc || control_fd < 0)
		goto usage;
	log_init("domus-net", verbose);
	/* It ends with its supervisor, also when started by hand under one. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (unsigned i = 0; i < CT_MAX_DOMAINS; i++)
		capture_fd[i] = -1;
	clock_update();
	/* The 1 s tick: made before the sandbox, which has no timerfd_create. */
	timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (timer < 0 || timerfd_settime(timer, 0, &second, NULL) < 0) {
		log_warn("timerfd");
		return 1;
	}
	/* Epoll sets, the workers' and this thread's: made before the sandbox, which has no epoll_create. */
	main_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (main_epfd < 0) {
		log_warn("epoll_create1");
		return 1;
	}
	/*
	 * One malloc arena for every thread: a worker's own arena would grow by
	 * mprotect, which the sandbox does not allow (a front-end's messages
	 * allocate on the worker that serves its port).
	 */
	mallopt(M_ARENA_MAX, 1);
	if (!(outbox = outbox_new())) {
		log_warnx("out of memory");
		return 1;
	}
	if (workers_start() < 0) {
		workers_stop();
		return 1;
	}
	/* jansson seeds its hash tables from /dev/urandom at first use: before the sandbox, not in it. */
	json_object_seed(0);
	if (!no_sandbox && net_sandbox_enter(user, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		workers_stop();
		return 1;
	}
	ret = serve(main_epfd, control_fd, timer);
	workers_stop();
	for (unsigned i = 0; i < nports; i++) {
		netport_close(ports[port_ids[i]]);
		free(ports[port_ids[i]]);
	}
	flows_flush();
	if (vfr)
		vfr_free(vfr);
	free(outbox);
	close(timer);
	return ret < 0 ? 1 : 0;
usage:
	fprintf(stderr, "usage: domus-net --control-fd N [--user NAME] [--no-sandbox] [--threads N]\n"
			"                 [--poll-us N] [-v] [-q]\n");
	return 2;
}
