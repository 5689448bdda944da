/*
 * blk-qos: how closely domus-blk's disk scheduler (src/blk/sched.h) keeps
 * what its QoS promises, on the host without a VM. One domus-blk, started
 * as a supervisor starts it (blkctl_spawn, --control-fd), serves three
 * disks, each a scratch file of its own opened with O_DIRECT (cache=none):
 * the device, not the host's page cache, is what the scheduler shares out.
 * A synthetic front-end per disk (tests/blkdriver), each on a thread of its
 * own, drives it; QoS and the cost model are set over the control socket
 * as domusd sets them.
 *
 *   blk-qos --domus-blk PATH [--seconds S] [--dir D] [--smoke]
 *
 * The scenarios, in one run, each measured over S seconds (default 10)
 * after a warm-up of a tenth of that (1 s at most):
 *
 *   capacity     one disk alone, no QoS: 4 KiB random reads at depth 32
 *                (IOPS) and 1 MiB sequential reads at depth 8 (bytes/s).
 *                The cost model follows (op-ns = 1e9 / IOPS, byte-ps =
 *                1e12 / bytes per second) and is sent with blkctl_sched for
 *                the rest: that is how a device's cost model is measured.
 *   reservation  A reserve-iops = 30% of capacity, weight=1; B weight=100;
 *                both 4 KiB random reads at depth 32: A's IOPS over its
 *                reservation (goal >= 97%), and the scheduler's reserve_met.
 *   limit        A alone, limit-iops = 25% of capacity: served over limit
 *                (goal 97% to 102%); then limit-bps=64M with 64 KiB reads.
 *   weights      three disks at weights 100, 200, 400, 4 KiB random reads
 *                at depth 32: the shares, and the worst deviation from 1:2:4
 *                (goal within 5%).
 *   workcons     A alone at depth 32 while B (reserve-iops = 30% of
 *                capacity) and C (weight=400) have QoS but no requests: A's
 *                IOPS over capacity (goal >= 95%), and over a run without
 *                any QoS just before it (a VM's disk drifts over minutes).
 *   latency      A reads 4 KiB at random, one at a time with 1 ms between
 *                them, beside B's storm of 64 KiB random writes at depth 64:
 *                A's p50 and p99 alone, with both at the defaults, with A
 *                class=interactive,reserve-iops=1000,deadline-ms=5, and with
 *                B limited besides to half the capacity's bytes per second;
 *                then A interactive again at engine depth 16.
 *
 * domus-blk only orders requests when more wait than it keeps in flight
 * (its depth, 64 by default). Two front-ends at depth 32 never exceed it,
 * and three at 32 exceed it by so little that the heaviest weight cannot
 * get its share in flight: reservation and weights are measured at the
 * default depth and again with blkctl_sched depth=16.
 *
 * Output: one line per scenario's figures, name=value pairs, "goal met" or
 * "goal missed" where there is a goal, then a table "figure value unit goal
 * verdict". The lines also say each front-end's longest request (max_ms)
 * and how many took over 10 ms: a disk that stalls with every request out
 * leaves nothing waiting for a reservation or a limit to release. A missed
 * goal is printed, not failed: the exit status says only whether everything
 * ran. --smoke runs each scenario for 0.3 s on 32 MiB files and judges
 * nothing (tests/bench/run).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/blkdriver/blkdriver.h"
#include "vmm/blkctl.h"

#define NS_PER_S 1000000000ull
#define NDISKS 3
#define SLOTS 64             /* a front-end's requests in flight at most: the write storm's depth */
#define QSIZE 256            /* three descriptors a request */
#define MAX_BYTES (1u << 20) /* the largest request: the 1 MiB sequential reads */
#define FEATURES ((1ULL << 32) | (1ULL << 9))
#define REAP_MS 100
#define STALL_MS 5000       /* requests out and none back this long: domus-blk is stuck */
#define SLOW_NS 10000000ull /* a request this long is the device stalling, not queueing */
#define DEFAULT_DEPTH 64    /* domus-blk's engine depth until told (BLK_SCHED_DEFAULT_DEPTH) */
#define LOW_DEPTH 16        /* below what the front-ends keep out: the scheduler orders them */
#define MAX_FIGURES 32

struct workload {
	uint32_t bs;
	unsigned depth;
	bool write, sequential;
	uint64_t pause_ns; /* > 0: one request at a time, this long between them, latencies kept */
};

static const struct workload randread_4k = {.bs = 4096, .depth = 32};
static const struct workload seqread_1m = {.bs = 1u << 20, .depth = 8, .sequential = true};
static const struct workload randread_64k = {.bs = 65536, .depth = 32};
static const struct workload write_storm = {.bs = 65536, .depth = 64, .write = true};
static const struct workload paced_4k = {.bs = 4096, .depth = 1, .pause_ns = 1000000};

/* Latencies in ns, of the requests completed while measuring. */
struct lat {
	uint64_t *ns;
	size_t n, cap;
};

/* One disk's front-end: connected once, driven by a thread of its own in each scenario. */
struct client {
	struct blkdrv d;
	bool open;
	char id[8]; /* the disk's id in domus-blk */
	struct workload w;
	unsigned seed, inflight;
	uint64_t next; /* the next block of a sequential workload */
	unsigned long failed;
	_Atomic uint64_t ops, bytes; /* completed since the thread started; read by the main thread */
	uint64_t sent_ns[SLOTS];
	struct lat lat;          /* paced: every request's latency while measuring */
	uint64_t max_ns;         /* the longest request while measuring */
	unsigned long slow;      /* requests over SLOW_NS while measuring */
	pthread_t thread;
	int err;
	double iops, bps; /* over the measured window */
};

/* A figure of the summary; its goal is lo <= value <= hi (either may be infinite, both: no goal). */
struct figure {
	char name[32];
	double value;
	const char *unit;
	double lo, hi;
};

struct bench {
	const char *program;
	char dir[200];
	bool own_dir, smoke;
	uint64_t image_bytes, warmup_ns, window_ns;
	char images[NDISKS][256];
	unsigned nimages;
	pid_t pid;
	int ctl;
	struct blkctl_disk disks[NDISKS];
	unsigned ndisks;
	struct client c[NDISKS];
	double cap_iops, cap_bps; /* the capacity scenario's */
	struct figure fig[MAX_FIGURES];
	unsigned nfig;
	char err[512];
};

/* Set by the main thread: the front-ends stop sending; latencies are kept. */
static atomic_bool stopping, measuring;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* Says what failed; returns ret, for `return fail(...)`. */
static int fail(int ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int ret, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "blk-qos: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return ret;
}

/* ---- the front-ends ---- */

static int lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0 < p <= 100) in µs, the nearest rank; 0 without samples. Sorts l. */
static double lat_percentile_us(struct lat *l, unsigned p)
{
	size_t rank;

	if (!l->n)
		return 0;
	qsort(l->ns, l->n, sizeof(l->ns[0]), cmp_u64);
	rank = (l->n * p + 99) / 100;
	return (double)l->ns[rank ? rank - 1 : 0] / 1000;
}

/* The next request of c's workload, on slot. */
static int submit(struct client *c, unsigned slot)
{
	uint64_t blocks = c->d.capacity * 512 / c->w.bs, block;

	if (c->w.sequential)
		block = c->next++ % blocks;
	else
		block = ((uint64_t)rand_r(&c->seed) << 31 | (uint64_t)rand_r(&c->seed)) % blocks;
	c->sent_ns[slot] = now_ns();
	return blkdrv_submit(&c->d, slot, c->w.write ? BLKDRV_T_OUT : BLKDRV_T_IN,
			     block * (c->w.bs / 512), c->w.bs);
}

/* A request's time from submission to completion, kept while measuring. */
static void account(struct client *c, unsigned slot)
{
	uint64_t ns = now_ns() - c->sent_ns[slot];

	if (!atomic_load_explicit(&measuring, memory_order_relaxed))
		return;
	c->max_ns = ns > c->max_ns ? ns : c->max_ns;
	c->slow += ns > SLOW_NS;
	if (c->w.pause_ns && lat_add(&c->lat, ns) < 0)
		c->failed++;
}

static void on_done(void *opaque, unsigned slot, uint8_t status, uint32_t len)
{
	struct client *c = opaque;

	c->inflight--;
	if (status != BLKDRV_S_OK) {
		c->failed++;
		return;
	}
	account(c, slot);
	atomic_fetch_add_explicit(&c->ops, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bytes, c->w.bs, memory_order_relaxed);
	/* A paced front-end sends its next request itself, after its pause. */
	if (!c->w.pause_ns && !atomic_load_explicit(&stopping, memory_order_relaxed) && submit(c, slot) == 0)
		c->inflight++;
}

/*
 * Waits on the call eventfd for completions, resending as they come (no
 * spinning: two cores are shared with domus-blk). 0, -ETIMEDOUT when none
 * came for STALL_MS, or -errno.
 */
static int reap(struct client *c)
{
	for (unsigned waited = 0; waited < STALL_MS; waited += REAP_MS) {
		int n = blkdrv_reap(&c->d, REAP_MS, on_done, c);
		if (n != 0)
			return n < 0 ? n : 0;
	}
	return -ETIMEDOUT;
}

/* Lets what is in flight come back: the next scenario starts on an idle disk. */
static int drain(struct client *c)
{
	int ret = 0;

	while (c->inflight && ret == 0)
		ret = reap(c);
	return ret;
}

/* Keeps depth requests in flight until told to stop. */
static int run_depth(struct client *c)
{
	int ret = 0;

	for (unsigned s = 0; s < c->w.depth && ret == 0; s++)
		if ((ret = submit(c, s)) == 0)
			c->inflight++;
	if (ret == 0)
		ret = blkdrv_kick(&c->d);
	while (ret == 0 && !c->failed && !atomic_load(&stopping))
		if ((ret = reap(c)) == 0)
			ret = blkdrv_kick(&c->d);
	if (ret == 0)
		ret = drain(c);
	return ret ? ret : c->failed ? -EIO : 0;
}

/* One request at a time with a pause between: each one's time from submission to completion. */
static int run_paced(struct client *c)
{
	int ret = 0;

	while (ret == 0 && !c->failed && !atomic_load(&stopping)) {
		if ((ret = submit(c, 0)) < 0)
			break;
		c->inflight++;
		if ((ret = blkdrv_kick(&c->d)) < 0 || (ret = drain(c)) < 0)
			break;
		sleep_ns(c->w.pause_ns);
	}
	return ret ? ret : c->failed ? -EIO : 0;
}

static void *client_main(void *arg)
{
	struct client *c = arg;

	c->err = c->w.pause_ns ? run_paced(c) : run_depth(c);
	return NULL;
}

/* The counters of n front-ends and the time they were read at. */
static uint64_t snapshot(struct client *const *cs, unsigned n, uint64_t *ops, uint64_t *bytes)
{
	for (unsigned i = 0; i < n; i++) {
		ops[i] = atomic_load(&cs[i]->ops);
		bytes[i] = atomic_load(&cs[i]->bytes);
	}
	return now_ns();
}

/*
 * Runs n front-ends with their workloads together: after the warm-up, each
 * one's rates over the window into its iops and bps (and latencies kept in
 * lat), then stops and drains them all.
 */
static int measure(struct bench *b, struct client *const *cs, unsigned n)
{
	uint64_t ops0[NDISKS] = {0}, bytes0[NDISKS] = {0}, ops1[NDISKS] = {0}, bytes1[NDISKS] = {0};
	uint64_t t0 = 0, t1 = 0;
	unsigned started = 0;
	int ret = 0;

	atomic_store(&stopping, false);
	atomic_store(&measuring, false);
	for (unsigned i = 0; i < n; i++) {
		cs[i]->lat.n = 0;
		cs[i]->max_ns = 0;
		cs[i]->slow = 0;
		cs[i]->failed = 0;
		cs[i]->err = 0;
		if ((ret = pthread_create(&cs[i]->thread, NULL, client_main, cs[i])) != 0) {
			ret = fail(-ret, "starting a front-end: %s", strerror(ret));
			break;
		}
		started++;
	}
	if (ret == 0) {
		sleep_ns(b->warmup_ns);
		t0 = snapshot(cs, n, ops0, bytes0);
		atomic_store(&measuring, true);
		sleep_ns(b->window_ns);
		atomic_store(&measuring, false);
		t1 = snapshot(cs, n, ops1, bytes1);
	}
	atomic_store(&stopping, true);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(cs[i]->thread, NULL);
		if (cs[i]->err && ret == 0)
			ret = fail(cs[i]->err, "disk %s: %s%s", cs[i]->id, strerror(-cs[i]->err),
				   cs[i]->err == -ETIMEDOUT ? " (no request came back for 5 s)" : "");
	}
	for (unsigned i = 0; ret == 0 && i < n; i++) {
		cs[i]->iops = (double)(ops1[i] - ops0[i]) * NS_PER_S / (double)(t1 - t0);
		cs[i]->bps = (double)(bytes1[i] - bytes0[i]) * NS_PER_S / (double)(t1 - t0);
	}
	return ret;
}

/* ---- domus-blk and its disks ---- */

/* A scratch image of b->image_bytes, written through (no holes) and out of the page cache. */
static int make_image(struct bench *b, const char *path)
{
	static uint8_t chunk[1u << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), ret = 0;

	if (fd < 0)
		return fail(-errno, "%s: %s", path, strerror(errno));
	for (uint64_t off = 0; off < b->image_bytes && ret == 0; off += sizeof(chunk)) {
		memset(chunk, (int)(off >> 20) | 1, sizeof(chunk));
		if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
			ret = fail(errno ? -errno : -EIO, "writing %s: %s", path, strerror(errno ? errno : EIO));
	}
	if (ret == 0 && fdatasync(fd) < 0)
		ret = fail(-errno, "syncing %s: %s", path, strerror(errno));
	/* The pages written are clean now; dropped, they cannot serve a read either way. */
	if (ret == 0)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return ret;
}

static int make_dir(struct bench *b)
{
	if (b->dir[0]) {
		struct stat st;
		if (stat(b->dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return fail(-ENOTDIR, "--dir %s: not a directory", b->dir);
		return 0;
	}
	snprintf(b->dir, sizeof(b->dir), "/var/tmp/blk-qos.XXXXXX");
	if (!mkdtemp(b->dir))
		return fail(-errno, "mkdtemp %s: %s", b->dir, strerror(errno));
	b->own_dir = true;
	return 0;
}

/* Disk i: its image served by domus-blk as d<i> on DIR/d<i>.sock, cache=none, and its front-end. */
static int add_disk(struct bench *b, unsigned i)
{
	struct disk_config dc = {.direct = true};
	struct client *c = &b->c[i];
	char sock[256];
	int ret;

	snprintf(c->id, sizeof(c->id), "d%u", i);
	snprintf(dc.path, sizeof(dc.path), "%s", b->images[i]);
	snprintf(sock, sizeof(sock), "%s/%s.sock", b->dir, c->id);
	if ((ret = blkctl_disk_open(&b->disks[i], c->id, &dc, sock, -1, 0, NULL, b->err, sizeof(b->err))) < 0)
		return fail(ret, "disk %s: %s", c->id, b->err);
	b->ndisks++;
	if ((ret = blkctl_add(b->ctl, &b->disks[i], b->err, sizeof(b->err))) < 0)
		return fail(ret, "adding disk %s: %s", c->id, b->err);
	if ((ret = blkdrv_open(&c->d, sock, FEATURES, QSIZE, SLOTS, MAX_BYTES, b->err, sizeof(b->err))) < 0)
		return fail(ret, "front-end of %s: %s", c->id, b->err);
	c->open = true;
	c->seed = 1 + i;
	if (c->d.capacity * 512 < MAX_BYTES)
		return fail(-ENOSPC, "disk %s is smaller than one request", c->id);
	/* What the writes carry: anything but zeros. */
	for (unsigned s = 0; s < SLOTS; s++)
		memset(blkdrv_data(&c->d, s), 0x5a, MAX_BYTES);
	return 0;
}

static int setup(struct bench *b)
{
	int ret;

	if ((ret = make_dir(b)) < 0)
		return ret;
	for (unsigned i = 0; i < NDISKS; i++) {
		snprintf(b->images[i], sizeof(b->images[i]), "%s/d%u.img", b->dir, i);
		if ((ret = make_image(b, b->images[i])) < 0)
			return ret;
		b->nimages++;
	}
	if ((ret = blkctl_spawn(b->program, false, &b->pid, &b->ctl, b->err, sizeof(b->err))) < 0)
		return fail(ret, "starting %s: %s", b->program, b->err);
	/* Only files no disk writes go through the read cache, and these are all writable; none, to be sure. */
	if ((ret = blkctl_cache_limit(b->ctl, 0, b->err, sizeof(b->err))) < 0)
		return fail(ret, "%s", b->err);
	for (unsigned i = 0; i < NDISKS; i++)
		if ((ret = add_disk(b, i)) < 0)
			return ret;
	return 0;
}

static void teardown(struct bench *b)
{
	int st;

	for (unsigned i = 0; i < NDISKS; i++) {
		if (b->c[i].open)
			blkdrv_close(&b->c[i].d);
		free(b->c[i].lat.ns);
	}
	if (b->pid > 0) {
		close(b->ctl); /* domus-blk ends with its supervisor */
		if (waitpid(b->pid, &st, 0) == b->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fail(0, "domus-blk ended with status %d", st);
	}
	for (unsigned i = 0; i < b->ndisks; i++)
		blkctl_disk_close(&b->disks[i], true);
	for (unsigned i = 0; i < b->nimages; i++)
		unlink(b->images[i]);
	if (b->own_dir)
		rmdir(b->dir);
}

/* ---- control ---- */

static int qos(struct bench *b, struct client *c, const char *group, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* c's disk goes by group with the QoS spec fmt, as blkctl_qos takes it. */
static int qos(struct bench *b, struct client *c, const char *group, const char *fmt, ...)
{
	char spec[BLK_QOS_TEXT_MAX];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	if ((ret = blkctl_qos(b->ctl, c->id, group, spec, b->err, sizeof(b->err))) < 0)
		return fail(ret, "qos %s %s '%s': %s", c->id, group, spec, b->err);
	return 0;
}

static int sched(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sched(struct bench *b, const char *fmt, ...)
{
	char settings[200];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(settings, sizeof(settings), fmt, ap);
	va_end(ap);
	if ((ret = blkctl_sched(b->ctl, settings, b->err, sizeof(b->err))) < 0)
		return fail(ret, "sched '%s': %s", settings, b->err);
	return 0;
}

static int qos_stats(struct bench *b, const char *group, struct blk_sched_stats *st, int *met)
{
	int ret = blkctl_qos_stats(b->ctl, group, st, met, b->err, sizeof(b->err));

	return ret < 0 ? fail(ret, "qos-stats %s: %s", group, b->err) : 0;
}

/*
 * Every disk back in a group of its own (its id) with the defaults, and the
 * engine's depth back to its default: no scenario inherits another's QoS,
 * and the old groups go with their last disk.
 */
static int reset(struct bench *b)
{
	int ret = sched(b, "depth=%u", DEFAULT_DEPTH);

	for (unsigned i = 0; i < NDISKS && ret == 0; i++)
		ret = qos(b, &b->c[i], b->c[i].id, "%s", "");
	return ret;
}

/* ---- figures ---- */

static void goal_text(const struct figure *f, char *buf, size_t len)
{
	if (isinf(f->lo) && isinf(f->hi))
		snprintf(buf, len, "-");
	else if (isinf(f->hi))
		snprintf(buf, len, ">=%g", f->lo);
	else if (isinf(f->lo))
		snprintf(buf, len, "<=%g", f->hi);
	else
		snprintf(buf, len, "%g-%g", f->lo, f->hi);
}

static const char *verdict(const struct bench *b, const struct figure *f)
{
	if (isinf(f->lo) && isinf(f->hi))
		return "-";
	if (b->smoke)
		return "unjudged";
	return f->value >= f->lo && f->value <= f->hi ? "met" : "missed";
}

/*
 * Records a figure for the summary, goal lo..hi (INFINITY for none on a
 * side); returns what its line says of the goal ("" without one).
 */
static const char *figure(struct bench *b, const char *name, double value, const char *unit,
			  double lo, double hi)
{
	static char out[96];
	struct figure *f = &b->fig[b->nfig < MAX_FIGURES ? b->nfig++ : MAX_FIGURES - 1];
	char goal[32];
	const char *v;

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->value = value;
	f->unit = unit;
	f->lo = lo;
	f->hi = hi;
	v = verdict(b, f);
	goal_text(f, goal, sizeof(goal));
	if (!strcmp(v, "-"))
		out[0] = 0;
	else
		snprintf(out, sizeof(out), " goal=%s%s: %s", goal, unit,
			 !strcmp(v, "unjudged") ? "goal not judged (--smoke)" : !strcmp(v, "met") ? "goal met" : "goal missed");
	return out;
}

static void summary(const struct bench *b)
{
	printf("\n%-24s %14s %-5s %-8s %s\n", "figure", "value", "unit", "goal", "verdict");
	for (unsigned i = 0; i < b->nfig; i++) {
		const struct figure *f = &b->fig[i];
		char goal[32];

		goal_text(f, goal, sizeof(goal));
		/* Percentages to a tenth; counts, rates and times whole. */
		printf("%-24s %14.*f %-5s %-8s %s\n", f->name, strcmp(f->unit, "%") ? 0 : 1, f->value, f->unit,
		       goal, verdict(b, f));
	}
}

/* ---- the scenarios ---- */

/*
 * " max_ms=A/B slow=N/M": each front-end's longest request and how many took
 * over SLOW_NS. A VM's disk stalls now and then for tens of ms with every
 * request out; what nothing waits for then, no scheduler can hand out.
 */
static const char *stalls(struct client *const *cs, unsigned n)
{
	static char buf[128];
	size_t len = 0;

	len += (size_t)snprintf(buf + len, sizeof(buf) - len, " max_ms=");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%.1f", i ? "/" : "",
					(double)cs[i]->max_ns / 1e6);
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, " over_10ms=");
	for (unsigned i = 0; i < n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lu", i ? "/" : "", cs[i]->slow);
	return buf;
}

static int scenario_capacity(struct bench *b)
{
	struct client *a = &b->c[0];
	unsigned long long op_ns, byte_ps;
	int ret;

	a->w = randread_4k;
	if ((ret = reset(b)) < 0 || (ret = measure(b, &a, 1)) < 0)
		return ret;
	b->cap_iops = a->iops;
	printf("capacity randread_4k_iops=%.0f depth=%u%s%s\n", a->iops, a->w.depth, stalls(&a, 1),
	       figure(b, "capacity_iops", a->iops, "iops", -INFINITY, INFINITY));
	a->w = seqread_1m;
	if ((ret = measure(b, &a, 1)) < 0)
		return ret;
	b->cap_bps = a->bps;
	printf("capacity seqread_1m_bytes_per_s=%.0f mib_per_s=%.1f depth=%u%s%s\n", a->bps, a->bps / 1048576,
	       a->w.depth, stalls(&a, 1), figure(b, "capacity_bps", a->bps, "B/s", -INFINITY, INFINITY));
	if (b->cap_iops < 1 || b->cap_bps < 1)
		return fail(-EIO, "no requests completed: nothing to measure against");
	/* A 4 KiB request's whole time as the operation's; a byte's, from the large requests. */
	op_ns = (unsigned long long)(1e9 / b->cap_iops);
	byte_ps = (unsigned long long)(1e12 / b->cap_bps);
	op_ns = op_ns < 1 ? 1 : op_ns;
	figure(b, "cost_op_ns", (double)op_ns, "ns", -INFINITY, INFINITY);
	figure(b, "cost_byte_ps", (double)byte_ps, "ps", -INFINITY, INFINITY);
	printf("cost_model op_ns=%llu byte_ps=%llu\n", op_ns, byte_ps);
	return sched(b, "op-ns=%llu,byte-ps=%llu", op_ns, byte_ps);
}

/* A reserve-iops of 30% of capacity at weight 1 beside B at weight 100, at engine depth depth. */
static int scenario_reservation(struct bench *b, unsigned depth)
{
	struct client *a = &b->c[0], *o = &b->c[1], *cs[] = {a, o};
	unsigned long long reserve = (unsigned long long)(b->cap_iops * 0.30);
	struct blk_sched_stats st;
	char name[32];
	double pct;
	int met, ret;

	reserve = reserve ? reserve : 1;
	a->w = o->w = randread_4k;
	if ((ret = reset(b)) < 0 || (ret = sched(b, "depth=%u", depth)) < 0 ||
	    (ret = qos(b, a, "res-a", "reserve-iops=%llu,weight=1", reserve)) < 0 ||
	    (ret = qos(b, o, "res-b", "weight=100")) < 0 || (ret = measure(b, cs, 2)) < 0 ||
	    (ret = qos_stats(b, "res-a", &st, &met)) < 0)
		return ret;
	pct = a->iops * 100 / (double)reserve;
	snprintf(name, sizeof(name), "reservation_pct_d%u", depth);
	printf("reservation engine_depth=%u a_iops=%.0f reserve_iops=%llu served_pct=%.1f b_iops=%.0f%s%s\n",
	       depth, a->iops, reserve, pct, o->iops, stalls(cs, 2), figure(b, name, pct, "%", 97, INFINITY));
	snprintf(name, sizeof(name), "reservation_met_d%u", depth);
	printf("reservation engine_depth=%u reserve_met=%d reserve_ops=%llu weight_ops=%llu%s\n", depth, met,
	       (unsigned long long)st.reserve_ops, (unsigned long long)st.weight_ops,
	       figure(b, name, met, "%", -INFINITY, INFINITY));
	return 0;
}

/* A alone under a limit (spec, the limit being `limit` per second of what rate() counts). */
static int limit_run(struct bench *b, const struct workload *w, const char *spec, double limit,
		     bool bytes, const char *name)
{
	struct client *a = &b->c[0];
	struct blk_sched_stats st;
	double served, pct;
	int met, ret;

	a->w = *w;
	if ((ret = reset(b)) < 0 || (ret = qos(b, a, "lim-a", "%s", spec)) < 0 ||
	    (ret = measure(b, &a, 1)) < 0 || (ret = qos_stats(b, "lim-a", &st, &met)) < 0)
		return ret;
	served = bytes ? a->bps : a->iops;
	pct = served * 100 / limit;
	printf("limit %s bs=%u depth=%u served=%.0f limit=%.0f served_pct=%.1f limited=%llu%s%s\n", spec,
	       w->bs, w->depth, served, limit, pct, (unsigned long long)st.limited, stalls(&a, 1),
	       figure(b, name, pct, "%", 97, 102));
	return 0;
}

static int scenario_limit(struct bench *b)
{
	unsigned long long limit = (unsigned long long)(b->cap_iops * 0.25);
	char spec[64];
	int ret;

	limit = limit ? limit : 1;
	snprintf(spec, sizeof(spec), "limit-iops=%llu", limit);
	if ((ret = limit_run(b, &randread_4k, spec, (double)limit, false, "limit_iops_pct")) < 0)
		return ret;
	return limit_run(b, &randread_64k, "limit-bps=64M", 64.0 * 1048576, true, "limit_bps_pct");
}

/* Three disks at weights 100, 200, 400, at engine depth depth. */
static int scenario_weights(struct bench *b, unsigned depth)
{
	static const unsigned weight[NDISKS] = {100, 200, 400};
	struct client *cs[NDISKS];
	double sum = 0, wsum = 0, worst = 0;
	char group[16], name[32];
	int ret;

	if ((ret = reset(b)) < 0 || (ret = sched(b, "depth=%u", depth)) < 0)
		return ret;
	for (unsigned i = 0; i < NDISKS; i++) {
		cs[i] = &b->c[i];
		cs[i]->w = randread_4k;
		snprintf(group, sizeof(group), "w%u", weight[i]);
		if ((ret = qos(b, cs[i], group, "weight=%u", weight[i])) < 0)
			return ret;
	}
	if ((ret = measure(b, cs, NDISKS)) < 0)
		return ret;
	for (unsigned i = 0; i < NDISKS; i++) {
		sum += cs[i]->iops;
		wsum += weight[i];
	}
	/* Each share against what its weight says it is owed. */
	for (unsigned i = 0; sum > 0 && i < NDISKS; i++) {
		double dev = (cs[i]->iops / sum / (weight[i] / wsum) - 1) * 100;
		dev = dev < 0 ? -dev : dev;
		worst = dev > worst ? dev : worst;
	}
	if (sum <= 0)
		worst = 100;
	snprintf(name, sizeof(name), "weights_dev_d%u", depth);
	printf("weights engine_depth=%u iops=%.0f/%.0f/%.0f shares=1:%.2f:%.2f worst_dev_pct=%.1f%s%s\n", depth,
	       cs[0]->iops, cs[1]->iops, cs[2]->iops, cs[1]->iops / (cs[0]->iops > 0 ? cs[0]->iops : 1),
	       cs[2]->iops / (cs[0]->iops > 0 ? cs[0]->iops : 1), worst, stalls(cs, NDISKS),
	       figure(b, name, worst, "%", -INFINITY, 5));
	return 0;
}

/* A alone, while B's reservation and C's weight are set but they send nothing. */
static int scenario_workcons(struct bench *b)
{
	struct client *a = &b->c[0];
	unsigned long long reserve = (unsigned long long)(b->cap_iops * 0.30);
	double pct, adjacent, adj_pct;
	int ret;

	/*
	 * The same run with no QoS anywhere, just before: a VM's disk drifts
	 * by tens of percent over minutes, so beside the figure against the
	 * capacity scenario's stands one against a run seconds away.
	 */
	a->w = randread_4k;
	if ((ret = reset(b)) < 0 || (ret = measure(b, &a, 1)) < 0)
		return ret;
	adjacent = a->iops;
	if ((ret = qos(b, &b->c[1], "wc-b", "reserve-iops=%llu", reserve ? reserve : 1)) < 0 ||
	    (ret = qos(b, &b->c[2], "wc-c", "weight=400")) < 0 || (ret = measure(b, &a, 1)) < 0)
		return ret;
	pct = a->iops * 100 / b->cap_iops;
	adj_pct = adjacent > 0 ? a->iops * 100 / adjacent : 0;
	figure(b, "workcons_adjacent_pct", adj_pct, "%", -INFINITY, INFINITY);
	printf("workcons a_iops=%.0f capacity_iops=%.0f adjacent_iops=%.0f adjacent_pct=%.1f pct=%.1f%s%s\n",
	       a->iops, b->cap_iops, adjacent, adj_pct, pct, stalls(&a, 1),
	       figure(b, "workcons_pct", pct, "%", 95, INFINITY));
	return 0;
}

/* A run of the latency scenario: A's paced reads, beside B's write storm unless alone. */
struct latency_case {
	const char *name;
	bool alone;
	const char *a_spec, *b_spec; /* their QoS; NULL: the defaults */
	unsigned depth;              /* the engine's */
};

/* Prints A's p50 and p99 as lat_NAME_p50/p99, and B's throughput. */
static int latency_run(struct bench *b, const struct latency_case *lc)
{
	struct client *a = &b->c[0], *o = &b->c[1], *cs[] = {a, o};
	struct blk_sched_stats st = {0};
	char fig50[32], fig99[32], missed[32] = "-", storm[48] = "";
	double p50, p99;
	int met, ret;

	a->w = paced_4k;
	o->w = write_storm;
	if ((ret = reset(b)) < 0 || (ret = sched(b, "depth=%u", lc->depth)) < 0 ||
	    (lc->a_spec && (ret = qos(b, a, "lat-a", "%s", lc->a_spec)) < 0) ||
	    (lc->b_spec && (ret = qos(b, o, "lat-b", "%s", lc->b_spec)) < 0) ||
	    (ret = measure(b, cs, lc->alone ? 1 : 2)) < 0)
		return ret;
	if (lc->a_spec) {
		if ((ret = qos_stats(b, "lat-a", &st, &met)) < 0)
			return ret;
		snprintf(missed, sizeof(missed), "%llu", (unsigned long long)st.deadline_missed);
	}
	p50 = lat_percentile_us(&a->lat, 50);
	p99 = lat_percentile_us(&a->lat, 99);
	snprintf(fig50, sizeof(fig50), "lat_%s_p50", lc->name);
	snprintf(fig99, sizeof(fig99), "lat_%s_p99", lc->name);
	if (!lc->alone)
		snprintf(storm, sizeof(storm), " b_mib_per_s=%.1f", o->bps / 1048576);
	figure(b, fig50, p50, "us", -INFINITY, INFINITY);
	figure(b, fig99, p99, "us", -INFINITY, INFINITY);
	printf("latency run=%s engine_depth=%u a_requests=%zu a_p50_us=%.0f a_p99_us=%.0f deadline_missed=%s%s%s\n",
	       lc->name, lc->depth, a->lat.n, p50, p99, missed, storm, stalls(cs, lc->alone ? 1 : 2));
	return 0;
}

static int scenario_latency(struct bench *b)
{
	static const char interactive[] = "class=interactive,reserve-iops=1000,deadline-ms=5";
	char limit[64];

	snprintf(limit, sizeof(limit), "limit-bps=%llu", (unsigned long long)(b->cap_bps / 2));
	/*
	 * The class orders what waits in domus-blk; what is already in the
	 * device's queue it cannot pass. The last run shows the other lever: a
	 * smaller engine depth, fewer of B's writes ahead of each read.
	 */
	const struct latency_case cases[] = {
		{"alone", true, NULL, NULL, DEFAULT_DEPTH},
		{"default", false, NULL, NULL, DEFAULT_DEPTH},
		{"interactive", false, interactive, NULL, DEFAULT_DEPTH},
		{"limited", false, interactive, limit, DEFAULT_DEPTH},
		{"interactive_d16", false, interactive, NULL, LOW_DEPTH},
	};
	int ret = 0;

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]) && ret == 0; i++)
		ret = latency_run(b, &cases[i]);
	return ret;
}

static int run_all(struct bench *b)
{
	int ret;

	if ((ret = scenario_capacity(b)) < 0 || (ret = scenario_reservation(b, DEFAULT_DEPTH)) < 0 ||
	    (ret = scenario_reservation(b, LOW_DEPTH)) < 0 || (ret = scenario_limit(b)) < 0 ||
	    (ret = scenario_weights(b, DEFAULT_DEPTH)) < 0 || (ret = scenario_weights(b, LOW_DEPTH)) < 0 ||
	    (ret = scenario_workcons(b)) < 0 || (ret = scenario_latency(b)) < 0)
		return ret;
	return reset(b);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"domus-blk", required_argument, NULL, 'p'}, {"seconds", required_argument, NULL, 't'},
		{"dir", required_argument, NULL, 'd'},       {"smoke", no_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	static struct bench b = {.ctl = -1};
	double seconds = 10;
	bool seconds_given = false;
	char *end;
	int opt, ret;

	b.program = getenv("DOMUS_BLK");
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': b.program = optarg; break;
		case 't':
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0 && seconds <= 3600))
				goto usage;
			seconds_given = true;
			break;
		case 'd':
			if (strlen(optarg) >= 80)
				return fail(2, "--dir %s: too long for the disks' sockets", optarg);
			snprintf(b.dir, sizeof(b.dir), "%s", optarg);
			break;
		case 's': b.smoke = true; break;
		default: goto usage;
		}
	}
	if (optind != argc || !b.program)
		goto usage;
	if (b.smoke && !seconds_given)
		seconds = 0.3;
	b.window_ns = (uint64_t)(seconds * 1e9);
	b.warmup_ns = b.window_ns / 10 < NS_PER_S ? b.window_ns / 10 : NS_PER_S;
	b.image_bytes = (b.smoke ? 32ull : 256ull) << 20;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("blk-qos disks=%u image_mib=%llu cache=none seconds=%g warmup=%g dir=%s\n", NDISKS,
	       (unsigned long long)(b.image_bytes >> 20), seconds, (double)b.warmup_ns / 1e9,
	       b.dir[0] ? b.dir : "/var/tmp/blk-qos.*");
	ret = setup(&b);
	if (ret == 0)
		ret = run_all(&b);
	teardown(&b);
	if (ret < 0)
		return 1;
	summary(&b);
	return 0;
usage:
	fprintf(stderr, "usage: blk-qos --domus-blk PATH [--seconds S] [--dir D] [--smoke]\n"
			"       (PATH may instead be in DOMUS_BLK)\n");
	return 2;
}
