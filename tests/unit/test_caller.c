/*
 * Files a client names are opened with the client's rights: what uid 65534
 * cannot open itself, domusd does not open for it, and the refusal names
 * the file and the reason. Runs as root (as the suite does), like domusd.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "ctl/caller.h"
#include "domain/spec_json.h"

static char dir[64];
static struct caller root, nobody = {.uid = 65534, .gid = 65534};
static struct domain_spec spec;
static struct caller_files files;
static char err[1024];

static void path(char *out, const char *name)
{
	snprintf(out, DISK_PATH_MAX, "%s/%s", dir, name);
}

static void make_file(const char *name, mode_t mode, const char *text)
{
	char p[DISK_PATH_MAX];
	int fd;

	path(p, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
}

static int setup(void **state)
{
	char cmd[512];

	if (geteuid() != 0) {
		fprintf(stderr, "test_caller runs as root, as domusd does\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "/tmp/test_caller.XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
		return -1;
	make_file("kernel", 0644, "a kernel");
	make_file("secret", 0600, "root's secret");
	make_file("shared.img", 0644, "");
	snprintf(cmd, sizeof(cmd), "cd %s && truncate -s 1M shared.img && qemu-img create -q -f qcow2 "
		 "-b secret -F raw top.qcow2 1M && chmod 0644 top.qcow2 && mkfifo fifo", dir);
	caller_root(&root);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void reset_spec(void)
{
	domain_spec_defaults(&spec);
	snprintf(spec.name, sizeof(spec.name), "t");
	path(spec.kernel, "kernel");
	domain_spec_fixup(&spec);
}

static void add_disk(const char *file, bool qcow2, bool readonly)
{
	struct disk_config *d = &spec.vm.disks[spec.vm.ndisks++];

	memset(d, 0, sizeof(*d));
	if (file[0] == '/')
		snprintf(d->path, sizeof(d->path), "%s", file);
	else
		path(d->path, file);
	d->qcow2 = qcow2;
	d->readonly = readonly;
}

/* Opens spec as c: expects success, or a refusal whose message is want (@ the directory). */
static void expect(const struct caller *c, const char *want)
{
	int ret = caller_open_files(c, &spec, &files, err, sizeof(err));

	if (!want) {
		if (ret < 0)
			fail_msg("refused: %s", err);
		caller_files_close(&files);
		return;
	}
	assert_true(ret < 0);
	{
		/* "@" in want stands for the test's directory. */
		char expected[1024], *o = expected;
		for (const char *p = want; *p; p++)
			o += *p == '@' ? sprintf(o, "%s", dir) : sprintf(o, "%c", *p);
		assert_string_equal(err, expected);
	}
	/* Nothing is left open after a refusal. */
	assert_int_equal(files.kernel, -1);
}

static void test_readable_files_open(void **state)
{
	char buf[16] = {0};

	reset_spec();
	path(spec.ramdisk, "shared.img");
	add_disk("shared.img", false, true);
	domain_spec_fixup(&spec);
	assert_int_equal(caller_open_files(&nobody, &spec, &files, err, sizeof(err)), 0);
	assert_true(files.kernel >= 0 && files.ramdisk >= 0 && files.disks[0].image >= 0);
	assert_int_equal(pread(files.kernel, buf, sizeof(buf) - 1, 0), 8);
	assert_string_equal(buf, "a kernel");
	/* Read-only as asked: the descriptor cannot write. */
	assert_int_equal(fcntl(files.disks[0].image, F_GETFL) & O_ACCMODE, O_RDONLY);
	caller_files_close(&files);
	assert_int_equal(files.kernel, -1);
}

static void test_unreadable_files_refused(void **state)
{
	reset_spec();
	path(spec.ramdisk, "secret");
	domain_spec_fixup(&spec);
	expect(&nobody, "ramdisk '@/secret': permission denied for uid 65534");
	expect(&root, NULL);

	reset_spec();
	path(spec.kernel, "secret");
	domain_spec_fixup(&spec);
	expect(&nobody, "kernel '@/secret': permission denied for uid 65534");

	/* Writing a file the user may only read. */
	reset_spec();
	add_disk("shared.img", false, false);
	expect(&nobody, "disk '@/shared.img': permission denied for uid 65534");
}

static void test_backing_chain_as_caller(void **state)
{
	char want[1024];

	reset_spec();
	add_disk("top.qcow2", true, true);
	assert_true(caller_open_files(&nobody, &spec, &files, err, sizeof(err)) < 0);
	/* The top image is readable; its backing file is not, and the message says which. */
	snprintf(want, sizeof(want), "disk '%s/top.qcow2': ", dir);
	assert_memory_equal(err, want, strlen(want));
	assert_non_null(strstr(err, "secret"));
	assert_non_null(strstr(err, "(as uid 65534)"));
	expect(&root, NULL);
	assert_int_equal(caller_open_files(&root, &spec, &files, err, sizeof(err)), 0);
	assert_int_equal(files.disks[0].nbacking, 1);
	assert_string_equal(files.disks[0].names[0], "secret");
	caller_files_close(&files);
}

static void test_devices_are_roots(void **state)
{
	reset_spec();
	add_disk("/dev/null", false, true);
	expect(&nobody, "disk '/dev/null' is not a regular file (device files are root's only)");

	reset_spec();
	path(spec.kernel, "fifo");
	domain_spec_fixup(&spec);
	/* A FIFO does not hold the open: refused at once, for root too. */
	expect(&root, "kernel '@/fifo' is not a regular file");

	reset_spec();
	spec.nvifs = 1;
	spec.vifs[0].backend = VIF_VMM;
	snprintf(spec.vifs[0].vifname, sizeof(spec.vifs[0].vifname), "tap0");
	expect(&nobody, "vif 0: the TAP interface 'tap0' is root's only (uid 65534 may use domus-net's "
			"networks)");

	/* The VMM makes the hybrid vsock socket as root: not on a user's word; vhost is anyone's. */
	reset_spec();
	spec.vm.vsock = (struct vsock_config){.cid = 9};
	strcpy(spec.vm.vsock.socket, "/run/x.sock");
	expect(&nobody, "vsock: the hybrid socket '/run/x.sock' is root's only (uid 65534 may use "
			"backend=vhost)");
	expect(&root, NULL);
	reset_spec();
	spec.vm.vsock = (struct vsock_config){.cid = 9, .vhost = true};
	expect(&nobody, NULL);
}

static void test_caller_record(void **state)
{
	struct caller c = {.uid = 1001, .gid = 100, .ngroups = 2, .groups = {100, 27}}, back;
	json_t *j = caller_to_json(&c);

	caller_from_json(j, &back);
	json_decref(j);
	assert_int_equal(back.uid, 1001);
	assert_int_equal(back.gid, 100);
	assert_int_equal(back.ngroups, 2);
	assert_int_equal(back.groups[1], 27);
	/* An old record without an owner is root's. */
	caller_from_json(NULL, &back);
	assert_true(caller_is_root(&back));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readable_files_open),
		cmocka_unit_test(test_unreadable_files_refused),
		cmocka_unit_test(test_backing_chain_as_caller),
		cmocka_unit_test(test_devices_are_roots),
		cmocka_unit_test(test_caller_record),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
