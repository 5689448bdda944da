#include "lib/passed_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int passed_fd(const char *path)
{
	const char *p;
	char *end;
	long n;

	if (strncmp(path, "/dev/fd/", 8))
		return -1;
	p = path + 8;
	if (*p < '0' || *p > '9')
		return -1;
	n = strtol(p, &end, 10);
	if (*end || n < 0 || n > 65535 || fcntl((int)n, F_GETFD) < 0)
		return -1;
	return (int)n;
}

int passed_open(const char *path, int flags)
{
	int n = passed_fd(path), fd;

	if (n < 0)
		return open(path, flags | O_CLOEXEC);
	fd = fcntl(n, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0)
		lseek(fd, 0, SEEK_SET); /* fails harmlessly on a socket or pipe */
	return fd;
}
