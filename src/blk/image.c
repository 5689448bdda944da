#include "blk/image.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(p, 0, len); /* past the end of a sparse file: zeros */
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int raw_read(struct image *img, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	/* Unlike a qcow2 file, a raw one is exactly the disk: ending early means it shrank. */
	while (len) {
		ssize_t n = pread(img->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int raw_write(struct image *img, const void *buf, size_t len, uint64_t off)
{
	return pwrite_full(img->fd, buf, len, off);
}

static int raw_flush(struct image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static int raw_map(struct image *img, uint64_t off, uint64_t len, bool write,
		   struct image_extent *e)
{
	*e = (struct image_extent){.fd = img->fd, .direct_fd = img->direct_fd, .off = off, .len = len,
				   .dev = img->dev, .ino = img->ino, .readonly = img->readonly};
	return 1;
}

static int raw_discard(struct image *img, uint64_t off, uint64_t len)
{
	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	/* A file system (or device) that cannot punch holes keeps the data: still correct. */
	return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
}

/* The size of a regular file or a block device; 0 if neither answers. */
static uint64_t file_size(int fd)
{
	struct stat st;
	off_t end;

	if (fstat(fd, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	end = lseek(fd, 0, SEEK_END);
	return end < 0 ? 0 : (uint64_t)end;
}

static int raw_check(struct image *img, char *err, size_t errlen)
{
	uint64_t now = file_size(img->fd);

	if (now == img->size)
		return 0;
	snprintf(err, errlen, "the raw image changed size under us (opened at %llu bytes, now %llu)",
		 (unsigned long long)img->size, (unsigned long long)now);
	return -ESTALE;
}

static void raw_close(struct image *img)
{
	close(img->fd);
	free(img);
}

static const struct image_ops raw_ops = {
	.read = raw_read,   .write = raw_write,	    .flush = raw_flush, .map = raw_map,
	.discard = raw_discard, .check = raw_check, .close = raw_close,
};

int image_format_parse(const char *name, enum image_format *f)
{
	if (!strcmp(name, "raw"))
		*f = IMAGE_RAW;
	else if (!strcmp(name, "qcow2"))
		*f = IMAGE_QCOW2;
	else
		return -EINVAL;
	return 0;
}

static bool in_range(const struct image *img, size_t len, uint64_t off)
{
	return off <= img->size && len <= img->size - off;
}

int image_read(struct image *img, void *buf, size_t len, uint64_t off)
{
	if (!in_range(img, len, off))
		return -ERANGE;
	return len ? img->ops->read(img, buf, len, off) : 0;
}

int image_write(struct image *img, const void *buf, size_t len, uint64_t off)
{
	if (img->readonly)
		return -EROFS;
	if (!in_range(img, len, off))
		return -ERANGE;
	return len ? img->ops->write(img, buf, len, off) : 0;
}

int image_flush(struct image *img)
{
	return img->readonly ? 0 : img->ops->flush(img);
}

int image_map(struct image *img, uint64_t off, uint64_t len, bool write, struct image_extent *e)
{
	if (!in_range(img, len, off) || len == 0)
		return -ERANGE;
	if (write && img->readonly)
		return -EROFS;
	return img->ops->map(img, off, len, write, e);
}

int image_discard(struct image *img, uint64_t off, uint64_t len)
{
	if (img->readonly)
		return -EROFS;
	if (!in_range(img, len, off))
		return -ERANGE;
	return len ? img->ops->discard(img, off, len) : 0;
}

int image_check(struct image *img, char *err, size_t errlen)
{
	for (unsigned depth = 0; img; img = img->backing, depth++) {
		char why[256];
		int ret = img->ops->check(img, why, sizeof(why));
		if (ret < 0) {
			if (depth)
				snprintf(err, errlen, "backing file %u: %s", depth, why);
			else
				snprintf(err, errlen, "%s", why);
			return ret;
		}
	}
	return 0;
}

void image_set_direct(struct image *img, int fd)
{
	if (img->direct_fd >= 0)
		close(img->direct_fd);
	img->direct_fd = fd;
}

void image_close(struct image *img)
{
	while (img) {
		struct image *next = img->backing;
		if (img->direct_fd >= 0)
			close(img->direct_fd);
		img->ops->close(img);
		img = next;
	}
}

/* Files already in a chain, by device and inode: a chain that loops is refused. */
struct chain_seen {
	dev_t dev[IMAGE_MAX_CHAIN + 1];
	ino_t ino[IMAGE_MAX_CHAIN + 1];
	unsigned n;
};

static int open_one(int fd, enum image_format format, bool readonly, image_open_backing_fn ob,
		    void *opaque, struct chain_seen *seen, struct image **out, char *err,
		    size_t errlen)
{
	char backing[1024] = "", backing_fmt[32] = "";
	struct image *img = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		snprintf(err, errlen, "not a regular file or block device");
		close(fd);
		return -EINVAL;
	}
	for (unsigned i = 0; i < seen->n; i++)
		if (seen->dev[i] == st.st_dev && seen->ino[i] == st.st_ino) {
			snprintf(err, errlen, "the backing chain loops back on itself");
			close(fd);
			return -ELOOP;
		}
	if (seen->n > IMAGE_MAX_CHAIN) {
		snprintf(err, errlen, "the backing chain is deeper than %d files", IMAGE_MAX_CHAIN);
		close(fd);
		return -ELOOP;
	}
	seen->dev[seen->n] = st.st_dev;
	seen->ino[seen->n] = st.st_ino;
	seen->n++;
	if (format == IMAGE_RAW) {
		img = calloc(1, sizeof(*img));
		if (!img) {
			close(fd);
			return -ENOMEM;
		}
		img->ops = &raw_ops;
		img->format = IMAGE_RAW;
		img->fd = fd;
		img->direct_fd = -1;
		img->readonly = readonly;
		img->dev = st.st_dev;
		img->ino = st.st_ino;
		img->size = file_size(fd);
		*out = img;
		return 0;
	}
	ret = qcow2_open(fd, readonly, &img, backing, sizeof(backing), backing_fmt,
			 sizeof(backing_fmt), err, errlen);
	if (ret < 0)
		return ret;
	img->dev = st.st_dev;
	img->ino = st.st_ino;
	if (backing[0]) {
		enum image_format bf = IMAGE_QCOW2;
		char why[512];
		int bfd = -1;

		if (backing_fmt[0] && image_format_parse(backing_fmt, &bf) < 0) {
			snprintf(err, errlen, "backing file %s has format '%s'; only raw and qcow2 are served",
				 backing, backing_fmt);
			image_close(img);
			return -ENOTSUP;
		}
		if (!ob) {
			snprintf(err, errlen, "backing file %s: no way to open it here", backing);
			image_close(img);
			return -ENOENT;
		}
		ret = ob(opaque, backing, &bfd, why, sizeof(why));
		if (ret < 0) {
			snprintf(err, errlen, "backing file %s: %s", backing, why);
			image_close(img);
			return ret;
		}
		if (!backing_fmt[0]) {
			/* No recorded format: qcow2 if it says so; raw otherwise, read-only anyway. */
			uint8_t head[8];
			bf = pread(bfd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
					     qcow2_probe(head, sizeof(head))
				     ? IMAGE_QCOW2
				     : IMAGE_RAW;
		}
		/* A backing file is only ever read. */
		ret = open_one(bfd, bf, true, ob, opaque, seen, &img->backing, why, sizeof(why));
		if (ret < 0) {
			snprintf(err, errlen, "backing file %s: %s", backing, why);
			image_close(img);
			return ret;
		}
	}
	*out = img;
	return 0;
}

int image_open(int fd, enum image_format format, bool readonly, image_open_backing_fn open_backing,
	       void *opaque, struct image **out, char *err, size_t errlen)
{
	struct chain_seen seen = {.n = 0};

	return open_one(fd, format, readonly, open_backing, opaque, &seen, out, err, errlen);
}

/* Backing names are relative to the directory of the image that names them, as in qemu. */
static int open_relative(void *opaque, const char *name, int *fd, char *err, size_t errlen)
{
	char *dir = opaque, path[PATH_MAX];

	if (name[0] == '/')
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	/* The next backing file is relative to this one's directory. */
	snprintf(dir, PATH_MAX, "%s", dirname(path));
	return 0;
}

int image_open_path(const char *path, enum image_format format, bool readonly, struct image **out,
		    char *err, size_t errlen)
{
	char dir[PATH_MAX];
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	{
		char copy[PATH_MAX];
		snprintf(copy, sizeof(copy), "%s", path);
		snprintf(dir, sizeof(dir), "%s", dirname(copy));
	}
	return image_open(fd, format, readonly, open_relative, dir, out, err, errlen);
}

struct chain_record {
	char dir[PATH_MAX];
	int *fds;
	char (*names)[IMAGE_NAME_MAX];
	unsigned n;
};

/* Opens a backing file as image_open_path would, and keeps a copy of it and its name. */
static int open_recorded(void *opaque, const char *name, int *fd, char *err, size_t errlen)
{
	struct chain_record *r = opaque;
	int ret, copy;

	if (r->n == IMAGE_MAX_CHAIN || strlen(name) >= IMAGE_NAME_MAX || strchr(name, '\n')) {
		snprintf(err, errlen, "cannot be passed on (too deep, too long, or a newline in its name)");
		return -EINVAL;
	}
	ret = open_relative(r->dir, name, fd, err, errlen);
	if (ret < 0)
		return ret;
	copy = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0) {
		snprintf(err, errlen, "dup: %s", strerror(errno));
		return -errno;
	}
	r->fds[r->n] = copy;
	snprintf(r->names[r->n], IMAGE_NAME_MAX, "%s", name);
	r->n++;
	return 0;
}

int image_open_chain(const char *path, enum image_format format, bool readonly, int *fd,
		     int backing_fds[IMAGE_MAX_CHAIN], char names[IMAGE_MAX_CHAIN][IMAGE_NAME_MAX],
		     unsigned *n, char *err, size_t errlen)
{
	struct chain_record r = {.fds = backing_fds, .names = names, .n = 0};
	struct image *img;
	int top, copy, ret;

	*n = 0;
	*fd = -1;
	top = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (top < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	copy = fcntl(top, F_DUPFD_CLOEXEC, 3);
	{
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof(tmp), "%s", path);
		snprintf(r.dir, sizeof(r.dir), "%s", dirname(tmp));
	}
	ret = copy < 0 ? -errno : image_open(top, format, readonly, open_recorded, &r, &img, err, errlen);
	if (ret < 0) {
		if (copy < 0)
			close(top);
		else
			close(copy);
		for (unsigned i = 0; i < r.n; i++)
			close(backing_fds[i]);
		return ret;
	}
	image_close(img);
	*fd = copy;
	*n = r.n;
	return 0;
}

int image_pread(int fd, void *buf, size_t len, uint64_t off)
{
	return pread_full(fd, buf, len, off);
}

int image_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	return pwrite_full(fd, buf, len, off);
}
