#include "blk/blk_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define SECTOR 512
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_F_VERSION_1 32
#define CONFIG_WRITEBACK 32 /* offset of the writeback byte in config space */
#define RING_ENTRIES 256
#define MAX_FREE_REQUESTS 256

struct blk_req_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_discard_segment {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct blk_req {
	struct blk_sched_req sr; /* first: the scheduler hands it back */
	bool scheduled;          /* counted in the scheduler and the engine's depth until complete */
	struct blk_disk *d;
	unsigned q;
	unsigned pending; /* pieces in flight, plus one while the request is being set up */
	uint8_t status;
	uint32_t written;
	uint32_t type;
	uint64_t bytes;
	struct blk_req *next_free;
	bool held;                 /* done, its completion held back by delay_us until due_ns */
	uint64_t due_ns;
	struct blk_req *next_held;
	struct virtq_chain c;
};

struct blk_cache_read;

/* One piece of a request on the ring, or the read of a block into the cache (cr set). */
struct blk_op {
	struct blk_req *req;
	struct blk_cache_read *cr;
	struct blk_cache_block *blk;
	bool write, direct, sync;
	int fd; /* the buffered descriptor: where a short or refused transfer is finished */
	uint64_t off, len;
	unsigned niov;
	struct iovec iov[];
};

int blk_engine_init(struct blk_engine *e, char *err, size_t errlen)
{
	struct io_uring_restriction res[5] = {
		{.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_NOP},
		{.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV},
		{.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV},
		{.opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC},
		{.opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = 0},
	};
	int ret;

	memset(e, 0, sizeof(*e));
	blk_sched_init(&e->sched);
	e->depth = BLK_SCHED_DEFAULT_DEPTH;
	/* Operations on the ring bypass seccomp: it may only ever carry reads, writes and syncs. */
	ret = io_uring_queue_init(RING_ENTRIES, &e->ring, IORING_SETUP_R_DISABLED);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring: %s", strerror(-ret));
		return ret;
	}
	/* Debian's liburing 2.3 does not export these two calls from its shared library: by hand. */
	if (syscall(SYS_io_uring_register, e->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res, 5) < 0 ||
	    syscall(SYS_io_uring_register, e->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "restricting io_uring: %s", strerror(-ret));
		io_uring_queue_exit(&e->ring);
		return ret;
	}
	e->have_ring = true;
	return 0;
}

int blk_engine_fd(struct blk_engine *e)
{
	return e->have_ring ? e->ring.ring_fd : -1;
}

void blk_engine_close(struct blk_engine *e)
{
	while (e->free_requests) {
		struct blk_req *r = e->free_requests;
		e->free_requests = r->next_free;
		free(r);
	}
	if (e->have_ring)
		io_uring_queue_exit(&e->ring);
	e->have_ring = false;
	blk_sched_free(&e->sched);
}

uint64_t blk_engine_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int blk_disk_set_group(struct blk_disk *d, const char *name)
{
	struct blk_sched *s = &d->engine->sched;
	struct blk_sched_group *g = blk_sched_group_get(s, name);

	if (!g)
		return -ENOMEM;
	if (g == d->group)
		return 0;
	blk_sched_group_ref(g);
	if (d->group) {
		blk_sched_move(s, d, d->group, g, blk_engine_now());
		blk_sched_group_unref(s, d->group);
	}
	d->group = g;
	return 0;
}

void blk_disk_leave_group(struct blk_disk *d)
{
	if (d->group)
		blk_sched_group_unref(&d->engine->sched, d->group);
	d->group = NULL;
}

/* The iovecs covering len bytes from byte skip of iov[0..n) into out; how many, 0 if over max. */
static unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
			  struct iovec *out, unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		if (k == max)
			return 0;
		l -= skip;
		if (l > len)
			l = len;
		out[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + skip, l};
		skip = 0;
		len -= l;
	}
	return len ? 0 : k;
}

/* Moves a slice through the image layer, at once. */
static int slice_through_image(struct blk_disk *d, const struct iovec *iov, unsigned n,
			       uint64_t pos, bool write)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = write ? image_write(d->img, iov[i].iov_base, iov[i].iov_len, pos)
				: image_read(d->img, iov[i].iov_base, iov[i].iov_len, pos);
		if (ret < 0)
			return ret;
		pos += iov[i].iov_len;
	}
	return write && !d->writeback ? image_flush(d->img) : 0;
}

/* Moves bytes [done, len) of iov to or from fd at off, plainly: the file ending early is an error. */
static int transfer_plainly(int fd, bool write, const struct iovec *iov_all, unsigned niov,
			    uint64_t off, uint64_t len, uint64_t done)
{
	struct iovec iov[VIRTQ_MAX_CHAIN];
	unsigned n;

	while (done < len) {
		ssize_t got;

		n = iov_slice(iov_all, niov, done, len - done, iov, VIRTQ_MAX_CHAIN);
		got = write ? pwritev(fd, iov, (int)n, (off_t)(off + done))
			    : preadv(fd, iov, (int)n, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		done += (uint64_t)got;
	}
	return 0;
}

/* Finishes an op on its buffered descriptor from byte done. */
static int op_finish_plainly(struct blk_op *op, uint64_t done)
{
	int ret = transfer_plainly(op->fd, op->write, op->iov, op->niov, op->off, op->len, done);

	if (ret < 0)
		return ret;
	return op->write && op->sync && fdatasync(op->fd) < 0 ? -errno : 0;
}

static bool iov_aligned(const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (SECTOR - 1))
			return false;
	return true;
}

static struct io_uring_sqe *get_sqe(struct blk_engine *e)
{
	struct io_uring_sqe *sqe;

	if (!e->have_ring)
		return NULL;
	sqe = io_uring_get_sqe(&e->ring);
	if (!sqe && io_uring_submit(&e->ring) >= 0)
		sqe = io_uring_get_sqe(&e->ring);
	return sqe;
}

static void req_complete(struct blk_req *r)
{
	struct blk_disk *d = r->d;
	struct blk_engine *e = d->engine;

	if (e->delay_us && !r->held) {
		uint64_t now = blk_engine_now();

		r->held = true;
		r->due_ns = (e->delayed_last_ns > now ? e->delayed_last_ns : now) + (uint64_t)e->delay_us * 1000;
		e->delayed_last_ns = r->due_ns;
		r->next_held = NULL;
		if (!e->delayed)
			e->delayed_tail = &e->delayed;
		*e->delayed_tail = r;
		e->delayed_tail = (void **)&r->next_held;
		return;
	}
	r->held = false;
	if (r->status == VIRTIO_BLK_S_OK && d->stats && (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT)) {
		bool rd = r->type == VIRTIO_BLK_T_IN;
		atomic_fetch_add(rd ? &d->stats->read_ops : &d->stats->write_ops, 1);
		atomic_fetch_add(rd ? &d->stats->read_bytes : &d->stats->write_bytes, r->bytes);
	}
	if (r->status != VIRTIO_BLK_S_OK)
		r->written = 0;
	if (r->scheduled) {
		blk_sched_done(&e->sched, &r->sr, blk_engine_now());
		e->started--;
		r->scheduled = false;
	}
	d->requests++;
	d->queue_requests[r->q]++;
	d->errors += r->status != VIRTIO_BLK_S_OK;
	/* The status byte is the last writable byte. */
	virtq_chain_write(&r->c, r->c.in_len - 1, &r->status, 1);
	vhost_backend_push(&d->b, r->q, r->c.head, r->written + 1);
	d->inflight--;
	d->notify_queues |= 1u << r->q;
	if (!d->notify_listed && e->nnotify < sizeof(e->notify) / sizeof(e->notify[0])) {
		e->notify[e->nnotify++] = d;
		d->notify_listed = true;
	} else if (!d->notify_listed) {
		vhost_backend_notify(&d->b, r->q);
	}
	if (e->nfree < MAX_FREE_REQUESTS) {
		r->next_free = e->free_requests;
		e->free_requests = r;
		e->nfree++;
	} else {
		free(r);
	}
}

static void req_put(struct blk_req *r)
{
	if (--r->pending == 0)
		req_complete(r);
}

/* Completes the requests delay_us held back that are due by until. */
static void release_held(struct blk_engine *e, uint64_t until)
{
	struct blk_req *r;

	while ((r = e->delayed) && r->due_ns <= until) {
		e->delayed = r->next_held;
		req_complete(r);
	}
}

static void notify_all(struct blk_engine *e)
{
	for (unsigned i = 0; i < e->nnotify; i++) {
		struct blk_disk *d = e->notify[i];
		for (unsigned q = 0; q < BLK_NUM_QUEUES; q++)
			if (d->notify_queues & (1u << q))
				vhost_backend_notify(&d->b, q);
		d->notify_queues = 0;
		d->notify_listed = false;
	}
	e->nnotify = 0;
}

/* ---- reads through the shared cache ---- */

#define CACHE_MAX_BLOCKS 16 /* one cached piece spans at most this many blocks (1 MiB) */

/* A read piece waiting for blocks being read into the cache. */
struct blk_cache_read {
	struct blk_req *r;
	int fd;            /* the buffered descriptor: where the piece is read if the cache fails it */
	uint64_t off, len; /* the piece, in that file */
	unsigned pending;  /* block reads in flight, plus one while they are being started */
	unsigned nblocks;
	struct blk_cache_block *blocks[CACHE_MAX_BLOCKS];
	unsigned niov;
	struct iovec iov[];
};

/* How many bytes of block i (of the piece's blocks) the piece needs it to hold. */
static uint32_t cache_need(uint64_t off, uint64_t len, unsigned i)
{
	uint64_t start = (off / BLK_CACHE_BLOCK + i) * BLK_CACHE_BLOCK, end = off + len;

	return (uint32_t)(end - start < BLK_CACHE_BLOCK ? end - start : BLK_CACHE_BLOCK);
}

/* Copies the piece [off, off+len) of the file from its blocks into the guest's buffers. */
static void cache_copy_out(struct blk_cache_block *const *blocks, uint64_t off,
			   const struct iovec *iov, unsigned niov)
{
	uint64_t first = off / BLK_CACHE_BLOCK, pos = off;

	for (unsigned i = 0; i < niov; i++) {
		uint8_t *dst = iov[i].iov_base;
		uint64_t left = iov[i].iov_len;

		while (left) {
			uint64_t in = pos % BLK_CACHE_BLOCK, n = BLK_CACHE_BLOCK - in;
			if (n > left)
				n = left;
			memcpy(dst, blocks[pos / BLK_CACHE_BLOCK - first]->data + in, n);
			dst += n;
			pos += n;
			left -= n;
		}
	}
}

/*
 * Reads a block at off into data from byte have on, plainly, to its end or
 * the file's: when O_DIRECT was refused or the ring's read came back short.
 * The bytes held, or -errno.
 */
static int cache_read_block_plainly(int fd, uint8_t *data, uint64_t off, uint32_t have)
{
	while (have < BLK_CACHE_BLOCK) {
		ssize_t got = pread(fd, data + have, BLK_CACHE_BLOCK - have, (off_t)(off + have));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break; /* the end of the file: the block is short */
		have += (uint32_t)got;
	}
	return (int)have;
}

/* Every block of the piece has been read (or has failed): the piece goes to the guest. */
static void cache_read_finish(struct blk_cache_read *cr)
{
	struct blk_req *r = cr->r;
	struct blk_cache *c = r->d->engine->cache;
	bool whole = true;

	for (unsigned i = 0; i < cr->nblocks; i++)
		if (!cr->blocks[i]->valid || cr->blocks[i]->len < cache_need(cr->off, cr->len, i))
			whole = false;
	if (whole) {
		cache_copy_out(cr->blocks, cr->off, cr->iov, cr->niov);
	} else {
		/* A block failed or ended early: the file itself says what the piece is. */
		int ret = transfer_plainly(cr->fd, false, cr->iov, cr->niov, cr->off, cr->len, 0);
		if (ret < 0) {
			r->status = VIRTIO_BLK_S_IOERR;
			log_warnx("%s: read at byte %llu of a backing or read-only file: %s", r->d->id,
				  (unsigned long long)cr->off, strerror(-ret));
		}
	}
	for (unsigned i = 0; i < cr->nblocks; i++)
		blk_cache_unpin(c, cr->blocks[i]);
	free(cr);
	req_put(r);
}

static void cache_fill_done(struct blk_op *op, int res)
{
	struct blk_cache_read *cr = op->cr;

	if ((res == -EINVAL && op->direct) || (res >= 0 && res < (int)BLK_CACHE_BLOCK))
		res = cache_read_block_plainly(op->fd, op->blk->data, op->off, res < 0 ? 0 : (uint32_t)res);
	blk_cache_filled(cr->r->d->engine->cache, op->blk, res);
	free(op);
	if (--cr->pending == 0)
		cache_read_finish(cr);
}

/* Starts the read of block b of piece cr into the cache on the ring, or does it at once. */
static void cache_fill_start(struct blk_cache_read *cr, const struct image_extent *x,
			     struct blk_cache_block *b)
{
	struct io_uring_sqe *sqe = get_sqe(cr->r->d->engine);
	struct blk_op *op = sqe ? malloc(sizeof(*op) + sizeof(struct iovec)) : NULL;
	uint64_t off = b->index * BLK_CACHE_BLOCK;

	if (!op) {
		blk_cache_filled(cr->r->d->engine->cache, b,
				 cache_read_block_plainly(x->fd, b->data, off, 0));
		if (sqe) {
			/* The slot is taken: a no-op whose completion nothing waits for. */
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data(sqe, NULL);
		}
		return;
	}
	/* The block is aligned in the file and in memory: O_DIRECT takes it as it is. */
	*op = (struct blk_op){.req = cr->r, .cr = cr, .blk = b, .fd = x->fd, .off = off,
			      .len = BLK_CACHE_BLOCK, .niov = 1, .direct = x->direct_fd >= 0};
	op->iov[0] = (struct iovec){b->data, BLK_CACHE_BLOCK};
	io_uring_prep_readv(sqe, op->direct ? x->direct_fd : x->fd, op->iov, 1, off);
	io_uring_sqe_set_data(sqe, op);
	cr->pending++;
}

/*
 * A read piece x of a file opened read-only, through the cache: copied at
 * once when every block is there, else the missing blocks are read into
 * the cache and the piece is finished when they are. false when the cache
 * cannot take it (a block another read is filling, no room, a writer):
 * then the caller reads the file as ever.
 */
static bool start_cached(struct blk_req *r, const struct image_extent *x, const struct iovec *iov,
			 unsigned n)
{
	struct blk_cache *c = r->d->engine->cache;
	struct blk_cache_block *blocks[CACHE_MAX_BLOCKS];
	bool fill[CACHE_MAX_BLOCKS];
	uint64_t first = x->off / BLK_CACHE_BLOCK;
	unsigned nb = (unsigned)((x->off + x->len - 1) / BLK_CACHE_BLOCK - first + 1), got, nfill = 0;
	struct blk_cache_read *cr;
	int ret = 0;

	for (got = 0; got < nb; got++) {
		ret = blk_cache_get(c, x->dev, x->ino, first + got, &blocks[got]);
		if (ret == BLK_CACHE_HIT && blocks[got]->len < cache_need(x->off, x->len, got)) {
			blk_cache_unpin(c, blocks[got]); /* the file ended there when it was read */
			ret = -ESPIPE;
		}
		if (ret < 0)
			break;
		fill[got] = ret == BLK_CACHE_FILL;
		nfill += fill[got];
	}
	if (got == nb && nfill == 0) {
		cache_copy_out(blocks, x->off, iov, n);
		for (unsigned i = 0; i < nb; i++)
			blk_cache_unpin(c, blocks[i]);
		blk_cache_account(c, true, x->len);
		return true;
	}
	cr = got == nb ? malloc(sizeof(*cr) + n * sizeof(struct iovec)) : NULL;
	if (ret != -EPERM)
		blk_cache_account(c, false, x->len);
	if (!cr) {
		for (unsigned i = 0; i < got; i++) {
			if (fill[i])
				blk_cache_filled(c, blocks[i], -ECANCELED);
			blk_cache_unpin(c, blocks[i]);
		}
		return false;
	}
	*cr = (struct blk_cache_read){.r = r, .fd = x->fd, .off = x->off, .len = x->len,
				      .pending = 1, .nblocks = nb, .niov = n};
	memcpy(cr->blocks, blocks, nb * sizeof(blocks[0]));
	memcpy(cr->iov, iov, n * sizeof(*iov));
	r->pending++; /* the request completes after the piece */
	for (unsigned i = 0; i < nb; i++)
		if (fill[i])
			cache_fill_start(cr, x, blocks[i]);
	if (--cr->pending == 0)
		cache_read_finish(cr);
	return true;
}

/* Starts a transfer of one extent on the ring, or does it at once. */
static void start_extent(struct blk_req *r, const struct image_extent *x, bool mapped,
			 const struct iovec *iov, unsigned n, uint64_t pos, bool write)
{
	struct blk_disk *d = r->d;
	struct io_uring_sqe *sqe = mapped ? get_sqe(d->engine) : NULL;
	struct blk_op *op;

	if (!sqe || !(op = malloc(sizeof(*op) + n * sizeof(struct iovec)))) {
		/* Also when the ring is full or absent: correct, only not overlapped. */
		if (slice_through_image(d, iov, n, pos, write) < 0)
			r->status = VIRTIO_BLK_S_IOERR;
		if (sqe) {
			/* The slot is taken: a no-op whose completion nothing waits for. */
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data(sqe, NULL);
		}
		return;
	}
	*op = (struct blk_op){.req = r, .write = write, .fd = x->fd, .off = x->off, .len = x->len,
			      .niov = n, .sync = write && !d->writeback};
	memcpy(op->iov, iov, n * sizeof(*iov));
	op->direct = x->direct_fd >= 0 && !((x->off | x->len) & (SECTOR - 1)) && iov_aligned(iov, n);
	if (write)
		io_uring_prep_writev(sqe, op->direct ? x->direct_fd : x->fd, op->iov, n, x->off);
	else
		io_uring_prep_readv(sqe, op->direct ? x->direct_fd : x->fd, op->iov, n, x->off);
	if (op->sync)
		sqe->rw_flags = RWF_DSYNC;
	io_uring_sqe_set_data(sqe, op);
	r->pending++;
}

/* A read or write: each extent of the image on the ring, or at once. */
static void start_transfer(struct blk_req *r, const struct iovec *iov, unsigned n, uint64_t skip,
			   uint64_t pos, uint64_t len, bool write)
{
	struct iovec piece[VIRTQ_MAX_CHAIN];

	while (len) {
		struct image_extent x;
		int mapped = image_map(r->d->img, pos, len, write, &x);
		unsigned k;

		bool cached = mapped == 1 && !write && x.readonly && r->d->engine->cache;

		if (cached && x.len > 0) {
			/* A piece through the cache spans a bounded number of blocks; the rest is next. */
			uint64_t end = (x.off / BLK_CACHE_BLOCK + CACHE_MAX_BLOCKS) * BLK_CACHE_BLOCK;
			if (x.off + x.len > end)
				x.len = end - x.off;
		}
		if (mapped < 0 || x.len == 0 || x.len > len ||
		    !(k = iov_slice(iov, n, skip, x.len, piece, VIRTQ_MAX_CHAIN))) {
			r->status = VIRTIO_BLK_S_IOERR;
			return;
		}
		if (!cached || !start_cached(r, &x, piece, k))
			start_extent(r, &x, mapped == 1, piece, k, pos, write);
		if (r->status != VIRTIO_BLK_S_OK)
			return;
		skip += x.len;
		pos += x.len;
		len -= x.len;
	}
}

static void start_flush(struct blk_req *r)
{
	struct io_uring_sqe *sqe = get_sqe(r->d->engine);
	struct blk_op *op;

	if (r->d->img->readonly)
		return;
	if (!sqe || !(op = calloc(1, sizeof(*op)))) {
		if (image_flush(r->d->img) < 0)
			r->status = VIRTIO_BLK_S_IOERR;
		if (sqe) {
			/* The slot is taken: a no-op whose completion nothing waits for. */
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data(sqe, NULL);
		}
		return;
	}
	op->req = r;
	op->fd = r->d->img->fd;
	/* The metadata of a qcow2 image is written through the same file: one sync covers both. */
	io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, op);
	r->pending++;
}

static uint8_t do_discard(struct blk_disk *d, const struct virtq_chain *c)
{
	struct blk_discard_segment seg[BLK_MAX_DISCARD_SEGMENTS];
	uint64_t bytes = c->out_len - sizeof(struct blk_req_header), sectors = d->img->size / SECTOR;
	unsigned n = (unsigned)(bytes / sizeof(seg[0]));

	if (d->img->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (bytes % sizeof(seg[0]) || n == 0 || n > BLK_MAX_DISCARD_SEGMENTS ||
	    virtq_chain_read(c, sizeof(struct blk_req_header), seg, bytes) != bytes)
		return VIRTIO_BLK_S_IOERR;
	for (unsigned i = 0; i < n; i++) {
		/* The unmap flag belongs to write-zeroes; a discard carrying it is refused. */
		if (seg[i].flags)
			return VIRTIO_BLK_S_UNSUPP;
		if (seg[i].sector > sectors || seg[i].num_sectors > sectors - seg[i].sector)
			return VIRTIO_BLK_S_IOERR;
	}
	for (unsigned i = 0; i < n; i++)
		if (image_discard(d->img, seg[i].sector * SECTOR, (uint64_t)seg[i].num_sectors * SECTOR) < 0)
			return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

static void start_request(struct blk_req *r)
{
	struct blk_disk *d = r->d;
	const struct virtq_chain *c = &r->c;
	struct blk_req_header h;
	uint64_t sectors = d->img->size / SECTOR, len;

	r->status = VIRTIO_BLK_S_OK;
	r->written = 0;
	r->bytes = 0;
	r->type = UINT32_MAX;
	if (c->in_len < 1 || virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h)) {
		r->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	r->type = h.type;
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		len = h.type == VIRTIO_BLK_T_IN ? c->in_len - 1 : c->out_len - sizeof(h);
		if (len % SECTOR || h.sector > sectors || len / SECTOR > sectors - h.sector ||
		    (h.type == VIRTIO_BLK_T_OUT && d->img->readonly)) {
			r->status = VIRTIO_BLK_S_IOERR;
			return;
		}
		r->bytes = len;
		r->written = h.type == VIRTIO_BLK_T_IN ? (uint32_t)len : 0;
		if (h.type == VIRTIO_BLK_T_OUT)
			start_transfer(r, c->iov, c->nout, sizeof(h), h.sector * SECTOR, len, true);
		else
			start_transfer(r, c->iov + c->nout, c->nin, 0, h.sector * SECTOR, len, false);
		return;
	case VIRTIO_BLK_T_FLUSH:
		start_flush(r);
		return;
	case VIRTIO_BLK_T_DISCARD:
		r->status = do_discard(d, c);
		return;
	case VIRTIO_BLK_T_GET_ID:
		r->written = (uint32_t)virtq_chain_write(c, 0, d->id, c->in_len - 1 < 20 ? c->in_len - 1 : 20);
		return;
	default:
		r->status = VIRTIO_BLK_S_UNSUPP;
	}
}

static void reap_completions(struct blk_engine *e);

/* What a request moves, for its charge: 0 for anything but a read or a write. */
static uint64_t request_bytes(const struct virtq_chain *c)
{
	struct blk_req_header h;

	if (virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h))
		return 0;
	if (h.type == VIRTIO_BLK_T_IN)
		return c->in_len ? c->in_len - 1 : 0;
	if (h.type == VIRTIO_BLK_T_OUT)
		return c->out_len > sizeof(h) ? c->out_len - sizeof(h) : 0;
	return 0;
}

void blk_engine_kicked(struct blk_disk *d, unsigned q)
{
	struct blk_engine *e = d->engine;
	bool unscheduled = false;

	for (;;) {
		struct blk_req *r = e->free_requests;
		int got;

		if (r) {
			e->free_requests = r->next_free;
			e->nfree--;
		} else if (!(r = malloc(sizeof(*r)))) {
			log_warnx("out of memory for requests; queue %u waits for the next kick", q);
			break;
		}
		got = vhost_backend_pop(&d->b, q, &r->c);
		if (got <= 0) {
			r->next_free = e->free_requests;
			e->free_requests = r;
			e->nfree++;
			if (got < 0)
				log_warnx("queue %u: the driver broke the ring's rules; the queue stops", q);
			break;
		}
		r->d = d;
		r->q = q;
		r->pending = 1;
		r->held = false;
		d->inflight++;
		if (!d->group) {
			start_request(r);
			req_put(r);
			unscheduled = true;
			continue;
		}
		r->sr.bytes = request_bytes(&r->c);
		r->sr.owner = d;
		blk_sched_enqueue(&e->sched, d->group, &r->sr, blk_engine_now());
	}
	/*
	 * What waits in the scheduler goes when the loop pumps, once every disk's
	 * kicks are in: pumped here, the first disk kicked would have the disk to
	 * itself, whatever its QoS.
	 */
	if (unscheduled)
		blk_engine_pump(e);
}

void blk_engine_complete(struct blk_engine *e)
{
	reap_completions(e);
	release_held(e, blk_engine_now());
}

/* Starts r, which the scheduler let go (or which must go at once). */
static void start_scheduled(struct blk_engine *e, struct blk_req *r)
{
	r->scheduled = true;
	e->started++;
	start_request(r);
	req_put(r);
}

void blk_engine_pump(struct blk_engine *e)
{
	release_held(e, blk_engine_now());
	for (;;) {
		unsigned n = 0;
		enum blk_sched_phase phase;
		struct blk_sched_req *sr;

		while (e->started < e->depth && (sr = blk_sched_pick(&e->sched, blk_engine_now(), &phase))) {
			start_scheduled(e, (struct blk_req *)sr);
			n++;
			if (!e->have_ring)
				notify_all(e); /* served at once: told at once */
		}
		if (!n || !e->have_ring)
			break;
		io_uring_submit(&e->ring);
		/* Reads the page cache holds complete within the submit: no poll round for them. */
		reap_completions(e);
		/* Told now, not when the backlog is gone: a backlog may last as long as others send. */
		notify_all(e);
	}
	if (e->have_ring)
		io_uring_submit(&e->ring);
	notify_all(e);
}

int64_t blk_engine_timeout_ns(struct blk_engine *e)
{
	uint64_t now = blk_engine_now(), due = blk_sched_next_due(&e->sched, now);
	const struct blk_req *held = e->delayed;

	if (e->started >= e->depth)
		due = UINT64_MAX; /* a completion wakes the loop first */
	if (held && held->due_ns < due)
		due = held->due_ns;
	if (due == UINT64_MAX)
		return -1;
	return due > now ? (int64_t)(due - now) : 0;
}

static void op_done(struct blk_op *op, int res);

/* Completes what the ring has finished, without waiting. */
static void reap_completions(struct blk_engine *e)
{
	struct io_uring_cqe *cqe;

	if (!e->have_ring)
		return;
	while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
		struct blk_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&e->ring, cqe);
		if (op)
			op_done(op, res);
	}
}

static void op_done(struct blk_op *op, int res)
{
	struct blk_req *r = op->req;
	int ret = 0;

	if (op->cr) {
		cache_fill_done(op, res);
		return;
	}
	if (op->niov == 0) /* a flush */
		ret = res;
	else if (res == -EINVAL && op->direct) /* alignment O_DIRECT refused: plainly instead */
		ret = op_finish_plainly(op, 0);
	else if (res < 0)
		ret = res;
	else if ((uint64_t)res < op->len)
		ret = op_finish_plainly(op, (uint64_t)res);
	if (ret < 0) {
		r->status = VIRTIO_BLK_S_IOERR;
		log_warnx("%s: %s at byte %llu of the image file: %s", r->d->id,
			  op->niov == 0 ? "flush" : op->write ? "write" : "read",
			  (unsigned long long)op->off, strerror(-ret));
	}
	free(op);
	req_put(r);
}

void blk_engine_reap(struct blk_engine *e)
{
	reap_completions(e);
	blk_engine_pump(e);
}

void blk_engine_drain(struct blk_disk *d)
{
	struct blk_engine *e = d->engine;
	struct blk_sched_req *sr = blk_sched_take_owner(&e->sched, d, blk_engine_now()), *next;

	/* What still waits in the scheduler goes now: the front-end is owed an answer for it. */
	for (; sr; sr = next) {
		next = sr->next;
		start_scheduled(e, (struct blk_req *)sr);
	}
	if (e->have_ring)
		io_uring_submit(&e->ring);
	for (;;) {
		struct io_uring_cqe *cqe;
		int ret;

		release_held(e, UINT64_MAX); /* the front-end goes: no use holding its answers back */
		if (!d->inflight || !e->have_ring)
			break;
		ret = io_uring_submit_and_wait(&e->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
			break;
		if (io_uring_peek_cqe(&e->ring, &cqe) == 0)
			blk_engine_reap(e);
	}
	if (d->inflight)
		log_warnx("%s: %u requests could not be finished", d->id, d->inflight);
}

/* ---- the device as vhost-user sees it ---- */

static int get_config(void *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct blk_disk *d = dev;
	uint8_t cfg[60] = {0};
	uint64_t capacity = d->img->size / SECTOR;
	uint32_t seg_max = 128 - 2, blk_size = SECTOR, max_discard = UINT32_MAX / SECTOR;
	uint32_t discard_segs = BLK_MAX_DISCARD_SEGMENTS, discard_align = 1;
	uint16_t nq = BLK_NUM_QUEUES;

	memcpy(cfg + 0, &capacity, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	cfg[CONFIG_WRITEBACK] = d->writeback;
	memcpy(cfg + 34, &nq, 2);
	memcpy(cfg + 36, &max_discard, 4);
	memcpy(cfg + 40, &discard_segs, 4);
	memcpy(cfg + 44, &discard_align, 4);
	if (off > sizeof(cfg) || len > sizeof(cfg) - off)
		return -EINVAL;
	memcpy(buf, cfg + off, len);
	return 0;
}

/* Only the writeback byte is writable: the guest's choice of cache mode. */
static int set_config(void *dev, const uint8_t *buf, uint32_t off, uint32_t len)
{
	struct blk_disk *d = dev;

	if (off != CONFIG_WRITEBACK || len != 1 || buf[0] > 1)
		return -EINVAL;
	if (d->writeback && !buf[0])
		image_flush(d->img); /* from now on every write is durable; so is what came before */
	d->writeback = buf[0];
	return 0;
}

static void queue_kicked(void *dev, struct vhost_backend *b, unsigned q)
{
	blk_engine_kicked(dev, q);
}

static void quiesce(void *dev, struct vhost_backend *b)
{
	blk_engine_drain(dev);
}

void blk_disk_init_ops(struct blk_disk *d, bool readonly)
{
	d->ops = (struct vhost_device_ops){
		.features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			    (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
			    (1ULL << VIRTIO_BLK_F_CONFIG_WCE) | (1ULL << VIRTIO_BLK_F_MQ),
		.num_queues = BLK_NUM_QUEUES,
		.queue_size = BLK_QUEUE_SIZE,
		.get_config = get_config,
		.set_config = set_config,
		.queue_kicked = queue_kicked,
		.quiesce = quiesce,
	};
	if (readonly)
		d->ops.features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		d->ops.features |= 1ULL << VIRTIO_BLK_F_DISCARD;
}
