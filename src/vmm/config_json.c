#include "vmm/config_json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int bad(char *err, size_t errlen, const char *field, const char *why)
{
	snprintf(err, errlen, "the domain's configuration: '%s' %s", field, why);
	return -EINVAL;
}

static void mac_text(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

json_t *vm_config_to_json(const struct vm_config *cfg)
{
	json_t *o, *disks = json_array(), *pmems = json_array(), *nics = json_array(),
	       *shms = json_array();
	char mac[18];

	for (unsigned i = 0; i < cfg->nnics; i++)
		if (cfg->nics[i].vfr && !cfg->nics[i].socket[0])
			goto fail;
	o = json_pack("{s:s,s:s*,s:s,s:I,s:I,s:I,s:b,s:b,s:i,s:s,s:s,s:i}", "kernel", cfg->kernel,
		      "initrd", cfg->initrd, "cmdline", cfg->cmdline, "memory_mib",
		      (json_int_t)cfg->memory_mib, "maxmem_mib", (json_int_t)cfg->maxmem_mib,
		      "minmem_mib", (json_int_t)cfg->minmem_mib, "balloon", cfg->balloon,
		      "deflate_on_oom", cfg->balloon_deflate_on_oom, "vcpus", (int)cfg->vcpus,
		      "on_reboot", cfg->on_reboot == ON_REBOOT_EXIT ? "exit" : "restart", "console",
		      cfg->console == CONSOLE_VIRTIO ? "virtio" : "serial", "verbose", cfg->verbose);
	if (!o || !disks || !pmems || !nics || !shms)
		goto fail_all;
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		json_array_append_new(disks, json_pack("{s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:i}", "path", d->path,
						       "readonly", d->readonly, "vhost_user",
						       d->vhost_user, "in_vmm", d->in_vmm, "qcow2",
						       d->qcow2, "direct", d->direct, "writethrough",
						       d->writethrough, "queues", (int)d->queues));
	}
	for (unsigned i = 0; i < cfg->npmems; i++)
		json_array_append_new(pmems, json_pack("{s:s,s:b}", "path", cfg->pmems[i].path,
						       "readonly", cfg->pmems[i].readonly));
	for (unsigned i = 0; i < cfg->nnics; i++) {
		mac_text(cfg->nics[i].mac, mac);
		json_array_append_new(nics, json_pack("{s:s,s:s,s:s}", "mac", mac, "socket",
						      cfg->nics[i].socket, "tap", cfg->nics[i].tap));
	}
	for (unsigned i = 0; i < cfg->nshms; i++) {
		const struct shm_config *sc = &cfg->shms[i];
		json_array_append_new(shms, json_pack("{s:s,s:s,s:I,s:b,s:i}", "name", sc->name, "path",
						      sc->path, "size", (json_int_t)sc->size,
						      "doorbell", sc->doorbell, "vectors",
						      (int)sc->vectors));
	}
	if (cfg->gang_skew_us)
		json_object_set_new(o, "gang_skew_us", json_integer(cfg->gang_skew_us));
	if (cfg->vsock.cid)
		json_object_set_new(o, "vsock", json_pack("{s:I,s:s,s:b}", "cid", (json_int_t)cfg->vsock.cid,
							  "socket", cfg->vsock.socket, "vhost",
							  cfg->vsock.vhost));
	json_object_set_new(o, "disks", disks);
	json_object_set_new(o, "pmems", pmems);
	json_object_set_new(o, "nics", nics);
	/* Only with regions: a VMM without ivshmem reads JSON from before they existed. */
	if (cfg->nshms)
		json_object_set_new(o, "shms", shms);
	else
		json_decref(shms);
	return o;
fail_all:
	json_decref(o);
fail:
	json_decref(disks);
	json_decref(pmems);
	json_decref(nics);
	json_decref(shms);
	return NULL;
}

/* Copies string field key of o into dst; "" when absent and optional. */
static int string_field(const json_t *o, const char *key, bool required, char *dst, size_t size,
			char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, key);

	dst[0] = 0;
	if (!v && !required)
		return 0;
	if (!json_is_string(v))
		return bad(err, errlen, key, "must be a string");
	if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, errlen, key, "is too long or holds a NUL byte");
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int number_field(const json_t *o, const char *key, uint64_t max, uint64_t *out, char *err,
			size_t errlen)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return bad(err, errlen, key, "must be a number in range");
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int bool_field(const json_t *o, const char *key, bool *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return bad(err, errlen, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

static int list_field(const json_t *o, const char *key, size_t max, const json_t **out, char *err,
		      size_t errlen)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_array(v) || json_array_size(v) > max)
		return bad(err, errlen, key, "must be a list of its limit's length at most");
	*out = v;
	return 0;
}

static int read_disk(const json_t *o, struct disk_config *d, char *err, size_t errlen)
{
	int ret;

	if (!json_is_object(o))
		return bad(err, errlen, "disks", "must hold objects");
	if ((ret = string_field(o, "path", true, d->path, sizeof(d->path), err, errlen)) < 0 ||
	    (ret = bool_field(o, "readonly", &d->readonly, err, errlen)) < 0 ||
	    (ret = bool_field(o, "vhost_user", &d->vhost_user, err, errlen)) < 0 ||
	    (ret = bool_field(o, "in_vmm", &d->in_vmm, err, errlen)) < 0 ||
	    (ret = bool_field(o, "qcow2", &d->qcow2, err, errlen)) < 0 ||
	    (ret = bool_field(o, "direct", &d->direct, err, errlen)) < 0 ||
	    (ret = bool_field(o, "writethrough", &d->writethrough, err, errlen)) < 0)
		return ret;
	/* 0: a queue per vCPU (disk_queue_count); absent in a caller that predates it. */
	if (json_object_get(o, "queues")) {
		uint64_t q;
		if ((ret = number_field(o, "queues", VM_MAX_DISK_QUEUES, &q, err, errlen)) < 0)
			return ret;
		d->queues = (unsigned)q;
	}
	return 0;
}

static int read_nic(const json_t *o, struct nic_config *n, char *err, size_t errlen)
{
	char mac[18];
	int ret;

	if (!json_is_object(o))
		return bad(err, errlen, "nics", "must hold objects");
	if ((ret = string_field(o, "mac", true, mac, sizeof(mac), err, errlen)) < 0 ||
	    (ret = string_field(o, "socket", true, n->socket, sizeof(n->socket), err, errlen)) < 0 ||
	    (ret = string_field(o, "tap", true, n->tap, sizeof(n->tap), err, errlen)) < 0)
		return ret;
	if (mac_parse(mac, n->mac) < 0)
		return bad(err, errlen, "mac", "is not a MAC address");
	if (!n->socket[0] == !n->tap[0])
		return bad(err, errlen, "nics", "need a socket or a TAP interface, not both");
	return 0;
}

/* Largest region a domain maps: far above what fits its PCI window, a bound on hostile numbers. */
#define SHM_MAX_SIZE (1ULL << 40)

static int read_shm(const json_t *o, struct shm_config *sc, char *err, size_t errlen)
{
	uint64_t size, vectors;
	int ret;

	if (!json_is_object(o))
		return bad(err, errlen, "shms", "must hold objects");
	if ((ret = string_field(o, "name", true, sc->name, sizeof(sc->name), err, errlen)) < 0 ||
	    (ret = string_field(o, "path", true, sc->path, sizeof(sc->path), err, errlen)) < 0 ||
	    (ret = number_field(o, "size", SHM_MAX_SIZE, &size, err, errlen)) < 0 ||
	    (ret = bool_field(o, "doorbell", &sc->doorbell, err, errlen)) < 0 ||
	    (ret = number_field(o, "vectors", 64, &vectors, err, errlen)) < 0)
		return ret;
	if (!sc->path[0])
		return bad(err, errlen, "shms", "need a path");
	if (vectors == 0)
		return bad(err, errlen, "vectors", "must be 1 to 64");
	sc->size = size;
	sc->vectors = (unsigned)vectors;
	return 0;
}

int vm_config_from_json(const json_t *j, struct vm_config *cfg, struct vm_config_strings *s,
			char *err, size_t errlen)
{
	const json_t *disks, *pmems, *nics, *shms = NULL, *item;
	uint64_t vcpus, verbose, gang = 0;
	char on_reboot[16], console[16];
	size_t i;
	int ret;

	vm_config_defaults(cfg);
	if (!json_is_object(j))
		return bad(err, errlen, "(top)", "must be a JSON object");
	if ((ret = string_field(j, "kernel", true, s->kernel, sizeof(s->kernel), err, errlen)) < 0 ||
	    (ret = string_field(j, "initrd", false, s->initrd, sizeof(s->initrd), err, errlen)) < 0 ||
	    (ret = string_field(j, "cmdline", true, s->cmdline, sizeof(s->cmdline), err, errlen)) < 0 ||
	    (ret = number_field(j, "memory_mib", VM_MAX_MEMORY_MIB, &cfg->memory_mib, err, errlen)) < 0 ||
	    (ret = number_field(j, "maxmem_mib", VM_MAX_MEMORY_MIB, &cfg->maxmem_mib, err, errlen)) < 0 ||
	    (ret = number_field(j, "minmem_mib", VM_MAX_MEMORY_MIB, &cfg->minmem_mib, err, errlen)) < 0 ||
	    (ret = bool_field(j, "balloon", &cfg->balloon, err, errlen)) < 0 ||
	    (ret = bool_field(j, "deflate_on_oom", &cfg->balloon_deflate_on_oom, err, errlen)) < 0 ||
	    (ret = number_field(j, "vcpus", VM_MAX_VCPUS, &vcpus, err, errlen)) < 0 ||
	    (ret = number_field(j, "verbose", 8, &verbose, err, errlen)) < 0 ||
	    (ret = string_field(j, "on_reboot", true, on_reboot, sizeof(on_reboot), err, errlen)) < 0 ||
	    (ret = string_field(j, "console", true, console, sizeof(console), err, errlen)) < 0 ||
	    (ret = list_field(j, "disks", VM_MAX_DISKS, &disks, err, errlen)) < 0 ||
	    (ret = list_field(j, "pmems", VM_MAX_PMEM, &pmems, err, errlen)) < 0 ||
	    (ret = list_field(j, "nics", VM_MAX_NICS, &nics, err, errlen)) < 0)
		return ret;
	if (vcpus == 0)
		return bad(err, errlen, "vcpus", "must be at least 1");
	if (json_object_get(j, "gang_skew_us") &&
	    (ret = number_field(j, "gang_skew_us", VM_GANG_SKEW_MAX_US, &gang, err, errlen)) < 0)
		return ret;
	cfg->gang_skew_us = (unsigned)gang;
	if (json_object_get(j, "shms") &&
	    (ret = list_field(j, "shms", VM_MAX_SHM, &shms, err, errlen)) < 0)
		return ret;
	if ((item = json_object_get(j, "vsock"))) {
		uint64_t cid;

		if (!json_is_object(item))
			return bad(err, errlen, "vsock", "must be an object");
		if ((ret = number_field(item, "cid", VSOCK_CID_MAX, &cid, err, errlen)) < 0 ||
		    (ret = string_field(item, "socket", false, cfg->vsock.socket, sizeof(cfg->vsock.socket),
					err, errlen)) < 0 ||
		    (ret = bool_field(item, "vhost", &cfg->vsock.vhost, err, errlen)) < 0)
			return ret;
		cfg->vsock.cid = (uint32_t)cid;
		if (vm_config_check_vsock(&cfg->vsock, err, errlen) < 0)
			return -EINVAL;
	}
	cfg->vcpus = (unsigned)vcpus;
	cfg->verbose = (int)verbose;
	if (strcmp(on_reboot, "exit") && strcmp(on_reboot, "restart"))
		return bad(err, errlen, "on_reboot", "must be exit or restart");
	cfg->on_reboot = strcmp(on_reboot, "exit") ? ON_REBOOT_RESTART : ON_REBOOT_EXIT;
	if (strcmp(console, "serial") && strcmp(console, "virtio"))
		return bad(err, errlen, "console", "must be serial or virtio");
	cfg->console = strcmp(console, "virtio") ? CONSOLE_SERIAL : CONSOLE_VIRTIO;
	json_array_foreach(disks, i, item)
		if ((ret = read_disk(item, &cfg->disks[cfg->ndisks++], err, errlen)) < 0)
			return ret;
	json_array_foreach(pmems, i, item) {
		struct pmem_config *p = &cfg->pmems[cfg->npmems++];

		if (!json_is_object(item))
			return bad(err, errlen, "pmems", "must hold objects");
		if ((ret = string_field(item, "path", true, p->path, sizeof(p->path), err, errlen)) < 0 ||
		    (ret = bool_field(item, "readonly", &p->readonly, err, errlen)) < 0)
			return ret;
	}
	json_array_foreach(nics, i, item)
		if ((ret = read_nic(item, &cfg->nics[cfg->nnics++], err, errlen)) < 0)
			return ret;
	if (shms)
		json_array_foreach(shms, i, item)
			if ((ret = read_shm(item, &cfg->shms[cfg->nshms++], err, errlen)) < 0)
				return ret;
	cfg->kernel = s->kernel;
	cfg->initrd = s->initrd[0] ? s->initrd : NULL;
	cfg->cmdline = s->cmdline;
	return 0;
}
