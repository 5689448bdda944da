/* The domain's console log (domusd --console-log), as domus-vmm keeps it beside the ring. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/control.h"

static struct domain_spec spec;
static struct vmm_control ctl;
static struct vm_frontend fe;
static int peer = -1;

static int setup(void **state)
{
	int sv[2];

	(void)state;
	domain_spec_defaults(&spec);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	peer = sv[1];
	assert_int_equal(vmm_control_init(&ctl, sv[0], -1, &spec, 1), 0);
	ctl.log_fd = memfd_create("console-log", 0);
	assert_true(ctl.log_fd >= 0);
	vmm_control_frontend(&ctl, &fe);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (ctl.log_fd >= 0)
		close(ctl.log_fd);
	close(ctl.out_rd);
	close(ctl.out_wr);
	close(ctl.listen_fd);
	close(peer);
	return 0;
}

/* What a device writes to the console, through the VMM's own poll loop. */
static void console_out(const void *p, size_t n)
{
	const char *at = p;

	while (n) {
		struct pollfd fds[8];
		ssize_t w = write(fe.console_fd, at, n);
		unsigned k;

		assert_true(w > 0);
		at += w;
		n -= (size_t)w;
		k = fe.poll_fds(fe.opaque, fds, 8);
		assert_true(poll(fds, k, 0) >= 1);
		fe.poll_ready(fe.opaque, NULL, fds, k);
	}
}

static off_t size_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

static void test_log_has_what_the_ring_has(void **state)
{
	static const char text[] = "Linux version 6.1\r\nshell on the console\r\n";
	char back[sizeof(text)];
	int log_fd = ctl.log_fd;

	(void)state;
	console_out(text, sizeof(text) - 1);
	assert_int_equal(size_of(log_fd), sizeof(text) - 1);
	assert_int_equal(pread(log_fd, back, sizeof(back), 0), sizeof(text) - 1);
	assert_memory_equal(back, text, sizeof(text) - 1);
	assert_int_equal(ctl.ring_len, sizeof(text) - 1);
	assert_memory_equal(ctl.ring, text, sizeof(text) - 1);
}

/* A guest that talks without end fills its log once, then only its ring. */
static void test_log_stops_at_its_bound(void **state)
{
	static char chunk[64 * 1024];
	int log_fd = dup(ctl.log_fd);
	unsigned long long sent = 0;
	char tail[128];
	ssize_t n;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	while (sent < CONSOLE_LOG_MAX + 3 * sizeof(chunk)) {
		console_out(chunk, sizeof(chunk));
		sent += sizeof(chunk);
	}
	assert_int_equal(ctl.log_fd, -1); /* given up, and closed */
	assert_true((unsigned long long)size_of(log_fd) > CONSOLE_LOG_MAX);
	assert_true((unsigned long long)size_of(log_fd) < CONSOLE_LOG_MAX + sizeof(tail));
	n = pread(log_fd, tail, sizeof(tail) - 1, (off_t)CONSOLE_LOG_MAX);
	assert_true(n > 0);
	tail[n] = 0;
	assert_non_null(strstr(tail, "console log is full"));
	assert_int_equal(ctl.ring_len, CONSOLE_RING_SIZE); /* the ring went on */
	close(log_fd);
}

/* A log that cannot be written is dropped; the console itself goes on. */
static void test_failing_log_is_dropped(void **state)
{
	static const char text[] = "after\r\n";

	(void)state;
	close(ctl.log_fd);
	ctl.log_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* every write fails: EBADF */
	assert_true(ctl.log_fd >= 0);
	console_out(text, sizeof(text) - 1);
	assert_int_equal(ctl.log_fd, -1);
	assert_int_equal(ctl.ring_len, sizeof(text) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_has_what_the_ring_has, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_stops_at_its_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_log_is_dropped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
