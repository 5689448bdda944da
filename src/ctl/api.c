#include "ctl/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "domain/spec_json.h"
#include "domain/xlcfg.h"

void api_init(struct api *a, const struct domain_ops *ops, void *ctx, unsigned host_cpus,
	      uint64_t host_total_mib, uint64_t capacity_mib)
{
	memset(a, 0, sizeof(*a));
	a->ops = ops;
	a->ctx = ctx;
	a->host_cpus = host_cpus;
	a->host_total_mib = host_total_mib;
	a->mem.capacity_mib = capacity_mib;
	a->next_domid = 1;
	a->reclaim = true;
	a->reclaim_timeout_ms = API_RECLAIM_TIMEOUT_MS;
}

void api_free(struct api *a)
{
	while (a->domains) {
		struct domain *d = a->domains;
		a->domains = d->next;
		free(d);
	}
	for (unsigned i = 0; i < API_EVENT_RING; i++)
		free(a->events[i]);
	memset(a->events, 0, sizeof(a->events));
}

void api_reply_json(struct api_response *r, unsigned status, json_t *body)
{
	r->status = status;
	r->content_type = "application/json";
	r->body = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(body);
	if (!r->body) {
		r->status = 500;
		r->body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
	}
}

void api_reply_error(struct api_response *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* json_string refuses invalid UTF-8, which a message quoting input may hold. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			*p = '?';
	api_reply_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void api_response_free(struct api_response *resp)
{
	free(resp->body);
	resp->body = NULL;
}

struct domain *api_find(struct api *a, const char *name_or_id)
{
	char *end;
	unsigned long id = strtoul(name_or_id, &end, 10);
	/* A domain id is plain digits: no sign, no leading zero. */
	bool numeric = *name_or_id >= '0' && *name_or_id <= '9' && !*end &&
		       (name_or_id[0] != '0' || !name_or_id[1]);

	for (struct domain *d = a->domains; d; d = d->next)
		if (!strcmp(d->spec.name, name_or_id) || (numeric && d->domid == id))
			return d;
	return NULL;
}

void api_event(struct api *a, const char *type, const struct domain *d, const char *detail)
{
	api_event_owned(a, type, d, detail, d ? (int64_t)d->owner.uid : -1);
}

void api_event_owned(struct api *a, const char *type, const struct domain *d, const char *detail, int64_t owner)
{
	struct timeval tv;
	json_t *ev;
	unsigned slot = (unsigned)(a->event_seq % API_EVENT_RING);

	gettimeofday(&tv, NULL);
	ev = json_pack("{s:I,s:f,s:s}", "seq", (json_int_t)a->event_seq, "time",
		       (double)tv.tv_sec + tv.tv_usec / 1e6, "event", type);
	if (!ev)
		return;
	if (d) {
		json_object_set_new(ev, "domain", json_string(d->spec.name));
		json_object_set_new(ev, "domid", json_integer(d->domid));
	}
	if (detail && *detail)
		json_object_set_new(ev, "detail", json_string(detail));
	free(a->events[slot]);
	a->events[slot] = json_dumps(ev, JSON_COMPACT);
	a->event_owner[slot] = owner;
	json_decref(ev);
	a->event_seq++;
	if (a->ops->event)
		a->ops->event(a->ctx);
}

bool api_may_act(const struct caller *c, const struct domain *d)
{
	return c && (caller_is_root(c) || c->uid == d->owner.uid);
}

const char *api_event_line(const struct api *a, unsigned long long seq, const struct caller *c)
{
	int64_t owner;

	if (seq >= a->event_seq || a->event_seq - seq > API_EVENT_RING || !c)
		return NULL;
	owner = a->event_owner[seq % API_EVENT_RING];
	if (owner >= 0 && !caller_is_root(c) && (uid_t)owner != c->uid)
		return NULL;
	return a->events[seq % API_EVENT_RING];
}

json_t *api_domain_json(struct api *a, const struct domain *d, bool with_config)
{
	json_t *o = json_pack("{s:i,s:s,s:s,s:i,s:I,s:I,s:i,s:I,s:i}", "domid", d->domid, "name",
			      d->spec.name, "state", d->state, "pid", (int)d->pid, "memory",
			      (json_int_t)d->spec.vm.memory_mib, "maxmem",
			      (json_int_t)d->spec.vm.maxmem_mib, "vcpus", d->spec.vm.vcpus, "created",
			      (json_int_t)d->created, "restarts", d->restarts);

	if (!o)
		return NULL;
	if (d->spec.uuid[0])
		json_object_set_new(o, "uuid", json_string(d->spec.uuid));
	json_object_set_new(o, "owner", json_integer(d->owner.uid));
	json_object_set_new(o, "cpu_weight", json_integer(d->spec.cpu_weight));
	json_object_set_new(o, "cap", json_integer(d->spec.cap));
	api_mem_json(a, d, o);
	if (a->ops->usage)
		a->ops->usage(a->ctx, d, o);
	if (with_config)
		json_object_set_new(o, "config", domain_spec_to_json(&d->spec));
	return o;
}

void api_memory_changed(struct api *a, bool always)
{
	uint64_t free_mib = mem_account_free(&a->mem);
	uint64_t moved = free_mib > a->free_told_mib ? free_mib - a->free_told_mib
						     : a->free_told_mib - free_mib;

	/* Balloons move a MiB at a time: the cache hears of it in steps, not of each. */
	if (!a->ops->memory_changed || moved == 0 || (!always && moved < API_MEMORY_STEP_MIB))
		return;
	a->free_told_mib = free_mib;
	a->ops->memory_changed(a->ctx, free_mib);
}

static void unlink_domain(struct api *a, struct domain *d)
{
	for (struct domain **p = &a->domains; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			a->ndomains--;
			break;
		}
	mem_account_release(&a->mem, d->mem_mib);
	api_memory_changed(a, true);
}

void api_domain_gone(struct api *a, struct domain *d)
{
	const char *type = "stopped";

	if (!strcmp(d->stop_reason, "panic") || !strcmp(d->stop_reason, "triple-fault") ||
	    !strcmp(d->stop_reason, "error") || !d->stop_reason[0])
		type = "crashed";
	if (!strcmp(d->stop_reason, "destroyed"))
		type = "destroyed";
	if (d->gone)
		return;
	d->gone = true;
	api_event(a, type, d,
		  d->stop_detail[0] ? d->stop_detail
				    : (d->stop_reason[0] ? d->stop_reason : "domus-vmm ended unexpectedly"));
	unlink_domain(a, d);
	if (a->ops->busy && a->ops->busy(a->ctx)) {
		d->next = a->gone;
		a->gone = d;
	} else {
		free(d);
	}
	api_mem_give_back(a);
}

void api_free_gone(struct api *a)
{
	while (a->gone) {
		struct domain *d = a->gone;
		a->gone = d->next;
		free(d);
	}
}

static void add_domain(struct api *a, struct domain *d)
{
	struct domain **p = &a->domains;

	while (*p && (*p)->domid < d->domid)
		p = &(*p)->next;
	d->next = *p;
	*p = d;
	a->ndomains++;
	if (d->domid >= a->next_domid)
		a->next_domid = d->domid + 1;
}

int api_adopt(struct api *a, struct domain *d, char *err, size_t errlen)
{
	if (api_find(a, d->spec.name)) {
		snprintf(err, errlen, "a domain named '%s' is already known", d->spec.name);
		return -EEXIST;
	}
	/* It already runs: account its memory even past capacity, rather than lose track of it. */
	api_mem_start(a, d);
	add_domain(a, d);
	return 0;
}

static bool media_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct && !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static int check_paths(const struct domain_spec *s, char *err, size_t errlen)
{
	/* domusd's working directory is not the user's: relative paths would mislead. */
	if (s->kernel[0] != '/') {
		snprintf(err, errlen, "kernel '%.200s' must be an absolute path", s->kernel);
		return -EINVAL;
	}
	if (s->ramdisk[0] && s->ramdisk[0] != '/') {
		snprintf(err, errlen, "ramdisk '%.200s' must be an absolute path", s->ramdisk);
		return -EINVAL;
	}
	for (unsigned i = 0; i < s->vm.ndisks; i++)
		if (s->vm.disks[i].path[0] != '/') {
			snprintf(err, errlen, "disk '%.200s' must be an absolute path", s->vm.disks[i].path);
			return -EINVAL;
		}
	for (unsigned i = 0; i < s->vm.npmems; i++)
		if (s->vm.pmems[i].path[0] != '/') {
			snprintf(err, errlen, "pmem '%.200s' must be an absolute path", s->vm.pmems[i].path);
			return -EINVAL;
		}
	return 0;
}

static int parse_config(const struct api_request *req, struct domain_spec *spec,
			struct api_response *r)
{
	const char *what = req->source && *req->source ? req->source : "request body";
	char err[1024];
	int ret;

	if (req->too_large) {
		api_reply_error(r, 413, "request_too_large", "the request body is over %d bytes",
			    API_MAX_BODY);
		return -1;
	}
	if (!req->content_type || media_is(req->content_type, "application/json")) {
		json_error_t jerr;
		json_t *j = json_loadb(req->body ? req->body : "", req->body_len,
				       JSON_REJECT_DUPLICATES, &jerr);
		if (!j) {
			api_reply_error(r, 400, "invalid_json", "%s:%d:%d: %s", what, jerr.line,
				    jerr.column, jerr.text);
			return -1;
		}
		ret = domain_spec_from_json(j, what, spec, err, sizeof(err));
		json_decref(j);
	} else if (media_is(req->content_type, "text/plain") ||
		   media_is(req->content_type, "application/x-xl-config")) {
		struct xl_config xl;

		ret = xl_parse(req->body ? req->body : "", req->body_len, what, &xl, err, sizeof(err));
		if (!ret) {
			ret = domain_spec_from_xl(&xl, what, spec, err, sizeof(err));
			xl_free(&xl);
		}
	} else {
		api_reply_error(r, 415, "unsupported_media_type",
			    "send the configuration as application/json or as xl.cfg text "
			    "(text/plain), not %.100s", req->content_type);
		return -1;
	}
	if (ret == -ENOMEM) {
		api_reply_error(r, 500, "internal", "out of memory");
		return -1;
	}
	if (!ret)
		ret = check_paths(spec, err, sizeof(err));
	if (ret < 0) {
		api_reply_error(r, 400, "invalid_config", "%s", err);
		return -1;
	}
	return 0;
}

static bool starting(const struct api *a, const char *name)
{
	for (const struct domain *d = a->starting; d; d = d->next)
		if (!strcmp(d->spec.name, name))
			return true;
	return false;
}

/*
 * The domain, listed or being created, whose vsock device has cid (hybrid
 * or vhost alike: a guest's CID names it to its own programs), or NULL.
 */
static const struct domain *vsock_cid_holder(const struct api *a, uint32_t cid)
{
	for (const struct domain *d = a->domains; d; d = d->next)
		if (d->spec.vm.vsock.cid == cid)
			return d;
	for (const struct domain *d = a->starting; d; d = d->next)
		if (d->spec.vm.vsock.cid == cid)
			return d;
	return NULL;
}

static unsigned count_starting(const struct api *a)
{
	unsigned n = 0;

	for (const struct domain *d = a->starting; d; d = d->next)
		n++;
	return n;
}

/*
 * cpu_dedicated: no host CPU is two domains' own. Every dedicated domain
 * listed (a preserved one may run again) or being created, but self, holds
 * its CPUs. 0, or -EBUSY with the domain in the way in err.
 */
int api_check_dedicated_cpus(const struct api *a, const struct domain_spec *spec,
			     const struct domain *self, char *err, size_t errlen)
{
	const struct domain *lists[] = {a->domains, a->starting};

	for (unsigned l = 0; l < 2; l++)
		for (const struct domain *d = lists[l]; d; d = d->next) {
			int cpu = d == self ? -1 : domain_spec_dedicated_overlap(spec, &d->spec);

			if (cpu >= 0) {
				snprintf(err, errlen,
					 "cpu_dedicated = 1: CPU %d is dedicated to domain '%s' already", cpu,
					 d->spec.name);
				return -EBUSY;
			}
		}
	return 0;
}

static void create_domain(struct api *a, const struct api_request *req, struct api_response *r)
{
	struct domain *d = calloc(1, sizeof(*d));
	char err[1024];
	json_t *body, *warnings;
	int ret;

	if (!d) {
		api_reply_error(r, 500, "internal", "out of memory");
		return;
	}
	if (parse_config(req, &d->spec, r) < 0)
		goto fail;
	domain_spec_fixup(&d->spec);
	for (unsigned i = 0; i <= d->spec.nvcpu_cpus; i++) {
		char why[160];
		if (api_check_host_cpus(a, i < d->spec.nvcpu_cpus ? d->spec.vcpu_cpus[i] : d->spec.cpus, why,
					sizeof(why)) < 0) {
			api_reply_error(r, 400, "invalid_config", "%s", why);
			goto fail;
		}
	}
	if (api_find(a, d->spec.name) || starting(a, d->spec.name)) {
		api_reply_error(r, 409, "name_in_use", "a domain named '%s' exists already", d->spec.name);
		goto fail;
	}
	if (api_check_dedicated_cpus(a, &d->spec, NULL, err, sizeof(err)) < 0) {
		api_reply_error(r, 409, "cpus_in_use", "%s", err);
		goto fail;
	}
	if (d->spec.vm.vsock.cid && vsock_cid_holder(a, d->spec.vm.vsock.cid)) {
		api_reply_error(r, 409, "vsock_cid_in_use", "vsock CID %u is taken by domain '%s'",
				d->spec.vm.vsock.cid, vsock_cid_holder(a, d->spec.vm.vsock.cid)->spec.name);
		goto fail;
	}
	if (a->ndomains + count_starting(a) >= API_MAX_DOMAINS) {
		api_reply_error(r, 409, "too_many_domains", "domusd runs at most %d domains",
			    API_MAX_DOMAINS);
		goto fail;
	}
	if (api_mem_make_room(a, d->spec.vm.memory_mib, err, sizeof(err)) < 0) {
		api_reply_error(r, 409, "insufficient_memory", "%s", err);
		goto fail;
	}
	/* The name, or dedicated CPUs, may have been taken while room was made (a wait). */
	if (api_find(a, d->spec.name) || starting(a, d->spec.name)) {
		api_reply_error(r, 409, "name_in_use", "a domain named '%s' exists already", d->spec.name);
		goto fail;
	}
	if (api_check_dedicated_cpus(a, &d->spec, NULL, err, sizeof(err)) < 0) {
		api_reply_error(r, 409, "cpus_in_use", "%s", err);
		goto fail;
	}
	/* Its regions last: they are made now if missing, and outlive a failed start. */
	if (api_shm_domain(a, &d->spec, req->caller, r) < 0)
		goto fail;
	api_mem_start(a, d);
	api_memory_changed(a, true); /* the disk cache gives way before the domain starts */
	/* Taken now: other creates go on while this one waits for its process. */
	d->domid = a->next_domid++;
	d->state = "running";
	d->created = time(NULL);
	d->ctl_fd = -1;
	d->pidfd = -1;
	d->owner = *req->caller;
	d->next = a->starting;
	a->starting = d;
	ret = a->ops->start(a->ctx, d, req->caller, err, sizeof(err));
	for (struct domain **p = &a->starting; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	d->next = NULL;
	if (ret < 0) {
		if (a->next_domid == d->domid + 1)
			a->next_domid--; /* no other create took one meanwhile: the number is free again */
		mem_account_release(&a->mem, d->mem_mib);
		api_memory_changed(a, true);
		api_reply_error(r, 422, "start_failed", "%s", err);
		api_mem_give_back(a);
		goto fail;
	}
	add_domain(a, d);
	api_event(a, "started", d, NULL);
	body = api_domain_json(a, d, true);
	warnings = json_array();
	json_object_set_new(body, "warnings", warnings);
	api_reply_json(r, 201, body);
	return;
fail:
	free(d);
}

static bool request_ok(struct api *a, struct domain *d, const char *op, json_t **reply,
		       struct api_response *r)
{
	char err[512];

	if (a->ops->request(a->ctx, d, op, reply, err, sizeof(err)) < 0) {
		api_reply_error(r, 502, "domain_unreachable", "domain '%s': %s", d->spec.name, err);
		return false;
	}
	if (d->gone) {
		/* It answered, then ended while the reply was on its way. */
		if (reply) {
			json_decref(*reply);
			*reply = NULL;
		}
		api_reply_error(r, 502, "domain_unreachable", "domain '%s' ended meanwhile", d->spec.name);
		return false;
	}
	return true;
}

static void domain_action(struct api *a, struct domain *d, const char *action,
			  struct api_response *r)
{
	bool running = !strcmp(d->state, "running"), paused = !strcmp(d->state, "paused");

	if (!strcmp(action, "pause") || !strcmp(action, "unpause")) {
		bool pause = action[0] == 'p';
		if (pause ? !running : !paused) {
			api_reply_error(r, 409, "invalid_state", "domain '%s' is %s, not %s", d->spec.name,
				    d->state, pause ? "running" : "paused");
			return;
		}
		if (!request_ok(a, d, action, NULL, r))
			return;
		d->state = pause ? "paused" : "running";
		api_event(a, pause ? "paused" : "unpaused", d, NULL);
	} else if (!strcmp(action, "shutdown")) {
		if (!running) {
			api_reply_error(r, 409, "invalid_state",
				    "domain '%s' is %s; only a running domain can be asked to shut down",
				    d->spec.name, d->state);
			return;
		}
		if (!request_ok(a, d, "shutdown", NULL, r))
			return;
		api_event(a, "shutdown_requested", d, "ACPI power button pressed");
		api_reply_json(r, 202, api_domain_json(a, d, false));
		return;
	} else if (!strcmp(action, "reboot")) {
		if (!request_ok(a, d, "reset", NULL, r))
			return;
		api_reply_json(r, 202, api_domain_json(a, d, false));
		return;
	} else if (!strcmp(action, "destroy")) {
		if (d->destroying) {
			api_reply_error(r, 409, "invalid_state", "domain '%s' is being destroyed already",
				    d->spec.name);
			return;
		}
		d->destroying = true;
		a->ops->destroy(a->ctx, d);
		snprintf(d->stop_reason, sizeof(d->stop_reason), "destroyed");
		snprintf(d->stop_detail, sizeof(d->stop_detail), "destroyed by request");
		api_reply_json(r, 200, json_pack("{s:s,s:i}", "destroyed", d->spec.name, "domid", d->domid));
		api_domain_gone(a, d);
		return;
	} else {
		api_reply_error(r, 404, "not_found", "no action '%.40s' (shutdown, reboot, pause, unpause, "
			    "destroy)", action);
		return;
	}
	api_reply_json(r, 200, api_domain_json(a, d, false));
}

static void domain_stats(struct api *a, struct domain *d, struct api_response *r)
{
	json_t *reply = NULL, *o = api_domain_json(a, d, false), *stats;

	if (!request_ok(a, d, "stats", &reply, r)) {
		json_decref(o);
		return;
	}
	stats = json_object_get(reply, "stats");
	if (stats)
		json_object_update(o, stats);
	json_object_set_new(o, "disk_qos", a->ops->disk_qos ? a->ops->disk_qos(a->ctx, d) : json_array());
	json_object_set_new(o, "networks", json_array());
	json_decref(reply);
	api_reply_json(r, 200, o);
}

static void console_text(struct api *a, struct domain *d, struct api_response *r)
{
	json_t *reply = NULL;
	const char *text;

	if (!request_ok(a, d, "console_ring", &reply, r))
		return;
	text = json_string_value(json_object_get(reply, "console"));
	r->status = 200;
	r->content_type = "text/plain; charset=utf-8";
	r->body = strdup(text ? text : "");
	json_decref(reply);
}

static void host_info(struct api *a, struct api_response *r)
{
	unsigned vcpus = 0;
	json_t *o;

	api_mem_refresh(a);
	for (struct domain *d = a->domains; d; d = d->next)
		vcpus += d->spec.vm.vcpus;
	o = json_pack("{s:i,s:I,s:I,s:I,s:I,s:i,s:i}", "cpus", a->host_cpus, "memory_total_mib",
		      (json_int_t)a->host_total_mib, "memory_capacity_mib",
		      (json_int_t)a->mem.capacity_mib, "memory_used_mib", (json_int_t)a->mem.used_mib,
		      "memory_free_mib", (json_int_t)mem_account_free(&a->mem), "domains",
		      a->ndomains, "vcpus", vcpus);
	if (o && a->ops->host)
		a->ops->host(a->ctx, o);
	api_reply_json(r, 200, o);
}

static void method_not_allowed(struct api_response *r, const struct api_request *req,
			       const char *allowed);

/* The host's settings of the disk scheduler, as GET /v1/host has them under "blk_sched". */
static json_t *blk_sched_settings(struct api *a)
{
	json_t *host = json_object(), *set;

	if (host && a->ops->host)
		a->ops->host(a->ctx, host);
	set = json_object_get(host, "blk_sched");
	json_incref(set);
	json_decref(host);
	return set ? set : json_object();
}

/*
 * GET/PUT /v1/host/blk-sched: the disk scheduler's cost model, the share of
 * the disk reservations may take, the requests in flight (docs/blk.md).
 * They are the host's disk: anyone may look, root changes them.
 */
static void host_blk_sched(struct api *a, const struct api_request *req, struct api_response *r)
{
	const char *m = req->method;
	json_error_t jerr;
	json_t *j, *set;
	char err[300];
	int ret;

	if (!strcmp(m, "GET"))
		return api_reply_json(r, 200, blk_sched_settings(a));
	if (strcmp(m, "PUT"))
		return method_not_allowed(r, req, "GET, PUT");
	if (!caller_is_root(req->caller)) {
		api_reply_error(r, 403, "forbidden", "only root may change the disk scheduler (uid %u asked)",
				(unsigned)req->caller->uid);
		return;
	}
	j = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
	set = json_object_get(j, "set");
	if (!json_is_object(j) || !json_is_string(set) || json_object_size(j) != 1) {
		json_decref(j);
		api_reply_error(r, 400, "bad_request", "send {\"set\": \"KEY=VALUE,...\"} (keys: op-ns, "
				"byte-ps, capacity-pct, depth, delay-us)");
		return;
	}
	ret = a->ops->blk_sched_set(a->ctx, json_string_value(set), err, sizeof(err));
	json_decref(j);
	if (ret == -EINVAL)
		api_reply_error(r, 400, "bad_settings", "disk scheduler: %s", err);
	else if (ret < 0)
		api_reply_error(r, 502, "backend_unreachable", "domus-blk: %s (kept for its next start)", err);
	else
		api_reply_json(r, 200, blk_sched_settings(a));
}

/* A user sees their own domains; root sees all. */
static void list_domains(struct api *a, const struct caller *c, struct api_response *r)
{
	json_t *list = json_array();

	api_mem_refresh(a);
	for (struct domain *d = a->domains; d; d = d->next)
		if (api_may_act(c, d))
			json_array_append_new(list, api_domain_json(a, d, false));
	api_reply_json(r, 200, json_pack("{s:o}", "domains", list));
}

static void method_not_allowed(struct api_response *r, const struct api_request *req,
			       const char *allowed)
{
	api_reply_error(r, 405, "method_not_allowed", "%.10s is not allowed on %.200s (allowed: %s)",
		    req->method, req->path, allowed);
}

void api_handle(struct api *a, const struct api_request *req, struct api_response *r)
{
	const char *p = req->path, *m = req->method;
	char name[DOMAIN_NAME_MAX + 1], action[32];
	struct domain *d;
	const char *slash;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (!req->caller) {
		api_reply_error(r, 403, "forbidden", "the caller's credentials are not known");
		return;
	}
	if (!p || !m || strncmp(p, "/v1/", 4)) {
		api_reply_error(r, 404, "not_found", "no such path %.200s (the API lives under /v1/)",
			    p ? p : "");
		return;
	}
	p += 4;
	if (!strcmp(p, "host")) {
		if (strcmp(m, "GET"))
			return method_not_allowed(r, req, "GET");
		return host_info(a, r);
	}
	if (!strcmp(p, "host/blk-sched") && a->ops->blk_sched_set)
		return host_blk_sched(a, req, r);
	if (!strcmp(p, "events")) {
		if (strcmp(m, "GET"))
			return method_not_allowed(r, req, "GET");
		r->status = 200;
		r->content_type = "application/x-ndjson";
		r->stream = API_STREAM_EVENTS;
		r->since = a->event_seq;
		if (req->since) {
			char *end;
			unsigned long long v = strtoull(req->since, &end, 10);
			if (!*req->since || *end) {
				api_reply_error(r, 400, "bad_request", "since '%.40s' is not an event number",
					    req->since);
				return;
			}
			/* Older events than the ring keeps are gone; the stream starts at the oldest kept. */
			if (v < r->since)
				r->since = a->event_seq > API_EVENT_RING && v < a->event_seq - API_EVENT_RING
						   ? a->event_seq - API_EVENT_RING
						   : v;
		}
		return;
	}
	if (!strncmp(p, "shm", 3) && (p[3] == 0 || p[3] == '/'))
		return api_shm(a, req, p + 3, r);
	if (!strncmp(p, "vfr/", 4) && a->ops->vfr) {
		/* The firewall-router is the host's network: users may look, root changes it. */
		if (strcmp(m, "GET") && !caller_is_root(req->caller)) {
			api_reply_error(r, 403, "forbidden", "only root may change the firewall-router "
				    "(uid %u asked to %.10s %.200s)", (unsigned)req->caller->uid, m,
				    req->path);
			return;
		}
		return a->ops->vfr(a->ctx, a, req, p + 4, r);
	}
	if (!strcmp(p, "domains") || !strcmp(p, "domains/")) {
		if (!strcmp(m, "GET"))
			return list_domains(a, req->caller, r);
		if (!strcmp(m, "POST"))
			return create_domain(a, req, r);
		return method_not_allowed(r, req, "GET, POST");
	}
	if (strncmp(p, "domains/", 8)) {
		api_reply_error(r, 404, "not_found", "no such path %.200s", req->path);
		return;
	}
	p += 8;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n > DOMAIN_NAME_MAX) {
		api_reply_error(r, 404, "not_found", "no such domain");
		return;
	}
	memcpy(name, p, n);
	name[n] = 0;
	d = api_find(a, name);
	if (!d) {
		api_reply_error(r, 404, "not_found", "no domain named '%s'", name);
		return;
	}
	if (!api_may_act(req->caller, d)) {
		api_reply_error(r, 403, "forbidden", "domain '%s' belongs to uid %u; uid %u may not act "
			    "on it", d->spec.name, (unsigned)d->owner.uid, (unsigned)req->caller->uid);
		return;
	}
	if (!slash || !slash[1]) {
		if (!strcmp(m, "GET")) {
			api_mem_refresh(a);
			api_reply_json(r, 200, api_domain_json(a, d, true));
			return;
		}
		if (!strcmp(m, "DELETE"))
			return domain_action(a, d, "destroy", r);
		return method_not_allowed(r, req, "GET, DELETE");
	}
	if (strlen(slash + 1) >= sizeof(action) || strchr(slash + 1, '/')) {
		api_reply_error(r, 404, "not_found", "no such path %.200s", req->path);
		return;
	}
	strcpy(action, slash + 1);
	if (!strcmp(action, "memory")) {
		if (strcmp(m, "PUT"))
			return method_not_allowed(r, req, "PUT");
		return api_mem_set(a, d, req, r);
	}
	if (!strcmp(action, "disk-qos"))
		return api_disk_qos(a, d, req, r);
	if (!strcmp(action, "sched"))
		return api_sched(a, d, req, r);
	if (!strcmp(action, "vcpus"))
		return api_vcpus(a, d, req, r);
	if (!strcmp(action, "stats") || !strcmp(action, "console")) {
		if (strcmp(m, "GET"))
			return method_not_allowed(r, req, "GET");
		if (action[0] == 's')
			return domain_stats(a, d, r);
		if (req->upgrade_console) {
			r->status = 101;
			r->stream = API_STREAM_CONSOLE;
			r->domain = d;
			return;
		}
		return console_text(a, d, r);
	}
	if (strcmp(m, "POST"))
		return method_not_allowed(r, req, "POST");
	domain_action(a, d, action, r);
}
