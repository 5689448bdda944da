/*
 * Disk images as domus-blk serves them: a raw file or a qcow2 file with its
 * backing chain, behind one set of operations. Offsets and lengths are in
 * bytes; every call checks them against the image's size.
 */
#ifndef DOMUS_IMAGE_H
#define DOMUS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_CHAIN 16 /* backing files deeper than this are refused */

enum image_format { IMAGE_RAW, IMAGE_QCOW2 };

struct image;

struct image_ops {
	int (*read)(struct image *img, void *buf, size_t len, uint64_t off);
	int (*write)(struct image *img, const void *buf, size_t len, uint64_t off);
	int (*flush)(struct image *img);
	void (*close)(struct image *img);
};

struct image {
	const struct image_ops *ops;
	enum image_format format;
	int fd;
	bool readonly;
	uint64_t size;          /* what the guest sees, in bytes */
	struct image *backing;  /* qcow2: where unallocated clusters come from; NULL for zeros */
};

/*
 * Opens the image on fd (which it then owns) as format. A qcow2 image that
 * names a backing file gets it through open_backing, called with the name
 * as the image records it; the chain is checked for loops and depth.
 */
typedef int (*image_open_backing_fn)(void *opaque, const char *name, int *fd, char *err,
				     size_t errlen);
int image_open(int fd, enum image_format format, bool readonly, image_open_backing_fn open_backing,
	       void *opaque, struct image **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Opens a path, and backing files relative to the image's directory as qemu does. */
int image_open_path(const char *path, enum image_format format, bool readonly, struct image **out,
		    char *err, size_t errlen) __attribute__((warn_unused_result));
int image_read(struct image *img, void *buf, size_t len, uint64_t off);
int image_write(struct image *img, const void *buf, size_t len, uint64_t off);
int image_flush(struct image *img);
void image_close(struct image *img);
/* "raw" or "qcow2"; -EINVAL for anything else. */
int image_format_parse(const char *name, enum image_format *f);

/* Whole reads (zeros past the end of the file) and whole writes; 0 or -errno. */
int image_pread(int fd, void *buf, size_t len, uint64_t off);
int image_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* qcow2.c: format-specific entry points used by image.c. */
int qcow2_open(int fd, bool readonly, struct image **out, char *backing_name, size_t backing_len,
	       char *backing_format, size_t format_len, char *err, size_t errlen);
bool qcow2_probe(const void *header, size_t len);

#endif
