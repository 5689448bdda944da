/*
 * /v1/vfr/...: the Virtual Firewall Router's API, on the host's domus-net.
 *
 *   GET    networks                 the networks
 *   POST   networks   {"name","subnet"[,"mode","default","dns"]}
 *   GET    rules                    the rules in match order, with ids
 *   POST   rules      {"rule"[,"position"]}   -> {"id"}
 *   DELETE rules/ID
 *   GET    stats                    domus-net's counters per port, conntrack
 *   POST   captures   {"domain","file"}       a pcap of the domain's port
 *   DELETE captures/DOMAIN
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/domusd.h"

static void method_not_allowed(struct api_response *r, const struct api_request *req,
			       const char *allowed)
{
	api_reply_error(r, 405, "method_not_allowed", "%.10s is not allowed on %.200s (allowed: %s)",
			req->method, req->path, allowed);
}

static json_t *body_object(const struct api_request *req, struct api_response *r)
{
	json_error_t jerr;
	json_t *j = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);

	if (!json_is_object(j)) {
		api_reply_error(r, 400, "bad_request", "the body must be a JSON object%s%.100s",
				j ? "" : ": ", j ? "" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *string_field(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static unsigned status_of(int err)
{
	switch (err) {
	case -ENOENT: return 404;
	case -EEXIST:
	case -EBUSY: return 409;
	case -ENOSPC: return 507;
	case -EINVAL: return 400;
	default: return 502; /* domus-net did not answer as it should */
	}
}

static void add_network(const struct api_request *req, struct api_response *r)
{
	json_t *j = body_object(req, r);
	const char *name, *subnet, *mode, *def, *dns;
	char spec[256], err[512];
	int ret;

	if (!j)
		return;
	name = string_field(j, "name");
	subnet = string_field(j, "subnet");
	mode = string_field(j, "mode");
	def = string_field(j, "default");
	dns = string_field(j, "dns");
	if (!name || !subnet) {
		api_reply_error(r, 400, "bad_request", "a network needs \"name\" and \"subnet\" strings");
		json_decref(j);
		return;
	}
	snprintf(spec, sizeof(spec), "%.64s=%.32s%s%.16s%s%.16s%s%.32s", name, subnet,
		 mode ? ",mode=" : "", mode ? mode : "", def ? ",default=" : "", def ? def : "",
		 dns ? ",dns=" : "", dns ? dns : "");
	json_decref(j);
	if ((ret = nethost_add_network(&D.net, spec, err, sizeof(err))) < 0)
		return api_reply_error(r, status_of(ret), "bad_network", "%s", err);
	api_reply_json(r, 201, nethost_networks_json(&D.net));
}

static void add_rule(const struct api_request *req, struct api_response *r)
{
	json_t *j = body_object(req, r), *pos;
	const char *text;
	char err[512];
	uint32_t id;
	long position = -1;
	int ret;

	if (!j)
		return;
	text = string_field(j, "rule");
	pos = json_object_get(j, "position");
	if (!text || (pos && (!json_is_integer(pos) || json_integer_value(pos) < 0))) {
		api_reply_error(r, 400, "bad_request",
				"a rule is {\"rule\": TEXT[, \"position\": N from 0]}");
		json_decref(j);
		return;
	}
	if (pos)
		position = (long)json_integer_value(pos);
	ret = nethost_rule_add(&D.net, position, text, &id, err, sizeof(err));
	json_decref(j);
	if (ret < 0)
		return api_reply_error(r, status_of(ret), "bad_rule", "%s", err);
	api_reply_json(r, 201, json_pack("{s:i,s:o}", "id", (int)id, "rules", nethost_rules_json(&D.net)));
}

static void remove_rule(const char *idtext, struct api_response *r)
{
	char *end, err[512];
	unsigned long id = strtoul(idtext, &end, 10);
	int ret;

	if (!*idtext || *end || !id || id > UINT32_MAX)
		return api_reply_error(r, 404, "not_found", "no rule '%.40s'", idtext);
	if ((ret = nethost_rule_remove(&D.net, (uint32_t)id, err, sizeof(err))) < 0)
		return api_reply_error(r, status_of(ret), "bad_rule", "%s", err);
	api_reply_json(r, 200, json_pack("{s:o}", "rules", nethost_rules_json(&D.net)));
}

static void capture(struct api *a, const struct api_request *req, struct api_response *r)
{
	json_t *j = body_object(req, r);
	const char *name, *file;
	struct domain *d;
	char err[512];
	int ret;

	if (!j)
		return;
	name = string_field(j, "domain");
	file = string_field(j, "file");
	if (!name || !file || file[0] != '/') {
		api_reply_error(r, 400, "bad_request",
				"a capture is {\"domain\": NAME, \"file\": ABSOLUTE PATH}");
	} else if (!(d = api_find(a, name))) {
		api_reply_error(r, 404, "not_found", "no domain named '%.64s'", name);
	} else if ((ret = nethost_capture(&D.net, d->domid, file, err, sizeof(err))) < 0) {
		api_reply_error(r, status_of(ret), "capture_failed", "domain '%s': %s", d->spec.name, err);
	} else {
		api_reply_json(r, 201, json_pack("{s:s,s:s}", "domain", d->spec.name, "file", file));
	}
	json_decref(j);
}

static void uncapture(struct api *a, const char *name, struct api_response *r)
{
	struct domain *d = api_find(a, name);
	char err[512];
	int ret;

	if (!d)
		return api_reply_error(r, 404, "not_found", "no domain named '%.64s'", name);
	if ((ret = nethost_uncapture(&D.net, d->domid, err, sizeof(err))) < 0)
		return api_reply_error(r, status_of(ret), "capture_failed", "domain '%s': %s",
				       d->spec.name, err);
	api_reply_json(r, 200, json_pack("{s:s}", "domain", d->spec.name));
}

void api_vfr(void *ctx, struct api *a, const struct api_request *req, const char *path,
	     struct api_response *r)
{
	const char *m = req->method;
	char err[512];

	(void)ctx;
	if (!strcmp(path, "networks")) {
		if (!strcmp(m, "GET"))
			return api_reply_json(r, 200, nethost_networks_json(&D.net));
		if (!strcmp(m, "POST"))
			return add_network(req, r);
		return method_not_allowed(r, req, "GET, POST");
	}
	if (!strcmp(path, "rules")) {
		if (!strcmp(m, "GET"))
			return api_reply_json(r, 200, nethost_rules_json(&D.net));
		if (!strcmp(m, "POST"))
			return add_rule(req, r);
		return method_not_allowed(r, req, "GET, POST");
	}
	if (!strncmp(path, "rules/", 6)) {
		if (strcmp(m, "DELETE"))
			return method_not_allowed(r, req, "DELETE");
		return remove_rule(path + 6, r);
	}
	if (!strcmp(path, "stats")) {
		json_t *o;
		if (strcmp(m, "GET"))
			return method_not_allowed(r, req, "GET");
		if (!(o = nethost_stats_json(&D.net, err, sizeof(err))))
			return api_reply_error(r, 503, "no_backend", "%s", err);
		return api_reply_json(r, 200, o);
	}
	if (!strcmp(path, "captures")) {
		if (strcmp(m, "POST"))
			return method_not_allowed(r, req, "POST");
		return capture(a, req, r);
	}
	if (!strncmp(path, "captures/", 9) && path[9]) {
		if (strcmp(m, "DELETE"))
			return method_not_allowed(r, req, "DELETE");
		return uncapture(a, path + 9, r);
	}
	api_reply_error(r, 404, "not_found", "no such path %.200s", req->path);
}
