/* `domus run` argument parsing: defaults, every option, and each kind of bad argument. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/args.h"

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

static void test_help(void **state)
{
	assert_int_equal(parse("--help", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),   cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_errors),     cmocka_unit_test(test_too_many_disks),
		cmocka_unit_test(test_help),       cmocka_unit_test(test_vhost_user_disk),
		cmocka_unit_test(test_mem_size),   cmocka_unit_test(test_maxmem_options),
		cmocka_unit_test(test_pmem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
