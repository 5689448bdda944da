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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weight_and_cap_mapping),
		cmocka_unit_test(test_set_cpu_in_a_cgroup),
		cmocka_unit_test(test_vcpu_stats_from_proc),
		cmocka_unit_test(test_cpus_list_and_pin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
