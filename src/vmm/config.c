#include "vmm/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/netctl.h"

/* QEMU's names for the same choices, so that users need not learn new ones. */
static const struct {
	const char *name;
	bool direct, writethrough;
} cache_modes[] = {
	{"writeback", false, false},
	{"writethrough", false, true},
	{"none", true, false},
	{"directsync", true, true},
};

int disk_cache_parse(const char *mode, struct disk_config *d)
{
	for (unsigned i = 0; i < sizeof(cache_modes) / sizeof(cache_modes[0]); i++)
		if (!strcmp(mode, cache_modes[i].name)) {
			d->direct = cache_modes[i].direct;
			d->writethrough = cache_modes[i].writethrough;
			return 0;
		}
	return -EINVAL;
}

const char *disk_cache_name(const struct disk_config *d)
{
	for (unsigned i = 0; i < sizeof(cache_modes) / sizeof(cache_modes[0]); i++)
		if (d->direct == cache_modes[i].direct && d->writethrough == cache_modes[i].writethrough)
			return cache_modes[i].name;
	return "writeback";
}

int disk_queues_parse(const char *text, struct disk_config *d)
{
	unsigned long v;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v < 1 || v > VM_MAX_DISK_QUEUES)
		return -EINVAL;
	d->queues = (unsigned)v;
	return 0;
}

unsigned disk_queue_count(const struct disk_config *d, unsigned vcpus)
{
	if (d->queues)
		return d->queues < VM_MAX_DISK_QUEUES ? d->queues : VM_MAX_DISK_QUEUES;
	if (vcpus < 1)
		return 1;
	return vcpus < VM_MAX_DISK_QUEUES ? vcpus : VM_MAX_DISK_QUEUES;
}

uint64_t vm_config_ram_mib(const struct vm_config *cfg)
{
	return cfg->balloon && cfg->maxmem_mib > cfg->memory_mib ? cfg->maxmem_mib : cfg->memory_mib;
}

uint64_t vm_config_minmem(const struct vm_config *cfg)
{
	uint64_t m = cfg->memory_mib / 4;

	if (cfg->minmem_mib)
		return cfg->minmem_mib;
	if (m < 64)
		m = 64;
	return m < cfg->memory_mib ? m : cfg->memory_mib;
}

int vm_config_check_memory(const struct vm_config *cfg, char *err, size_t errlen)
{
	uint64_t max = cfg->maxmem_mib ? cfg->maxmem_mib : cfg->memory_mib;

	if (cfg->memory_mib < 1 || cfg->memory_mib > VM_MAX_MEMORY_MIB)
		snprintf(err, errlen, "memory %llu MiB is out of range: 1 to %llu MiB",
			 (unsigned long long)cfg->memory_mib, (unsigned long long)VM_MAX_MEMORY_MIB);
	else if (max < cfg->memory_mib)
		snprintf(err, errlen, "maxmem %llu MiB is below memory %llu MiB", (unsigned long long)max,
			 (unsigned long long)cfg->memory_mib);
	else if (max > VM_MAX_MEMORY_MIB)
		snprintf(err, errlen, "maxmem %llu MiB is above %llu MiB", (unsigned long long)max,
			 (unsigned long long)VM_MAX_MEMORY_MIB);
	else if (max > cfg->memory_mib && !cfg->balloon)
		snprintf(err, errlen,
			 "maxmem %llu MiB above memory %llu MiB needs the balloon (balloon = 0 is set)",
			 (unsigned long long)max, (unsigned long long)cfg->memory_mib);
	else if (cfg->minmem_mib > cfg->memory_mib)
		snprintf(err, errlen, "minmem %llu MiB is above memory %llu MiB",
			 (unsigned long long)cfg->minmem_mib, (unsigned long long)cfg->memory_mib);
	else
		return 0;
	return -EINVAL;
}

int pmem_spec_parse(const char *spec, struct pmem_config *p, char *err, size_t errlen)
{
	size_t len = strlen(spec);
	const char *comma;
	bool seen_ro = false, seen_rw = false;

	memset(p, 0, sizeof(*p));
	/* Every comma starts an option: paths with commas cannot be given (as for --disk). */
	while ((comma = memrchr(spec, ',', len)) != NULL) {
		const char *opt = comma + 1;
		size_t olen = len - (size_t)(opt - spec);

		if (olen == 2 && !strncmp(opt, "ro", 2))
			seen_ro = true;
		else if (olen == 2 && !strncmp(opt, "rw", 2))
			seen_rw = true;
		else {
			snprintf(err, errlen, "'%s': unknown option '%.*s' (expected ro or rw)", spec,
				 (int)(olen > 64 ? 64 : olen), opt);
			return -EINVAL;
		}
		len = (size_t)(comma - spec);
	}
	if (seen_ro && seen_rw) {
		snprintf(err, errlen, "'%s': both ro and rw", spec);
		return -EINVAL;
	}
	if (len == 0) {
		snprintf(err, errlen, "'%s': empty path", spec);
		return -EINVAL;
	}
	if (len >= sizeof(p->path)) {
		snprintf(err, errlen, "path longer than %zu bytes", sizeof(p->path) - 1);
		return -EINVAL;
	}
	memcpy(p->path, spec, len);
	p->path[len] = 0;
	p->readonly = !seen_rw;
	return 0;
}

/* "N[K|M|G]" bytes; -EINVAL unless a whole number without overflow. */
static int shm_size_parse(const char *text, uint64_t *bytes)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end || (v << shift) >> shift != v)
		return -EINVAL;
	*bytes = (uint64_t)v << shift;
	return 0;
}

int shm_option_parse(const char *spec, unsigned index, struct shm_config *s, char *err,
		   size_t errlen)
{
	char buf[DISK_PATH_MAX + 256], *save = NULL, *tok;
	bool vectors_given = false;

	memset(s, 0, sizeof(*s));
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "'%.40s...': too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	/* Every comma starts an option: paths with commas cannot be given (as for --pmem). */
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *val;
		unsigned long v;
		char *end;

		if (!eq) {
			snprintf(err, errlen, "'%s': '%s' is not KEY=VALUE", spec, tok);
			return -EINVAL;
		}
		*eq = 0;
		val = eq + 1;
		if (!strcmp(tok, "path")) {
			if (!val[0] || strlen(val) >= sizeof(s->path)) {
				snprintf(err, errlen, "'%s': path must be 1 to %zu bytes", spec,
					 sizeof(s->path) - 1);
				return -EINVAL;
			}
			strcpy(s->path, val);
		} else if (!strcmp(tok, "name")) {
			if (!val[0] || strlen(val) >= sizeof(s->name)) {
				snprintf(err, errlen, "'%s': name must be 1 to %zu bytes", spec,
					 sizeof(s->name) - 1);
				return -EINVAL;
			}
			strcpy(s->name, val);
		} else if (!strcmp(tok, "size")) {
			if (shm_size_parse(val, &s->size) < 0 || s->size == 0) {
				snprintf(err, errlen, "'%s': size '%s' is not a size (such as 4096, 64K, 4M, 1G)",
					 spec, val);
				return -EINVAL;
			}
		} else if (!strcmp(tok, "doorbell")) {
			if (strcmp(val, "0") && strcmp(val, "1")) {
				snprintf(err, errlen, "'%s': doorbell must be 0 or 1", spec);
				return -EINVAL;
			}
			s->doorbell = val[0] == '1';
		} else if (!strcmp(tok, "vectors")) {
			errno = 0;
			v = strtoul(val, &end, 10);
			if (val[0] < '0' || val[0] > '9' || *end || errno || v < 1 || v > 64) {
				snprintf(err, errlen, "'%s': vectors must be 1 to 64", spec);
				return -EINVAL;
			}
			s->vectors = (unsigned)v;
			vectors_given = true;
		} else {
			snprintf(err, errlen,
				 "'%s': unknown option '%.64s' (expected path=, name=, size=, doorbell= "
				 "or vectors=)",
				 spec, tok);
			return -EINVAL;
		}
	}
	if (!s->path[0]) {
		snprintf(err, errlen, "'%s': path= is missing", spec);
		return -EINVAL;
	}
	if (vectors_given && !s->doorbell) {
		snprintf(err, errlen, "'%s': vectors= needs doorbell=1", spec);
		return -EINVAL;
	}
	if (!s->vectors)
		s->vectors = 1;
	if (!s->name[0])
		snprintf(s->name, sizeof(s->name), "shm%u", index);
	return 0;
}

int mac_parse(const char *text, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (strlen(text) != 17 ||
	    sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (unsigned i = 0; i < 6; i++) {
		if (text[3 * i] == '+' || text[3 * i] == '-' || text[3 * i] == ' ' ||
		    text[3 * i + 1] == ' ')
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	if (mac[0] & 1)
		return -EINVAL; /* a multicast address is no interface's */
	return 0;
}

/* One option of --net vfr; mac= is the caller's. 0 or -EINVAL with why in err. */
static int vfr_option(const char *tok, struct nic_vfr_config *v, bool *mode_given, const char *spec,
		      char *err, size_t errlen)
{
	char why[256];

	if (!strncmp(tok, "ip=", 3)) {
		if (netctl_parse_cidr(tok + 3, &v->addr, &v->prefix) < 0 || v->prefix > 30) {
			snprintf(err, errlen, "'%s': ip '%s' is not A.B.C.D/N (N 1 to 30)", spec,
				 tok + 3);
			return -EINVAL;
		}
	} else if (!strncmp(tok, "uplink=", 7)) {
		if (netctl_parse_uplink(tok + 7, v->uplink_tap, sizeof(v->uplink_tap), &v->uplink,
					why, sizeof(why)) < 0) {
			snprintf(err, errlen, "'%s': uplink %s", spec, why);
			return -EINVAL;
		}
		v->have_uplink = true;
	} else if (!strncmp(tok, "mode=", 5)) {
		if (netctl_parse_mode(tok + 5, &v->mode) < 0) {
			snprintf(err, errlen, "'%s': mode '%s' must be none, routed or nat", spec,
				 tok + 5);
			return -EINVAL;
		}
		if (v->mode == VFR_UPLINK_RSIP) {
			snprintf(err, errlen,
				 "'%s': mode rsip is domusd's (its domains share the uplink's "
				 "ports in slices it gives out); use none, routed or nat",
				 spec);
			return -EINVAL;
		}
		*mode_given = true;
	} else if (!strncmp(tok, "default=", 8)) {
		if (netctl_parse_action(tok + 8, &v->default_action) < 0) {
			snprintf(err, errlen, "'%s': default '%s' must be accept, drop or reject",
				 spec, tok + 8);
			return -EINVAL;
		}
	} else {
		snprintf(
		    err, errlen,
		    "'%s': unknown option '%s' (expected ip=, mac=, uplink=, mode= or default=)",
		    spec, tok);
		return -EINVAL;
	}
	return 0;
}

/* The guest's address is a host of its subnet, not the VFR's (the first); a mode has its uplink. */
static int vfr_check(struct nic_vfr_config *v, bool mode_given, const char *spec, char *err,
		     size_t errlen)
{
	uint32_t mask = netctl_mask(v->prefix), subnet = v->addr & mask;

	if (v->addr == subnet || v->addr == (subnet | ~mask) || v->addr == subnet + 1) {
		snprintf(err, errlen,
			 "'%s': ip must be a host of its subnet other than the first "
			 "(the VFR's own)",
			 spec);
		return -EINVAL;
	}
	if (!mode_given)
		v->mode = v->have_uplink ? VFR_UPLINK_NAT : VFR_UPLINK_NONE;
	if (v->mode != VFR_UPLINK_NONE && !v->have_uplink) {
		snprintf(err, errlen, "'%s': mode %s needs uplink=TAP:ADDR/PREFIX[:GATEWAY]", spec,
			 netctl_mode_name(v->mode));
		return -EINVAL;
	}
	/* The shorter prefix of the two says whether one holds the other. */
	mask = netctl_mask(v->uplink.prefix < v->prefix ? v->uplink.prefix : v->prefix);
	if (v->have_uplink && (v->uplink.addr & mask) == (subnet & mask)) {
		snprintf(err, errlen, "'%s': the guest's subnet overlaps the uplink's link", spec);
		return -EINVAL;
	}
	return 0;
}

int nic_spec_parse(const char *spec, unsigned index, struct nic_config *n, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok, *first;
	bool mode_given = false;

	memset(n, 0, sizeof(*n));
	n->mac[0] = 0x52, n->mac[1] = 0x54, n->mac[2] = 0x00, n->mac[3] = 0x12, n->mac[4] = 0x34;
	n->mac[5] = (uint8_t)(0x50 + index);
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "'%.40s...': too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	first = strtok_r(buf, ",", &save);
	if (!first) {
		snprintf(err, errlen, "'%s': expected tap=IFNAME, vhost-user:SOCKET or vfr", spec);
		return -EINVAL;
	}
	if (!strcmp(first, "vfr")) {
		n->vfr = true;
		if (netctl_parse_cidr(NIC_VFR_DEFAULT_IP, &n->v.addr, &n->v.prefix) < 0)
			return -EINVAL;
		n->v.default_action = VFR_ACCEPT;
	} else if (!strncmp(first, "tap=", 4)) {
		if (!first[4] || strlen(first + 4) >= sizeof(n->tap)) {
			snprintf(err, errlen, "'%s': a TAP name is 1 to %zu bytes", spec, sizeof(n->tap) - 1);
			return -EINVAL;
		}
		strcpy(n->tap, first + 4);
	} else if (!strncmp(first, "vhost-user:", 11)) {
		if (!first[11] || strlen(first + 11) >= sizeof(n->socket)) {
			snprintf(err, errlen, "'%s': a socket path is 1 to %zu bytes", spec,
				 sizeof(n->socket) - 1);
			return -EINVAL;
		}
		strcpy(n->socket, first + 11);
	} else {
		snprintf(err, errlen,
			 "'%s': expected tap=IFNAME, vhost-user:SOCKET or vfr, found '%s'", spec,
			 first);
		return -EINVAL;
	}
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		if (!strncmp(tok, "mac=", 4)) {
			if (mac_parse(tok + 4, n->mac) < 0) {
				snprintf(err, errlen, "'%s': bad mac '%s' (six hex pairs, not multicast)",
					 spec, tok + 4);
				return -EINVAL;
			}
		} else if (n->vfr && vfr_option(tok, &n->v, &mode_given, spec, err, errlen) < 0) {
			return -EINVAL;
		} else if (!n->vfr) {
			snprintf(err, errlen, "'%s': unknown option '%s' (expected mac=MAC)", spec, tok);
			return -EINVAL;
		}
	}
	if (n->vfr)
		return vfr_check(&n->v, mode_given, spec, err, errlen);
	return 0;
}

int vm_config_check_vsock(const struct vsock_config *v, char *err, size_t errlen)
{
	size_t len = strnlen(v->socket, sizeof(v->socket));

	if (v->cid == 0)
		return 0;
	if (v->cid < VSOCK_CID_MIN || v->cid > VSOCK_CID_MAX)
		snprintf(err, errlen, "vsock cid %u is reserved: a guest's CID is 3 to %u", v->cid,
			 VSOCK_CID_MAX);
	else if (v->vhost && len)
		snprintf(err, errlen, "vsock: both a socket and the vhost back-end");
	else if (!v->vhost && !len)
		snprintf(err, errlen, "vsock: no back-end (socket=PATH or vhost)");
	else if (len + VSOCK_PORT_SUFFIX_MAX >= sizeof(v->socket))
		snprintf(err, errlen, "vsock socket path longer than %zu bytes",
			 sizeof(v->socket) - 1 - VSOCK_PORT_SUFFIX_MAX);
	else
		return 0;
	return -EINVAL;
}

int vsock_spec_parse(const char *spec, struct vsock_config *v, char *err, size_t errlen)
{
	const char *p = spec;
	bool have_cid = false, hybrid = false;

	memset(v, 0, sizeof(*v));
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		const char *val = eq ? eq + 1 : NULL;
		size_t vlen = eq ? len - klen - 1 : 0;

		if (klen == 3 && !strncmp(p, "cid", 3) && val) {
			char num[16], *e;
			unsigned long long cid;

			if (vlen == 0 || vlen >= sizeof(num) || val[0] < '0' || val[0] > '9') {
				snprintf(err, errlen, "'%s': cid must be a number", spec);
				return -EINVAL;
			}
			memcpy(num, val, vlen);
			num[vlen] = 0;
			errno = 0;
			cid = strtoull(num, &e, 10);
			if (*e || errno) {
				snprintf(err, errlen, "'%s': cid must be a number", spec);
				return -EINVAL;
			}
			if (cid < VSOCK_CID_MIN || cid > VSOCK_CID_MAX) {
				snprintf(err, errlen, "'%s': cid %llu is reserved: a guest's CID is 3 to %u",
					 spec, cid, VSOCK_CID_MAX);
				return -EINVAL;
			}
			v->cid = (uint32_t)cid;
			have_cid = true;
		} else if (klen == 6 && !strncmp(p, "socket", 6) && val) {
			if (vlen == 0) {
				snprintf(err, errlen, "'%s': empty socket path", spec);
				return -EINVAL;
			}
			if (vlen + VSOCK_PORT_SUFFIX_MAX >= sizeof(v->socket)) {
				snprintf(err, errlen, "'%s': socket path longer than %zu bytes", spec,
					 sizeof(v->socket) - 1 - VSOCK_PORT_SUFFIX_MAX);
				return -EINVAL;
			}
			memcpy(v->socket, val, vlen);
			v->socket[vlen] = 0;
		} else if (!eq && klen == 5 && !strncmp(p, "vhost", 5)) {
			v->vhost = true;
		} else if (klen == 7 && !strncmp(p, "backend", 7) && val &&
			   ((vlen == 5 && !strncmp(val, "vhost", 5)) ||
			    (vlen == 6 && !strncmp(val, "hybrid", 6)))) {
			v->vhost |= vlen == 5;
			hybrid |= vlen == 6;
		} else {
			snprintf(err, errlen,
				 "'%s': unknown option '%.*s' (expected cid=N, socket=PATH, vhost or "
				 "backend=vhost|hybrid)",
				 spec, (int)(len > 64 ? 64 : len), p);
			return -EINVAL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	if (!have_cid) {
		snprintf(err, errlen, "'%s': no cid=N", spec);
		return -EINVAL;
	}
	if (v->vhost && (hybrid || v->socket[0])) {
		snprintf(err, errlen, "'%s': the vhost back-end takes no socket", spec);
		return -EINVAL;
	}
	if (!v->vhost && !v->socket[0]) {
		snprintf(err, errlen, "'%s': no back-end: socket=PATH or vhost", spec);
		return -EINVAL;
	}
	return 0;
}
