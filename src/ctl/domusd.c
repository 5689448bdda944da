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
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/domusd.h"
#include "lib/backend_proc.h"
#include "net/netctl.h"
#include "vmm/blkctl.h"
#include "lib/unix_socket.h"
#include "lib/ctlproc.h"
#include "lib/log.h"

struct daemon D;

void watch_add(int fd, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	if (epoll_ctl(D.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_warn("epoll_ctl add %d", fd);
}

void watch_add_out(int fd, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = w};

	if (epoll_ctl(D.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_warn("epoll_ctl add %d", fd);
}

void watch_del(int fd)
{
	if (fd >= 0)
		epoll_ctl(D.epfd, EPOLL_CTL_DEL, fd, NULL);
}

const struct watch_loop domusd_loop = {.add = watch_add, .del = watch_del};

static int task_watch_add(int fd, unsigned events, struct watch *w)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(D.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static const struct task_loop domusd_task_loop = {.add = task_watch_add, .del = watch_del};

void path_for(char *buf, size_t len, unsigned domid, const char *suffix)
{
	snprintf(buf, len, "%s/%u.%s", D.state_dir, domid, suffix);
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
	fd = unix_connect(path, SOCK_STREAM);
	if (fd >= 0) {
		close(fd);
		return -EADDRINUSE;
	}
	fd = unix_listen(path, SOCK_STREAM, 64);
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
	"              [--vmm PATH] [--no-reclaim] [--blk-cache-mib MIB] [--blk-sched SETTINGS]\n"
	"              [--sched-gran core|cpu] [--topology DIR] [--backend-weight N] [--gang]\n"
	"              [--blk-threads N] [--blk-poll-us N] [--net-threads N] [--net-poll-us N]\n"
	"              [--console-log] [-v]\n"
	"  --socket PATH     the API socket (default " DEFAULT_SOCKET ")\n"
	"  --state-dir DIR   domain records, sockets and logs (default " DEFAULT_STATE_DIR ")\n"
	"  --group NAME      members may use the API besides root (default domus)\n"
	"  --memory MIB      give domains at most this much memory in all\n"
	"  --vmm PATH        the domus-vmm binary (default: beside domusd)\n"
	"  --no-reclaim      never shrink running domains' balloons to admit a new one\n"
	"  --blk-cache-mib MIB  the disk read cache takes half the idle memory, at most this\n"
	"                    (default 1024; 0: no cache)\n"
	"  --blk-sched op-ns=N,byte-ps=N,capacity-pct=N,depth=N[,delay-us=N]\n"
	"                    the disk scheduler's cost model, the share of the disk reservations\n"
	"                    may take, requests in flight (docs/blk.md: bench/blk-qos measures them);\n"
	"                    delay-us holds each request that long, a slow disk for tests\n"
	"  --blk-threads N   domus-blk's worker threads (default 1; docs/blk.md)\n"
	"  --net-threads N   domus-net's worker threads (default 1, at most 16; docs/net.md)\n"
	"  --blk-poll-us N, --net-poll-us N  after a batch, domus-blk (domus-net) watches its\n"
	"                    queues this many microseconds before it sleeps (default 0: off)\n"
	"  --console-log     keep each domain's console in STATE-DIR/log/NAME.console.log too\n"
	"                    (emptied as the domain is created; at most 16 MiB a domain)\n"
	"  --sched-gran core|cpu  core (the default): no two domains' vCPUs on sibling\n"
	"                    hyperthreads at once; cpu: the kernel places them freely (docs/sched.md)\n"
	"  --topology DIR    read which CPUs are sibling hyperthreads from DIR, laid out as\n"
	"                    /sys/devices/system/cpu (the default), for a host whose own does not say\n"
	"  --backend-weight N  domus-blk's and domus-net's CPU weight each, on the domains'\n"
	"                    scale (default 1024: four domains' worth)\n"
	"  --gang            co-schedule the vCPUs of domains that do not say gang = 0\n"
	"                    (docs/sched.md)\n"
	"  --uplink TAP:ADDR/PREFIX[:GATEWAY]  domus-net's link to the host's network\n"
	"  --network NAME=CIDR[,mode=none|routed|nat|rsip][,default=accept|drop|reject][,dns=ADDR]\n"
	"                    a network of domains (repeatable; \"default\" is 10.0.2.0/24 unless given)\n"
	"  --ipfix ADDR:PORT send flow records as IPFIX to this collector\n";

/* --blk-threads, --net-threads: 1 to max worker threads for domus-KIND. */
static int set_threads(const char *kind, const char *arg, unsigned long max)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (!*arg || *end || errno || n < 1 || n > max) {
		fprintf(stderr, "domusd: --%s-threads '%s': 1 to %lu\n", kind, arg, max);
		return -EINVAL;
	}
	/* The name is kept, not copied: a literal. */
	ctlproc_set_threads(!strcmp(kind, "blk") ? "domus-blk" : "domus-net", (unsigned)n);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"state-dir", required_argument, NULL, 'd'},
		{"group", required_argument, NULL, 'g'},
		{"memory", required_argument, NULL, 'm'},
		{"vmm", required_argument, NULL, 'x'},
		{"no-reclaim", no_argument, NULL, 'R'},
		{"blk-cache-mib", required_argument, NULL, 'c'},
		{"blk-sched", required_argument, NULL, 'S'},
		{"blk-threads", required_argument, NULL, 'B'},
		{"blk-poll-us", required_argument, NULL, 'p'},
		{"net-poll-us", required_argument, NULL, 'q'},
		{"net-threads", required_argument, NULL, 'Q'},
		{"sched-gran", required_argument, NULL, 'G'},
		{"topology", required_argument, NULL, 'T'},
		{"backend-weight", required_argument, NULL, 'W'},
		{"gang", no_argument, NULL, 'K'},
		{"uplink", required_argument, NULL, 'U'},
		{"network", required_argument, NULL, 'N'},
		{"ipfix", required_argument, NULL, 'I'},
		{"console-log", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_path = DEFAULT_SOCKET, *state_dir = DEFAULT_STATE_DIR, *group = "domus";
	unsigned long long limit_mib = 0, cache_max_mib = DEFAULT_BLK_CACHE_MAX_MIB;
	uint64_t total_mib = 0;
	bool reclaim = true, gran_core = true;
	const char *topology_dir = "/sys/devices/system/cpu";
	struct epoll_event ev;
	struct watch w_mhd = {W_MHD, NULL}, w_sig = {W_SIGNAL, NULL};
	struct group *gr;
	sigset_t sigs;
	int opt, api_fd, sigfd, ret;
	char logpath[PATH_MAX], *end;
	const char *uplink = NULL, *ipfix = NULL, *networks[VFR_NETWORKS_MAX], *blk_sched = NULL;
	unsigned nnetworks = 0;

	/*
	 * The back-ends serve every domain: a busy one gets four domains' share
	 * of a contended CPU, and takes nothing from them while idle.
	 */
	D.backend_weight = 1024;
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
		case 'c':
			errno = 0;
			cache_max_mib = strtoull(optarg, &end, 10);
			if (!*optarg || *end || errno || optarg[0] == '-' || cache_max_mib > (1ull << 30)) {
				fprintf(stderr, "domusd: --blk-cache-mib '%s': expected a number of MiB\n", optarg);
				return 2;
			}
			break;
		case 'x': snprintf(D.vmm_path, sizeof(D.vmm_path), "%s", optarg); break;
		case 'R': reclaim = false; break;
		case 'S': blk_sched = optarg; break;
		case 'B':
		case 'Q':
			if (set_threads(opt == 'B' ? "blk" : "net", optarg, opt == 'B' ? 64 : 16) < 0)
				return 2;
			break;
		case 'p':
		case 'q':
			errno = 0;
			if (!*optarg || strtoul(optarg, &end, 10) > 1000000 || *end || errno ||
			    optarg[0] == '-') {
				fprintf(stderr, "domusd: --%s-poll-us '%s': 0 to 1000000\n",
					opt == 'p' ? "blk" : "net", optarg);
				return 2;
			}
			ctlproc_set_poll_us(opt == 'p' ? "domus-blk" : "domus-net",
					    (unsigned)strtoul(optarg, NULL, 10));
			break;
		case 'W':
			errno = 0;
			D.backend_weight = (unsigned)strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || optarg[0] == '-' || !D.backend_weight ||
			    strtoul(optarg, NULL, 10) > 65535) {
				fprintf(stderr, "domusd: --backend-weight '%s': 1 to 65535 (Xen's scale)\n", optarg);
				return 2;
			}
			break;
		case 'G':
			if (sched_gran_parse(optarg, &gran_core) < 0) {
				fprintf(stderr, "domusd: --sched-gran '%s': expected core or cpu\n", optarg);
				return 2;
			}
			break;
		case 'T': topology_dir = optarg; break;
		case 'K': D.gang = 1; break;
		case 'U': uplink = optarg; break;
		case 'I': ipfix = optarg; break;
		case 'N':
			if (nnetworks == VFR_NETWORKS_MAX) {
				fprintf(stderr, "domusd: more than %d networks\n", VFR_NETWORKS_MAX);
				return 2;
			}
			networks[nnetworks++] = optarg;
			break;
		case 'C': D.console_log = true; break;
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
	D.api.reclaim = reclaim;

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
	task_init(&domusd_task_loop, W_TASK);
	{
		char why[512];
		if (cgroup_init(&D.cgroups, "/sys/fs/cgroup", why, sizeof(why)) < 0)
			log_warnx("cgroups: %s; domains run without a memory limit, and what a domain "
				  "holds is what its guest's balloon says", why);
		else if (cgroup_make(&D.cgroups, "domus-blk", 0, why, sizeof(why)) < 0 ||
			 cgroup_make(&D.cgroups, "domus-net", 0, why, sizeof(why)) < 0)
			log_warnx("cgroups: %s", why);
		else {
			ctlproc_set_cgroup("domus-blk", cgroup_open(&D.cgroups, "domus-blk"));
			ctlproc_set_cgroup("domus-net", cgroup_open(&D.cgroups, "domus-net"));
			log_info("cgroups: domains and back-ends under %s", D.cgroups.base);
			if (cgroup_set_cpu(&D.cgroups, "domus-blk", D.backend_weight, 0, why, sizeof(why)) < 0 ||
			    cgroup_set_cpu(&D.cgroups, "domus-net", D.backend_weight, 0, why, sizeof(why)) < 0)
				log_warnx("back-ends' CPU weight: %s", why);
		}
		if (sched_gran_init(&D.sched_gran, gran_core, topology_dir,
				    sched_gran_kernel_has_core_sched()) < 0) {
			log_warnx("out of memory");
			return 1;
		}
		log_info("%s", D.sched_gran.why);
	}
	{
		char blk_dir[PATH_MAX], program[PATH_MAX];
		snprintf(blk_dir, sizeof(blk_dir), "%s/blk", D.state_dir);
		/* Searchable, not listable: each domain's process connects to its own sockets here. */
		if (mkdirs(blk_dir, 0711) < 0 || chmod(blk_dir, 0711) < 0) {
			log_warn("mkdir %s", blk_dir);
			return 1;
		}
		blkctl_find_program(program, sizeof(program), D.vmm_path);
		blkhost_init(&D.blk, program, blk_dir);
		D.blk.cache_max_mib = cache_max_mib;
		if (blk_sched) {
			char why[256];
			if (blkhost_sched(&D.blk, blk_sched, why, sizeof(why)) < 0) {
				fprintf(stderr, "domusd: --blk-sched: %s\n", why);
				return 2;
			}
		}
	}
	{
		char net_dir[PATH_MAX], program[PATH_MAX], why[512];
		bool have_default = false;

		snprintf(net_dir, sizeof(net_dir), "%s/net", D.state_dir);
		if (mkdirs(net_dir, 0711) < 0 || chmod(net_dir, 0711) < 0) {
			log_warn("mkdir %s", net_dir);
			return 1;
		}
		netctl_find_program(program, sizeof(program), D.vmm_path);
		nethost_init(&D.net, program, net_dir);
		if ((uplink && nethost_set_uplink(&D.net, uplink, why, sizeof(why)) < 0) ||
		    (ipfix && nethost_set_ipfix(&D.net, ipfix, why, sizeof(why)) < 0)) {
			log_warnx("%s", why);
			return 2;
		}
		for (unsigned i = 0; i < nnetworks; i++) {
			if (nethost_add_network(&D.net, networks[i], why, sizeof(why)) < 0) {
				log_warnx("--network: %s", why);
				return 2;
			}
			have_default |= !strncmp(networks[i], NETHOST_DEFAULT_NETWORK "=",
						 strlen(NETHOST_DEFAULT_NETWORK) + 1);
		}
		if (!have_default &&
		    nethost_add_network(&D.net, NETHOST_DEFAULT_NETWORK "=10.0.2.0/24", why, sizeof(why)) < 0)
			log_warnx("the default network: %s", why);
	}
	adopt_domains();
	{
		char why[256];
		/* With no domain adopted nothing called it yet; domus-blk gets it when it starts. */
		if (blkhost_cache_fit(&D.blk, mem_account_free(&D.api.mem), NULL, why, sizeof(why)) < 0)
			log_warnx("domus-blk: setting the cache limit: %s", why);
	}

	api_fd = open_api_socket(sock_path);
	if (api_fd < 0) {
		if (api_fd == -EADDRINUSE)
			log_warnx("another domusd answers on %s", sock_path);
		else
			log_errno(api_fd, "API socket %s", sock_path);
		return 1;
	}
	{
		/* Beside the API socket, in the runtime directory: the regions' sockets (docs/domusd.md). */
		char shm_dir[PATH_MAX];
		char *slash;
		struct rlimit rl;
		int r;

		snprintf(shm_dir, sizeof(shm_dir), "%s", sock_path);
		slash = strrchr(shm_dir, '/');
		if (slash)
			snprintf(slash + 1, sizeof(shm_dir) - (size_t)(slash + 1 - shm_dir), "shm");
		else
			snprintf(shm_dir, sizeof(shm_dir), "shm");
		if ((r = shm_registry_init(&D.shm, shm_dir, &domusd_loop, W_SHM_LISTEN, W_SHM_PEER)) < 0) {
			log_errno(r, "shared-memory sockets' directory %s", shm_dir);
			return 1;
		}
		D.api.shm = &D.shm;
		/* A full region holds 64 peers' 64 eventfds: the soft limit of 1024 is too few. */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
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
		int timeout = 1000, task_timeout = task_next_timeout_ms();

		if (MHD_get_timeout(D.mhd, &to) == MHD_YES && to < (unsigned)timeout)
			timeout = (int)to;
		if (task_timeout >= 0 && task_timeout < timeout)
			timeout = task_timeout;
		/* One event at a time: handling one may free what another points to. */
		ret = epoll_wait(D.epfd, &ev, 1, timeout);
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
			case W_PROXY_CLIENT_OUT:
				proxy_client_writable(w->ptr);
				break;
			case W_BACKEND_PID:
				backend_proc_exited(w->ptr);
				break;
			case W_BACKEND_TIMER:
				backend_proc_restart(w->ptr);
				break;
			case W_TASK:
				task_watch_ready(w);
				break;
			case W_SHM_LISTEN:
				shm_server_accept(w->ptr);
				break;
			case W_SHM_PEER:
				shm_server_peer_readable(w->ptr);
				break;
			}
		}
		task_run_due();
		MHD_run(D.mhd);
		if (!task_count())
			api_free_gone(&D.api);
	}
	/* Domains keep running: a new domusd finds them through their records. */
	log_info("stopping; %u domain(s) keep running", D.api.ndomains);
	requests_abandon();
	while (D.proxies)
		proxy_close(D.proxies);
	wake_subscribers(NULL);
	MHD_stop_daemon(D.mhd);
	blkhost_stop(&D.blk);
	nethost_stop(&D.net);
	/* The regions live in this process: they end with it (docs/domusd.md says what peers keep). */
	D.api.shm = NULL;
	shm_registry_free(&D.shm);
	unlink(sock_path);
	return 0;
}
