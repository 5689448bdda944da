/*
 * domus-blk as a front-end sees it, through tests/blkdriver (a virtio-blk
 * driver speaking vhost-user, no VM): reads and writes land in the image,
 * many requests in flight at once come back right, hostile requests get an
 * error status and the back-end goes on serving, a front-end that breaks
 * the protocol is dropped without harm to the other disk, and an image that
 * changed size is not served.
 */
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

#define DISK_BYTES (1u << 20)
#define SLOTS 64
#define FEATURES ((1ULL << 32) | (1ULL << 9) | (1ULL << 11) | (1ULL << 13))

static char dir[64], path_a[128], path_b[128], sock_a[128], sock_b[128];
static pid_t blk_pid;
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
		execl(prog, "domus-blk", "--no-sandbox", "--quiet", "--ready-fd", "3", "--disk", a,
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

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
