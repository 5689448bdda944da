/*
 * Cooperative tasks (src/lib/task.c) driven by a small epoll loop, as
 * domusd drives them: a task that waits gives the loop back, another task
 * runs meanwhile, and each goes on when its descriptor, its event or its
 * time comes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/task.h"

enum { W_TEST_TASK = 7 };

static int epfd;

static int loop_add(int fd, unsigned events, struct watch *w)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void loop_del(int fd)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

static const struct task_loop test_loop = {.add = loop_add, .del = loop_del};

/* One turn of the loop: what woke it, then whatever is due. */
static void loop_once(void)
{
	struct epoll_event ev;
	int n = epoll_wait(epfd, &ev, 1, task_next_timeout_ms());

	if (n == 1) {
		struct watch *w = ev.data.ptr;
		assert_int_equal(w->kind, W_TEST_TASK);
		task_watch_ready(w);
	}
	task_run_due();
}

struct reader {
	int fd;
	int timeout_ms;
	int result;
	char got[16];
	bool ended, done_called;
};

static void read_after_wait(void *arg)
{
	struct reader *r = arg;

	assert_true(task_in_task());
	r->result = task_wait_fd(r->fd, EPOLLIN, r->timeout_ms);
	if (r->result == 0)
		assert_true(read(r->fd, r->got, sizeof(r->got) - 1) > 0);
	r->ended = true;
}

static void reader_done(void *arg)
{
	((struct reader *)arg)->done_called = true;
}

static void setup_loop(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(epfd >= 0);
	task_init(&test_loop, W_TEST_TASK);
}

static void test_waits_without_holding_the_loop(void **state)
{
	static struct reader a, b;
	int pa[2], pb[2];

	setup_loop();
	assert_int_equal(pipe(pa), 0);
	assert_int_equal(pipe(pb), 0);
	a = (struct reader){.fd = pa[0], .timeout_ms = 5000};
	b = (struct reader){.fd = pb[0], .timeout_ms = 5000};
	/* Both wait: task_run returns at once for each, with the work not done. */
	assert_int_equal(task_run(read_after_wait, reader_done, &a), 0);
	assert_int_equal(task_run(read_after_wait, reader_done, &b), 0);
	assert_false(task_in_task());
	assert_int_equal(task_count(), 2);
	/* The second one's data comes first: it ends first, the first still waits. */
	assert_int_equal(write(pb[1], "bee", 3), 3);
	loop_once();
	assert_true(b.ended && b.done_called);
	assert_string_equal(b.got, "bee");
	assert_false(a.ended);
	assert_int_equal(write(pa[1], "ant", 3), 3);
	loop_once();
	assert_true(a.ended && a.done_called);
	assert_string_equal(a.got, "ant");
	assert_int_equal(task_count(), 0);
	close(pa[0]), close(pa[1]), close(pb[0]), close(pb[1]);
	close(epfd);
}

static void test_wait_times_out(void **state)
{
	static struct reader r;
	int p[2];

	setup_loop();
	assert_int_equal(pipe(p), 0);
	r = (struct reader){.fd = p[0], .timeout_ms = 30};
	assert_int_equal(task_run(read_after_wait, reader_done, &r), 0);
	while (!r.ended)
		loop_once();
	assert_int_equal(r.result, -ETIMEDOUT);
	assert_true(r.done_called);
	close(p[0]), close(p[1]);
	close(epfd);
}

static void ends_at_once(void *arg)
{
	*(int *)arg += 1;
}

static void test_no_wait_ends_in_task_run(void **state)
{
	int calls = 0;

	setup_loop();
	assert_int_equal(task_run(ends_at_once, NULL, &calls), 1);
	assert_int_equal(calls, 1);
	assert_int_equal(task_count(), 0);
	close(epfd);
}

static struct task_event ev;
static int order[4], norder;

static void waits_for_event(void *arg)
{
	int id = (int)(intptr_t)arg;
	int ret = task_event_wait(&ev, id == 3 ? 20 : 5000);

	order[norder++] = ret == 0 ? id : -id;
}

static void signals_event(void *arg)
{
	/* Signalling from a task wakes the others later, from the loop. */
	task_event_signal(&ev);
	order[norder++] = 9;
}

static void test_events(void **state)
{
	int fds[2];

	setup_loop();
	norder = 0;
	assert_int_equal(task_run(waits_for_event, NULL, (void *)(intptr_t)1), 0);
	assert_int_equal(task_run(waits_for_event, NULL, (void *)(intptr_t)3), 0);
	/* Task 3 gives up after 20 ms; task 1 waits on. */
	while (norder == 0)
		loop_once();
	assert_int_equal(order[0], -3);
	assert_int_equal(task_run(waits_for_event, NULL, (void *)(intptr_t)2), 0);
	assert_int_equal(task_run(signals_event, NULL, NULL), 1);
	assert_int_equal(order[1], 9);
	assert_int_equal(task_count(), 2);
	task_run_due();
	assert_int_equal(norder, 4);
	/* Both woken, neither timed out. */
	assert_true((order[2] == 1 && order[3] == 2) || (order[2] == 2 && order[3] == 1));
	assert_int_equal(task_count(), 0);
	/* Outside a task nobody could signal: refused, not a hang. */
	assert_int_equal(task_event_wait(&ev, 1000), -EWOULDBLOCK);
	/* And a descriptor wait outside a task is a plain poll. */
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(task_wait_fd(fds[0], EPOLLIN, 10), -ETIMEDOUT);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(task_wait_fd(fds[0], EPOLLIN, 10), 0);
	close(fds[0]), close(fds[1]);
	close(epfd);
}

/* A descriptor the loop already watches can still be waited on by a task. */
static void test_fd_watched_by_the_loop(void **state)
{
	static struct reader r;
	struct watch other = {W_TEST_TASK + 1, NULL};
	struct epoll_event e;
	int p[2];

	setup_loop();
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_add(p[0], EPOLLIN, &other), 0);
	r = (struct reader){.fd = p[0], .timeout_ms = 5000};
	assert_int_equal(task_run(read_after_wait, reader_done, &r), 0);
	assert_int_equal(write(p[1], "dup", 3), 3);
	/* Both watches fire; the task's goes to the task. */
	for (int i = 0; i < 2 && !r.ended; i++) {
		assert_int_equal(epoll_wait(epfd, &e, 1, 1000), 1);
		if (((struct watch *)e.data.ptr)->kind == W_TEST_TASK)
			task_watch_ready(e.data.ptr);
	}
	assert_true(r.ended);
	assert_string_equal(r.got, "dup");
	close(p[0]), close(p[1]);
	close(epfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waits_without_holding_the_loop),
		cmocka_unit_test(test_wait_times_out),
		cmocka_unit_test(test_no_wait_ends_in_task_run),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_fd_watched_by_the_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
