#include "vmm/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "lib/passed_fd.h"
#include "lib/sandbox.h"
#include "lib/unix_socket.h"
#include "vmm/vm.h"

#define NEW_ROOT "/tmp" /* a directory every host has, covered in our namespace only */

uid_t vmm_domain_uid(unsigned domid)
{
	return (uid_t)(VMM_UID_BASE + domid);
}

static int fail(char *err, size_t errlen, int error, const char *what)
{
	snprintf(err, errlen, "confining domus-vmm: %s: %s", what, strerror(error));
	return -error;
}

/* mkdir -p of path under NEW_ROOT, to mount on. */
static int make_mount_point(const char *path)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), NEW_ROOT "%s/", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + strlen(NEW_ROOT) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

/* Adds path's directory to dirs[] unless it is there. */
static void add_dir(char dirs[][PATH_MAX], unsigned *n, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 0;

	if (len == 0 || len >= PATH_MAX)
		return;
	for (unsigned i = 0; i < *n; i++)
		if (strlen(dirs[i]) == len && !strncmp(dirs[i], path, len))
			return;
	memcpy(dirs[*n], path, len);
	dirs[(*n)++][len] = 0;
}

/*
 * The directories of the sockets a domain's process may reach again by
 * path: its back-ends', which restart (and a restarted domusd makes their
 * sockets anew, so the directory, not the socket, is kept).
 */
static unsigned kept_dirs(const struct vm_config *cfg, char dirs[][PATH_MAX])
{
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (cfg->disks[i].vhost_user && passed_fd(cfg->disks[i].path) < 0)
			add_dir(dirs, &n, cfg->disks[i].path);
	for (unsigned i = 0; i < cfg->nnics; i++)
		if (cfg->nics[i].socket[0] && passed_fd(cfg->nics[i].socket) < 0)
			add_dir(dirs, &n, cfg->nics[i].socket);
	/* The guest connects to the host's "SOCKET_PORT" sockets, beside SOCKET. */
	if (cfg->vsock.cid && !cfg->vsock.vhost)
		add_dir(dirs, &n, cfg->vsock.socket);
	return n;
}

static int limit(int resource, rlim_t value)
{
	struct rlimit r = {value, value};

	return setrlimit(resource, &r) < 0 ? -errno : 0;
}

int vmm_confine(const struct vm_config *cfg, unsigned domid, char *err, size_t errlen)
{
	static char kvm_path[32], paths[VM_MAX_DISKS + VM_MAX_NICS + 1][PATH_MAX];
	int fds[VM_MAX_DISKS + VM_MAX_NICS + 1], kvm, ret = 0;
	unsigned n = kept_dirs(cfg, paths);
	uid_t uid = vmm_domain_uid(domid);
	char src[64], dst[PATH_MAX];

	/* malloc counts the CPUs (from /sys) the first time threads contend: it need not. */
	mallopt(M_ARENA_MAX, 8);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail(err, errlen, errno, "/dev/kvm");
	snprintf(kvm_path, sizeof(kvm_path), "/dev/fd/%d", kvm);
	vm_kvm_device = kvm_path;
	if (unshare(CLONE_NEWNS) < 0) {
		n = 0;
		ret = fail(err, errlen, errno, "unshare(CLONE_NEWNS)");
		goto out;
	}
	/* The directories, held (in the new namespace: a bind takes its own) before the host's tree goes. */
	for (unsigned i = 0; i < n; i++)
		if ((fds[i] = open(paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			ret = fail(err, errlen, errno, paths[i]);
			n = i;
			goto out;
		}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("domus-vmm", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k") < 0) {
		ret = fail(err, errlen, errno, "mounting its root");
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[i]);
		snprintf(dst, sizeof(dst), NEW_ROOT "%.4000s", paths[i]);
		if ((ret = make_mount_point(paths[i])) < 0) {
			ret = fail(err, errlen, -ret, dst);
			goto out;
		}
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
			ret = fail(err, errlen, errno, dst);
			goto out;
		}
		if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  NULL) < 0) {
			ret = fail(err, errlen, errno, "remounting a socket directory");
			goto out;
		}
	}
	if (mkdir(NEW_ROOT "/.old", 0700) < 0 || syscall(SYS_pivot_root, NEW_ROOT, NEW_ROOT "/.old") < 0 ||
	    chdir("/") < 0 || umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0 ||
	    mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0) {
		ret = fail(err, errlen, errno, "pivot_root");
		goto out;
	}
	/* Enough for its threads and queues; no core files of guest memory. */
	if ((ret = limit(RLIMIT_CORE, 0)) < 0 || (ret = limit(RLIMIT_NPROC, 256)) < 0 ||
	    (ret = limit(RLIMIT_NOFILE, 4096)) < 0) {
		ret = fail(err, errlen, -ret, "setrlimit");
		goto out;
	}
	if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
		ret = fail(err, errlen, errno, "changing to the domain's user");
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		ret = fail(err, errlen, errno, "prctl");
out:
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

/*
 * The system calls of a confined domus-vmm, by kind of thread. The process
 * loads the control thread's list when it confines itself (every thread
 * made after inherits it); vCPU and device threads each load theirs on top
 * as they start. Anything else kills the process (SIGSYS). Arguments are
 * held where they matter: no executable mapping, fcntl for flags and
 * duplicating only, Unix sockets only, threads but no processes (clone3,
 * whose flags a filter cannot read, says ENOSYS, so libc uses clone).
 */
enum { CALL_ANY = 0, CALL_CONTROL = 1, CALL_DEVICE = 2 }; /* who may, besides every thread */

#define ANY(name) {SCMP_SYS(name), CALL_ANY}
#define ONLY(name, who) {SCMP_SYS(name), who}
static const struct {
	int nr;
	int who; /* CALL_ANY, or the kinds of thread (bits) that may */
} calls[] = {
	/* Guest I/O on descriptors: disks, the TAP, eventfds, vhost-user messages. */
	ANY(read), ANY(write), ANY(readv), ANY(writev), ANY(pread64), ANY(pwrite64), ANY(preadv),
	ANY(pwritev), ANY(fsync), ANY(fdatasync), ANY(fallocate), ANY(ftruncate), ANY(lseek),
	ANY(newfstatat), ANY(fstat), ANY(close), ANY(fcntl), ANY(sendmsg), ANY(recvmsg), ANY(sendto),
	ANY(recvfrom), ANY(poll), ANY(ppoll),
	/* KVM (the requests in ioctls[] only), and the guest's memory (balloon, inflight regions of vhost-user devices). */
	ANY(ioctl), ANY(mmap), ANY(mprotect), ANY(munmap), ANY(mremap), ANY(madvise), ANY(brk),
	ANY(memfd_create), ANY(eventfd2), ANY(getrandom),
	/* libc: locks, signals (a vCPU is kicked out of KVM_RUN by one), time, threads' ends. */
	ANY(futex), ANY(rt_sigreturn), ANY(rt_sigprocmask), ANY(rt_sigaction), ANY(rt_sigtimedwait),
	ANY(tgkill), ANY(getpid), ANY(gettid), ANY(clock_gettime), ANY(clock_nanosleep),
	ANY(nanosleep), ANY(sched_yield), ANY(sched_getaffinity), ANY(sched_setaffinity), ANY(rseq),
	ANY(set_robust_list), ANY(restart_syscall), ANY(exit), ANY(exit_group),
	/* Each thread loads its own filter on top (it can only take calls away). */
	ANY(seccomp),
	/* Reconnecting to a back-end that restarted (device threads), accepting domusd and consoles. */
	ONLY(socket, CALL_CONTROL | CALL_DEVICE), ONLY(connect, CALL_CONTROL | CALL_DEVICE),
	ONLY(shutdown, CALL_CONTROL | CALL_DEVICE), ONLY(getsockopt, CALL_CONTROL | CALL_DEVICE),
	ONLY(setsockopt, CALL_CONTROL | CALL_DEVICE),
	/* Accepting domusd and consoles (control), host programs on a vsock socket (device). */
	ONLY(accept4, CALL_CONTROL | CALL_DEVICE),
	/* The control thread's own: threads for each boot, its timers, pipes and signals. */
	ONLY(clone, CALL_CONTROL), ONLY(signalfd4, CALL_CONTROL), ONLY(timerfd_create, CALL_CONTROL),
	ONLY(timerfd_settime, CALL_CONTROL), ONLY(pipe2, CALL_CONTROL), ONLY(epoll_create1, CALL_CONTROL),
	ONLY(epoll_ctl, CALL_CONTROL),
	/* The I/O thread (a device thread) waits for the devices' kick eventfds. */
	ONLY(epoll_wait, CALL_CONTROL | CALL_DEVICE), ONLY(epoll_pwait, CALL_CONTROL | CALL_DEVICE),
};
#undef ANY
#undef ONLY

/*
 * The ioctl requests a confined domus-vmm makes, and no other: a boot (in
 * a thread of the confined process) makes its VM and vCPUs; vCPU threads
 * run them and, on the guest's configuration writes, move memory slots
 * (BARs mapped into the guest), MSI routes, irqfds and ioeventfds; device
 * threads signal interrupts and drive the kernel's vhost-vsock. The
 * terminal's for `domus run`'s console, isatty() among them.
 */
static const unsigned long ioctls[] = {
	KVM_RUN,
	/* The VM and its vCPUs, each boot. */
	KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM,
	KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2,
	KVM_SET_USER_MEMORY_REGION, KVM_GET_SUPPORTED_CPUID, KVM_CREATE_VCPU, KVM_SET_CPUID2,
	KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_GET_SREGS, KVM_SET_SREGS, KVM_SET_REGS, KVM_SET_FPU,
	KVM_GET_STATS_FD,
	/* Interrupts and notifications: lines, MSIs, their routes, irqfds and ioeventfds. */
	KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD,
	/* Pausing stops the guest's clock. */
	KVM_GET_CLOCK, KVM_SET_CLOCK,
	/* The in-VMM NIC's TAP: what it may hand the guest, as the driver negotiated (DRIVER_OK). */
	TUNSETOFFLOAD,
	/* The host kernel's vhost-vsock. */
	VHOST_SET_OWNER, VHOST_GET_FEATURES, VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE,
	VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE, VHOST_SET_VRING_ADDR, VHOST_SET_VRING_KICK,
	VHOST_SET_VRING_CALL, VHOST_VSOCK_SET_GUEST_CID, VHOST_VSOCK_SET_RUNNING,
	/* The terminal of `domus run`. */
	TCGETS, TCSETS, TCSETSW, TCSETSF,
};

static bool confined; /* threads load their filters only in a confined process */

static int allow(scmp_filter_ctx ctx, int nr)
{
	if (nr == SCMP_SYS(socket))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
	if (nr == SCMP_SYS(clone))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (nr == SCMP_SYS(ioctl)) {
		int ret = 0;
		/* The kernel reads the request as 32 bits: the upper half cannot smuggle anything. */
		for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]) && ret == 0; i++)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)ioctls[i]));
		return ret;
	}
	return sandbox_allow(ctx, nr);
}

static int load_filter(int kind)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int ret = ctx ? 0 : -ENOMEM;

	/* no_new_privs is set already, and prctl is not among the calls a thread may make. */
	if (ret == 0)
		ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/*
	 * Every exit of a vCPU passes two filters (the process's and its
	 * thread's): a binary tree over the call numbers, not a chain, and
	 * KVM_RUN's ioctl first. Both are hints an older libseccomp may refuse.
	 */
	if (ret == 0) {
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
		(void)seccomp_syscall_priority(ctx, SCMP_SYS(ioctl), 255);
	}
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]) && ret == 0; i++)
		if (calls[i].who == CALL_ANY || (calls[i].who & kind))
			ret = allow(ctx, calls[i].nr);
	if (ret == 0 && kind == CALL_CONTROL)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/*
	 * libc opens files of its own lazily (the CPU count, for malloc's
	 * arenas): in a root with nothing to open, opening fails rather than kills.
	 */
	if (ret == 0)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
	if (ret == 0)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
	if (ret == 0)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	return ret;
}

int vmm_confine_thread(enum vmm_thread kind)
{
	if (!confined)
		return 0;
	return load_filter(kind == VMM_THREAD_VCPU ? CALL_ANY : CALL_DEVICE);
}

void vmm_confine_test_forbidden_call(void)
{
	if (confined && getenv("DOMUS_VMM_TEST_FORBIDDEN_CALL"))
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
}

int vmm_confine_calls(char *err, size_t errlen)
{
	int ret = load_filter(CALL_CONTROL);

	if (ret < 0) {
		snprintf(err, errlen, "confining domus-vmm: loading its seccomp filter: %s", strerror(-ret));
		return ret;
	}
	confined = true;
	return 0;
}

static int broker_fd = -1;
static pthread_mutex_t broker_lock = PTHREAD_MUTEX_INITIALIZER;

/* One question at a time: device threads reconnect on their own. */
static int ask_broker(const char *path, int type)
{
	struct pollfd p = {.fd = broker_fd, .events = POLLIN};
	char reply[32];
	int fd = -1, ret;
	unsigned nfds = 0;
	ssize_t n;

	if ((type & ~SOCK_NONBLOCK) != SOCK_STREAM)
		return -EPROTOTYPE;
	pthread_mutex_lock(&broker_lock);
	ret = send(broker_fd, path, strlen(path), MSG_NOSIGNAL) < 0 ? -errno : 0;
	if (ret == 0 && poll(&p, 1, 5000) != 1)
		ret = -ETIMEDOUT;
	if (ret == 0) {
		n = unix_recv_fds(broker_fd, reply, sizeof(reply) - 1, &fd, 1, &nfds);
		if (n <= 0) {
			ret = n < 0 ? (int)n : -EPIPE;
		} else {
			reply[n] = 0;
			if (nfds == 1 && !strcmp(reply, "ok"))
				/* The front connected it (blocking); what we do with it next is not. */
				ret = (type & SOCK_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : fd;
			else if (sscanf(reply, "error %d", &ret) == 1 && ret > 0)
				ret = -ret;
			else
				ret = -EPROTO;
			if (ret < 0 && nfds == 1)
				close(fd);
		}
	}
	pthread_mutex_unlock(&broker_lock);
	return ret;
}

void vmm_confine_broker(int fd)
{
	broker_fd = fd;
	unix_connect_set_broker(ask_broker);
}
