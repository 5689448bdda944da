#include "blk/sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define NOBODY 65534
#define DEFAULT_USER "domus-blk"

/* What serving vhost-user requests on open descriptors takes, and no more. */
static const int allowed[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
	SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(close), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(accept4),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
	SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), SCMP_SYS(ftruncate), SCMP_SYS(memfd_create), SCMP_SYS(fcntl),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(clock_gettime),
	SCMP_SYS(futex), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall), SCMP_SYS(exit),
	SCMP_SYS(exit_group), SCMP_SYS(io_uring_enter), SCMP_SYS(fallocate),
};

int blk_sandbox_enter(const char *user, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	uid_t uid = NOBODY;
	gid_t gid = NOBODY;
	int ret;

	if (geteuid() == 0) {
		/* Root opened the images and bound the sockets; an unprivileged user serves them. */
		struct passwd *pw = getpwnam(user ? user : DEFAULT_USER);
		if (pw) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		} else if (user) {
			snprintf(err, errlen, "no user '%s' to run as", user);
			return -ENOENT;
		}
		if (uid == 0 || setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			snprintf(err, errlen, "dropping to user %s: %s", pw ? pw->pw_name : "nobody",
				 uid == 0 ? "it is root" : strerror(errno));
			return uid == 0 ? -EPERM : -errno;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -errno;
	}
	/* Anything else fails with EPERM rather than happening. */
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -ENOMEM;
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
		if (ret < 0) {
			snprintf(err, errlen, "seccomp rule %zu: %s", i, strerror(-ret));
			seccomp_release(ctx);
			return ret;
		}
	}
	ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret < 0) {
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-ret));
		return ret;
	}
	return 0;
}
