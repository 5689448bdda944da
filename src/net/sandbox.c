#include "net/sandbox.h"

#include <seccomp.h>

#include "lib/sandbox.h"

#define DEFAULT_USER "domus-net"

/* What switching frames between descriptors it was handed takes, and no more. */
static const int allowed[] = {
    /* Frames and messages: the TAP, flow and capture files, eventfds, the timerfd. */
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    /* The control socket (SCM_RIGHTS), vhost-user connections, IPFIX on its UDP socket. */
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendto),
    /* A front-end connecting on a port's listening socket, and its 1 s send/receive limit. */
    SCMP_SYS(accept4),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    SCMP_SYS(close),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    /* The loop's epoll set (made before): descriptors in and out as ports come and go. */
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    /* Guest memory and the state memfd (mmap of descriptors handed over), and malloc. */
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    /* Sizes of memfds (fstat) and non-blocking mode for the TAP and capture files (fcntl). */
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(fcntl),
    /* Timestamps for the datapath, flow records and captures; the hash seed of a fresh state. */
    SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(getrandom),
    /* libc internals: locks, signals returning, the exit. */
    SCMP_SYS(futex),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

int net_sandbox_enter(const char *user, char *err, size_t errlen)
{
	return sandbox_enter(user, DEFAULT_USER, allowed, sizeof(allowed) / sizeof(allowed[0]), err,
			     errlen);
}
