#include "ctl/sched_gran.h"

#include <errno.h>
#include <linux/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "domain/domcfg.h"

/* The kernel's enum pid_type, which no uapi header has. */
#define CORE_SCOPE_THREAD 0
#define CORE_SCOPE_THREAD_GROUP 1

int sched_gran_parse(const char *text, bool *core)
{
	if (!strcmp(text, "core"))
		*core = true;
	else if (!strcmp(text, "cpu"))
		*core = false;
	else
		return -EINVAL;
	return 0;
}

bool sched_gran_kernel_has_core_sched(void)
{
	unsigned long cookie = 0;

	return prctl(PR_SCHED_CORE, PR_SCHED_CORE_GET, 0, CORE_SCOPE_THREAD, &cookie) == 0;
}

int sched_gran_init(struct sched_gran *g, bool core, const char *cpu_dir, bool have_core_sched)
{
	char why[160];

	memset(g, 0, sizeof(*g));
	g->core = core;
	if (!core) {
		snprintf(g->why, sizeof(g->why), "sched-gran cpu: domains' vCPUs may run on sibling hyperthreads");
		return 0;
	}
	if (!(g->topology = malloc(sizeof(*g->topology))))
		return -ENOMEM;
	if (topology_read(cpu_dir, g->topology, why, sizeof(why)) < 0) {
		snprintf(g->why, sizeof(g->why), "sched-gran core: no topology (%s): nothing done", why);
	} else if (!g->topology->smt) {
		snprintf(g->why, sizeof(g->why),
			 "sched-gran core: no hyperthreads here (%u CPUs, one per core): nothing to keep apart",
			 g->topology->ncpus);
	} else if (have_core_sched) {
		g->method = SCHED_GRAN_COOKIE;
		snprintf(g->why, sizeof(g->why), "sched-gran core: a core-scheduling cookie per domain "
			 "(%u cores of %u hyperthreads)", g->topology->ncores, g->topology->threads_per_core);
	} else {
		g->method = SCHED_GRAN_CPUSET;
		snprintf(g->why, sizeof(g->why), "sched-gran core: whole cores per domain by cpuset "
			 "(the kernel has no core scheduling; %u cores)", g->topology->ncores);
		return 0;
	}
	free(g->topology);
	g->topology = NULL;
	return 0;
}

int sched_gran_enter(const struct sched_gran *g)
{
	if (g->method != SCHED_GRAN_COOKIE)
		return 0;
	/* Our threads to come (the vCPUs) inherit it. */
	if (prctl(PR_SCHED_CORE, PR_SCHED_CORE_CREATE, 0, CORE_SCOPE_THREAD_GROUP, 0) < 0)
		return -errno;
	return 0;
}

int sched_gran_place(const struct sched_gran *g, const struct cgroups *cg, unsigned domid, unsigned nvcpus,
		     const unsigned *others, unsigned nothers, char *err, size_t errlen)
{
	unsigned *load, highest, shared;
	char name[64], text[4096];
	size_t n = 0;
	cpu_set_t set;
	int ret;

	if (g->method != SCHED_GRAN_CPUSET)
		return 0;
	if (!(load = calloc(TOPOLOGY_MAX_CORES, sizeof(*load))))
		return -ENOMEM;
	for (unsigned i = 0; i < nothers; i++) {
		cgroup_domain_name(name, sizeof(name), others[i]);
		if (cgroup_read(cg, name, "cpuset.cpus", text, sizeof(text)) == 0 &&
		    cpulist_parse(text, &set, &highest) > 0)
			topology_count(g->topology, load, &set);
	}
	shared = topology_place(g->topology, load, nvcpus, &set);
	free(load);
	for (unsigned cpu = 0; cpu < CPU_SETSIZE && n < sizeof(text) - 16; cpu++)
		if (CPU_ISSET(cpu, &set))
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%u", n ? "," : "", cpu);
	cgroup_domain_name(name, sizeof(name), domid);
	if ((ret = cgroup_write(cg, name, "cpuset.cpus", text, err, errlen)) < 0)
		return ret;
	if (shared)
		snprintf(err, errlen, "%u of its cores are another domain's too: more vCPUs than cores", shared);
	return 0;
}

json_t *sched_gran_json(const struct sched_gran *g)
{
	static const char *names[] = {"nothing", "core-scheduling", "cpuset"};

	return json_pack("{s:s,s:s,s:s}", "asked", g->core ? "core" : "cpu", "method", names[g->method], "detail",
			 g->why);
}
