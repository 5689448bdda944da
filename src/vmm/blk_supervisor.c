#include "vmm/blk_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

/* Starts domus-blk and hands it every disk. 0 or -errno with why in err. */
static int spawn(struct blk_supervisor *s, char *err, size_t errlen)
{
	int ret = blkctl_spawn(s->program, false, &s->pid, &s->ctl_fd, err, errlen);

	for (unsigned i = 0; ret == 0 && i < VM_MAX_DISKS; i++)
		if (s->served[i])
			ret = blkctl_add(s->ctl_fd, &s->disks[i], err, errlen);
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

unsigned blk_restart_delay_ms(unsigned previous_ms, long lifetime_ms)
{
	/* One that dies within a second of starting would die again: back off, up to 5 s. */
	if (lifetime_ms < 1000)
		return previous_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : previous_ms * 2;
	return BACKOFF_MIN_MS;
}

static void *supervise(void *arg)
{
	struct blk_supervisor *s = arg;
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
		delay = blk_restart_delay_ms(delay, now_ms() - started);
		s->restarts++;
		log_warnx("domus-blk (pid %d) %s %d; starting it again in %u ms (restart %u)",
			  (int)s->pid, si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal",
			  si.si_status, delay, s->restarts);
		s->pid = 0;
		if (poll(p, 1, (int)delay) > 0)
			return NULL;
		started = now_ms();
		if (spawn(s, err, sizeof(err)) < 0) {
			log_warnx("cannot start domus-blk again (%s); the domain's disks stay stopped", err);
			return NULL;
		}
	}
}

int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const bool *served)
{
	char self[PATH_MAX - 64], err[768];
	ssize_t n;
	int ret;

	memset(s, 0, sizeof(*s));
	s->pidfd = s->stop_fd = s->ctl_fd = s->stats_fd = -1;
	/* The counters outlive each domus-blk: every one started gets the same memory. */
	s->stats_fd = memfd_create("domus-blk-stats", MFD_CLOEXEC);
	if (s->stats_fd < 0 || ftruncate(s->stats_fd, 16 * sizeof(struct blk_counters)) < 0)
		return -errno;
	s->stats = mmap(NULL, 16 * sizeof(struct blk_counters), PROT_READ | PROT_WRITE, MAP_SHARED,
			s->stats_fd, 0);
	if (s->stats == MAP_FAILED) {
		s->stats = NULL;
		return -errno;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	blkctl_find_program(s->program, sizeof(s->program), self);
	if (access(s->program, X_OK) < 0) {
		log_warnx("domus-blk not found beside this program (set DOMUS_BLK, or add ,in-vmm to a disk)");
		blk_supervisor_stop(s);
		return -ENOENT;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/domus-blk.XXXXXX");
	if (!mkdtemp(s->dir)) {
		log_warn("mkdtemp");
		s->dir[0] = 0;
		blk_supervisor_stop(s);
		return -EIO;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char id[16], sock[128];
		if (!served[i])
			continue;
		snprintf(id, sizeof(id), "disk%u", i);
		snprintf(sock, sizeof(sock), "%s/disk%u.sock", s->dir, i);
		ret = blkctl_disk_open(&s->disks[i], id, &cfg->disks[i], sock, s->stats_fd, i, err,
				       sizeof(err));
		if (ret < 0) {
			log_warnx("disk %s: %s", cfg->disks[i].path, err);
			blk_supervisor_stop(s);
			return ret;
		}
		s->served[i] = true;
	}
	if ((ret = spawn(s, err, sizeof(err))) < 0) {
		log_warnx("domus-blk: %s", err);
		blk_supervisor_stop(s);
		return ret;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (s->served[i]) {
			snprintf(cfg->disks[i].path, sizeof(cfg->disks[i].path), "%s", s->disks[i].socket);
			cfg->disks[i].vhost_user = true;
		}
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0 || (ret = pthread_create(&s->thread, NULL, supervise, s)) != 0) {
		log_warnx("cannot supervise domus-blk");
		blk_supervisor_stop(s);
		return -EAGAIN;
	}
	s->running = true;
	return 0;
}

struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i)
{
	return i < VM_MAX_DISKS && s->stats && s->served[i] ? &s->stats[i] : NULL;
}

void blk_supervisor_stop(struct blk_supervisor *s)
{
	uint64_t one = 1;

	if (s->running) {
		if (write(s->stop_fd, &one, 8) < 0)
			log_warn("stopping the domus-blk supervisor");
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	if (s->ctl_fd >= 0)
		close(s->ctl_fd); /* domus-blk finishes what is in flight and exits */
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
	if (s->stats)
		munmap(s->stats, 16 * sizeof(struct blk_counters));
	s->stats = NULL;
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	s->stats_fd = -1;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (s->served[i]) {
			blkctl_disk_close(&s->disks[i], true);
			s->served[i] = false;
		}
	if (s->dir[0]) {
		rmdir(s->dir);
		s->dir[0] = 0;
	}
}
