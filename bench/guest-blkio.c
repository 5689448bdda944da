/*
 * guest-blkio: the guest's side of bench/blk-guest-compare, built static and
 * put in the guest's initramfs. Every transfer is O_DIRECT on the disk, so
 * the guest's page cache plays no part.
 *
 *   guest-blkio randread DEV SECONDS DEPTH   4 KiB random reads, DEPTH threads
 *   guest-blkio seqread DEV SECONDS          1 MiB sequential reads
 *   guest-blkio seqwrite DEV SECONDS         1 MiB sequential writes
 *   guest-blkio gaps DEV SECONDS             4 KiB reads one after another; every
 *                                            gap over 20 ms between completions
 *   guest-blkio latread DEV SECONDS PAUSE_MS 4 KiB random reads one at a time, a pause
 *                                            between them: the latency's p50 and p99
 *   guest-blkio randwrite DEV SECONDS DEPTH  64 KiB random writes, DEPTH threads
 *
 * Prints "RESULT <test> <value> <unit>" lines, and "GAP <ms>" for gaps.
 */
#ifndef _GNU_SOURCE /* the build defines it; gcc alone, in bench/blk-guest-compare, does not */
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BLKGETSIZE64 _IOR(0x12, 114, size_t)

static const char *dev;
static double seconds;
static uint64_t disk_bytes;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_dev(int flags)
{
	int fd = open(dev, flags | O_DIRECT);

	if (fd < 0) {
		fprintf(stderr, "guest-blkio: %s: %s\n", dev, strerror(errno));
		exit(1);
	}
	return fd;
}

static void *aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len)) {
		fprintf(stderr, "guest-blkio: out of memory\n");
		exit(1);
	}
	memset(p, 0x5a, len);
	return p;
}

static void *random_reader(void *arg)
{
	unsigned long long *count = arg;
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t blocks = disk_bytes / 4096;
	void *buf = aligned(4096);
	int fd = open_dev(O_RDONLY);
	double end = now() + seconds;

	while (now() < end) {
		uint64_t b = ((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) % blocks;
		if (pread(fd, buf, 4096, (off_t)(b * 4096)) != 4096) {
			fprintf(stderr, "guest-blkio: read: %s\n", strerror(errno));
			exit(1);
		}
		(*count)++;
	}
	close(fd);
	return NULL;
}

static void randread(int depth)
{
	pthread_t t[64];
	unsigned long long counts[64] = {0}, total = 0;
	double start = now();

	for (int i = 0; i < depth; i++)
		pthread_create(&t[i], NULL, random_reader, &counts[i]);
	for (int i = 0; i < depth; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	printf("RESULT randread-qd%d %.1f iops\n", depth, (double)total / (now() - start));
}

static void sequential(int write)
{
	const size_t bs = 1 << 20;
	void *buf = aligned(bs);
	int fd = open_dev(write ? O_WRONLY : O_RDONLY);
	double start = now(), end = start + seconds;
	unsigned long long bytes = 0;
	off_t off = 0;

	while (now() < end) {
		ssize_t n;
		if ((uint64_t)off + bs > disk_bytes)
			off = 0;
		n = write ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off);
		if (n != (ssize_t)bs) {
			fprintf(stderr, "guest-blkio: %s: %s\n", write ? "write" : "read", strerror(errno));
			exit(1);
		}
		off += (off_t)bs;
		bytes += bs;
	}
	if (write)
		fdatasync(fd);
	close(fd);
	printf("RESULT %s %.1f MiB/s\n", write ? "seqwrite" : "seqread",
	       (double)bytes / 1048576.0 / (now() - start));
}

static void gaps(void)
{
	void *buf = aligned(4096);
	int fd = open_dev(O_RDONLY);
	double end = now() + seconds, last = now();
	unsigned long long n = 0;
	unsigned seed = 3;

	printf("GAPS-START\n");
	fflush(stdout);
	while (last < end) {
		uint64_t b = (uint64_t)rand_r(&seed) % (disk_bytes / 4096);
		double t;
		if (pread(fd, buf, 4096, (off_t)(b * 4096)) != 4096) {
			fprintf(stderr, "guest-blkio: read: %s\n", strerror(errno));
			exit(1);
		}
		t = now();
		if (t - last > 0.020)
			printf("GAP %.1f\n", (t - last) * 1000);
		last = t;
		n++;
	}
	close(fd);
	printf("RESULT gaps %llu reads\n", n);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void latread(int pause_ms)
{
	size_t max = 1 << 20, n = 0;
	double *lat = malloc(max * sizeof(*lat)), end = now() + seconds;
	void *buf = aligned(4096);
	int fd = open_dev(O_RDONLY);
	unsigned seed = 5;
	struct timespec pause = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000};

	while (lat && now() < end && n < max) {
		uint64_t b = ((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) % (disk_bytes / 4096);
		double t = now();
		if (pread(fd, buf, 4096, (off_t)(b * 4096)) != 4096) {
			fprintf(stderr, "guest-blkio: read: %s\n", strerror(errno));
			exit(1);
		}
		lat[n++] = (now() - t) * 1e6;
		if (pause_ms)
			nanosleep(&pause, NULL);
	}
	close(fd);
	if (!n)
		return;
	qsort(lat, n, sizeof(*lat), compare_double);
	printf("RESULT latread-p50 %.0f us\nRESULT latread-p99 %.0f us\nRESULT latread-reads %zu reads\n",
	       lat[n / 2], lat[n * 99 / 100], n);
	free(lat);
}

static void *random_writer(void *arg)
{
	unsigned long long *bytes = arg;
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t chunks = disk_bytes / 65536;
	void *buf = aligned(65536);
	int fd = open_dev(O_WRONLY);
	double end = now() + seconds;

	while (now() < end) {
		uint64_t c = ((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) % chunks;
		if (pwrite(fd, buf, 65536, (off_t)(c * 65536)) != 65536) {
			fprintf(stderr, "guest-blkio: write: %s\n", strerror(errno));
			exit(1);
		}
		*bytes += 65536;
	}
	close(fd);
	return NULL;
}

static void randwrite(int depth)
{
	pthread_t t[64];
	unsigned long long bytes[64] = {0}, total = 0;
	double start = now();

	for (int i = 0; i < depth; i++)
		pthread_create(&t[i], NULL, random_writer, &bytes[i]);
	for (int i = 0; i < depth; i++) {
		pthread_join(t[i], NULL);
		total += bytes[i];
	}
	printf("RESULT randwrite-qd%d %.1f MiB/s\n", depth, (double)total / 1048576.0 / (now() - start));
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: guest-blkio randread|seqread|seqwrite|gaps|latread|randwrite DEV SECONDS "
				"[DEPTH|PAUSE_MS]\n");
		return 2;
	}
	dev = argv[2];
	seconds = atof(argv[3]);
	fd = open_dev(O_RDONLY);
	if (ioctl(fd, BLKGETSIZE64, &disk_bytes) < 0 || disk_bytes < (1 << 20)) {
		fprintf(stderr, "guest-blkio: %s: no size\n", dev);
		return 1;
	}
	close(fd);
	if (!strcmp(argv[1], "randread"))
		randread(argc > 4 ? atoi(argv[4]) > 64 ? 64 : atoi(argv[4]) : 1);
	else if (!strcmp(argv[1], "seqread"))
		sequential(0);
	else if (!strcmp(argv[1], "seqwrite"))
		sequential(1);
	else if (!strcmp(argv[1], "gaps"))
		gaps();
	else if (!strcmp(argv[1], "latread"))
		latread(argc > 4 ? atoi(argv[4]) : 0);
	else if (!strcmp(argv[1], "randwrite"))
		randwrite(argc > 4 ? atoi(argv[4]) > 64 ? 64 : atoi(argv[4]) < 1 ? 1 : atoi(argv[4]) : 1);
	else
		return 2;
	fflush(stdout);
	return 0;
}
