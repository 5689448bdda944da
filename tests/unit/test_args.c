/* `domus run` argument parsing: defaults, every option, and each kind of bad argument. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/args.h"
#include "net/netctl.h"

static struct domain_spec spec;
#define cfg (spec.vm)
static char err[256];

static int parse(const char *first, ...)
{
	char *argv[32] = {"run"};
	int argc = 1;
	va_list ap;
	const char *a;

	va_start(ap, first);
	for (a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	err[0] = 0;
	return run_args_parse(argc, argv, &spec, err, sizeof(err));
}

static void test_defaults(void **state)
{
	assert_int_equal(parse("--kernel", "k", NULL), 0);
	assert_string_equal(cfg.kernel, "k");
	assert_int_equal(cfg.memory_mib, 512);
	assert_int_equal(cfg.vcpus, 1);
	assert_string_equal(cfg.cmdline, "console=ttyS0");
	assert_int_equal(cfg.on_reboot, ON_REBOOT_RESTART);
	assert_int_equal(cfg.ndisks, 0);
	assert_null(cfg.initrd);
	assert_int_equal(spec.cpu_weight, 256);
	assert_int_equal(spec.cap, 0);
	assert_int_equal(spec.nvifs, 0);
}

static void test_all_options(void **state)
{
	assert_int_equal(parse("--kernel", "k", "--initrd", "i", "--cmdline", "c x", "--memory", "2048",
			       "--vcpus", "4", "--disk", "a.img", "--disk", "b.img,ro", "--on-reboot",
			       "exit", "--console", "virtio", NULL),
			 0);
	assert_string_equal(cfg.initrd, "i");
	assert_string_equal(cfg.cmdline, "c x");
	assert_int_equal(cfg.memory_mib, 2048);
	assert_int_equal(cfg.vcpus, 4);
	assert_int_equal(cfg.ndisks, 2);
	assert_string_equal(cfg.disks[0].path, "a.img");
	assert_false(cfg.disks[0].readonly);
	assert_string_equal(cfg.disks[1].path, "b.img");
	assert_true(cfg.disks[1].readonly);
	assert_int_equal(cfg.on_reboot, ON_REBOOT_EXIT);
	assert_int_equal(cfg.console, CONSOLE_VIRTIO);
}

static void expect_error(const char *mention, int rc)
{
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, mention));
}

static void test_errors(void **state)
{
	expect_error("--vcpus", parse("--kernel", "k", "--vcpus", "0", NULL));
	expect_error("--vcpus", parse("--kernel", "k", "--vcpus", "65", NULL));
	expect_error("--vcpus", parse("--kernel", "k", "--vcpus", "2x", NULL));
	expect_error("--vcpus", parse("--kernel", "k", "--vcpus", "", NULL));
	expect_error("--memory", parse("--kernel", "k", "--memory", "-5", NULL));
	expect_error("--memory", parse("--kernel", "k", "--memory", "0", NULL));
	expect_error("--memory", parse("--kernel", "k", "--memory", "99999999999999999999", NULL));
	expect_error("--on-reboot", parse("--kernel", "k", "--on-reboot", "maybe", NULL));
	expect_error("--console", parse("--kernel", "k", "--console", "vga", NULL));
	expect_error("bogus", parse("--kernel", "k", "--disk", "foo,bogus", NULL));
	expect_error("empty path", parse("--kernel", "k", "--disk", ",ro", NULL));
	expect_error("--kernel", parse("--memory", "64", NULL));
	expect_error("--frobnicate", parse("--kernel", "k", "--frobnicate", NULL));
	expect_error("--initrd", parse("--kernel", "k", "--initrd", NULL));
	expect_error("extra", parse("--kernel", "k", "extra", NULL));
}

static void test_too_many_disks(void **state)
{
	char *argv[64] = {"run", "--kernel", "k"};
	int argc = 3;

	for (int i = 0; i <= VM_MAX_DISKS; i++) {
		argv[argc++] = "--disk";
		argv[argc++] = "d.img";
	}
	assert_int_equal(run_args_parse(argc, argv, &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many disks"));
}

static void test_vhost_user_disk(void **state)
{
	assert_int_equal(parse("--kernel", "k", "--disk", "a.img,ro", "--disk", "vhost-user:/run/b.sock",
			       NULL),
			 0);
	assert_int_equal(cfg.ndisks, 2);
	assert_false(cfg.disks[0].vhost_user);
	assert_true(cfg.disks[1].vhost_user);
	assert_string_equal(cfg.disks[1].path, "/run/b.sock");
	expect_error("vhost-user:SOCKET", parse("--kernel", "k", "--disk", "vhost-user:", NULL));
	/* Cache modes, QEMU's names. */
	assert_int_equal(parse("--kernel", "k", "--disk", "a.img,cache=none", "--disk", "b.img,cache=directsync",
			       "--disk", "c.img,cache=writethrough", NULL), 0);
	assert_true(cfg.disks[0].direct && !cfg.disks[0].writethrough);
	assert_true(cfg.disks[1].direct && cfg.disks[1].writethrough);
	assert_true(!cfg.disks[2].direct && cfg.disks[2].writethrough);
	assert_string_equal(disk_cache_name(&cfg.disks[1]), "directsync");
	expect_error("cache=", parse("--kernel", "k", "--disk", "a.img,cache=unsafe", NULL));
	expect_error("not the VMM's", parse("--kernel", "k", "--disk", "a.img,cache=none,in-vmm", NULL));
	expect_error("vhost-user:SOCKET", parse("--kernel", "k", "--disk", "vhost-user:/s,ro", NULL));
	/* queues=N: a disk's own queue count, 1 to 16, on both kinds of disk. */
	assert_int_equal(parse("--kernel", "k", "--disk", "a.img,queues=4,ro", "--disk",
			       "vhost-user:/run/b.sock,queues=1", "--disk", "c.img", NULL), 0);
	assert_int_equal(cfg.disks[0].queues, 4);
	assert_true(cfg.disks[0].readonly);
	assert_int_equal(cfg.disks[1].queues, 1);
	assert_string_equal(cfg.disks[1].path, "/run/b.sock");
	assert_int_equal(cfg.disks[2].queues, 0);
	expect_error("queues '0' must be 1 to 16", parse("--kernel", "k", "--disk", "a.img,queues=0", NULL));
	expect_error("queues '17' must be 1 to 16", parse("--kernel", "k", "--disk", "a.img,queues=17", NULL));
	expect_error("vhost-user:SOCKET[,queues=N]",
		     parse("--kernel", "k", "--disk", "vhost-user:/s,queues=99", NULL));
	expect_error("vhost-user:SOCKET[,queues=N]",
		     parse("--kernel", "k", "--disk", "vhost-user:,queues=2", NULL));
}

static void test_mem_size(void **state)
{
	uint64_t mib = 0;

	assert_int_equal(mem_size_parse("512", &mib), 0);
	assert_int_equal(mib, 512);
	assert_int_equal(mem_size_parse("2g", &mib), 0);
	assert_int_equal(mib, 2048);
	assert_int_equal(mem_size_parse("2G", &mib), 0);
	assert_int_equal(mem_size_parse("131072k", &mib), 0);
	assert_int_equal(mib, 128);
	assert_int_equal(mem_size_parse("1t", &mib), 0);
	assert_int_equal(mib, 1024 * 1024);
	assert_int_equal(mem_size_parse("256m", &mib), 0);
	assert_int_equal(mib, 256);
	assert_int_equal(mem_size_parse("1048576b", &mib), 0);
	assert_int_equal(mib, 1);
	/* Not whole MiB, nothing, junk, overflow, signs. */
	assert_int_equal(mem_size_parse("1000k", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("0", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("", &mib), -EINVAL);
	assert_int_equal(mem_size_parse(NULL, &mib), -EINVAL);
	assert_int_equal(mem_size_parse("12x", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("12mm", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("-5", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("99999999999999999999", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("99999999999t", &mib), -EINVAL);
	assert_int_equal(mem_size_parse("1 g", &mib), -EINVAL);
}

static void test_maxmem_options(void **state)
{
	char *ok[] = {"run", "--kernel", "/k", "--memory", "256", "--maxmem", "1024", NULL};
	char *below[] = {"run", "--kernel", "/k", "--memory", "256", "--maxmem", "128", NULL};
	char *fixed[] = {"run", "--kernel", "/k", "--maxmem", "1024", "--no-balloon", NULL};
	char *alone[] = {"run", "--kernel", "/k", "--memory", "300", NULL};

	assert_int_equal(run_args_parse(7, ok, &spec, err, sizeof(err)), 0);
	assert_int_equal(spec.vm.memory_mib, 256);
	assert_int_equal(vm_config_ram_mib(&spec.vm), 1024);
	assert_true(spec.vm.balloon);
	assert_int_equal(run_args_parse(7, below, &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "maxmem 128 MiB is below memory 256 MiB"));
	assert_int_equal(run_args_parse(6, fixed, &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "needs the balloon"));
	assert_int_equal(run_args_parse(5, alone, &spec, err, sizeof(err)), 0);
	assert_int_equal(vm_config_ram_mib(&spec.vm), 300);
	assert_int_equal(vm_config_minmem(&spec.vm), 75);
}

static void test_pmem(void **state)
{
	char *argv[64] = {"run", "--kernel", "k"};
	int argc = 3;

	assert_int_equal(parse("--kernel", "k", NULL), 0);
	assert_int_equal(cfg.npmems, 0);
	/* Read-only unless rw is asked for: sharing a base image is what it is for. */
	assert_int_equal(parse("--kernel", "k", "--pmem", "base.ext4", "--pmem", "b.img,ro", "--pmem",
			       "/srv/c.img,rw", NULL),
			 0);
	assert_int_equal(cfg.npmems, 3);
	assert_string_equal(cfg.pmems[0].path, "base.ext4");
	assert_true(cfg.pmems[0].readonly);
	assert_string_equal(cfg.pmems[1].path, "b.img");
	assert_true(cfg.pmems[1].readonly);
	assert_string_equal(cfg.pmems[2].path, "/srv/c.img");
	assert_false(cfg.pmems[2].readonly);
	expect_error("--pmem 'b.img,bogus': unknown option 'bogus'",
		     parse("--kernel", "k", "--pmem", "b.img,bogus", NULL));
	expect_error("both ro and rw", parse("--kernel", "k", "--pmem", "b.img,ro,rw", NULL));
	expect_error("empty path", parse("--kernel", "k", "--pmem", ",ro", NULL));
	expect_error("empty path", parse("--kernel", "k", "--pmem", "", NULL));
	expect_error("--pmem", parse("--kernel", "k", "--pmem", NULL));
	for (int i = 0; i <= VM_MAX_PMEM; i++) {
		argv[argc++] = "--pmem";
		argv[argc++] = "p.img";
	}
	assert_int_equal(run_args_parse(argc, argv, &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many pmem devices: at most 4"));
}

static void test_shm(void **state)
{
	char *argv[64] = {"run", "--kernel", "k"};
	int argc = 3;

	assert_int_equal(parse("--kernel", "k", "--shm", "path=/dev/shm/a", "--shm",
			       "path=/run/s.sock,name=chan0,size=4M,doorbell=1,vectors=8", "--shm",
			       "path=f,size=64K", NULL),
			 0);
	assert_int_equal(cfg.nshms, 3);
	assert_string_equal(cfg.shms[0].path, "/dev/shm/a");
	assert_string_equal(cfg.shms[0].name, "shm0"); /* named by its index unless given */
	assert_int_equal(cfg.shms[0].size, 0);          /* the file's */
	assert_false(cfg.shms[0].doorbell);
	assert_int_equal(cfg.shms[0].vectors, 1);
	assert_string_equal(cfg.shms[1].name, "chan0");
	assert_int_equal(cfg.shms[1].size, 4 << 20);
	assert_true(cfg.shms[1].doorbell);
	assert_int_equal(cfg.shms[1].vectors, 8);
	assert_string_equal(cfg.shms[2].name, "shm2");
	assert_int_equal(cfg.shms[2].size, 64 << 10);
	expect_error("path= is missing", parse("--kernel", "k", "--shm", "size=1M", NULL));
	expect_error("unknown option 'bogus'", parse("--kernel", "k", "--shm", "path=a,bogus=1", NULL));
	expect_error("is not KEY=VALUE", parse("--kernel", "k", "--shm", "path=a,ro", NULL));
	expect_error("size '1T' is not a size", parse("--kernel", "k", "--shm", "path=a,size=1T", NULL));
	expect_error("size '0' is not a size", parse("--kernel", "k", "--shm", "path=a,size=0", NULL));
	expect_error("is not a size",
		     parse("--kernel", "k", "--shm", "path=a,size=99999999999999999999G", NULL));
	expect_error("is not a size", parse("--kernel", "k", "--shm", "path=a,size=-1", NULL));
	expect_error("is not a size", parse("--kernel", "k", "--shm", "path=a,size=17179869184G", NULL));
	expect_error("doorbell must be 0 or 1", parse("--kernel", "k", "--shm", "path=a,doorbell=yes", NULL));
	expect_error("vectors must be 1 to 64",
		     parse("--kernel", "k", "--shm", "path=a,doorbell=1,vectors=65", NULL));
	expect_error("vectors must be 1 to 64",
		     parse("--kernel", "k", "--shm", "path=a,doorbell=1,vectors=0", NULL));
	expect_error("vectors= needs doorbell=1", parse("--kernel", "k", "--shm", "path=a,vectors=2", NULL));
	expect_error("path must be", parse("--kernel", "k", "--shm", "path=", NULL));
	for (int i = 0; i <= VM_MAX_SHM; i++) {
		argv[argc++] = "--shm";
		argv[argc++] = "path=p";
	}
	assert_int_equal(run_args_parse(argc, argv, &spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many shared memory devices: at most 4"));
}

/* The other two forms of --net, then the VFR's: domus run's own domus-net. */
static void test_nic_spec(void **state)
{
	struct nic_config n;
	char why[256], a[INET_ADDRSTRLEN];

	assert_int_equal(nic_spec_parse("tap=tap0", 2, &n, why, sizeof(why)), 0);
	assert_string_equal(n.tap, "tap0");
	assert_int_equal(n.mac[5], 0x52);
	assert_false(n.vfr);
	assert_int_equal(
	    nic_spec_parse("vhost-user:/run/s.sock,mac=52:54:00:aa:bb:cc", 0, &n, why, sizeof(why)),
	    0);
	assert_string_equal(n.socket, "/run/s.sock");
	assert_int_equal(n.mac[5], 0xcc);

	/* vfr alone: the default address, no uplink, mode none. */
	assert_int_equal(nic_spec_parse("vfr", 0, &n, why, sizeof(why)), 0);
	assert_true(n.vfr);
	assert_string_equal(n.socket, "");
	assert_string_equal(netctl_ip_str(n.v.addr, a), "10.0.2.15");
	assert_int_equal(n.v.prefix, 24);
	assert_int_equal(n.v.mode, VFR_UPLINK_NONE);
	assert_int_equal(n.v.default_action, VFR_ACCEPT);
	assert_false(n.v.have_uplink);

	/* With an uplink the mode is nat unless said. */
	assert_int_equal(
	    nic_spec_parse("vfr,ip=192.168.7.9/25,mac=52:54:00:00:00:07,uplink=up0:10.98.0.2/"
			   "24:10.98.0.1,default=drop",
			   1, &n, why, sizeof(why)),
	    0);
	assert_string_equal(netctl_ip_str(n.v.addr, a), "192.168.7.9");
	assert_int_equal(n.v.prefix, 25);
	assert_int_equal(n.mac[5], 7);
	assert_true(n.v.have_uplink);
	assert_string_equal(n.v.uplink_tap, "up0");
	assert_string_equal(netctl_ip_str(n.v.uplink.addr, a), "10.98.0.2");
	assert_string_equal(netctl_ip_str(n.v.uplink.gateway, a), "10.98.0.1");
	assert_int_equal(n.v.uplink.prefix, 24);
	assert_int_equal(n.v.uplink.mac[0], 0x02);
	assert_int_equal(n.v.mode, VFR_UPLINK_NAT);
	assert_int_equal(n.v.default_action, VFR_DROP);
	assert_int_equal(
	    nic_spec_parse("vfr,uplink=up0:10.98.0.2/24,mode=routed", 0, &n, why, sizeof(why)), 0);
	assert_int_equal(n.v.mode, VFR_UPLINK_ROUTED);
	assert_int_equal(n.v.uplink.gateway, 0);
	assert_int_equal(
	    nic_spec_parse("vfr,uplink=up0:10.98.0.2/24,mode=none", 0, &n, why, sizeof(why)), 0);
	assert_int_equal(n.v.mode, VFR_UPLINK_NONE);

	static const struct {
		const char *spec, *why;
	} bad[] = {
	    {"vfr,ip=bogus", "ip 'bogus' is not A.B.C.D/N (N 1 to 30)"},
	    {"vfr,ip=10.0.2.15", "ip '10.0.2.15' is not A.B.C.D/N"},
	    {"vfr,ip=10.0.2.15/31", "(N 1 to 30)"},
	    {"vfr,ip=10.0.2.1/24", "other than the first (the VFR's own)"},
	    {"vfr,ip=10.0.2.0/24", "ip must be a host of its subnet"},
	    {"vfr,ip=10.0.2.255/24", "ip must be a host of its subnet"},
	    {"vfr,mode=rsip", "mode rsip is domusd's"},
	    {"vfr,mode=bridge", "mode 'bridge' must be none, routed or nat"},
	    {"vfr,mode=nat", "mode nat needs uplink=TAP:ADDR/PREFIX[:GATEWAY]"},
	    {"vfr,mode=routed", "mode routed needs uplink="},
	    {"vfr,default=maybe", "default 'maybe' must be accept, drop or reject"},
	    {"vfr,mac=01:00:00:00:00:01", "bad mac"},
	    {"vfr,uplink=up0", "uplink 'up0': expected TAP:ADDR/PREFIX[:GATEWAY]"},
	    {"vfr,uplink=up0:10.98.0.2/24:10.99.0.1", "gateway 10.99.0.1 is not on 10.98.0.2/24"},
	    {"vfr,uplink=:10.98.0.2/24", "a TAP name is 1 to 15 bytes"},
	    {"vfr,uplink=up0:10.0.2.2/16", "overlaps the uplink's link"},
	    {"vfr,speed=fast",
	     "unknown option 'speed=fast' (expected ip=, mac=, uplink=, mode= or default=)"},
	    {"tap=t0,ip=10.0.0.2/24", "unknown option 'ip=10.0.0.2/24' (expected mac=MAC)"},
	    {"vfrx", "expected tap=IFNAME, vhost-user:SOCKET or vfr, found 'vfrx'"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		assert_int_equal(nic_spec_parse(bad[i].spec, 0, &n, why, sizeof(why)), -EINVAL);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: '%s' does not say '%s'", bad[i].spec, why, bad[i].why);
	}
}

/* One --net vfr per domain: its domus-net has one port. */
static void test_net_vfr_once(void **state)
{
	assert_int_equal(parse("--kernel", "k", "--net", "vfr", "--net", "tap=t0", NULL), 0);
	assert_int_equal(cfg.nnics, 2);
	assert_true(cfg.nics[0].vfr);
	expect_error("one --net vfr per domain",
		     parse("--kernel", "k", "--net", "vfr", "--net", "vfr,ip=10.1.0.5/24", NULL));
	expect_error("--net 'vfr,ip=bogus'", parse("--kernel", "k", "--net", "vfr,ip=bogus", NULL));
}

static void test_help(void **state)
{
	assert_int_equal(parse("--help", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	 cmocka_unit_test(test_all_options),
	    cmocka_unit_test(test_errors),	 cmocka_unit_test(test_too_many_disks),
	    cmocka_unit_test(test_help),	 cmocka_unit_test(test_vhost_user_disk),
	    cmocka_unit_test(test_mem_size),	 cmocka_unit_test(test_maxmem_options),
	    cmocka_unit_test(test_pmem), cmocka_unit_test(test_shm),	 cmocka_unit_test(test_nic_spec),
	    cmocka_unit_test(test_net_vfr_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
