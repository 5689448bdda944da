/*
 * qcow2 (versions 2 and 3, as qemu's docs/interop/qcow2.txt describes it):
 * reading, including zlib-compressed clusters, and writing by allocating
 * clusters at the end of the file, with copy-on-write from the backing file
 * or from shared (snapshot) clusters and refcounts kept.
 *
 * Every table and offset read from the file is checked before use: a
 * hostile image gets -EINVAL or -EIO with a message, never a wild read.
 * Metadata is written in an order that leaves, after a crash at any point,
 * at worst a leaked cluster: refcount first, then data, then the L2 entry.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "blk/image.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define OFFSET_MASK 0x00fffffffffffe00ULL
#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL
#define L1E_RESERVED 0x7f000000000001feULL
#define L2E_RESERVED 0x3f000000000001feULL
#define RT_RESERVED 0x00000000000001ffULL
#define MAX_L1_BYTES (32u << 20)
#define MAX_RT_BYTES (8u << 20)
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_EXTERNAL_DATA 0x44415441u
#define EXT_ENCRYPTION 0x0537be77u
#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_KNOWN (INCOMPAT_DIRTY | INCOMPAT_CORRUPT)

struct qcow2 {
	struct image img;
	unsigned version;
	unsigned cluster_bits, l2_bits, refcount_order;
	uint64_t cluster_size;
	uint64_t l1_offset, l1_entries;
	uint64_t *l1; /* host order */
	uint64_t rt_offset, rt_entries;
	uint64_t *rt;
	uint64_t file_end;   /* nothing the image points at may lie at or past this */
	uint64_t next_free;  /* where the next cluster is allocated */
	uint64_t l2_cached;  /* offset of the L2 table in l2, 0 if none */
	uint64_t *l2;        /* big-endian, as on disk */
	uint8_t *scratch;    /* one cluster: the cluster being read or copied on write */
	uint8_t *zeros;      /* one cluster of zeros, for new tables */
	uint8_t *compressed; /* one cluster plus a sector, as read */
	uint8_t *inflated;   /* one cluster, decompressed */
};

enum cluster_kind { C_UNALLOCATED, C_ZERO, C_NORMAL, C_COMPRESSED };

static int bad(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static uint32_t be32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint64_t be64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

bool qcow2_probe(const void *header, size_t len)
{
	return len >= 8 && be32_at(header) == QCOW2_MAGIC &&
	       (be32_at((const uint8_t *)header + 4) == 2 || be32_at((const uint8_t *)header + 4) == 3);
}

static bool aligned(const struct qcow2 *q, uint64_t off)
{
	return (off & (q->cluster_size - 1)) == 0;
}

/* The L2 table at off, through a one-table cache. */
static int load_l2(struct qcow2 *q, uint64_t off)
{
	int ret;

	if (q->l2_cached == off)
		return 0;
	if (!aligned(q, off) || off == 0 || off >= q->file_end)
		return -EIO;
	ret = image_pread(q->img.fd, q->l2, q->cluster_size, off);
	q->l2_cached = ret < 0 ? 0 : off;
	return ret;
}

/* What guest offset off maps to: its kind, and for C_NORMAL the host offset of its cluster. */
static int lookup(struct qcow2 *q, uint64_t off, enum cluster_kind *kind, uint64_t *entry)
{
	uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
	uint64_t l2i = (off >> q->cluster_bits) & ((1ULL << q->l2_bits) - 1);
	uint64_t l1e, l2e, host;
	int ret;

	*kind = C_UNALLOCATED;
	*entry = 0;
	if (l1i >= q->l1_entries)
		return 0;
	l1e = q->l1[l1i];
	if (l1e & L1E_RESERVED)
		return -EIO;
	if (!(l1e & OFFSET_MASK))
		return 0;
	ret = load_l2(q, l1e & OFFSET_MASK);
	if (ret < 0)
		return ret;
	l2e = be64toh(q->l2[l2i]);
	*entry = l2e;
	if (l2e & OFLAG_COMPRESSED) {
		*kind = C_COMPRESSED;
		return 0;
	}
	if (l2e & L2E_RESERVED)
		return -EIO;
	if (l2e & OFLAG_ZERO) {
		if (q->version < 3)
			return -EIO;
		*kind = C_ZERO;
		return 0;
	}
	host = l2e & OFFSET_MASK;
	if (!host)
		return 0;
	if (!aligned(q, host) || host >= q->file_end)
		return -EIO;
	*kind = C_NORMAL;
	return 0;
}

/* Inflates the compressed cluster an L2 entry describes into q->inflated. */
static int read_compressed(struct qcow2 *q, uint64_t l2e)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t host = l2e & ((1ULL << x) - 1);
	uint64_t sectors = ((l2e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t len = sectors * 512 - (host & 511);
	z_stream z;
	int ret;

	if (len > q->cluster_size + 512)
		len = q->cluster_size + 512;
	if (host >= q->file_end)
		return -EIO;
	if (len > q->file_end - host)
		len = q->file_end - host;
	ret = image_pread(q->img.fd, q->compressed, len, host);
	if (ret < 0)
		return ret;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = q->compressed;
	z.avail_in = (uInt)len;
	z.next_out = q->inflated;
	z.avail_out = (uInt)q->cluster_size;
	ret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* The stream must fill the cluster exactly; anything else is a corrupt image. */
	if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR) || z.avail_out != 0)
		return -EIO;
	return 0;
}

/* Reads part of one cluster: [off, off+len) lies within a single cluster. */
static int read_in_cluster(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t off)
{
	enum cluster_kind kind;
	uint64_t entry, in = off & (q->cluster_size - 1);
	int ret = lookup(q, off, &kind, &entry);

	if (ret < 0)
		return ret;
	switch (kind) {
	case C_ZERO:
		memset(buf, 0, len);
		return 0;
	case C_NORMAL:
		return image_pread(q->img.fd, buf, len, (entry & OFFSET_MASK) + in);
	case C_COMPRESSED:
		ret = read_compressed(q, entry);
		if (ret == 0)
			memcpy(buf, q->inflated + in, len);
		return ret;
	case C_UNALLOCATED:
		break;
	}
	memset(buf, 0, len);
	if (q->img.backing && off < q->img.backing->size) {
		size_t n = off + len > q->img.backing->size ? (size_t)(q->img.backing->size - off) : len;
		return image_read(q->img.backing, buf, n, off);
	}
	return 0;
}

static int qcow2_read(struct image *img, void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint8_t *p = buf;

	while (len) {
		size_t chunk = q->cluster_size - (off & (q->cluster_size - 1));
		int ret;

		if (chunk > len)
			chunk = len;
		ret = read_in_cluster(q, p, chunk, off);
		if (ret < 0)
			return ret;
		p += chunk;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

/* ---- refcounts and allocation ---- */

static unsigned refcount_bits(const struct qcow2 *q)
{
	return 1u << q->refcount_order;
}

static int refcount_locate(struct qcow2 *q, uint64_t host, uint64_t *block, uint64_t *index)
{
	unsigned per_block_bits = q->cluster_bits + 3 - q->refcount_order;
	uint64_t cluster = host >> q->cluster_bits;
	uint64_t rti = cluster >> per_block_bits;

	if (rti >= q->rt_entries)
		return -ENOSPC;
	*block = q->rt[rti] & ~RT_RESERVED;
	*index = cluster & ((1ULL << per_block_bits) - 1);
	return 0;
}

static int refcount_get(struct qcow2 *q, uint64_t host, uint64_t *value)
{
	uint64_t block, index, bits = refcount_bits(q);
	uint8_t b[8];
	int ret = refcount_locate(q, host, &block, &index);

	*value = 0;
	if (ret < 0)
		return ret;
	if (!block)
		return 0;
	if (!aligned(q, block) || block >= q->file_end)
		return -EIO;
	if (bits < 8) {
		ret = image_pread(q->img.fd, b, 1, block + index * bits / 8);
		*value = (b[0] >> (index * bits % 8)) & ((1u << bits) - 1);
		return ret;
	}
	ret = image_pread(q->img.fd, b, bits / 8, block + index * (bits / 8));
	for (unsigned i = 0; i < bits / 8; i++)
		*value = *value << 8 | b[i];
	return ret;
}

static uint64_t alloc_raw(struct qcow2 *q)
{
	uint64_t off = q->next_free;

	q->next_free += q->cluster_size;
	if (q->next_free > q->file_end)
		q->file_end = q->next_free;
	return off;
}

static int refcount_set(struct qcow2 *q, uint64_t host, uint64_t value)
{
	uint64_t block, index, bits = refcount_bits(q);
	uint8_t b[8];
	int ret = refcount_locate(q, host, &block, &index);

	if (ret < 0)
		return ret;
	if (!block) {
		/* A new refcount block, which counts itself if it falls in its own range. */
		unsigned per_block_bits = q->cluster_bits + 3 - q->refcount_order;
		uint64_t rti = (host >> q->cluster_bits) >> per_block_bits, be;

		block = alloc_raw(q);
		/* Not scratch: this may happen while scratch holds a cluster being written. */
		ret = image_pwrite(q->img.fd, q->zeros, q->cluster_size, block);
		if (ret < 0)
			return ret;
		q->rt[rti] = block;
		be = htobe64(block);
		ret = image_pwrite(q->img.fd, &be, 8, q->rt_offset + rti * 8);
		if (ret < 0)
			return ret;
		ret = refcount_set(q, block, 1);
		if (ret < 0)
			return ret;
	}
	if (!aligned(q, block) || block >= q->file_end)
		return -EIO;
	if (bits < 64 && (value >> bits))
		return -EOVERFLOW;
	if (bits < 8) {
		uint64_t at = block + index * bits / 8;
		unsigned shift = (unsigned)(index * bits % 8);
		ret = image_pread(q->img.fd, b, 1, at);
		if (ret < 0)
			return ret;
		b[0] = (uint8_t)((b[0] & ~(((1u << bits) - 1) << shift)) | (value << shift));
		return image_pwrite(q->img.fd, b, 1, at);
	}
	for (unsigned i = 0; i < bits / 8; i++)
		b[bits / 8 - 1 - i] = (uint8_t)(value >> (8 * i));
	return image_pwrite(q->img.fd, b, bits / 8, block + index * (bits / 8));
}

/* A new cluster at the end of the file, its refcount 1 before anything points at it. */
static int alloc_cluster(struct qcow2 *q, uint64_t *off)
{
	*off = alloc_raw(q);
	return refcount_set(q, *off, 1);
}

/* One reference less to a cluster that was shared (a snapshot holds it too). */
static int unref_cluster(struct qcow2 *q, uint64_t host)
{
	uint64_t v;
	int ret = refcount_get(q, host, &v);

	if (ret < 0 || v == 0)
		return ret;
	return refcount_set(q, host, v - 1);
}

/* ---- writing ---- */

/* The L2 table for off, made writable: allocated, or copied if shared. */
static int l2_for_write(struct qcow2 *q, uint64_t off, uint64_t *l2_off)
{
	uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
	uint64_t l1e, neu, be;
	int ret;

	if (l1i >= q->l1_entries)
		return -EIO;
	l1e = q->l1[l1i];
	if (l1e & L1E_RESERVED)
		return -EIO;
	if ((l1e & OFFSET_MASK) && (l1e & OFLAG_COPIED)) {
		*l2_off = l1e & OFFSET_MASK;
		return load_l2(q, *l2_off);
	}
	if (l1e & OFFSET_MASK) {
		ret = load_l2(q, l1e & OFFSET_MASK);
		if (ret < 0)
			return ret;
	} else {
		memset(q->l2, 0, q->cluster_size);
	}
	ret = alloc_cluster(q, &neu);
	if (ret < 0)
		return ret;
	ret = image_pwrite(q->img.fd, q->l2, q->cluster_size, neu);
	if (ret < 0)
		return ret;
	q->l2_cached = neu;
	q->l1[l1i] = neu | OFLAG_COPIED;
	be = htobe64(q->l1[l1i]);
	ret = image_pwrite(q->img.fd, &be, 8, q->l1_offset + l1i * 8);
	if (ret < 0)
		return ret;
	if (l1e & OFFSET_MASK)
		ret = unref_cluster(q, l1e & OFFSET_MASK);
	*l2_off = neu;
	return ret;
}

static int write_in_cluster(struct qcow2 *q, const uint8_t *buf, size_t len, uint64_t off)
{
	uint64_t cs = q->cluster_size, start = off & ~(cs - 1), in = off - start;
	uint64_t l2_off, l2i = (off >> q->cluster_bits) & ((1ULL << q->l2_bits) - 1);
	uint64_t entry, host, be;
	enum cluster_kind kind;
	int ret = lookup(q, off, &kind, &entry);

	if (ret < 0)
		return ret;
	if (kind == C_NORMAL && (entry & OFLAG_COPIED))
		return image_pwrite(q->img.fd, buf, len, (entry & OFFSET_MASK) + in);
	/* The whole cluster as it will be: old contents (backing, shared, zero) under the new. */
	if (len < cs) {
		uint64_t n = start + cs > q->img.size ? q->img.size - start : cs;
		memset(q->scratch, 0, cs);
		ret = qcow2_read(&q->img, q->scratch, (size_t)n, start);
		if (ret < 0)
			return ret;
	}
	memcpy(q->scratch + in, buf, len);
	ret = l2_for_write(q, off, &l2_off);
	if (ret < 0)
		return ret;
	if (kind == C_ZERO && (entry & OFFSET_MASK) && (entry & OFLAG_COPIED))
		host = entry & OFFSET_MASK; /* preallocated and ours: reuse it */
	else if ((ret = alloc_cluster(q, &host)) < 0)
		return ret;
	ret = image_pwrite(q->img.fd, q->scratch, cs, host);
	if (ret < 0)
		return ret;
	q->l2[l2i] = htobe64(host | OFLAG_COPIED);
	be = q->l2[l2i];
	ret = image_pwrite(q->img.fd, &be, 8, l2_off + l2i * 8);
	if (ret < 0)
		return ret;
	if (kind == C_NORMAL)
		return unref_cluster(q, entry & OFFSET_MASK);
	if (kind == C_COMPRESSED) {
		/* Each host cluster the compressed bytes touch holds one reference for them. */
		unsigned x = 62 - (q->cluster_bits - 8);
		uint64_t from = (entry & ((1ULL << x) - 1)) & ~511ULL;
		uint64_t sectors = ((entry >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
		for (uint64_t c = from & ~(cs - 1); c < from + sectors * 512 && !ret; c += cs)
			ret = unref_cluster(q, c);
	}
	return ret;
}

static int qcow2_write(struct image *img, const void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = (struct qcow2 *)img;
	const uint8_t *p = buf;

	while (len) {
		size_t chunk = q->cluster_size - (off & (q->cluster_size - 1));
		int ret;

		if (chunk > len)
			chunk = len;
		ret = write_in_cluster(q, p, chunk, off);
		if (ret < 0)
			return ret;
		p += chunk;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

static int qcow2_flush(struct image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static int qcow2_map(struct image *img, uint64_t off, uint64_t len, bool write,
		     struct image_extent *e)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t in = off & (q->cluster_size - 1), entry;
	enum cluster_kind kind;
	int ret = lookup(q, off, &kind, &entry);

	if (ret < 0)
		return ret;
	*e = (struct image_extent){.fd = -1, .direct_fd = -1, .len = q->cluster_size - in};
	if (e->len > len)
		e->len = len;
	/* Writes in place only to clusters that are ours alone; the rest is copy on write. */
	if (kind == C_NORMAL && (!write || (entry & OFLAG_COPIED))) {
		e->fd = img->fd;
		e->direct_fd = img->direct_fd;
		e->off = (entry & OFFSET_MASK) + in;
		e->dev = img->dev;
		e->ino = img->ino;
		e->readonly = img->readonly;
		return 1;
	}
	if (!write && kind == C_UNALLOCATED && img->backing && off < img->backing->size) {
		uint64_t n = img->backing->size - off < e->len ? img->backing->size - off : e->len;
		return image_map(img->backing, off, n, false, e);
	}
	return 0;
}

static int qcow2_discard(struct image *img, uint64_t off, uint64_t len)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t cs = q->cluster_size, end = off + len;
	uint64_t first = (off + cs - 1) & ~(cs - 1);

	/* Only whole clusters that are ours alone; a version 2 image with a backing file has
	 * no way to say "zeros" and keeps its data. */
	if (q->version < 3 && img->backing)
		return 0;
	for (uint64_t c = first; c + cs <= end || (c < end && end == img->size); c += cs) {
		uint64_t entry, l2_off, l2i = (c >> q->cluster_bits) & ((1ULL << q->l2_bits) - 1), be, v;
		enum cluster_kind kind;
		int ret = lookup(q, c, &kind, &entry);

		if (ret < 0)
			return ret;
		if (kind != C_NORMAL || !(entry & OFLAG_COPIED))
			continue;
		if ((ret = l2_for_write(q, c, &l2_off)) < 0)
			return ret;
		/* The entry first, the refcount after: a crash in between leaks the cluster, no more. */
		q->l2[l2i] = htobe64(q->version >= 3 ? OFLAG_ZERO : 0);
		be = q->l2[l2i];
		if ((ret = image_pwrite(img->fd, &be, 8, l2_off + l2i * 8)) < 0 ||
		    (ret = unref_cluster(q, entry & OFFSET_MASK)) < 0 ||
		    (ret = refcount_get(q, entry & OFFSET_MASK, &v)) < 0)
			return ret;
		if (v == 0 && fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)(entry & OFFSET_MASK), (off_t)cs) < 0 &&
		    errno != EOPNOTSUPP)
			return -errno;
	}
	return 0;
}

static int qcow2_check(struct image *img, char *err, size_t errlen)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint8_t b[8];
	uint64_t size;
	struct stat st;

	if (fstat(img->fd, &st) < 0 || (uint64_t)st.st_size < q->file_end) {
		snprintf(err, errlen, "the qcow2 file was cut short under us (%llu bytes, at least %llu "
			 "expected)", (unsigned long long)st.st_size, (unsigned long long)q->file_end);
		return -ESTALE;
	}
	if (image_pread(img->fd, b, 8, 24) < 0)
		return -EIO;
	size = be64_at(b);
	if (size != img->size) {
		snprintf(err, errlen, "the qcow2 image changed size under us (opened at %llu bytes, now "
			 "%llu)", (unsigned long long)img->size, (unsigned long long)size);
		return -ESTALE;
	}
	return 0;
}

static void qcow2_close(struct image *img)
{
	struct qcow2 *q = (struct qcow2 *)img;

	close(img->fd);
	free(q->l1);
	free(q->rt);
	free(q->l2);
	free(q->scratch);
	free(q->zeros);
	free(q->compressed);
	free(q->inflated);
	free(q);
}

static const struct image_ops qcow2_ops = {
	.read = qcow2_read,	  .write = qcow2_write, .flush = qcow2_flush, .map = qcow2_map,
	.discard = qcow2_discard, .check = qcow2_check, .close = qcow2_close,
};

/* ---- opening ---- */

static int read_extensions(struct qcow2 *q, const uint8_t *hdr, uint64_t start, uint64_t end,
			   char *fmt, size_t fmtlen, char *err, size_t errlen)
{
	uint64_t at = start;

	while (at + 8 <= end) {
		uint32_t type = be32_at(hdr + at), len = be32_at(hdr + at + 4);

		if (type == 0)
			return 0;
		if (len > end - at - 8)
			return bad(err, errlen, -EINVAL, "header extension 0x%08x runs past the first cluster",
				   type);
		if (type == EXT_BACKING_FORMAT) {
			if (len >= fmtlen)
				return bad(err, errlen, -EINVAL, "backing format name too long");
			memcpy(fmt, hdr + at + 8, len);
			fmt[len] = 0;
		} else if (type == EXT_EXTERNAL_DATA || type == EXT_ENCRYPTION) {
			return bad(err, errlen, -ENOTSUP, "%s images are not served",
				   type == EXT_ENCRYPTION ? "encrypted" : "external data file");
		}
		at += 8 + ((uint64_t)len + 7) / 8 * 8;
	}
	return 0;
}

static int qcow2_parse(struct qcow2 *q, const uint8_t *hdr, uint64_t hdr_len, bool readonly,
		       char *backing, size_t backing_len, char *fmt, size_t fmtlen, char *err,
		       size_t errlen)
{
	uint64_t backing_off = be64_at(hdr + 8), l1_bytes, rt_bytes, need_l1, header_length = 72;
	uint32_t backing_size = be32_at(hdr + 16), rt_clusters = be32_at(hdr + 56);
	uint64_t incompat = 0;

	if (be32_at(hdr) != QCOW2_MAGIC)
		return bad(err, errlen, -EINVAL, "not a qcow2 image (bad magic)");
	q->version = be32_at(hdr + 4);
	if (q->version != 2 && q->version != 3)
		return bad(err, errlen, -ENOTSUP, "qcow2 version %u is not supported (2 or 3)", q->version);
	q->cluster_bits = be32_at(hdr + 20);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return bad(err, errlen, -EINVAL, "cluster_bits %u out of range (9 to 21)", q->cluster_bits);
	q->cluster_size = 1ULL << q->cluster_bits;
	q->l2_bits = q->cluster_bits - 3;
	q->img.size = be64_at(hdr + 24);
	if (be32_at(hdr + 32) != 0)
		return bad(err, errlen, -ENOTSUP, "encrypted images are not served");
	q->l1_entries = be32_at(hdr + 36);
	q->l1_offset = be64_at(hdr + 40);
	q->rt_offset = be64_at(hdr + 48);
	q->refcount_order = 4;
	if (q->version == 3) {
		if (hdr_len < 104)
			return bad(err, errlen, -EINVAL, "truncated version 3 header");
		incompat = be64_at(hdr + 72);
		q->refcount_order = be32_at(hdr + 96);
		header_length = be32_at(hdr + 100);
		if (header_length < 104 || header_length > hdr_len)
			return bad(err, errlen, -EINVAL, "header_length %llu out of range",
				   (unsigned long long)header_length);
		if (incompat & ~INCOMPAT_KNOWN)
			return bad(err, errlen, -ENOTSUP,
				   "unsupported incompatible features 0x%llx (compression type, "
				   "external data or extended L2)",
				   (unsigned long long)(incompat & ~INCOMPAT_KNOWN));
		if (!readonly && (incompat & INCOMPAT_CORRUPT))
			return bad(err, errlen, -EINVAL, "the image is marked corrupt; repair it with "
				   "qemu-img check -r all or attach it read-only");
		if (!readonly && (incompat & INCOMPAT_DIRTY))
			return bad(err, errlen, -EINVAL, "the image is dirty (lazy refcounts); repair it "
				   "with qemu-img check -r all or attach it read-only");
		if (q->refcount_order > 6)
			return bad(err, errlen, -EINVAL, "refcount_order %u out of range (0 to 6)",
				   q->refcount_order);
	}
	if (q->img.size > (1ULL << 55))
		return bad(err, errlen, -EINVAL, "virtual size %llu is too large",
			   (unsigned long long)q->img.size);
	need_l1 = (q->img.size + (q->cluster_size << q->l2_bits) - 1) >> (q->cluster_bits + q->l2_bits);
	if (q->l1_entries < need_l1)
		return bad(err, errlen, -EINVAL, "L1 table of %llu entries is too small for %llu bytes",
			   (unsigned long long)q->l1_entries, (unsigned long long)q->img.size);
	l1_bytes = q->l1_entries * 8;
	if (l1_bytes > MAX_L1_BYTES)
		return bad(err, errlen, -EINVAL, "L1 table of %llu entries is too large",
			   (unsigned long long)q->l1_entries);
	if (q->l1_entries && (!aligned(q, q->l1_offset) || q->l1_offset == 0 ||
			      q->l1_offset >= q->file_end || l1_bytes > q->file_end - q->l1_offset))
		return bad(err, errlen, -EINVAL, "L1 table offset 0x%llx is outside the image",
			   (unsigned long long)q->l1_offset);
	rt_bytes = (uint64_t)rt_clusters << q->cluster_bits;
	if (rt_clusters == 0 || rt_bytes > MAX_RT_BYTES || !aligned(q, q->rt_offset) ||
	    q->rt_offset == 0 || q->rt_offset >= q->file_end || rt_bytes > q->file_end - q->rt_offset)
		return bad(err, errlen, -EINVAL, "refcount table (0x%llx, %u clusters) is outside the image",
			   (unsigned long long)q->rt_offset, rt_clusters);
	q->rt_entries = rt_bytes / 8;
	if (backing_off) {
		if (backing_size == 0 || backing_size >= backing_len || backing_off >= hdr_len ||
		    backing_size > hdr_len - backing_off)
			return bad(err, errlen, -EINVAL, "backing file name out of range");
		memcpy(backing, hdr + backing_off, backing_size);
		backing[backing_size] = 0;
		if (strlen(backing) != backing_size)
			return bad(err, errlen, -EINVAL, "backing file name holds a NUL byte");
	}
	return read_extensions(q, hdr, header_length, backing_off ? backing_off : hdr_len, fmt, fmtlen,
			       err, errlen);
}

int qcow2_open(int fd, bool readonly, struct image **out, char *backing, size_t backing_len,
	       char *backing_format, size_t format_len, char *err, size_t errlen)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	struct stat st;
	uint8_t *hdr = NULL;
	uint64_t hdr_len;
	int ret;

	*out = NULL;
	backing[0] = 0;
	backing_format[0] = 0;
	if (!q || fstat(fd, &st) < 0) {
		free(q);
		close(fd);
		return -ENOMEM;
	}
	q->img.ops = &qcow2_ops;
	q->img.format = IMAGE_QCOW2;
	q->img.fd = fd;
	q->img.direct_fd = -1;
	q->img.readonly = readonly;
	q->file_end = (uint64_t)st.st_size;
	/* The header, its extensions and the backing name live in the first cluster (at most 2 MiB). */
	hdr_len = q->file_end < (2u << 20) ? q->file_end : (2u << 20);
	if (hdr_len < 72) {
		ret = bad(err, errlen, -EINVAL, "too short for a qcow2 header (%llu bytes)",
			  (unsigned long long)hdr_len);
		goto fail;
	}
	hdr = malloc(hdr_len);
	if (!hdr || (ret = image_pread(fd, hdr, hdr_len, 0)) < 0) {
		ret = bad(err, errlen, -EIO, "cannot read the header");
		goto fail;
	}
	ret = qcow2_parse(q, hdr, hdr_len, readonly, backing, backing_len, backing_format, format_len,
			  err, errlen);
	if (ret < 0)
		goto fail;
	if (hdr_len > q->cluster_size)
		hdr_len = q->cluster_size;
	q->l1 = calloc(q->l1_entries + 1, 8);
	q->rt = calloc(q->rt_entries, 8);
	q->l2 = malloc(q->cluster_size);
	q->scratch = malloc(q->cluster_size);
	q->zeros = calloc(1, q->cluster_size);
	q->inflated = malloc(q->cluster_size);
	q->compressed = malloc(q->cluster_size + 512);
	if (!q->l1 || !q->rt || !q->l2 || !q->scratch || !q->zeros || !q->compressed ||
	    !q->inflated) {
		ret = bad(err, errlen, -ENOMEM, "out of memory for the image's tables");
		goto fail;
	}
	if ((ret = image_pread(fd, q->l1, q->l1_entries * 8, q->l1_offset)) < 0 ||
	    (ret = image_pread(fd, q->rt, q->rt_entries * 8, q->rt_offset)) < 0) {
		ret = bad(err, errlen, ret, "cannot read the image's tables");
		goto fail;
	}
	for (uint64_t i = 0; i < q->l1_entries; i++) {
		q->l1[i] = be64toh(q->l1[i]);
		if ((q->l1[i] & L1E_RESERVED) ||
		    ((q->l1[i] & OFFSET_MASK) &&
		     (!aligned(q, q->l1[i] & OFFSET_MASK) || (q->l1[i] & OFFSET_MASK) >= q->file_end))) {
			ret = bad(err, errlen, -EINVAL, "L1 entry %llu (0x%llx) is invalid",
				  (unsigned long long)i, (unsigned long long)q->l1[i]);
			goto fail;
		}
	}
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		q->rt[i] = be64toh(q->rt[i]);
		if (q->rt[i] && (!aligned(q, q->rt[i]) || q->rt[i] >= q->file_end)) {
			ret = bad(err, errlen, -EINVAL, "refcount table entry %llu (0x%llx) is invalid",
				  (unsigned long long)i, (unsigned long long)q->rt[i]);
			goto fail;
		}
	}
	q->next_free = (q->file_end + q->cluster_size - 1) & ~(q->cluster_size - 1);
	free(hdr);
	*out = &q->img;
	return 0;
fail:
	free(hdr);
	qcow2_close(&q->img);
	return ret;
}
