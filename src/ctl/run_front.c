#include "ctl/run_front.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl/blk_supervisor.h"
#include "ctl/net_supervisor.h"
#include "lib/backend_proc.h"
#include "lib/ctlproc.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
#include "vmm/config_json.h"
#include "vmm/confine.h"
#include "vmm/run.h"

static volatile pid_t vmm_pid;
static volatile sig_atomic_t got_signal;

/* The front's loop: the back-ends' pidfds and restart timers, beside domus-vmm's pidfd. */
enum { FRONT_BACKEND_PID, FRONT_BACKEND_TIMER, FRONT_BROKER };
#define FRONT_MAX_WATCHED 8
static struct {
	int fd;
	struct watch *w;
} watched[FRONT_MAX_WATCHED];
static unsigned nwatched;

static void front_add(int fd, struct watch *w)
{
	if (nwatched < FRONT_MAX_WATCHED)
		watched[nwatched++] = (typeof(watched[0])){fd, w};
	else
		log_warnx("the front watches too many descriptors");
}

static void front_del(int fd)
{
	for (unsigned i = 0; i < nwatched; i++)
		if (watched[i].fd == fd) {
			watched[i] = watched[--nwatched];
			return;
		}
}

static const struct watch_loop front_loop = {.add = front_add, .del = front_del};

/* A signal for `domus run` is one for its domain's process; the front waits for it to end. */
static void forward(int sig)
{
	got_signal = sig;
	if (vmm_pid > 0)
		kill(vmm_pid, sig);
}

/* The config domus-vmm reads, in a memfd: nothing on disk, nothing to clean up. */
static int config_memfd(const struct vm_config *cfg)
{
	json_t *j = vm_config_to_json(cfg);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int fd = text ? memfd_create("domus-run-config", MFD_CLOEXEC) : -1;
	size_t len = text ? strlen(text) : 0;

	json_decref(j);
	if (fd >= 0 && (write(fd, text, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0)) {
		close(fd);
		fd = -1;
	}
	free(text);
	return fd;
}

/* The domain's user may reach its back-ends' sockets, and nobody else may. */
static int hand_socket(const char *path, uid_t uid)
{
	return chown(path, uid, uid) < 0 || chmod(path, 0600) < 0 ? -errno : 0;
}

static int hand_dir(const char *dir, uid_t uid)
{
	return chown(dir, 0, uid) < 0 || chmod(dir, 0710) < 0 ? -errno : 0;
}

static int hand_sockets(const struct vm_config *cfg, const struct blk_supervisor *blk, bool have_blk,
			const struct net_supervisor *net, bool have_net, uid_t uid)
{
	int ret = 0;

	if (have_blk) {
		ret = hand_dir(blk->dir, uid);
		for (unsigned i = 0; ret == 0 && i < cfg->ndisks; i++)
			if (blk->served[i])
				ret = hand_socket(blk->disks[i].socket, uid);
	}
	if (ret == 0 && have_net && (ret = hand_dir(net->dir, uid)) == 0)
		ret = hand_socket(net->socket, uid);
	return ret;
}

/* "SOCKET_PORT": where a guest's connection to the host's vsock port PORT goes. */
static bool vsock_port_socket(const struct vsock_config *v, const char *path)
{
	size_t len = strlen(v->socket);
	const char *p = path + len + 1;

	if (!v->cid || v->vhost || strncmp(path, v->socket, len) || path[len] != '_' || !*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/*
 * The confined domus-vmm asks the front to connect to a back-end's socket
 * (vmm/confine.h): only those its configuration names, as the user who
 * started domus run, whose rights they are.
 */
static void serve_broker(int fd, const struct vm_config *cfg)
{
	char path[128], reply[32];
	ssize_t n = recv(fd, path, sizeof(path) - 1, MSG_DONTWAIT);
	bool named = false;
	int sock;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		front_del(fd); /* domus-vmm is gone */
		return;
	}
	path[n] = 0;
	for (unsigned i = 0; i < cfg->ndisks; i++)
		named |= cfg->disks[i].vhost_user && !strcmp(cfg->disks[i].path, path);
	for (unsigned i = 0; i < cfg->nnics; i++)
		named |= cfg->nics[i].socket[0] && !strcmp(cfg->nics[i].socket, path);
	/*
	 * A guest's vsock connection: never wait on a host listener whose
	 * backlog is full (domus-vmm's device thread waits for this answer).
	 */
	if (vsock_port_socket(&cfg->vsock, path))
		sock = unix_connect(path, SOCK_STREAM | SOCK_NONBLOCK);
	else
		sock = named ? unix_connect(path, SOCK_STREAM) : -EACCES;
	if (sock >= 0) {
		unix_send_fds(fd, "ok", 2, &sock, 1);
		close(sock);
	} else {
		snprintf(reply, sizeof(reply), "error %d", -sock);
		unix_send_fds(fd, reply, strlen(reply), NULL, 0);
	}
}

/* Serves the back-ends until domus-vmm ends; its exit status. */
static int wait_vmm(pid_t pid, const struct vm_config *cfg)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status;

	while (pidfd >= 0) {
		struct pollfd p[FRONT_MAX_WATCHED + 1];
		struct watch *who[FRONT_MAX_WATCHED];
		unsigned n = nwatched;

		for (unsigned i = 0; i < n; i++) {
			p[i] = (struct pollfd){.fd = watched[i].fd, .events = POLLIN};
			who[i] = watched[i].w;
		}
		p[n] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		if (poll(p, n + 1, -1) < 0)
			continue; /* a signal, forwarded */
		if (p[n].revents)
			break;
		for (unsigned i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			if (who[i]->kind == FRONT_BROKER)
				serve_broker(p[i].fd, cfg);
			else if (who[i]->kind == FRONT_BACKEND_PID)
				backend_proc_exited(who[i]->ptr);
			else
				backend_proc_restart(who[i]->ptr);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return RUN_EXIT_ERROR;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (got_signal && WTERMSIG(status) == got_signal)
		return 128 + got_signal; /* as a shell reports a command its signal ended */
	log_warnx("domus-vmm was killed by signal %d%s", WTERMSIG(status),
		  backend_end_note(CLD_KILLED, WTERMSIG(status)));
	return RUN_EXIT_ERROR;
}

int run_front(const struct vm_config *cfg_in)
{
	static struct vm_config cfg;
	static struct blk_supervisor blk;
	static struct net_supervisor net;
	bool served[VM_MAX_DISKS] = {false}, any = false, have_blk = false, have_net = false;
	char program[PATH_MAX], self[PATH_MAX - 64], domid[16], mask[16];
	unsigned id = VMM_RUN_DOMID_BASE + (unsigned)getpid();
	int config_fd = -1, status = RUN_EXIT_BAD_INPUT, served_mask = 0, tty, broker[2] = {-1, -1};
	static struct watch broker_watch = {FRONT_BROKER, NULL};
	struct termios saved;
	struct sigaction sa;
	ssize_t n;
	pid_t pid;

	cfg = *cfg_in;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	ctlproc_find_program(program, sizeof(program), "DOMUS_VMM", "domus-vmm", ".", self);
	if (access(program, X_OK) < 0) {
		log_warnx("domus-vmm not found beside this program (set DOMUS_VMM)");
		return RUN_EXIT_ERROR;
	}
	/* --net vfr: the domain's own domus-net, its port a vhost-user interface. */
	for (unsigned i = 0; i < cfg.nnics; i++) {
		if (!cfg.nics[i].vfr)
			continue;
		if (net_supervisor_start(&net, &cfg.nics[i], cfg.verbose > 0, &front_loop,
					 FRONT_BACKEND_PID, FRONT_BACKEND_TIMER) < 0)
			goto out;
		cfg.nics[i].vfr = false;
		have_net = true;
	}
	/* Disks are served by a domus-blk process unless they say in-vmm. */
	for (unsigned i = 0; i < cfg.ndisks; i++) {
		served[i] = !cfg.disks[i].vhost_user && !cfg.disks[i].in_vmm;
		any |= served[i];
		served_mask |= served[i] ? 1 << i : 0;
	}
	if (any) {
		if (blk_supervisor_start(&blk, &cfg, served, &front_loop, FRONT_BACKEND_PID,
					 FRONT_BACKEND_TIMER) < 0)
			goto out;
		have_blk = true;
	}
	if (geteuid() == 0 && hand_sockets(&cfg, &blk, have_blk, &net, have_net,
					   vmm_domain_uid(id)) < 0) {
		log_warn("handing the back-ends' sockets to the domain's user");
		status = RUN_EXIT_ERROR;
		goto out;
	}
	if ((config_fd = config_memfd(&cfg)) < 0) {
		log_warn("the domain's configuration for domus-vmm");
		status = RUN_EXIT_ERROR;
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, broker) < 0) {
		log_warn("socketpair");
		status = RUN_EXIT_ERROR;
		goto out;
	}
	snprintf(domid, sizeof(domid), "%u", id);
	snprintf(mask, sizeof(mask), "%d", served_mask);
	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	pid = fork();
	if (pid < 0) {
		log_warn("fork");
		status = RUN_EXIT_ERROR;
		goto out;
	}
	if (pid == 0) {
		/* Above 3 to 5 first: a dup2 onto itself would keep close-on-exec. */
		int c = fcntl(config_fd, F_DUPFD, 10), b = fcntl(broker[1], F_DUPFD, 10);
		int stats = have_blk ? fcntl(blk.stats_fd, F_DUPFD, 10) : -1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (c < 0 || b < 0 || dup2(c, 3) < 0 || dup2(b, 5) < 0 ||
		    (have_blk && (stats < 0 || dup2(stats, 4) < 0)))
			_exit(RUN_EXIT_ERROR);
		if (!have_blk)
			close(4);
		syscall(SYS_close_range, 6, ~0U, 0);
		execl(program, "domus-vmm", "--foreground", "--config", "/dev/fd/3", "--domid", domid,
		      "--blk-disks", mask, "--blk-stats-fd", stats >= 0 ? "4" : "-1", "--broker-fd", "5",
		      (char *)NULL);
		dprintf(2, "domus: cannot run %s: %s\n", program, strerror(errno));
		_exit(RUN_EXIT_ERROR);
	}
	vmm_pid = pid;
	close(broker[1]);
	broker[1] = -1;
	front_add(broker[0], &broker_watch);
	status = wait_vmm(pid, &cfg);
	vmm_pid = 0;
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
out:
	if (config_fd >= 0)
		close(config_fd);
	for (int i = 0; i < 2; i++)
		if (broker[i] >= 0) {
			front_del(broker[i]);
			close(broker[i]);
		}
	if (have_blk)
		blk_supervisor_stop(&blk);
	if (have_net)
		net_supervisor_stop(&net);
	return status;
}
