/*
 * A domain's disk QoS in the API: GET /v1/domains/D/disk-qos shows each
 * group of its disks (the domain's disks together, and each disk given one
 * of its own) with its settings and the scheduler's counters; PUT changes
 * them while the domain runs. The change is made in the domain's spec, so
 * it is saved with the domain and told to every domus-blk started after.
 *
 *   PUT {"set": "limit-iops=500,weight=200"}              the domain's disks
 *   PUT {"vdev": "xvdb", "set": "reserve-iops=100"}        xvdb alone
 *   PUT {"vdev": "xvdb", "reset": true}                    xvdb back with the others
 *   PUT {"reset": true}                                    the domain's disks: defaults
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"

static json_t *disk_qos_body(struct api *a, struct domain *d)
{
	return json_pack("{s:s,s:i,s:o}", "domain", d->spec.name, "domid", d->domid, "groups",
			 a->ops->disk_qos ? a->ops->disk_qos(a->ctx, d) : json_array());
}

/* The names of d's disks, for a message. */
static void disk_names(const struct domain *d, char *out, size_t len)
{
	size_t n = 0;

	out[0] = 0;
	for (unsigned i = 0; i < d->spec.vm.ndisks && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", d->spec.vm.disks[i].vdev);
	if (!d->spec.vm.ndisks)
		snprintf(out, len, "none");
}

/* Applies the PUT body to spec; 0, or an HTTP status with the error replied. */
static unsigned apply_body(struct domain *d, const json_t *j, struct domain_spec *spec, struct api_response *r)
{
	const json_t *vdev = json_object_get(j, "vdev"), *set = json_object_get(j, "set");
	bool reset = json_is_true(json_object_get(j, "reset"));
	char *target = spec->disk_qos, why[300], names[256];
	struct blk_qos q;
	int i = -1;

	if (!json_is_object(j) || (vdev && !json_is_string(vdev)) || (set && !json_is_string(set)) ||
	    (!set && !reset) || (set && reset)) {
		api_reply_error(r, 400, "bad_request", "send {\"set\": \"KEY=VALUE,...\"} or {\"reset\": true}, "
				"with \"vdev\": \"NAME\" for one disk alone");
		return 400;
	}
	if (vdev) {
		disk_names(d, names, sizeof(names));
		if ((i = domain_spec_find_disk(spec, json_string_value(vdev))) < 0) {
			api_reply_error(r, 404, "not_found", "domain '%s' has no disk '%.20s' (its disks: %s)",
					d->spec.name, json_string_value(vdev), names);
			return 404;
		}
		if (spec->vm.disks[i].in_vmm || spec->vm.disks[i].vhost_user) {
			api_reply_error(r, 409, "not_scheduled", "disk %s of domain '%s' is served by %s, not by "
					"domus-blk: it has no QoS", spec->vm.disks[i].vdev, d->spec.name,
					spec->vm.disks[i].in_vmm ? "the VMM" : "a vhost-user back-end");
			return 409;
		}
		if (reset) {
			spec->disk_qos_own[i] = false;
			spec->disk_qos_disk[i][0] = 0;
			return 0;
		}
		/* A disk given a group of its own starts from the defaults, not from the domain's. */
		if (!spec->disk_qos_own[i])
			spec->disk_qos_disk[i][0] = 0;
		spec->disk_qos_own[i] = true;
		target = spec->disk_qos_disk[i];
	} else if (reset) {
		spec->disk_qos[0] = 0;
		return 0;
	}
	blk_qos_default(&q);
	if (blk_qos_parse(target, &q, why, sizeof(why)) < 0 ||
	    blk_qos_parse(json_string_value(set), &q, why, sizeof(why)) < 0) {
		api_reply_error(r, 400, "bad_qos", "disk QoS '%.200s': %s", json_string_value(set), why);
		return 400;
	}
	blk_qos_format(&q, target, BLK_QOS_TEXT_MAX);
	return 0;
}

void api_disk_qos(struct api *a, struct domain *d, const struct api_request *req, struct api_response *r)
{
	struct domain_spec *old; /* 100 KiB: not on a request's stack */
	json_error_t jerr;
	json_t *j;
	char err[512];
	int ret;

	if (!strcmp(req->method, "GET")) {
		api_reply_json(r, 200, disk_qos_body(a, d));
		return;
	}
	if (strcmp(req->method, "PUT")) {
		api_reply_error(r, 405, "method_not_allowed", "%s %s: use GET or PUT", req->method, req->path);
		return;
	}
	if (!a->ops->disk_qos_set) {
		api_reply_error(r, 501, "not_implemented", "this domusd cannot change disk QoS");
		return;
	}
	if (strcmp(d->state, "running") && strcmp(d->state, "paused")) {
		api_reply_error(r, 409, "invalid_state", "domain '%s' is %s", d->spec.name, d->state);
		return;
	}
	if (!(old = malloc(sizeof(*old)))) {
		api_reply_error(r, 503, "out_of_memory", "domusd is out of memory");
		return;
	}
	*old = d->spec;
	j = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
	if (apply_body(d, j, &d->spec, r)) {
		json_decref(j);
		d->spec = *old;
		free(old);
		return;
	}
	json_decref(j);
	ret = a->ops->disk_qos_set(a->ctx, d, old, err, sizeof(err));
	if (ret < 0) {
		/* disk_qos_set put the old QoS back in force; the spec says so too. */
		d->spec = *old;
	}
	free(old);
	if (ret < 0) {
		if (ret == -ENOSPC)
			api_reply_error(r, 409, "insufficient_capacity", "domain '%s': %s", d->spec.name, err);
		else
			api_reply_error(r, 502, "backend_unreachable", "domain '%s': domus-blk: %s", d->spec.name, err);
		return;
	}
	api_event(a, "disk_qos", d, NULL);
	api_reply_json(r, 200, disk_qos_body(a, d));
}
