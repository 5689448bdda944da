/*
 * The driver domains' confinement: their own user, required; and any call
 * outside the allow-list, an executable mapping or an fcntl beyond flags
 * and duplicating, kills the process rather than failing. Runs as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk/sandbox.h"
#include "net/sandbox.h"

enum attempt { NOTHING, MAP_EXEC, PROTECT_EXEC, FCNTL_LOCK, OPEN_FILE, MAP_DATA, FCNTL_FLAGS };

/* The sandboxed child as /proc shows it: its own user, no new privileges, filtered. */
static void expect_confined(pid_t pid, const char *user)
{
	char path[64], line[256], uid[32] = "", *u;
	bool nnp = false, filtered = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Uid:", 4))
			sscanf(line + 4, "%31s", uid);
		nnp |= !strcmp(line, "NoNewPrivs:\t1\n");
		filtered |= !strcmp(line, "Seccomp:\t2\n");
	}
	fclose(f);
	assert_true(nnp);
	assert_true(filtered);
	u = uid;
	{
		char cmd[128], want[32] = "";
		snprintf(cmd, sizeof(cmd), "id -u %s", user);
		f = popen(cmd, "r");
		assert_non_null(f);
		assert_non_null(fgets(want, sizeof(want), f));
		pclose(f);
		want[strcspn(want, "\n")] = 0;
		assert_string_equal(u, want);
	}
}

/* In a child: enter a back-end's sandbox, try one thing. The child's wait status. */
static int try_in_sandbox(bool net, enum attempt what)
{
	int go[2], ready[2], status;
	pid_t pid;
	char c = 0;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		void *p;
		if ((net ? net_sandbox_enter(NULL, err, sizeof(err))
			 : blk_sandbox_enter(NULL, err, sizeof(err))) < 0)
			_exit(100);
		/* Looked at from outside, then on. */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(101);
		switch (what) {
		case NOTHING: break;
		case MAP_EXEC:
			mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			break;
		case PROTECT_EXEC:
			p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			mprotect(p, 4096, PROT_READ | PROT_EXEC);
			break;
		case FCNTL_LOCK: {
			struct flock fl = {.l_type = F_RDLCK};
			fcntl(0, F_SETLK, &fl);
			break;
		}
		case OPEN_FILE:
			open("/etc/hostname", O_RDONLY);
			break;
		case MAP_DATA:
			p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				_exit(102);
			break;
		case FCNTL_FLAGS:
			if (fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK) < 0)
				_exit(103);
			break;
		}
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	expect_confined(pid, net ? "domus-net" : "domus-blk");
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	return status;
}

static void expect_killed(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void expect_ok(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_forbidden_calls_kill(void **state)
{
	for (int net = 0; net <= 1; net++) {
		expect_ok(try_in_sandbox(net, NOTHING));
		expect_ok(try_in_sandbox(net, MAP_DATA));
		expect_ok(try_in_sandbox(net, FCNTL_FLAGS));
		expect_killed(try_in_sandbox(net, MAP_EXEC));
		expect_killed(try_in_sandbox(net, FCNTL_LOCK));
		expect_killed(try_in_sandbox(net, OPEN_FILE));
	}
	/* mprotect is not domus-blk's at all; an executable page is nobody's. */
	expect_killed(try_in_sandbox(false, PROTECT_EXEC));
}

static void test_own_user_required(void **state)
{
	char err[256];
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int ret = blk_sandbox_enter("domus-no-such-user", err, sizeof(err));
		_exit(ret == -ENOENT && strstr(err, "no user 'domus-no-such-user'") && geteuid() == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	expect_ok(status);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forbidden_calls_kill),
		cmocka_unit_test(test_own_user_required),
	};

	if (geteuid() != 0) {
		fprintf(stderr, "test_sandbox runs as root, as the back-ends' supervisors do\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
