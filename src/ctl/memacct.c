#include "ctl/memacct.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int meminfo_total_mib(const char *text, uint64_t *mib)
{
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, "MemTotal:", 9)) {
			char *end;
			unsigned long long kib;

			p += 9;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9') /* strtoull would take a sign */
				return -EINVAL;
			errno = 0;
			kib = strtoull(p, &end, 10);
			if (end == p || errno)
				return -EINVAL;
			while (*end == ' ')
				end++;
			if (strncmp(end, "kB", 2) || (end[2] && end[2] != '\n'))
				return -EINVAL;
			*mib = kib / 1024;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -EINVAL;
}

uint64_t mem_account_capacity(uint64_t total_mib, uint64_t limit_mib)
{
	uint64_t reserve = total_mib / 8, cap;

	if (reserve < 256)
		reserve = 256;
	if (reserve > 2048)
		reserve = 2048;
	cap = total_mib > reserve ? total_mib - reserve : 0;
	if (limit_mib && limit_mib < cap)
		cap = limit_mib;
	return cap;
}

uint64_t mem_account_free(const struct mem_account *a)
{
	return a->capacity_mib > a->used_mib ? a->capacity_mib - a->used_mib : 0;
}

int mem_account_claim(struct mem_account *a, uint64_t mib, char *err, size_t errlen)
{
	uint64_t avail = mem_account_free(a);

	if (mib > avail) {
		snprintf(err, errlen,
			 "memory %" PRIu64 " MiB is more than the host can give: %" PRIu64
			 " MiB free of %" PRIu64 " MiB for domains",
			 mib, avail, a->capacity_mib);
		return -ENOMEM;
	}
	a->used_mib += mib;
	return 0;
}

void mem_account_release(struct mem_account *a, uint64_t mib)
{
	a->used_mib = mib > a->used_mib ? 0 : a->used_mib - mib;
}

uint64_t mem_account_cache_mib(uint64_t idle_mib, uint64_t max_mib)
{
	uint64_t mib = idle_mib / 2;

	if (mib > max_mib)
		mib = max_mib;
	return mib < MEM_CACHE_MIN_MIB ? 0 : mib;
}
