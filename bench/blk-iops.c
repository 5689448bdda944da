/*
 * blk-iops: drives a vhost-user-blk back-end (domus-blk) with a synthetic
 * front-end (tests/blkdriver), no VM: keeps --iodepth requests of --bs bytes
 * in flight for --seconds and prints what completed.
 *
 *   blk-iops --socket PATH [--rw randread|read|randwrite|write] [--bs BYTES]
 *            [--iodepth N] [--seconds S]
 *
 * Output: one line "requests=N seconds=S iops=X mib_per_s=Y"; any request
 * that does not complete with status OK ends the run with an error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/blkdriver/blkdriver.h"

#define FEATURES ((1ULL << 32) | (1ULL << 9))

struct run {
	struct blkdrv d;
	bool random, write;
	uint32_t bs;
	uint64_t blocks, next;
	unsigned long long done, failed;
	unsigned seed;
	unsigned inflight;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int submit(struct run *r, unsigned slot)
{
	uint64_t rnd = (uint64_t)rand_r(&r->seed) << 31 | (uint64_t)rand_r(&r->seed);
	uint64_t block = r->random ? rnd % r->blocks : r->next++ % r->blocks;

	return blkdrv_submit(&r->d, slot, r->write ? BLKDRV_T_OUT : BLKDRV_T_IN, block * (r->bs / 512),
			     r->bs);
}

static bool running;

static void completed(void *opaque, unsigned slot, uint8_t status, uint32_t len)
{
	struct run *r = opaque;

	if (status != BLKDRV_S_OK)
		r->failed++;
	if (!running) {
		r->inflight--; /* after the measured time: only drained */
		return;
	}
	r->done++;
	if (submit(r, slot) < 0)
		r->failed++;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"rw", required_argument, NULL, 'r'},
		{"bs", required_argument, NULL, 'b'},     {"iodepth", required_argument, NULL, 'q'},
		{"seconds", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
	};
	static struct run r = {.bs = 4096, .random = true, .seed = 1};
	const char *sock = NULL;
	unsigned depth = 32;
	double seconds = 10, start, end;
	char err[512];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'r':
			r.random = !strncmp(optarg, "rand", 4);
			r.write = strstr(optarg, "write") != NULL;
			if (strcmp(optarg + (r.random ? 4 : 0), r.write ? "write" : "read")) {
				fprintf(stderr, "blk-iops: --rw %s: randread, read, randwrite or write\n", optarg);
				return 2;
			}
			break;
		case 'b': r.bs = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'q': depth = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': seconds = strtod(optarg, NULL); break;
		default: goto usage;
		}
	}
	if (!sock || r.bs == 0 || r.bs % 4096 || r.bs > (1u << 20) || depth == 0 || depth > 85 ||
	    seconds <= 0)
		goto usage;
	if ((ret = blkdrv_open(&r.d, sock, FEATURES, 256, depth, r.bs, err, sizeof(err))) < 0) {
		fprintf(stderr, "blk-iops: %s\n", err);
		return 1;
	}
	r.blocks = r.d.capacity / (r.bs / 512);
	if (r.blocks == 0) {
		fprintf(stderr, "blk-iops: the disk is smaller than one block\n");
		return 1;
	}
	for (unsigned s = 0; s < depth; s++)
		memset(blkdrv_data(&r.d, s), (int)s, r.bs);
	running = true;
	for (unsigned s = 0; s < depth; s++)
		submit(&r, s);
	blkdrv_kick(&r.d);
	start = now();
	end = start + seconds;
	while (now() < end && !r.failed) {
		unsigned long long before = r.done;
		if ((ret = blkdrv_reap(&r.d, 1000, completed, &r)) < 0) {
			fprintf(stderr, "blk-iops: %s\n", strerror(-ret));
			return 1;
		}
		if (r.done != before)
			blkdrv_kick(&r.d);
		else if (ret == 0) {
			fprintf(stderr, "blk-iops: no completion for a second\n");
			return 1;
		}
	}
	end = now();
	/* Let the last ones finish so the back-end is left idle. */
	running = false;
	r.inflight = depth;
	while (r.inflight && blkdrv_reap(&r.d, 1000, completed, &r) > 0)
		;
	if (r.failed) {
		fprintf(stderr, "blk-iops: %llu requests failed\n", r.failed);
		return 1;
	}
	printf("requests=%llu seconds=%.2f iops=%.0f mib_per_s=%.1f\n", r.done, end - start,
	       (double)r.done / (end - start), (double)r.done * r.bs / (end - start) / 1048576.0);
	blkdrv_close(&r.d);
	return 0;
usage:
	fprintf(stderr, "usage: blk-iops --socket PATH [--rw randread|read|randwrite|write] [--bs BYTES]\n"
			"                [--iodepth 1-85] [--seconds S]\n");
	return 2;
}
