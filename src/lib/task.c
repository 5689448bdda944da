#include "lib/task.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "lib/sanitizer.h"
#ifdef DOMUS_UNDER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/*
 * A request's handling goes as deep as the xl.cfg parser and the spawning
 * of a domain's process, with PATH_MAX buffers on the way: 256 KiB, touched
 * only as far as it is used, and a guard page below.
 */
#define TASK_STACK_SIZE (256 * 1024)

struct task {
	struct task *next;	/* all tasks */
	struct task *next_wait; /* an event's waiters, or the run queue */
	struct task_event *waiting_on;
	ucontext_t ctx;
	char *map;
	size_t map_size;
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
	struct watch w;
	struct timespec deadline;
	bool has_deadline, queued, ended;
	int result;
#ifdef DOMUS_UNDER_ASAN
	void *fake_stack;
#endif
};

static const struct task_loop *loop;
static int watch_kind;
static ucontext_t loop_ctx;
static struct task *current, *tasks, *run_queue;
static unsigned ntasks;
#ifdef DOMUS_UNDER_ASAN
static const void *loop_stack_bottom;
static size_t loop_stack_size;
#endif

void task_init(const struct task_loop *l, int kind)
{
	loop = l;
	watch_kind = kind;
}

bool task_in_task(void)
{
	return current != NULL;
}

unsigned task_count(void)
{
	return ntasks;
}

/* From the loop into t, until t waits or ends. */
static void resume(struct task *t)
{
#ifdef DOMUS_UNDER_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, t->map + getpagesize(), TASK_STACK_SIZE);
#endif
	current = t;
	swapcontext(&loop_ctx, &t->ctx);
	current = NULL;
#ifdef DOMUS_UNDER_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* From the task back to the loop; returns when the loop resumes it. */
static void yield(struct task *t)
{
#ifdef DOMUS_UNDER_ASAN
	__sanitizer_start_switch_fiber(&t->fake_stack, loop_stack_bottom, loop_stack_size);
#endif
	swapcontext(&t->ctx, &loop_ctx);
#ifdef DOMUS_UNDER_ASAN
	__sanitizer_finish_switch_fiber(t->fake_stack, &loop_stack_bottom, &loop_stack_size);
#endif
}

static void task_entry(unsigned hi, unsigned lo)
{
	struct task *t = (struct task *)(((uintptr_t)hi << 32) | lo);

#ifdef DOMUS_UNDER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &loop_stack_bottom, &loop_stack_size);
#endif
	t->fn(t->arg);
	t->ended = true;
#ifdef DOMUS_UNDER_ASAN
	/* No fake stack to keep: this stack is never entered again. */
	__sanitizer_start_switch_fiber(NULL, loop_stack_bottom, loop_stack_size);
#endif
	setcontext(&loop_ctx);
}

static void task_free(struct task *t)
{
	for (struct task **p = &tasks; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	ntasks--;
	munmap(t->map, t->map_size);
	free(t);
}

/* Resumes t from the loop; once it ends, tells its owner and lets it go. */
static void run_from_loop(struct task *t)
{
	resume(t);
	if (t->ended) {
		void (*done)(void *) = t->done;
		void *arg = t->arg;

		task_free(t);
		if (done)
			done(arg);
	}
}

int task_run(void (*fn)(void *), void (*done)(void *), void *arg)
{
	size_t page = (size_t)getpagesize();
	struct task *t;

	if (current) {
		fn(arg);
		return 1;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->map_size = TASK_STACK_SIZE + page;
	t->map = mmap(NULL, t->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
		      -1, 0);
	if (t->map == MAP_FAILED) {
		free(t);
		return -ENOMEM;
	}
	mprotect(t->map, page, PROT_NONE); /* an overflow faults rather than writes over the heap */
	if (getcontext(&t->ctx) < 0) {
		munmap(t->map, t->map_size);
		free(t);
		return -errno;
	}
	t->ctx.uc_stack.ss_sp = t->map + page;
	t->ctx.uc_stack.ss_size = TASK_STACK_SIZE;
	t->ctx.uc_link = NULL;
	t->fn = fn;
	t->arg = arg;
	t->w = (struct watch){watch_kind, t};
	makecontext(&t->ctx, (void (*)(void))task_entry, 2, (unsigned)((uintptr_t)t >> 32),
		    (unsigned)(uintptr_t)t);
	t->next = tasks;
	tasks = t;
	ntasks++;
	resume(t);
	if (t->ended) {
		task_free(t);
		return 1;
	}
	t->done = done;
	return 0;
}

static void set_deadline(struct task *t, int timeout_ms)
{
	t->has_deadline = timeout_ms >= 0;
	if (!t->has_deadline)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t->deadline);
	t->deadline.tv_sec += timeout_ms / 1000;
	t->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (t->deadline.tv_nsec >= 1000000000) {
		t->deadline.tv_sec++;
		t->deadline.tv_nsec -= 1000000000;
	}
}

int task_wait_fd(int fd, unsigned events, int timeout_ms)
{
	struct task *t = current;
	int watched = fd, ret;

	if (!t) {
		struct pollfd p = {.fd = fd, .events = (short)events};
		do
			ret = poll(&p, 1, timeout_ms);
		while (ret < 0 && errno == EINTR);
		return ret > 0 ? 0 : ret == 0 ? -ETIMEDOUT : -errno;
	}
	ret = loop->add(fd, events, &t->w);
	if (ret == -EEXIST) {
		/* The loop watches fd for its own reasons: a second descriptor of it is watched for us. */
		watched = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (watched < 0)
			return -errno;
		ret = loop->add(watched, events, &t->w);
	}
	if (ret < 0) {
		if (watched != fd)
			close(watched);
		return ret;
	}
	set_deadline(t, timeout_ms);
	t->result = -ETIMEDOUT;
	yield(t);
	loop->del(watched);
	if (watched != fd)
		close(watched);
	return t->result;
}

int task_event_wait(struct task_event *ev, int timeout_ms)
{
	struct task *t = current;

	if (!t)
		return -EWOULDBLOCK;
	t->next_wait = ev->waiters;
	ev->waiters = t;
	t->waiting_on = ev;
	set_deadline(t, timeout_ms);
	t->result = -ETIMEDOUT;
	yield(t);
	return t->result;
}

static void queue_to_run(struct task *t, int result)
{
	t->result = result;
	t->has_deadline = false;
	t->waiting_on = NULL;
	t->queued = true;
	t->next_wait = NULL;
	/* At the end: tasks run in the order they were woken. */
	struct task **p = &run_queue;
	while (*p)
		p = &(*p)->next_wait;
	*p = t;
}

void task_event_signal(struct task_event *ev)
{
	struct task *t = ev->waiters;

	ev->waiters = NULL;
	while (t) {
		struct task *next = t->next_wait;
		queue_to_run(t, 0);
		t = next;
	}
}

void task_watch_ready(struct watch *w)
{
	struct task *t = w->ptr;

	t->has_deadline = false;
	t->result = 0;
	run_from_loop(t);
}

static long ms_until(const struct timespec *when, const struct timespec *now)
{
	return (when->tv_sec - now->tv_sec) * 1000 + (when->tv_nsec - now->tv_nsec) / 1000000;
}

int task_next_timeout_ms(void)
{
	struct timespec now;
	long best = -1;

	if (run_queue)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (struct task *t = tasks; t; t = t->next)
		if (t->has_deadline) {
			long ms = ms_until(&t->deadline, &now);
			if (ms < 0)
				ms = 0;
			if (best < 0 || ms < best)
				best = ms + 1; /* past the deadline, not a millisecond short of it */
		}
	return best > 0x7fffffff ? 0x7fffffff : (int)best;
}

static void unlink_waiter(struct task *t)
{
	struct task_event *ev = t->waiting_on;

	if (!ev)
		return;
	for (struct task **p = &ev->waiters; *p; p = &(*p)->next_wait)
		if (*p == t) {
			*p = t->next_wait;
			break;
		}
	t->waiting_on = NULL;
}

void task_run_due(void)
{
	for (;;) {
		struct task *t = run_queue;
		struct timespec now;

		if (t) {
			run_queue = t->next_wait;
			t->queued = false;
			run_from_loop(t);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (t = tasks; t; t = t->next)
			if (t->has_deadline && ms_until(&t->deadline, &now) < 0)
				break;
		if (!t)
			return;
		/* Its time ran out: whatever it waited for, it goes on with -ETIMEDOUT. */
		unlink_waiter(t);
		t->has_deadline = false;
		t->result = -ETIMEDOUT;
		run_from_loop(t);
	}
}
