#include "domain/domcfg.h"
#include "domain/shm_spec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int copy(char *dst, size_t size, const char *src)
{
	if (strlen(src) >= size)
		return -ENAMETOOLONG;
	strcpy(dst, src);
	return 0;
}

const char *domain_action_name(enum domain_action a)
{
	switch (a) {
	case ACTION_DESTROY: return "destroy";
	case ACTION_RESTART: return "restart";
	case ACTION_PRESERVE: return "preserve";
	}
	return "?";
}

static int is_format(const char *s)
{
	return !strcmp(s, "raw") || !strcmp(s, "qcow2") || !strcmp(s, "qcow") || !strcmp(s, "vhd") ||
	       !strcmp(s, "qed");
}

static int is_access(const char *s)
{
	return !strcmp(s, "r") || !strcmp(s, "ro") || !strcmp(s, "w") || !strcmp(s, "rw");
}

int disk_spec_parse(const char *spec, struct disk_config *d, char *err, size_t errlen)
{
	char buf[DISK_PATH_MAX + 256], *save = NULL, *tok;
	const char *format = "raw", *target = NULL, *access = "rw", *vdev = NULL;
	unsigned npos = 0;

	memset(d, 0, sizeof(*d));
	if (copy(buf, sizeof(buf), spec) < 0)
		return bad(err, errlen, "disk '%.40s...': too long", spec);
	/* target= must be last: everything after it, commas included, is the path. */
	for (char *t = strstr(buf, "target="); t; t = strstr(t + 1, "target=")) {
		char *before = t;
		while (before > buf && before[-1] == ' ')
			before--;
		if (before == buf || before[-1] == ',') {
			target = t + 7;
			if (before > buf)
				before[-1] = 0;
			else
				buf[0] = 0;
			break;
		}
	}
	/* strsep, not strtok: an empty position (",raw") is a missing target, not a skip. */
	for (save = buf; (tok = strsep(&save, ",")) != NULL;) {
		char *eq = strchr(tok, '=');
		while (*tok == ' ')
			tok++;
		if (eq) {
			*eq = 0;
			if (!strcmp(tok, "format"))
				format = eq + 1;
			else if (!strcmp(tok, "vdev"))
				vdev = eq + 1;
			else if (!strcmp(tok, "access"))
				access = eq + 1;
			else if (!strcmp(tok, "queues")) {
				if (disk_queues_parse(eq + 1, d) < 0)
					return bad(err, errlen, "disk '%s': queues '%s' must be 1 to %d",
						   spec, eq + 1, VM_MAX_DISK_QUEUES);
			} else if (!strcmp(tok, "cache")) {
				if (disk_cache_parse(eq + 1, d) < 0)
					return bad(err, errlen, "disk '%s': cache '%s' must be writeback, "
						   "writethrough, none or directsync", spec, eq + 1);
			} else if (!strcmp(tok, "backendtype") && !strcmp(eq + 1, "vhost-user"))
				d->vhost_user = true; /* target is a vhost-user back-end's socket */
			else if (!strcmp(tok, "backendtype") && !strcmp(eq + 1, "vmm"))
				d->in_vmm = true; /* served inside the VMM, not by domus-blk */
			else if (!strcmp(tok, "devtype") || !strcmp(tok, "backendtype") ||
				 !strcmp(tok, "backend") || !strcmp(tok, "script"))
				return bad(err, errlen, "disk '%s': '%s=' is not supported by domus", spec, tok);
			else
				return bad(err, errlen, "disk '%s': unknown key '%s'", spec, tok);
			continue;
		}
		if (!strcmp(tok, "cdrom") || !strcmp(tok, "discard") || !strcmp(tok, "no-discard"))
			return bad(err, errlen, "disk '%s': '%s' is not supported by domus", spec, tok);
		/* Positional: target, then format, vdev, access recognised by what they are. */
		if (npos++ == 0 && !target)
			target = tok;
		else if (is_format(tok))
			format = tok;
		else if (is_access(tok))
			access = tok;
		else if (!vdev && *tok)
			vdev = tok;
		else if (*tok)
			return bad(err, errlen, "disk '%s': unexpected '%s'", spec, tok);
	}
	if (!target || !*target)
		return bad(err, errlen, "disk '%s': no target (the image path)", spec);
	if (vdev && copy(d->vdev, sizeof(d->vdev), vdev) < 0)
		return bad(err, errlen, "disk '%s': vdev '%s' too long", spec, vdev);
	/* The old "phy:", "file:", "tap:aio:" prefixes name the backend, not the path. */
	for (const char *pfx[] = {"tap:aio:", "tap:qcow2:", "phy:", "file:", "aio:", "raw:"}, **p = pfx;
	     p < pfx + 6; p++)
		if (!strncmp(target, *p, strlen(*p))) {
			if (!strcmp(*p, "tap:qcow2:"))
				format = "qcow2";
			target += strlen(*p);
			break;
		}
	if (strcmp(format, "raw") && strcmp(format, "qcow2"))
		return bad(err, errlen, "disk '%s': format '%s' is not supported (raw or qcow2)", spec, format);
	d->qcow2 = !strcmp(format, "qcow2");
	if (d->qcow2 && d->in_vmm)
		return bad(err, errlen, "disk '%s': qcow2 is served by domus-blk, not with backendtype=vmm",
			   spec);
	if (d->vhost_user && (d->in_vmm || d->qcow2 || d->direct || d->writethrough))
		return bad(err, errlen, "disk '%s': a vhost-user back-end decides format and cache itself",
			   spec);
	if (d->vhost_user && strlen(target) >= 108)
		return bad(err, errlen, "disk '%s': socket path too long", spec);
	if ((d->direct || d->writethrough) && d->in_vmm)
		return bad(err, errlen, "disk '%s': cache modes are domus-blk's, not with backendtype=vmm",
			   spec);
	if (!is_access(access))
		return bad(err, errlen, "disk '%s': access '%s' must be r, ro, w or rw", spec, access);
	if (vdev && !(strlen(vdev) >= 3 && strlen(vdev) < 16 &&
		      (!strncmp(vdev, "xvd", 3) || !strncmp(vdev, "hd", 2) || !strncmp(vdev, "sd", 2) ||
		       !strncmp(vdev, "vd", 2))))
		return bad(err, errlen, "disk '%s': '%s' is not a virtual device name", spec, vdev);
	if (copy(d->path, sizeof(d->path), target) < 0)
		return bad(err, errlen, "disk '%.40s...': path too long", spec);
	d->readonly = access[0] == 'r' && strcmp(access, "rw");
	return 0;
}

static int valid_mac(const char *m)
{
	if (strlen(m) != 17)
		return 0;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return 0;
	return 1;
}

void vif_to_nic(const struct vif_config *v, unsigned index, struct nic_config *n)
{
	memset(n, 0, sizeof(*n));
	if (!v->mac[0] || mac_parse(v->mac, n->mac) < 0) {
		static const uint8_t base[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x50};
		memcpy(n->mac, base, 6);
		n->mac[5] = (uint8_t)(0x50 + index);
	}
	if (v->backend == VIF_VMM)
		snprintf(n->tap, sizeof(n->tap), "%s", v->vifname);
	else if (v->backend == VIF_VHOST_USER)
		snprintf(n->socket, sizeof(n->socket), "%s", v->socket);
}

int vif_spec_parse(const char *spec, struct vif_config *v, char *err, size_t errlen)
{
	char buf[512], *save = NULL, *tok;

	memset(v, 0, sizeof(*v));
	if (copy(buf, sizeof(buf), spec) < 0)
		return bad(err, errlen, "vif '%.40s...': too long", spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		while (*tok == ' ')
			tok++;
		if (!*tok)
			continue;
		if (!eq)
			return bad(err, errlen, "vif '%s': expected key=value, found '%s'", spec, tok);
		*eq = 0;
		if (!strcmp(tok, "mac")) {
			if (!valid_mac(eq + 1))
				return bad(err, errlen, "vif '%s': bad mac '%s'", spec, eq + 1);
			strcpy(v->mac, eq + 1);
		} else if (!strcmp(tok, "bridge")) {
			if (copy(v->bridge, sizeof(v->bridge), eq + 1) < 0)
				return bad(err, errlen, "vif '%s': bridge name too long", spec);
		} else if (!strcmp(tok, "ip")) {
			if (copy(v->ip, sizeof(v->ip), eq + 1) < 0)
				return bad(err, errlen, "vif '%s': ip too long", spec);
		} else if (!strcmp(tok, "backendtype")) {
			if (!strcmp(eq + 1, "vmm"))
				v->backend = VIF_VMM;
			else if (!strcmp(eq + 1, "vhost-user"))
				v->backend = VIF_VHOST_USER;
			else if (!strcmp(eq + 1, "domus-net"))
				v->backend = VIF_DOMUS_NET;
			else
				return bad(err, errlen,
					   "vif '%s': backendtype '%s' must be domus-net, vmm or vhost-user",
					   spec, eq + 1);
		} else if (!strcmp(tok, "rsip")) {
			unsigned lo, hi;
			char end;
			if (sscanf(eq + 1, "%u-%u%c", &lo, &hi, &end) != 2 || lo > hi || hi > 65535 ||
			    copy(v->rsip, sizeof(v->rsip), eq + 1) < 0)
				return bad(err, errlen, "vif '%s': rsip '%s' must be START-END, ports 0 to 65535",
					   spec, eq + 1);
		} else if (!strcmp(tok, "vifname")) {
			if (!eq[1] || copy(v->vifname, sizeof(v->vifname), eq + 1) < 0)
				return bad(err, errlen, "vif '%s': vifname is 1 to %zu bytes", spec,
					   sizeof(v->vifname) - 1);
		} else if (!strcmp(tok, "socket")) {
			if (!eq[1] || copy(v->socket, sizeof(v->socket), eq + 1) < 0)
				return bad(err, errlen, "vif '%s': socket is 1 to %zu bytes", spec,
					   sizeof(v->socket) - 1);
		} else if (!strcmp(tok, "type") || !strcmp(tok, "model")) {
			/* Xen's ioemu/vif and e1000/rtl8139: domus has one model, virtio-net. */
			if (strcmp(eq + 1, "vif") && strcmp(eq + 1, "virtio") && strcmp(eq + 1, "virtio-net"))
				return bad(err, errlen, "vif '%s': %s '%s': domus's interfaces are virtio-net",
					   spec, tok, eq + 1);
		} else if (!strcmp(tok, "script") || !strcmp(tok, "backend") || !strcmp(tok, "rate")) {
			return bad(err, errlen, "vif '%s': '%s=' is not supported by domus", spec, tok);
		} else {
			return bad(err, errlen, "vif '%s': unknown key '%s'", spec, tok);
		}
	}
	if (v->backend == VIF_VMM && !v->vifname[0])
		return bad(err, errlen, "vif '%s': backendtype=vmm needs vifname=TAP", spec);
	if (v->backend == VIF_VHOST_USER && !v->socket[0])
		return bad(err, errlen, "vif '%s': backendtype=vhost-user needs socket=PATH", spec);
	if (v->backend != VIF_VMM && v->vifname[0])
		return bad(err, errlen, "vif '%s': vifname is the TAP of backendtype=vmm", spec);
	if (v->backend != VIF_VHOST_USER && v->socket[0])
		return bad(err, errlen, "vif '%s': socket is for backendtype=vhost-user", spec);
	if (v->backend != VIF_DOMUS_NET && (v->ip[0] || v->bridge[0] || v->rsip[0]))
		return bad(err, errlen, "vif '%s': ip, bridge and rsip are domus-net's, not backendtype=%s's",
			   spec, v->backend == VIF_VMM ? "vmm" : "vhost-user");
	return 0;
}

static int want_type(const struct xl_setting *s, enum xl_type t, const char *file, char *err,
		     size_t errlen)
{
	static const char *names[] = {"a quoted string", "a number", "a list"};

	if (s->value.type != t)
		return bad(err, errlen, "%s:%u: '%s' must be %s", file, s->line, s->key, names[t]);
	return 0;
}

static int parse_action(const struct xl_setting *s, enum domain_action *a, const char *file,
			char *err, size_t errlen)
{
	if (want_type(s, XL_STRING, file, err, errlen) < 0)
		return -EINVAL;
	if (!strcmp(s->value.str, "destroy"))
		*a = ACTION_DESTROY;
	else if (!strcmp(s->value.str, "restart"))
		*a = ACTION_RESTART;
	else if (!strcmp(s->value.str, "preserve"))
		*a = ACTION_PRESERVE;
	else
		return bad(err, errlen, "%s:%u: %s '%s': expected destroy, restart or preserve", file,
			   s->line, s->key, s->value.str);
	return 0;
}

static int string_into(const struct xl_setting *s, char *dst, size_t size, const char *file,
		       char *err, size_t errlen)
{
	if (want_type(s, XL_STRING, file, err, errlen) < 0)
		return -EINVAL;
	if (copy(dst, size, s->value.str) < 0)
		return bad(err, errlen, "%s:%u: '%s' is longer than %zu bytes", file, s->line, s->key,
			   size - 1);
	return 0;
}

static int number(const struct xl_setting *s, unsigned long long min, unsigned long long max,
		  unsigned long long *out, const char *file, char *err, size_t errlen)
{
	if (want_type(s, XL_NUMBER, file, err, errlen) < 0)
		return -EINVAL;
	if (s->value.num < min || s->value.num > max)
		return bad(err, errlen, "%s:%u: %s %llu is out of range (%llu to %llu)", file, s->line,
			   s->key, s->value.num, min, max);
	*out = s->value.num;
	return 0;
}

static int valid_cpus(const char *s)
{
	/* "all", or ranges and numbers separated by commas: 0-3,5 */
	if (!strcmp(s, "all") || !*s)
		return 1;
	for (const char *p = s; *p;) {
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				return 0;
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (*p == ',' && p[1])
			p++;
		else if (*p)
			return 0; /* a trailing comma, or anything else */
	}
	return 1;
}

int cpulist_parse(const char *s, cpu_set_t *set, unsigned *highest)
{
	CPU_ZERO(set);
	*highest = 0;
	if (!*s || !strcmp(s, "all"))
		return 0;
	if (!valid_cpus(s))
		return -EINVAL;
	for (const char *p = s; *p;) {
		char *end;
		unsigned long lo = strtoul(p, &end, 10), hi = lo;

		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		if (hi < lo || hi >= CPU_SETSIZE)
			return -EINVAL;
		for (unsigned long c = lo; c <= hi; c++)
			CPU_SET(c, set);
		if (hi > *highest)
			*highest = (unsigned)hi;
		p = *end == ',' ? end + 1 : end;
	}
	return 1;
}

static int bad_cpus(const struct xl_setting *s, const char *what, const char *file, char *err,
		    size_t errlen)
{
	return bad(err, errlen, "%s:%u: cpus '%s': expected \"all\" or a list like \"0-3,5\" of CPUs below %d",
		   file, s->line, what, CPU_SETSIZE);
}

/* cpus = "0-3" for every vCPU, or cpus = ["0", "2-3"], one per vCPU (xl.cfg(5)). */
static int parse_cpus(const struct xl_setting *s, struct domain_spec *spec, const char *file,
		      char *err, size_t errlen)
{
	cpu_set_t set;
	unsigned highest;

	spec->cpus[0] = 0;
	spec->nvcpu_cpus = 0;
	if (s->value.type == XL_STRING) {
		if (string_into(s, spec->cpus, sizeof(spec->cpus), file, err, errlen) < 0)
			return -EINVAL;
		return cpulist_parse(spec->cpus, &set, &highest) < 0 ? bad_cpus(s, spec->cpus, file, err, errlen) : 0;
	}
	if (want_type(s, XL_LIST, file, err, errlen) < 0)
		return -EINVAL;
	if (s->value.nitems > VM_MAX_VCPUS)
		return bad(err, errlen, "%s:%u: cpus lists %zu vCPUs; a domain has at most %d", file, s->line,
			   s->value.nitems, VM_MAX_VCPUS);
	for (size_t i = 0; i < s->value.nitems; i++) {
		const struct xl_value *item = &s->value.items[i];
		if (item->type != XL_STRING)
			return bad(err, errlen, "%s:%u: cpus entries must be strings", file, s->line);
		if (copy(spec->vcpu_cpus[i], sizeof(spec->vcpu_cpus[i]), item->str) < 0)
			return bad(err, errlen, "%s:%u: cpus entry %zu is longer than %zu bytes", file, s->line,
				   i, sizeof(spec->vcpu_cpus[i]) - 1);
		if (cpulist_parse(item->str, &set, &highest) < 0)
			return bad_cpus(s, item->str, file, err, errlen);
	}
	spec->nvcpu_cpus = (unsigned)s->value.nitems;
	return 0;
}

const char *domain_vcpu_cpus(const struct domain_spec *spec, unsigned vcpu)
{
	const char *c;

	if (!spec->nvcpu_cpus)
		c = spec->cpus;
	else
		c = vcpu < spec->nvcpu_cpus ? spec->vcpu_cpus[vcpu] : "";
	return strcmp(c, "all") ? c : "";
}

/* Every vCPU the domain may have: maxvcpus, once the config is read. */
static unsigned vcpu_count(const struct domain_spec *spec)
{
	return spec->maxvcpus > spec->vm.vcpus ? spec->maxvcpus : spec->vm.vcpus;
}

/*
 * Whether each of n vCPUs, vCPU i on affinity[i], has one host CPU of its
 * own. 0, or -EINVAL with the first that has not in err.
 */
static int own_cpus(const char *const *affinity, unsigned n, char *err, size_t errlen)
{
	unsigned cpu_of[VM_MAX_VCPUS];
	cpu_set_t set, taken;

	CPU_ZERO(&taken);
	for (unsigned i = 0; i < n && i < VM_MAX_VCPUS; i++) {
		/* One CPU in the set: cpulist_parse's highest is that CPU. */
		if (cpulist_parse(affinity[i], &set, &cpu_of[i]) <= 0 || CPU_COUNT(&set) != 1)
			return bad(err, errlen, "vCPU %u has cpus '%.64s', not one CPU", i,
				   affinity[i][0] ? affinity[i] : "all");
		if (CPU_ISSET(cpu_of[i], &taken))
			for (unsigned j = 0; j < i; j++)
				if (cpu_of[j] == cpu_of[i])
					return bad(err, errlen, "vCPUs %u and %u are both on CPU %u",
						   j, i, cpu_of[i]);
		CPU_SET(cpu_of[i], &taken);
	}
	return 0;
}

int domain_spec_check_dedicated(const struct domain_spec *spec, char *err, size_t errlen)
{
	const char *affinity[VM_MAX_VCPUS] = {NULL};
	unsigned n = vcpu_count(spec);
	char why[160], example[64];

	if (!spec->cpu_dedicated)
		return 0;
	for (unsigned i = 0; i < n && i < VM_MAX_VCPUS; i++)
		affinity[i] = domain_vcpu_cpus(spec, i);
	if (own_cpus(affinity, n, why, sizeof(why)) == 0)
		return 0;
	/* What would do, for this many vCPUs. */
	if (n == 1)
		snprintf(example, sizeof(example), "cpus = \"2\"");
	else if (n == 2)
		snprintf(example, sizeof(example), "cpus = [\"2\", \"3\"]");
	else
		snprintf(example, sizeof(example), "cpus = [\"2\", \"3\", ..., \"%u\"]", n + 1);
	return bad(err, errlen,
		   "cpu_dedicated = 1 needs each vCPU pinned to a CPU of its own (%s for %u vCPU%s): %s",
		   example, n, n == 1 ? "" : "s", why);
}

/* The host CPUs the domain's vCPUs are pinned to, together. */
static void pinned_cpus(const struct domain_spec *spec, cpu_set_t *all)
{
	cpu_set_t set;
	unsigned highest;

	CPU_ZERO(all);
	for (unsigned i = 0; i < vcpu_count(spec); i++)
		if (cpulist_parse(domain_vcpu_cpus(spec, i), &set, &highest) > 0)
			CPU_OR(all, all, &set);
}

int domain_spec_dedicated_overlap(const struct domain_spec *a, const struct domain_spec *b)
{
	cpu_set_t in_a, in_b, both;

	if (!a->cpu_dedicated || !b->cpu_dedicated)
		return -1;
	pinned_cpus(a, &in_a);
	pinned_cpus(b, &in_b);
	CPU_AND(&both, &in_a, &in_b);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &both))
			return cpu;
	return -1;
}

int domain_spec_pin(struct domain_spec *spec, int vcpu, const char *cpus, char *err, size_t errlen)
{
	cpu_set_t set;
	unsigned highest, n = vcpu_count(spec);

	if (strlen(cpus) >= DOMAIN_CPUS_MAX || cpulist_parse(cpus, &set, &highest) < 0)
		return bad(err, errlen, "cpus '%.64s': expected \"all\" or a list like \"0-3,5\"", cpus);
	if (vcpu >= (int)n)
		return bad(err, errlen, "vCPU %d: the domain has vCPUs 0-%u", vcpu, n - 1);
	if (spec->cpu_dedicated) {
		/* Checked on what the pins would be, before spec changes. */
		const char *affinity[VM_MAX_VCPUS] = {NULL};
		char why[160];

		for (unsigned i = 0; i < n && i < VM_MAX_VCPUS; i++)
			affinity[i] = vcpu < 0 || i == (unsigned)vcpu ? cpus
								      : domain_vcpu_cpus(spec, i);
		if (own_cpus(affinity, n, why, sizeof(why)) < 0)
			return bad(err, errlen,
				   "cpu_dedicated = 1 keeps each vCPU on a CPU of its own: %s", why);
	}
	if (vcpu < 0) {
		snprintf(spec->cpus, sizeof(spec->cpus), "%s", strcmp(cpus, "all") ? cpus : "");
		spec->nvcpu_cpus = 0;
		return 0;
	}
	if (!spec->nvcpu_cpus) {
		for (unsigned i = 0; i < n; i++)
			snprintf(spec->vcpu_cpus[i], sizeof(spec->vcpu_cpus[i]), "%s", domain_vcpu_cpus(spec, i));
		spec->nvcpu_cpus = n;
		spec->cpus[0] = 0;
	}
	for (unsigned i = spec->nvcpu_cpus; i <= (unsigned)vcpu; i++)
		spec->vcpu_cpus[i][0] = 0;
	if (spec->nvcpu_cpus <= (unsigned)vcpu)
		spec->nvcpu_cpus = (unsigned)vcpu + 1;
	snprintf(spec->vcpu_cpus[vcpu], sizeof(spec->vcpu_cpus[vcpu]), "%s", strcmp(cpus, "all") ? cpus : "");
	return 0;
}

static bool names_console(const char *cmdline)
{
	for (const char *p = strstr(cmdline, "console="); p; p = strstr(p + 1, "console="))
		if (p == cmdline || p[-1] == ' ')
			return true;
	return false;
}

int disk_qos_entry_parse(const char *entry, char *vdev, size_t vdevlen, char *out, size_t outlen,
			 char *err, size_t errlen)
{
	const char *colon = strchr(entry, ':'), *eq = strchr(entry, '='), *spec = entry;
	struct blk_qos q;
	char why[256];

	vdev[0] = 0;
	if (colon && (!eq || colon < eq)) {
		const char *start = entry, *end = colon;
		while (*start == ' ')
			start++;
		while (end > start && end[-1] == ' ')
			end--;
		if (end == start || (size_t)(end - start) >= vdevlen)
			return bad(err, errlen, "disk_qos '%s': the disk before ':' must be a vdev such as xvdb",
				   entry);
		memcpy(vdev, start, (size_t)(end - start));
		vdev[end - start] = 0;
		spec = colon + 1;
	}
	blk_qos_default(&q);
	if (blk_qos_parse(spec, &q, why, sizeof(why)) < 0)
		return bad(err, errlen, "disk_qos '%s': %s", entry, why);
	blk_qos_format(&q, out, outlen);
	return 0;
}

int domain_spec_find_disk(const struct domain_spec *spec, const char *vdev)
{
	for (unsigned i = 0; i < spec->vm.ndisks; i++)
		if (!strcmp(spec->vm.disks[i].vdev, vdev))
			return (int)i;
	return -1;
}

/* disk_qos = "SPEC" or ["SPEC", "VDEV: SPEC", ...], once the disks are known. */
static int resolve_disk_qos(const struct xl_setting *s, const char *file, struct domain_spec *spec,
			    char *err, size_t errlen)
{
	size_t n = s->value.type == XL_STRING ? 1 : s->value.nitems;
	bool domain_set = false;

	for (size_t j = 0; j < n; j++) {
		const char *entry = s->value.type == XL_STRING ? s->value.str : s->value.items[j].str;
		char vdev[16], text[BLK_QOS_TEXT_MAX], why[512];
		int i;

		if (disk_qos_entry_parse(entry, vdev, sizeof(vdev), text, sizeof(text), why, sizeof(why)) < 0)
			return bad(err, errlen, "%s:%u: %s", file, s->line, why);
		if (!vdev[0]) {
			if (domain_set)
				return bad(err, errlen, "%s:%u: disk_qos: two entries for the domain's disks",
					   file, s->line);
			domain_set = true;
			snprintf(spec->disk_qos, sizeof(spec->disk_qos), "%s", text);
			continue;
		}
		if ((i = domain_spec_find_disk(spec, vdev)) < 0)
			return bad(err, errlen, "%s:%u: disk_qos '%s': the domain has no disk %s", file, s->line,
				   entry, vdev);
		if (spec->disk_qos_own[i])
			return bad(err, errlen, "%s:%u: disk_qos: two entries for %s", file, s->line, vdev);
		spec->disk_qos_own[i] = true;
		snprintf(spec->disk_qos_disk[i], sizeof(spec->disk_qos_disk[i]), "%s", text);
	}
	return 0;
}

void domain_spec_defaults(struct domain_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	vm_config_defaults(&spec->vm);
	spec->on_poweroff = ACTION_DESTROY;
	spec->on_reboot = ACTION_RESTART;
	spec->on_crash = ACTION_DESTROY;
	spec->cpu_weight = 256;
	spec->gang = -1;
	spec->pv_mp = true;
	spec->gang_skew_ms = VM_GANG_SKEW_DEFAULT_US / 1000;
}

int domain_spec_from_xl(const struct xl_config *xl, const char *file, struct domain_spec *spec,
			char *err, size_t errlen)
{
	const struct xl_setting *cmdline = NULL, *extra = NULL, *root = NULL, *disk_qos = NULL;
	const struct xl_setting *dedicated = NULL;
	unsigned long long v;
	bool have_memory = false, have_maxmem = false, have_maxvcpus = false;
	char memwhy[256], dedicated_why[256];
	int r;

	domain_spec_defaults(spec);
	for (size_t i = 0; i < xl->n; i++) {
		const struct xl_setting *s = &xl->settings[i];
		const char *k = s->key;

		r = 0;
		if (!strcmp(k, "name")) {
			r = string_into(s, spec->name, sizeof(spec->name), file, err, errlen);
			if (!r && (!spec->name[0] || strspn(spec->name, "abcdefghijklmnopqrstuvwxyz"
						     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(spec->name)))
				r = bad(err, errlen, "%s:%u: name '%s' may hold only letters, digits, '.', '_' and '-'",
					file, s->line, spec->name);
			else if (!r && strspn(spec->name, "0123456789") == strlen(spec->name))
				r = bad(err, errlen, "%s:%u: name '%s' is all digits; it would read as a domain id",
					file, s->line, spec->name);
		} else if (!strcmp(k, "uuid")) {
			r = string_into(s, spec->uuid, sizeof(spec->uuid), file, err, errlen);
		} else if (!strcmp(k, "type") || !strcmp(k, "builder")) {
			/* PV and PVH guests boot here as KVM guests from the same kernel. */
			r = want_type(s, XL_STRING, file, err, errlen);
			if (!r && strcmp(s->value.str, "pv") && strcmp(s->value.str, "pvh") &&
			    strcmp(s->value.str, "generic"))
				r = bad(err, errlen, "%s:%u: %s '%s' is not supported (pv or pvh)", file,
					s->line, k, s->value.str);
		} else if (!strcmp(k, "memory")) {
			r = number(s, 1, VM_MAX_MEMORY_MIB, &v, file, err, errlen);
			spec->vm.memory_mib = v;
			have_memory = true;
		} else if (!strcmp(k, "maxmem")) {
			r = number(s, 1, VM_MAX_MEMORY_MIB, &v, file, err, errlen);
			spec->vm.maxmem_mib = v;
			have_maxmem = true;
		} else if (!strcmp(k, "minmem")) {
			r = number(s, 1, VM_MAX_MEMORY_MIB, &v, file, err, errlen);
			spec->vm.minmem_mib = v;
		} else if (!strcmp(k, "balloon")) {
			r = number(s, 0, 1, &v, file, err, errlen);
			spec->vm.balloon = v;
		} else if (!strcmp(k, "deflate_on_oom")) {
			r = number(s, 0, 1, &v, file, err, errlen);
			spec->vm.balloon_deflate_on_oom = v;
		} else if (!strcmp(k, "vcpus")) {
			r = number(s, 1, VM_MAX_VCPUS, &v, file, err, errlen);
			spec->vm.vcpus = (unsigned)v;
		} else if (!strcmp(k, "maxvcpus")) {
			r = number(s, 1, VM_MAX_VCPUS, &v, file, err, errlen);
			spec->maxvcpus = (unsigned)v;
			have_maxvcpus = true;
		} else if (!strcmp(k, "kernel")) {
			r = string_into(s, spec->kernel, sizeof(spec->kernel), file, err, errlen);
		} else if (!strcmp(k, "ramdisk")) {
			r = string_into(s, spec->ramdisk, sizeof(spec->ramdisk), file, err, errlen);
		} else if (!strcmp(k, "cmdline")) {
			cmdline = s;
			r = want_type(s, XL_STRING, file, err, errlen);
		} else if (!strcmp(k, "extra")) {
			extra = s;
			r = want_type(s, XL_STRING, file, err, errlen);
		} else if (!strcmp(k, "root")) {
			root = s;
			r = want_type(s, XL_STRING, file, err, errlen);
		} else if (!strcmp(k, "disk")) {
			r = want_type(s, XL_LIST, file, err, errlen);
			for (size_t j = 0; !r && j < s->value.nitems; j++) {
				char why[512];
				if (s->value.items[j].type != XL_STRING)
					r = bad(err, errlen, "%s:%u: disk entries must be strings", file, s->line);
				else if (spec->vm.ndisks == VM_MAX_DISKS)
					r = bad(err, errlen, "%s:%u: more than %u disks", file, s->line, VM_MAX_DISKS);
				else if (disk_spec_parse(s->value.items[j].str, &spec->vm.disks[spec->vm.ndisks],
							 why, sizeof(why)) < 0)
					r = bad(err, errlen, "%s:%u: %s", file, s->value.items[j].line, why);
				else
					spec->vm.ndisks++;
			}
		} else if (!strcmp(k, "pmem")) {
			/* A domus extension: files the guest sees as persistent memory (DAX). */
			r = want_type(s, XL_LIST, file, err, errlen);
			for (size_t j = 0; !r && j < s->value.nitems; j++) {
				char why[512];
				if (s->value.items[j].type != XL_STRING)
					r = bad(err, errlen, "%s:%u: pmem entries must be strings", file, s->line);
				else if (spec->vm.npmems == VM_MAX_PMEM)
					r = bad(err, errlen, "%s:%u: more than %u pmem devices", file, s->line,
						VM_MAX_PMEM);
				else if (pmem_spec_parse(s->value.items[j].str, &spec->vm.pmems[spec->vm.npmems],
							 why, sizeof(why)) < 0)
					r = bad(err, errlen, "%s:%u: pmem %s", file, s->value.items[j].line, why);
				else
					spec->vm.npmems++;
			}
		} else if (!strcmp(k, "shm")) {
			/* A domus extension: ivshmem regions domusd serves (shm_spec.h). */
			r = want_type(s, XL_LIST, file, err, errlen);
			for (size_t j = 0; !r && j < s->value.nitems; j++) {
				struct shm_config *sc = &spec->vm.shms[spec->vm.nshms];
				char why[512];
				if (s->value.items[j].type != XL_STRING)
					r = bad(err, errlen, "%s:%u: shm entries must be strings", file, s->line);
				else if (spec->vm.nshms == VM_MAX_SHM)
					r = bad(err, errlen, "%s:%u: more than %u shm regions", file, s->line, VM_MAX_SHM);
				else if (shm_spec_parse(s->value.items[j].str, sc, why, sizeof(why)) < 0)
					r = bad(err, errlen, "%s:%u: %s", file, s->value.items[j].line, why);
				else {
					for (unsigned o = 0; !r && o < spec->vm.nshms; o++)
						if (!strcmp(spec->vm.shms[o].name, sc->name))
							r = bad(err, errlen, "%s:%u: shm '%s' is named twice", file,
								s->value.items[j].line, sc->name);
					if (!r)
						spec->vm.nshms++;
				}
			}
		} else if (!strcmp(k, "vsock")) {
			/* A domus extension: "cid=N,socket=PATH" (hybrid) or "cid=N,backend=vhost". */
			char why[512];
			r = want_type(s, XL_STRING, file, err, errlen);
			if (!r && vsock_spec_parse(s->value.str, &spec->vm.vsock, why, sizeof(why)) < 0)
				r = bad(err, errlen, "%s:%u: vsock %s", file, s->line, why);
		} else if (!strcmp(k, "vif")) {
			r = want_type(s, XL_LIST, file, err, errlen);
			for (size_t j = 0; !r && j < s->value.nitems; j++) {
				char why[512];
				if (s->value.items[j].type != XL_STRING)
					r = bad(err, errlen, "%s:%u: vif entries must be strings", file, s->line);
				else if (spec->nvifs == DOMAIN_MAX_VIFS)
					r = bad(err, errlen, "%s:%u: more than %u vifs", file, s->line, DOMAIN_MAX_VIFS);
				else if (vif_spec_parse(s->value.items[j].str, &spec->vifs[spec->nvifs], why,
							sizeof(why)) < 0)
					r = bad(err, errlen, "%s:%u: %s", file, s->value.items[j].line, why);
				else
					spec->nvifs++;
			}
		} else if (!strcmp(k, "on_poweroff")) {
			r = parse_action(s, &spec->on_poweroff, file, err, errlen);
		} else if (!strcmp(k, "on_reboot")) {
			r = parse_action(s, &spec->on_reboot, file, err, errlen);
		} else if (!strcmp(k, "on_crash")) {
			r = parse_action(s, &spec->on_crash, file, err, errlen);
		} else if (!strcmp(k, "cpus")) {
			r = parse_cpus(s, spec, file, err, errlen);
		} else if (!strcmp(k, "disk_qos")) {
			/* A domus extension: the disk scheduler's QoS; resolved once the disks are known. */
			if (s->value.type != XL_STRING && (r = want_type(s, XL_LIST, file, err, errlen)) == 0)
				for (size_t j = 0; !r && j < s->value.nitems; j++)
					if (s->value.items[j].type != XL_STRING)
						r = bad(err, errlen, "%s:%u: disk_qos entries must be strings", file,
							s->line);
			disk_qos = s;
		} else if (!strcmp(k, "cpu_weight")) {
			r = number(s, 1, 65535, &v, file, err, errlen);
			spec->cpu_weight = (unsigned)v;
		} else if (!strcmp(k, "cap")) {
			r = number(s, 0, 100ULL * VM_MAX_VCPUS, &v, file, err, errlen);
			spec->cap = (unsigned)v;
		} else if (!strcmp(k, "gang")) {
			r = number(s, 0, 1, &v, file, err, errlen);
			spec->gang = (int)v;
		} else if (!strcmp(k, "gang_skew_ms")) {
			r = number(s, 1, VM_GANG_SKEW_MAX_US / 1000, &v, file, err, errlen);
			spec->gang_skew_ms = (unsigned)v;
		} else if (!strcmp(k, "pv_mp")) {
			r = number(s, 0, 1, &v, file, err, errlen); /* a domus extension */
			spec->pv_mp = v;
		} else if (!strcmp(k, "cpu_dedicated")) {
			/* A domus extension: checked once vcpus, maxvcpus and cpus are known. */
			r = number(s, 0, 1, &v, file, err, errlen);
			spec->cpu_dedicated = v;
			dedicated = s;
		} else {
			r = bad(err, errlen, "%s:%u: unknown setting '%s'", file, s->line, k);
		}
		if (r < 0)
			return r;
	}
	if (!spec->kernel[0])
		return bad(err, errlen, "%s: no kernel = \"...\" setting", file);
	if (!spec->name[0])
		return bad(err, errlen, "%s: no name = \"...\" setting", file);
	if (cmdline && (extra || root))
		return bad(err, errlen, "%s:%u: cmdline cannot be combined with extra or root", file,
			   cmdline->line);
	if (cmdline) {
		if (copy(spec->cmdline, sizeof(spec->cmdline), cmdline->value.str) < 0)
			return bad(err, errlen, "%s:%u: cmdline too long", file, cmdline->line);
	} else if (extra || root) {
		/* As xl does: "root=ROOT EXTRA". */
		int n = snprintf(spec->cmdline, sizeof(spec->cmdline), "%s%s%s%s",
				 root ? "root=" : "", root ? root->value.str : "",
				 root && extra ? " " : "", extra ? extra->value.str : "");
		if (n < 0 || (size_t)n >= sizeof(spec->cmdline))
			return bad(err, errlen, "%s: command line too long", file);
	}
	/*
	 * A PV kernel under Xen finds its console by itself; here the console is
	 * the serial port, so a command line that names none gets it, and
	 * `domus console` shows the kernel as `xl console` would.
	 */
	if (spec->cmdline[0] && !names_console(spec->cmdline)) {
		size_t len = strlen(spec->cmdline);
		if (len + sizeof(" " VM_DEFAULT_CMDLINE) > sizeof(spec->cmdline))
			return bad(err, errlen, "%s: command line too long", file);
		strcat(spec->cmdline, " " VM_DEFAULT_CMDLINE);
	}
	for (unsigned i = 0; i < spec->vm.ndisks; i++)
		if (!spec->vm.disks[i].vdev[0])
			snprintf(spec->vm.disks[i].vdev, sizeof(spec->vm.disks[i].vdev), "xvd%c", 'a' + i);
	if (disk_qos && (r = resolve_disk_qos(disk_qos, file, spec, err, errlen)) < 0)
		return r;
	for (unsigned i = 0; i < spec->nvifs; i++)
		vif_to_nic(&spec->vifs[i], i, &spec->vm.nics[i]);
	spec->vm.nnics = spec->nvifs;
	if (!have_memory && have_maxmem)
		spec->vm.memory_mib = spec->vm.maxmem_mib;
	if (!have_maxmem)
		spec->vm.maxmem_mib = spec->vm.memory_mib;
	r = vm_config_check_memory(&spec->vm, memwhy, sizeof(memwhy));
	if (r < 0)
		return bad(err, errlen, "%s: %s", file, memwhy);
	if (!have_maxvcpus)
		spec->maxvcpus = spec->vm.vcpus;
	if (spec->maxvcpus < spec->vm.vcpus)
		return bad(err, errlen, "%s: maxvcpus %u is below vcpus %u", file, spec->maxvcpus,
			   spec->vm.vcpus);
	if (spec->nvcpu_cpus > spec->maxvcpus)
		return bad(err, errlen, "%s: cpus gives %u vCPUs affinities; the domain has %u", file,
			   spec->nvcpu_cpus, spec->maxvcpus);
	if (dedicated &&
	    domain_spec_check_dedicated(spec, dedicated_why, sizeof(dedicated_why)) < 0)
		return bad(err, errlen, "%s:%u: %s", file, dedicated->line, dedicated_why);
	spec->vm.cpu_dedicated = spec->cpu_dedicated;
	spec->vm.pv_mp_hidden = !spec->pv_mp;
	spec->vm.kernel = spec->kernel;
	spec->vm.initrd = spec->ramdisk[0] ? spec->ramdisk : NULL;
	if (spec->cmdline[0])
		spec->vm.cmdline = spec->cmdline;
	spec->vm.on_reboot = spec->on_reboot == ACTION_RESTART ? ON_REBOOT_RESTART : ON_REBOOT_EXIT;
	domain_spec_gang(spec, 0);
	return 0;
}

void domain_spec_gang(struct domain_spec *spec, int host_default)
{
	int gang = spec->gang < 0 ? host_default : spec->gang;

	spec->vm.gang_skew_us = gang == 1 ? spec->gang_skew_ms * 1000 : 0;
}

int domain_spec_load(const char *path, struct domain_spec *spec, char *err, size_t errlen)
{
	struct xl_config xl;
	struct stat st;
	char *text;
	ssize_t got = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bad(err, errlen, "cannot open config %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > XL_MAX_INPUT) {
		close(fd);
		return bad(err, errlen, "config %s is not a regular file of at most %d bytes", path,
			   XL_MAX_INPUT);
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while (got < st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)(st.st_size - got));
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	ret = xl_parse(text, (size_t)got, path, &xl, err, errlen);
	free(text);
	if (ret < 0)
		return ret;
	ret = domain_spec_from_xl(&xl, path, spec, err, errlen);
	xl_free(&xl);
	return ret;
}

void domain_spec_print(const struct domain_spec *spec, FILE *f)
{
	const struct vm_config *vm = &spec->vm;

	fprintf(f, "name = %s\n", spec->name);
	fprintf(f, "uuid = %s\n", spec->uuid);
	fprintf(f, "kernel = %s\n", vm->kernel ? vm->kernel : "");
	fprintf(f, "ramdisk = %s\n", vm->initrd ? vm->initrd : "");
	fprintf(f, "cmdline = %s\n", vm->cmdline);
	fprintf(f, "memory = %llu\n", (unsigned long long)vm->memory_mib);
	fprintf(f, "maxmem = %llu\n", (unsigned long long)vm->maxmem_mib);
	fprintf(f, "minmem = %llu\n", (unsigned long long)vm_config_minmem(vm));
	fprintf(f, "balloon = %d\n", vm->balloon);
	fprintf(f, "deflate_on_oom = %d\n", vm->balloon_deflate_on_oom);
	fprintf(f, "vcpus = %u\n", vm->vcpus);
	fprintf(f, "maxvcpus = %u\n", spec->maxvcpus);
	fprintf(f, "on_poweroff = %s\n", domain_action_name(spec->on_poweroff));
	fprintf(f, "on_reboot = %s\n", domain_action_name(spec->on_reboot));
	fprintf(f, "on_crash = %s\n", domain_action_name(spec->on_crash));
	for (unsigned i = 0; i < vm->ndisks; i++) {
		fprintf(f, "disk.%u = %s,%s%s%s%s%s", i, vm->disks[i].path, vm->disks[i].readonly ? "ro" : "rw",
			vm->disks[i].qcow2 ? ",format=qcow2" : "", vm->disks[i].in_vmm ? ",in-vmm" : "",
			vm->disks[i].direct || vm->disks[i].writethrough ? ",cache=" : "",
			vm->disks[i].direct || vm->disks[i].writethrough ? disk_cache_name(&vm->disks[i]) : "");
		/* Only when set: without it a disk has a queue per vCPU. */
		if (vm->disks[i].queues)
			fprintf(f, ",queues=%u", vm->disks[i].queues);
		fputc('\n', f);
	}
	for (unsigned i = 0; i < vm->npmems; i++)
		fprintf(f, "pmem.%u = %s,%s\n", i, vm->pmems[i].path, vm->pmems[i].readonly ? "ro" : "rw");
	for (unsigned i = 0; i < vm->nshms; i++) {
		char text[DISK_PATH_MAX + 128];
		shm_spec_format(&vm->shms[i], text, sizeof(text));
		fprintf(f, "shm.%u = %s\n", i, text);
	}
	if (vm->vsock.cid)
		fprintf(f, "vsock = cid=%u,%s%s\n", vm->vsock.cid, vm->vsock.vhost ? "backend=vhost" : "socket=",
			vm->vsock.vhost ? "" : vm->vsock.socket);
	for (unsigned i = 0; i < spec->nvifs; i++)
		fprintf(f, "vif.%u = mac=%s,bridge=%s,ip=%s%s%s,backendtype=%s%s%s\n", i, spec->vifs[i].mac,
			spec->vifs[i].bridge, spec->vifs[i].ip, spec->vifs[i].rsip[0] ? ",rsip=" : "",
			spec->vifs[i].rsip,
			spec->vifs[i].backend == VIF_VMM ? "vmm,vifname=" :
			spec->vifs[i].backend == VIF_VHOST_USER ? "vhost-user,socket=" : "domus-net",
			spec->vifs[i].vifname, spec->vifs[i].socket);
	if (spec->nvcpu_cpus) {
		fprintf(f, "cpus = [");
		for (unsigned i = 0; i < spec->nvcpu_cpus; i++)
			fprintf(f, "%s\"%s\"", i ? ", " : "", spec->vcpu_cpus[i][0] ? spec->vcpu_cpus[i] : "all");
		fprintf(f, "]\n");
	} else {
		fprintf(f, "cpus = %s\n", spec->cpus[0] ? spec->cpus : "all");
	}
	/* Only when set: the files that do not say print as before. */
	if (spec->cpu_dedicated)
		fprintf(f, "cpu_dedicated = 1\n");
	if (!spec->pv_mp)
		fprintf(f, "pv_mp = 0\n");
	fprintf(f, "cpu_weight = %u\n", spec->cpu_weight);
	fprintf(f, "cap = %u\n", spec->cap);
	/* What domus run does: a domain that does not say has no gang scheduling there. */
	if (spec->vm.gang_skew_us)
		fprintf(f, "gang = 1, skew %u ms\n", spec->vm.gang_skew_us / 1000);
	else
		fprintf(f, "gang = 0\n");
	if (spec->disk_qos[0])
		fprintf(f, "disk_qos = %s\n", spec->disk_qos);
	for (unsigned i = 0; i < vm->ndisks; i++)
		if (spec->disk_qos_own[i])
			fprintf(f, "disk_qos.%s = %s\n", vm->disks[i].vdev, spec->disk_qos_disk[i]);
}
