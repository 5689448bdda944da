/*
 * Host memory accounting: how much memory domusd may give domains, and
 * how much it has given. A domain is admitted only if its memory fits.
 */
#ifndef DOMUS_MEMACCT_H
#define DOMUS_MEMACCT_H

#include <stddef.h>
#include <stdint.h>

struct mem_account {
	uint64_t capacity_mib; /* what domains may have in all */
	uint64_t used_mib;
};

/* MemTotal from the text of /proc/meminfo, in MiB; 0 or -EINVAL. */
int meminfo_total_mib(const char *text, uint64_t *mib);
/*
 * The memory domains may have on a host with total_mib: all of it but a
 * reserve for the host itself (an eighth, at least 256 MiB and at most
 * 2 GiB), unless limit_mib (nonzero) says less.
 */
uint64_t mem_account_capacity(uint64_t total_mib, uint64_t limit_mib);
/* Claims mib for a domain, or -ENOMEM with what is free in err. */
int mem_account_claim(struct mem_account *a, uint64_t mib, char *err, size_t errlen);
void mem_account_release(struct mem_account *a, uint64_t mib);
uint64_t mem_account_free(const struct mem_account *a);
/*
 * The limit of domus-blk's shared read cache when idle_mib of the domains'
 * memory is unclaimed: half of it, at most max_mib, and none below
 * MEM_CACHE_MIN_MIB (too small to hold a base image's hot blocks). The
 * cache lives in memory domains may claim: it takes only part of what they
 * leave, and is set again (shrinking first) before a domain gets memory.
 */
#define MEM_CACHE_MIN_MIB 8
uint64_t mem_account_cache_mib(uint64_t idle_mib, uint64_t max_mib);

#endif
