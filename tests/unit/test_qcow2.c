/*
 * qcow2 against Debian's qemu-img: images qemu makes are read byte for byte
 * as qemu reads them (compared through `qemu-img convert -O raw`); what we
 * write, qemu reads back and `qemu-img check` finds clean; hostile headers
 * and tables are refused with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/image.h"

static char dir[64];
static char err[512];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a shell command in the test directory; it must succeed. */
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd %s && (", dir);
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, ") >/dev/null 2>&1");
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int sh_status(const char *cmd_text)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "cd %s && %s >/dev/null 2>&1", dir, cmd_text);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint8_t *slurp(const char *name, size_t *len)
{
	char path[128];
	struct stat st;
	uint8_t *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(image_pread(fd, buf, (size_t)st.st_size, 0), 0);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static struct image *open_img(const char *name, bool readonly)
{
	char path[128];
	struct image *img = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	err[0] = 0;
	if (image_open_path(path, IMAGE_QCOW2, readonly, &img, err, sizeof(err)) < 0)
		fail_msg("open %s: %s", name, err);
	return img;
}

static int open_status(const char *name, bool readonly)
{
	char path[128];
	struct image *img = NULL;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	err[0] = 0;
	ret = image_open_path(path, IMAGE_QCOW2, readonly, &img, err, sizeof(err));
	if (ret == 0)
		image_close(img);
	return ret;
}

/* Our reading of NAME equals qemu's (qemu-img convert -O raw). */
static void assert_reads_like_qemu(const char *name)
{
	struct image *img = open_img(name, true);
	uint8_t *want, *got;
	size_t len;

	sh("qemu-img convert -O raw %s %s.raw", name, name);
	{
		char raw[96];
		snprintf(raw, sizeof(raw), "%s.raw", name);
		want = slurp(raw, &len);
	}
	assert_int_equal(img->size, len);
	got = malloc(len);
	assert_non_null(got);
	assert_int_equal(image_read(img, got, len, 0), 0);
	assert_memory_equal(got, want, len);
	/* And in odd pieces across cluster boundaries. */
	for (size_t off = 0; off + 7777 <= len; off += 1234567) {
		assert_int_equal(image_read(img, got, 7777, off), 0);
		assert_memory_equal(got, want + off, 7777);
	}
	free(got);
	free(want);
	image_close(img);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/domus-qcow2-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_read_qemu_images(void **state)
{
	sh("qemu-img create -f qcow2 a.qcow2 24M && "
	   "qemu-io -f qcow2 -c 'write -P 0xab 0 64k' -c 'write -P 0x11 1M 4k' "
	   "-c 'write -P 0x22 5000k 100k' -c 'write -z 10M 128k' -c 'write -P 0x33 24572k 4k' a.qcow2");
	assert_reads_like_qemu("a.qcow2");
	/* Version 2, small clusters, an odd size. */
	sh("qemu-img create -f qcow2 -o compat=0.10,cluster_size=512 b.qcow2 3333333 && "
	   "qemu-io -f qcow2 -c 'write -P 0x5a 1000 70000' -c 'write -P 0x6b 3300000 33333' b.qcow2");
	assert_reads_like_qemu("b.qcow2");
	/* Compressed clusters. */
	sh("head -c 8M /dev/urandom | base64 > c.src && truncate -s 8M c.src && "
	   "qemu-img convert -c -f raw -O qcow2 c.src c.qcow2");
	assert_reads_like_qemu("c.qcow2");
}

static void test_read_backing_chain(void **state)
{
	sh("qemu-img create -f qcow2 base.qcow2 16M && "
	   "qemu-io -f qcow2 -c 'write -P 0x01 0 8M' base.qcow2 && "
	   "qemu-img create -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 && "
	   "qemu-io -f qcow2 -c 'write -P 0x02 1M 1M' -c 'write -z 3M 64k' mid.qcow2 && "
	   "qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 20M && "
	   "qemu-io -f qcow2 -c 'write -P 0x03 1536k 8k' -c 'write -P 0x04 18M 64k' top.qcow2");
	assert_reads_like_qemu("top.qcow2");
	/* A raw base image. */
	sh("head -c 4M /dev/urandom > base.raw && "
	   "qemu-img create -f qcow2 -b base.raw -F raw over-raw.qcow2 && "
	   "qemu-io -f qcow2 -c 'write -P 0x7e 4095 2' over-raw.qcow2");
	assert_reads_like_qemu("over-raw.qcow2");
}

/* A deterministic sequence of writes; the expected image kept beside. */
static void random_writes(struct image *img, uint8_t *expect, unsigned n, uint32_t seed)
{
	uint8_t *buf = malloc(300000);

	assert_non_null(buf);
	for (unsigned i = 0; i < n; i++) {
		uint64_t off, len;

		seed = seed * 1103515245 + 12345;
		len = 1 + (seed >> 8) % 200000;
		seed = seed * 1103515245 + 12345;
		off = ((uint64_t)seed << 16 ^ seed) % (img->size - len);
		if (i % 3 == 0) { /* sector-aligned, as a guest writes */
			off &= ~511ULL;
			len = (len + 511) & ~511ULL;
			if (off + len > img->size)
				len = img->size - off;
		}
		memset(buf, (int)(i * 37 + 1), len);
		buf[0] = (uint8_t)i;
		assert_int_equal(image_write(img, buf, len, off), 0);
		memcpy(expect + off, buf, len);
	}
	free(buf);
}

static void check_written(const char *name, const uint8_t *expect, size_t len)
{
	char cmd[128], raw[96];
	uint8_t *got;
	size_t got_len;

	snprintf(cmd, sizeof(cmd), "qemu-img check -f qcow2 %s", name);
	if (sh_status(cmd) != 0)
		fail_msg("qemu-img check %s is not clean", name);
	sh("qemu-img convert -O raw %s %s.raw", name, name);
	snprintf(raw, sizeof(raw), "%s.raw", name);
	got = slurp(raw, &got_len);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, expect, len);
	free(got);
}

static void write_and_check(const char *name, unsigned n, uint32_t seed)
{
	struct image *img = open_img(name, false);
	size_t len = img->size;
	uint8_t *expect = malloc(len);

	assert_non_null(expect);
	assert_int_equal(image_read(img, expect, len, 0), 0);
	random_writes(img, expect, n, seed);
	/* What we wrote reads back through us before qemu sees it. */
	{
		uint8_t *again = malloc(len);
		assert_int_equal(image_read(img, again, len, 0), 0);
		assert_memory_equal(again, expect, len);
		free(again);
	}
	assert_int_equal(image_flush(img), 0);
	image_close(img);
	check_written(name, expect, len);
	free(expect);
}

static void test_write(void **state)
{
	sh("qemu-img create -f qcow2 w.qcow2 32M");
	write_and_check("w.qcow2", 300, 1);
	/* Written again: now into clusters that are ours. */
	write_and_check("w.qcow2", 100, 2);
	/* 1-bit refcounts and 512-byte clusters: many refcount blocks to allocate. */
	sh("qemu-img create -f qcow2 -o refcount_bits=1,cluster_size=512 r1.qcow2 8M");
	write_and_check("r1.qcow2", 200, 3);
	/* Filled front to back: every refcount block is allocated amid a data write. */
	{
		struct image *img;
		uint8_t *fill, *expect;
		sh("qemu-img create -f qcow2 -o refcount_bits=1,cluster_size=512 seq.qcow2 8M");
		img = open_img("seq.qcow2", false);
		fill = malloc(8 << 20);
		expect = malloc(8 << 20);
		for (size_t i = 0; i < (8 << 20); i++)
			expect[i] = (uint8_t)(i / 512 * 7 + 1);
		memcpy(fill, expect, 8 << 20);
		for (size_t off = 0; off < (8 << 20); off += 65536)
			assert_int_equal(image_write(img, fill + off, 65536, off), 0);
		image_close(img);
		check_written("seq.qcow2", expect, 8 << 20);
		free(fill);
		free(expect);
	}
	sh("qemu-img create -f qcow2 -o refcount_bits=64 r64.qcow2 8M");
	write_and_check("r64.qcow2", 50, 4);
	/* Over compressed clusters: copied out, decompressed, on write. */
	sh("head -c 4M /dev/urandom | base64 > z.src && truncate -s 4M z.src && "
	   "qemu-img convert -c -f raw -O qcow2 z.src z.qcow2");
	write_and_check("z.qcow2", 60, 8);
	sh("qemu-img create -f qcow2 -o compat=0.10 v2.qcow2 8M");
	write_and_check("v2.qcow2", 50, 5);
}

static void test_write_overlay_and_snapshot(void **state)
{
	uint8_t *base_before, *base_after;
	size_t len, len2;

	/* Copy-on-write over a backing file, which stays untouched. */
	sh("qemu-img create -f qcow2 b.qcow2 16M && qemu-io -f qcow2 -c 'write -P 0x42 0 16M' b.qcow2 && "
	   "qemu-img create -f qcow2 -b b.qcow2 -F qcow2 o.qcow2 && "
	   "qemu-img convert -O raw b.qcow2 b.before");
	write_and_check("o.qcow2", 200, 6);
	sh("qemu-img convert -O raw b.qcow2 b.after");
	base_before = slurp("b.before", &len);
	base_after = slurp("b.after", &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(base_before, base_after, len);
	free(base_before);
	free(base_after);

	/* Clusters shared with an internal snapshot are copied, and the snapshot keeps its data. */
	sh("qemu-img create -f qcow2 s.qcow2 8M && qemu-io -f qcow2 -c 'write -P 0x99 0 8M' s.qcow2 && "
	   "qemu-img snapshot -c snap s.qcow2 && qemu-img convert -O raw s.qcow2 s.before");
	write_and_check("s.qcow2", 100, 7);
	sh("qemu-img snapshot -a snap s.qcow2 && qemu-img convert -O raw s.qcow2 s.restored");
	base_before = slurp("s.before", &len);
	base_after = slurp("s.restored", &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(base_before, base_after, len);
	free(base_before);
	free(base_after);
}

/* Puts bytes at an offset of a file. */
static void poke(const char *name, uint64_t off, const void *bytes, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(image_pwrite(fd, bytes, n, off), 0);
	close(fd);
}

static void fresh(const char *name)
{
	sh("rm -f %s && qemu-img create -f qcow2 -o cluster_size=65536 %s 8M && "
	   "qemu-io -f qcow2 -c 'write -P 0x1 0 1M' %s", name, name, name);
}

static void expect_refused(const char *name, bool readonly, const char *words)
{
	assert_true(open_status(name, readonly) < 0);
	if (!strstr(err, words))
		fail_msg("error for %s is '%s', expected '%s'", name, err, words);
}

/* What image_map says is where image_read finds it: in the overlay, in the base, or nowhere. */
static void test_map(void **state)
{
	uint8_t want[4096], got[4096];
	struct image_extent x;
	struct image *img;

	sh("qemu-img create -q -f qcow2 base.qcow2 4M && qemu-io -c 'write -P 0x11 0 1M' base.qcow2");
	sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 4M && "
	   "qemu-io -c 'write -P 0x22 64k 64k' -c 'write -c -P 0x33 2M 64k' top.qcow2");
	img = open_img("top.qcow2", false);
	/* Written in the overlay: a plain read there; an in-place write too (the cluster is its own). */
	assert_int_equal(image_map(img, 65536 + 512, 8192, false, &x), 1);
	assert_int_equal(x.fd, img->fd);
	assert_int_equal(x.len, 8192);
	assert_int_equal(image_read(img, want, sizeof(want), 65536 + 512), 0);
	assert_int_equal(image_pread(x.fd, got, sizeof(got), x.off), 0);
	assert_memory_equal(want, got, sizeof(got));
	assert_int_equal(image_map(img, 65536, 65536 * 3, true, &x), 1);
	assert_int_equal(x.len, 65536); /* stops at the cluster's end */
	/* Only in the base: read from the base's file; a write copies on write. */
	assert_int_equal(image_map(img, 4096, 4096, false, &x), 1);
	assert_int_equal(x.fd, img->backing->fd);
	assert_int_equal(image_pread(x.fd, got, sizeof(got), x.off), 0);
	assert_int_equal(image_read(img, want, sizeof(want), 4096), 0);
	assert_memory_equal(want, got, sizeof(got));
	assert_int_equal(image_map(img, 4096, 4096, true, &x), 0);
	/* Compressed, or nowhere at all: through the image layer. */
	assert_int_equal(image_map(img, 2 << 20, 4096, false, &x), 0);
	assert_int_equal(image_map(img, 3 << 20, 4096, false, &x), 0);
	assert_int_equal(x.len, 4096);
	assert_int_equal(image_map(img, 4 << 20, 512, false, &x), -ERANGE);
	image_close(img);
}

/* A discarded cluster reads as zeros, qemu agrees, and its space is free in qemu's eyes. */
static void test_discard(void **state)
{
	static uint8_t buf[65536 * 3], zeros[65536];
	struct image *img;
	char path[128];
	int fd;

	sh("qemu-img create -q -f qcow2 d.qcow2 1M");
	img = open_img("d.qcow2", false);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(image_write(img, buf, sizeof(buf), 0), 0);
	/* The middle cluster whole, and half of the last: only the whole one goes. */
	assert_int_equal(image_discard(img, 65536, 65536 + 32768), 0);
	assert_int_equal(image_read(img, buf, sizeof(buf), 0), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_memory_equal(buf + 65536, zeros, sizeof(zeros));
	assert_int_equal(buf[2 * 65536], 0x5a);
	assert_int_equal(image_flush(img), 0);
	image_close(img);
	assert_int_equal(sh_status("qemu-img check d.qcow2"), 0);
	sh("qemu-img convert -O raw d.qcow2 d.raw && cmp -n 65536 -i 65536:0 d.raw /dev/zero");
	/* Raw: a hole, reading as zeros. */
	sh("head -c 262144 /dev/urandom > r.raw");
	snprintf(path, sizeof(path), "%s/r.raw", dir);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(image_open(fd, IMAGE_RAW, false, NULL, NULL, &img, err, sizeof(err)), 0);
	assert_int_equal(image_discard(img, 65536, 65536), 0);
	assert_int_equal(image_read(img, buf, 65536, 65536), 0);
	assert_memory_equal(buf, zeros, sizeof(zeros));
	assert_int_equal(image_discard(img, 262144 - 512, 1024), -ERANGE);
	image_close(img);
}

/* An image that changes size under us is noticed, with what changed. */
static void test_size_changed(void **state)
{
	struct image *img, *raw;
	char path[128];
	int fd;

	sh("qemu-img create -q -f qcow2 s.qcow2 1M && truncate -s 1M s.raw");
	img = open_img("s.qcow2", false);
	snprintf(path, sizeof(path), "%s/s.raw", dir);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(image_open(fd, IMAGE_RAW, false, NULL, NULL, &raw, err, sizeof(err)), 0);
	assert_int_equal(image_check(img, err, sizeof(err)), 0);
	assert_int_equal(image_check(raw, err, sizeof(err)), 0);
	sh("qemu-img resize -q s.qcow2 2M && truncate -s 512K s.raw");
	assert_int_equal(image_check(img, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "changed size"));
	assert_int_equal(image_check(raw, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "changed size"));
	/* And a read past the new end of the raw file is an error, not zeros. */
	{
		uint8_t b[512];
		assert_int_equal(image_read(raw, b, sizeof(b), 768 * 1024), -EIO);
	}
	image_close(img);
	image_close(raw);
}

static void test_hostile(void **state)
{
	static const uint8_t cb30[4] = {0, 0, 0, 30}, huge_l1[4] = {0xff, 0xff, 0xff, 0xff};
	static const uint8_t far[8] = {0, 0, 0, 0x10, 0, 0, 0, 0}, odd[8] = {0, 0, 0, 0, 0, 0, 0x12, 0x34};
	static const uint8_t feat[8] = {0, 0, 0, 0, 0, 0, 0, 0x20}, dirty[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t zero4[4] = {0}, ver9[4] = {0, 0, 0, 9}, crypt[4] = {0, 0, 0, 1};
	static const uint8_t big_size[8] = {0x7f, 0, 0, 0, 0, 0, 0, 0};
	uint8_t l1e[8];

	fresh("h.qcow2");
	assert_int_equal(open_status("h.qcow2", false), 0);
	poke("h.qcow2", 20, cb30, 4);
	expect_refused("h.qcow2", true, "cluster_bits 30");
	fresh("h.qcow2");
	poke("h.qcow2", 4, ver9, 4);
	expect_refused("h.qcow2", true, "version 9");
	fresh("h.qcow2");
	poke("h.qcow2", 32, crypt, 4);
	expect_refused("h.qcow2", true, "encrypted");
	fresh("h.qcow2");
	poke("h.qcow2", 36, huge_l1, 4);
	expect_refused("h.qcow2", true, "L1 table");
	fresh("h.qcow2");
	poke("h.qcow2", 40, far, 8);
	expect_refused("h.qcow2", true, "L1 table offset");
	fresh("h.qcow2");
	poke("h.qcow2", 48, odd, 8);
	expect_refused("h.qcow2", true, "refcount table");
	fresh("h.qcow2");
	poke("h.qcow2", 56, zero4, 4);
	expect_refused("h.qcow2", true, "refcount table");
	fresh("h.qcow2");
	poke("h.qcow2", 24, big_size, 8);
	expect_refused("h.qcow2", true, "too large");
	fresh("h.qcow2");
	poke("h.qcow2", 72, feat, 8);
	expect_refused("h.qcow2", true, "incompatible features");
	fresh("h.qcow2");
	poke("h.qcow2", 72, dirty, 8);
	expect_refused("h.qcow2", false, "dirty");
	assert_int_equal(open_status("h.qcow2", true), 0);

	/* An L1 entry pointing past the end of the file; then one with reserved bits. */
	fresh("h.qcow2");
	{
		size_t len;
		uint8_t *img = slurp("h.qcow2", &len);
		uint64_t l1_off = 0;
		for (int i = 0; i < 8; i++)
			l1_off = l1_off << 8 | img[40 + i];
		free(img);
		memcpy(l1e, (uint8_t[8]){0x80, 0, 0, 0x10, 0, 0, 0, 0}, 8);
		poke("h.qcow2", l1_off, l1e, 8);
		expect_refused("h.qcow2", true, "L1 entry 0");
		memcpy(l1e, (uint8_t[8]){0x80, 0, 0, 0, 0, 0x03, 0, 0x02}, 8);
		poke("h.qcow2", l1_off, l1e, 8);
		expect_refused("h.qcow2", true, "L1 entry 0");
	}

	/* A corrupt L2 entry is an I/O error for that read, not a wild read. */
	sh("rm -f l2.qcow2 && qemu-img create -f qcow2 l2.qcow2 8M && "
	   "qemu-io -f qcow2 -c 'write -P 0x1 0 64k' l2.qcow2");
	{
		size_t len;
		uint8_t *img = slurp("l2.qcow2", &len), buf[512];
		uint64_t l1_off = 0, l2_off = 0;
		struct image *h;
		for (int i = 0; i < 8; i++)
			l1_off = l1_off << 8 | img[40 + i];
		for (int i = 0; i < 8; i++)
			l2_off = l2_off << 8 | img[l1_off + i];
		l2_off &= 0x00fffffffffffe00ULL;
		free(img);
		poke("l2.qcow2", l2_off, far, 8);
		h = open_img("l2.qcow2", true);
		assert_int_equal(image_read(h, buf, sizeof(buf), 0), -EIO);
		assert_int_equal(image_read(h, buf, sizeof(buf), 1 << 20), 0);
		assert_int_equal(image_read(h, buf, sizeof(buf), 8 << 20), -ERANGE);
		image_close(h);
	}

	/* Truncated files. */
	sh("head -c 50 l2.qcow2 > t1.qcow2 && head -c 70000 l2.qcow2 > t2.qcow2");
	expect_refused("t1.qcow2", true, "too short");
	assert_true(open_status("t2.qcow2", true) < 0);

	/* A backing chain that loops, and one too deep. */
	sh("qemu-img create -f qcow2 loop1.qcow2 1M && qemu-img create -f qcow2 -b loop1.qcow2 -F qcow2 "
	   "loop2.qcow2 && qemu-img rebase -u -f qcow2 -b loop2.qcow2 -F qcow2 loop1.qcow2");
	expect_refused("loop2.qcow2", true, "loops");
	sh("qemu-img create -f qcow2 d0.qcow2 1M && for i in $(seq 1 20); do "
	   "qemu-img create -f qcow2 -b d$((i-1)).qcow2 -F qcow2 d$i.qcow2 || exit 1; done");
	expect_refused("d20.qcow2", true, "deeper than");
	assert_int_equal(open_status("d10.qcow2", true), 0);
	sh("qemu-img create -f qcow2 -b missing.qcow2 -F qcow2 -u orphan.qcow2 1M");
	expect_refused("orphan.qcow2", true, "missing.qcow2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_qemu_images, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_backing_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_overlay_and_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_changed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
