/*
 * domus-blk as a front-end sees it, through tests/blkdriver (a virtio-blk
 * driver speaking vhost-user, no VM): reads and writes land in the image,
 * many requests in flight at once come back right, hostile requests get an
 * error status and the back-end goes on serving, a front-end that breaks
 * the protocol is dropped without harm to the other disk, and an image that
 * changed size is not served.
 *
 * Then the shared read cache, on a domus-blk driven over its control
 * socket as domusd drives it: qcow2 overlays of one base image share the
 * base's blocks (the second overlay's reads hit), data through the cache
 * is the file's, a write to one overlay never shows in the other, a file
 * attached read-only and then read-write by another disk is no longer
 * served from the cache, a limit of zero and limits changed while reads
 * are in flight.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../blkdriver/blkdriver.h"
#include "devices/virtq.h"
#include "lib/unix_socket.h"
#include "vmm/blkctl.h"

#define DISK_BYTES (1u << 20)
#define SLOTS 64
#define FEATURES ((1ULL << 32) | (1ULL << 9) | (1ULL << 11) | (1ULL << 13))

static char dir[64], path_a[128], path_b[128], sock_a[128], sock_b[128];
static pid_t blk_pid;
static bool two_workers; /* the "threads" group: --threads 2 --poll-us 50 */
static uint8_t shadow[DISK_BYTES];  /* what a.img holds */
static uint8_t initial[DISK_BYTES]; /* what the read-only b.img holds */
static char err[512];

/* Last completion per slot. */
static uint8_t status_of[SLOTS];
static uint32_t len_of[SLOTS];
static unsigned completed;

static void on_done(void *opaque, unsigned slot, uint8_t status, uint32_t len)
{
	status_of[slot] = status;
	len_of[slot] = len;
	completed++;
}

/* Submits one request on slot 0 and waits for it; its status, or -1 if none came. */
static int one(struct blkdrv *d, uint32_t type, uint64_t sector, uint32_t len)
{
	completed = 0;
	assert_int_equal(blkdrv_submit(d, 0, type, sector, len), 0);
	assert_int_equal(blkdrv_kick(d), 0);
	for (int i = 0; i < 50 && !completed; i++)
		assert_true(blkdrv_reap(d, 100, on_done, NULL) >= 0);
	return completed ? status_of[0] : -1;
}

static void start_blk(void)
{
	int ready[2];
	char line[256] = "";
	ssize_t n;

	assert_int_equal(pipe(ready), 0);
	blk_pid = fork();
	assert_true(blk_pid >= 0);
	if (blk_pid == 0) {
		char a[300], b[300];
		const char *prog = getenv("DOMUS_BLK");
		dup2(ready[1], 3);
		snprintf(a, sizeof(a), "%s=%s", sock_a, path_a);
		snprintf(b, sizeof(b), "%s=%s,ro", sock_b, path_b);
		if (two_workers)
			execl(prog, "domus-blk", "--quiet", "--ready-fd", "3", "--threads", "2",
			      "--poll-us", "50", "--disk", a, "--disk", b, (char *)NULL);
		else
			execl(prog, "domus-blk", "--quiet", "--ready-fd", "3", "--disk", a,
			      "--disk", b, (char *)NULL);
		_exit(127);
	}
	close(ready[1]);
	n = read(ready[0], line, sizeof(line) - 1);
	close(ready[0]);
	assert_true(n > 0);
	assert_string_equal(line, "ready\n");
}

static int setup(void **state)
{
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/domus-blk-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path_a, sizeof(path_a), "%s/a.img", dir);
	snprintf(path_b, sizeof(path_b), "%s/b.img", dir);
	snprintf(sock_a, sizeof(sock_a), "%s/a.sock", dir);
	snprintf(sock_b, sizeof(sock_b), "%s/b.sock", dir);
	srandom(7);
	for (size_t i = 0; i < sizeof(shadow); i++)
		shadow[i] = (uint8_t)random();
	for (const char *p = path_a; p; p = p == path_a ? path_b : NULL) {
		f = fopen(p, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(shadow, 1, sizeof(shadow), f), sizeof(shadow));
		fclose(f);
	}
	memcpy(initial, shadow, sizeof(initial));
	start_blk();
	return 0;
}

static int teardown(void **state)
{
	int st;
	char cmd[128];

	kill(blk_pid, SIGTERM);
	waitpid(blk_pid, &st, 0);
	/* It served everything inside its sandbox and ended as asked, not killed by the filter. */
	assert_true(WIFEXITED(st));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void open_drv(struct blkdrv *d, const char *sock)
{
	if (blkdrv_open(d, sock, FEATURES, 256, SLOTS, 65536, err, sizeof(err)) < 0)
		fail_msg("%s: %s", sock, err);
}

static void test_read_write_flush_id(void **state)
{
	struct blkdrv d;
	uint8_t back[4096];
	int fd;

	open_drv(&d, sock_a);
	assert_int_equal(d.capacity, DISK_BYTES / 512);
	assert_int_equal(one(&d, BLKDRV_T_IN, 8, 4096), BLKDRV_S_OK);
	assert_int_equal(len_of[0], 4096 + 1);
	assert_memory_equal(blkdrv_data(&d, 0), shadow + 8 * 512, 4096);
	memset(blkdrv_data(&d, 0), 0xa5, 4096);
	assert_int_equal(one(&d, BLKDRV_T_OUT, 16, 4096), BLKDRV_S_OK);
	assert_int_equal(one(&d, BLKDRV_T_FLUSH, 0, 0), BLKDRV_S_OK);
	fd = open(path_a, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, sizeof(back), 16 * 512), sizeof(back));
	close(fd);
	assert_memory_equal(back, blkdrv_data(&d, 0), sizeof(back));
	memcpy(shadow + 16 * 512, back, sizeof(back));
	assert_int_equal(one(&d, BLKDRV_T_GET_ID, 0, 20), BLKDRV_S_OK);
	assert_memory_equal(blkdrv_data(&d, 0), "domus-blk-0", 12);
	blkdrv_close(&d);
}

/* Random writes and reads, all slots in flight at once, checked against a copy. */
static void test_many_in_flight(void **state)
{
	struct blkdrv d;
	uint64_t sector[SLOTS];
	uint32_t len[SLOTS];
	bool wrote[SLOTS];

	open_drv(&d, sock_a);
	for (int round = 0; round < 20; round++) {
		unsigned sectors_per = 65536 / 512;
		completed = 0;
		for (unsigned s = 0; s < SLOTS; s++) {
			/* Each slot in its own stretch of the disk, so no two overlap in a round. */
			unsigned stretch = DISK_BYTES / 512 / SLOTS;
			len[s] = (uint32_t)(512 * (1 + random() % (stretch < sectors_per ? stretch : sectors_per)));
			sector[s] = s * stretch + (uint64_t)(random() % (stretch - len[s] / 512 + 1));
			wrote[s] = random() % 2;
			if (wrote[s]) {
				for (uint32_t i = 0; i < len[s]; i++)
					blkdrv_data(&d, s)[i] = (uint8_t)random();
				memcpy(shadow + sector[s] * 512, blkdrv_data(&d, s), len[s]);
			}
			memset(status_of + s, BLKDRV_STATUS_NONE, 1);
			assert_int_equal(blkdrv_submit(&d, s, wrote[s] ? BLKDRV_T_OUT : BLKDRV_T_IN, sector[s], len[s]), 0);
		}
		assert_int_equal(blkdrv_kick(&d), 0);
		for (int i = 0; i < 100 && completed < SLOTS; i++)
			assert_true(blkdrv_reap(&d, 100, on_done, NULL) >= 0);
		assert_int_equal(completed, SLOTS);
		for (unsigned s = 0; s < SLOTS; s++) {
			assert_int_equal(status_of[s], BLKDRV_S_OK);
			if (!wrote[s])
				assert_memory_equal(blkdrv_data(&d, s), shadow + sector[s] * 512, len[s]);
		}
	}
	/* And the whole disk, read back. */
	for (unsigned off = 0; off < DISK_BYTES; off += 65536) {
		assert_int_equal(one(&d, BLKDRV_T_IN, off / 512, 65536), BLKDRV_S_OK);
		assert_memory_equal(blkdrv_data(&d, 0), shadow + off, 65536);
	}
	blkdrv_close(&d);
}

static void test_bad_requests(void **state)
{
	struct blkdrv d, ro;
	struct virtq_desc *desc;
	uint64_t seg[2];

	open_drv(&d, sock_a);
	/* Past the end, across the end, far past it, not whole sectors, an unknown type. */
	assert_int_equal(one(&d, BLKDRV_T_IN, d.capacity, 512), BLKDRV_S_IOERR);
	assert_int_equal(one(&d, BLKDRV_T_IN, d.capacity - 4, 4096), BLKDRV_S_IOERR);
	assert_int_equal(one(&d, BLKDRV_T_OUT, UINT64_MAX / 2, 512), BLKDRV_S_IOERR);
	assert_int_equal(one(&d, BLKDRV_T_IN, 0, 1000), BLKDRV_S_IOERR);
	assert_int_equal(one(&d, 99, 0, 512), BLKDRV_S_UNSUPP);
	/* A header shorter than a header. */
	desc = blkdrv_desc(&d);
	desc[0] = (struct virtq_desc){blkdrv_header_gpa(0), 8, VIRTQ_DESC_F_NEXT, 1};
	desc[1] = (struct virtq_desc){blkdrv_status_gpa(0), 1, VIRTQ_DESC_F_WRITE, 0};
	completed = 0;
	blkdrv_submit_head(&d, 0);
	blkdrv_kick(&d);
	for (int i = 0; i < 50 && !completed; i++)
		blkdrv_reap(&d, 100, on_done, NULL);
	assert_int_equal(status_of[0], BLKDRV_S_IOERR);
	/* Discard: the unmap flag is for write-zeroes; past the end is an error; a good one zeroes. */
	seg[0] = 64;
	seg[1] = 8 | (1ULL << 32);
	memcpy(blkdrv_data(&d, 0), seg, sizeof(seg));
	assert_int_equal(one(&d, BLKDRV_T_DISCARD, 0, sizeof(seg)), BLKDRV_S_UNSUPP);
	seg[0] = d.capacity - 4;
	seg[1] = 8;
	memcpy(blkdrv_data(&d, 0), seg, sizeof(seg));
	assert_int_equal(one(&d, BLKDRV_T_DISCARD, 0, sizeof(seg)), BLKDRV_S_IOERR);
	seg[0] = 128;
	seg[1] = 256;
	memcpy(blkdrv_data(&d, 0), seg, sizeof(seg));
	assert_int_equal(one(&d, BLKDRV_T_DISCARD, 0, sizeof(seg)), BLKDRV_S_OK);
	memset(shadow + 128 * 512, 0, 256 * 512);
	assert_int_equal(one(&d, BLKDRV_T_IN, 128, 65536), BLKDRV_S_OK);
	assert_memory_equal(blkdrv_data(&d, 0), shadow + 128 * 512, 65536);
	/* After all that, plain requests are served as ever. */
	assert_int_equal(one(&d, BLKDRV_T_IN, 0, 4096), BLKDRV_S_OK);
	assert_memory_equal(blkdrv_data(&d, 0), shadow, 4096);
	/* The read-only disk refuses writes and discards, and reads. */
	open_drv(&ro, sock_b);
	assert_int_equal(one(&ro, BLKDRV_T_OUT, 0, 512), BLKDRV_S_IOERR);
	assert_int_equal(one(&ro, BLKDRV_T_IN, 0, 512), BLKDRV_S_OK);
	blkdrv_close(&ro);
	blkdrv_close(&d);
}

/* One front-end that breaks the rules loses its connection or its queue; the other disk goes on. */
static void test_hostile_frontend_isolated(void **state)
{
	struct blkdrv good, bad;
	struct virtq_desc *desc;
	int fd;
	char junk[64];

	open_drv(&good, sock_b);
	/* Garbage where a vhost-user message belongs. */
	fd = unix_connect(sock_a, SOCK_STREAM);
	assert_true(fd >= 0);
	memset(junk, 0x7f, sizeof(junk));
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	assert_int_equal(one(&good, BLKDRV_T_IN, 0, 4096), BLKDRV_S_OK);
	{
		/* Dropped: end of stream, or a reset since the junk was never read. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_true(read(fd, junk, sizeof(junk)) <= 0);
	}
	close(fd);
	/* Half a message (a header promising a payload that never comes) holds nobody for long. */
	fd = unix_connect(sock_a, SOCK_STREAM);
	assert_true(fd >= 0);
	{
		uint32_t hdr[3] = {2 /* SET_FEATURES */, 1, 8};
		assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	}
	assert_int_equal(one(&good, BLKDRV_T_IN, 16, 4096), BLKDRV_S_OK);
	close(fd);
	/* A descriptor pointing outside the shared memory: that queue stops, nothing else. */
	open_drv(&bad, sock_a);
	desc = blkdrv_desc(&bad);
	desc[0] = (struct virtq_desc){blkdrv_header_gpa(0), 16, VIRTQ_DESC_F_NEXT, 1};
	desc[1] = (struct virtq_desc){1ULL << 40, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2};
	desc[2] = (struct virtq_desc){blkdrv_status_gpa(0), 1, VIRTQ_DESC_F_WRITE, 0};
	completed = 0;
	blkdrv_submit_head(&bad, 0);
	blkdrv_kick(&bad);
	assert_int_equal(blkdrv_reap(&bad, 300, on_done, NULL), 0);
	assert_int_equal(one(&good, BLKDRV_T_IN, 8, 4096), BLKDRV_S_OK);
	assert_memory_equal(blkdrv_data(&good, 0), initial + 8 * 512, 4096);
	blkdrv_close(&bad);
	/* The disk whose front-end misbehaved serves the next one. */
	open_drv(&bad, sock_a);
	assert_int_equal(one(&bad, BLKDRV_T_IN, 0, 512), BLKDRV_S_OK);
	blkdrv_close(&bad);
	blkdrv_close(&good);
}

/* The guest's cache mode is the writeback byte of config space, and it sticks. */
static void test_cache_mode(void **state)
{
	struct blkdrv d;
	uint8_t wb = 0, cfg[60];

	open_drv(&d, sock_a);
	assert_int_equal(d.config[32], 1);
	assert_int_equal(vhost_frontend_set_config(&d.fe, 32, &wb, 1, err, sizeof(err)), 0);
	assert_int_equal(vhost_frontend_get_config(&d.fe, cfg, sizeof(cfg), err, sizeof(err)), 0);
	assert_int_equal(cfg[32], 0);
	memset(blkdrv_data(&d, 0), 0x3c, 4096);
	assert_int_equal(one(&d, BLKDRV_T_OUT, 32, 4096), BLKDRV_S_OK);
	memset(shadow + 32 * 512, 0x3c, 4096);
	blkdrv_close(&d);
}

/* A raw image cut short under domus-blk is not served to the next front-end. */
static void test_size_changed(void **state)
{
	struct blkdrv d;

	assert_int_equal(truncate(path_a, DISK_BYTES / 2), 0);
	assert_true(blkdrv_open(&d, sock_a, FEATURES, 256, SLOTS, 65536, err, sizeof(err)) < 0);
	assert_int_equal(truncate(path_a, DISK_BYTES), 0);
	open_drv(&d, sock_a);
	blkdrv_close(&d);
}

/* ---- the shared read cache, through the control socket ---- */

#define BASE_BYTES (4u << 20)
#define CACHE_DISKS 5

static char cdir[64];
static pid_t cache_pid;
static int ctl = -1;
static uint8_t base[BASE_BYTES];
static struct blkctl_disk cdisks[CACHE_DISKS];
static unsigned ncdisks;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

/* Serves image (in cdir) as disk id on cdir/ID.sock. */
static void cache_add(const char *id, const char *image, bool qcow2, bool readonly, bool direct)
{
	struct disk_config dc = {.qcow2 = qcow2, .readonly = readonly, .direct = direct};
	char sock[128];

	assert_true(ncdisks < CACHE_DISKS);
	snprintf(dc.path, sizeof(dc.path), "%s/%s", cdir, image);
	snprintf(sock, sizeof(sock), "%s/%s.sock", cdir, id);
	if (blkctl_disk_open(&cdisks[ncdisks], id, &dc, sock, -1, 0, NULL, err, sizeof(err)) < 0 ||
	    blkctl_add(ctl, &cdisks[ncdisks], err, sizeof(err)) < 0)
		fail_msg("adding %s: %s", id, err);
	ncdisks++;
}

static void cache_stats(struct blk_cache_stats *s)
{
	if (blkctl_cache_stats(ctl, s, err, sizeof(err)) < 0)
		fail_msg("cache-stats: %s", err);
}

static void cache_limit(uint64_t bytes)
{
	if (blkctl_cache_limit(ctl, bytes, err, sizeof(err)) < 0)
		fail_msg("cache-limit: %s", err);
}

static void open_id(struct blkdrv *d, const char *id)
{
	char sock[128];

	snprintf(sock, sizeof(sock), "%s/%s.sock", cdir, id);
	open_drv(d, sock);
}

/* Reads [off, off+len) through d in requests of chunk bytes and compares it with want. */
static void read_check(struct blkdrv *d, uint64_t off, uint64_t len, uint32_t chunk, const uint8_t *want)
{
	for (uint64_t p = off; p < off + len; p += chunk) {
		uint32_t n = off + len - p < chunk ? (uint32_t)(off + len - p) : chunk;
		assert_int_equal(one(d, BLKDRV_T_IN, p / 512, n), BLKDRV_S_OK);
		if (memcmp(blkdrv_data(d, 0), want + (p - off), n))
			fail_msg("wrong data at byte %llu", (unsigned long long)p);
	}
}

/*
 * A QoS group is scheduled by one worker: o2 (served by the other worker,
 * connected and with reads behind it) joins o1's group and moves, with
 * its connection, to o1's worker; both go on reading right, and the
 * group's counters see every request of both. A reservation is admitted
 * against the disk's whole time, whichever worker holds the other groups.
 */
static void test_qos_group_across_workers(void **state)
{
	struct blkdrv a, b;
	struct blk_sched_stats st;
	int met;

	open_id(&a, "o3");
	open_id(&b, "o2");
	read_check(&a, 0, 4 * 65536, 65536, base);
	read_check(&b, 0, 4 * 65536, 65536, base);
	/*
	 * 30000 IOPS at the default 20 us each is 60% of the disk's time (90%
	 * may be reserved): o2's group on its worker takes it; o1's on the
	 * other worker cannot have as much again, but what is left, yes.
	 */
	if (blkctl_qos(ctl, "o2", "r2", "reserve-iops=30000", err, sizeof(err)) < 0)
		fail_msg("qos o2: %s", err);
	assert_int_equal(blkctl_qos(ctl, "o1", "r1", "reserve-iops=30000", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "other groups hold"));
	if (blkctl_qos(ctl, "o1", "r1", "reserve-iops=10000", err, sizeof(err)) < 0)
		fail_msg("qos o1: %s", err);
	if (blkctl_qos(ctl, "o3", "dom", "weight=200", err, sizeof(err)) < 0 ||
	    blkctl_qos(ctl, "o2", "dom", "weight=200", err, sizeof(err)) < 0)
		fail_msg("qos: %s", err);
	read_check(&b, 8 * 65536, 8 * 65536, 65536, base + 8 * 65536);
	read_check(&a, 8 * 65536, 4 * 65536, 65536, base + 8 * 65536);
	if (blkctl_qos_stats(ctl, "dom", &st, &met, err, sizeof(err)) < 0)
		fail_msg("qos-stats: %s", err);
	assert_int_equal(st.served_ops, 12);
	blkdrv_close(&a);
	blkdrv_close(&b);
}

static int cache_setup(void **state)
{
	int sp[2];

	snprintf(cdir, sizeof(cdir), "/tmp/domus-blk-cache.XXXXXX");
	assert_non_null(mkdtemp(cdir));
	srandom(11);
	for (size_t i = 0; i < sizeof(base); i++)
		base[i] = (uint8_t)random();
	{
		char path[128];
		FILE *f;
		snprintf(path, sizeof(path), "%s/base.raw", cdir);
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(base, 1, sizeof(base), f), sizeof(base));
		fclose(f);
	}
	sh("cd %s && cp base.raw shared.raw && qemu-img convert -q -f raw -O qcow2 base.raw base.qcow2 && "
	   "for o in o1 o2 o3; do qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 $o.qcow2; done", cdir);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	cache_pid = fork();
	assert_true(cache_pid >= 0);
	if (cache_pid == 0) {
		dup2(sp[1], 3);
		/* Two workers: o1 and o3 on one, o2 on the other, sharing the one cache. */
		execl(getenv("DOMUS_BLK"), "domus-blk", "--quiet", "--control-fd", "3",
		      "--cache-mib", "16", "--threads", "2", (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	ctl = sp[0];
	cache_add("o1", "o1.qcow2", true, false, false);
	cache_add("o2", "o2.qcow2", true, false, false);
	cache_add("o3", "o3.qcow2", true, false, true); /* cache=none */
	return 0;
}

static int cache_teardown(void **state)
{
	int st;

	close(ctl); /* domus-blk ends with its supervisor */
	waitpid(cache_pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (unsigned i = 0; i < ncdisks; i++)
		blkctl_disk_close(&cdisks[i], true);
	sh("rm -rf %s", cdir);
	return 0;
}

/* The second overlay reads what the first brought in: hits, and the base's bytes. */
static void test_cache_shared_base(void **state)
{
	struct blkdrv a, b, c;
	struct blk_cache_stats s0, s1, s2;

	cache_stats(&s0);
	assert_int_equal(s0.limit, 16u << 20);
	open_id(&a, "o1");
	read_check(&a, 0, BASE_BYTES, 65536, base);
	cache_stats(&s1);
	assert_true(s1.misses > s0.misses);
	assert_true(s1.size >= BASE_BYTES);
	assert_int_equal(s1.insertions - s0.insertions, BASE_BYTES / BLK_CACHE_BLOCK);
	open_id(&b, "o2");
	read_check(&b, 0, BASE_BYTES, 65536, base);
	/* Pieces that do not fit the blocks: inside one, across two, odd sizes. */
	read_check(&b, 3 * 512, 4096, 4096, base + 3 * 512);
	read_check(&b, 65536 - 512, 8192, 8192, base + 65536 - 512);
	read_check(&b, 1000 * 512, 65536, 65536, base + 1000 * 512);
	cache_stats(&s2);
	assert_int_equal(s2.hit_bytes - s1.hit_bytes, BASE_BYTES + 4096 + 8192 + 65536);
	assert_int_equal(s2.misses, s1.misses);
	assert_int_equal(s2.insertions, s1.insertions);
	/* cache=none: the same blocks serve it. */
	open_id(&c, "o3");
	read_check(&c, 0, BASE_BYTES, 32768, base);
	cache_stats(&s1);
	assert_int_equal(s1.hit_bytes - s2.hit_bytes, BASE_BYTES);
	blkdrv_close(&c);
	blkdrv_close(&b);
	blkdrv_close(&a);
}

/* What one overlay writes lands in the overlay; the other, and the base, never see it. */
static void test_cache_overlay_write(void **state)
{
	static uint8_t mine[256 * 1024];
	struct blkdrv a, b;
	uint8_t file[4096];

	open_id(&a, "o1");
	open_id(&b, "o2");
	read_check(&b, 0, sizeof(mine), 65536, base); /* the range is in the cache */
	memset(mine, 0xd7, sizeof(mine));
	for (unsigned off = 0; off < sizeof(mine); off += 65536) {
		memcpy(blkdrv_data(&a, 0), mine + off, 65536);
		assert_int_equal(one(&a, BLKDRV_T_OUT, off / 512, 65536), BLKDRV_S_OK);
	}
	assert_int_equal(one(&a, BLKDRV_T_FLUSH, 0, 0), BLKDRV_S_OK);
	read_check(&a, 0, sizeof(mine), 65536, mine);
	read_check(&b, 0, sizeof(mine), 65536, base);
	read_check(&b, 0, sizeof(mine), 4096, base);
	/* A write of part of a cluster copies the rest from the base: both halves right. */
	memset(blkdrv_data(&a, 0), 0x11, 4096);
	assert_int_equal(one(&a, BLKDRV_T_OUT, (1u << 20) / 512, 4096), BLKDRV_S_OK);
	memcpy(file, blkdrv_data(&a, 0), sizeof(file));
	assert_int_equal(one(&a, BLKDRV_T_IN, (1u << 20) / 512, 65536), BLKDRV_S_OK);
	assert_memory_equal(blkdrv_data(&a, 0), file, 4096);
	assert_memory_equal(blkdrv_data(&a, 0) + 4096, base + (1u << 20) + 4096, 65536 - 4096);
	read_check(&b, 1u << 20, 65536, 65536, base + (1u << 20));
	/* The base image holds what it held. */
	sh("cd %s && qemu-img convert -q -O raw base.qcow2 base.check && cmp -s base.check base.raw", cdir);
	blkdrv_close(&b);
	blkdrv_close(&a);
}

/* A file attached read-only is cached; once a disk writes it, readers see the writes. */
static void test_cache_writer_stops_caching(void **state)
{
	static uint8_t now[1u << 20];
	struct blkdrv ro, rw;
	struct blk_cache_stats s0, s1;

	cache_add("r1", "shared.raw", false, true, false);
	open_id(&ro, "r1");
	read_check(&ro, 0, sizeof(now), 65536, base);
	cache_stats(&s0);
	read_check(&ro, 0, sizeof(now), 65536, base);
	cache_stats(&s1);
	assert_int_equal(s1.hit_bytes - s0.hit_bytes, sizeof(now));
	cache_add("w1", "shared.raw", false, false, false);
	open_id(&rw, "w1");
	memcpy(now, base, sizeof(now));
	memset(now + 8192, 0x99, 65536);
	memcpy(blkdrv_data(&rw, 0), now + 8192, 65536);
	assert_int_equal(one(&rw, BLKDRV_T_OUT, 8192 / 512, 65536), BLKDRV_S_OK);
	read_check(&ro, 0, sizeof(now), 65536, now);
	cache_stats(&s0);
	assert_int_equal(s0.hit_bytes, s1.hit_bytes);
	blkdrv_close(&rw);
	blkdrv_close(&ro);
}

static long anon_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* A limit of zero: the memory goes back, reads go to the files and are right. */
static void test_cache_zero_limit(void **state)
{
	struct blkdrv b;
	struct blk_cache_stats s0, s1;
	long full, after;

	open_id(&b, "o2");
	read_check(&b, 0, BASE_BYTES, 65536, base);
	cache_stats(&s0);
	assert_true(s0.size >= BASE_BYTES);
	full = anon_kib(cache_pid);
	cache_limit(0);
	cache_stats(&s0);
	assert_int_equal(s0.size, 0);
	assert_int_equal(s0.limit, 0);
	after = anon_kib(cache_pid);
	if (full - after < (long)BASE_BYTES / 1024 * 3 / 4)
		fail_msg("domus-blk's anonymous memory went from %ld to %ld KiB", full, after);
	read_check(&b, 0, BASE_BYTES, 65536, base);
	read_check(&b, 512, 4096, 4096, base + 512);
	cache_stats(&s1);
	assert_int_equal(s1.hit_bytes, s0.hit_bytes);
	assert_int_equal(s1.size, 0);
	cache_limit(16u << 20);
	blkdrv_close(&b);
}

/* Limits changed while many reads (hits and misses) are in flight: every read right. */
static void test_cache_limit_in_flight(void **state)
{
	static const uint64_t limits[] = {0, BLK_CACHE_BLOCK, 3 * BLK_CACHE_BLOCK, 16u << 20, 1u << 20};
	struct blkdrv b;
	uint64_t sector[SLOTS];
	uint32_t len[SLOTS];

	open_id(&b, "o3");
	cache_limit(1u << 20);
	for (int round = 0; round < 30; round++) {
		completed = 0;
		for (unsigned s = 0; s < SLOTS; s++) {
			len[s] = (uint32_t)(512 * (1 + random() % 128));
			sector[s] = (uint64_t)random() % (BASE_BYTES / 512 - len[s] / 512 + 1);
			memset(status_of + s, BLKDRV_STATUS_NONE, 1);
			assert_int_equal(blkdrv_submit(&b, s, BLKDRV_T_IN, sector[s], len[s]), 0);
		}
		assert_int_equal(blkdrv_kick(&b), 0);
		cache_limit(limits[round % 5]);
		for (int i = 0; i < 100 && completed < SLOTS; i++)
			assert_true(blkdrv_reap(&b, 100, on_done, NULL) >= 0);
		assert_int_equal(completed, SLOTS);
		for (unsigned s = 0; s < SLOTS; s++) {
			assert_int_equal(status_of[s], BLKDRV_S_OK);
			if (memcmp(blkdrv_data(&b, s), base + sector[s] * 512, len[s]))
				fail_msg("round %d slot %u: wrong data", round, s);
		}
	}
	{
		struct blk_cache_stats s;
		cache_stats(&s);
		assert_true(s.size <= s.limit);
	}
	cache_limit(16u << 20);
	blkdrv_close(&b);
}

/* Bad cache messages get an error and change nothing. */
static void test_cache_bad_messages(void **state)
{
	static const char *bad[] = {"cache-limit\nlots", "cache-limit\n-1", "cache-limit\n",
				    "cache-limit\n99999999999999999999999", "cache-stats\nextra"};
	struct blk_cache_stats s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char reply[600];
		ssize_t n;
		unsigned nfds;
		int fds[UNIX_MAX_FDS];

		assert_int_equal(unix_send_fds(ctl, bad[i], strlen(bad[i]), NULL, 0), 0);
		n = unix_recv_fds(ctl, reply, sizeof(reply) - 1, fds, UNIX_MAX_FDS, &nfds);
		assert_true(n > 0);
		reply[n] = 0;
		if (strncmp(reply, "error ", 6))
			fail_msg("'%s' got '%s'", bad[i], reply);
	}
	cache_stats(&s);
	assert_int_equal(s.limit, 16u << 20);
}

/* Voluntary context switches of each of pid's worker threads (named blk-worker-N). */
static unsigned worker_switches(pid_t pid, unsigned long *out, unsigned max)
{
	char path[300], line[256];
	unsigned n = 0;
	FILE *f;
	DIR *tasks;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	assert_non_null(tasks = opendir(path));
	while ((e = readdir(tasks)) && n < max) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		line[0] = 0;
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		if (strncmp(line, "blk-worker-", 11))
			continue; /* the main thread, or io_uring's own workers */
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %lu", &out[n]) == 1)
				n++;
		fclose(f);
	}
	closedir(tasks);
	return n;
}

/*
 * --threads 2: the two disks go to the two workers, which serve them at
 * once (both drivers keep requests in flight together, each read and write
 * checked), and each worker did its share of the waking up: two worker
 * threads, both busy, not one doing everything.
 */
static void test_two_workers_two_disks(void **state)
{
	struct blkdrv a, b;
	unsigned long before[4], after[4];
	unsigned half = SLOTS / 2, stretch = DISK_BYTES / 512 / half;
	uint64_t sector[SLOTS / 2];
	bool wrote[SLOTS / 2];

	assert_int_equal(worker_switches(blk_pid, before, 4), 2);
	open_drv(&a, sock_a);
	open_drv(&b, sock_b);
	for (int round = 0; round < 200; round++) {
		/* Slots 0..half-1 on a (read-write), half.. on b (read-only): statuses apart. */
		for (unsigned s = 0; s < half; s++) {
			sector[s] = s * stretch + (uint64_t)(random() % (stretch - 8));
			wrote[s] = random() % 2;
			if (wrote[s]) {
				for (uint32_t i = 0; i < 4096; i++)
					blkdrv_data(&a, s)[i] = (uint8_t)random();
				memcpy(shadow + sector[s] * 512, blkdrv_data(&a, s), 4096);
			}
			memset(blkdrv_data(&b, half + s), 0, 4096);
			status_of[s] = status_of[half + s] = BLKDRV_STATUS_NONE;
			assert_int_equal(blkdrv_submit(&a, s, wrote[s] ? BLKDRV_T_OUT : BLKDRV_T_IN,
						       sector[s], 4096), 0);
			assert_int_equal(blkdrv_submit(&b, half + s, BLKDRV_T_IN, sector[s], 4096), 0);
		}
		assert_int_equal(blkdrv_kick(&a), 0);
		assert_int_equal(blkdrv_kick(&b), 0);
		completed = 0;
		for (int i = 0; i < 400 && completed < SLOTS; i++) {
			assert_true(blkdrv_reap(&a, 5, on_done, NULL) >= 0);
			assert_true(blkdrv_reap(&b, 5, on_done, NULL) >= 0);
		}
		assert_int_equal(completed, SLOTS);
		for (unsigned s = 0; s < half; s++) {
			assert_int_equal(status_of[s], BLKDRV_S_OK);
			assert_int_equal(status_of[half + s], BLKDRV_S_OK);
			if (!wrote[s])
				assert_memory_equal(blkdrv_data(&a, s), shadow + sector[s] * 512, 4096);
			/* b is read-only, never written: every read is its initial contents. */
			assert_memory_equal(blkdrv_data(&b, half + s), initial + sector[s] * 512, 4096);
		}
	}
	assert_int_equal(worker_switches(blk_pid, after, 4), 2);
	/* 200 rounds: each worker woke for many of them (a worker with no disk: never). */
	assert_true(after[0] - before[0] >= 50);
	assert_true(after[1] - before[1] >= 50);
	blkdrv_close(&a);
	blkdrv_close(&b);
}

static int threads_setup(void **state)
{
	two_workers = true;
	return setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_write_flush_id),
		cmocka_unit_test(test_many_in_flight),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_hostile_frontend_isolated),
		cmocka_unit_test(test_cache_mode),
		cmocka_unit_test(test_size_changed),
	};

	const struct CMUnitTest cache_tests[] = {
		cmocka_unit_test(test_cache_shared_base),
		cmocka_unit_test(test_cache_overlay_write),
		cmocka_unit_test(test_cache_writer_stops_caching),
		cmocka_unit_test(test_cache_zero_limit),
		cmocka_unit_test(test_cache_limit_in_flight),
		cmocka_unit_test(test_cache_bad_messages),
		cmocka_unit_test(test_qos_group_across_workers),
	};
	const struct CMUnitTest thread_tests[] = {
		cmocka_unit_test(test_two_workers_two_disks),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests(tests, setup, teardown);
	failed += cmocka_run_group_tests_name("cache", cache_tests, cache_setup, cache_teardown);
	return failed + cmocka_run_group_tests_name("threads", thread_tests, threads_setup, teardown);
}
