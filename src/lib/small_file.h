/* Files the kernel keeps small (/proc, /sys, cgroupfs), read whole. */
#ifndef DOMUS_SMALL_FILE_H
#define DOMUS_SMALL_FILE_H

#include <stddef.h>

/* path's contents into buf, at most len - 1 bytes and a NUL. 0 or -errno. */
int small_file_read(const char *path, char *buf, size_t len);

#endif
