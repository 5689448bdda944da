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

/* A run of guest bytes that plain reads or writes on a descriptor can move. */
struct image_extent {
	int fd;        /* the file that holds the run (the image's, or a backing file's) */
	int direct_fd; /* the same file opened O_DIRECT, or -1 */
	uint64_t off;  /* where in that file */
	uint64_t len;  /* how many of the bytes asked for share this answer */
	/* The file's identity, and whether it was opened read-only (the shared read cache's key
	 * and its first condition: blk/cache.h). */
	uint64_t dev, ino;
	bool readonly;
};

struct image_ops {
	int (*read)(struct image *img, void *buf, size_t len, uint64_t off);
	int (*write)(struct image *img, const void *buf, size_t len, uint64_t off);
	int (*flush)(struct image *img);
	/* See image_map; off and len are already checked against the size. */
	int (*map)(struct image *img, uint64_t off, uint64_t len, bool write, struct image_extent *e);
	int (*discard)(struct image *img, uint64_t off, uint64_t len);
	/* Whether the file still is what was opened; see image_check. */
	int (*check)(struct image *img, char *err, size_t errlen);
	void (*close)(struct image *img);
};

struct image {
	const struct image_ops *ops;
	enum image_format format;
	int fd;
	int direct_fd;          /* the same file with O_DIRECT, for data, or -1 (image_set_direct) */
	bool readonly;
	uint64_t dev, ino;      /* the file's st_dev and st_ino */
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
/*
 * For a supervisor that hands images to domus-blk as descriptors: opens
 * path and its backing chain (checked as image_open_path does, so a bad
 * chain is refused here with its reason), and returns the image's file in
 * *fd and each backing file, with the name the chain records for it, in
 * order. *n says how many backing files; the caller closes every fd.
 */
#define IMAGE_NAME_MAX 1024
int image_open_chain(const char *path, enum image_format format, bool readonly, int *fd,
		     int backing_fds[IMAGE_MAX_CHAIN], char names[IMAGE_MAX_CHAIN][IMAGE_NAME_MAX],
		     unsigned *n, char *err, size_t errlen) __attribute__((warn_unused_result));
int image_read(struct image *img, void *buf, size_t len, uint64_t off);
int image_write(struct image *img, const void *buf, size_t len, uint64_t off);
int image_flush(struct image *img);
/*
 * Where the bytes at off lie, for a caller that moves data itself (on
 * io_uring): 1 when the first e->len bytes (at most len) sit at e->off in
 * e->fd and plain reads (write false) or in-place writes (write true) there
 * are right; 0 when those e->len bytes must go through image_read or
 * image_write instead (zeros, compressed or unallocated clusters, copy on
 * write); -errno for a corrupt image or a range past the end.
 */
int image_map(struct image *img, uint64_t off, uint64_t len, bool write, struct image_extent *e);
/*
 * Gives back the space of [off, off+len) where the format can: a hole in a
 * raw file, clusters of a qcow2 image that read as zeros afterwards. Parts
 * it cannot give back keep their data (a discard is a hint). 0 or -errno.
 */
int image_discard(struct image *img, uint64_t off, uint64_t len);
/*
 * Whether the files of the chain still match what was opened: a raw file
 * of the same size, a qcow2 file with the same virtual size that has not
 * been cut short. 0, or -ESTALE with what changed in err.
 */
int image_check(struct image *img, char *err, size_t errlen);
/* Takes fd, the image's file opened with O_DIRECT, for data transfers (image_map). */
void image_set_direct(struct image *img, int fd);
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
