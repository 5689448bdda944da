#include "blk/sandbox.h"

#include <seccomp.h>

#include "lib/sandbox.h"

#define DEFAULT_USER "domus-blk"

/* What serving vhost-user requests on open descriptors takes, and no more. */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(close), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(accept4),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(setsockopt), /* a front-end's 1 s send and receive limits */
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), SCMP_SYS(ftruncate), SCMP_SYS(memfd_create), SCMP_SYS(fcntl),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(clock_gettime),
	SCMP_SYS(futex), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall), SCMP_SYS(exit),
	SCMP_SYS(exit_group), SCMP_SYS(io_uring_enter), SCMP_SYS(fallocate),
	/* Each worker's epoll set (made before): descriptors in and out as they come and go. */
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(epoll_ctl),
	SCMP_SYS(sched_yield), /* a worker stepping aside while the main thread takes its lock */
};

int blk_sandbox_enter(const char *user, char *err, size_t errlen)
{
	return sandbox_enter(user, DEFAULT_USER, allowed, sizeof(allowed) / sizeof(allowed[0]), err,
			     errlen);
}
