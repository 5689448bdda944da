/*
 * qcow2 metadata on hostile images: the input is the image file. It is
 * opened read-only and read in several places, then opened writable and
 * written, as a guest would, through whatever tables it claims to have.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blk/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int no_backing(void *opaque, const char *name, int *fd, char *err, size_t errlen)
{
	(void)opaque;
	(void)name;
	(void)fd;
	strncpy(err, "no backing files here", errlen);
	return -2;
}

static int as_file(const uint8_t *data, size_t size)
{
	int fd = memfd_create("qcow2", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (image_pwrite(fd, data, size, 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[70000];
	struct image *img;
	char err[512];
	int fd;

	for (int writable = 0; writable < 2; writable++) {
		fd = as_file(data, size);
		if (fd < 0)
			return 0;
		if (image_open(fd, IMAGE_QCOW2, !writable, no_backing, NULL, &img, err, sizeof(err)) < 0)
			continue;
		for (uint64_t i = 0; i < 8 && img->size; i++) {
			uint64_t off = (img->size / 8) * i;
			size_t len = img->size - off < sizeof(buf) ? (size_t)(img->size - off) : sizeof(buf);
			if (writable) {
				memset(buf, (int)i, len);
				(void)image_write(img, buf, len < 4096 ? len : 4096, off);
			}
			(void)image_read(img, buf, len, off);
		}
		image_close(img);
	}
	return 0;
}
