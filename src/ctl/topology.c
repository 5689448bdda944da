#include "ctl/topology.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "domain/domcfg.h"
#include "lib/small_file.h"

int topology_read(const char *cpu_dir, struct host_topology *t, char *err, size_t errlen)
{
	char path[512], text[4096];
	cpu_set_t online, siblings;
	unsigned highest, sibling_highest;
	int ret;

	memset(t, 0, sizeof(*t));
	snprintf(path, sizeof(path), "%s/online", cpu_dir);
	if ((ret = small_file_read(path, text, sizeof(text))) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	text[strcspn(text, "\n")] = 0;
	if (cpulist_parse(text, &online, &highest) <= 0) {
		snprintf(err, errlen, "%s: '%.40s' is not a CPU list", path, text);
		return -EINVAL;
	}
	for (unsigned cpu = 0; cpu <= highest; cpu++) {
		bool known = false;
		if (!CPU_ISSET(cpu, &online))
			continue;
		t->ncpus++;
		for (unsigned c = 0; c < t->ncores && !known; c++)
			known = CPU_ISSET(cpu, &t->cores[c]);
		if (known)
			continue;
		snprintf(path, sizeof(path), "%s/cpu%u/topology/thread_siblings_list", cpu_dir, cpu);
		if ((ret = small_file_read(path, text, sizeof(text))) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(-ret));
			return ret;
		}
		text[strcspn(text, "\n")] = 0;
		if (cpulist_parse(text, &siblings, &sibling_highest) <= 0 || !CPU_ISSET(cpu, &siblings)) {
			snprintf(err, errlen, "%s: '%.40s' is not a CPU list naming cpu%u", path, text, cpu);
			return -EINVAL;
		}
		if (t->ncores == TOPOLOGY_MAX_CORES) {
			snprintf(err, errlen, "more than %d cores", TOPOLOGY_MAX_CORES);
			return -E2BIG;
		}
		/* Offline siblings are no place to run. */
		CPU_AND(&t->cores[t->ncores], &siblings, &online);
		if ((unsigned)CPU_COUNT(&t->cores[t->ncores]) > t->threads_per_core)
			t->threads_per_core = (unsigned)CPU_COUNT(&t->cores[t->ncores]);
		t->ncores++;
	}
	t->smt = t->threads_per_core > 1;
	return 0;
}

unsigned topology_place(const struct host_topology *t, unsigned *load, unsigned nvcpus, cpu_set_t *out)
{
	unsigned got = 0, shared = 0, taken[TOPOLOGY_MAX_CORES] = {0};

	CPU_ZERO(out);
	while (got < nvcpus) {
		int best = -1;
		for (unsigned c = 0; c < t->ncores; c++)
			if (!taken[c] && (best < 0 || load[c] < load[best]))
				best = (int)c;
		if (best < 0)
			break; /* every core: it wants more CPUs than the host has */
		taken[best] = 1;
		if (load[best])
			shared++;
		load[best]++;
		CPU_OR(out, out, &t->cores[best]);
		got += (unsigned)CPU_COUNT(&t->cores[best]);
	}
	return shared;
}

void topology_count(const struct host_topology *t, unsigned *load, const cpu_set_t *set)
{
	for (unsigned c = 0; c < t->ncores; c++) {
		cpu_set_t both;
		CPU_AND(&both, &t->cores[c], set);
		if (CPU_COUNT(&both))
			load[c]++;
	}
}

void topology_unplace(const struct host_topology *t, unsigned *load, const cpu_set_t *set)
{
	for (unsigned c = 0; c < t->ncores; c++) {
		cpu_set_t both;
		CPU_AND(&both, &t->cores[c], set);
		if (CPU_COUNT(&both) && load[c])
			load[c]--;
	}
}
