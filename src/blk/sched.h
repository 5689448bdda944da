/*
 * domus-blk's disk scheduler: every request of every disk waits here until
 * it is its turn to go to the device. It follows mClock (Gulati, Merchant
 * and Varman, OSDI 2010) with Cello's classes (Shenoy and Vin, SIGMETRICS
 * 1998):
 *
 * - A group (a domain's disks together, or one disk) has a reservation, a
 *   weight and a limit (blk/qos.h). Each is kept as the time at which the
 *   group's next request becomes due in its terms: a tag, moved on by each
 *   request's charge divided by the rate.
 * - The reservation phase serves first the groups whose reservation tag
 *   is due, interactive ones by earliest deadline, then batch ones by
 *   earliest tag. Otherwise the weight phase serves the group with the
 *   smallest virtual start tag (start-time fair queueing by cost), among
 *   those whose limit allows it. Service in either phase counts toward a
 *   reservation; only the weight phase moves the weight tag, so what
 *   reservations leave is shared by weight.
 * - A limit is a tag too: a group goes only when every limit tag is due,
 *   so a limit holds on an idle disk. A burst lets the limit tag lag
 *   behind the clock by as much as (burst rate - limit) x burst time, at
 *   most the burst rate. Every tag is at most a request's charge ahead of
 *   the clock, so no request waits forever, whatever its size.
 * - A request's charge in the weight phase is its device time by the cost
 *   model: op_ns + bytes x byte_ps / 1000 (docs/blk.md says how to measure
 *   both for a device). Reservations and limits count operations and
 *   bytes as the user wrote them.
 *
 * Nothing here reads a clock: every call is told the time, so the unit
 * tests run it on a simulated one.
 */
#ifndef DOMUS_BLK_SCHED_H
#define DOMUS_BLK_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "blk/qos.h"

#define BLK_SCHED_NAME_MAX 40
/*
 * How far a limit tag may lag the clock: a late timer, or a device that
 * stalls with all of a group's requests in flight (13 ms stalls were seen
 * on this machine's virtual disk), costs the group no rate up to this.
 */
#define BLK_SCHED_SLACK_NS 20000000ull
/* How far behind a backlogged group's reservation may fall and be made up. */
#define BLK_SCHED_RESERVE_CATCHUP_NS 100000000ull

enum blk_sched_phase { BLK_PHASE_RESERVE, BLK_PHASE_WEIGHT };

struct blk_sched_req {
	struct blk_sched_req *next;
	struct blk_sched_group *group;
	uint64_t bytes;
	uint64_t arrival_ns;
	void *owner; /* what queued it (a disk): requests move with their owner between groups */
};

struct blk_sched_stats {
	uint64_t served_ops, served_bytes;
	uint64_t reserve_ops, weight_ops; /* requests served in each phase */
	uint64_t limited;                 /* requests that waited for a limit */
	uint64_t throttled_ns;            /* time with a request waiting for a limit */
	uint64_t backlog_ns;              /* time with requests waiting or in flight */
	uint64_t deadline_missed;         /* interactive requests started after their deadline */
	unsigned waiting, inflight;
};

struct blk_sched_group {
	struct blk_sched_group *next;
	char name[BLK_SCHED_NAME_MAX];
	struct blk_qos qos;
	unsigned refs; /* the disks in it */
	struct blk_sched_req *head, **tail;
	bool active; /* requests waiting or in flight */
	/* When the next request is due in each term: reservation, limit, burst ceiling. */
	uint64_t res_ops_tag, res_bytes_tag, lim_ops_tag, lim_bytes_tag, burst_ops_tag, burst_bytes_tag;
	uint64_t weight_tag; /* virtual start time, in cost units scaled by weight */
	uint64_t active_since; /* when it last became active */
	uint64_t head_since;   /* when its head request became the head */
	struct blk_sched_stats st;
};

struct blk_sched {
	struct blk_sched_group *groups;
	unsigned ngroups;
	uint64_t vtime; /* the weight tag of the last request served by weight */
	uint64_t last_now;
	uint64_t op_ns, byte_ps; /* the cost model */
	uint64_t capacity_ns;    /* device time per second reservations may take in sum */
};

/* The settings of a whole scheduler ("sched" in domus-blk's protocol, domusd --blk-sched). */
struct blk_sched_settings {
	uint64_t op_ns, byte_ps; /* the cost model */
	unsigned capacity_pct;   /* the share of the disk's time reservations may take in sum */
	unsigned depth;          /* requests domus-blk keeps in flight at most */
	unsigned delay_us;       /* each request held this long before it completes: a slow disk, for tests */
};

#define BLK_SCHED_DEFAULT_DEPTH 64
#define BLK_SCHED_SETTINGS_TEXT_MAX 128

/* domus-blk's settings until told otherwise. */
void blk_sched_settings_default(struct blk_sched_settings *set);
/* All of set as "op-ns=N,byte-ps=N,capacity-pct=N,depth=N,delay-us=N". */
void blk_sched_settings_format(const struct blk_sched_settings *set, char *out, size_t len);
/*
 * "op-ns=N,byte-ps=N,capacity-pct=N,depth=N,delay-us=N" (any of them) applied to out.
 * 0, or -EINVAL with why in err (the setting and its bounds).
 */
int blk_sched_settings_parse(const char *text, struct blk_sched_settings *out, char *err, size_t errlen);

void blk_sched_init(struct blk_sched *s);
/* Frees every group (their requests must be gone). */
void blk_sched_free(struct blk_sched *s);
/* The group called name, made (with the default QoS) if there is none; NULL without memory. */
struct blk_sched_group *blk_sched_group_get(struct blk_sched *s, const char *name);
struct blk_sched_group *blk_sched_group_find(struct blk_sched *s, const char *name);
/* A disk joins g / leaves it; a group nobody is in and with nothing in flight is freed. */
void blk_sched_group_ref(struct blk_sched_group *g);
void blk_sched_group_unref(struct blk_sched *s, struct blk_sched_group *g);
/*
 * Checks that q's reservation, with every other group's but g's, fits the
 * capacity. 0, or -ENOSPC with the figures in err.
 */
int blk_sched_admit(struct blk_sched *s, const struct blk_sched_group *g, const struct blk_qos *q,
		    char *err, size_t errlen);
/*
 * The same, with elsewhere_ns of the disk's time per second reserved by
 * groups another scheduler serves (domus-blk's other worker threads: the
 * disk is one, however many schedulers share it).
 */
int blk_sched_admit_also(struct blk_sched *s, const struct blk_sched_group *g,
			 const struct blk_qos *q, uint64_t elsewhere_ns, char *err, size_t errlen);
/* What every group of s reserves, in ns of the disk's time per second. */
uint64_t blk_sched_reserved_ns(const struct blk_sched *s);
/* The group's QoS from now on (queued requests keep their place). */
void blk_sched_set_qos(struct blk_sched *s, struct blk_sched_group *g, const struct blk_qos *q, uint64_t now);
/* Moves owner's waiting requests from one group to another, in their order. */
void blk_sched_move(struct blk_sched *s, void *owner, struct blk_sched_group *from,
		    struct blk_sched_group *to, uint64_t now);
/* The device time a request is charged by the cost model, in ns. */
uint64_t blk_sched_cost(const struct blk_sched *s, uint64_t bytes);

/* A request arrives for group g. */
void blk_sched_enqueue(struct blk_sched *s, struct blk_sched_group *g, struct blk_sched_req *r, uint64_t now);
/* The next request to start, or NULL: nothing waits, or everything waits for a limit. */
struct blk_sched_req *blk_sched_pick(struct blk_sched *s, uint64_t now, enum blk_sched_phase *phase);
/* A started request has completed (it counts as in flight until then). */
void blk_sched_done(struct blk_sched *s, struct blk_sched_req *r, uint64_t now);
/* Takes owner's waiting requests out (to start at once, or drop), in order; the first, linked by next. */
struct blk_sched_req *blk_sched_take_owner(struct blk_sched *s, void *owner, uint64_t now);
/* When a request now waiting for a limit becomes due; UINT64_MAX if none waits. */
uint64_t blk_sched_next_due(const struct blk_sched *s, uint64_t now);
/* The group's counters up to now (the running intervals included). */
void blk_sched_stats(const struct blk_sched_group *g, uint64_t now, struct blk_sched_stats *out);
/* The percentage of its reservation the group got while it was backlogged; -1 without one. */
int blk_sched_reserve_met(const struct blk_sched_group *g, const struct blk_sched_stats *st);

#endif
