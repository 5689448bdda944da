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
