/*
 * vfr-pps: domus-net's frames per second, on the host without a VM.
 *
 *   vfr-pps [--frames N] [--program DOMUS-NET] [--pairs P] [--threads T]
 *       starts domus-net (netctl_spawn, sandboxed as under domusd) with T
 *       worker threads (default 1), makes one network with default=drop and
 *       a rule accepting UDP from port a to port b on 5001 (so the rules and
 *       conntrack are on the path), and drives it with two tests/netdriver
 *       front-ends: a blasts 64-byte UDP frames, b receives. With P pairs
 *       (1 to 4) there are P such senders and receivers, each pair driven
 *       by its own thread, the senders' ports added first so that they
 *       spread over the workers (a frame's whole way through domus-net is
 *       the work of its sender's worker); N frames in all. Prints one line
 *       of key=value: pairs, threads, frames delivered,
 *       wall time, domus-net's CPU time (utime+stime from /proc/PID/stat)
 *       and frames per CPU second of domus-net, and the whole host's busy
 *       CPU time (/proc/stat) per frame, which covers the synthetic
 *       front-ends too.
 *   vfr-pps --udp-send ADDR --frames N     (the kernel peer, bench/vfr-pps-compare)
 *   vfr-pps --udp-recv SECONDS             counts UDP datagrams on port 5001 (until a
 *                                          second passes without one, or SECONDS)
 *
 * The frames go through the VFR (src/net/vfr.c) in domus-net: anti-spoofing,
 * the switch, conntrack (every frame after the first is part of the flow the
 * rule accepted) and the network's default=drop for anything else. The
 * first frame must arrive, so the accept rule is known to be on the path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/netdriver/netdriver.h"
#include "lib/ctlproc.h"
#include "lib/unix_socket.h"
#include "net/netctl.h"
#include "net/vfr.h"

#define QSIZE 256
#define PORT 5001
#define PAIRS_MAX 4

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* utime + stime of pid, in seconds. */
static double proc_cpu(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command name (which may hold spaces): state is field 3, utime 14. */
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The host's busy CPU time (all but idle and iowait), in seconds. */
static double host_busy(void)
{
	unsigned long long v[10] = {0}, busy = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return -1;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8) {
		fclose(f);
		return -1;
	}
	fclose(f);
	for (int i = 0; i < 8; i++)
		if (i != 3 && i != 4)
			busy += v[i];
	return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static int ask(int ctl, const char *text, const int *fds, unsigned nfds)
{
	char reply[256], err[512];
	int ret = netctl_request(ctl, text, fds, nfds, reply, sizeof(reply), err, sizeof(err));

	if (ret < 0)
		fprintf(stderr, "vfr-pps: '%s': %s\n", text, err);
	return ret;
}

static int udp_send(const char *addr, unsigned long frames)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	char payload[22] = {0};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0 || inet_pton(AF_INET, addr, &to.sin_addr) != 1)
		return 1;
	for (unsigned long i = 0; i < frames; i++)
		while (sendto(s, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to)) <
		       0)
			if (errno != ENOBUFS && errno != EAGAIN)
				return 1;
	return 0;
}

static int udp_recv(double seconds)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	int s = socket(AF_INET, SOCK_DGRAM, 0), big = 8 << 20;
	unsigned long n = 0;
	char buf[2048];
	double end;

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	printf("ready\n");
	fflush(stdout);
	end = now_s() + seconds;
	/* Until SECONDS pass, or a second without datagrams once they came. */
	while (now_s() < end) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 1000) == 1) {
			while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				n++;
		} else if (n) {
			break;
		}
	}
	printf("received=%lu\n", n);
	return 0;
}

/* One sender and its receiver, driven by one thread. */
struct pair {
	struct netdrv a, b;
	uint8_t id_a, id_b;
	unsigned long frames, sent, got;
	pthread_t thread;
};

static double t_start;

/* Fills a's ring, kicks, drains b's, until enough arrived (or 60 s). */
static void *drive(void *arg)
{
	struct pair *p = arg;
	uint8_t f[64], buf[2048];

	while (p->got < p->frames && now_s() - t_start < 60) {
		unsigned queued = 0;
		int n;
		while (p->sent < p->frames &&
		       netdrv_send(&p->a, f,
				   netdrv_udp_frame(f, p->a.mac, p->b.mac, p->id_a, p->id_b, PORT,
						    (uint32_t)p->sent)) == 0)
			p->sent++, queued++;
		if (queued)
			netdrv_kick(&p->a);
		while ((n = netdrv_receive(&p->b, buf, sizeof(buf), 0)) > 0)
			p->got++;
		if (!queued && netdrv_receive(&p->b, buf, sizeof(buf), 1) > 0)
			p->got++;
		if (p->sent >= p->frames && netdrv_tx_free(&p->a) == QSIZE &&
		    netdrv_receive(&p->b, buf, sizeof(buf), 50) == 0)
			break; /* everything sent and nothing more coming */
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"frames", required_argument, NULL, 'n'},
	    {"program", required_argument, NULL, 'p'},
	    {"pairs", required_argument, NULL, 'P'},
	    {"threads", required_argument, NULL, 'T'},
	    {"udp-send", required_argument, NULL, 's'},
	    {"udp-recv", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	static struct pair pairs[PAIRS_MAX];
	unsigned long frames = 2000000, sent = 0, got = 0, threads = 1, npairs = 1;
	char program[PATH_MAX] = "", dir[64] = "/tmp/vfr-pps.XXXXXX", err[512], text[256];
	char socks[2 * PAIRS_MAX][128];
	const char *send_to = NULL;
	double recv_s = 0, t1, c0, c1, h0, h1;
	int opt, ctl, state, listen[2 * PAIRS_MAX], status;
	uint8_t f[64], buf[2048];
	pid_t pid;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			frames = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			snprintf(program, sizeof(program), "%s", optarg);
			break;
		case 'P':
			npairs = strtoul(optarg, NULL, 10);
			break;
		case 'T':
			threads = strtoul(optarg, NULL, 10);
			break;
		case 's':
			send_to = optarg;
			break;
		case 'r':
			recv_s = strtod(optarg, NULL);
			break;
		default:
			goto usage;
		}
	}
	if (send_to)
		return udp_send(send_to, frames);
	if (recv_s > 0)
		return udp_recv(recv_s);
	if (npairs < 1 || npairs > PAIRS_MAX || threads < 1 || threads > 16 || frames < npairs)
		goto usage;
	if (!program[0]) {
		netctl_find_program(program, sizeof(program), argv[0]);
		if (access(program, X_OK) < 0) {
			char *slash = strrchr(argv[0], '/');
			snprintf(program, sizeof(program), "%.*s/../src/ctl/domus-net",
				 slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	state = memfd_create("vfr-state", MFD_CLOEXEC);
	ctlproc_set_threads("domus-net", (unsigned)threads);
	if (state < 0 || ftruncate(state, (off_t)vfr_state_size(NETCTL_CT_CAPACITY)) < 0 ||
	    netctl_spawn(program, false, &pid, &ctl, err, sizeof(err)) < 0) {
		fprintf(stderr, "vfr-pps: setting up %s failed\n", program);
		return 1;
	}
	if (ask(ctl, "state", &state, 1) < 0 ||
	    ask(ctl, "net lan 1 10.0.0.0/24 10.0.0.1 mode=none default=drop", NULL, 0) < 0)
		return 1;
	/*
	 * Ports: senders a0.. (ids 2, 4, ..) first, then receivers b0.. (3, 5, ..),
	 * so that with T workers the senders go to workers 0, 1, .. in turn.
	 */
	for (unsigned i = 0; i < 2 * npairs; i++) {
		bool sender = i < npairs;
		unsigned k = sender ? i : i - (unsigned)npairs, id = 2 + 2 * k + !sender;

		snprintf(socks[i], sizeof(socks[i]), "%s/%c%u.sock", dir, sender ? 'a' : 'b', k);
		listen[i] = unix_listen(socks[i], SOCK_STREAM, 4);
		snprintf(text, sizeof(text), "port %u %c%u lan 02:00:00:00:00:%02x 10.0.0.%u", id,
			 sender ? 'a' : 'b', k, id, id);
		if (listen[i] < 0 || ask(ctl, text, &listen[i], 1) < 0)
			return 1;
	}
	for (unsigned k = 0; k < npairs; k++) {
		struct pair *p = &pairs[k];
		uint8_t mac_a[6] = {2, 0, 0, 0, 0, (uint8_t)(2 + 2 * k)},
			mac_b[6] = {2, 0, 0, 0, 0, (uint8_t)(3 + 2 * k)};

		p->id_a = (uint8_t)(2 + 2 * k);
		p->id_b = (uint8_t)(3 + 2 * k);
		p->frames = frames / npairs;
		snprintf(text, sizeof(text),
			 "rule add end accept proto udp from domain a%u to domain b%u port 5001", k, k);
		if (ask(ctl, text, NULL, 0) < 0)
			return 1;
		if (netdrv_open(&p->a, socks[k], mac_a, QSIZE, err, sizeof(err)) < 0 ||
		    netdrv_open(&p->b, socks[npairs + k], mac_b, QSIZE, err, sizeof(err)) < 0) {
			fprintf(stderr, "vfr-pps: %s\n", err);
			return 1;
		}
		/* A first frame through, so that the flow exists and the rings are running. */
		netdrv_udp_frame(f, mac_a, mac_b, p->id_a, p->id_b, PORT, 0);
		netdrv_send(&p->a, f, 64);
		netdrv_kick(&p->a);
		if (netdrv_receive(&p->b, buf, sizeof(buf), 2000) != 64) {
			fprintf(stderr, "vfr-pps: the first frame of pair %u did not arrive\n", k);
			return 1;
		}
	}
	t_start = now_s();
	c0 = proc_cpu(pid);
	h0 = host_busy();
	for (unsigned k = 0; k < npairs; k++)
		if (pthread_create(&pairs[k].thread, NULL, drive, &pairs[k]) != 0) {
			fprintf(stderr, "vfr-pps: pthread_create\n");
			return 1;
		}
	for (unsigned k = 0; k < npairs; k++) {
		pthread_join(pairs[k].thread, NULL);
		sent += pairs[k].sent;
		got += pairs[k].got;
	}
	t1 = now_s();
	c1 = proc_cpu(pid);
	h1 = host_busy();
	for (unsigned k = 0; k < npairs; k++) {
		netdrv_close(&pairs[k].a);
		netdrv_close(&pairs[k].b);
	}
	close(ctl);
	waitpid(pid, &status, 0);
	for (unsigned i = 0; i < 2 * npairs; i++)
		unlink(socks[i]);
	rmdir(dir);
	/* Printed once domus-net is gone (the benchmarks' rule). */
	printf("vfr-pps pairs=%lu threads=%lu frames_sent=%lu frames_delivered=%lu wall_s=%.3f "
	       "pps=%.0f domus_net_cpu_s=%.3f pps_per_domus_net_cpu=%.0f host_cpu_s=%.3f "
	       "pps_per_host_cpu=%.0f\n",
	       npairs, threads, sent, got, t1 - t_start, got / (t1 - t_start), c1 - c0,
	       c1 > c0 ? got / (c1 - c0) : 0.0, h1 - h0, h1 > h0 ? got / (h1 - h0) : 0.0);
	return got ? 0 : 1;
usage:
	fprintf(stderr,
		"usage: vfr-pps [--frames N] [--program DOMUS-NET] [--pairs 1-4] [--threads 1-16]\n"
		"       vfr-pps --udp-send ADDR [--frames N] | --udp-recv SECONDS\n");
	return 2;
}
