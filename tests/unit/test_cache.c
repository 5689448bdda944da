/*
 * The shared read cache alone (src/blk/cache.c): hits and misses, the
 * order of eviction, a limit that goes down evicting at once and giving
 * the memory back to the host (resident size falls), files told apart by
 * device and inode, a file with a writer not cached, blocks being filled
 * or copied never evicted, and the statistics' text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/cache.h"

#define B BLK_CACHE_BLOCK

/* Gets and fills block index of (dev, ino) with a byte, as a miss would; unpinned after. */
static void fill(struct blk_cache *c, uint64_t dev, uint64_t ino, uint64_t index, uint8_t byte)
{
	struct blk_cache_block *b;

	assert_int_equal(blk_cache_get(c, dev, ino, index, &b), BLK_CACHE_FILL);
	memset(b->data, byte, B);
	blk_cache_filled(c, b, B);
	blk_cache_unpin(c, b);
}

/* Whether block index of (dev, ino) is there (and holds byte, if so). */
static bool present(struct blk_cache *c, uint64_t dev, uint64_t ino, uint64_t index, int byte)
{
	struct blk_cache_block *b;
	int ret = blk_cache_get(c, dev, ino, index, &b);

	if (ret == BLK_CACHE_FILL) {
		/* Not there: take the new block out again. */
		blk_cache_filled(c, b, -ECANCELED);
		blk_cache_unpin(c, b);
		return false;
	}
	assert_int_equal(ret, BLK_CACHE_HIT);
	if (byte >= 0)
		assert_int_equal(b->data[B - 1], byte);
	blk_cache_unpin(c, b);
	return true;
}

static void test_hit_miss(void **state)
{
	struct blk_cache *c;
	struct blk_cache_block *b;
	struct blk_cache_stats s;

	assert_int_equal(blk_cache_new(8 * B, &c), 0);
	assert_int_equal(blk_cache_get(c, 1, 2, 3, &b), BLK_CACHE_FILL);
	assert_false(b->valid);
	/* A second read of a block being filled reads the file itself. */
	{
		struct blk_cache_block *other;
		assert_int_equal(blk_cache_get(c, 1, 2, 3, &other), -EBUSY);
	}
	memset(b->data, 0x5a, B);
	blk_cache_filled(c, b, 1000); /* the file ends there */
	blk_cache_unpin(c, b);
	assert_int_equal(blk_cache_get(c, 1, 2, 3, &b), BLK_CACHE_HIT);
	assert_int_equal(b->len, 1000);
	assert_int_equal(b->data[999], 0x5a);
	blk_cache_unpin(c, b);
	blk_cache_account(c, false, 4096);
	blk_cache_account(c, true, 512);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.hits, 1);
	assert_int_equal(s.misses, 1);
	assert_int_equal(s.hit_bytes, 512);
	assert_int_equal(s.miss_bytes, 4096);
	assert_int_equal(s.insertions, 1);
	assert_int_equal(s.size, B);
	assert_int_equal(s.limit, 8 * B);
	/* A failed read keeps nothing. */
	assert_int_equal(blk_cache_get(c, 1, 2, 4, &b), BLK_CACHE_FILL);
	blk_cache_filled(c, b, -EIO);
	blk_cache_unpin(c, b);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, B);
	assert_false(present(c, 1, 2, 4, -1));
	blk_cache_free(c);
}

/* Least recently used first; a hit makes a block recent again. */
static void test_eviction_order(void **state)
{
	struct blk_cache *c;
	struct blk_cache_stats s;

	assert_int_equal(blk_cache_new(4 * B, &c), 0);
	for (uint64_t i = 0; i < 4; i++)
		fill(c, 1, 1, i, (uint8_t)i);
	assert_true(present(c, 1, 1, 0, 0)); /* 0 is now the most recent; 1 the least */
	fill(c, 1, 1, 4, 4);
	assert_true(present(c, 1, 1, 0, 0));
	assert_true(present(c, 1, 1, 2, 2));
	assert_true(present(c, 1, 1, 3, 3));
	assert_true(present(c, 1, 1, 4, 4));
	/* Checking for 1 misses, and its fill evicts the least recent: 0. */
	assert_false(present(c, 1, 1, 1, -1));
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.evictions, 2);
	assert_int_equal(s.size, 3 * B); /* the fill for 1 was dropped */
	blk_cache_free(c);
}

static long resident_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld %ld", &pages, &rss), 2);
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Lowering the limit evicts at once and the host gets the memory back; zero disables. */
static void test_limit_change_frees(void **state)
{
	enum { N = 512 }; /* 32 MiB */
	struct blk_cache *c;
	struct blk_cache_block *b;
	struct blk_cache_stats s;
	long before, full, after;

	before = resident_kib();
	assert_int_equal(blk_cache_new((uint64_t)N * B, &c), 0);
	for (uint64_t i = 0; i < N; i++)
		fill(c, 7, 7, i, 0xee);
	full = resident_kib();
	assert_true(full - before >= (long)N * B / 1024 * 9 / 10);
	blk_cache_set_limit(c, 16 * B);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, 16 * B);
	assert_int_equal(s.limit, 16 * B);
	assert_int_equal(s.evictions, N - 16);
	after = resident_kib();
	assert_true(full - after >= (long)(N - 16) * B / 1024 * 9 / 10);
	/* The most recent 16 stay. */
	for (uint64_t i = N - 16; i < N; i++)
		assert_true(present(c, 7, 7, i, 0xee));
	blk_cache_set_limit(c, 0);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, 0);
	assert_int_equal(blk_cache_get(c, 7, 7, 0, &b), -ENOSPC);
	/* Up again: blocks come back as they are read. */
	blk_cache_set_limit(c, 2 * B + 100);
	fill(c, 7, 7, 0, 1);
	fill(c, 7, 7, 1, 2);
	fill(c, 7, 7, 2, 3);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, 2 * B);
	blk_cache_free(c);
}

/* Blocks pinned (being filled or copied) stay through a lower limit and go when let go. */
static void test_limit_with_pins(void **state)
{
	struct blk_cache *c;
	struct blk_cache_block *filling, *held, *b;
	struct blk_cache_stats s;

	assert_int_equal(blk_cache_new(4 * B, &c), 0);
	fill(c, 1, 1, 0, 0);
	fill(c, 1, 1, 1, 1);
	assert_int_equal(blk_cache_get(c, 1, 1, 0, &held), BLK_CACHE_HIT);
	assert_int_equal(blk_cache_get(c, 1, 1, 9, &filling), BLK_CACHE_FILL);
	blk_cache_set_limit(c, 0);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, 2 * B); /* block 1 went; the pinned two wait */
	assert_int_equal(held->data[0], 0);
	memset(filling->data, 9, B);
	blk_cache_filled(c, filling, B);
	assert_int_equal(filling->data[B - 1], 9); /* still the caller's to copy from */
	blk_cache_unpin(c, filling);
	blk_cache_unpin(c, held);
	blk_cache_get_stats(c, &s);
	assert_int_equal(s.size, 0);
	/* Every block pinned: no room for a new one. */
	blk_cache_set_limit(c, B);
	assert_int_equal(blk_cache_get(c, 1, 1, 0, &held), BLK_CACHE_FILL);
	assert_int_equal(blk_cache_get(c, 1, 1, 1, &b), -ENOSPC);
	blk_cache_filled(c, held, B);
	blk_cache_unpin(c, held);
	blk_cache_free(c);
}

/* Same offsets in two files never mix; the key is device and inode. */
static void test_files_apart(void **state)
{
	struct blk_cache *c;

	assert_int_equal(blk_cache_new(16 * B, &c), 0);
	fill(c, 1, 10, 0, 0xa1);
	fill(c, 1, 11, 0, 0xb2);
	fill(c, 2, 10, 0, 0xc3);
	assert_true(present(c, 1, 10, 0, 0xa1));
	assert_true(present(c, 1, 11, 0, 0xb2));
	assert_true(present(c, 2, 10, 0, 0xc3));
	assert_false(present(c, 2, 11, 0, -1));
	assert_false(present(c, 1, 10, 1, -1));
	blk_cache_free(c);
}

/* A file some disk writes is not cached, and what was cached of it goes at once. */
static void test_writer(void **state)
{
	struct blk_cache *c;
	struct blk_cache_block *b, *pinned;

	assert_int_equal(blk_cache_new(16 * B, &c), 0);
	fill(c, 1, 1, 0, 1);
	fill(c, 1, 1, 1, 1);
	fill(c, 1, 2, 0, 2);
	assert_int_equal(blk_cache_get(c, 1, 1, 1, &pinned), BLK_CACHE_HIT);
	assert_int_equal(blk_cache_writer(c, 1, 1, true), 0);
	assert_int_equal(blk_cache_writer(c, 1, 1, true), 0);
	assert_int_equal(blk_cache_get(c, 1, 1, 0, &b), -EPERM);
	assert_int_equal(blk_cache_get(c, 1, 1, 1, &b), -EPERM);
	assert_true(present(c, 1, 2, 0, 2));
	blk_cache_unpin(c, pinned); /* dropped now */
	assert_int_equal(blk_cache_writer(c, 1, 1, false), 0);
	assert_int_equal(blk_cache_get(c, 1, 1, 0, &b), -EPERM); /* one writer is left */
	assert_int_equal(blk_cache_writer(c, 1, 1, false), 0);
	assert_int_equal(blk_cache_writer(c, 1, 1, false), -ENOENT);
	assert_false(present(c, 1, 1, 0, -1));
	{
		struct blk_cache_stats s;
		blk_cache_get_stats(c, &s);
		assert_int_equal(s.size, B);
	}
	blk_cache_free(c);
}

/* Many blocks: the table grows and every block is still found. */
static void test_many(void **state)
{
	struct blk_cache *c;

	assert_int_equal(blk_cache_new(3000ull * B, &c), 0);
	for (uint64_t i = 0; i < 3000; i++)
		fill(c, i % 3, i % 5, i, (uint8_t)i);
	for (uint64_t i = 0; i < 3000; i++)
		assert_true(present(c, i % 3, i % 5, i, (uint8_t)i));
	blk_cache_free(c);
}

static void test_stats_text(void **state)
{
	struct blk_cache_stats s = {1, 2, 3, 4, 5, 6, 7, 8}, back;
	char text[512];

	assert_int_equal(blk_cache_stats_format(&s, text, sizeof(text)), 0);
	assert_string_equal(text, "size=7 limit=8 hits=1 misses=2 hit_bytes=3 miss_bytes=4 "
				  "insertions=5 evictions=6");
	assert_int_equal(blk_cache_stats_parse(text, &back), 0);
	assert_memory_equal(&s, &back, sizeof(s));
	assert_int_equal(
	    blk_cache_stats_parse("size=1 future=3 limit=2 hits=0 misses=0 hit_bytes=0 "
				  "miss_bytes=0 insertions=0 evictions=0",
				  &back),
	    0);
	assert_int_equal(back.limit, 2);
	assert_int_equal(blk_cache_stats_parse("size=1", &back), -EINVAL);
	assert_int_equal(blk_cache_stats_parse("size=x limit=2", &back), -EINVAL);
	assert_int_equal(blk_cache_stats_parse("garbage", &back), -EINVAL);
	assert_int_equal(blk_cache_stats_format(&s, text, 20), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit_miss),
	    cmocka_unit_test(test_eviction_order),
	    cmocka_unit_test(test_limit_change_frees),
	    cmocka_unit_test(test_limit_with_pins),
	    cmocka_unit_test(test_files_apart),
	    cmocka_unit_test(test_writer),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_stats_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
