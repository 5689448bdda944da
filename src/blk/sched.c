#include "blk/sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000ull
/* Weight tags are cost x WEIGHT_SCALE / weight: the scale keeps a heavy weight's steps exact enough. */
#define WEIGHT_SCALE 1024ull
/* The cost model until told: a device of 50000 4 KiB IOPS and 1 GB/s (docs/blk.md). */
#define DEFAULT_OP_NS 20000ull
#define DEFAULT_BYTE_PS 1000ull
/* Reservations may take this much of the device's time in sum; the rest stays for weights. */
#define DEFAULT_CAPACITY_NS (NS_PER_S * 9 / 10)

int blk_sched_settings_parse(const char *text, struct blk_sched_settings *out, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok;
	struct blk_sched_settings n = *out;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "scheduler settings too long");
		return -EINVAL;
	}
	strcpy(buf, text);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		unsigned long long v, max = 0, min = 1;

		if (eq) {
			*eq = 0;
			if (!strcmp(tok, "op-ns"))
				max = NS_PER_S;
			else if (!strcmp(tok, "byte-ps"))
				max = NS_PER_S, min = 0;
			else if (!strcmp(tok, "capacity-pct"))
				max = 100;
			else if (!strcmp(tok, "depth"))
				max = 4096;
			else if (!strcmp(tok, "delay-us"))
				max = 1000000, min = 0;
		}
		if (!max) {
			snprintf(err, errlen, "unknown setting '%.40s' (op-ns, byte-ps, capacity-pct, depth, delay-us)",
				 tok);
			return -EINVAL;
		}
		errno = 0;
		v = strtoull(eq + 1, &end, 10);
		if (!eq[1] || *end || errno || eq[1] == '-' || v < min || v > max) {
			snprintf(err, errlen, "%s '%.40s' must be %llu to %llu", tok, eq + 1, min, max);
			return -EINVAL;
		}
		if (!strcmp(tok, "op-ns"))
			n.op_ns = v;
		else if (!strcmp(tok, "byte-ps"))
			n.byte_ps = v;
		else if (!strcmp(tok, "capacity-pct"))
			n.capacity_pct = (unsigned)v;
		else if (!strcmp(tok, "depth"))
			n.depth = (unsigned)v;
		else
			n.delay_us = (unsigned)v;
	}
	*out = n;
	return 0;
}

void blk_sched_settings_default(struct blk_sched_settings *set)
{
	*set = (struct blk_sched_settings){.op_ns = DEFAULT_OP_NS, .byte_ps = DEFAULT_BYTE_PS,
					   .capacity_pct = (unsigned)(DEFAULT_CAPACITY_NS / 10000000),
					   .depth = BLK_SCHED_DEFAULT_DEPTH};
}

void blk_sched_settings_format(const struct blk_sched_settings *set, char *out, size_t len)
{
	snprintf(out, len, "op-ns=%llu,byte-ps=%llu,capacity-pct=%u,depth=%u,delay-us=%u",
		 (unsigned long long)set->op_ns, (unsigned long long)set->byte_ps, set->capacity_pct, set->depth,
		 set->delay_us);
}

void blk_sched_init(struct blk_sched *s)
{
	memset(s, 0, sizeof(*s));
	s->op_ns = DEFAULT_OP_NS;
	s->byte_ps = DEFAULT_BYTE_PS;
	s->capacity_ns = DEFAULT_CAPACITY_NS;
}

void blk_sched_free(struct blk_sched *s)
{
	while (s->groups) {
		struct blk_sched_group *g = s->groups;
		s->groups = g->next;
		free(g);
	}
	s->ngroups = 0;
}

struct blk_sched_group *blk_sched_group_find(struct blk_sched *s, const char *name)
{
	for (struct blk_sched_group *g = s->groups; g; g = g->next)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

struct blk_sched_group *blk_sched_group_get(struct blk_sched *s, const char *name)
{
	struct blk_sched_group *g = blk_sched_group_find(s, name);

	if (g || !(g = calloc(1, sizeof(*g))))
		return g;
	snprintf(g->name, sizeof(g->name), "%s", name);
	blk_qos_default(&g->qos);
	g->tail = &g->head;
	g->next = s->groups;
	s->groups = g;
	s->ngroups++;
	return g;
}

void blk_sched_group_ref(struct blk_sched_group *g)
{
	g->refs++;
}

static void group_free_if_unused(struct blk_sched *s, struct blk_sched_group *g)
{
	if (g->refs || g->active)
		return;
	for (struct blk_sched_group **pp = &s->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			s->ngroups--;
			free(g);
			return;
		}
}

void blk_sched_group_unref(struct blk_sched *s, struct blk_sched_group *g)
{
	if (g->refs)
		g->refs--;
	group_free_if_unused(s, g);
}

/* ns of device time per second a reservation needs, by the cost model. */
static uint64_t reservation_ns(const struct blk_sched *s, const struct blk_qos *q)
{
	return q->reserve_iops * s->op_ns + q->reserve_bps * s->byte_ps / 1000;
}

int blk_sched_admit(struct blk_sched *s, const struct blk_sched_group *g, const struct blk_qos *q,
		    char *err, size_t errlen)
{
	return blk_sched_admit_also(s, g, q, 0, err, errlen);
}

uint64_t blk_sched_reserved_ns(const struct blk_sched *s)
{
	uint64_t sum = 0;

	for (const struct blk_sched_group *o = s->groups; o; o = o->next)
		sum += reservation_ns(s, &o->qos);
	return sum;
}

int blk_sched_admit_also(struct blk_sched *s, const struct blk_sched_group *g,
			 const struct blk_qos *q, uint64_t elsewhere_ns, char *err, size_t errlen)
{
	uint64_t others = elsewhere_ns, mine = reservation_ns(s, q);

	for (const struct blk_sched_group *o = s->groups; o; o = o->next)
		if (o != g)
			others += reservation_ns(s, &o->qos);
	if (mine && others + mine > s->capacity_ns) {
		snprintf(err, errlen, "the reservation needs %.1f%% of the disk's time and other groups hold "
			 "%.1f%% of the %.1f%% reservations may take in sum (cost model: %llu ns per request "
			 "+ %llu ps per byte)", (double)mine * 100 / NS_PER_S, (double)others * 100 / NS_PER_S,
			 (double)s->capacity_ns * 100 / NS_PER_S, (unsigned long long)s->op_ns,
			 (unsigned long long)s->byte_ps);
		return -ENOSPC;
	}
	return 0;
}

void blk_sched_set_qos(struct blk_sched *s, struct blk_sched_group *g, const struct blk_qos *q, uint64_t now)
{
	/* A rate that changes restarts its tag at the clock: no credit or debt from the old one. */
	if (q->reserve_iops != g->qos.reserve_iops)
		g->res_ops_tag = now;
	if (q->reserve_bps != g->qos.reserve_bps)
		g->res_bytes_tag = now;
	if (q->limit_iops != g->qos.limit_iops || q->burst_iops != g->qos.burst_iops)
		g->lim_ops_tag = g->burst_ops_tag = now;
	if (q->limit_bps != g->qos.limit_bps || q->burst_bps != g->qos.burst_bps)
		g->lim_bytes_tag = g->burst_bytes_tag = now;
	(void)s;
	g->qos = *q;
}

uint64_t blk_sched_cost(const struct blk_sched *s, uint64_t bytes)
{
	return s->op_ns + bytes * s->byte_ps / 1000;
}

static uint64_t later(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Moves a tag on by amount at rate per second, letting it lag the clock by slack at most. */
static void advance(uint64_t *tag, uint64_t now, uint64_t slack, uint64_t amount, uint64_t rate)
{
	if (!rate)
		return;
	*tag = later(*tag, now > slack ? now - slack : 0) +
	       (uint64_t)((unsigned __int128)amount * NS_PER_S / rate);
}

/* How far behind the clock a limit tag may lag: the timer's lateness, and a burst's credit. */
static uint64_t limit_slack(uint64_t limit, uint64_t burst, uint32_t burst_ms)
{
	if (!limit || burst <= limit)
		return BLK_SCHED_SLACK_NS;
	return BLK_SCHED_SLACK_NS + (uint64_t)((unsigned __int128)(burst - limit) * burst_ms * 1000000 / limit);
}

/* When g's head may go as far as its limits say. */
static uint64_t limit_due(const struct blk_sched_group *g)
{
	uint64_t due = 0;

	if (g->qos.limit_iops)
		due = later(due, g->lim_ops_tag);
	if (g->qos.limit_bps)
		due = later(due, g->lim_bytes_tag);
	if (g->qos.burst_iops)
		due = later(due, g->burst_ops_tag);
	if (g->qos.burst_bps)
		due = later(due, g->burst_bytes_tag);
	return due;
}

/* When g's head is due by its reservation; UINT64_MAX without one. */
static uint64_t reserve_due(const struct blk_sched_group *g)
{
	if (!g->qos.reserve_iops && !g->qos.reserve_bps)
		return UINT64_MAX;
	return later(g->qos.reserve_iops ? g->res_ops_tag : 0, g->qos.reserve_bps ? g->res_bytes_tag : 0);
}

static void activate(struct blk_sched *s, struct blk_sched_group *g, uint64_t now)
{
	if (g->active)
		return;
	g->active = true;
	g->active_since = now;
	/*
	 * mClock starts an idle group's reservation afresh. Here a group is idle
	 * for an instant whenever its completions come back before it sends more,
	 * and starting afresh each time cost a reservation 3-5% (bench/blk-qos):
	 * the tags keep their place, and charge() bounds what idleness brings
	 * back to BLK_SCHED_RESERVE_CATCHUP_NS of the reservation.
	 */
	/* Start-time fair queueing: a group coming back starts at the virtual time, not before. */
	g->weight_tag = later(g->weight_tag, s->vtime);
}

static void deactivate_if_idle(struct blk_sched *s, struct blk_sched_group *g, uint64_t now)
{
	if (!g->active || g->head || g->st.inflight)
		return;
	g->active = false;
	g->st.backlog_ns += now - g->active_since;
	group_free_if_unused(s, g);
}

static uint64_t clock_now(struct blk_sched *s, uint64_t now)
{
	/* A clock that went back is taken as standing still. */
	if (now < s->last_now)
		return s->last_now;
	return s->last_now = now;
}

void blk_sched_enqueue(struct blk_sched *s, struct blk_sched_group *g, struct blk_sched_req *r, uint64_t now)
{
	now = clock_now(s, now);
	r->next = NULL;
	r->group = g;
	r->arrival_ns = now;
	activate(s, g, now);
	if (!g->head)
		g->head_since = now;
	*g->tail = r;
	g->tail = &r->next;
	g->st.waiting++;
}

static struct blk_sched_req *dequeue_head(struct blk_sched_group *g, uint64_t now)
{
	struct blk_sched_req *r = g->head;

	g->head = r->next;
	if (!g->head)
		g->tail = &g->head;
	r->next = NULL;
	g->st.waiting--;
	g->st.inflight++;
	g->st.served_ops++;
	g->st.served_bytes += r->bytes;
	g->head_since = now;
	return r;
}

/* Charges g for r, served in phase at now. */
static void charge(struct blk_sched *s, struct blk_sched_group *g, const struct blk_sched_req *r,
		   enum blk_sched_phase phase, uint64_t now)
{
	const struct blk_qos *q = &g->qos;
	uint64_t lslack_ops = limit_slack(q->limit_iops, q->burst_iops, q->burst_ms);
	uint64_t lslack_bytes = limit_slack(q->limit_bps, q->burst_bps, q->burst_ms);

	advance(&g->res_ops_tag, now, BLK_SCHED_RESERVE_CATCHUP_NS, 1, q->reserve_iops);
	advance(&g->res_bytes_tag, now, BLK_SCHED_RESERVE_CATCHUP_NS, r->bytes, q->reserve_bps);
	advance(&g->lim_ops_tag, now, lslack_ops, 1, q->limit_iops);
	advance(&g->lim_bytes_tag, now, lslack_bytes, r->bytes, q->limit_bps);
	advance(&g->burst_ops_tag, now, BLK_SCHED_SLACK_NS, 1, q->burst_iops);
	advance(&g->burst_bytes_tag, now, BLK_SCHED_SLACK_NS, r->bytes, q->burst_bps);
	if (phase == BLK_PHASE_WEIGHT) {
		s->vtime = g->weight_tag;
		g->weight_tag += blk_sched_cost(s, r->bytes) * WEIGHT_SCALE / q->weight;
		g->st.weight_ops++;
	} else {
		g->st.reserve_ops++;
	}
	if (q->interactive && now > r->arrival_ns + (uint64_t)q->deadline_ms * 1000000)
		g->st.deadline_missed++;
}

/* Counts the time g's head waited for its limit, up to until. */
static uint64_t head_throttled(const struct blk_sched_group *g, uint64_t until)
{
	uint64_t due = limit_due(g);

	if (!g->head || due <= g->head_since)
		return 0;
	return (due < until ? due : until) - g->head_since;
}

struct blk_sched_req *blk_sched_pick(struct blk_sched *s, uint64_t now, enum blk_sched_phase *phase)
{
	struct blk_sched_group *res = NULL, *wt = NULL;
	uint64_t res_key = UINT64_MAX;
	bool res_interactive = false;
	struct blk_sched_req *r;

	now = clock_now(s, now);
	for (struct blk_sched_group *g = s->groups; g; g = g->next) {
		uint64_t rdue, key;

		if (!g->head || limit_due(g) > now)
			continue;
		rdue = reserve_due(g);
		if (rdue <= now) {
			/* Cello: interactive requests first, by deadline; then batch ones by tag. */
			key = g->qos.interactive ? g->head->arrival_ns + (uint64_t)g->qos.deadline_ms * 1000000 : rdue;
			if (!res || (g->qos.interactive && !res_interactive) ||
			    (g->qos.interactive == res_interactive && key < res_key)) {
				res = g;
				res_key = key;
				res_interactive = g->qos.interactive;
			}
		}
		if (!wt || g->weight_tag < wt->weight_tag)
			wt = g;
	}
	if (!res && !wt)
		return NULL;
	*phase = res ? BLK_PHASE_RESERVE : BLK_PHASE_WEIGHT;
	if (!res)
		res = wt;
	if (head_throttled(res, now)) {
		res->st.limited++;
		res->st.throttled_ns += head_throttled(res, now);
	}
	r = dequeue_head(res, now);
	charge(s, res, r, *phase, now);
	return r;
}

void blk_sched_done(struct blk_sched *s, struct blk_sched_req *r, uint64_t now)
{
	struct blk_sched_group *g = r->group;

	now = clock_now(s, now);
	if (g->st.inflight)
		g->st.inflight--;
	deactivate_if_idle(s, g, now);
}

/* Unlinks owner's waiting requests from g, in order: the first, linked by next. */
static struct blk_sched_req *unlink_owner(struct blk_sched_group *g, void *owner, unsigned *count)
{
	struct blk_sched_req *taken = NULL, **ttail = &taken, **pp = &g->head;

	*count = 0;
	while (*pp) {
		struct blk_sched_req *r = *pp;
		if (r->owner != owner) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		*ttail = r;
		ttail = &r->next;
		(*count)++;
	}
	g->tail = &g->head;
	while (*g->tail)
		g->tail = &(*g->tail)->next;
	g->st.waiting -= *count;
	return taken;
}

void blk_sched_move(struct blk_sched *s, void *owner, struct blk_sched_group *from,
		    struct blk_sched_group *to, uint64_t now)
{
	unsigned n;
	struct blk_sched_req *r = unlink_owner(from, owner, &n), *next;

	now = clock_now(s, now);
	if (n)
		from->head_since = now;
	for (; r; r = next) {
		next = r->next;
		uint64_t arrival = r->arrival_ns;
		blk_sched_enqueue(s, to, r, now);
		r->arrival_ns = arrival; /* its deadline stays what it was */
	}
	deactivate_if_idle(s, from, now);
}

struct blk_sched_req *blk_sched_take_owner(struct blk_sched *s, void *owner, uint64_t now)
{
	struct blk_sched_req *taken = NULL, **tail = &taken;

	now = clock_now(s, now);
	for (struct blk_sched_group *g = s->groups; g; g = g->next) {
		unsigned n;
		struct blk_sched_req *r = unlink_owner(g, owner, &n);

		if (!n)
			continue;
		*tail = r;
		for (; r; r = r->next) {
			/* Started at once: in flight for the group until done, like any other. */
			g->st.inflight++;
			g->st.served_ops++;
			g->st.served_bytes += r->bytes;
			tail = &r->next;
		}
		g->head_since = now;
	}
	return taken;
}

uint64_t blk_sched_next_due(const struct blk_sched *s, uint64_t now)
{
	uint64_t next = UINT64_MAX, seen = now < s->last_now ? s->last_now : now; /* as pick sees it */

	for (const struct blk_sched_group *g = s->groups; g; g = g->next) {
		uint64_t due;
		if (!g->head)
			continue;
		due = limit_due(g);
		if (due <= seen)
			return now;
		if (due < next)
			next = due;
	}
	return next;
}

void blk_sched_stats(const struct blk_sched_group *g, uint64_t now, struct blk_sched_stats *out)
{
	*out = g->st;
	if (g->active && now > g->active_since)
		out->backlog_ns += now - g->active_since;
	out->throttled_ns += head_throttled(g, now);
}

int blk_sched_reserve_met(const struct blk_sched_group *g, const struct blk_sched_stats *st)
{
	double met = 1e9, secs = (double)st->backlog_ns / NS_PER_S;

	if (!g->qos.reserve_iops && !g->qos.reserve_bps)
		return -1;
	if (secs <= 0)
		return 100;
	if (g->qos.reserve_iops)
		met = (double)st->served_ops / ((double)g->qos.reserve_iops * secs);
	if (g->qos.reserve_bps && (double)st->served_bytes / ((double)g->qos.reserve_bps * secs) < met)
		met = (double)st->served_bytes / ((double)g->qos.reserve_bps * secs);
	return met >= 1 ? 100 : (int)(met * 100);
}
