/* xl.cfg: the syntax, its errors (file, line, column, what was expected), and the domain keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "domain/domcfg.h"
#include "domain/xlcfg.h"
#include "domain/spec_json.h"

#include <stdlib.h>

static char err[512];

static int parse(const char *text, struct xl_config *xl)
{
	err[0] = 0;
	return xl_parse(text, strlen(text), "t.cfg", xl, err, sizeof(err));
}

static void test_syntax(void **state)
{
	struct xl_config xl;
	const struct xl_setting *s;
	const char *text = "# a comment\n"
			   "name = \"dom\\\"1\"   # trailing comment\n"
			   "kernel='/boot/vmlinuz'; memory=0x200\n"
			   "disk = [ 'a.img,raw,xvda,rw',\n"
			   "   # a comment inside a list\n"
			   "   \"b.img\", ]\n"
			   "vif=[]\n";

	assert_int_equal(parse(text, &xl), 0);
	assert_int_equal(xl.n, 5);
	s = xl_get(&xl, "name");
	assert_int_equal(s->value.type, XL_STRING);
	assert_string_equal(s->value.str, "dom\"1");
	assert_int_equal(s->line, 2);
	assert_string_equal(xl_get(&xl, "kernel")->value.str, "/boot/vmlinuz");
	assert_int_equal(xl_get(&xl, "memory")->value.num, 512);
	s = xl_get(&xl, "disk");
	assert_int_equal(s->value.type, XL_LIST);
	assert_int_equal(s->value.nitems, 2);
	assert_string_equal(s->value.items[1].str, "b.img");
	assert_int_equal(s->value.items[1].line, 6);
	assert_int_equal(xl_get(&xl, "vif")->value.nitems, 0);
	assert_null(xl_get(&xl, "nosuch"));
	xl_free(&xl);
}

static void expect_syntax_error(const char *text, const char *where, const char *what)
{
	struct xl_config xl;

	assert_int_equal(parse(text, &xl), -EINVAL);
	assert_non_null(strstr(err, where));
	assert_non_null(strstr(err, what));
	assert_int_equal(xl.n, 0);
}

static void test_syntax_errors(void **state)
{
	expect_syntax_error("name \"x\"\n", "t.cfg:1:6:", "expected '='");
	expect_syntax_error("a = 1\nname = \"x\n", "t.cfg:2:8:", "unterminated string");
	expect_syntax_error("disk = [ 'a' 'b' ]\n", "t.cfg:1:14:", "expected ',' or ']'");
	expect_syntax_error("disk = [ 'a',\n", "t.cfg:2:1:", "found end of file");
	expect_syntax_error("x = [ [ 1 ] ]\n", "t.cfg:1:7:", "nested");
	expect_syntax_error("memory = 12ab\n", "t.cfg:1:", "in number");
	expect_syntax_error("memory = 99999999999999999999999\n", "t.cfg:1:10:", "too large");
	expect_syntax_error("a = 1\na = 2\n", "t.cfg:2:1:", "set twice (first on line 1)");
	expect_syntax_error("a = 1 b = 2\n", "t.cfg:1:7:", "expected end of line");
	expect_syntax_error("a = \"\\q\"\n", "t.cfg:1:", "unknown escape");
	expect_syntax_error("a = \n", "t.cfg:1:5:", "expected a value");
	expect_syntax_error("= 3\n", "t.cfg:1:1:", "expected a setting name");
	expect_syntax_error("a = yes\n", "t.cfg:1:5:", "found 'y'");
}

static void test_embedded_nul(void **state)
{
	struct xl_config xl;
	const char text[] = "a = \"x\0y\"\n";

	assert_int_equal(xl_parse(text, sizeof(text) - 1, "t.cfg", &xl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
}

static int spec_from(const char *text, struct domain_spec *spec)
{
	struct xl_config xl;
	int ret;

	ret = parse(text, &xl);
	if (ret < 0)
		return ret;
	ret = domain_spec_from_xl(&xl, "t.cfg", spec, err, sizeof(err));
	xl_free(&xl);
	return ret;
}

/* Xen's example PV Linux guest (tools/examples/xlexample.pvlinux), as its documentation gives it. */
static const char xen_pvlinux[] =
	"# =====================================================================\n"
	"# Example PV Linux guest configuration\n"
	"# =====================================================================\n"
	"#\n"
	"# This is a fairly minimal example of what is required for a\n"
	"# Paravirtualised Linux guest. For a more complete guide see xl.cfg(5)\n"
	"\n"
	"# Guest name\n"
	"name = \"example.pvlinux\"\n"
	"\n"
	"# 128-bit UUID for the domain as a hexadecimal number.\n"
	"# Use \"uuidgen\" to generate one if required.\n"
	"# The default behavior is to generate a new UUID each time the guest is started.\n"
	"#uuid = \"XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX\"\n"
	"\n"
	"# Kernel image to boot\n"
	"kernel = \"/boot/vmlinuz\"\n"
	"\n"
	"# Ramdisk (optional)\n"
	"#ramdisk = \"/boot/initrd.gz\"\n"
	"\n"
	"# Kernel command line options\n"
	"extra = \"root=/dev/xvda1\"\n"
	"\n"
	"# Initial memory allocation (MB)\n"
	"memory = 128\n"
	"\n"
	"# Maximum memory (MB)\n"
	"# If this is greater than `memory' then the slack will start ballooned\n"
	"# (this assumes guest kernel support for ballooning)\n"
	"#maxmem = 512\n"
	"\n"
	"# Number of VCPUS\n"
	"vcpus = 2\n"
	"\n"
	"# Network devices\n"
	"# A list of 'vifspec' entries as described in\n"
	"# docs/misc/xl-network-configuration.markdown\n"
	"vif = [ '' ]\n"
	"\n"
	"# Disk Devices\n"
	"# A list of `diskspec' entries as described in\n"
	"# docs/misc/xl-disk-configuration.txt\n"
	"disk = [ '/dev/vg/guest-volume,raw,xvda,rw' ]\n";

static void test_xen_example(void **state)
{
	static struct domain_spec spec;

	assert_int_equal(spec_from(xen_pvlinux, &spec), 0);
	assert_string_equal(spec.name, "example.pvlinux");
	assert_string_equal(spec.vm.kernel, "/boot/vmlinuz");
	assert_null(spec.vm.initrd);
	assert_string_equal(spec.vm.cmdline, "root=/dev/xvda1 console=ttyS0");
	assert_int_equal(spec.vm.memory_mib, 128);
	assert_int_equal(spec.vm.maxmem_mib, 128);
	assert_int_equal(spec.vm.vcpus, 2);
	assert_int_equal(spec.nvifs, 1);
	assert_int_equal(spec.vm.ndisks, 1);
	assert_string_equal(spec.vm.disks[0].path, "/dev/vg/guest-volume");
	assert_false(spec.vm.disks[0].readonly);
	assert_int_equal(spec.on_reboot, ACTION_RESTART);
}

static void test_all_keys(void **state)
{
	static struct domain_spec spec;
	const char *text = "name='d1'\nuuid='6c1a2b3c-0000-4000-8000-000000000001'\ntype='pvh'\n"
			   "kernel='k'\nramdisk='r'\nroot='/dev/vda'\nextra='quiet'\nmemory=256\n"
			   "maxmem=1024\nvcpus=2\nmaxvcpus=4\non_poweroff='destroy'\n"
			   "on_reboot='destroy'\non_crash='preserve'\ncpus='0-1,3'\ncpu_weight=512\n"
			   "cap=50\nvif=['mac=00:16:3e:01:02:03,bridge=net0,ip=10.0.0.2']\n"
			   "disk=['format=raw, vdev=xvdb, access=ro, target=/img/with,comma.img',"
			   "'phy:/dev/sdb,xvdc,r']\n";

	assert_int_equal(spec_from(text, &spec), 0);
	assert_string_equal(spec.vm.initrd, "r");
	assert_string_equal(spec.vm.cmdline, "root=/dev/vda quiet console=ttyS0");
	assert_int_equal(spec.vm.maxmem_mib, 1024);
	assert_int_equal(spec.maxvcpus, 4);
	assert_int_equal(spec.on_reboot, ACTION_DESTROY);
	assert_int_equal(spec.vm.on_reboot, ON_REBOOT_EXIT);
	assert_int_equal(spec.on_crash, ACTION_PRESERVE);
	assert_string_equal(spec.cpus, "0-1,3");
	assert_int_equal(spec.cpu_weight, 512);
	assert_int_equal(spec.cap, 50);
	assert_string_equal(spec.vifs[0].mac, "00:16:3e:01:02:03");
	assert_string_equal(spec.vifs[0].bridge, "net0");
	assert_int_equal(spec.vm.ndisks, 2);
	assert_string_equal(spec.vm.disks[0].path, "/img/with,comma.img");
	assert_true(spec.vm.disks[0].readonly);
	assert_string_equal(spec.vm.disks[1].path, "/dev/sdb");
	assert_true(spec.vm.disks[1].readonly);
}

static void expect_spec_error(const char *text, const char *what)
{
	static struct domain_spec spec;

	if (spec_from(text, &spec) != -EINVAL)
		fail_msg("accepted: %s", text);
	if (!strstr(err, what))
		fail_msg("error '%s' does not mention '%s'", err, what);
}

static void test_domain_errors(void **state)
{
	expect_spec_error("name='a'\nkernel='k'\nfrobnicate=1\n", "t.cfg:3: unknown setting 'frobnicate'");
	expect_spec_error("name='a'\nkernel='k'\nmemory='lots'\n", "t.cfg:3: 'memory' must be a number");
	expect_spec_error("name='a'\nkernel='k'\nvcpus=0\n", "vcpus 0 is out of range");
	expect_spec_error("name='a'\nkernel='k'\nmemory=512\nmaxmem=256\n", "maxmem 256 MiB is below memory");
	expect_spec_error("name='a'\nkernel='k'\nvcpus=4\nmaxvcpus=2\n", "maxvcpus 2 is below vcpus 4");
	expect_spec_error("name='a'\nkernel='k'\ncmdline='x'\nextra='y'\n", "cannot be combined");
	expect_spec_error("name='a'\nkernel='k'\non_crash='explode'\n", "on_crash 'explode'");
	expect_spec_error("name='a'\nkernel='k'\ncpus='0-'\n", "cpus '0-'");
	expect_spec_error("name='a'\nkernel='k'\ntype='hvm'\n", "type 'hvm' is not supported");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['x.vhd,vhd,xvda,rw']\n", "format 'vhd'");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['backendtype=vmm, format=qcow2, target=x.qcow2']\n",
			  "qcow2 is served by domus-blk");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['x.img,raw,xvda,maybe']\n", "unexpected 'maybe'");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['cache=unsafe, target=x.img']\n", "cache 'unsafe'");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['backendtype=vmm, cache=none, target=x.img']\n",
			  "cache modes are domus-blk's");
	expect_spec_error("name='a'\nkernel='k'\ndisk=[',raw']\n", "no target");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['x.img,devtype=cdrom']\n", "'devtype=' is not supported");
	expect_spec_error("name='a'\nkernel='k'\ndisk=[3]\n", "disk entries must be strings");
	expect_spec_error("name='a'\nkernel='k'\nvif=['mac=zz']\n", "bad mac");
	expect_spec_error("name='a'\nkernel='k'\nvif=['colour=red']\n", "unknown key 'colour'");
	expect_spec_error("name='a b'\nkernel='k'\n", "name 'a b'");
	expect_spec_error("name='a'\n", "no kernel");
	expect_spec_error("kernel='k'\n", "no name");
}

/* pmem = [...], domus's own key: "PATH[,ro|,rw]", read-only by default. */
static void test_pmem(void **state)
{
	static struct domain_spec spec;

	assert_int_equal(spec_from("name='p'\nkernel='/k'\npmem=[ '/img/base.ext4', '/img/b,ro',\n"
				   "  '/img/c,rw', ]\n",
				   &spec),
			 0);
	assert_int_equal(spec.vm.npmems, 3);
	assert_string_equal(spec.vm.pmems[0].path, "/img/base.ext4");
	assert_true(spec.vm.pmems[0].readonly);
	assert_true(spec.vm.pmems[1].readonly);
	assert_string_equal(spec.vm.pmems[2].path, "/img/c");
	assert_false(spec.vm.pmems[2].readonly);
	expect_spec_error("name='a'\nkernel='k'\npmem='/img/b'\n", "t.cfg:3: 'pmem' must be a list");
	expect_spec_error("name='a'\nkernel='k'\npmem=[1]\n", "pmem entries must be strings");
	expect_spec_error("name='a'\nkernel='k'\npmem=['b',\n'c,share']\n",
			  "t.cfg:4: pmem 'c,share': unknown option 'share'");
	expect_spec_error("name='a'\nkernel='k'\npmem=['a','b','c','d','e']\n", "more than 4 pmem devices");
}


/* shm = [...], domus's own key: the regions domusd serves (docs/config.md). */
static void test_shm(void **state)
{
	static struct domain_spec spec, back;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(spec_from("name='s'\nkernel='/k'\nshm=['name=chan0,size=4M,doorbell=1,vectors=2',\n"
				   "  'name=p,size=64K,doorbell=0', 'size=4096, name=d']\n",
				   &spec),
			 0);
	assert_int_equal(spec.vm.nshms, 3);
	assert_string_equal(spec.vm.shms[0].name, "chan0");
	assert_int_equal(spec.vm.shms[0].size, 4 << 20);
	assert_true(spec.vm.shms[0].doorbell);
	assert_int_equal(spec.vm.shms[0].vectors, 2);
	assert_false(spec.vm.shms[1].doorbell);
	assert_int_equal(spec.vm.shms[1].vectors, 0);
	assert_true(spec.vm.shms[2].doorbell);
	assert_int_equal(spec.vm.shms[2].vectors, 1);
	assert_string_equal(spec.vm.shms[2].path, "");

	/* The dry run shows them; the domain's JSON carries them back unchanged, path included. */
	f = open_memstream(&out, &outlen);
	domain_spec_print(&spec, f);
	fclose(f);
	assert_non_null(strstr(out, "shm.0 = name=chan0,size=4M,doorbell=1,vectors=2\n"));
	assert_non_null(strstr(out, "shm.1 = name=p,size=64K,doorbell=0\n"));
	free(out);
	snprintf(spec.vm.shms[0].path, sizeof(spec.vm.shms[0].path), "/run/domus/shm/chan0.sock");
	{
		json_t *j = domain_spec_to_json(&spec);
		assert_int_equal(domain_spec_from_json(j, "record", &back, err, sizeof(err)), 0);
		json_decref(j);
	}
	assert_int_equal(back.vm.nshms, 3);
	assert_string_equal(back.vm.shms[0].path, "/run/domus/shm/chan0.sock");
	assert_int_equal(back.vm.shms[0].vectors, 2);
	assert_int_equal(back.vm.shms[1].size, 64 << 10);
	assert_false(back.vm.shms[1].doorbell);

	/* Refusals name the key, the entry and what is wrong. */
	expect_spec_error("name='a'\nkernel='k'\nshm='name=c,size=4M'\n", "t.cfg:3: 'shm' must be a list");
	expect_spec_error("name='a'\nkernel='k'\nshm=[4]\n", "shm entries must be strings");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=4M',\n'name=d,size=3M']\n",
			  "t.cfg:4: shm 'name=d,size=3M': size 3M: a power of two from 4K to 1G");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=2G']\n", "a power of two from 4K to 1G");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=4M,vectors=0']\n", "vectors 0: 1 to 64");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=4M,doorbell=0,vectors=1']\n",
			  "a plain region (doorbell=0) has no interrupts");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c/d,size=4M']\n", "name 'c/d' may hold only");
	expect_spec_error("name='a'\nkernel='k'\nshm=['size=4M']\n", "shm 'size=4M': no name=");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c']\n", "shm 'name=c': no size=");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=4M,ring=1']\n", "unknown key 'ring'");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=c,size=4M','name=c,size=8K']\n",
			  "shm 'c' is named twice");
	expect_spec_error("name='a'\nkernel='k'\nshm=['name=a,size=4K','name=b,size=4K','name=c,size=4K',"
			  "'name=d,size=4K','name=e,size=4K']\n",
			  "more than 4 shm regions");
}

/* vsock = "...", domus's own key: a hybrid socket or the kernel's vhost-vsock. */
static void test_vsock(void **state)
{
	static struct domain_spec spec;

	assert_int_equal(spec_from("name='v'\nkernel='/k'\nvsock='cid=3,socket=/run/x.sock'\n", &spec), 0);
	assert_int_equal(spec.vm.vsock.cid, 3);
	assert_string_equal(spec.vm.vsock.socket, "/run/x.sock");
	assert_false(spec.vm.vsock.vhost);
	assert_int_equal(spec_from("name='v'\nkernel='/k'\nvsock='cid=9,backend=vhost'\n", &spec), 0);
	assert_int_equal(spec.vm.vsock.cid, 9);
	assert_true(spec.vm.vsock.vhost);
	expect_spec_error("name='a'\nkernel='k'\nvsock='cid=2,backend=vhost'\n",
			  "t.cfg:3: vsock 'cid=2,backend=vhost': cid 2 is reserved");
	expect_spec_error("name='a'\nkernel='k'\nvsock='cid=4294967295,backend=vhost'\n", "is reserved");
	expect_spec_error("name='a'\nkernel='k'\nvsock=['cid=3,backend=vhost']\n", "'vsock' must be a quoted string");
	expect_spec_error("name='a'\nkernel='k'\nvsock='cid=3'\n", "no back-end");
}

/* A command line naming no console gets the serial port; one naming a console keeps it. */
/* queues=N on a disk: kept through the dry run and the domain's JSON; out of range refused. */
static void test_disk_queues(void **state)
{
	static struct domain_spec spec, back;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	assert_int_equal(spec_from("name='q'\nkernel='/k'\nvcpus=4\n"
				   "disk=['vdev=xvda, queues=3, target=/img/a.img', '/img/b.img,raw,xvdb,rw']\n",
				   &spec),
			 0);
	assert_int_equal(spec.vm.disks[0].queues, 3);
	assert_int_equal(spec.vm.disks[1].queues, 0); /* a queue per vCPU */
	assert_int_equal(disk_queue_count(&spec.vm.disks[1], spec.vm.vcpus), 4);
	f = open_memstream(&out, &outlen);
	domain_spec_print(&spec, f);
	fclose(f);
	assert_non_null(strstr(out, "disk.0 = /img/a.img,rw,queues=3\n"));
	assert_non_null(strstr(out, "disk.1 = /img/b.img,rw\n"));
	free(out);
	{
		json_t *j = domain_spec_to_json(&spec);
		assert_int_equal(domain_spec_from_json(j, "record", &back, err, sizeof(err)), 0);
		json_decref(j);
	}
	assert_int_equal(back.vm.disks[0].queues, 3);
	assert_int_equal(back.vm.disks[1].queues, 0);
	expect_spec_error("name='a'\nkernel='k'\ndisk=['queues=0, target=x.img']\n",
			  "queues '0' must be 1 to 16");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['queues=17, target=x.img']\n",
			  "queues '17' must be 1 to 16");
	expect_spec_error("name='a'\nkernel='k'\ndisk=['queues=two, target=x.img']\n", "queues 'two'");
}

static void test_console_added_once(void **state)
{
	static struct domain_spec spec;

	assert_int_equal(spec_from("name='c'\nkernel='/k'\nextra='console=hvc0 quiet'\n", &spec), 0);
	assert_string_equal(spec.vm.cmdline, "console=hvc0 quiet");
	assert_int_equal(spec_from("name='c'\nkernel='/k'\ncmdline='quiet xconsole=1'\n", &spec), 0);
	assert_string_equal(spec.vm.cmdline, "quiet xconsole=1 console=ttyS0");
	assert_int_equal(spec_from("name='c'\nkernel='/k'\n", &spec), 0);
	assert_string_equal(spec.vm.cmdline, "console=ttyS0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),       cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_embedded_nul), cmocka_unit_test(test_xen_example),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_console_added_once),     cmocka_unit_test(test_domain_errors),
		cmocka_unit_test(test_pmem),
		cmocka_unit_test(test_shm),
		cmocka_unit_test(test_vsock),
		cmocka_unit_test(test_disk_queues),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
