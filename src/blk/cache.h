/*
 * The shared read cache of domus-blk (the roadmap's "universal buffer
 * cache"): blocks of files that cannot change (backing files of qcow2
 * chains, images attached read-only), kept once for every disk that reads
 * them. Blocks are BLK_CACHE_BLOCK bytes, aligned in their file, keyed by
 * the file's identity (st_dev, st_ino) and the block's index, so two disks
 * with their own descriptors of one base image share them.
 *
 * Policy only: no I/O here. The caller asks for a block (blk_cache_get):
 * a hit is pinned while the caller copies from it; a miss hands the
 * caller a new block to fill (on its io_uring), which stays pinned until
 * the caller is done with it. Pinned blocks are never evicted: the limit
 * is kept by evicting others, least recently used first, and any excess
 * left by pinned blocks goes as they are unpinned.
 *
 * Memory comes from anonymous mappings of BLK_CACHE_CHUNK bytes; a block
 * evicted because the limit went down is given back to the host at once
 * (MADV_DONTNEED, and munmap once its chunk is empty).
 */
#ifndef DOMUS_BLK_CACHE_H
#define DOMUS_BLK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLK_CACHE_BLOCK (64u * 1024)
#define BLK_CACHE_CHUNK (2u * 1024 * 1024) /* 32 blocks per mapping */
#define BLK_CACHE_DEFAULT_MIB 64

enum { BLK_CACHE_HIT = 0, BLK_CACHE_FILL = 1 };

struct blk_cache_stats {
	uint64_t hits, misses; /* read pieces served whole from the cache, or not */
	uint64_t hit_bytes, miss_bytes;
	uint64_t insertions, evictions; /* blocks */
	uint64_t size, limit;		/* bytes */
};

struct blk_cache_chunk;

struct blk_cache_block {
	uint64_t dev, ino, index; /* the key: bytes [index * BLK_CACHE_BLOCK, +BLK_CACHE_BLOCK) */
	uint8_t *data;		  /* BLK_CACHE_BLOCK bytes, aligned for O_DIRECT */
	uint32_t len;		  /* bytes that are the file's: less only at its end */
	bool valid;		  /* filled; false while a read into it is in flight */
	bool doomed;		  /* taken out of the table while pinned: freed at the last unpin */
	unsigned pins;
	struct blk_cache_block *hnext;	     /* hash chain */
	struct blk_cache_block *prev, *next; /* LRU: head most recent */
	struct blk_cache_chunk *chunk;
	unsigned slot;
};

struct blk_cache;

/* A cache of at most limit bytes (rounded down to blocks). 0 or -ENOMEM. */
int blk_cache_new(uint64_t limit, struct blk_cache **out) __attribute__((warn_unused_result));
/* Frees everything; no block may be pinned (the caller has drained its I/O). */
void blk_cache_free(struct blk_cache *c);
/* A new limit; going down evicts at once and gives the memory back. */
void blk_cache_set_limit(struct blk_cache *c, uint64_t bytes);
void blk_cache_get_stats(const struct blk_cache *c, struct blk_cache_stats *out);

/*
 * The block index of file (dev, ino), pinned, in *b: BLK_CACHE_HIT when it
 * is filled (the caller checks that (*b)->len covers what it needs), or
 * BLK_CACHE_FILL when it is new and the caller must read BLK_CACHE_BLOCK
 * bytes at index * BLK_CACHE_BLOCK into (*b)->data and call
 * blk_cache_filled. -EBUSY: another read is filling it (the caller reads
 * the file itself); -ENOSPC: no room (a limit of zero, or every block
 * pinned); -EPERM: a disk writes this file, so it is not cached.
 */
int blk_cache_get(struct blk_cache *c, uint64_t dev, uint64_t ino, uint64_t index,
		  struct blk_cache_block **b);
/* The read into b ended: res bytes (short at the file's end) or -errno (the block is dropped). */
void blk_cache_filled(struct blk_cache *c, struct blk_cache_block *b, int res);
/* The caller is done with b; keeps the limit. */
void blk_cache_unpin(struct blk_cache *c, struct blk_cache_block *b);
/* Counts a read piece of bytes as served from the cache (hit) or not. */
void blk_cache_account(struct blk_cache *c, bool hit, uint64_t bytes);
/*
 * A disk that writes file (dev, ino) comes (add) or goes: while any does,
 * the file is not cached, and what was cached of it is dropped at once.
 */
int blk_cache_writer(struct blk_cache *c, uint64_t dev, uint64_t ino, bool add)
    __attribute__((warn_unused_result));

/* The statistics as one line "size=N limit=N hits=N ...", and back. 0 or -EINVAL. */
int blk_cache_stats_format(const struct blk_cache_stats *s, char *buf, size_t len);
int blk_cache_stats_parse(const char *text, struct blk_cache_stats *s);

#endif
