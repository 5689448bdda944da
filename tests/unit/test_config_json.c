/* `domus run` hands domus-vmm its domain as JSON: what goes in comes out, and a bad field is named. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/config_json.h"

static struct vm_config in, out;
static struct vm_config_strings strings;
static char err[512];

static void full_config(void)
{
	vm_config_defaults(&in);
	in.kernel = "/boot/vmlinuz";
	in.initrd = "/boot/initrd.img";
	in.cmdline = "console=ttyS0 quiet";
	in.memory_mib = 384;
	in.maxmem_mib = 1024;
	in.minmem_mib = 128;
	in.balloon_deflate_on_oom = false;
	in.vcpus = 3;
	in.on_reboot = ON_REBOOT_EXIT;
	in.console = CONSOLE_VIRTIO;
	in.verbose = 1;
	in.ndisks = 2;
	strcpy(in.disks[0].path, "/tmp/domus-blk.x/disk0.sock");
	in.disks[0].vhost_user = true;
	in.disks[0].queues = 4;
	strcpy(in.disks[1].path, "/srv/a,b.img");
	in.disks[1].in_vmm = in.disks[1].readonly = in.disks[1].direct = true;
	in.npmems = 1;
	strcpy(in.pmems[0].path, "/srv/base.img");
	in.pmems[0].readonly = true;
	in.nnics = 2;
	strcpy(in.nics[0].tap, "tap0");
	memcpy(in.nics[0].mac, "\x52\x54\x00\x12\x34\x56", 6);
	strcpy(in.nics[1].socket, "/tmp/domus-net.x/port.sock");
	memcpy(in.nics[1].mac, "\x52\x54\x00\x12\x34\x57", 6);
	in.nshms = 2;
	strcpy(in.shms[0].name, "chan0");
	strcpy(in.shms[0].path, "/run/domusd/shm/chan0.sock");
	in.shms[0].doorbell = true;
	in.shms[0].vectors = 4;
	in.shms[0].size = 4 << 20;
	strcpy(in.shms[1].name, "plain");
	strcpy(in.shms[1].path, "/dev/shm/plain");
	in.shms[1].vectors = 1;
	in.vsock.cid = 4294967294u;
	strcpy(in.vsock.socket, "/run/domus/v.sock");
}

static void test_round_trip(void **state)
{
	json_t *j;

	(void)state;
	full_config();
	j = vm_config_to_json(&in);
	assert_non_null(j);
	assert_int_equal(vm_config_from_json(j, &out, &strings, err, sizeof(err)), 0);
	json_decref(j);
	assert_string_equal(out.kernel, in.kernel);
	assert_string_equal(out.initrd, in.initrd);
	assert_string_equal(out.cmdline, in.cmdline);
	assert_int_equal(out.memory_mib, 384);
	assert_int_equal(out.maxmem_mib, 1024);
	assert_int_equal(out.minmem_mib, 128);
	assert_false(out.balloon_deflate_on_oom);
	assert_int_equal(out.vcpus, 3);
	assert_int_equal(out.on_reboot, ON_REBOOT_EXIT);
	assert_int_equal(out.console, CONSOLE_VIRTIO);
	assert_int_equal(out.ndisks, 2);
	assert_memory_equal(&out.disks[0], &in.disks[0], sizeof(in.disks[0]));
	assert_memory_equal(&out.disks[1], &in.disks[1], sizeof(in.disks[1]));
	assert_int_equal(out.npmems, 1);
	assert_memory_equal(&out.pmems[0], &in.pmems[0], sizeof(in.pmems[0]));
	assert_int_equal(out.nnics, 2);
	assert_string_equal(out.nics[0].tap, "tap0");
	assert_memory_equal(out.nics[1].mac, in.nics[1].mac, 6);
	assert_string_equal(out.nics[1].socket, in.nics[1].socket);
	assert_int_equal(out.nshms, 2);
	assert_string_equal(out.shms[0].name, "chan0");
	assert_string_equal(out.shms[0].path, in.shms[0].path);
	assert_int_equal(out.shms[0].size, 4 << 20);
	assert_true(out.shms[0].doorbell);
	assert_int_equal(out.shms[0].vectors, 4);
	assert_string_equal(out.shms[1].path, "/dev/shm/plain");
	assert_false(out.shms[1].doorbell);
	assert_int_equal(out.shms[1].size, 0);
	assert_memory_equal(&out.vsock, &in.vsock, sizeof(in.vsock));
}

/* A configuration from before ivshmem (no "shms") reads as no regions. */
static void test_no_shms(void **state)
{
	json_t *j;

	(void)state;
	full_config();
	in.nshms = 0;
	j = vm_config_to_json(&in);
	assert_null(json_object_get(j, "shms"));
	assert_int_equal(vm_config_from_json(j, &out, &strings, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(out.nshms, 0);
}

static int read_text(const char *text);

/* vsock: round trip of both back-ends, none without it, and what is out of range refused. */
static void test_vsock(void **state)
{
	json_t *j;

	(void)state;
	full_config();
	memset(&in.vsock, 0, sizeof(in.vsock));
	in.vsock.cid = 7;
	in.vsock.vhost = true;
	j = vm_config_to_json(&in);
	assert_int_equal(vm_config_from_json(j, &out, &strings, err, sizeof(err)), 0);
	json_decref(j);
	assert_memory_equal(&out.vsock, &in.vsock, sizeof(in.vsock));
	in.vsock.cid = 0;
	j = vm_config_to_json(&in);
	assert_null(json_object_get(j, "vsock"));
	assert_int_equal(vm_config_from_json(j, &out, &strings, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(out.vsock.cid, 0);
	assert_int_equal(read_text("{\"vsock\": {\"cid\": 2, \"socket\": \"/s\", \"vhost\": false}}"),
			 -EINVAL);
	assert_non_null(strstr(err, "cid 2"));
	assert_int_equal(read_text("{\"vsock\": {\"cid\": 4294967295, \"socket\": \"/s\", "
				   "\"vhost\": false}}"),
			 -EINVAL);
	assert_int_equal(read_text("{\"vsock\": {\"cid\": 5, \"socket\": \"\", \"vhost\": false}}"),
			 -EINVAL);
	assert_non_null(strstr(err, "no back-end"));
	assert_int_equal(read_text("{\"vsock\": {\"cid\": 5, \"socket\": \"/s\", \"vhost\": true}}"),
			 -EINVAL);
	assert_int_equal(read_text("{\"vsock\": \"cid=5\"}"), -EINVAL);
	assert_non_null(strstr(err, "'vsock'"));
}

/* A --net vfr interface is the front's to serve: unserved, it cannot be handed over. */
static void test_unserved_vfr_refused(void **state)
{
	(void)state;
	full_config();
	in.nics[1].socket[0] = 0;
	in.nics[1].vfr = true;
	assert_null(vm_config_to_json(&in));
}

static int read_text(const char *text)
{
	json_error_t jerr;
	json_t *j;
	int ret;

	full_config();
	j = vm_config_to_json(&in);
	json_t *patch = json_loads(text, JSON_ALLOW_NUL, &jerr);
	assert_non_null(patch);
	json_object_update(j, patch);
	json_decref(patch);
	ret = vm_config_from_json(j, &out, &strings, err, sizeof(err));
	json_decref(j);
	return ret;
}

static void test_bad_fields_named(void **state)
{
	(void)state;
	assert_int_equal(read_text("{\"vcpus\": 0}"), -EINVAL);
	assert_non_null(strstr(err, "'vcpus'"));
	assert_int_equal(read_text("{\"vcpus\": 65}"), -EINVAL);
	assert_int_equal(read_text("{\"memory_mib\": -1}"), -EINVAL);
	assert_non_null(strstr(err, "'memory_mib'"));
	assert_int_equal(read_text("{\"kernel\": 7}"), -EINVAL);
	assert_non_null(strstr(err, "'kernel'"));
	assert_int_equal(read_text("{\"on_reboot\": \"maybe\"}"), -EINVAL);
	assert_non_null(strstr(err, "'on_reboot'"));
	assert_int_equal(read_text("{\"nics\": [{\"mac\": \"zz\", \"socket\": \"/s\", \"tap\": \"\"}]}"),
			 -EINVAL);
	assert_non_null(strstr(err, "'mac'"));
	assert_int_equal(read_text("{\"nics\": [{\"mac\": \"52:54:00:12:34:56\", \"socket\": \"/s\", "
				   "\"tap\": \"tap0\"}]}"),
			 -EINVAL);
	assert_int_equal(read_text("{\"disks\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, "
				   "16, 17]}"),
			 -EINVAL);
	assert_non_null(strstr(err, "'disks'"));
	assert_int_equal(read_text("{\"disks\": [{\"path\": \"/x\"}]}"), -EINVAL);
	/* A disk's queue count past the cap, or negative. */
	assert_int_equal(read_text("{\"disks\": [{\"path\": \"/x\", \"readonly\": false, \"vhost_user\": true, "
				   "\"in_vmm\": false, \"qcow2\": false, \"direct\": false, "
				   "\"writethrough\": false, \"queues\": 17}]}"), -EINVAL);
	assert_non_null(strstr(err, "'queues'"));
	assert_int_equal(read_text("{\"disks\": [{\"path\": \"/x\", \"readonly\": false, \"vhost_user\": true, "
				   "\"in_vmm\": false, \"qcow2\": false, \"direct\": false, "
				   "\"writethrough\": false, \"queues\": -1}]}"), -EINVAL);
	assert_int_equal(read_text("{\"cmdline\": \"a\\u0000b\"}"), -EINVAL);
	assert_int_equal(read_text("{\"shms\": 3}"), -EINVAL);
	assert_non_null(strstr(err, "'shms'"));
	assert_int_equal(read_text("{\"shms\": [1, 2, 3, 4, 5]}"), -EINVAL);
	assert_non_null(strstr(err, "'shms'"));
	assert_int_equal(read_text("{\"shms\": [\"x\"]}"), -EINVAL);
	assert_non_null(strstr(err, "'shms'"));
	assert_int_equal(read_text("{\"shms\": [{\"name\": \"a\", \"path\": \"/p\", \"size\": -1, "
				   "\"doorbell\": false, \"vectors\": 1}]}"),
			 -EINVAL);
	assert_non_null(strstr(err, "'size'"));
	assert_int_equal(read_text("{\"shms\": [{\"name\": \"a\", \"path\": \"/p\", \"size\": 0, "
				   "\"doorbell\": true, \"vectors\": 65}]}"),
			 -EINVAL);
	assert_non_null(strstr(err, "'vectors'"));
	assert_int_equal(read_text("{\"shms\": [{\"name\": \"a\", \"path\": \"/p\", \"size\": 0, "
				   "\"doorbell\": true, \"vectors\": 0}]}"),
			 -EINVAL);
	assert_int_equal(read_text("{\"shms\": [{\"name\": \"a\", \"path\": \"\", \"size\": 0, "
				   "\"doorbell\": false, \"vectors\": 1}]}"),
			 -EINVAL);
	assert_int_equal(read_text("{\"shms\": [{\"name\": \"a\", \"path\": \"/p\", \"size\": 0, "
				   "\"doorbell\": \"yes\", \"vectors\": 1}]}"),
			 -EINVAL);
	assert_non_null(strstr(err, "'doorbell'"));
	json_t *list = json_array();
	assert_int_equal(vm_config_from_json(list, &out, &strings, err, sizeof(err)), -EINVAL);
	json_decref(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_no_shms),
	    cmocka_unit_test(test_unserved_vfr_refused),
	    cmocka_unit_test(test_bad_fields_named),
	    cmocka_unit_test(test_vsock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
