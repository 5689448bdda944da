/*
 * A domain's configuration as JSON: what domain_spec_to_json writes,
 * domain_spec_from_json reads back into the same domain (domusd hands
 * domus-vmm its config, and re-adopts domains, this way); bad values are
 * refused with a message naming the key. And xl's CPU lists.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/domcfg.h"
#include "domain/spec_json.h"

static char err[1024];

/* Parses JSON text into spec; the JSON must be well formed. */
static int from_text(const char *text, struct domain_spec *spec)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	int ret;

	if (!j)
		fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
	err[0] = 0;
	ret = domain_spec_from_json(j, "cfg.json", spec, err, sizeof(err));
	json_decref(j);
	return ret;
}

/* spec to JSON and back into out; both must succeed. */
static void round_trip(const struct domain_spec *spec, struct domain_spec *out)
{
	json_t *j = domain_spec_to_json(spec);
	int ret;

	assert_non_null(j);
	err[0] = 0;
	ret = domain_spec_from_json(j, "round-trip", out, err, sizeof(err));
	if (ret)
		fail_msg("round trip failed (%d): %s", ret, err);
	json_decref(j);
}

static void assert_same_spec(const struct domain_spec *a, const struct domain_spec *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->uuid, b->uuid);
	assert_string_equal(a->kernel, b->kernel);
	assert_string_equal(a->ramdisk, b->ramdisk);
	assert_string_equal(a->vm.kernel, b->vm.kernel);
	if (a->vm.initrd || b->vm.initrd) {
		assert_non_null(a->vm.initrd);
		assert_non_null(b->vm.initrd);
		assert_string_equal(a->vm.initrd, b->vm.initrd);
	}
	assert_string_equal(a->vm.cmdline, b->vm.cmdline);
	assert_int_equal(a->vm.memory_mib, b->vm.memory_mib);
	assert_int_equal(a->vm.maxmem_mib, b->vm.maxmem_mib);
	assert_int_equal(a->vm.vcpus, b->vm.vcpus);
	assert_int_equal(a->maxvcpus, b->maxvcpus);
	assert_int_equal(a->on_poweroff, b->on_poweroff);
	assert_int_equal(a->on_reboot, b->on_reboot);
	assert_int_equal(a->on_crash, b->on_crash);
	assert_int_equal(a->vm.on_reboot, b->vm.on_reboot);
	assert_int_equal(a->cpu_weight, b->cpu_weight);
	assert_int_equal(a->cap, b->cap);
	assert_int_equal(a->vm.ndisks, b->vm.ndisks);
	for (unsigned i = 0; i < a->vm.ndisks; i++) {
		assert_string_equal(a->vm.disks[i].path, b->vm.disks[i].path);
		assert_int_equal(a->vm.disks[i].readonly, b->vm.disks[i].readonly);
	}
	assert_int_equal(a->vm.npmems, b->vm.npmems);
	for (unsigned i = 0; i < a->vm.npmems; i++) {
		assert_string_equal(a->vm.pmems[i].path, b->vm.pmems[i].path);
		assert_int_equal(a->vm.pmems[i].readonly, b->vm.pmems[i].readonly);
	}
	assert_int_equal(a->nvifs, b->nvifs);
	for (unsigned i = 0; i < a->nvifs; i++) {
		assert_string_equal(a->vifs[i].mac, b->vifs[i].mac);
		assert_string_equal(a->vifs[i].bridge, b->vifs[i].bridge);
		assert_string_equal(a->vifs[i].ip, b->vifs[i].ip);
	}
	/* cpus: "" and "all" are the same (any CPU); otherwise the same text. */
	if (a->cpus[0] && strcmp(a->cpus, "all"))
		assert_string_equal(a->cpus, b->cpus);
	else
		assert_true(!b->cpus[0] || !strcmp(b->cpus, "all"));
}

/* Writing the spec read back gives the same JSON again. */
static void assert_fixpoint(const struct domain_spec *a, const struct domain_spec *b)
{
	json_t *ja = domain_spec_to_json(a), *jb = domain_spec_to_json(b);

	assert_non_null(ja);
	assert_non_null(jb);
	if (!json_equal(ja, jb)) {
		char *ta = json_dumps(ja, JSON_SORT_KEYS), *tb = json_dumps(jb, JSON_SORT_KEYS);
		fprintf(stderr, "first:  %s\nsecond: %s\n", ta, tb);
		free(ta);
		free(tb);
		fail_msg("the JSON of the spec read back differs");
	}
	json_decref(ja);
	json_decref(jb);
}

static void test_round_trip_full(void **state)
{
	static struct domain_spec a, b;

	assert_int_equal(
		from_text("{\"name\": \"web-1.example\","
			  " \"uuid\": \"6c1a2b3c-0000-4000-8000-000000000001\","
			  " \"kernel\": \"/boot/vmlinuz\", \"ramdisk\": \"/boot/initrd.img\","
			  " \"cmdline\": \"root=/dev/vda ro quiet console=ttyS0\","
			  " \"memory\": 768, \"maxmem\": 2048, \"vcpus\": 3, \"maxvcpus\": 4,"
			  " \"disk\": [\"format=raw, vdev=xvda, access=ro, target=/img/with,comma.img\","
			  "            \"/srv/data.img,raw,xvdb,rw\", \"/srv/r.img,,xvdc,r\"],"
			  " \"vif\": [\"mac=00:16:3e:0a:0b:0c,bridge=br0,ip=10.0.0.2\", \"bridge=lan\", \"\"],"
			  " \"on_poweroff\": \"preserve\", \"on_reboot\": \"destroy\","
			  " \"on_crash\": \"restart\", \"cpus\": \"0-3,5\", \"cpu_weight\": 512,"
			  " \"cap\": 150, \"pmem\": [\"/img/base.ext4\", \"/img/rw.img,rw\"]}",
			  &a),
		0);
	/* What was read is what was written. */
	assert_string_equal(a.name, "web-1.example");
	assert_string_equal(a.vm.cmdline, "root=/dev/vda ro quiet console=ttyS0");
	assert_int_equal(a.vm.memory_mib, 768);
	assert_int_equal(a.vm.maxmem_mib, 2048);
	assert_int_equal(a.vm.vcpus, 3);
	assert_int_equal(a.maxvcpus, 4);
	assert_int_equal(a.vm.ndisks, 3);
	assert_string_equal(a.vm.disks[0].path, "/img/with,comma.img");
	assert_true(a.vm.disks[0].readonly);
	assert_false(a.vm.disks[1].readonly);
	assert_true(a.vm.disks[2].readonly);
	assert_int_equal(a.nvifs, 3);
	assert_string_equal(a.vifs[0].mac, "00:16:3e:0a:0b:0c");
	assert_string_equal(a.vifs[1].bridge, "lan");
	assert_int_equal(a.on_poweroff, ACTION_PRESERVE);
	assert_int_equal(a.on_reboot, ACTION_DESTROY);
	assert_int_equal(a.on_crash, ACTION_RESTART);
	assert_string_equal(a.cpus, "0-3,5");
	assert_int_equal(a.cpu_weight, 512);
	assert_int_equal(a.cap, 150);
	assert_int_equal(a.vm.npmems, 2);
	assert_true(a.vm.pmems[0].readonly);
	assert_false(a.vm.pmems[1].readonly);

	round_trip(&a, &b);
	assert_same_spec(&a, &b);
	assert_fixpoint(&a, &b);
	/* Read back, the spec points at its own buffers. */
	assert_ptr_equal(b.vm.kernel, b.kernel);
	assert_ptr_equal(b.vm.initrd, b.ramdisk);
	assert_ptr_equal(b.vm.cmdline, b.cmdline);
}

static void test_round_trip_from_xl(void **state)
{
	static struct domain_spec a, b;
	struct xl_config xl;
	const char *text = "name = 'db'\nkernel = '/k'\nextra = 'quiet'\nroot = '/dev/vda1'\n"
			   "memory = 300\nvcpus = 2\non_reboot = 'preserve'\n"
			   "disk = [ 'phy:/dev/vg/db,xvda,w', 'target=/a b/c,d=e.img' ]\n";

	assert_int_equal(xl_parse(text, strlen(text), "db.cfg", &xl, err, sizeof(err)), 0);
	assert_int_equal(domain_spec_from_xl(&xl, "db.cfg", &a, err, sizeof(err)), 0);
	xl_free(&xl);
	/* root and extra made the command line; the serial console was added. */
	assert_string_equal(a.vm.cmdline, "root=/dev/vda1 quiet console=ttyS0");
	assert_string_equal(a.vm.disks[0].path, "/dev/vg/db");
	assert_string_equal(a.vm.disks[1].path, "/a b/c,d=e.img");
	round_trip(&a, &b);
	assert_same_spec(&a, &b);
	assert_fixpoint(&a, &b);
}

static void test_round_trip_defaults(void **state)
{
	static struct domain_spec a, b;

	assert_int_equal(from_text("{\"name\": \"min\", \"kernel\": \"/k\"}", &a), 0);
	assert_int_equal(a.vm.memory_mib, 512);
	assert_int_equal(a.vm.maxmem_mib, 512);
	assert_int_equal(a.vm.vcpus, 1);
	assert_int_equal(a.maxvcpus, 1);
	assert_int_equal(a.on_poweroff, ACTION_DESTROY);
	assert_int_equal(a.on_reboot, ACTION_RESTART);
	assert_int_equal(a.on_crash, ACTION_DESTROY);
	assert_int_equal(a.cpu_weight, 256);
	assert_int_equal(a.cap, 0);
	assert_null(a.vm.initrd);
	assert_string_equal(a.vm.cmdline, "console=ttyS0");
	round_trip(&a, &b);
	assert_same_spec(&a, &b);
	assert_fixpoint(&a, &b);
	assert_null(b.vm.initrd);
}

/* As many disks and vifs as a domain may have, values at their longest. */
static void test_round_trip_limits(void **state)
{
	static struct domain_spec a, b;
	json_t *j = json_pack("{s:s,s:s,s:[],s:[]}", "name", "big", "kernel", "/k", "disk", "vif");
	json_t *disks = json_object_get(j, "disk"), *vifs = json_object_get(j, "vif");
	char s[DISK_PATH_MAX];
	char cmdline[2048];
	int ret;

	for (unsigned i = 0; i < VM_MAX_DISKS; i++) {
		snprintf(s, sizeof(s), "/disk/%u, with ,commas,and target=inside.img,%s,xvd%c", i,
			 i % 2 ? "ro" : "rw", 'a' + i);
		/* Positional entries end at the first comma; target= takes the rest. */
		json_array_append_new(disks, json_pack("s+", "target=", s));
	}
	/* The longest path a disk may have, which must survive the trip through JSON. */
	memset(s, 'p', sizeof(s));
	s[0] = '/';
	s[DISK_PATH_MAX - 1] = 0;
	json_array_set_new(disks, 0, json_string(s));
	for (unsigned i = 0; i < DOMAIN_MAX_VIFS; i++) {
		char bridge[64], ip[64];
		memset(bridge, 'b', sizeof(bridge) - 1);
		bridge[sizeof(bridge) - 1] = 0;
		memset(ip, '1', sizeof(ip) - 1);
		ip[sizeof(ip) - 1] = 0;
		snprintf(s, sizeof(s), "mac=00:16:3E:00:00:%02x,bridge=%s,ip=%s", i, bridge, ip);
		json_array_append_new(vifs, json_string(s));
	}
	memset(cmdline, 'c', sizeof(cmdline) - 1);
	cmdline[sizeof(cmdline) - 1] = 0;
	memcpy(cmdline, "console=hvc0 ", 13);
	json_object_set_new(j, "cmdline", json_string(cmdline));
	ret = domain_spec_from_json(j, "big.json", &a, err, sizeof(err));
	json_decref(j);
	if (ret)
		fail_msg("%s", err);
	assert_int_equal(a.vm.ndisks, VM_MAX_DISKS);
	assert_int_equal(strlen(a.vm.disks[0].path), DISK_PATH_MAX - 1);
	assert_string_equal(a.vm.disks[1].path, "/disk/1, with ,commas,and target=inside.img,ro,xvdb");
	assert_false(a.vm.disks[1].readonly); /* all of it is the path */
	assert_int_equal(a.nvifs, DOMAIN_MAX_VIFS);
	assert_int_equal(strlen(a.cmdline), 2047);
	round_trip(&a, &b);
	assert_same_spec(&a, &b);
	assert_fixpoint(&a, &b);
}

/* The message of a refused config; names what and the key. */
static void assert_refused(const char *text, const char *want1, const char *want2)
{
	static struct domain_spec spec;
	int ret = from_text(text, &spec);

	if (ret != -EINVAL)
		fail_msg("accepted (%d): %s", ret, text);
	if (!strstr(err, "cfg.json") || (want1 && !strstr(err, want1)) || (want2 && !strstr(err, want2)))
		fail_msg("message '%s' lacks '%s' / '%s' for %s", err, want1 ? want1 : "",
			 want2 ? want2 : "", text);
}

static void test_bad_values(void **state)
{
	/* Values JSON has and xl.cfg does not. */
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":-5}", "'memory'", "non-negative");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":1.5}", "'memory'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":true}", "'memory'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":null}", "'memory'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":{\"mib\":5}}", "'memory'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"disk\":[[\"/a\"]]}", "'disk'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"disk\":[\"/a\",{}]}", "'disk'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"vif\":[-1]}", "'vif'", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"cmdline\":\"a\\u0000b\"}", NULL, NULL);
	/* Values of the wrong kind for the key. */
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":\"512\"}", "'memory'", "number");
	assert_refused("{\"name\":\"x\",\"kernel\":7}", "'kernel'", "string");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"disk\":\"/a.img\"}", "'disk'", "list");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"disk\":[5]}", "disk", "strings");
	/* Values out of range or malformed. */
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":0}", "memory", "out of range");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"vcpus\":100000}", "vcpus", "out of range");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"on_crash\":\"explode\"}", "on_crash",
		       "explode");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"cpus\":\"3-1\"}", "cpus", "3-1");
	assert_refused("{\"name\":\"x y\",\"kernel\":\"/k\"}", "name", NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"memory\":512,\"maxmem\":256}", "maxmem",
		       NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"disk\":[\"/a,vhd,xvda,rw\"]}", "vhd",
		       NULL);
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"vif\":[\"mac=zz\"]}", "mac", NULL);
	/* Keys domus does not know are named, with their place in the object. */
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"vnc\":1}", "cfg.json:3:", "'vnc'");
	assert_refused("{\"name\":\"x\",\"kernel\":\"/k\",\"\":1}", "unknown setting ''", NULL);
	/* What every domain needs. */
	assert_refused("{\"name\":\"x\"}", "kernel", NULL);
	assert_refused("{\"kernel\":\"/k\"}", "name", NULL);
	assert_refused("{}", "kernel", NULL);
}

static void test_not_an_object(void **state)
{
	static const char *texts[] = {"[]", "[{\"name\":\"x\",\"kernel\":\"/k\"}]", "\"x\"", "5", "null",
				      "true"};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		static struct domain_spec spec;
		json_t *j = json_loads(texts[i], JSON_DECODE_ANY, NULL);

		assert_non_null(j);
		err[0] = 0;
		assert_int_equal(domain_spec_from_json(j, "cfg.json", &spec, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "cfg.json"));
		assert_non_null(strstr(err, "object"));
		json_decref(j);
	}
	{
		static struct domain_spec spec;
		assert_int_equal(domain_spec_from_json(NULL, "cfg.json", &spec, err, sizeof(err)), -EINVAL);
	}
}

static void test_too_much(void **state)
{
	static struct domain_spec spec;
	json_t *j = json_pack("{s:s,s:s}", "name", "x", "kernel", "/k");
	json_t *list = json_array();
	char *s = malloc(XL_MAX_STRING + 1);
	int ret;

	/* More list items than xl.cfg allows. */
	for (int i = 0; i <= XL_MAX_LIST; i++)
		json_array_append_new(list, json_string("/a.img"));
	json_object_set_new(j, "disk", list);
	ret = domain_spec_from_json(j, "cfg.json", &spec, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "'disk'"));
	assert_non_null(strstr(err, "too many"));
	/* More disks than a VM has. */
	json_object_set_new(j, "disk", json_pack("[sssssssssssssssss]", "/a", "/a", "/a", "/a", "/a",
						 "/a", "/a", "/a", "/a", "/a", "/a", "/a", "/a", "/a",
						 "/a", "/a", "/a"));
	assert_int_equal(domain_spec_from_json(j, "cfg.json", &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "disks"));
	json_object_del(j, "disk");

	/* A string longer than xl.cfg allows. */
	assert_non_null(s);
	memset(s, 'k', XL_MAX_STRING);
	s[0] = '/';
	s[XL_MAX_STRING] = 0;
	json_object_set_new(j, "kernel", json_string(s));
	assert_int_equal(domain_spec_from_json(j, "cfg.json", &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'kernel'"));
	free(s);

	/* More settings than xl.cfg allows. */
	json_object_set_new(j, "kernel", json_string("/k"));
	for (int i = 0; i <= XL_MAX_SETTINGS; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		json_object_set_new(j, key, json_integer(i));
	}
	assert_int_equal(domain_spec_from_json(j, "cfg.json", &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "settings"));
	json_decref(j);
}

static void assert_cpus(const cpu_set_t *set, const unsigned *want, size_t n)
{
	for (unsigned c = 0; c < CPU_SETSIZE; c++) {
		bool in = false;
		for (size_t i = 0; i < n; i++)
			in |= want[i] == c;
		if (!!CPU_ISSET(c, set) != in)
			fail_msg("CPU %u is %s the set", c, in ? "missing from" : "wrongly in");
	}
}

static void test_cpulist(void **state)
{
	cpu_set_t set;
	unsigned hi;

	assert_int_equal(cpulist_parse("0-3,5", &set, &hi), 1);
	assert_cpus(&set, (const unsigned[]){0, 1, 2, 3, 5}, 5);
	assert_int_equal(hi, 5);
	assert_int_equal(cpulist_parse("7", &set, &hi), 1);
	assert_cpus(&set, (const unsigned[]){7}, 1);
	assert_int_equal(hi, 7);
	assert_int_equal(cpulist_parse("5,1-2,5", &set, &hi), 1);
	assert_cpus(&set, (const unsigned[]){1, 2, 5}, 3);
	assert_int_equal(hi, 5);
	assert_int_equal(cpulist_parse("4-4", &set, &hi), 1);
	assert_cpus(&set, (const unsigned[]){4}, 1);
	assert_int_equal(cpulist_parse("0-1023", &set, &hi), 1);
	assert_int_equal(CPU_COUNT(&set), CPU_SETSIZE);
	assert_int_equal(hi, CPU_SETSIZE - 1);

	/* Any CPU: nothing in the set. */
	assert_int_equal(cpulist_parse("all", &set, &hi), 0);
	assert_int_equal(CPU_COUNT(&set), 0);
	assert_int_equal(hi, 0);
	assert_int_equal(cpulist_parse("", &set, &hi), 0);
	assert_int_equal(CPU_COUNT(&set), 0);

	/* Malformed, or beyond what a cpu_set_t holds. */
	static const char *bad[] = {"3-1", "x", "-1", "1-", "1--2", "1,,2", ",1", "1 2", " 1",
				    "1-x", "0x1", "All", "1024", "0-1024", "99999999999999999999",
				    "18446744073709551617-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cpulist_parse(bad[i], &set, &hi) != -EINVAL)
			fail_msg("cpus '%s' accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_full),
		cmocka_unit_test(test_round_trip_from_xl),
		cmocka_unit_test(test_round_trip_defaults),
		cmocka_unit_test(test_round_trip_limits),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_too_much),
		cmocka_unit_test(test_cpulist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
