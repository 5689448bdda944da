/*
 * domusd: the control domain. It serves the REST API on a Unix socket,
 * starts one domus-vmm process per domain, tracks each through a pidfd and
 * its control socket, and finds running domains again after a restart.
 *
 * One thread, one epoll loop: libmicrohttpd runs in external-epoll mode
 * inside it, beside the domains' descriptors and the console proxies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/api.h"
#include "ctl/spec_json.h"
#include "ctl/vmmproto.h"
#include "lib/log.h"

#define DEFAULT_SOCKET "/run/domus/domusd.sock"
#define DEFAULT_STATE_DIR "/var/lib/domus"
#define START_TIMEOUT_MS 60000  /* a domain's process loads its kernel and builds the VM */
#define REQUEST_TIMEOUT_MS 10000
#define CLIENT_IDLE_SECONDS 30
#define MAX_CLIENTS 128

/* Tags for epoll: what kind of descriptor woke us. */
enum watch_kind { W_MHD, W_SIGNAL, W_CONTROL, W_PIDFD, W_PROXY_CLIENT, W_PROXY_VMM };

struct watch {
	enum watch_kind kind;
	void *ptr;
};

/* A console attach: the client's upgraded HTTP socket spliced to the domain's console. */
struct proxy {
	struct proxy *next;
	int client_fd, vmm_fd;
	unsigned domid;
	struct MHD_UpgradeResponseHandle *urh;
	struct watch wc, wv;
};

/* Per-domain daemon state beside struct domain. */
struct domain_watch {
	struct watch ctl, pid;
};

/* One HTTP request in progress. */
struct request_ctx {
	char *body;
	size_t len;
	bool too_large;
	bool checked;
	bool denied;
};

/* A client following /v1/events. */
struct subscriber {
	struct subscriber *next;
	struct MHD_Connection *conn;
	unsigned long long seq;
	bool suspended;
};

struct daemon {
	struct api api;
	struct MHD_Daemon *mhd;
	int epfd;
	char state_dir[PATH_MAX - 32];
	char vmm_path[PATH_MAX];
	gid_t group;
	bool have_group;
	struct proxy *proxies;
	struct subscriber *subs;
	struct proxy *pending_proxy; /* the vmm console connection for an upgrade in flight */
	bool stop;
	int verbose;
};

static struct daemon D;

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void watch_add(int fd, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	if (epoll_ctl(D.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_warn("epoll_ctl add %d", fd);
}

static void watch_del(int fd)
{
	if (fd >= 0)
		epoll_ctl(D.epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void path_for(char *buf, size_t len, unsigned domid, const char *suffix)
{
	snprintf(buf, len, "%s/%u.%s", D.state_dir, domid, suffix);
}

/* Field 22 of /proc/PID/stat: when the process started; tells a reused pid apart. */
static unsigned long long proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	return v;
}

/* ---- domain records on disk ---- */

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	int fd;
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		return -e;
	}
	close(fd);
	return rename(tmp, path) < 0 ? -errno : 0;
}

static int save_record(const struct domain *d)
{
	char path[PATH_MAX];
	json_t *rec = json_pack("{s:i,s:i,s:I,s:I,s:i,s:o}", "domid", d->domid, "pid", (int)d->pid,
				"starttime", (json_int_t)d->starttime, "created",
				(json_int_t)d->created, "restarts", d->restarts, "config",
				domain_spec_to_json(&d->spec));
	char *text = rec ? json_dumps(rec, JSON_INDENT(1)) : NULL;
	int ret;

	json_decref(rec);
	if (!text)
		return -ENOMEM;
	path_for(path, sizeof(path), d->domid, "domain.json");
	ret = write_file(path, text);
	free(text);
	return ret;
}

static void remove_files(unsigned domid)
{
	static const char *suffixes[] = {"domain.json", "config.json", "sock"};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		path_for(path, sizeof(path), domid, suffixes[i]);
		unlink(path);
	}
}

/* ---- talking to domus-vmm ---- */

static void domain_watch_fds(struct domain *d)
{
	struct domain_watch *w = calloc(1, sizeof(*w));

	d->priv = w;
	if (!w)
		return;
	w->ctl = (struct watch){W_CONTROL, d};
	w->pid = (struct watch){W_PIDFD, d};
	if (d->ctl_fd >= 0)
		watch_add(d->ctl_fd, &w->ctl);
	if (d->pidfd >= 0)
		watch_add(d->pidfd, &w->pid);
}

static void forget_fds(struct domain *d)
{
	watch_del(d->ctl_fd);
	watch_del(d->pidfd);
	if (d->ctl_fd >= 0)
		close(d->ctl_fd);
	if (d->pidfd >= 0)
		close(d->pidfd);
	d->ctl_fd = d->pidfd = -1;
	free(d->priv);
	d->priv = NULL;
}

static void handle_vmm_message(struct domain *d, json_t *msg)
{
	const char *ev = json_string_value(json_object_get(msg, "event"));
	const char *detail = json_string_value(json_object_get(msg, "detail"));
	const char *reason = json_string_value(json_object_get(msg, "reason"));

	if (!ev)
		return;
	if (!strcmp(ev, "rebooted")) {
		d->restarts++;
		d->state = "running";
		save_record(d);
		api_event(&D.api, "restarted", d, detail);
	} else if (!strcmp(ev, "crashed") || !strcmp(ev, "shutdown")) {
		/* on_*=preserve: the domain stays until destroyed. */
		d->state = ev[0] == 'c' ? "crashed" : "shutdown";
		api_event(&D.api, ev, d, detail);
	} else if (!strcmp(ev, "stopped")) {
		d->state = "stopped";
		snprintf(d->stop_reason, sizeof(d->stop_reason), "%s", reason ? reason : "");
		snprintf(d->stop_detail, sizeof(d->stop_detail), "%s", detail ? detail : "");
	}
}

static int vmm_request(void *ctx, struct domain *d, const char *op, json_t **reply, char *err,
		       size_t errlen)
{
	json_t *msg = json_pack("{s:s}", "op", op);
	struct timespec start, now;
	int ret;

	if (reply)
		*reply = NULL;
	if (d->ctl_fd < 0) {
		snprintf(err, errlen, "its process is not connected");
		json_decref(msg);
		return -ENOTCONN;
	}
	ret = vmmproto_send(d->ctl_fd, msg);
	json_decref(msg);
	if (ret < 0) {
		snprintf(err, errlen, "sending '%s': %s", op, strerror(-ret));
		return ret;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long waited;
		const char *what;

		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= REQUEST_TIMEOUT_MS) {
			snprintf(err, errlen, "no reply to '%s' within %d s", op, REQUEST_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		ret = vmmproto_recv(d->ctl_fd, (int)(REQUEST_TIMEOUT_MS - waited), &msg);
		if (ret == -EBADMSG)
			continue;
		if (ret < 0) {
			snprintf(err, errlen, "waiting for the reply to '%s': %s", op,
				 ret == -EPIPE ? "its process closed the connection" : strerror(-ret));
			return ret;
		}
		what = json_string_value(json_object_get(msg, "reply"));
		if (!what) {
			handle_vmm_message(d, msg);
			json_decref(msg);
			continue;
		}
		if (strcmp(what, op)) {
			json_decref(msg);
			continue;
		}
		if (!json_is_true(json_object_get(msg, "ok"))) {
			const char *e = json_string_value(json_object_get(msg, "error"));
			snprintf(err, errlen, "%s", e ? e : "refused");
			json_decref(msg);
			return -EINVAL;
		}
		if (reply)
			*reply = msg;
		else
			json_decref(msg);
		return 0;
	}
}

static int bind_listener(const char *path, int type, int backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int connect_unix(const char *path, int type)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void reap(pid_t pid)
{
	/* Only our own children can be reaped; adopted ones are init's. */
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}

static int vmm_start(void *ctx, struct domain *d, char *err, size_t errlen)
{
	char cfg_path[PATH_MAX], sock_path[PATH_MAX], log_path[PATH_MAX], domid[16];
	int listen_fd = -1, sp[2] = {-1, -1}, log_fd = -1, ret;
	json_t *cfg = domain_spec_to_json(&d->spec), *msg = NULL;
	char *text = cfg ? json_dumps(cfg, JSON_INDENT(1)) : NULL;
	const char *ev;
	pid_t pid;

	json_decref(cfg);
	path_for(cfg_path, sizeof(cfg_path), d->domid, "config.json");
	path_for(sock_path, sizeof(sock_path), d->domid, "sock");
	snprintf(log_path, sizeof(log_path), "%s/log/%s.log", D.state_dir, d->spec.name);
	snprintf(domid, sizeof(domid), "%u", d->domid);
	if (!text || (ret = write_file(cfg_path, text)) < 0) {
		snprintf(err, errlen, "cannot write %s", cfg_path);
		free(text);
		return -EIO;
	}
	free(text);
	listen_fd = bind_listener(sock_path, SOCK_SEQPACKET, 4);
	if (listen_fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", sock_path, strerror(-listen_fd));
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (log_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", log_path, strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* The domain outlives this daemon: its own session, no terminal, fds 3 and 4. */
		int null_fd = open("/dev/null", O_RDWR);
		/* Out of the way of 0-4 first, so no dup2 below overwrites a source. */
		int l = fcntl(listen_fd, F_DUPFD, 10), c = fcntl(sp[1], F_DUPFD, 10);
		int lg = fcntl(log_fd, F_DUPFD, 10), nl = fcntl(null_fd, F_DUPFD, 10);
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		if (null_fd < 0 || l < 0 || c < 0 || lg < 0 || nl < 0 || dup2(nl, 0) < 0 ||
		    dup2(lg, 1) < 0 || dup2(lg, 2) < 0 || dup2(l, 3) < 0 || dup2(c, 4) < 0)
			_exit(127);
		syscall(SYS_close_range, 5, ~0U, 0);
		execl(D.vmm_path, "domus-vmm", "--config", cfg_path, "--domid", domid,
		      "--listen-fd", "3", "--control-fd", "4", D.verbose ? "-v" : NULL, (char *)NULL);
		dprintf(2, "domusd: cannot run %s: %s\n", D.vmm_path, strerror(errno));
		_exit(127);
	}
	close(listen_fd);
	close(sp[1]);
	close(log_fd);
	listen_fd = sp[1] = log_fd = -1;
	d->pid = pid;
	d->ctl_fd = sp[0];
	ret = vmmproto_recv(d->ctl_fd, START_TIMEOUT_MS, &msg);
	ev = msg ? json_string_value(json_object_get(msg, "event")) : NULL;
	if (ret < 0 || !ev || strcmp(ev, "hello")) {
		const char *why = msg ? json_string_value(json_object_get(msg, "error")) : NULL;
		if (why)
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "domus-vmm did not start the domain (%s); see %s",
				 ret == -ETIMEDOUT ? "timed out" : "it exited", log_path);
		json_decref(msg);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(sp[0]);
		d->ctl_fd = -1;
		remove_files(d->domid);
		return -EINVAL;
	}
	json_decref(msg);
	d->pidfd = sys_pidfd_open(pid);
	d->starttime = proc_starttime(pid);
	domain_watch_fds(d);
	if (save_record(d) < 0)
		log_warnx("domain %s: cannot save its record; a restarted domusd will not find it",
			  d->spec.name);
	return 0;
fail:
	if (listen_fd >= 0)
		close(listen_fd);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (log_fd >= 0)
		close(log_fd);
	remove_files(d->domid);
	return -EIO;
}

static bool wait_exit(int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	return pidfd >= 0 && poll(&p, 1, timeout_ms) == 1;
}

static void vmm_destroy(void *ctx, struct domain *d)
{
	char err[256];

	if (vmm_request(ctx, d, "destroy", NULL, err, sizeof(err)) < 0 || !wait_exit(d->pidfd, 5000)) {
		if (d->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
		else if (d->pid > 0 && proc_starttime(d->pid) == d->starttime)
			kill(d->pid, SIGKILL);
		wait_exit(d->pidfd, 5000);
	}
	reap(d->pid);
	forget_fds(d);
	remove_files(d->domid);
}

static void vmm_usage(void *ctx, const struct domain *d, json_t *out)
{
	char path[64], buf[2048], *p;
	unsigned long long utime = 0, stime = 0;
	long rss_kib = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)d->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* Fields 14 and 15 after the command: user and system time of all threads. */
	for (int field = 2; field < 14 && p; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p + 1, "%llu %llu", &utime, &stime) != 2)
		utime = stime = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			p = strstr(buf, "VmRSS:");
			if (p)
				rss_kib = strtol(p + 6, NULL, 10);
		}
	}
	json_object_set_new(out, "cpu_seconds",
			    json_real((double)(utime + stime) / (double)sysconf(_SC_CLK_TCK)));
	json_object_set_new(out, "memory_rss_kib", json_integer(rss_kib));
}

static void wake_subscribers(void *ctx)
{
	for (struct subscriber *s = D.subs; s; s = s->next)
		if (s->suspended) {
			s->suspended = false;
			MHD_resume_connection(s->conn);
		}
}

static const struct domain_ops vmm_ops = {
	.start = vmm_start,
	.request = vmm_request,
	.destroy = vmm_destroy,
	.usage = vmm_usage,
	.event = wake_subscribers,
};

/* The domain's process ended (its pidfd is readable). */
static void domain_exited(struct domain *d)
{
	json_t *msg;

	/* Its last words, if any, are still queued on the control socket. */
	while (d->ctl_fd >= 0 && vmmproto_recv(d->ctl_fd, 0, &msg) == 0) {
		handle_vmm_message(d, msg);
		json_decref(msg);
	}
	reap(d->pid);
	forget_fds(d);
	remove_files(d->domid);
	api_domain_gone(&D.api, d);
}

static void control_readable(struct domain *d)
{
	json_t *msg;
	int ret = vmmproto_recv(d->ctl_fd, 0, &msg);

	if (ret == 0) {
		handle_vmm_message(d, msg);
		json_decref(msg);
	} else if (ret == -EPIPE || (ret < 0 && ret != -ETIMEDOUT && ret != -EBADMSG)) {
		/* The process is going; its pidfd will say when it is gone. */
		watch_del(d->ctl_fd);
		close(d->ctl_fd);
		d->ctl_fd = -1;
	}
}

/* ---- the console proxy ---- */

static int console_connect(struct domain *d, char *err, size_t errlen, unsigned *status,
			   const char **code)
{
	char path[PATH_MAX];
	json_t *msg = json_pack("{s:s}", "op", "console"), *reply = NULL;
	int fd, ret;

	*status = 502;
	*code = "domain_unreachable";
	path_for(path, sizeof(path), d->domid, "sock");
	fd = connect_unix(path, SOCK_SEQPACKET);
	if (fd < 0) {
		snprintf(err, errlen, "cannot reach the console of '%s': %s", d->spec.name,
			 strerror(-fd));
		json_decref(msg);
		return fd;
	}
	ret = vmmproto_send(fd, msg);
	json_decref(msg);
	if (!ret)
		ret = vmmproto_recv(fd, REQUEST_TIMEOUT_MS, &reply);
	if (ret < 0) {
		snprintf(err, errlen, "the console of '%s' did not answer", d->spec.name);
		close(fd);
		return ret;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		*status = 409;
		*code = "console_busy";
		snprintf(err, errlen, "someone is attached to the console of '%s' already",
			 d->spec.name);
		json_decref(reply);
		close(fd);
		return -EBUSY;
	}
	json_decref(reply);
	return fd;
}

static void proxy_close(struct proxy *p)
{
	for (struct proxy **pp = &D.proxies; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	watch_del(p->client_fd);
	watch_del(p->vmm_fd);
	close(p->vmm_fd);
	MHD_upgrade_action(p->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(p);
}

static void upgrade_done(void *cls, struct MHD_Connection *conn, void *req_cls,
			 const char *extra_in, size_t extra_in_size, MHD_socket sock,
			 struct MHD_UpgradeResponseHandle *urh)
{
	struct proxy *p = cls;

	p->client_fd = sock;
	p->urh = urh;
	p->wc = (struct watch){W_PROXY_CLIENT, p};
	p->wv = (struct watch){W_PROXY_VMM, p};
	p->next = D.proxies;
	D.proxies = p;
	if (extra_in_size)
		send(p->vmm_fd, extra_in, extra_in_size, MSG_NOSIGNAL | MSG_DONTWAIT);
	watch_add(p->client_fd, &p->wc);
	watch_add(p->vmm_fd, &p->wv);
}

static void proxy_client_readable(struct proxy *p)
{
	char buf[4096];
	ssize_t n = recv(p->client_fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || send(p->vmm_fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		proxy_close(p);
}

static void proxy_vmm_readable(struct proxy *p)
{
	char buf[8192];
	ssize_t n = recv(p->vmm_fd, buf, sizeof(buf), MSG_DONTWAIT);
	size_t off = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_close(p);
		return;
	}
	while (off < (size_t)n) {
		struct pollfd pf = {.fd = p->client_fd, .events = POLLOUT};
		ssize_t w = send(p->client_fd, buf + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		/* A client that stops reading for a second loses this chunk, not the daemon's time. */
		if (w < 0 && errno == EAGAIN && poll(&pf, 1, 1000) == 1)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		proxy_close(p);
		return;
	}
}

/* ---- HTTP ---- */

static bool in_group_list(pid_t pid, gid_t gid)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strstr(buf, "\nGroups:");
	if (!p)
		return false;
	p += 8;
	while (*p && *p != '\n') {
		char *end;
		unsigned long g = strtoul(p, &end, 10);
		if (end == p)
			break;
		if (g == gid)
			return true;
		p = end;
	}
	return false;
}

/* Root, domusd's own user, and members of the domus group may use the API. */
static bool peer_allowed(int fd)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return false;
	if (uc.uid == 0 || uc.uid == geteuid())
		return true;
	if (!D.have_group)
		return false;
	return uc.gid == D.group || in_group_list(uc.pid, D.group);
}

static enum MHD_Result queue_body(struct MHD_Connection *conn, unsigned status, char *body,
				  const char *content_type)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!body)
		body = strdup("");
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_error(struct MHD_Connection *conn, unsigned status, const char *code,
				   const char *msg)
{
	json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(j);
	return queue_body(conn, status, body, "application/json");
}

static ssize_t events_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct subscriber *s = cls;
	size_t n = 0;

	while (s->seq < D.api.event_seq) {
		const char *line = api_event_line(&D.api, s->seq);
		size_t len = line ? strlen(line) : 0;

		if (!line || len + 1 > max) {
			s->seq++; /* no longer kept, or larger than a chunk: skipped */
			continue;
		}
		if (n + len + 1 > max)
			break;
		memcpy(buf + n, line, len);
		buf[n + len] = '\n';
		n += len + 1;
		s->seq++;
	}
	if (n == 0) {
		/* Nothing new: park the connection until api_event wakes it. */
		s->suspended = true;
		MHD_suspend_connection(s->conn);
	}
	return (ssize_t)n;
}

static void events_free(void *cls)
{
	struct subscriber *s = cls;

	for (struct subscriber **pp = &D.subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
}

static enum MHD_Result queue_events(struct MHD_Connection *conn, unsigned long long since)
{
	struct subscriber *s = calloc(1, sizeof(*s));
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!s)
		return MHD_NO;
	s->conn = conn;
	s->seq = since;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, events_reader, s,
						 events_free);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	s->next = D.subs;
	D.subs = s;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_console(struct MHD_Connection *conn, struct domain *d)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char err[256];
	unsigned status;
	const char *code;

	if (!p)
		return MHD_NO;
	p->domid = d->domid;
	p->vmm_fd = console_connect(d, err, sizeof(err), &status, &code);
	if (p->vmm_fd < 0) {
		free(p);
		return queue_error(conn, status, code, err);
	}
	resp = MHD_create_response_for_upgrade(upgrade_done, p);
	if (!resp) {
		close(p->vmm_fd);
		free(p);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "domus-console");
	ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

static bool header_has(struct MHD_Connection *conn, const char *name, const char *token)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);

	return v && strcasestr(v, token);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct request_ctx *rc = *con_cls;
	struct api_request req;
	struct api_response resp;
	enum MHD_Result ret;

	if (!rc) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		rc = calloc(1, sizeof(*rc));
		if (!rc)
			return MHD_NO;
		rc->denied = !ci || !peer_allowed(ci->connect_fd);
		*con_cls = rc;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (!rc->denied && !rc->too_large) {
			if (rc->len + n > API_MAX_BODY) {
				rc->too_large = true;
				free(rc->body);
				rc->body = NULL;
				rc->len = 0;
			} else {
				char *nb = realloc(rc->body, rc->len + n + 1);
				if (!nb)
					return MHD_NO;
				memcpy(nb + rc->len, upload_data, n);
				rc->body = nb;
				rc->len += n;
				rc->body[rc->len] = 0;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rc->denied)
		return queue_error(conn, MHD_HTTP_FORBIDDEN, "forbidden",
				   "only root and members of the domus group may use domusd");
	req = (struct api_request){
		.method = method,
		.path = url,
		.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							    MHD_HTTP_HEADER_CONTENT_TYPE),
		.source = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "source"),
		.body = rc->body,
		.body_len = rc->len,
		.too_large = rc->too_large,
		.upgrade_console = header_has(conn, MHD_HTTP_HEADER_UPGRADE, "domus-console") &&
				   header_has(conn, MHD_HTTP_HEADER_CONNECTION, "upgrade"),
	};
	api_handle(&D.api, &req, &resp);
	switch (resp.stream) {
	case API_STREAM_EVENTS:
		ret = queue_events(conn, resp.since);
		break;
	case API_STREAM_CONSOLE:
		ret = queue_console(conn, resp.domain);
		break;
	default:
		ret = queue_body(conn, resp.status, resp.body, resp.content_type);
		resp.body = NULL;
		break;
	}
	api_response_free(&resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request_ctx *rc = *con_cls;

	if (rc) {
		free(rc->body);
		free(rc);
	}
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	if (!D.verbose)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_debug("http: %s", buf);
}

/* ---- finding domains again after a restart ---- */

static void record_lost(unsigned domid, const char *name, const char *why)
{
	struct domain tmp = {.domid = domid};

	snprintf(tmp.spec.name, sizeof(tmp.spec.name), "%s", name);
	log_info("domain %s (%u): %s", name, domid, why);
	api_event(&D.api, "stopped", &tmp, why);
	remove_files(domid);
}

static void adopt_one(const char *file)
{
	char path[PATH_MAX], err[1024];
	json_error_t jerr;
	json_t *rec, *msg = NULL;
	struct domain *d;
	const char *ev;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", D.state_dir, file);
	rec = json_load_file(path, 0, &jerr);
	d = calloc(1, sizeof(*d));
	if (!d || !rec) {
		log_warnx("%s: %s; ignored", path, rec ? "out of memory" : jerr.text);
		goto out;
	}
	d->domid = (unsigned)json_integer_value(json_object_get(rec, "domid"));
	d->pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
	d->starttime = (unsigned long long)json_integer_value(json_object_get(rec, "starttime"));
	d->created = (time_t)json_integer_value(json_object_get(rec, "created"));
	d->restarts = (unsigned)json_integer_value(json_object_get(rec, "restarts"));
	d->ctl_fd = d->pidfd = -1;
	if (!d->domid || domain_spec_from_json(json_object_get(rec, "config"), path, &d->spec, err,
					       sizeof(err)) < 0) {
		log_warnx("%s: not a domain record; ignored", path);
		goto out;
	}
	domain_spec_fixup(&d->spec);
	if (d->pid <= 0 || !d->starttime || proc_starttime(d->pid) != d->starttime) {
		record_lost(d->domid, d->spec.name, "ended while domusd was not running");
		goto out;
	}
	path_for(path, sizeof(path), d->domid, "sock");
	fd = connect_unix(path, SOCK_SEQPACKET);
	if (fd < 0) {
		log_warnx("domain %s: pid %d runs but %s does not answer: %s", d->spec.name,
			  (int)d->pid, path, strerror(-fd));
		goto out;
	}
	msg = json_pack("{s:s}", "op", "hello");
	ret = vmmproto_send(fd, msg);
	json_decref(msg);
	msg = NULL;
	if (!ret)
		ret = vmmproto_recv(fd, REQUEST_TIMEOUT_MS, &msg);
	ev = msg ? json_string_value(json_object_get(msg, "event")) : NULL;
	if (ret < 0 || !ev || strcmp(ev, "hello")) {
		log_warnx("domain %s: no hello on %s", d->spec.name, path);
		close(fd);
		goto out;
	}
	d->ctl_fd = fd;
	d->pidfd = sys_pidfd_open(d->pid);
	{
		const char *st = json_string_value(json_object_get(msg, "state"));
		static const char *states[] = {"running", "paused", "crashed", "shutdown", "stopped"};
		d->state = "running";
		for (size_t i = 0; st && i < sizeof(states) / sizeof(states[0]); i++)
			if (!strcmp(st, states[i]))
				d->state = states[i];
	}
	if (api_adopt(&D.api, d, err, sizeof(err)) < 0) {
		log_warnx("domain %u: %s", d->domid, err);
		close(d->ctl_fd);
		close(d->pidfd);
		goto out;
	}
	domain_watch_fds(d);
	log_info("domain %s (%u, pid %d) found running; managed again", d->spec.name, d->domid,
		 (int)d->pid);
	api_event(&D.api, "adopted", d, NULL);
	d = NULL;
out:
	json_decref(msg);
	json_decref(rec);
	free(d);
}

static void adopt_domains(void)
{
	DIR *dir = opendir(D.state_dir);
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 12 && !strcmp(e->d_name + n - 12, ".domain.json"))
			adopt_one(e->d_name);
	}
	closedir(dir);
}

/* ---- start-up ---- */

static int mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int open_api_socket(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdirs(dir, 0755) < 0)
			log_warn("mkdir %s", dir);
	}
	/* A socket someone still answers on belongs to a running domusd: leave it. */
	fd = connect_unix(path, SOCK_STREAM);
	if (fd >= 0) {
		close(fd);
		return -EADDRINUSE;
	}
	fd = bind_listener(path, SOCK_STREAM, 64);
	if (fd < 0)
		return fd;
	if (D.have_group) {
		if (chown(path, 0, D.group) < 0 && geteuid() == 0)
			log_warn("chown %s", path);
		chmod(path, 0660);
	} else {
		chmod(path, 0600);
	}
	return fd;
}

static int host_memory_mib(uint64_t *mib)
{
	char buf[8192];
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	return meminfo_total_mib(buf, mib);
}

static void default_vmm_path(char *out, size_t len)
{
	char self[PATH_MAX - 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0) {
		snprintf(out, len, "domus-vmm");
		return;
	}
	self[n] = 0;
	slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(out, len, "%s/domus-vmm", self);
}

static const char usage_text[] =
	"usage: domusd [--socket PATH] [--state-dir DIR] [--group NAME] [--memory MIB]\n"
	"              [--vmm PATH] [-v]\n"
	"  --socket PATH     the API socket (default " DEFAULT_SOCKET ")\n"
	"  --state-dir DIR   domain records, sockets and logs (default " DEFAULT_STATE_DIR ")\n"
	"  --group NAME      members may use the API besides root (default domus)\n"
	"  --memory MIB      give domains at most this much memory in all\n"
	"  --vmm PATH        the domus-vmm binary (default: beside domusd)\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"state-dir", required_argument, NULL, 'd'},
		{"group", required_argument, NULL, 'g'},
		{"memory", required_argument, NULL, 'm'},
		{"vmm", required_argument, NULL, 'x'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = DEFAULT_SOCKET, *state_dir = DEFAULT_STATE_DIR, *group = "domus";
	unsigned long long limit_mib = 0;
	uint64_t total_mib = 0;
	struct epoll_event ev;
	struct watch w_mhd = {W_MHD, NULL}, w_sig = {W_SIGNAL, NULL};
	struct group *gr;
	sigset_t sigs;
	int opt, api_fd, sigfd, ret;
	char logpath[PATH_MAX], *end;

	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sock_path = optarg; break;
		case 'd': state_dir = optarg; break;
		case 'g': group = optarg; break;
		case 'm':
			limit_mib = strtoull(optarg, &end, 10);
			if (!*optarg || *end || !limit_mib) {
				fprintf(stderr, "domusd: --memory '%s': expected a number of MiB\n", optarg);
				return 2;
			}
			break;
		case 'x': snprintf(D.vmm_path, sizeof(D.vmm_path), "%s", optarg); break;
		case 'v': D.verbose = 1; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	log_init("domusd", D.verbose);
	if (!D.vmm_path[0])
		default_vmm_path(D.vmm_path, sizeof(D.vmm_path));
	if (access(D.vmm_path, X_OK) < 0) {
		log_warn("domus-vmm at %s", D.vmm_path);
		return 1;
	}
	if (!realpath(state_dir, D.state_dir)) {
		if (mkdirs(state_dir, 0700) < 0 || !realpath(state_dir, D.state_dir)) {
			log_warn("state directory %s", state_dir);
			return 1;
		}
	}
	snprintf(logpath, sizeof(logpath), "%s/log", D.state_dir);
	if (mkdirs(logpath, 0750) < 0) {
		log_warn("mkdir %s", logpath);
		return 1;
	}
	gr = getgrnam(group);
	if (gr) {
		D.group = gr->gr_gid;
		D.have_group = true;
	} else {
		log_info("no group '%s': only root may use the API", group);
	}
	if (host_memory_mib(&total_mib) < 0) {
		log_warnx("cannot read MemTotal from /proc/meminfo");
		return 1;
	}
	api_init(&D.api, &vmm_ops, &D, (unsigned)sysconf(_SC_NPROCESSORS_ONLN), total_mib,
		 mem_account_capacity(total_mib, limit_mib));

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	D.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sigfd < 0 || D.epfd < 0) {
		log_warn("signalfd/epoll");
		return 1;
	}
	watch_add(sigfd, &w_sig);
	adopt_domains();

	api_fd = open_api_socket(sock_path);
	if (api_fd < 0) {
		if (api_fd == -EADDRINUSE)
			log_warnx("another domusd answers on %s", sock_path);
		else
			log_errno(api_fd, "API socket %s", sock_path);
		return 1;
	}
	D.mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_ALLOW_SUSPEND_RESUME |
					 MHD_USE_ITC | MHD_USE_ERROR_LOG,
				 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
				 mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, api_fd,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CLIENT_IDLE_SECONDS,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CLIENTS,
				 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
	if (!D.mhd) {
		log_warnx("cannot start the HTTP server on %s", sock_path);
		return 1;
	}
	{
		const union MHD_DaemonInfo *info = MHD_get_daemon_info(D.mhd, MHD_DAEMON_INFO_EPOLL_FD);
		if (!info) {
			log_warnx("libmicrohttpd has no epoll descriptor");
			return 1;
		}
		watch_add(info->epoll_fd, &w_mhd);
	}
	log_info("serving %s; state in %s; %llu MiB for domains, %u domain(s) running", sock_path,
		 D.state_dir, (unsigned long long)D.api.mem.capacity_mib, D.api.ndomains);

	while (!D.stop) {
		MHD_UNSIGNED_LONG_LONG to = 0;
		int timeout = 1000;
		/* One event at a time: handling one may free what another points to. */
		ret = epoll_wait(D.epfd, &ev, 1,
				 MHD_get_timeout(D.mhd, &to) == MHD_YES && to < 1000 ? (int)to : timeout);
		if (ret < 0 && errno != EINTR) {
			log_warn("epoll_wait");
			break;
		}
		if (ret == 1) {
			struct watch *w = ev.data.ptr;
			switch (w->kind) {
			case W_MHD:
				break;
			case W_SIGNAL: {
				struct signalfd_siginfo si;
				while (read(sigfd, &si, sizeof(si)) == sizeof(si))
					if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
						D.stop = true;
				break;
			}
			case W_CONTROL:
				control_readable(w->ptr);
				break;
			case W_PIDFD:
				domain_exited(w->ptr);
				break;
			case W_PROXY_CLIENT:
				proxy_client_readable(w->ptr);
				break;
			case W_PROXY_VMM:
				proxy_vmm_readable(w->ptr);
				break;
			}
		}
		MHD_run(D.mhd);
	}
	/* Domains keep running: a new domusd finds them through their records. */
	log_info("stopping; %u domain(s) keep running", D.api.ndomains);
	while (D.proxies)
		proxy_close(D.proxies);
	wake_subscribers(NULL);
	MHD_stop_daemon(D.mhd);
	unlink(sock_path);
	return 0;
}
