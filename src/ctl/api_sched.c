/*
 * A domain's CPU shares and vCPU affinity in the API (docs/sched.md), as
 * `xl sched-credit` and `xl vcpu-pin` change them: in the domain's spec,
 * so they are saved with the domain and hold across a domusd restart.
 *
 *   GET /v1/domains/D/sched                      weight, cap, and the cgroup's cpu.weight, cpu.max
 *   PUT /v1/domains/D/sched {"weight": 512, "cap": 50}      either or both
 *   GET /v1/domains/D/vcpus                      each vCPU: host CPU, state, time, steal, affinity
 *   PUT /v1/domains/D/vcpus {"vcpu": 1, "cpus": "0"}        "vcpu": "all" for every vCPU
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"

int api_check_host_cpus(const struct api *a, const char *cpus, char *err, size_t errlen)
{
	cpu_set_t set;
	unsigned highest;
	int n = cpulist_parse(cpus, &set, &highest);

	if (n < 0) {
		snprintf(err, errlen, "cpus '%.64s': expected \"all\" or a list like \"0-3,5\"", cpus);
		return -EINVAL;
	}
	if (n > 0 && highest >= a->host_cpus) {
		snprintf(err, errlen, "cpus '%.64s' names CPU %u; the host has CPUs 0-%u", cpus, highest,
			 a->host_cpus - 1);
		return -EINVAL;
	}
	return 0;
}

static unsigned vcpu_count(const struct domain *d)
{
	return d->spec.maxvcpus > d->spec.vm.vcpus ? d->spec.maxvcpus : d->spec.vm.vcpus;
}

static json_t *sched_body(struct api *a, struct domain *d)
{
	json_t *o = json_pack("{s:s,s:i,s:i,s:i}", "domain", d->spec.name, "domid", d->domid, "weight",
			      d->spec.cpu_weight, "cap", d->spec.cap);

	if (o && a->ops->sched)
		json_object_set_new(o, "cgroup", a->ops->sched(a->ctx, d));
	return o;
}

static bool may_change(struct api *a, struct domain *d, const struct api_request *req,
		       struct api_response *r, bool implemented)
{
	if (strcmp(req->method, "PUT")) {
		api_reply_error(r, 405, "method_not_allowed", "%s %s: use GET or PUT", req->method, req->path);
		return false;
	}
	if (!implemented) {
		api_reply_error(r, 501, "not_implemented", "this domusd cannot change CPU scheduling");
		return false;
	}
	if (strcmp(d->state, "running") && strcmp(d->state, "paused")) {
		api_reply_error(r, 409, "invalid_state", "domain '%s' is %s", d->spec.name, d->state);
		return false;
	}
	return true;
}

/* A body's integer KEY into *out if present and within [min, max]; false after a reply. */
static bool take_number(json_t *j, const char *key, long long min, long long max, const char *why,
			unsigned *out, struct api_response *r)
{
	json_t *v = json_object_get(j, key);

	if (!v)
		return true;
	if (!json_is_integer(v)) {
		api_reply_error(r, 400, "bad_settings", "%s: a whole number, please", key);
		return false;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		api_reply_error(r, 400, "bad_settings", "%s %lld is out of range (%lld to %lld%s)", key,
				(long long)json_integer_value(v), min, max, why);
		return false;
	}
	*out = (unsigned)json_integer_value(v);
	return true;
}

void api_sched(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r)
{
	unsigned weight = d->spec.cpu_weight, cap = d->spec.cap, old_weight = weight, old_cap = cap;
	char err[512], why[64];
	json_error_t jerr;
	json_t *j;
	int ret;

	if (!strcmp(req->method, "GET")) {
		api_reply_json(r, 200, sched_body(a, d));
		return;
	}
	if (!may_change(a, d, req, r, a->ops->sched_set))
		return;
	j = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
	if (!json_is_object(j)) {
		api_reply_error(r, 400, "bad_request", "the body must be {\"weight\": N, \"cap\": N}");
		json_decref(j);
		return;
	}
	snprintf(why, sizeof(why), ": 100 per vCPU, %u vCPUs", vcpu_count(d));
	if (!take_number(j, "weight", 1, 65535, "", &weight, r) ||
	    !take_number(j, "cap", 0, 100LL * vcpu_count(d), why, &cap, r)) {
		json_decref(j);
		return;
	}
	json_decref(j);
	d->spec.cpu_weight = weight;
	d->spec.cap = cap;
	ret = a->ops->sched_set(a->ctx, d, err, sizeof(err));
	if (ret < 0) {
		d->spec.cpu_weight = old_weight;
		d->spec.cap = old_cap;
		api_reply_error(r, ret == -ENOTSUP ? 409 : 502, ret == -ENOTSUP ? "not_supported" : "cgroup_failed",
				"domain '%s': %s", d->spec.name, err);
		return;
	}
	api_event(a, "sched", d, NULL);
	api_reply_json(r, 200, sched_body(a, d));
}

static json_t *vcpus_body(struct api *a, struct domain *d, struct api_response *r)
{
	char err[256] = "";
	json_t *list = a->ops->vcpus ? a->ops->vcpus(a->ctx, d, err, sizeof(err)) : json_array();

	if (!list) {
		api_reply_error(r, 502, "domain_unreachable", "domain '%s': %s", d->spec.name, err);
		return NULL;
	}
	return json_pack("{s:s,s:i,s:o}", "domain", d->spec.name, "domid", d->domid, "vcpus", list);
}

void api_vcpus(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r)
{
	struct domain_spec *old; /* 100 KiB: not on a request's stack */
	json_t *j, *jv, *body;
	const char *cpus;
	char err[512];
	int vcpu = -1, ret;

	if (!strcmp(req->method, "GET")) {
		if ((body = vcpus_body(a, d, r)))
			api_reply_json(r, 200, body);
		return;
	}
	if (!may_change(a, d, req, r, a->ops->vcpu_pin))
		return;
	j = json_loadb(req->body ? req->body : "", req->body_len, 0, NULL);
	jv = json_object_get(j, "vcpu");
	cpus = json_string_value(json_object_get(j, "cpus"));
	if (!cpus || !(json_is_integer(jv) || (json_is_string(jv) && !strcmp(json_string_value(jv), "all")))) {
		api_reply_error(r, 400, "bad_request", "the body must be {\"vcpu\": N or \"all\", \"cpus\": \"LIST\"}");
		json_decref(j);
		return;
	}
	if (json_is_integer(jv)) {
		if (json_integer_value(jv) < 0 || json_integer_value(jv) >= vcpu_count(d)) {
			api_reply_error(r, 400, "bad_settings", "vCPU %lld: domain '%s' has vCPUs 0-%u",
					(long long)json_integer_value(jv), d->spec.name, vcpu_count(d) - 1);
			json_decref(j);
			return;
		}
		vcpu = (int)json_integer_value(jv);
	}
	if (api_check_host_cpus(a, cpus, err, sizeof(err)) < 0) {
		api_reply_error(r, 400, "bad_settings", "%s", err);
		json_decref(j);
		return;
	}
	if (!(old = malloc(sizeof(*old)))) {
		api_reply_error(r, 503, "out_of_memory", "domusd is out of memory");
		json_decref(j);
		return;
	}
	*old = d->spec;
	ret = domain_spec_pin(&d->spec, vcpu, cpus, err, sizeof(err));
	if (ret == 0 && api_check_dedicated_cpus(a, &d->spec, d, err, sizeof(err)) < 0)
		ret = -EINVAL; /* a bad setting here, not a busy domusd */
	if (ret == 0)
		ret = a->ops->vcpu_pin(a->ctx, d, vcpu, cpus, err, sizeof(err));
	json_decref(j);
	if (ret < 0) {
		d->spec = *old;
		free(old);
		api_reply_error(r, ret == -EINVAL ? 400 : 502, ret == -EINVAL ? "bad_settings" : "domain_unreachable",
				"domain '%s': %s", d->spec.name, err);
		return;
	}
	free(old);
	api_event(a, "vcpu_pin", d, NULL);
	if ((body = vcpus_body(a, d, r)))
		api_reply_json(r, 200, body);
}
