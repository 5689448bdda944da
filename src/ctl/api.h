/*
 * domusd's REST API, apart from HTTP: requests come in as method, path and
 * body; responses go out as a status and a JSON body. The domain table and
 * host accounting live here; starting and talking to domain processes goes
 * through domain_ops, so the API can be tested and fuzzed without them.
 */
#ifndef DOMUS_API_H
#define DOMUS_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "ctl/caller.h"
#include "domain/domcfg.h"
#include "ctl/memacct.h"

#define API_MAX_BODY (1024 * 1024)
#define API_EVENT_RING 256
#define API_MAX_DOMAINS 1024

struct api;
struct api_request;
struct shm_registry;
struct api_response;

/* What domusd knows of a domain's balloon, from its process's events. */
struct domain_balloon {
	uint64_t target_mib; /* domusd's word; the domain's memory without a balloon */
	uint64_t actual_mib; /* RAM less the balloon, as the guest's driver says */
	bool heard;          /* the driver has said something since the domain started */
	bool reached;        /* actual came to target since the target was set */
	bool reclaimed;      /* the policy shrank it: give-back may grow it again */
	struct timespec target_set; /* CLOCK_MONOTONIC */
	bool have_stats;
	uint64_t stats_free_mib, stats_available_mib, stats_total_mib, stats_caches_mib;
	double stats_age;
	uint64_t bad_pfns;
	char guest_error[160];
};

struct domain {
	struct domain *next;
	unsigned domid;
	struct domain_spec spec;
	const char *state; /* running, paused, crashed, shutdown, stopped */
	pid_t pid;
	unsigned long long starttime; /* of pid, in clock ticks after boot: tells pid reuse */
	time_t created;
	struct caller owner; /* who created it: only they and root act on it; files open as them */
	unsigned restarts;
	uint64_t mem_mib; /* claimed from the host account: see api_mem.c */
	struct domain_balloon balloon;
	int ctl_fd;
	int pidfd;
	bool destroying;      /* a destroy is under way */
	bool gone;            /* no longer listed; freed once no request can still hold it */
	char stop_reason[32]; /* from the domain's last "stopped" event */
	char stop_detail[160];
	void *priv; /* the daemon's own per-domain state */
};

struct domain_ops {
	/*
	 * Starts d's process with the files of its spec opened as caller c;
	 * returns once the domain runs, or -errno with why in err.
	 */
	int (*start)(void *ctx, struct domain *d, const struct caller *c, char *err, size_t errlen);
	/* Sends op to d's process and waits for its reply (*reply may be NULL). */
	int (*request)(void *ctx, struct domain *d, const char *op, json_t **reply, char *err,
		       size_t errlen);
	/* Ends d's process at once and removes its files. */
	void (*destroy)(void *ctx, struct domain *d);
	/* Adds the process's resource use (cpu_seconds, memory_rss_kib) to out. */
	void (*usage)(void *ctx, const struct domain *d, json_t *out);
	/*
	 * What d really holds of the host's memory for its guest, in MiB, as
	 * the kernel counts it (its cgroup), never as the guest says. 0, or
	 * -errno where it cannot be known (NULL: never): then the balloon's
	 * word is taken.
	 */
	int (*memory_held)(void *ctx, const struct domain *d, uint64_t *mib);
	/* Called after an event is recorded, for live event streams. */
	void (*event)(void *ctx);
	/* Tells d's process its balloon's new target; 0 or -errno with why in err. */
	int (*balloon_set)(void *ctx, struct domain *d, uint64_t target_mib, char *err, size_t errlen);
	/*
	 * Takes the domains' events (balloon moves among them) for up to
	 * timeout_ms, until done(a, arg) holds; returns whether it does.
	 */
	bool (*wait)(void *ctx, bool (*done)(struct api *a, void *arg), void *arg, int timeout_ms);
	/*
	 * The memory claimed by domains changed: free_mib is unclaimed now.
	 * Called after a domain's memory is claimed and before it starts (so
	 * the disk cache shrinks first), and after memory is released.
	 */
	void (*memory_changed)(void *ctx, uint64_t free_mib);
	/* Adds host-wide state (the disk cache: "blk_cache") to GET /v1/host's object. */
	void (*host)(void *ctx, json_t *out);
	/*
	 * Whether a request may still hold a domain across a wait (domusd: a
	 * task is waiting); then a domain that goes is kept until
	 * api_free_gone(). NULL: never.
	 */
	bool (*busy)(void *ctx);
	/*
	 * /v1/vfr/PATH: the firewall-router's networks, rules, statistics and
	 * captures (src/ctl/api_vfr.c). NULL: 404.
	 */
	void (*vfr)(void *ctx, struct api *a, const struct api_request *req, const char *path,
		    struct api_response *r);
	/*
	 * d's spec holds new disk QoS (old: what it held before): make it so.
	 * 0, or -errno with why in err and the old QoS in force again (-ENOSPC:
	 * a reservation the disk cannot honour). NULL: refused.
	 */
	int (*disk_qos_set)(void *ctx, struct domain *d, const struct domain_spec *old, char *err,
			    size_t errlen);
	/* d's disk groups: [{"group", "disks", "qos", "settings", "stats"}]. NULL: []. */
	json_t *(*disk_qos)(void *ctx, const struct domain *d);
	/*
	 * The disk scheduler's host-wide settings ("depth=8,op-ns=5000", any of
	 * them) applied. 0; -EINVAL for bad settings, nothing changed; other
	 * -errno if domus-blk did not take them. Why in err. NULL: 404.
	 */
	int (*blk_sched_set)(void *ctx, const char *settings, char *err, size_t errlen);
	/*
	 * d's spec holds a new cpu_weight and cap: apply them (its cgroup's
	 * cpu.weight and cpu.max) and save them. 0; -ENOTSUP without cgroup
	 * v2's cpu controller; -errno. Why in err. NULL: 501.
	 */
	int (*sched_set)(void *ctx, struct domain *d, char *err, size_t errlen);
	/* {"cpu_weight": N, "cpu_max": "QUOTA PERIOD"} as d's cgroup has them, or null. */
	json_t *(*sched)(void *ctx, const struct domain *d);
	/*
	 * d's spec pins vCPU vcpu (-1: all) to cpus now: tell its process and
	 * save. 0 or -errno with why in err. NULL: 501.
	 */
	int (*vcpu_pin)(void *ctx, struct domain *d, int vcpu, const char *cpus, char *err, size_t errlen);
	/*
	 * d's vCPUs: [{"vcpu", "tid", "cpu", "state", "time_s", "steal_s", "cpus"}],
	 * or NULL with why in err.
	 */
	json_t *(*vcpus)(void *ctx, struct domain *d, char *err, size_t errlen);
};

struct api {
	struct domain *domains;
	unsigned ndomains;
	struct domain *starting; /* being created: their names and domids are taken */
	struct domain *gone;	 /* ended while a request may still hold them */
	unsigned next_domid;
	struct mem_account mem;
	unsigned host_cpus;
	uint64_t host_total_mib;
	const struct domain_ops *ops;
	void *ctx;
	bool reclaim;                 /* the balloon policy may shrink domains to admit others */
	uint64_t free_told_mib;       /* what memory_changed last said was free */
	unsigned reclaim_timeout_ms;  /* how long domains have to give memory back */
	unsigned long long event_seq; /* sequence number of the next event */
	char *events[API_EVENT_RING];
	int64_t event_owner[API_EVENT_RING]; /* the domain's owner; -1 for the host's events */
	struct shm_registry *shm; /* shared-memory regions (ctl/shm.h); NULL: none kept */
};

struct api_request {
	const char *method;
	const char *path;
	const char *content_type; /* NULL if none */
	const char *source;       /* ?source=NAME: the config's file name, for messages */
	const char *since;        /* ?since=SEQ: the event stream starts at event SEQ */
	const char *force;        /* ?force=1: DELETE /v1/shm/NAME drops its peers */
	const char *body;
	size_t body_len;
	bool too_large; /* the body was cut at API_MAX_BODY */
	bool upgrade_console; /* Upgrade: domus-console */
	const struct caller *caller; /* who asks (peer credentials); NULL: refused */
};

enum api_stream { API_STREAM_NONE, API_STREAM_CONSOLE, API_STREAM_EVENTS };

struct api_response {
	unsigned status;
	char *body; /* malloc'd, NUL-terminated */
	const char *content_type;
	enum api_stream stream; /* after the status: the console, or the event stream */
	struct domain *domain;  /* the console's domain */
	unsigned long long since; /* the event stream starts at this sequence number */
};

void api_init(struct api *a, const struct domain_ops *ops, void *ctx, unsigned host_cpus,
	      uint64_t host_total_mib, uint64_t capacity_mib);
void api_handle(struct api *a, const struct api_request *req, struct api_response *resp);
void api_response_free(struct api_response *resp);

struct domain *api_find(struct api *a, const char *name_or_id);
/* Frees the domains that ended while requests were waiting; call when none is. */
void api_free_gone(struct api *a);
/* Adds a domain found running (after a domusd restart); claims its memory. */
int api_adopt(struct api *a, struct domain *d, char *err, size_t errlen);
/* The domain's process is gone: records the event, frees the domain. */
void api_domain_gone(struct api *a, struct domain *d);
/* Records an event: {"seq", "time", "event", "domain", "domid", "detail"}. */
void api_event(struct api *a, const char *type, const struct domain *d, const char *detail);
/* The same, seen only by owner (a uid) and root; -1: by everyone (the host's). */
void api_event_owned(struct api *a, const char *type, const struct domain *d, const char *detail,
		     int64_t owner);
/*
 * The event with sequence number seq as one JSON line, or NULL if not kept,
 * not yet, or not c's to see (another user's domain).
 */
const char *api_event_line(const struct api *a, unsigned long long seq, const struct caller *c);
/* Whether c may see and act on d: its owner and root may. */
bool api_may_act(const struct caller *c, const struct domain *d);
json_t *api_domain_json(struct api *a, const struct domain *d, bool with_config);

/* api_disk.c: GET and PUT /v1/domains/D/disk-qos, the disk scheduler's settings of a domain. */
/* GET, PUT /v1/domains/NAME/sched and /vcpus (src/ctl/api_sched.c). */
void api_sched(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r);
void api_vcpus(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r);
/* cpus ("all", "0-3,5") is a CPU list naming only CPUs the host has. 0 or -EINVAL with why. */
int api_check_host_cpus(const struct api *a, const char *cpus, char *err, size_t errlen);
/*
 * cpu_dedicated: spec takes no host CPU another dedicated domain (listed or
 * starting, but self) holds. 0, or -EBUSY with the domain in the way in err.
 */
int api_check_dedicated_cpus(const struct api *a, const struct domain_spec *spec,
			     const struct domain *self, char *err, size_t errlen);
void api_disk_qos(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r);

/* api_shm.c: /v1/shm and /v1/shm/NAME (rest: what follows "shm" in the path). */
void api_shm(struct api *a, const struct api_request *req, const char *rest, struct api_response *r);
/*
 * The regions spec's shm entries name, for a domain of c: each made if
 * missing, checked if there; each entry's path set to its region's
 * socket. 0, or -1 after a reply (409 shm_mismatch, 403 forbidden, ...).
 */
int api_shm_domain(struct api *a, struct domain_spec *spec, const struct caller *c, struct api_response *r);

/* api_mem.c: memory targets, the balloon policy and the account that follows them. */
#define API_RECLAIM_TIMEOUT_MS 30000
#define API_BALLOON_TIMEOUT_S 60 /* a target not reached by then is reported as timed out */
/* A domain's memory starts at its configured memory; its account follows. */
void api_mem_start(struct api *a, struct domain *d);
/* The domain's process sent {"event":"balloon","balloon":{...}}. */
void api_mem_balloon_event(struct api *a, struct domain *d, const json_t *balloon);
/* PUT /v1/domains/D/memory {"target_mib": N} */
void api_mem_set(struct api *a, struct domain *d, const struct api_request *req,
		 struct api_response *r);
/*
 * Makes need_mib free for a new domain, by the balloon policy if it must:
 * 0, or -ENOMEM with why in err (what is free, what each domain could give,
 * who did not give it in time).
 */
int api_mem_make_room(struct api *a, uint64_t need_mib, char *err, size_t errlen);
/* Every domain's account from what it holds now (ops->memory_held, else its balloon). */
void api_mem_refresh(struct api *a);
/* Memory came free: domains the policy shrank get it back, up to their configured memory. */
void api_mem_give_back(struct api *a);
/* The balloon part of a domain's JSON. */
void api_mem_json(const struct api *a, const struct domain *d, json_t *o);

/*
 * Tells ops->memory_changed what is free now: always, or only when it has
 * moved by API_MEMORY_STEP_MIB since it was last told.
 */
#define API_MEMORY_STEP_MIB 16
void api_memory_changed(struct api *a, bool always);
/* Shared by api.c and api_mem.c. */
void api_reply_json(struct api_response *r, unsigned status, json_t *body);
void api_reply_error(struct api_response *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_free(struct api *a);

#endif
