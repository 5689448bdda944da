/*
 * --sched-gran core (Xen's sched-gran=core): no two domains' vCPUs run on
 * sibling hyperthreads of one core at the same time (docs/sched.md). Where
 * the kernel has core scheduling (PR_SCHED_CORE, Linux 5.14) each domain's
 * process gets a cookie of its own, and the kernel never runs two
 * cookies on one core at once; else each domain gets whole cores through
 * its cgroup's cpuset.cpus, chosen from the host's topology. A host
 * without hyperthreads needs neither.
 */
#ifndef DOMUS_SCHED_GRAN_H
#define DOMUS_SCHED_GRAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctl/cgroup.h"
#include "ctl/topology.h"

enum sched_gran_method {
	SCHED_GRAN_NOTHING, /* cpu asked, or no hyperthreads, or no topology */
	SCHED_GRAN_COOKIE,  /* a core-scheduling cookie per domain */
	SCHED_GRAN_CPUSET,  /* whole cores per domain, by cpuset */
};

struct sched_gran {
	bool core;                     /* --sched-gran core */
	enum sched_gran_method method;
	char why[256];                 /* what domusd does, and why */
	struct host_topology *topology; /* SCHED_GRAN_CPUSET only */
};

/* "cpu" or "core" into *core; -EINVAL otherwise. */
int sched_gran_parse(const char *text, bool *core);
/*
 * Chooses the method for this host (cpu_dir: /sys/devices/system/cpu;
 * have_core_sched: whether the kernel takes PR_SCHED_CORE). 0 or -ENOMEM.
 */
int sched_gran_init(struct sched_gran *g, bool core, const char *cpu_dir, bool have_core_sched);
/* Whether this kernel has core scheduling (asks for our own cookie). */
bool sched_gran_kernel_has_core_sched(void);
/* In a domain's process before it execs: its cookie. 0 or -errno. */
int sched_gran_enter(const struct sched_gran *g);
/*
 * SCHED_GRAN_CPUSET: whole cores for domain domid (nvcpus vCPUs) in its
 * cgroup's cpuset.cpus, the least used first, given the cgroups of the
 * others (others: their domids). Else nothing. 0 or -errno with why.
 */
int sched_gran_place(const struct sched_gran *g, const struct cgroups *cg, unsigned domid, unsigned nvcpus,
		     const unsigned *others, unsigned nothers, char *err, size_t errlen);
/* {"asked": "core"|"cpu", "method": "...", "detail": why}. */
json_t *sched_gran_json(const struct sched_gran *g);

#endif
