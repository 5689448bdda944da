#include "lib/ctlproc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/unix_socket.h"

static struct {
	const char *argv0;
	int dirfd;
} cgroups[4];

void ctlproc_set_cgroup(const char *argv0, int dirfd)
{
	for (size_t i = 0; i < sizeof(cgroups) / sizeof(cgroups[0]); i++)
		if (!cgroups[i].argv0 || !strcmp(cgroups[i].argv0, argv0)) {
			cgroups[i].argv0 = argv0;
			cgroups[i].dirfd = dirfd;
			return;
		}
}

/* What each kind of process is started with beyond its control socket. */
static struct spawn_options {
	const char *argv0;
	unsigned threads, poll_us;
} options[4];

static struct spawn_options *options_of(const char *argv0, bool make)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if (options[i].argv0 && !strcmp(options[i].argv0, argv0))
			return &options[i];
		if (!options[i].argv0 && make) {
			options[i].argv0 = argv0;
			return &options[i];
		}
	}
	return NULL;
}

void ctlproc_set_threads(const char *argv0, unsigned n)
{
	struct spawn_options *o = options_of(argv0, true);

	if (o)
		o->threads = n;
}

void ctlproc_set_poll_us(const char *argv0, unsigned us)
{
	struct spawn_options *o = options_of(argv0, true);

	if (o)
		o->poll_us = us;
}

static int cgroup_of(const char *argv0)
{
	for (size_t i = 0; i < sizeof(cgroups) / sizeof(cgroups[0]); i++)
		if (cgroups[i].argv0 && !strcmp(cgroups[i].argv0, argv0))
			return cgroups[i].dirfd;
	return -1;
}

int ctlproc_join_cgroup(int dirfd)
{
	int fd = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "0", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

int ctlproc_spawn(const char *program, const char *argv0, bool verbose, pid_t *pid, int *ctl_fd,
		  char *err, size_t errlen)
{
	int sp[2], cgroup = cgroup_of(argv0);
	const struct spawn_options *o = options_of(argv0, false);
	char nthreads[16], npoll[16];
	const char *args[10];
	unsigned n = 0;

	/* Made here: the child calls only what is async-signal-safe. */
	args[n++] = argv0;
	args[n++] = "--control-fd";
	args[n++] = "3";
	args[n++] = verbose ? "-v" : "--quiet";
	if (o && o->threads) {
		snprintf(nthreads, sizeof(nthreads), "%u", o->threads);
		args[n++] = "--threads";
		args[n++] = nthreads;
	}
	if (o && o->poll_us) {
		snprintf(npoll, sizeof(npoll), "%u", o->poll_us);
		args[n++] = "--poll-us";
		args[n++] = npoll;
	}
	args[n] = NULL;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	*pid = fork();
	if (*pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -errno;
	}
	if (*pid == 0) {
		/* Only async-signal-safe calls from here to exec: the parent may have threads. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* It ends with its supervisor: the control socket hangs up, and this. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Its own cgroup before it allocates: memory is charged where it is first touched. */
		if (cgroup >= 0 && ctlproc_join_cgroup(cgroup) < 0)
			_exit(126);
		if (dup2(sp[1], 3) < 0)
			_exit(127);
		syscall(SYS_close_range, 4, ~0U, 0);
		execv(program, (char *const *)args);
		_exit(127);
	}
	close(sp[1]);
	*ctl_fd = sp[0];
	return 0;
}

int ctlproc_request(int ctl_fd, const char *who, const char *text, const int *fds, unsigned nfds,
		    int timeout_ms, char *detail, size_t detail_len, char *err, size_t errlen)
{
	struct pollfd p = {.fd = ctl_fd, .events = POLLIN};
	int none[UNIX_MAX_FDS];
	unsigned nnone;
	ssize_t n;
	char *reply;
	int ret = unix_send_fds(ctl_fd, text, strlen(text), fds, nfds);

	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", who, strerror(-ret));
		return ret;
	}
	if (poll(&p, 1, timeout_ms) != 1) {
		snprintf(err, errlen, "%s did not answer", who);
		return -ETIMEDOUT;
	}
	reply = malloc(CTLPROC_REPLY_MAX + 1);
	if (!reply) {
		snprintf(err, errlen, "no memory for %s's answer", who);
		return -ENOMEM;
	}
	n = unix_recv_fds(ctl_fd, reply, CTLPROC_REPLY_MAX, none, UNIX_MAX_FDS, &nnone);
	for (unsigned i = 0; i < nnone; i++)
		close(none[i]);
	if (n <= 0) {
		snprintf(err, errlen, "%s went away (see its messages above)", who);
		free(reply);
		return -EPIPE;
	}
	reply[n] = 0;
	/* "ok", "ok DETAIL" or "ok\nLINES" (a multi-line answer). */
	if (!strcmp(reply, "ok") ||
	    (detail && (!strncmp(reply, "ok ", 3) || !strncmp(reply, "ok\n", 3)))) {
		if (detail)
			snprintf(detail, detail_len, "%s", reply[2] ? reply + 3 : "");
		ret = 0;
	} else {
		snprintf(err, errlen, "%s", strncmp(reply, "error ", 6) ? reply : reply + 6);
		ret = -EINVAL;
	}
	free(reply);
	return ret;
}

void ctlproc_find_program(char *out, size_t len, const char *env, const char *name,
			  const char *tree_dir, const char *near)
{
	const char *value = getenv(env);
	char dir[PATH_MAX], *slash;

	if (value && *value) {
		snprintf(out, len, "%s", value);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", near);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	snprintf(out, len, "%.4000s/%s", slash ? dir : ".", name);
	if (access(out, X_OK) == 0)
		return;
	snprintf(out, len, "%.4000s/%s/%s", slash ? dir : ".", tree_dir, name);
}
