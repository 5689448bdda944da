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

#define FIRST_FD 10 /* where the images sit in domus-blk */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

/* domus-blk beside this binary (installed), or in the build tree's src/blk. */
static int find_domus_blk(char *out, size_t len)
{
	char self[PATH_MAX - 32];
	const char *env = getenv("DOMUS_BLK");
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	snprintf(out, len, "%s/domus-blk", self);
	if (access(out, X_OK) == 0)
		return 0;
	snprintf(out, len, "%s/../blk/domus-blk", self);
	return access(out, X_OK) == 0 ? 0 : -ENOENT;
}

/* Forks domus-blk; with ready_fd >= 0 it reports there. Returns the pid or -errno. */
static pid_t spawn(struct blk_supervisor *s, int ready_fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	/* Only async-signal-safe calls from here to exec: the parent has threads. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	{
		/* Out of the way first, so that no dup2 below overwrites a source. */
		int high[VM_MAX_DISKS + 1];
		for (unsigned i = 0; i < s->nfds; i++)
			if ((high[i] = fcntl(s->fds[i], F_DUPFD, 256)) < 0)
				_exit(127);
		int stats = fcntl(s->stats_fd, F_DUPFD, 256);
		if (ready_fd >= 0 && (high[VM_MAX_DISKS] = fcntl(ready_fd, F_DUPFD, 256)) < 0)
			_exit(127);
		if (stats < 0 || dup2(stats, FIRST_FD + VM_MAX_DISKS + 1) < 0)
			_exit(127);
		for (unsigned i = 0; i < s->nfds; i++)
			if (dup2(high[i], FIRST_FD + (int)i) < 0)
				_exit(127);
		if (ready_fd >= 0 && dup2(high[VM_MAX_DISKS], FIRST_FD + VM_MAX_DISKS) < 0)
			_exit(127);
	}
	execv(s->argv[0], s->argv);
	_exit(127);
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
		s->pidfd = -1;
		delay = blk_restart_delay_ms(delay, now_ms() - started);
		s->restarts++;
		log_warnx("domus-blk (pid %d) %s %d; starting it again in %u ms (restart %u)",
			  (int)s->pid, si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal",
			  si.si_status, delay, s->restarts);
		if (poll(p, 1, (int)delay) > 0)
			return NULL;
		s->pid = spawn(s, -1);
		started = now_ms();
		s->pidfd = s->pid > 0 ? (int)syscall(SYS_pidfd_open, s->pid, 0) : -1;
		if (s->pidfd < 0) {
			log_warnx("cannot start domus-blk again; the domain's disks stay stopped");
			return NULL;
		}
	}
}

int blk_supervisor_start(struct blk_supervisor *s, struct vm_config *cfg, const int *fds)
{
	static char path[PATH_MAX];
	char line[512] = "";
	unsigned argc = 0;
	int ready[2], ret;
	ssize_t n;

	memset(s, 0, sizeof(*s));
	s->pidfd = s->stop_fd = -1;
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
	if (find_domus_blk(path, sizeof(path)) < 0) {
		log_warnx("domus-blk not found beside this program (set DOMUS_BLK, or add ,in-vmm to a disk)");
		return -ENOENT;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/domus-blk.XXXXXX");
	if (!mkdtemp(s->dir)) {
		log_warn("mkdtemp");
		return -errno;
	}
	s->argv[argc++] = path;
	s->argv[argc++] = strdup("--quiet");
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		s->slot[i] = -1;
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char spec[128];
		if (fds[i] < 0)
			continue;
		s->slot[i] = (int)s->nfds;
		if (cfg->disks[i].qcow2) {
			/* A qcow2 image names its backing files: domus-blk opens the chain before its sandbox. */
			char *q = malloc(strlen(cfg->disks[i].path) + 128);
			if (!q)
				return -ENOMEM;
			sprintf(q, "%s/disk%u.sock=%s,format=qcow2,cache=%s%s", s->dir, i, cfg->disks[i].path,
				disk_cache_name(&cfg->disks[i]), cfg->disks[i].readonly ? ",ro" : "");
			s->argv[argc++] = strdup("--disk");
			s->argv[argc++] = q;
		} else {
			snprintf(spec, sizeof(spec), "%s/disk%u.sock=fd:%d,cache=%s%s", s->dir, i,
				 FIRST_FD + (int)s->nfds, disk_cache_name(&cfg->disks[i]),
				 cfg->disks[i].readonly ? ",ro" : "");
			s->argv[argc++] = strdup("--disk");
			s->argv[argc++] = strdup(spec);
		}
		snprintf(cfg->disks[i].path, sizeof(cfg->disks[i].path), "%s/disk%u.sock", s->dir, i);
		cfg->disks[i].vhost_user = true;
		s->fds[s->nfds++] = fds[i];
	}
	{
		char num[16];
		s->argv[argc++] = strdup("--ready-fd");
		snprintf(num, sizeof(num), "%d", FIRST_FD + VM_MAX_DISKS);
		s->argv[argc++] = strdup(num);
		s->argv[argc++] = strdup("--stats-fd");
		snprintf(num, sizeof(num), "%d", FIRST_FD + VM_MAX_DISKS + 1);
		s->argv[argc++] = strdup(num);
	}
	s->argv[argc] = NULL;
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	s->pid = spawn(s, ready[1]);
	close(ready[1]);
	if (s->pid < 0) {
		close(ready[0]);
		return (int)s->pid;
	}
	/* It says "ready" once every disk listens, or why not. */
	n = read(ready[0], line, sizeof(line) - 1);
	close(ready[0]);
	line[n > 0 ? n : 0] = 0;
	line[strcspn(line, "\n")] = 0;
	if (strcmp(line, "ready")) {
		log_warnx("domus-blk: %s", line[0] ? line : "exited before serving the disks");
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		blk_supervisor_stop(s);
		return -EIO;
	}
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->pidfd < 0 || s->stop_fd < 0 ||
	    (ret = pthread_create(&s->thread, NULL, supervise, s)) != 0) {
		log_warnx("cannot supervise domus-blk");
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		blk_supervisor_stop(s);
		return -EAGAIN;
	}
	s->running = true;
	return 0;
}

struct blk_counters *blk_supervisor_counters(struct blk_supervisor *s, unsigned i)
{
	return i < VM_MAX_DISKS && s->stats && s->slot[i] >= 0 ? &s->stats[s->slot[i]] : NULL;
}

void blk_supervisor_stop(struct blk_supervisor *s)
{
	uint64_t one = 1;
	char path[128];

	if (s->running) {
		if (write(s->stop_fd, &one, 8) < 0)
			log_warn("stopping the domus-blk supervisor");
		pthread_join(s->thread, NULL);
		s->running = false;
		if (s->pid > 0 && s->pidfd >= 0) {
			kill(s->pid, SIGTERM);
			waitpid(s->pid, NULL, 0);
		}
	}
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	s->pidfd = s->stop_fd = -1;
	if (s->stats)
		munmap(s->stats, 16 * sizeof(struct blk_counters));
	s->stats = NULL;
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	s->stats_fd = -1;
	for (unsigned i = 1; s->argv[i]; i++)
		free(s->argv[i]);
	memset(s->argv, 0, sizeof(s->argv));
	if (s->dir[0]) {
		for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
			snprintf(path, sizeof(path), "%s/disk%u.sock", s->dir, i);
			unlink(path);
		}
		rmdir(s->dir);
		s->dir[0] = 0;
	}
}
