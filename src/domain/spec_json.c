#include "domain/spec_json.h"
#include "domain/shm_spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(char *err, size_t errlen, const char *what, const char *key, const char *msg)
{
	snprintf(err, errlen, "%s: '%s' %s", what, key, msg);
	return -EINVAL;
}

/* One JSON scalar as an xl value; line numbers are the key's position in the object. */
static int scalar_to_xl(const json_t *j, struct xl_value *v, unsigned pos)
{
	v->line = pos;
	v->col = 0;
	if (json_is_string(j)) {
		/*
		 * Room beyond xl's own limit for what domain_spec_to_json adds around a
		 * disk path ("vdev=xvda, access=rw, target="); each key checks its own length.
		 */
		if (json_string_length(j) >= XL_MAX_STRING + 64)
			return -E2BIG;
		if (strlen(json_string_value(j)) != json_string_length(j))
			return -EILSEQ;
		v->type = XL_STRING;
		v->str = strdup(json_string_value(j));
		return v->str ? 0 : -ENOMEM;
	}
	if (json_is_integer(j) && json_integer_value(j) >= 0) {
		v->type = XL_NUMBER;
		v->num = (unsigned long long)json_integer_value(j);
		return 0;
	}
	return -EINVAL;
}

static void free_value(struct xl_value *v)
{
	free(v->str);
	for (size_t i = 0; i < v->nitems; i++)
		free(v->items[i].str);
	free(v->items);
}

int domain_spec_from_json(const json_t *obj, const char *what, struct domain_spec *spec, char *err,
			  size_t errlen)
{
	struct xl_config xl = {0};
	const char *key;
	json_t *val;
	unsigned pos = 0;
	int ret = 0;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "%s: a domain configuration is a JSON object", what);
		return -EINVAL;
	}
	if (json_object_size(obj) > XL_MAX_SETTINGS) {
		snprintf(err, errlen, "%s: more than %d settings", what, XL_MAX_SETTINGS);
		return -EINVAL;
	}
	xl.settings = calloc(json_object_size(obj) + 1, sizeof(*xl.settings));
	if (!xl.settings)
		return -ENOMEM;
	json_object_foreach((json_t *)obj, key, val) {
		struct xl_setting *s = &xl.settings[xl.n];

		pos++;
		s->key = strdup(key);
		s->line = pos;
		xl.n++;
		if (!s->key) {
			ret = -ENOMEM;
			break;
		}
		if (json_is_array(val)) {
			size_t i;
			json_t *item;

			if (json_array_size(val) > XL_MAX_LIST) {
				ret = bad(err, errlen, what, key, "has too many items");
				break;
			}
			s->value.type = XL_LIST;
			s->value.line = pos;
			s->value.items = calloc(json_array_size(val) + 1, sizeof(struct xl_value));
			if (!s->value.items) {
				ret = -ENOMEM;
				break;
			}
			json_array_foreach(val, i, item) {
				ret = scalar_to_xl(item, &s->value.items[i], pos);
				s->value.nitems = i + 1;
				if (ret < 0)
					break;
			}
			if (ret == -EINVAL)
				bad(err, errlen, what, key,
				    "must hold only strings and non-negative integers");
			else if (ret == -E2BIG || ret == -EILSEQ)
				ret = bad(err, errlen, what, key, ret == -E2BIG ? "holds a string too long"
										: "holds a string with a NUL byte");
		} else {
			ret = scalar_to_xl(val, &s->value, pos);
			if (ret == -EINVAL)
				bad(err, errlen, what, key,
				    "must be a string, a non-negative integer or a list");
			else if (ret == -E2BIG || ret == -EILSEQ)
				ret = bad(err, errlen, what, key, ret == -E2BIG ? "is too long"
										: "holds a NUL byte");
		}
		if (ret < 0)
			break;
	}
	if (!ret)
		ret = domain_spec_from_xl(&xl, what, spec, err, errlen);
	for (size_t i = 0; i < xl.n; i++) {
		free(xl.settings[i].key);
		free_value(&xl.settings[i].value);
	}
	free(xl.settings);
	return ret;
}

static const char *disk_letters = "abcdefghijklmnopqrstuvwxyz";

json_t *domain_spec_to_json(const struct domain_spec *spec)
{
	const struct vm_config *vm = &spec->vm;
	json_t *o = json_object(), *disks = json_array(), *vifs = json_array(), *pmems = json_array();
	char buf[DISK_PATH_MAX + 128];

	if (!o || !disks || !vifs || !pmems) {
		json_decref(o);
		json_decref(disks);
		json_decref(vifs);
		json_decref(pmems);
		return NULL;
	}
	json_object_set_new(o, "name", json_string(spec->name));
	if (spec->uuid[0])
		json_object_set_new(o, "uuid", json_string(spec->uuid));
	json_object_set_new(o, "kernel", json_string(spec->kernel));
	if (spec->ramdisk[0])
		json_object_set_new(o, "ramdisk", json_string(spec->ramdisk));
	json_object_set_new(o, "cmdline", json_string(vm->cmdline));
	json_object_set_new(o, "memory", json_integer((json_int_t)vm->memory_mib));
	json_object_set_new(o, "maxmem", json_integer((json_int_t)vm->maxmem_mib));
	if (vm->minmem_mib)
		json_object_set_new(o, "minmem", json_integer((json_int_t)vm->minmem_mib));
	json_object_set_new(o, "balloon", json_integer(vm->balloon));
	json_object_set_new(o, "deflate_on_oom", json_integer(vm->balloon_deflate_on_oom));
	json_object_set_new(o, "vcpus", json_integer(vm->vcpus));
	json_object_set_new(o, "maxvcpus", json_integer(spec->maxvcpus));
	json_object_set_new(o, "on_poweroff", json_string(domain_action_name(spec->on_poweroff)));
	json_object_set_new(o, "on_reboot", json_string(domain_action_name(spec->on_reboot)));
	json_object_set_new(o, "on_crash", json_string(domain_action_name(spec->on_crash)));
	for (unsigned i = 0; i < vm->ndisks; i++) {
		/* target= last: the path may hold commas. */
		char letter[8];
		snprintf(letter, sizeof(letter), "xvd%c", disk_letters[i % 26]);
		char queues[24] = "";
		if (vm->disks[i].queues)
			snprintf(queues, sizeof(queues), "queues=%u, ", vm->disks[i].queues);
		snprintf(buf, sizeof(buf), "vdev=%s, access=%s, format=%s, %s%s%s%s%starget=%s",
			 vm->disks[i].vdev[0] ? vm->disks[i].vdev : letter, vm->disks[i].readonly ? "ro" : "rw",
			 vm->disks[i].qcow2 ? "qcow2" : "raw",
			 vm->disks[i].in_vmm ? "backendtype=vmm, " : vm->disks[i].vhost_user ? "backendtype=vhost-user, " : "",
			 vm->disks[i].direct || vm->disks[i].writethrough ? "cache=" : "",
			 vm->disks[i].direct || vm->disks[i].writethrough ? disk_cache_name(&vm->disks[i]) : "",
			 vm->disks[i].direct || vm->disks[i].writethrough ? ", " : "", queues,
			 vm->disks[i].path);
		json_array_append_new(disks, json_string(buf));
	}
	json_object_set_new(o, "disk", disks);
	for (unsigned i = 0; i < vm->npmems; i++) {
		snprintf(buf, sizeof(buf), "%s,%s", vm->pmems[i].path, vm->pmems[i].readonly ? "ro" : "rw");
		json_array_append_new(pmems, json_string(buf));
	}
	if (vm->vsock.cid) {
		if (vm->vsock.vhost)
			snprintf(buf, sizeof(buf), "cid=%u,backend=vhost", vm->vsock.cid);
		else
			snprintf(buf, sizeof(buf), "cid=%u,socket=%s", vm->vsock.cid, vm->vsock.socket);
		json_object_set_new(o, "vsock", json_string(buf));
	}
	/* Only when there are some: a domain record without pmem reads as before. */
	if (vm->npmems)
		json_object_set_new(o, "pmem", pmems);
	else
		json_decref(pmems);
	for (unsigned i = 0; i < spec->nvifs; i++) {
		const struct vif_config *v = &spec->vifs[i];
		size_t n = 0;

		buf[0] = 0;
		if (v->mac[0])
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "mac=%s,", v->mac);
		if (v->bridge[0])
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "bridge=%s,", v->bridge);
		if (v->ip[0])
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "ip=%s,", v->ip);
		if (v->rsip[0])
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "rsip=%s,", v->rsip);
		if (v->backend == VIF_VMM)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "backendtype=vmm,vifname=%s,",
					      v->vifname);
		else if (v->backend == VIF_VHOST_USER)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "backendtype=vhost-user,socket=%s,",
					      v->socket);
		if (n)
			buf[n - 1] = 0;
		json_array_append_new(vifs, json_string(buf));
	}
	json_object_set_new(o, "vif", vifs);
	/* Only when there are some: a domain record without shm reads as before. */
	if (vm->nshms) {
		json_t *shms = json_array();
		for (unsigned i = 0; i < vm->nshms; i++) {
			shm_spec_format(&vm->shms[i], buf, sizeof(buf));
			json_array_append_new(shms, json_string(buf));
		}
		json_object_set_new(o, "shm", shms);
	}
	if (spec->nvcpu_cpus) {
		json_t *list = json_array();
		for (unsigned i = 0; i < spec->nvcpu_cpus; i++)
			json_array_append_new(list, json_string(spec->vcpu_cpus[i][0] ? spec->vcpu_cpus[i] : "all"));
		json_object_set_new(o, "cpus", list);
	} else {
		json_object_set_new(o, "cpus", json_string(spec->cpus[0] ? spec->cpus : "all"));
	}
	json_object_set_new(o, "cpu_weight", json_integer(spec->cpu_weight));
	json_object_set_new(o, "cap", json_integer(spec->cap));
	if (spec->gang >= 0)
		json_object_set_new(o, "gang", json_integer(spec->gang));
	json_object_set_new(o, "gang_skew_ms", json_integer(spec->gang_skew_ms));
	/* Only when set: a domain record without it reads as before. */
	if (spec->cpu_dedicated)
		json_object_set_new(o, "cpu_dedicated", json_integer(1));
	if (!spec->pv_mp)
		json_object_set_new(o, "pv_mp", json_integer(0));
	{
		/* Only when set: a domain record without disk QoS reads as before. */
		json_t *qos = json_array();
		if (spec->disk_qos[0])
			json_array_append_new(qos, json_string(spec->disk_qos));
		for (unsigned i = 0; i < vm->ndisks; i++)
			if (spec->disk_qos_own[i]) {
				snprintf(buf, sizeof(buf), "%s: %s", vm->disks[i].vdev, spec->disk_qos_disk[i]);
				json_array_append_new(qos, json_string(buf));
			}
		if (json_array_size(qos))
			json_object_set_new(o, "disk_qos", qos);
		else
			json_decref(qos);
	}
	return o;
}

void domain_spec_fixup(struct domain_spec *spec)
{
	spec->vm.kernel = spec->kernel;
	spec->vm.initrd = spec->ramdisk[0] ? spec->ramdisk : NULL;
	spec->vm.cmdline = spec->cmdline[0] ? spec->cmdline : VM_DEFAULT_CMDLINE;
}
