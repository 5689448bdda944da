#include "vmm/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
