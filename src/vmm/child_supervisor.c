#include "vmm/child_supervisor.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

void child_supervisor_init(struct child_supervisor *s, const char *name, const char *lost,
			   int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
			   int (*serve)(void *, int, char *, size_t), void *opaque)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->lost = lost;
	s->spawn = spawn;
	s->serve = serve;
	s->opaque = opaque;
	s->pidfd = s->ctl_fd = s->stop_fd = -1;
}

int child_supervisor_find(struct child_supervisor *s, void (*find)(char *, size_t, const char *))
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	self[n > 0 ? n : 0] = 0;
	find(s->program, sizeof(s->program), self);
	return access(s->program, X_OK) < 0 ? -ENOENT : 0;
}

/* Starts the child and serves it. 0 or -errno with why in err. */
static int spawn(struct child_supervisor *s, char *err, size_t errlen)
{
	int ret = s->spawn(s->program, s->verbose, &s->pid, &s->ctl_fd, err, errlen);

	if (ret == 0)
		ret = s->serve(s->opaque, s->ctl_fd, err, errlen);
	s->pidfd = ret == 0 ? (int)syscall(SYS_pidfd_open, s->pid, 0) : -1;
	if (ret == 0 && s->pidfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
	}
	if (ret < 0 && s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (ret < 0 && s->ctl_fd >= 0) {
		close(s->ctl_fd);
		s->ctl_fd = -1;
	}
	return ret;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned child_restart_delay_ms(unsigned previous_ms, long lifetime_ms)
{
	/* One that dies within a second of starting would die again: back off, up to 5 s. */
	if (lifetime_ms < 1000)
		return previous_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : previous_ms * 2;
	return BACKOFF_MIN_MS;
}

static void *supervise(void *arg)
{
	struct child_supervisor *s = arg;
	long started = now_ms();
	unsigned delay = BACKOFF_MIN_MS / 2;
	char err[512];

	for (;;) {
		struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN},
				      {.fd = s->pidfd, .events = POLLIN}};
		siginfo_t si;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents)
			return NULL;
		if (!(p[1].revents & POLLIN))
			continue;
		memset(&si, 0, sizeof(si));
		waitid(P_PID, (id_t)s->pid, &si, WEXITED);
		close(s->pidfd);
		close(s->ctl_fd);
		s->pidfd = s->ctl_fd = -1;
		delay = child_restart_delay_ms(delay, now_ms() - started);
		s->restarts++;
		log_warnx("%s (pid %d) %s %d%s; starting it again in %u ms (restart %u)", s->name,
			  (int)s->pid,
			  si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal",
			  si.si_status, child_end_note(si.si_code, si.si_status), delay, s->restarts);
		s->pid = 0;
		if (poll(p, 1, (int)delay) > 0)
			return NULL;
		started = now_ms();
		if (spawn(s, err, sizeof(err)) < 0) {
			log_warnx("cannot start %s again (%s); %s", s->name, err, s->lost);
			return NULL;
		}
		log_info("%s started again (pid %d)", s->name, (int)s->pid);
	}
}

int child_supervisor_start(struct child_supervisor *s, char *err, size_t errlen)
{
	int ret = spawn(s, err, errlen);

	if (ret < 0)
		return ret;
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0 || pthread_create(&s->thread, NULL, supervise, s) != 0) {
		snprintf(err, errlen, "cannot supervise it");
		child_supervisor_stop(s);
		return -EAGAIN;
	}
	s->running = true;
	return 0;
}

void child_supervisor_stop(struct child_supervisor *s)
{
	uint64_t one = 1;

	if (s->running) {
		if (write(s->stop_fd, &one, 8) < 0)
			log_warn("stopping the %s supervisor", s->name);
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	if (s->ctl_fd >= 0)
		close(s->ctl_fd); /* the child finishes what is in flight and exits */
	if (s->pid > 0) {
		struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
		if (s->pidfd < 0 || poll(&p, 1, 5000) != 1)
			kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	s->pid = 0;
	s->pidfd = s->stop_fd = s->ctl_fd = -1;
}

const char *child_end_note(int code, int status)
{
	if (code != CLD_EXITED && status == SIGSYS)
		return " (SIGSYS: a system call outside its seccomp allow-list; the kernel's log names it)";
	return "";
}
