/*
 * shmchan: the guest channel's tool, for the VM tests and the benchmark.
 *
 *   shmchan [OPTIONS] serve            echo every message back
 *   shmchan [OPTIONS] ping COUNT SIZE  round trips of SIZE-byte messages
 *   shmchan [OPTIONS] sink             count what stream sends
 *   shmchan [OPTIONS] stream MIB SIZE  MIB MiB one way in SIZE-byte messages
 *   shmchan [OPTIONS] recv             print messages, one a line
 *   shmchan [OPTIONS] send TEXT...     one message per TEXT
 * and, to play a hostile peer (no session):
 *   shmchan [OPTIONS] peek OFFSET      print the region's u32 at OFFSET
 *   shmchan [OPTIONS] poke OFFSET VALUE...   write u32s at OFFSETs
 *   shmchan [OPTIONS] doorbell PEER [VECTOR]
 * OPTIONS: -d BDF (the device; default the first 1af4:1110); -i (doorbell
 * interrupts through uio, or fail), -v (through vfio-pci's MSI-X, or
 * fail), -p (poll); the default takes the first of the three that works;
 * -t SECONDS (how long to wait for the peer; default 60); -r SECONDS (a
 * session whose ring stands still that long ends: the peer is gone).
 *
 * and the same over TCP (tcp.h), to compare the ring with the network:
 *   shmchan [-t SECONDS] tcp-serve PORT | tcp-sink PORT
 *   shmchan [-t SECONDS] tcp-ping HOST:PORT COUNT SIZE | tcp-stream HOST:PORT MIB SIZE
 *
 * serve, sink and recv are the channel's server, ping, stream and send its
 * client. An empty message ends a session.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmchan.h"
#include "tcp.h"

/* What the commands talk through: the shared ring, or TCP when tcp is set. */
struct conn {
	struct shmchan *ch;
	struct tcpchan *tcp;
};

static int conn_send(struct conn *c, const void *msg, size_t len)
{
	return c->tcp ? tcpchan_send(c->tcp, msg, len) : shmchan_send(c->ch, msg, len);
}

static ssize_t conn_recv(struct conn *c, void *buf, size_t cap)
{
	return c->tcp ? tcpchan_recv(c->tcp, buf, cap) : shmchan_recv(c->ch, buf, cap);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(struct conn *c, const char *what, long r)
{
	const char *why = c && c->ch ? shmchan_broken(c->ch) : NULL;

	if (why)
		fprintf(stderr, "shmchan: %s: %s (%s)\n", what, strerror((int)-r), why);
	else
		fprintf(stderr, "shmchan: %s: %s\n", what, strerror((int)-r));
	return 1;
}

static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || end == s || *end || *out > max || s[0] == '-' ? -EINVAL : 0;
}

static void say_linked(struct shmchan *ch)
{
	printf("shmchan: connected self=%" PRIu32 " peer=%" PRIu32 " max_msg=%zu wait=%s\n",
	       shmchan_self_id(ch), shmchan_peer_id(ch), shmchan_max_msg(ch),
	       shmchan_wait_mode(ch) == SHMCHAN_WAIT_UIO    ? "uio"
	       : shmchan_wait_mode(ch) == SHMCHAN_WAIT_VFIO ? "vfio"
							    : "poll");
	fflush(stdout);
}

static int cmd_serve(struct conn *c, uint8_t *buf, size_t cap)
{
	unsigned long n = 0;
	ssize_t len;
	int r;

	for (;;) {
		len = conn_recv(c, buf, cap);
		if (len < 0)
			return fail(c, "serve: recv", len);
		r = conn_send(c, buf, (size_t)len);
		if (r)
			return fail(c, "serve: send", r);
		if (!len)
			break;
		n++;
	}
	printf("serve: echoed %lu messages\n", n);
	return 0;
}

static int usage(void);

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmd_ping(struct conn *c, uint8_t *buf, size_t cap, unsigned long count, size_t size)
{
	uint8_t *msg = malloc(size ? size : 1);
	double *rtt = malloc(count * sizeof(*rtt)), start, t;
	ssize_t len;
	int r = 0;

	if (!msg || !rtt) {
		free(msg);
		free(rtt);
		return fail(c, "ping", -ENOMEM);
	}
	start = now_s();
	for (unsigned long i = 0; i < count; i++) {
		for (size_t j = 0; j < size; j++)
			msg[j] = (uint8_t)(i + j);
		t = now_s();
		r = conn_send(c, msg, size);
		if (r) {
			r = fail(c, "ping: send", r);
			goto out;
		}
		len = conn_recv(c, buf, cap);
		if (len < 0) {
			r = fail(c, "ping: recv", len);
			goto out;
		}
		rtt[i] = (now_s() - t) * 1e6;
		if ((size_t)len != size || memcmp(buf, msg, size)) {
			fprintf(stderr, "shmchan: ping: message %lu came back different\n", i);
			r = 1;
			goto out;
		}
	}
	t = now_s() - start;
	qsort(rtt, count, sizeof(*rtt), cmp_double);
	printf("ping: count=%lu size=%zu median_us=%.1f p99_us=%.1f msgs_per_s=%.0f\n", count, size,
	       rtt[count / 2], rtt[count * 99 / 100], count / t);
	/* The end: the server echoes it and stops. */
	r = conn_send(c, msg, 0);
	if (r)
		r = fail(c, "ping: send", r);
	else if ((len = conn_recv(c, buf, cap)) != 0)
		r = len < 0 ? fail(c, "ping: recv", len) : 1;
out:
	free(msg);
	free(rtt);
	return r;
}

/* Each stream message starts with its sequence number, which sink checks. */
static int cmd_sink(struct conn *c, uint8_t *buf, size_t cap)
{
	uint64_t bytes = 0, seq, n = 0;
	ssize_t len;
	int r;

	for (;;) {
		len = conn_recv(c, buf, cap);
		if (len < 0)
			return fail(c, "sink: recv", len);
		if (!len)
			break;
		if (len >= 8) {
			memcpy(&seq, buf, 8);
			if (seq != n) {
				fprintf(stderr, "shmchan: sink: message %" PRIu64 " out of order\n", n);
				return 1;
			}
		}
		n++;
		bytes += (uint64_t)len;
	}
	r = conn_send(c, &bytes, sizeof(bytes));
	if (r)
		return fail(c, "sink: send", r);
	printf("sink: messages=%" PRIu64 " bytes=%" PRIu64 "\n", n, bytes);
	return 0;
}

static int cmd_stream(struct conn *c, uint8_t *buf, size_t cap, unsigned long mib, size_t size)
{
	uint64_t total = (uint64_t)mib << 20, count = total / size, got;
	uint8_t *msg = calloc(1, size);
	double start, t;
	ssize_t len;
	int r;

	if (!msg)
		return fail(c, "stream", -ENOMEM);
	start = now_s();
	for (uint64_t i = 0; i < count; i++) {
		if (size >= 8)
			memcpy(msg, &i, 8);
		r = conn_send(c, msg, size);
		if (r) {
			free(msg);
			return fail(c, "stream: send", r);
		}
	}
	free(msg);
	r = conn_send(c, "", 0);
	if (r)
		return fail(c, "stream: send", r);
	/* The sink's count of what it received: the end of the stream. */
	len = conn_recv(c, buf, cap);
	if (len < 0)
		return fail(c, "stream: recv", len);
	t = now_s() - start;
	if (len != 8 || (memcpy(&got, buf, 8), got != count * size)) {
		fprintf(stderr, "shmchan: stream: the sink did not get %" PRIu64 " bytes\n",
			count * size);
		return 1;
	}
	printf("stream: bytes=%" PRIu64 " size=%zu seconds=%.3f mib_per_s=%.1f\n", count * size, size,
	       t, (double)(count * size) / (1 << 20) / t);
	return 0;
}

static int cmd_recv(struct conn *c, uint8_t *buf, size_t cap)
{
	ssize_t len;

	while ((len = conn_recv(c, buf, cap)) > 0)
		printf("recv: %.*s\n", (int)len, (const char *)buf);
	if (len < 0)
		return fail(c, "recv", len);
	return 0;
}

static int cmd_send(struct conn *c, char **texts, int n)
{
	int r;

	for (int i = 0; i < n; i++) {
		r = conn_send(c, texts[i], strlen(texts[i]));
		if (r)
			return fail(c, "send", r);
	}
	r = conn_send(c, "", 0);
	if (r)
		return fail(c, "send", r);
	printf("send: sent %d messages\n", n);
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A u32 of the region, or -EINVAL when OFFSET is not one. */
static int region_word(struct shmchan *ch, const char *arg, _Atomic uint32_t **word)
{
	size_t size;
	uint8_t *mem = shmchan_region(ch, &size);
	uint32_t off;

	if (parse_u32(arg, &off) || off % 4 || off > size - 4) {
		fprintf(stderr, "shmchan: %s is not a 4-aligned offset in the region\n", arg);
		return -EINVAL;
	}
	*word = (_Atomic uint32_t *)(mem + off);
	return 0;
}

static int cmd_raw(struct shmchan *ch, const char *cmd, char **args, int n)
{
	_Atomic uint32_t *word;
	uint32_t v, peer, vector = 0;

	if (!strcmp(cmd, "peek")) {
		if (region_word(ch, args[0], &word))
			return 1;
		printf("peek: 0x%08" PRIx32 "\n", atomic_load(word));
	} else if (!strcmp(cmd, "poke")) {
		for (int i = 0; i + 1 < n; i += 2) {
			if (region_word(ch, args[i], &word) || parse_u32(args[i + 1], &v))
				return 1;
			atomic_store(word, v);
		}
	} else {
		if (parse_u32(args[0], &peer) || peer > 0xffff ||
		    (n > 1 && (parse_u32(args[1], &vector) || vector > 0xffff)))
			return usage();
		shmchan_doorbell(ch, (uint16_t)peer, (uint16_t)vector);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: shmchan [-d BDF] [-i | -v | -p] [-t SECONDS] [-r SECONDS] serve | sink | recv |\n"
			"         ping COUNT SIZE | stream MIB SIZE | send TEXT... |\n"
			"         peek OFFSET | poke OFFSET VALUE... | doorbell PEER [VECTOR]\n"
			"       shmchan [-t SECONDS] tcp-serve PORT | tcp-sink PORT |\n"
			"         tcp-ping HOST:PORT COUNT SIZE | tcp-stream HOST:PORT MIB SIZE\n");
	return 2;
}

/* The TCP commands' session: a connection instead of the ring. */
static int open_tcp(struct conn *c, bool server, const char *where, int timeout_ms)
{
	int r = server ? tcpchan_accept(&c->tcp, where, timeout_ms)
		       : tcpchan_connect(&c->tcp, where, timeout_ms);

	if (r == -EINVAL) {
		fprintf(stderr, "shmchan: %s is not %s\n", where, server ? "a port" : "HOST:PORT");
		return 2;
	}
	if (r)
		return fail(NULL, server ? "waiting for a client" : "connecting to the server", r);
	printf("shmchan: connected tcp %s max_msg=%u\n", where, TCPCHAN_MAX_MSG);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct shmchan_opts opts = {.wait = SHMCHAN_WAIT_AUTO};
	unsigned long timeout_s = 60, idle_s = 0, a = 0, b = 0;
	struct conn conn = {0};
	struct shmchan *ch = NULL;
	const char *cmd, *err, *where = NULL;
	bool server, raw = false, tcp;
	uint8_t *buf;
	size_t cap;
	int c, r;

	while ((c = getopt(argc, argv, "d:ipr:t:v")) != -1) {
		switch (c) {
		case 'd':
			opts.bdf = optarg;
			break;
		case 'i':
			opts.wait = SHMCHAN_WAIT_UIO;
			break;
		case 'p':
			opts.wait = SHMCHAN_WAIT_POLL;
			break;
		case 'v':
			opts.wait = SHMCHAN_WAIT_VFIO;
			break;
		case 't':
			if (parse_count(optarg, 86400, &timeout_s))
				return usage();
			break;
		case 'r':
			if (parse_count(optarg, 86400, &idle_s))
				return usage();
			break;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind++];
	/* tcp-CMD WHERE ...: CMD's arguments follow the port or HOST:PORT. */
	tcp = !strncmp(cmd, "tcp-", 4);
	if (tcp) {
		cmd += 4;
		if (optind >= argc || (strcmp(cmd, "serve") && strcmp(cmd, "sink") && strcmp(cmd, "ping") &&
				       strcmp(cmd, "stream")))
			return usage();
		where = argv[optind++];
	}
	server = !strcmp(cmd, "serve") || !strcmp(cmd, "sink") || !strcmp(cmd, "recv");
	if (!strcmp(cmd, "ping") || !strcmp(cmd, "stream")) {
		if (argc - optind != 2 || parse_count(argv[optind], 100000000, &a) ||
		    parse_count(argv[optind + 1], 1u << 30, &b) || !a || !b ||
		    (!strcmp(cmd, "stream") && b > a << 20))
			return usage();
	} else if (!strcmp(cmd, "send")) {
		/* An empty message would end the session. */
		if (optind >= argc)
			return usage();
		for (int i = optind; i < argc; i++)
			if (!argv[i][0])
				return usage();
	} else if (!strcmp(cmd, "peek") || !strcmp(cmd, "poke") || !strcmp(cmd, "doorbell")) {
		int n = argc - optind;

		raw = true;
		if ((!strcmp(cmd, "peek") && n != 1) || (!strcmp(cmd, "poke") && (n < 2 || n % 2)) ||
		    (!strcmp(cmd, "doorbell") && n != 1 && n != 2))
			return usage();
	} else if (!server || optind != argc) {
		return usage();
	}
	if (tcp) {
		r = open_tcp(&conn, server, where, (int)timeout_s * 1000);
		if (r)
			return r;
		cap = TCPCHAN_MAX_MSG;
	} else {
		r = shmchan_open(&ch, &opts, &err);
		if (r) {
			fprintf(stderr, "shmchan: %s: %s\n", err, strerror(-r));
			return 1;
		}
		conn.ch = ch;
		if (raw) {
			r = cmd_raw(ch, cmd, argv + optind, argc - optind);
			goto out;
		}
		shmchan_set_idle_timeout(ch, (int)idle_s * 1000);
		r = server ? shmchan_serve(ch, (int)timeout_s * 1000)
			   : shmchan_connect(ch, (int)timeout_s * 1000);
		if (r) {
			r = fail(&conn, server ? "waiting for a client" : "connecting to the server", r);
			goto out;
		}
		say_linked(ch);
		cap = shmchan_max_msg(ch);
	}
	if (b > cap) {
		fprintf(stderr, "shmchan: SIZE %lu is over the channel's %zu\n", b, cap);
		r = 2;
		goto out;
	}
	buf = malloc(cap);
	if (!buf) {
		r = fail(&conn, "buffer", -ENOMEM);
		goto out;
	}
	if (!strcmp(cmd, "serve"))
		r = cmd_serve(&conn, buf, cap);
	else if (!strcmp(cmd, "sink"))
		r = cmd_sink(&conn, buf, cap);
	else if (!strcmp(cmd, "recv"))
		r = cmd_recv(&conn, buf, cap);
	else if (!strcmp(cmd, "ping"))
		r = cmd_ping(&conn, buf, cap, a, b);
	else if (!strcmp(cmd, "stream"))
		r = cmd_stream(&conn, buf, cap, a, b);
	else
		r = cmd_send(&conn, argv + optind, argc - optind);
	free(buf);
out:
	tcpchan_close(conn.tcp);
	if (ch)
		shmchan_close(ch);
	return r;
}
