/*
 * CPU shares and affinity, without a host to change: Xen's weight and cap
 * as cgroup v2's cpu.weight and cpu.max (written into a directory that
 * stands for the cgroup), a vCPU thread's figures from a fake /proc, and
 * the list form of cpus through the config, JSON and vcpu-pin.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/cgroup.h"
#include "ctl/topology.h"
#include "ctl/sched_gran.h"
#include "ctl/vcpu_stats.h"
#include "domain/domcfg.h"
#include "domain/spec_json.h"
#include "domain/xlcfg.h"

static void put(const char *dir, const char *file, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void get(const char *dir, const char *file, char *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_non_null(f = fopen(path, "r"));
	buf[fread(buf, 1, len - 1, f)] = 0;
	buf[strcspn(buf, "\n")] = 0; /* the first line: what was written, over what stood there */
	fclose(f);
}

static void test_weight_and_cap_mapping(void **state)
{
	char text[32];

	(void)state;
	assert_int_equal(cgroup_cpu_weight_from_xen(256), 100);
	assert_int_equal(cgroup_cpu_weight_from_xen(512), 200);
	assert_int_equal(cgroup_cpu_weight_from_xen(128), 50);
	assert_int_equal(cgroup_cpu_weight_from_xen(1), 1);         /* 0.4 rounds to 0: clamped */
	assert_int_equal(cgroup_cpu_weight_from_xen(25600), 10000);
	assert_int_equal(cgroup_cpu_weight_from_xen(65535), 10000); /* clamped */
	cgroup_cpu_max_text(0, text, sizeof(text));
	assert_string_equal(text, "max 100000");
	cgroup_cpu_max_text(25, text, sizeof(text));
	assert_string_equal(text, "25000 100000");
	cgroup_cpu_max_text(400, text, sizeof(text));
	assert_string_equal(text, "400000 100000");
}

static void test_set_cpu_in_a_cgroup(void **state)
{
	struct cgroups cg = {.enabled = true};
	char dir[] = "/tmp/domus-cg-XXXXXX", sub[600], text[64], err[256] = "", max[64];
	unsigned w;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(cg.base, sizeof(cg.base), "%s", dir);
	snprintf(sub, sizeof(sub), "%s/dom-3", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* No cpu controller: its files are missing, and the error says so. */
	assert_int_equal(cgroup_set_cpu(&cg, "dom-3", 512, 50, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "has no cpu controller"));
	put(sub, "cpu.weight", "100\n");
	put(sub, "cpu.max", "max 100000\n");
	assert_int_equal(cgroup_set_cpu(&cg, "dom-3", 512, 50, err, sizeof(err)), 0);
	get(sub, "cpu.weight", text, sizeof(text));
	assert_string_equal(text, "200");
	get(sub, "cpu.max", text, sizeof(text));
	assert_string_equal(text, "50000 100000");
	assert_int_equal(cgroup_get_cpu(&cg, "dom-3", &w, max, sizeof(max)), 0);
	assert_int_equal(w, 200);
	assert_string_equal(max, "50000 100000");
	/* Without cgroup v2 at all. */
	cg.enabled = false;
	assert_int_equal(cgroup_set_cpu(&cg, "dom-3", 256, 0, err, sizeof(err)), -ENOTSUP);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_vcpu_stats_from_proc(void **state)
{
	char dir[] = "/tmp/domus-proc-XXXXXX", task[600];
	struct vcpu_stats st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(task, sizeof(task), "%s/42", dir);
	mkdir(task, 0700);
	snprintf(task, sizeof(task), "%s/42/task", dir);
	mkdir(task, 0700);
	snprintf(task, sizeof(task), "%s/42/task/43", dir);
	mkdir(task, 0700);
	assert_int_equal(vcpu_stats_read(dir, 42, 44, &st), -ENOENT);
	/* A name with a space and a parenthesis; processor is field 39. */
	put(task, "stat", "43 (domus (vmm) x) R 1 43 43 0 -1 4194560 10 0 0 0 5 6 0 0 20 0 3 0 100 "
			  "1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
	put(task, "schedstat", "2500000000 750000000 99\n");
	put(task, "status", "Name:\tdomus-vmm\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nvoluntary:\t1\n");
	assert_int_equal(vcpu_stats_read(dir, 42, 43, &st), 0);
	assert_int_equal(st.cpu, 1);
	assert_int_equal(st.state, 'r');
	assert_true(st.time_s > 2.49 && st.time_s < 2.51);
	assert_true(st.steal_s > 0.74 && st.steal_s < 0.76);
	assert_string_equal(st.affinity, "1");
	/* A truncated stat is refused, not read past. */
	put(task, "stat", "43 (domus-vmm) S 1 43\n");
	assert_int_equal(vcpu_stats_read(dir, 42, 43, &st), -EINVAL);
	put(task, "stat", "garbage");
	assert_int_equal(vcpu_stats_read(dir, 42, 43, &st), -EINVAL);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static int spec_from(const char *text, struct domain_spec *spec, char *err, size_t errlen)
{
	struct xl_config xl;
	int ret = xl_parse(text, strlen(text), "t.cfg", &xl, err, errlen);

	if (ret < 0)
		return ret;
	domain_spec_defaults(spec);
	ret = domain_spec_from_xl(&xl, "t.cfg", spec, err, errlen);
	xl_free(&xl);
	return ret;
}

static void test_cpus_list_and_pin(void **state)
{
	struct domain_spec *spec = malloc(sizeof(*spec)), *back = malloc(sizeof(*back));
	char err[256];
	json_t *j;

	(void)state;
	assert_int_equal(spec_from("name='a'\nkernel='/k'\nvcpus=3\ncpus=['0', '2-3']\n", spec, err, sizeof(err)), 0);
	assert_int_equal(spec->nvcpu_cpus, 2);
	assert_string_equal(domain_vcpu_cpus(spec, 0), "0");
	assert_string_equal(domain_vcpu_cpus(spec, 1), "2-3");
	assert_string_equal(domain_vcpu_cpus(spec, 2), ""); /* past the list: anywhere */
	/* Through JSON (the domain record) and back. */
	assert_non_null(j = domain_spec_to_json(spec));
	assert_true(json_is_array(json_object_get(j, "cpus")));
	domain_spec_defaults(back);
	assert_int_equal(domain_spec_from_json(j, "record", back, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(back->nvcpu_cpus, 2);
	assert_string_equal(domain_vcpu_cpus(back, 1), "2-3");
	/* Refusals name what is wrong. */
	assert_int_equal(spec_from("name='a'\nkernel='/k'\nvcpus=1\ncpus=['0', '1']\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpus gives 2 vCPUs affinities; the domain has 1"));
	assert_int_equal(spec_from("name='a'\nkernel='/k'\ncpus=['0-']\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpus '0-': expected"));
	assert_int_equal(spec_from("name='a'\nkernel='/k'\ncpus=[1]\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpus entries must be strings"));
	/* One mask for all, then one vCPU moved: the list form, the others keep theirs. */
	assert_int_equal(spec_from("name='a'\nkernel='/k'\nvcpus=2\ncpus='0-1'\n", spec, err, sizeof(err)), 0);
	assert_int_equal(spec->nvcpu_cpus, 0);
	assert_int_equal(domain_spec_pin(spec, 1, "1", err, sizeof(err)), 0);
	assert_int_equal(spec->nvcpu_cpus, 2);
	assert_string_equal(domain_vcpu_cpus(spec, 0), "0-1");
	assert_string_equal(domain_vcpu_cpus(spec, 1), "1");
	assert_int_equal(domain_spec_pin(spec, -1, "all", err, sizeof(err)), 0);
	assert_int_equal(spec->nvcpu_cpus, 0);
	assert_string_equal(domain_vcpu_cpus(spec, 1), "");
	assert_int_equal(domain_spec_pin(spec, 2, "0", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vCPU 2: the domain has vCPUs 0-1"));
	assert_int_equal(domain_spec_pin(spec, 0, "x", err, sizeof(err)), -EINVAL);
	free(spec);
	free(back);
}

/*
 * cpu_dedicated = 1: each vCPU pinned to a CPU of its own, in either form
 * of cpus; through JSON and back; and vcpu-pin keeping it so.
 */
#define DOM "name='a'\nkernel='/k'\n"
/* pv_mp: offered by default, hidden with 0, kept through JSON only when 0. */
static void test_pv_mp(void **state)
{
	struct domain_spec *spec = malloc(sizeof(*spec)), *back = malloc(sizeof(*back));
	char err[256];
	json_t *j;

	(void)state;
	assert_int_equal(spec_from(DOM "vcpus=2\n", spec, err, sizeof(err)), 0);
	assert_true(spec->pv_mp);
	assert_false(spec->vm.pv_mp_hidden);
	assert_non_null(j = domain_spec_to_json(spec));
	assert_null(json_object_get(j, "pv_mp"));
	json_decref(j);
	assert_int_equal(spec_from(DOM "vcpus=2\npv_mp=0\n", spec, err, sizeof(err)), 0);
	assert_true(spec->vm.pv_mp_hidden);
	assert_non_null(j = domain_spec_to_json(spec));
	assert_int_equal(domain_spec_from_json(j, "record", back, err, sizeof(err)), 0);
	json_decref(j);
	assert_false(back->pv_mp);
	assert_true(back->vm.pv_mp_hidden);
	assert_int_equal(spec_from(DOM "pv_mp=2\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "pv_mp 2 is out of range (0 to 1)"));
	free(spec);
	free(back);
}

static void test_cpu_dedicated(void **state)
{
	struct domain_spec *spec = malloc(sizeof(*spec)), *back = malloc(sizeof(*back));
	struct domain_spec *other = malloc(sizeof(*other));
	char err[256];
	json_t *j;

	(void)state;
	assert_int_equal(spec_from(DOM "vcpus=2\ncpus=['2', '3']\ncpu_dedicated=1\n", spec, err, sizeof(err)), 0);
	assert_true(spec->cpu_dedicated);
	assert_true(spec->vm.cpu_dedicated);
	assert_int_equal(spec_from(DOM "cpus='3'\ncpu_dedicated=1\n", spec, err, sizeof(err)), 0);
	assert_true(spec->vm.cpu_dedicated);
	/* Through JSON (the domain record) and back; a domain that does not say has no key. */
	assert_non_null(j = domain_spec_to_json(spec));
	assert_int_equal(json_integer_value(json_object_get(j, "cpu_dedicated")), 1);
	assert_int_equal(domain_spec_from_json(j, "record", back, err, sizeof(err)), 0);
	json_decref(j);
	assert_true(back->cpu_dedicated);
	assert_true(back->vm.cpu_dedicated);
	assert_string_equal(domain_vcpu_cpus(back, 0), "3");
	assert_int_equal(spec_from(DOM "cpus='3'\ncpu_dedicated=0\n", spec, err, sizeof(err)), 0);
	assert_false(spec->vm.cpu_dedicated);
	assert_non_null(j = domain_spec_to_json(spec));
	assert_null(json_object_get(j, "cpu_dedicated"));
	json_decref(j);
	/* Refused, naming what is wrong: no pins, one CPU for two vCPUs, a range, a CPU twice. */
	assert_int_equal(spec_from(DOM "vcpus=2\ncpu_dedicated=1\n", spec, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.cfg:4: cpu_dedicated = 1 needs each vCPU pinned to a CPU of its own "
				 "(cpus = [\"2\", \"3\"] for 2 vCPUs): vCPU 0 has cpus 'all', not one CPU");
	assert_int_equal(spec_from(DOM "vcpus=2\ncpus='3'\ncpu_dedicated=1\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vCPUs 0 and 1 are both on CPU 3"));
	assert_int_equal(spec_from(DOM "cpus='0-1'\ncpu_dedicated=1\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "(cpus = \"2\" for 1 vCPU): vCPU 0 has cpus '0-1', not one CPU"));
	assert_int_equal(spec_from(DOM "vcpus=3\ncpus=['2', '4', '2']\ncpu_dedicated=1\n", spec, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "(cpus = [\"2\", \"3\", ..., \"4\"] for 3 vCPUs): vCPUs 0 and 2 are both on CPU 2"));
	/* maxvcpus counts: a vCPU brought online later needs its CPU too. */
	assert_int_equal(spec_from(DOM "maxvcpus=2\ncpus=['2']\ncpu_dedicated=1\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vCPU 1 has cpus 'all', not one CPU"));
	assert_int_equal(spec_from(DOM "cpus='3'\ncpu_dedicated=2\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpu_dedicated 2 is out of range (0 to 1)"));
	/* vcpu-pin keeps one CPU per vCPU, and a refused pin changes nothing. */
	assert_int_equal(spec_from(DOM "vcpus=2\ncpus=['2', '3']\ncpu_dedicated=1\n", spec, err, sizeof(err)), 0);
	assert_int_equal(domain_spec_pin(spec, 1, "5", err, sizeof(err)), 0);
	assert_string_equal(domain_vcpu_cpus(spec, 1), "5");
	assert_int_equal(domain_spec_pin(spec, 1, "2", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cpu_dedicated = 1 keeps each vCPU on a CPU of its own: "
				 "vCPUs 0 and 1 are both on CPU 2");
	assert_int_equal(domain_spec_pin(spec, 0, "2-3", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vCPU 0 has cpus '2-3', not one CPU"));
	assert_int_equal(domain_spec_pin(spec, -1, "all", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vCPU 0 has cpus 'all', not one CPU"));
	assert_string_equal(domain_vcpu_cpus(spec, 0), "2");
	assert_string_equal(domain_vcpu_cpus(spec, 1), "5");
	/* Two dedicated domains overlap where they share a CPU; a shared domain overlaps nothing. */
	assert_int_equal(spec_from(DOM "cpus='5'\ncpu_dedicated=1\n", other, err, sizeof(err)), 0);
	assert_int_equal(domain_spec_dedicated_overlap(spec, other), 5);
	assert_int_equal(domain_spec_pin(other, 0, "4", err, sizeof(err)), 0);
	assert_int_equal(domain_spec_dedicated_overlap(spec, other), -1);
	assert_int_equal(spec_from(DOM "cpus='2'\n", other, err, sizeof(err)), 0);
	assert_int_equal(domain_spec_dedicated_overlap(spec, other), -1);
	free(spec);
	free(back);
	free(other);
}
#undef DOM

/* A sysfs cpu directory: online CPUs, and each CPU's siblings ("" for none written). */
static void fake_cpus(const char *dir, const char *online, const char *const *siblings, unsigned n)
{
	char path[600];

	put(dir, "online", online);
	for (unsigned i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/cpu%u", dir, i);
		mkdir(path, 0700);
		snprintf(path, sizeof(path), "%s/cpu%u/topology", dir, i);
		mkdir(path, 0700);
		if (*siblings[i])
			put(path, "thread_siblings_list", siblings[i]);
	}
}

static void test_topology(void **state)
{
	char dir[] = "/tmp/domus-sys-XXXXXX", err[256], cmd[700];
	struct host_topology *t = malloc(sizeof(*t));
	unsigned load[TOPOLOGY_MAX_CORES] = {0};
	cpu_set_t set;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* Two cores, two hyperthreads each, numbered as x86 hosts do: 0 and 2 are siblings. */
	fake_cpus(dir, "0-3\n", (const char *const[]){"0,2\n", "1,3\n", "0,2\n", "1,3\n"}, 4);
	assert_int_equal(topology_read(dir, t, err, sizeof(err)), 0);
	assert_int_equal(t->ncpus, 4);
	assert_int_equal(t->ncores, 2);
	assert_true(t->smt);
	assert_int_equal(t->threads_per_core, 2);
	/* A 2-vCPU domain gets a core of its own, the next the other one, the third shares. */
	assert_int_equal(topology_place(t, load, 2, &set), 0);
	assert_true(CPU_ISSET(0, &set) && CPU_ISSET(2, &set) && CPU_COUNT(&set) == 2);
	assert_int_equal(topology_place(t, load, 1, &set), 0);
	assert_true(CPU_ISSET(1, &set) && CPU_ISSET(3, &set) && CPU_COUNT(&set) == 2);
	assert_int_equal(topology_place(t, load, 1, &set), 1);
	/* One that goes frees its core for the next. */
	topology_unplace(t, load, &set);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	topology_unplace(t, load, &set);
	assert_int_equal(topology_place(t, load, 2, &set), 0);
	assert_true(CPU_ISSET(0, &set));
	/* More vCPUs than CPUs: every core. */
	memset(load, 0, sizeof(load));
	assert_int_equal(topology_place(t, load, 8, &set), 0);
	assert_int_equal(CPU_COUNT(&set), 4);

	/* No SMT; one CPU offline, its sibling's list still naming it. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s/*", dir);
	assert_int_equal(system(cmd), 0);
	fake_cpus(dir, "0-1,3\n", (const char *const[]){"0\n", "1-2\n", "", "3\n"}, 4);
	assert_int_equal(topology_read(dir, t, err, sizeof(err)), 0);
	assert_int_equal(t->ncpus, 3);
	assert_int_equal(t->ncores, 3);
	assert_false(t->smt);
	memset(load, 0, sizeof(load));
	assert_int_equal(topology_place(t, load, 2, &set), 0);
	assert_false(CPU_ISSET(2, &set)); /* offline */

	/* A sysfs that lies is refused, naming the file. */
	put(dir, "cpu3/topology/thread_siblings_list", "1\n");
	assert_int_equal(topology_read(dir, t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpu3/topology/thread_siblings_list"));
	put(dir, "online", "x\n");
	assert_int_equal(topology_read(dir, t, err, sizeof(err)), -EINVAL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(t);
}

static void test_sched_gran(void **state)
{
	char dir[] = "/tmp/domus-gran-XXXXXX", cpus[600], err[256], text[64], cmd[700];
	struct cgroups cg = {.enabled = true};
	struct sched_gran g;
	const unsigned others[] = {1};
	bool core;

	(void)state;
	assert_int_equal(sched_gran_parse("core", &core), 0);
	assert_true(core);
	assert_int_equal(sched_gran_parse("cpu", &core), 0);
	assert_false(core);
	assert_int_equal(sched_gran_parse("socket", &core), -EINVAL);
	assert_non_null(mkdtemp(dir));
	snprintf(cpus, sizeof(cpus), "%s/cpu", dir);
	mkdir(cpus, 0700);
	fake_cpus(cpus, "0-3\n", (const char *const[]){"0,2\n", "1,3\n", "0,2\n", "1,3\n"}, 4);
	/* Hyperthreads: the kernel's core scheduling where it has it, else cpusets. */
	assert_int_equal(sched_gran_init(&g, true, cpus, true), 0);
	assert_int_equal(g.method, SCHED_GRAN_COOKIE);
	assert_non_null(strstr(g.why, "a core-scheduling cookie per domain"));
	assert_int_equal(sched_gran_init(&g, false, cpus, true), 0);
	assert_int_equal(g.method, SCHED_GRAN_NOTHING);
	assert_int_equal(sched_gran_init(&g, true, cpus, false), 0);
	assert_int_equal(g.method, SCHED_GRAN_CPUSET);
	/* Domain 1 holds core 1 (CPUs 1 and 3): domain 2 gets core 0 to itself. */
	snprintf(cg.base, sizeof(cg.base), "%s", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/dom-1 %s/dom-2", dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cpus, sizeof(cpus), "%s/dom-1", dir);
	put(cpus, "cpuset.cpus", "1,3\n");
	snprintf(cpus, sizeof(cpus), "%s/dom-2", dir);
	put(cpus, "cpuset.cpus", "");
	assert_int_equal(sched_gran_place(&g, &cg, 2, 2, others, 1, err, sizeof(err)), 0);
	get(cpus, "cpuset.cpus", text, sizeof(text));
	assert_string_equal(text, "0,2");
	free(g.topology);
	/* No hyperthreads: nothing to keep apart, and nothing placed. */
	snprintf(cpus, sizeof(cpus), "%s/cpu", dir);
	fake_cpus(cpus, "0-1\n", (const char *const[]){"0\n", "1\n"}, 2);
	assert_int_equal(sched_gran_init(&g, true, cpus, true), 0);
	assert_int_equal(g.method, SCHED_GRAN_NOTHING);
	assert_non_null(strstr(g.why, "no hyperthreads here (2 CPUs"));
	assert_int_equal(sched_gran_place(&g, &cg, 2, 2, others, 1, err, sizeof(err)), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weight_and_cap_mapping),
		cmocka_unit_test(test_set_cpu_in_a_cgroup),
		cmocka_unit_test(test_vcpu_stats_from_proc),
		cmocka_unit_test(test_cpus_list_and_pin),
		cmocka_unit_test(test_cpu_dedicated),
		cmocka_unit_test(test_pv_mp),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_sched_gran),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
