#include "blk/cache.h"


#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOTS_PER_CHUNK (BLK_CACHE_CHUNK / BLK_CACHE_BLOCK)
#define FIRST_BUCKETS 1024u
#define MAX_WRITERS 256

_Static_assert(SLOTS_PER_CHUNK == 32, "a chunk's slots are one 32-bit mask");

struct blk_cache_chunk {
	struct blk_cache_chunk *next;
	uint8_t *mem;
	uint32_t used; /* one bit per slot */
};

struct writer {
	uint64_t dev, ino;
	unsigned count;
};

struct blk_cache {
	struct blk_cache_block **buckets;
	size_t nbuckets;		     /* a power of two */
	struct blk_cache_block *head, *tail; /* LRU */
	struct blk_cache_chunk *chunks;
	uint64_t nblocks; /* in the table, plus doomed ones still pinned */
	uint64_t max_blocks;
	struct writer writers[MAX_WRITERS];
	unsigned nwriters;
	struct blk_cache_stats st;
	pthread_mutex_t lock; /* see the calls at the end */
};

static size_t hash(uint64_t dev, uint64_t ino, uint64_t index, size_t nbuckets)
{
	uint64_t h = dev * 0x9e3779b97f4a7c15ULL ^ ino * 0xc2b2ae3d27d4eb4fULL ^ index;

	/* A 64-bit finalizer, so neighbouring blocks of one file spread over the table. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h & (nbuckets - 1);
}

int blk_cache_new(uint64_t limit, struct blk_cache **out)
{
	struct blk_cache *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c || !(c->buckets = calloc(FIRST_BUCKETS, sizeof(*c->buckets)))) {
		free(c);
		return -ENOMEM;
	}
	c->nbuckets = FIRST_BUCKETS;
	c->max_blocks = limit / BLK_CACHE_BLOCK;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

/* ---- memory ---- */

/* A free slot's memory, mapping a new chunk if every one is full; NULL if the host has none. */
static uint8_t *slot_take(struct blk_cache *c, struct blk_cache_chunk **chunk, unsigned *slot)
{
	struct blk_cache_chunk *k;

	for (k = c->chunks; k; k = k->next)
		if (k->used != UINT32_MAX)
			break;
	if (!k) {
		void *mem = mmap(NULL, BLK_CACHE_CHUNK, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return NULL;
		if (!(k = calloc(1, sizeof(*k)))) {
			munmap(mem, BLK_CACHE_CHUNK);
			return NULL;
		}
		k->mem = mem;
		k->next = c->chunks;
		c->chunks = k;
	}
	*slot = (unsigned)__builtin_ctz(~k->used);
	k->used |= 1u << *slot;
	*chunk = k;
	return k->mem + (size_t)*slot * BLK_CACHE_BLOCK;
}

/* Gives a slot's memory back to the host: its pages go now, its chunk when empty. */
static void slot_give_back(struct blk_cache *c, struct blk_cache_chunk *k, unsigned slot)
{
	k->used &= ~(1u << slot);
	if (k->used) {
		madvise(k->mem + (size_t)slot * BLK_CACHE_BLOCK, BLK_CACHE_BLOCK, MADV_DONTNEED);
		return;
	}
	for (struct blk_cache_chunk **pp = &c->chunks; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	munmap(k->mem, BLK_CACHE_CHUNK);
	free(k);
}

/* ---- the table and the LRU list ---- */

static void lru_unlink(struct blk_cache *c, struct blk_cache_block *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		c->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		c->tail = b->prev;
	b->prev = b->next = NULL;
}

static void lru_push_head(struct blk_cache *c, struct blk_cache_block *b)
{
	b->prev = NULL;
	b->next = c->head;
	if (c->head)
		c->head->prev = b;
	else
		c->tail = b;
	c->head = b;
}

static void table_remove(struct blk_cache *c, struct blk_cache_block *b)
{
	struct blk_cache_block **pp = &c->buckets[hash(b->dev, b->ino, b->index, c->nbuckets)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == b) {
			*pp = b->hnext;
			break;
		}
	b->hnext = NULL;
	lru_unlink(c, b);
}

/* Twice the buckets once there are more blocks than buckets; a failed grow keeps longer chains. */
static void table_grow(struct blk_cache *c)
{
	size_t n = c->nbuckets * 2;
	struct blk_cache_block **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < c->nbuckets; i++)
		while (c->buckets[i]) {
			struct blk_cache_block *b = c->buckets[i];
			size_t h = hash(b->dev, b->ino, b->index, n);
			c->buckets[i] = b->hnext;
			b->hnext = nb[h];
			nb[h] = b;
		}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

/* Ends a block that is out of the table and unpinned; its memory goes back if give_back. */
static void block_free(struct blk_cache *c, struct blk_cache_block *b, bool give_back)
{
	if (give_back)
		slot_give_back(c, b->chunk, b->slot);
	c->nblocks--;
	free(b);
}

/* The least recently used block nobody holds, out of the table; NULL if all are pinned. */
static struct blk_cache_block *evict_one(struct blk_cache *c)
{
	for (struct blk_cache_block *b = c->tail; b; b = b->prev)
		if (!b->pins) {
			table_remove(c, b);
			c->st.evictions++;
			return b;
		}
	return NULL;
}

/* Evicts until the limit holds (or only pinned blocks are left), giving the memory back. */
static void keep_limit(struct blk_cache *c)
{
	while (c->nblocks > c->max_blocks) {
		struct blk_cache_block *b = evict_one(c);
		if (!b)
			break;
		block_free(c, b, true);
	}
}

static void set_limit_locked(struct blk_cache *c, uint64_t bytes)
{
	c->max_blocks = bytes / BLK_CACHE_BLOCK;
	keep_limit(c);
}

static void get_stats_locked(const struct blk_cache *c, struct blk_cache_stats *out)
{
	*out = c->st;
	out->size = c->nblocks * BLK_CACHE_BLOCK;
	out->limit = c->max_blocks * BLK_CACHE_BLOCK;
}

static bool has_writer(const struct blk_cache *c, uint64_t dev, uint64_t ino)
{
	for (unsigned i = 0; i < c->nwriters; i++)
		if (c->writers[i].dev == dev && c->writers[i].ino == ino)
			return true;
	return false;
}

static int get_locked(struct blk_cache *c, uint64_t dev, uint64_t ino, uint64_t index,
		  struct blk_cache_block **out)
{
	size_t h = hash(dev, ino, index, c->nbuckets);
	struct blk_cache_block *b, *victim = NULL;
	struct blk_cache_chunk *chunk;
	uint8_t *data;
	unsigned slot;

	*out = NULL;
	for (b = c->buckets[h]; b; b = b->hnext)
		if (b->index == index && b->ino == ino && b->dev == dev)
			break;
	if (b) {
		/* One read fills a block; a second one meanwhile reads the file itself. */
		if (!b->valid)
			return -EBUSY;
		b->pins++;
		lru_unlink(c, b);
		lru_push_head(c, b);
		*out = b;
		return BLK_CACHE_HIT;
	}
	if (has_writer(c, dev, ino))
		return -EPERM;
	if (c->max_blocks == 0)
		return -ENOSPC;
	/* At the limit, the least recently used block's memory is taken over as it is. */
	if (c->nblocks >= c->max_blocks) {
		if (!(victim = evict_one(c)))
			return -ENOSPC;
		chunk = victim->chunk;
		slot = victim->slot;
		data = victim->data;
		block_free(c, victim, false);
	} else if (!(data = slot_take(c, &chunk, &slot))) {
		return -ENOMEM;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		slot_give_back(c, chunk, slot);
		return -ENOMEM;
	}
	*b = (struct blk_cache_block){.dev = dev,
				      .ino = ino,
				      .index = index,
				      .data = data,
				      .pins = 1,
				      .chunk = chunk,
				      .slot = slot};
	if (c->nblocks >= c->nbuckets)
		table_grow(c);
	h = hash(dev, ino, index, c->nbuckets);
	b->hnext = c->buckets[h];
	c->buckets[h] = b;
	lru_push_head(c, b);
	c->nblocks++;
	*out = b;
	return BLK_CACHE_FILL;
}

static void filled_locked(struct blk_cache *c, struct blk_cache_block *b, int res)
{
	if (res < 0 || res > (int)BLK_CACHE_BLOCK) {
		/* Nothing to keep: the next read of it tries again. */
		if (!b->doomed) {
			table_remove(c, b);
			b->doomed = true;
		}
		return;
	}
	b->len = (uint32_t)res;
	b->valid = true;
	if (!b->doomed)
		c->st.insertions++;
}

static void unpin_locked(struct blk_cache *c, struct blk_cache_block *b)
{
	if (--b->pins)
		return;
	if (b->doomed)
		block_free(c, b, true);
	keep_limit(c);
}

static void account_locked(struct blk_cache *c, bool hit, uint64_t bytes)
{
	if (hit) {
		c->st.hits++;
		c->st.hit_bytes += bytes;
	} else {
		c->st.misses++;
		c->st.miss_bytes += bytes;
	}
}

/* Drops every block of (dev, ino): unpinned ones now, pinned ones at their last unpin. */
static void drop_file(struct blk_cache *c, uint64_t dev, uint64_t ino)
{
	struct blk_cache_block *b = c->head;

	while (b) {
		struct blk_cache_block *next = b->next;
		if (b->dev == dev && b->ino == ino) {
			table_remove(c, b);
			c->st.evictions++;
			if (b->pins)
				b->doomed = true;
			else
				block_free(c, b, true);
		}
		b = next;
	}
}

static int writer_locked(struct blk_cache *c, uint64_t dev, uint64_t ino, bool add)
{
	for (unsigned i = 0; i < c->nwriters; i++) {
		struct writer *w = &c->writers[i];
		if (w->dev != dev || w->ino != ino)
			continue;
		if (add)
			w->count++;
		else if (--w->count == 0)
			*w = c->writers[--c->nwriters];
		return 0;
	}
	if (!add)
		return -ENOENT;
	if (c->nwriters == MAX_WRITERS)
		return -ENOSPC;
	c->writers[c->nwriters++] = (struct writer){dev, ino, 1};
	drop_file(c, dev, ino);
	return 0;
}

void blk_cache_free(struct blk_cache *c)
{
	if (!c)
		return;
	while (c->head) {
		struct blk_cache_block *b = c->head;
		table_remove(c, b);
		free(b);
	}
	while (c->chunks) {
		struct blk_cache_chunk *k = c->chunks;
		c->chunks = k->next;
		munmap(k->mem, BLK_CACHE_CHUNK);
		free(k);
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- the statistics as text (domus-blk's control socket) ---- */

#define STATS_FIELDS(X)                                                                            \
	X(size) X(limit) X(hits) X(misses) X(hit_bytes) X(miss_bytes) X(insertions) X(evictions)

int blk_cache_stats_format(const struct blk_cache_stats *s, char *buf, size_t len)
{
	size_t used = 0;
	int n;

#define FORMAT_ONE(f)                                                                              \
	n = snprintf(buf + used, len - used, "%s" #f "=%" PRIu64, used ? " " : "", s->f);          \
	if (n < 0 || (size_t)n >= len - used)                                                      \
		return -EINVAL;                                                                    \
	used += (size_t)n;
	STATS_FIELDS(FORMAT_ONE)
#undef FORMAT_ONE
	return 0;
}

int blk_cache_stats_parse(const char *text, struct blk_cache_stats *s)
{
	unsigned seen = 0, want = 0;

	memset(s, 0, sizeof(*s));
	while (*text) {
		const char *eq = strchr(text, '='), *end;
		unsigned long long v;
		char *stop;
		size_t klen;

		if (!eq)
			return -EINVAL;
		klen = (size_t)(eq - text);
		errno = 0;
		v = strtoull(eq + 1, &stop, 10);
		if (stop == eq + 1 || errno || (*stop && *stop != ' '))
			return -EINVAL;
		end = stop;
		{
			unsigned bit = 0;
			bool known = false;
#define PARSE_ONE(f)                                                                               \
	if (!known && klen == sizeof(#f) - 1 && !memcmp(text, #f, klen)) {                         \
		s->f = v;                                                                          \
		seen |= 1u << bit;                                                                 \
		known = true;                                                                      \
	}                                                                                          \
	bit++;
			STATS_FIELDS(PARSE_ONE)
#undef PARSE_ONE
			/* Fields a newer domus-blk adds are skipped. */
		}
		text = *end ? end + 1 : end;
	}
	{
		unsigned bit = 0;
#define COUNT_ONE(f) want |= 1u << bit++;
		STATS_FIELDS(COUNT_ONE)
#undef COUNT_ONE
	}
	return seen == want ? 0 : -EINVAL;
}

/*
 * Every disk of every worker thread (domus-blk --threads) shares the one
 * cache: each call holds its lock. A block a call hands out pinned is the
 * caller's until it unpins it: nothing evicts or refills it meanwhile, so
 * its data is read and filled without the lock.
 */

void blk_cache_set_limit(struct blk_cache *c, uint64_t bytes)
{
	pthread_mutex_lock(&c->lock);
	set_limit_locked(c, bytes);
	pthread_mutex_unlock(&c->lock);
}

void blk_cache_get_stats(const struct blk_cache *c, struct blk_cache_stats *out)
{
	pthread_mutex_lock(&((struct blk_cache *)c)->lock);
	get_stats_locked(c, out);
	pthread_mutex_unlock(&((struct blk_cache *)c)->lock);
}

int blk_cache_get(struct blk_cache *c, uint64_t dev, uint64_t ino, uint64_t index,
		  struct blk_cache_block **b)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = get_locked(c, dev, ino, index, b);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void blk_cache_filled(struct blk_cache *c, struct blk_cache_block *b, int res)
{
	pthread_mutex_lock(&c->lock);
	filled_locked(c, b, res);
	pthread_mutex_unlock(&c->lock);
}

void blk_cache_unpin(struct blk_cache *c, struct blk_cache_block *b)
{
	pthread_mutex_lock(&c->lock);
	unpin_locked(c, b);
	pthread_mutex_unlock(&c->lock);
}

void blk_cache_account(struct blk_cache *c, bool hit, uint64_t bytes)
{
	pthread_mutex_lock(&c->lock);
	account_locked(c, hit, bytes);
	pthread_mutex_unlock(&c->lock);
}

int blk_cache_writer(struct blk_cache *c, uint64_t dev, uint64_t ino, bool add)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = writer_locked(c, dev, ino, add);
	pthread_mutex_unlock(&c->lock);
	return ret;
}
