/*
 * domusd's pieces and what they share: the epoll watches, the console
 * proxies and event subscribers, and the daemon's state. domusd.c starts
 * and runs the loop, supervise.c keeps the domains' processes, httpd.c
 * speaks HTTP.
 */
#ifndef DOMUS_DOMUSD_H
#define DOMUS_DOMUSD_H

#include <limits.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ctl/api.h"
#include "ctl/blkhost.h"
#include "ctl/cgroup.h"
#include "ctl/sched_gran.h"
#include "ctl/shm.h"
#include "ctl/nethost.h"
#include "ctl/watch.h"
#include "lib/task.h"

#define DEFAULT_SOCKET "/run/domus/domusd.sock"
#define DEFAULT_STATE_DIR "/var/lib/domus"
#define START_TIMEOUT_MS 60000  /* a domain's process loads its kernel and builds the VM */
#define REQUEST_TIMEOUT_MS 10000
#define CLIENT_IDLE_SECONDS 30
#define CONSOLE_CLIENT_SNDBUF 4096 /* bytes; the kernel doubles it */
#define MAX_CLIENTS 128
#define DEFAULT_BLK_CACHE_MAX_MIB 1024 /* the disk read cache's limit at most (--blk-cache-mib) */


/* A console attach: the client's upgraded HTTP socket spliced to the domain's console. */
struct proxy {
	struct proxy *next;
	int client_fd, vmm_fd;
	/*
	 * A reader slower than its domain's output: what it has not taken yet,
	 * and a second descriptor of its socket watched for room meanwhile,
	 * while its domain's side is not read (its console ring keeps the rest).
	 */
	char pending[8192];
	size_t pending_off, pending_len;
	int out_fd;
	unsigned domid;
	struct MHD_UpgradeResponseHandle *urh;
	struct watch wc, wv, wo;
};

/* A request to a domain's process, waiting for its reply (supervise.c). */
struct vmm_call {
	struct vmm_call *next;
	char op[32];
	bool linked;	 /* still in its domain's list */
	int result;	 /* 1 while waiting, 0 with reply set, or -errno */
	json_t *reply;
	struct task_event done;
};

/* Per-domain daemon state beside struct domain. */
struct domain_watch {
	struct watch ctl, pid;
	struct vmm_call *calls; /* sent, in order, waiting for their replies */
};

/* One HTTP request in progress. */
struct request_ctx {
	char *body;
	size_t len;
	bool too_large;
	bool checked;
	bool denied;
	struct caller caller;
	/*
	 * The API's handling runs in a task of its own (lib/task.h): while it
	 * waits for a domain, its connection is suspended and the daemon
	 * serves everyone else.
	 */
	enum { REQUEST_NEW, REQUEST_RUNNING, REQUEST_DONE } phase;
	bool suspended;
	struct request_ctx *next_waiting; /* in D.waiting while suspended */
	struct MHD_Connection *conn;
	struct api_request req;
	struct api_response resp;
	/* A console attach, connected by the task. */
	int console_fd;
	unsigned console_domid;
	unsigned console_status;
	const char *console_code;
	char console_err[256];
};

/* A client following /v1/events. */
struct subscriber {
	struct subscriber *next;
	struct MHD_Connection *conn;
	unsigned long long seq;
	bool suspended;
	struct caller caller; /* sees only the events of their own domains, unless root */
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
	struct cgroups cgroups; /* one per domain and back-end, when cgroup v2 is there */
	struct sched_gran sched_gran; /* --sched-gran: keeping domains off each other's cores */
	int gang;                     /* --gang: the default of domains that do not say (0 or 1) */
	unsigned backend_weight;      /* --backend-weight: domus-blk's and domus-net's, Xen's scale */
	struct blkhost blk; /* the host's domus-blk */
	struct nethost net; /* the host's domus-net */
	struct shm_registry shm; /* shared-memory regions and their ivshmem servers */
	struct task_event domain_events; /* a domain's process said something (not a reply) */
	struct request_ctx *waiting; /* requests whose tasks wait, their connections suspended */
	bool stop;
	int verbose;
	bool console_log;             /* --console-log: each domain's console in STATE/log too */
};

extern struct daemon D;

/* domusd.c */
/* STATE_DIR/DOMID.SUFFIX */
void path_for(char *buf, size_t len, unsigned domid, const char *suffix);

/* supervise.c */
extern const struct domain_ops vmm_ops;
/* The domain's process ended (its pidfd is readable). */
void domain_exited(struct domain *d);
/* The domain's control socket has a message (an event) for us. */
void control_readable(struct domain *d);
/* Finds the domains a previous domusd left running, from their records. */
void adopt_domains(void);

/* api_vfr.c: /v1/vfr/... on the host's domus-net (ops->vfr). */
void api_vfr(void *ctx, struct api *a, const struct api_request *req, const char *path,
	     struct api_response *r);

/* httpd.c */
enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
			   const char *method, const char *version, const char *upload_data,
			   size_t *upload_data_size, void **con_cls);
void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		  enum MHD_RequestTerminationCode toe);
void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void wake_subscribers(void *ctx);
/* At stop: the requests still waiting are answered 503 (their outcome is not known). */
void requests_abandon(void);
void proxy_close(struct proxy *p);
void proxy_client_readable(struct proxy *p);
void proxy_vmm_readable(struct proxy *p);
void proxy_client_writable(struct proxy *p);

#endif
