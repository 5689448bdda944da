#include "vmm/config.h"

#include <errno.h>
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
