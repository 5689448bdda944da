#include "ctl/blkhost.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blk/image.h"
#include "ctl/domusd.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
#include "vmm/blk_supervisor.h"

#define REPLY_TIMEOUT_MS 10000

struct blkhost_disk {
	struct blkhost_disk *next;
	unsigned domid, index;
	char id[32];
	char socket[PATH_MAX];
	char *text; /* the add message, sent again to every domus-blk started */
	int fds[UNIX_MAX_FDS];
	unsigned nfds;
};

static struct watch w_pid = {W_BLK_PID, NULL}, w_timer = {W_BLK_TIMER, NULL};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void blkhost_init(struct blkhost *h, const char *program, const char *dir)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->program, sizeof(h->program), "%s", program);
	snprintf(h->dir, sizeof(h->dir), "%s", dir);
	h->pidfd = h->ctl_fd = h->timer_fd = -1;
	h->delay_ms = 25; /* doubled to the first back-off, 50 ms */
}

/* Sends one message and waits for domus-blk's "ok" or its reason. */
static int request(struct blkhost *h, const char *text, const int *fds, unsigned nfds, char *err,
		   size_t errlen)
{
	struct pollfd p = {.fd = h->ctl_fd, .events = POLLIN};
	char reply[600];
	int none[UNIX_MAX_FDS];
	unsigned nnone;
	ssize_t n;
	int ret = unix_send_fds(h->ctl_fd, text, strlen(text), fds, nfds);

	if (ret < 0) {
		snprintf(err, errlen, "domus-blk: %s", strerror(-ret));
		return ret;
	}
	if (poll(&p, 1, REPLY_TIMEOUT_MS) != 1) {
		snprintf(err, errlen, "domus-blk did not answer");
		return -ETIMEDOUT;
	}
	n = unix_recv_fds(h->ctl_fd, reply, sizeof(reply) - 1, none, UNIX_MAX_FDS, &nnone);
	for (unsigned i = 0; i < nnone; i++)
		close(none[i]);
	if (n <= 0) {
		snprintf(err, errlen, "domus-blk went away");
		return -EPIPE;
	}
	reply[n] = 0;
	if (!strcmp(reply, "ok"))
		return 0;
	snprintf(err, errlen, "%s", strncmp(reply, "error ", 6) ? reply : reply + 6);
	return -EINVAL;
}

static int spawn(struct blkhost *h, char *err, size_t errlen)
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -errno;
	}
	if (pid == 0) {
		/* It ends when we do (its control socket hangs up); the domains wait for the next. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(sp[1], 3) < 0)
			_exit(127);
		syscall(SYS_close_range, 4, ~0U, 0);
		execl(h->program, "domus-blk", "--control-fd", "3", D.verbose ? "-v" : "--quiet",
		      (char *)NULL);
		dprintf(2, "domusd: cannot run %s: %s\n", h->program, strerror(errno));
		_exit(127);
	}
	close(sp[1]);
	h->ctl_fd = sp[0];
	h->pid = pid;
	h->started_ms = now_ms();
	h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (h->pidfd < 0) {
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(h->ctl_fd);
		h->ctl_fd = -1;
		h->pid = 0;
		return -errno;
	}
	watch_add(h->pidfd, &w_pid);
	return 0;
}

static void disk_free(struct blkhost_disk *d)
{
	for (unsigned i = 0; i < d->nfds; i++)
		close(d->fds[i]);
	if (d->socket[0])
		unlink(d->socket);
	free(d->text);
	free(d);
}

int blkhost_attach(struct blkhost *h, unsigned domid, unsigned index, const struct disk_config *dc,
		   int stats_fd, char *socket, size_t socklen, char *err, size_t errlen)
{
	static char names[IMAGE_MAX_CHAIN][IMAGE_NAME_MAX];
	int backing[IMAGE_MAX_CHAIN], image_fd, ret;
	unsigned nbacking;
	struct blkhost_disk *d = calloc(1, sizeof(*d));
	size_t len;
	char *p;

	if (!d)
		return -ENOMEM;
	d->domid = domid;
	d->index = index;
	snprintf(d->id, sizeof(d->id), "%u-%u", domid, index);
	ret = image_open_chain(dc->path, dc->qcow2 ? IMAGE_QCOW2 : IMAGE_RAW, dc->readonly, &image_fd,
			       backing, names, &nbacking, err, errlen);
	if (ret < 0) {
		free(d);
		return ret;
	}
	/* Descriptors in the order domus-blk takes them: socket, image, O_DIRECT twin, stats, chain. */
	snprintf(d->socket, sizeof(d->socket), "%s/%s.sock", h->dir, d->id);
	d->fds[d->nfds++] = unix_listen(d->socket, SOCK_STREAM, 4);
	d->fds[d->nfds++] = image_fd;
	if (d->fds[0] < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", d->socket, strerror(-d->fds[0]));
		d->fds[0] = -1;
		ret = -EIO;
	}
	if (ret == 0 && dc->direct) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", image_fd);
		d->fds[d->nfds] = open(self, (dc->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
		if (d->fds[d->nfds] < 0) {
			snprintf(err, errlen, "%s: cannot open it with O_DIRECT (cache=%s): %s", dc->path,
				 disk_cache_name(dc), strerror(errno));
			ret = -errno;
		} else {
			d->nfds++;
		}
	}
	if (ret == 0 && stats_fd >= 0 && (d->fds[d->nfds] = fcntl(stats_fd, F_DUPFD_CLOEXEC, 3)) >= 0)
		d->nfds++;
	else
		stats_fd = -1;
	for (unsigned i = 0; i < nbacking; i++)
		d->fds[d->nfds++] = backing[i];
	len = 64 + nbacking * IMAGE_NAME_MAX;
	d->text = p = malloc(len);
	if (ret == 0 && !d->text)
		ret = -ENOMEM;
	if (ret < 0) {
		for (unsigned i = 0; i < d->nfds; i++)
			if (d->fds[i] >= 0)
				close(d->fds[i]);
		d->nfds = 0;
		unlink(d->socket);
		free(d->text);
		free(d);
		return ret;
	}
	p += snprintf(p, len, "add\n%s\nformat=%s,cache=%s%s", d->id, dc->qcow2 ? "qcow2" : "raw",
		      disk_cache_name(dc), dc->readonly ? ",ro" : "");
	if (stats_fd >= 0)
		p += sprintf(p, ",stats=%u", index);
	for (unsigned i = 0; i < nbacking; i++)
		p += sprintf(p, "\n%s", names[i]);
	/* Started with the first disk; while a restart is pending, the disk waits for it. */
	if (h->pid == 0 && h->timer_fd < 0 && (ret = spawn(h, err, errlen)) < 0) {
		disk_free(d);
		return ret;
	}
	if (h->pid && (ret = request(h, d->text, d->fds, d->nfds, err, errlen)) < 0) {
		disk_free(d);
		return ret;
	}
	d->next = h->disks;
	h->disks = d;
	snprintf(socket, socklen, "%s", d->socket);
	return 0;
}

void blkhost_detach(struct blkhost *h, unsigned domid)
{
	struct blkhost_disk **pp = &h->disks;
	char err[256], text[64];

	while (*pp) {
		struct blkhost_disk *d = *pp;
		if (d->domid != domid) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		snprintf(text, sizeof(text), "remove\n%s", d->id);
		if (h->pid && request(h, text, NULL, 0, err, sizeof(err)) < 0)
			log_warnx("domus-blk: removing disk %s: %s", d->id, err);
		disk_free(d);
	}
}

void blkhost_exited(struct blkhost *h)
{
	siginfo_t si;
	struct itimerspec when = {{0, 0}, {0, 0}};

	memset(&si, 0, sizeof(si));
	waitid(P_PID, (id_t)h->pid, &si, WEXITED);
	watch_del(h->pidfd);
	close(h->pidfd);
	close(h->ctl_fd);
	h->pidfd = h->ctl_fd = -1;
	h->delay_ms = blk_restart_delay_ms(h->delay_ms, now_ms() - h->started_ms);
	h->restarts++;
	log_warnx("domus-blk (pid %d) %s %d; starting it again in %u ms (restart %u)", (int)h->pid,
		  si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status,
		  h->delay_ms, h->restarts);
	h->pid = 0;
	if (h->timer_fd < 0) {
		h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (h->timer_fd < 0) {
			log_warn("timerfd");
			return;
		}
		watch_add(h->timer_fd, &w_timer);
	}
	when.it_value.tv_sec = h->delay_ms / 1000;
	when.it_value.tv_nsec = (long)(h->delay_ms % 1000) * 1000000;
	timerfd_settime(h->timer_fd, 0, &when, NULL);
}

void blkhost_restart(struct blkhost *h)
{
	char err[512];
	unsigned n = 0, failed = 0;

	if (h->timer_fd >= 0) {
		watch_del(h->timer_fd);
		close(h->timer_fd);
		h->timer_fd = -1;
	}
	if (spawn(h, err, sizeof(err)) < 0) {
		log_warnx("cannot start domus-blk again: %s; the domains' disks wait", err);
		return;
	}
	for (struct blkhost_disk *d = h->disks; d; d = d->next, n++)
		if (request(h, d->text, d->fds, d->nfds, err, sizeof(err)) < 0) {
			log_warnx("domus-blk: disk %s: %s", d->id, err);
			failed++;
		}
	log_info("domus-blk started again (pid %d), serving %u disk(s)%s", (int)h->pid, n - failed,
		 failed ? "; some could not be served again" : "");
}

void blkhost_stop(struct blkhost *h)
{
	while (h->disks) {
		struct blkhost_disk *d = h->disks;
		h->disks = d->next;
		/* The sockets stay: domains keep running and the next domusd listens there again. */
		d->socket[0] = 0;
		disk_free(d);
	}
	if (h->pid) {
		close(h->ctl_fd); /* it finishes what is in flight and exits */
		h->ctl_fd = -1;
		if (h->pidfd >= 0) {
			struct pollfd p = {.fd = h->pidfd, .events = POLLIN};
			if (poll(&p, 1, 5000) != 1)
				kill(h->pid, SIGKILL);
			waitpid(h->pid, NULL, 0);
			close(h->pidfd);
		}
		h->pid = 0;
	}
	if (h->timer_fd >= 0)
		close(h->timer_fd);
	h->timer_fd = -1;
}
