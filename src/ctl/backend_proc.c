#include "ctl/backend_proc.h"

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

#include "ctl/domusd.h"
#include "lib/log.h"
#include "vmm/child_supervisor.h"

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void backend_proc_init(struct backend_proc *p, const char *name, const char *program,
		       int (*spawn)(const char *, bool, pid_t *, int *, char *, size_t),
		       void (*started)(struct backend_proc *, bool))
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	snprintf(p->program, sizeof(p->program), "%s", program);
	p->spawn = spawn;
	p->started = started;
	p->pidfd = p->ctl_fd = p->timer_fd = -1;
	p->delay_ms = 25; /* doubled to the first back-off, 50 ms */
	p->w_pid = (struct watch){W_BACKEND_PID, p};
	p->w_timer = (struct watch){W_BACKEND_TIMER, p};
}

static int spawn(struct backend_proc *p, char *err, size_t errlen)
{
	int ret = p->spawn(p->program, D.verbose, &p->pid, &p->ctl_fd, err, errlen);

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
	watch_add(p->pidfd, &p->w_pid);
	return 0;
}

int backend_proc_ensure(struct backend_proc *p, char *err, size_t errlen)
{
	int ret;

	if (p->pid || p->timer_fd >= 0)
		return 0;
	if ((ret = spawn(p, err, errlen)) < 0)
		return ret;
	if (p->started)
		p->started(p, false);
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
	watch_del(p->pidfd);
	close(p->pidfd);
	close(p->ctl_fd);
	p->pidfd = p->ctl_fd = -1;
	p->delay_ms = child_restart_delay_ms(p->delay_ms, now_ms() - p->started_ms);
	p->restarts++;
	log_warnx("%s (pid %d) %s %d%s; starting it again in %u ms (restart %u)", p->name, (int)p->pid,
		  si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status,
		  child_end_note(si.si_code, si.si_status), p->delay_ms, p->restarts);
	p->pid = 0;
	if (p->timer_fd < 0) {
		p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (p->timer_fd < 0) {
			log_warn("timerfd");
			return;
		}
		watch_add(p->timer_fd, &p->w_timer);
	}
	when.it_value.tv_sec = p->delay_ms / 1000;
	when.it_value.tv_nsec = (long)(p->delay_ms % 1000) * 1000000;
	timerfd_settime(p->timer_fd, 0, &when, NULL);
}

void backend_proc_restart(struct backend_proc *p)
{
	char err[512];

	if (p->timer_fd >= 0) {
		watch_del(p->timer_fd);
		close(p->timer_fd);
		p->timer_fd = -1;
	}
	if (spawn(p, err, sizeof(err)) < 0) {
		log_warnx("cannot start %s again: %s; the domains wait", p->name, err);
		return;
	}
	if (p->started)
		p->started(p, true);
}

void backend_proc_stop(struct backend_proc *p)
{
	if (p->pid) {
		close(p->ctl_fd); /* it finishes what is in flight and exits */
		p->ctl_fd = -1;
		if (p->pidfd >= 0) {
			struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
			if (poll(&pf, 1, 5000) != 1)
				kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			watch_del(p->pidfd);
			close(p->pidfd);
			p->pidfd = -1;
		}
		p->pid = 0;
	}
	if (p->timer_fd >= 0) {
		watch_del(p->timer_fd);
		close(p->timer_fd);
	}
	p->timer_fd = -1;
}
