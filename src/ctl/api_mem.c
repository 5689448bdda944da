/*
 * Domains' memory in the API: targets set by `domus mem-set`, the balloon
 * policy that makes room for a new domain, and the host account.
 *
 * The account holds, per domain, what the domain may use now: its target,
 * or more while its guest has not yet given back what a lower target asks
 * (or took memory back by itself under pressure, deflate on OOM). So the
 * account falls only as fast as memory really comes back, and a new domain
 * that needs reclaimed memory is admitted once the guests have returned it.
 */
#include "ctl/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/balloon_policy.h"

static bool has_balloon(const struct domain *d)
{
	return d->spec.vm.balloon;
}

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/*
 * What the domain holds of the host's memory now; see the top of this file.
 * What the guest really uses comes from the kernel (its cgroup) where
 * domusd has one: a guest that says its balloon is full while it keeps its
 * pages is counted by its pages. The balloon's word still counts upward:
 * a guest whose balloon has not reached a lower target may touch what it
 * has not given back yet, however little it holds this moment.
 */
static uint64_t held_mib(const struct api *a, const struct domain *d)
{
	const struct domain_balloon *b = &d->balloon;
	uint64_t start = d->spec.vm.memory_mib, real = 0;

	if (!a->ops->memory_held || a->ops->memory_held(a->ctx, d, &real) < 0)
		real = 0; /* no cgroup: the balloon's word alone */
	if (!has_balloon(d))
		return max_u64(b->target_mib, real);
	/* Until its driver speaks, the guest may use what it started with. */
	if (!b->heard)
		return max_u64(max_u64(b->target_mib, start), real);
	return max_u64(max_u64(b->actual_mib, real), b->target_mib);
}

/* The account follows what the domain holds, past capacity if it must: it is used already. */
static void account(struct api *a, struct domain *d)
{
	uint64_t now = held_mib(a, d);

	if (now > d->mem_mib)
		a->mem.used_mib += now - d->mem_mib;
	else
		mem_account_release(&a->mem, d->mem_mib - now);
	d->mem_mib = now;
	api_memory_changed(a, false);
}

void api_mem_start(struct api *a, struct domain *d)
{
	memset(&d->balloon, 0, sizeof(d->balloon));
	d->balloon.target_mib = d->spec.vm.memory_mib;
	clock_gettime(CLOCK_MONOTONIC, &d->balloon.target_set);
	d->mem_mib = 0;
	account(a, d);
}

static uint64_t mib_of(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

void api_mem_balloon_event(struct api *a, struct domain *d, const json_t *bj)
{
	struct domain_balloon *b = &d->balloon;
	const json_t *guest = json_object_get(bj, "guest");
	const char *gerr = json_string_value(json_object_get(bj, "guest_error"));
	uint64_t ram = vm_config_ram_mib(&d->spec.vm), actual = mib_of(bj, "actual_mib");

	if (!json_is_object(bj) || !has_balloon(d))
		return;
	/* The domain's process checked these; domusd checks again what it will count. */
	if (actual > ram)
		actual = ram;
	b->heard = true;
	b->actual_mib = actual;
	if (actual == b->target_mib)
		b->reached = true;
	b->bad_pfns = mib_of(bj, "bad_pfns");
	snprintf(b->guest_error, sizeof(b->guest_error), "%s", gerr ? gerr : "");
	if (json_is_object(guest) && json_object_get(guest, "available_bytes")) {
		b->have_stats = true;
		b->stats_free_mib = mib_of(guest, "free_bytes") >> 20;
		b->stats_available_mib = mib_of(guest, "available_bytes") >> 20;
		b->stats_total_mib = mib_of(guest, "total_bytes") >> 20;
		b->stats_caches_mib = mib_of(guest, "caches_bytes") >> 20;
		b->stats_age = json_real_value(json_object_get(guest, "age_seconds"));
	}
	account(a, d);
}

static const char *balloon_state(const struct domain *d)
{
	const struct domain_balloon *b = &d->balloon;

	if (!has_balloon(d))
		return "none";
	if (!b->heard)
		return b->target_mib == vm_config_ram_mib(&d->spec.vm) ? "reached" : "no driver yet";
	if (b->actual_mib == b->target_mib)
		return "reached";
	if (b->reached && b->actual_mib > b->target_mib)
		return "deflated by the guest";
	if (seconds_since(&b->target_set) > API_BALLOON_TIMEOUT_S)
		return "timed out";
	return b->actual_mib > b->target_mib ? "inflating" : "deflating";
}

void api_mem_json(const struct api *a, const struct domain *d, json_t *o)
{
	const struct domain_balloon *b = &d->balloon;
	json_t *bj;

	json_object_set_new(o, "target_mib", json_integer((json_int_t)b->target_mib));
	json_object_set_new(o, "actual_mib",
			    json_integer((json_int_t)(b->heard ? b->actual_mib : b->target_mib)));
	json_object_set_new(o, "minmem", json_integer((json_int_t)vm_config_minmem(&d->spec.vm)));
	json_object_set_new(o, "memory_accounted_mib", json_integer((json_int_t)d->mem_mib));
	if (!has_balloon(d))
		return;
	bj = json_pack("{s:s,s:f}", "state", balloon_state(d), "target_age_seconds",
		       seconds_since(&b->target_set));
	if (!bj)
		return;
	if (b->have_stats)
		json_object_set_new(bj, "guest",
				    json_pack("{s:I,s:I,s:I,s:I,s:f}", "free_mib",
					      (json_int_t)b->stats_free_mib, "available_mib",
					      (json_int_t)b->stats_available_mib, "total_mib",
					      (json_int_t)b->stats_total_mib, "caches_mib",
					      (json_int_t)b->stats_caches_mib, "age_seconds", b->stats_age));
	if (b->bad_pfns)
		json_object_set_new(bj, "bad_pfns", json_integer((json_int_t)b->bad_pfns));
	if (b->guest_error[0])
		json_object_set_new(bj, "guest_error", json_string(b->guest_error));
	json_object_set_new(o, "balloon", bj);
}

/* Sets d's target: asks its process, then the account follows. */
static int set_target(struct api *a, struct domain *d, uint64_t mib, char *err, size_t errlen)
{
	int ret;

	if (!a->ops->balloon_set)
		return -ENOTSUP;
	ret = a->ops->balloon_set(a->ctx, d, mib, err, errlen);
	if (ret < 0)
		return ret;
	d->balloon.target_mib = mib;
	d->balloon.reached = d->balloon.heard && d->balloon.actual_mib == mib;
	clock_gettime(CLOCK_MONOTONIC, &d->balloon.target_set);
	account(a, d);
	return 0;
}

static bool running(const struct domain *d)
{
	return !strcmp(d->state, "running") || !strcmp(d->state, "paused");
}

void api_mem_set(struct api *a, struct domain *d, const struct api_request *req,
		 struct api_response *r)
{
	const struct vm_config *vm = &d->spec.vm;
	uint64_t min = vm_config_minmem(vm), max = vm_config_ram_mib(vm), mib, grow;
	json_error_t jerr;
	json_t *j, *t;
	char err[512];

	if (!has_balloon(d)) {
		api_reply_error(r, 409, "no_balloon", "domain '%s' has no balloon (balloon = 0)",
				d->spec.name);
		return;
	}
	j = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
	t = json_object_get(j, "target_mib");
	if (!json_is_integer(t) || json_integer_value(t) <= 0) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request",
				"send {\"target_mib\": N}, N a positive number of MiB");
		return;
	}
	mib = (uint64_t)json_integer_value(t);
	json_decref(j);
	if (mib < min || mib > max) {
		api_reply_error(r, 400, "out_of_range",
				"target %llu MiB is outside domain '%s''s range: minmem %llu to maxmem "
				"%llu MiB",
				(unsigned long long)mib, d->spec.name, (unsigned long long)min,
				(unsigned long long)max);
		return;
	}
	if (!running(d)) {
		api_reply_error(r, 409, "invalid_state", "domain '%s' is %s", d->spec.name, d->state);
		return;
	}
	/* Growing takes from the host first: a target is a promise domusd must be able to keep. */
	grow = mib > d->mem_mib ? mib - d->mem_mib : 0;
	if (grow > mem_account_free(&a->mem)) {
		api_reply_error(r, 409, "insufficient_memory",
				"domain '%s' would need %llu MiB more; %llu MiB are free",
				d->spec.name, (unsigned long long)grow,
				(unsigned long long)mem_account_free(&a->mem));
		return;
	}
	if (set_target(a, d, mib, err, sizeof(err)) < 0) {
		api_reply_error(r, 502, "domain_unreachable", "domain '%s': %s", d->spec.name, err);
		return;
	}
	d->balloon.reclaimed = false; /* the user's word stands: give-back leaves it */
	api_event(a, "memory_target", d, NULL);
	api_reply_json(r, 200, api_domain_json(a, d, false));
}

/* The domains the policy may move, as its table. */
static size_t members(struct api *a, struct balloon_member *m, struct domain **dom, size_t max,
		      bool reclaimed_only)
{
	size_t n = 0;

	for (struct domain *d = a->domains; d && n < max; d = d->next) {
		const struct domain_balloon *b = &d->balloon;
		if (!has_balloon(d) || !b->heard || strcmp(d->state, "running") ||
		    (reclaimed_only && !b->reclaimed))
			continue;
		dom[n] = d;
		m[n] = (struct balloon_member){
			.name = d->spec.name,
			.target_mib = b->target_mib,
			.min_mib = vm_config_minmem(&d->spec.vm),
			.want_mib = d->spec.vm.memory_mib,
			.max_mib = vm_config_ram_mib(&d->spec.vm),
			.have_stats = b->have_stats,
			.available_mib = b->stats_available_mib,
		};
		n++;
	}
	return n;
}

static int no_room(struct api *a, uint64_t need_mib, char *err, size_t errlen)
{
	snprintf(err, errlen, "memory %llu MiB is more than the host can give: %llu MiB free of %llu MiB for domains",
		 (unsigned long long)need_mib, (unsigned long long)mem_account_free(&a->mem),
		 (unsigned long long)a->mem.capacity_mib);
	return -ENOMEM;
}

void api_mem_refresh(struct api *a)
{
	for (struct domain *d = a->domains; d; d = d->next)
		account(a, d);
}

static bool fits(struct api *a, void *arg)
{
	api_mem_refresh(a);
	return mem_account_free(&a->mem) >= *(uint64_t *)arg;
}

int api_mem_make_room(struct api *a, uint64_t need_mib, char *err, size_t errlen)
{
	struct balloon_member *m;
	struct domain **dom;
	uint64_t free_mib, planned;
	size_t n;
	char plan[512];
	int ret = 0;

	/* What the domains hold now, not at their last balloon event. */
	api_mem_refresh(a);
	free_mib = mem_account_free(&a->mem);

	if (need_mib <= free_mib)
		return 0;
	if (!a->reclaim || !a->ops->balloon_set || !a->ops->wait)
		return no_room(a, need_mib, err, errlen);
	m = calloc(a->ndomains + 1, sizeof(*m));
	dom = calloc(a->ndomains + 1, sizeof(*dom));
	if (!m || !dom) {
		free(m);
		free(dom);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = members(a, m, dom, a->ndomains, false);
	planned = balloon_plan_reclaim(m, n, need_mib - free_mib);
	balloon_plan_describe(m, n, plan, sizeof(plan));
	if (planned < need_mib - free_mib) {
		snprintf(err, errlen,
			 "memory %llu MiB is more than the host can give: %llu MiB free of %llu MiB "
			 "for domains, and the balloons could give back only %llu MiB more%s%s",
			 (unsigned long long)need_mib, (unsigned long long)free_mib,
			 (unsigned long long)a->mem.capacity_mib, (unsigned long long)planned,
			 n ? " (" : "", n ? plan : "");
		if (n && strlen(err) + 2 < errlen)
			strcat(err, ")");
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char why[256];
		if (m[i].new_target_mib == m[i].target_mib)
			continue;
		if (set_target(a, dom[i], m[i].new_target_mib, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "reclaiming from domain '%s' failed: %s", m[i].name, why);
			ret = -ENOMEM;
			goto undo;
		}
		dom[i]->balloon.reclaimed = true;
		api_event(a, "memory_reclaimed", dom[i], NULL);
	}
	if (!a->ops->wait(a->ctx, fits, &need_mib, (int)a->reclaim_timeout_ms)) {
		size_t off = (size_t)snprintf(err, errlen,
					      "memory %llu MiB: the domains asked to give it back did not "
					      "within %u s:",
					      (unsigned long long)need_mib, a->reclaim_timeout_ms / 1000);
		for (size_t i = 0; i < n && off < errlen; i++)
			if (m[i].new_target_mib != m[i].target_mib)
				off += (size_t)snprintf(err + off, errlen - off, " %s at %llu of %llu MiB",
							m[i].name,
							(unsigned long long)dom[i]->balloon.actual_mib,
							(unsigned long long)m[i].new_target_mib);
		ret = -ENOMEM;
		goto undo;
	}
	goto out;
undo:
	/* What was asked and not needed goes back; the account follows the guests again. */
	for (size_t i = 0; i < n; i++) {
		char why[256];
		if (dom[i]->balloon.target_mib != m[i].target_mib &&
		    set_target(a, dom[i], m[i].target_mib, why, sizeof(why)) < 0)
			dom[i]->balloon.target_mib = m[i].new_target_mib;
	}
out:
	free(m);
	free(dom);
	if (!ret && need_mib > mem_account_free(&a->mem))
		ret = no_room(a, need_mib, err, errlen);
	return ret;
}

void api_mem_give_back(struct api *a)
{
	struct balloon_member *m;
	struct domain **dom;
	size_t n;

	if (!a->reclaim || !a->ops->balloon_set || !a->ndomains)
		return;
	m = calloc(a->ndomains, sizeof(*m));
	dom = calloc(a->ndomains, sizeof(*dom));
	if (m && dom) {
		n = members(a, m, dom, a->ndomains, true);
		balloon_plan_give_back(m, n, mem_account_free(&a->mem));
		for (size_t i = 0; i < n; i++) {
			char why[256];
			if (m[i].new_target_mib > m[i].target_mib &&
			    set_target(a, dom[i], m[i].new_target_mib, why, sizeof(why)) == 0) {
				dom[i]->balloon.reclaimed = m[i].new_target_mib < m[i].want_mib;
				api_event(a, "memory_returned", dom[i], NULL);
			}
		}
	}
	free(m);
	free(dom);
}
