/*
 * The host's CPU topology as sysfs tells it (which CPUs are online, which
 * are hyperthreads of one core), and where a domain's vCPUs may go so that
 * no two domains run on sibling hyperthreads of one core at once: the
 * placement domusd falls back to for `--sched-gran core` where the kernel
 * has no core scheduling (docs/sched.md).
 */
#ifndef DOMUS_TOPOLOGY_H
#define DOMUS_TOPOLOGY_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

#define TOPOLOGY_MAX_CORES 512

struct host_topology {
	unsigned ncpus;              /* online */
	unsigned ncores;             /* with at least one CPU online */
	unsigned threads_per_core;   /* the most online CPUs of one core */
	bool smt;                    /* some core has two CPUs or more online */
	cpu_set_t cores[TOPOLOGY_MAX_CORES]; /* each core's online CPUs */
};

/*
 * Reads cpu_dir (normally /sys/devices/system/cpu): "online", and each
 * online CPU's topology/thread_siblings_list. 0, or -errno with why.
 */
int topology_read(const char *cpu_dir, struct host_topology *t, char *err, size_t errlen);
/*
 * Whole cores for a domain of nvcpus vCPUs, least used first (load[i]:
 * domains placed on core i so far): as many as give each vCPU a CPU, all
 * cores if it wants more. Their CPUs go in out, and load counts the
 * domain. Returns how many of its cores another domain holds too (0: the
 * domain has its cores to itself).
 */
unsigned topology_place(const struct host_topology *t, unsigned *load, unsigned nvcpus, cpu_set_t *out);
/* Counts in load a domain already placed on the CPUs in set. */
void topology_count(const struct host_topology *t, unsigned *load, const cpu_set_t *set);
/* Takes a domain placed on the CPUs in set back out of load. */
void topology_unplace(const struct host_topology *t, unsigned *load, const cpu_set_t *set);

#endif
