#include "lib/backend_proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned backend_restart_delay_ms(unsigned previous_ms, long lifetime_ms)
{
	/* One that dies within a second of starting would die again: back off, up to 5 s. */
	if (lifetime_ms < 1000)
		return previous_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : previous_ms * 2;
	return BACKOFF_MIN_MS;
}

const char *backend_end_note(int code, int status)
{
	if (code != CLD_EXITED && status == SIGSYS)
		return " (SIGSYS: a system call outside its seccomp allow-list; the kernel's log names it)";
	return "";
}

void backend_proc_init(struct backend_proc *p, const char *name, const char *program,
		       int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
		       int (*started)(struct backend_proc *, bool, char *, size_t),
		       const struct watch_loop *loop, int pid_kind, int timer_kind)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	snprintf(p->program, sizeof(p->program), "%s", program);
	p->spawn = spawn;
	p->started = started;
	p->pidfd = p->ctl_fd = p->timer_fd = -1;
	p->loop = loop;
	p->delay_ms = BACKOFF_MIN_MS / 2; /* doubled to the first back-off */
	p->w_pid = (struct watch){pid_kind, p};
	p->w_timer = (struct watch){timer_kind, p};
}

int backend_proc_find(struct backend_proc *p, void (*find)(char *, size_t, const char *))
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	self[n > 0 ? n : 0] = 0;
	find(p->program, sizeof(p->program), self);
	return access(p->program, X_OK) < 0 ? -ENOENT : 0;
}

static void end(struct backend_proc *p);

static int spawn(struct backend_proc *p, char *err, size_t errlen)
{
	int ret = p->spawn(p->program, p->verbose, &p->pid, &p->ctl_fd, err, errlen);

	if (ret < 0) {
		p->pid = 0;
		return ret;
	}
	p->started_ms = now_ms();
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (p->pidfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		close(p->ctl_fd);
		p->ctl_fd = -1;
		p->pid = 0;
		return ret;
	}
	p->loop->add(p->pidfd, &p->w_pid);
	return 0;
}

int backend_proc_ensure(struct backend_proc *p, char *err, size_t errlen)
{
	int ret;

	if (p->pid || p->timer_fd >= 0)
		return 0;
	if ((ret = spawn(p, err, errlen)) < 0)
		return ret;
	if (p->started && (ret = p->started(p, false, err, errlen)) < 0) {
		end(p);
		return ret;
	}
	return 0;
}

bool backend_proc_running(const struct backend_proc *p)
{
	return p->pid != 0;
}

void backend_proc_exited(struct backend_proc *p)
{
	siginfo_t si;
	struct itimerspec when = {{0, 0}, {0, 0}};

	memset(&si, 0, sizeof(si));
	waitid(P_PID, (id_t)p->pid, &si, WEXITED);
	p->loop->del(p->pidfd);
	close(p->pidfd);
	close(p->ctl_fd);
	p->pidfd = p->ctl_fd = -1;
	p->delay_ms = backend_restart_delay_ms(p->delay_ms, now_ms() - p->started_ms);
	p->restarts++;
	log_warnx("%s (pid %d) %s %d%s; starting it again in %u ms (restart %u)", p->name, (int)p->pid,
		  si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status,
		  backend_end_note(si.si_code, si.si_status), p->delay_ms, p->restarts);
	p->pid = 0;
	if (p->timer_fd < 0) {
		p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (p->timer_fd < 0) {
			log_warn("timerfd");
			return;
		}
		p->loop->add(p->timer_fd, &p->w_timer);
	}
	when.it_value.tv_sec = p->delay_ms / 1000;
	when.it_value.tv_nsec = (long)(p->delay_ms % 1000) * 1000000;
	timerfd_settime(p->timer_fd, 0, &when, NULL);
}

void backend_proc_restart(struct backend_proc *p)
{
	char err[512];

	if (p->timer_fd >= 0) {
		p->loop->del(p->timer_fd);
		close(p->timer_fd);
		p->timer_fd = -1;
	}
	if (spawn(p, err, sizeof(err)) < 0) {
		log_warnx("cannot start %s again: %s; what it serves waits", p->name, err);
		return;
	}
	/* One that will not take what it serves is ended: its end arms the next try. */
	if (p->started && p->started(p, true, err, sizeof(err)) < 0) {
		log_warnx("%s (pid %d): %s; ending it", p->name, (int)p->pid, err);
		kill(p->pid, SIGKILL);
	}
}

/* Its control socket closes: it finishes what is in flight and exits, within 5 s or killed. */
static void end(struct backend_proc *p)
{
	if (!p->pid)
		return;
	close(p->ctl_fd);
	p->ctl_fd = -1;
	if (p->pidfd >= 0) {
		struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
		if (poll(&pf, 1, 5000) != 1)
			kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->loop->del(p->pidfd);
		close(p->pidfd);
		p->pidfd = -1;
	}
	p->pid = 0;
}

void backend_proc_stop(struct backend_proc *p)
{
	end(p);
	if (p->timer_fd >= 0) {
		p->loop->del(p->timer_fd);
		close(p->timer_fd);
	}
	p->timer_fd = -1;
}
