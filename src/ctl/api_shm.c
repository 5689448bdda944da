/*
 * Shared-memory regions in the API (docs/api.md), and the regions a
 * domain's config names (shm = [...]) at its creation.
 *
 *   GET    /v1/shm                 the caller's regions (root: all), with their peers
 *   POST   /v1/shm {"name": "chan0", "size": "4M", "vectors": 2, "doorbell": true}
 *   GET    /v1/shm/NAME
 *   DELETE /v1/shm/NAME[?force=1]  refused while peers are attached, unless forced
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/shm.h"

/* The domain whose process pid is (listed or starting), or NULL. */
static const struct domain *domain_of_pid(const struct api *a, pid_t pid)
{
	const struct domain *lists[] = {a->domains, a->starting};

	if (pid <= 0)
		return NULL;
	for (unsigned l = 0; l < 2; l++)
		for (const struct domain *d = lists[l]; d; d = d->next)
			if (d->pid == pid && !d->gone)
				return d;
	return NULL;
}

/* reg as JSON, each peer with the domain it is (matched by its process id) where it is one. */
static json_t *region_json(const struct api *a, const struct shm_region *reg)
{
	json_t *o = shm_region_json(reg), *peer;
	size_t i;

	json_array_foreach(json_object_get(o, "peers"), i, peer)
	{
		const struct domain *d =
		    domain_of_pid(a, (pid_t)json_integer_value(json_object_get(peer, "pid")));
		if (d) {
			json_object_set_new(peer, "domain", json_string(d->spec.name));
			json_object_set_new(peer, "domid", json_integer(d->domid));
		}
	}
	return o;
}

static void create_region(struct api *a, const struct api_request *req, struct api_response *r)
{
	json_t *j =
	    json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, NULL);
	json_t *jsize = json_object_get(j, "size"), *jvec = json_object_get(j, "vectors");
	json_t *jbell = json_object_get(j, "doorbell");
	const char *name = json_string_value(json_object_get(j, "name")), *key;
	struct shm_region *reg;
	unsigned vectors = SHM_VECTORS_DEFAULT;
	bool doorbell = true;
	uint64_t size = 0;
	char err[512];
	json_t *v;
	int ret;

	if (!json_is_object(j) || !name || !jsize || (jvec && !json_is_integer(jvec)) ||
	    (jbell && !json_is_boolean(jbell)) ||
	    (!json_is_integer(jsize) && !json_is_string(jsize))) {
		api_reply_error(r, 400, "bad_request",
				"the body must be {\"name\": \"NAME\", \"size\": BYTES or "
				"\"4M\", \"vectors\": N, \"doorbell\": true|false}");
		json_decref(j);
		return;
	}
	json_object_foreach(j, key, v) if (strcmp(key, "name") && strcmp(key, "size") &&
					   strcmp(key, "vectors") && strcmp(key, "doorbell"))
	{
		api_reply_error(r, 400, "bad_request",
				"unknown key '%.40s' (name, size, vectors, doorbell)", key);
		json_decref(j);
		return;
	}
	if (json_is_integer(jsize) ? json_integer_value(jsize) < 0
				   : shm_size_parse(json_string_value(jsize), &size) < 0) {
		api_reply_error(r, 400, "invalid_shm",
				"size %.40s: bytes, or a number with K, M or G",
				json_is_string(jsize) ? json_string_value(jsize) : "below 0");
		json_decref(j);
		return;
	}
	if (json_is_integer(jsize))
		size = (uint64_t)json_integer_value(jsize);
	if (jbell)
		doorbell = json_is_true(jbell);
	if (jvec) {
		long long n = json_integer_value(jvec);
		if (n < 0 || n > SHM_VECTORS_MAX) {
			api_reply_error(r, 400, "invalid_shm", "vectors %lld: 1 to %d", n,
					SHM_VECTORS_MAX);
			json_decref(j);
			return;
		}
		vectors = (unsigned)n;
	} else if (!doorbell) {
		vectors = 0;
	}
	ret = shm_create(a->shm, name, size, vectors, doorbell, req->caller->uid, req->caller->gid,
			 &reg, err, sizeof(err));
	json_decref(j);
	if (ret == -EINVAL)
		api_reply_error(r, 400, "invalid_shm", "%s", err);
	else if (ret == -EEXIST)
		api_reply_error(r, 409, "name_in_use", "%s", err);
	else if (ret == -ENOSPC)
		api_reply_error(r, 409, "too_many_regions", "%s", err);
	else if (ret < 0)
		api_reply_error(r, 500, "internal", "%s", err);
	else {
		api_event_owned(a, "shm_created", NULL, reg->name, (int64_t)reg->owner_uid);
		api_reply_json(r, 201, region_json(a, reg));
	}
}

static void list_regions(struct api *a, const struct caller *c, struct api_response *r)
{
	json_t *list = json_array();

	for (struct shm_region *reg = a->shm->regions; reg; reg = reg->next)
		if (shm_may_use(reg, c->uid))
			json_array_append_new(list, region_json(a, reg));
	api_reply_json(r, 200, json_pack("{s:o}", "regions", list));
}

void api_shm(struct api *a, const struct api_request *req, const char *rest, struct api_response *r)
{
	const char *m = req->method;
	struct shm_region *reg;
	char err[1024];

	if (!a->shm) {
		api_reply_error(r, 404, "not_found", "this domusd keeps no shared-memory regions");
		return;
	}
	if (!*rest || !strcmp(rest, "/")) {
		if (!strcmp(m, "GET"))
			return list_regions(a, req->caller, r);
		if (!strcmp(m, "POST"))
			return create_region(a, req, r);
		api_reply_error(r, 405, "method_not_allowed",
				"%.10s is not allowed on %.200s (allowed: GET, POST)", m,
				req->path);
		return;
	}
	rest++; /* the '/' */
	reg = strlen(rest) < SHM_NAME_MAX ? shm_find(a->shm, rest) : NULL;
	if (!reg) {
		api_reply_error(r, 404, "not_found", "no region named '%.80s'", rest);
		return;
	}
	if (!shm_may_use(reg, req->caller->uid)) {
		api_reply_error(r, 403, "forbidden",
				"region '%s' belongs to uid %u; uid %u may not act on it",
				reg->name, (unsigned)reg->owner_uid, (unsigned)req->caller->uid);
		return;
	}
	if (!strcmp(m, "GET"))
		return api_reply_json(r, 200, region_json(a, reg));
	if (strcmp(m, "DELETE")) {
		api_reply_error(r, 405, "method_not_allowed",
				"%.10s is not allowed on %.200s (allowed: GET, DELETE)", m,
				req->path);
		return;
	}
	{
		bool force =
		    req->force && (!strcmp(req->force, "1") || !strcmp(req->force, "true"));
		char name[SHM_NAME_MAX];
		uid_t owner = reg->owner_uid;

		snprintf(name, sizeof(name), "%s", reg->name);
		if (shm_destroy(a->shm, reg, force, err, sizeof(err)) < 0) {
			api_reply_error(r, 409, "shm_in_use", "%s", err);
			return;
		}
		api_event_owned(a, "shm_destroyed", NULL, name, (int64_t)owner);
		api_reply_json(r, 200, json_pack("{s:s}", "destroyed", name));
	}
}

int api_shm_domain(struct api *a, struct domain_spec *spec, const struct caller *c,
		   struct api_response *r)
{
	for (unsigned i = 0; i < spec->vm.nshms; i++) {
		struct shm_config *s = &spec->vm.shms[i];
		struct shm_region *reg;
		char err[512];
		int ret;

		if (!a->shm) {
			api_reply_error(r, 400, "invalid_config",
					"shm '%s': this domusd keeps no shared-memory regions",
					s->name);
			return -1;
		}
		/*
		 * domusd serves its regions itself: a path of the client's would
		 * have the domain's process (root until it confines itself)
		 * connect anywhere. Its own socket's path (a record's, a config
		 * read back) is no harm.
		 */
		snprintf(err, sizeof(err), "%s/%s.sock", a->shm->dir, s->name);
		if (s->path[0] && strcmp(s->path, err)) {
			api_reply_error(r, 400, "invalid_config",
					"shm '%s': path= is domusd's to choose (%s)", s->name, err);
			return -1;
		}
		ret = shm_attach_spec(a->shm, s, c->uid, c->gid, &reg, err, sizeof(err));
		if (ret == -EEXIST)
			api_reply_error(r, 409, "shm_mismatch", "shm '%s': %s", s->name, err);
		else if (ret == -EACCES)
			api_reply_error(r, 403, "forbidden", "shm '%s': %s", s->name, err);
		else if (ret == -ENOSPC)
			api_reply_error(r, 409, "too_many_regions", "shm '%s': %s", s->name, err);
		else if (ret == -EINVAL)
			api_reply_error(r, 400, "invalid_config", "shm '%s': %s", s->name, err);
		else if (ret < 0)
			api_reply_error(r, 500, "internal", "shm '%s': %s", s->name, err);
		if (ret < 0)
			return -1;
		/* The domain's process connects there (vmm/config.h's shm_config.path). */
		snprintf(s->path, sizeof(s->path), "%s", reg->server.path);
	}
	return 0;
}
