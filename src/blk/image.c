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
	return pread_full(img->fd, buf, len, off);
}

static int raw_write(struct image *img, const void *buf, size_t len, uint64_t off)
{
	return pwrite_full(img->fd, buf, len, off);
}

static int raw_flush(struct image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static void raw_close(struct image *img)
{
	close(img->fd);
	free(img);
}

static const struct image_ops raw_ops = {
	.read = raw_read, .write = raw_write, .flush = raw_flush, .close = raw_close,
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

void image_close(struct image *img)
{
	while (img) {
		struct image *next = img->backing;
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
		img->readonly = readonly;
		if (S_ISREG(st.st_mode)) {
			img->size = (uint64_t)st.st_size;
		} else {
			off_t end = lseek(fd, 0, SEEK_END);
			img->size = end < 0 ? 0 : (uint64_t)end;
		}
		*out = img;
		return 0;
	}
	ret = qcow2_open(fd, readonly, &img, backing, sizeof(backing), backing_fmt,
			 sizeof(backing_fmt), err, errlen);
	if (ret < 0)
		return ret;
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

int image_pread(int fd, void *buf, size_t len, uint64_t off)
{
	return pread_full(fd, buf, len, off);
}

int image_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	return pwrite_full(fd, buf, len, off);
}
