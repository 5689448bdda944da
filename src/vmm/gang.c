#include "vmm/gang.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "vmm/confine.h"
#include "vmm/vm.h"

static const unsigned bucket_ms[GANG_SKEW_BUCKETS - 1] = {1, 2, 5, 10, 50};

unsigned gang_skew_bucket(uint64_t lead_ns)
{
	unsigned i = 0;

	while (i < GANG_SKEW_BUCKETS - 1 && lead_ns >= (uint64_t)bucket_ms[i] * 1000000)
		i++;
	return i;
}

unsigned gang_skew_bucket_ms(unsigned i)
{
	return i < GANG_SKEW_BUCKETS - 1 ? bucket_ms[i] : 0;
}

void gang_controller_init(struct gang_controller *g, unsigned nvcpus, uint64_t bound_ns)
{
	memset(g, 0, sizeof(*g));
	g->nvcpus = nvcpus > VM_MAX_VCPUS ? VM_MAX_VCPUS : nvcpus;
	g->bound_ns = bound_ns;
}

/* Relaxed: each leader stops alone past the bound and goes on alone at half of it. */
static void decide_relaxed(struct gang_controller *g)
{
	for (unsigned i = 0; i < g->nvcpus; i++) {
		if (!g->held[i] && g->lead[i] > g->bound_ns) {
			g->held[i] = true;
			g->stats[i].holds++;
		} else if (g->held[i] && g->lead[i] <= g->bound_ns / 2) {
			g->held[i] = false; /* hysteresis: not held again at once */
		}
	}
}

/*
 * Strict: one leader past the bound stops every sibling ahead by more than
 * half of it; a runnable sibling that gets that far while they wait joins
 * them; all go on in the same period once none is that far ahead.
 */
static void decide_strict(struct gang_controller *g, const struct gang_sample *s)
{
	bool over = false, ahead = false;

	for (unsigned i = 0; i < g->nvcpus; i++) {
		if (!s[i].blocked && !g->held[i] && g->lead[i] > g->bound_ns)
			over = true;
		if (g->held[i] && g->lead[i] > g->bound_ns / 2)
			ahead = true;
	}
	if (g->costopped && !ahead) {
		g->costopped = false; /* co-start */
		memset(g->held, 0, sizeof(g->held));
		return;
	}
	if (!g->costopped && !over)
		return;
	if (!g->costopped) {
		g->costopped = true;
		g->costops++;
	}
	for (unsigned i = 0; i < g->nvcpus; i++)
		if (!g->held[i] && !s[i].blocked && g->lead[i] > g->bound_ns / 2) {
			g->held[i] = true;
			g->stats[i].holds++;
		}
}

unsigned gang_controller_step(struct gang_controller *g, const struct gang_sample *s)
{
	uint64_t step[VM_MAX_VCPUS], slowest = UINT64_MAX;
	unsigned held = 0;

	/*
	 * Each vCPU's lead grows by what it progressed this period beyond the
	 * slowest sibling that could run (neither halted nor held), and shrinks
	 * by what that sibling progressed while it was held. A halted vCPU's
	 * lead stays as it was: idle time is neither running ahead nor falling
	 * behind, or a vCPU that idles would be held once it wakes.
	 */
	for (unsigned i = 0; i < g->nvcpus; i++) {
		step[i] = g->started && s[i].progress_ns > g->last[i] ? s[i].progress_ns - g->last[i] : 0;
		g->last[i] = s[i].progress_ns;
		if (!s[i].blocked && !g->held[i] && step[i] < slowest)
			slowest = step[i];
	}
	g->started = true;
	for (unsigned i = 0; i < g->nvcpus; i++) {
		struct gang_vcpu_stats *st = &g->stats[i];
		uint64_t *lead = &g->lead[i];

		if (slowest == UINT64_MAX)
			*lead = 0; /* nobody is behind: every sibling is halted or held */
		else if (!s[i].blocked && step[i] > slowest)
			*lead += step[i] - slowest;
		else if (g->held[i])
			*lead = *lead > slowest ? *lead - slowest : 0;
		if (!s[i].blocked) {
			st->lead_hist[gang_skew_bucket(*lead)]++;
			if (*lead > st->lead_max_ns)
				st->lead_max_ns = *lead;
		}
	}
	if (g->strict)
		decide_strict(g, s);
	else
		decide_relaxed(g);
	for (unsigned i = 0; i < g->nvcpus; i++)
		held += g->held[i] ? 1 : 0;
	return held;
}

int kvm_stats_find(const void *buf, size_t len, const char *name, uint64_t *offset)
{
	struct kvm_stats_header h;
	const char *p = buf;
	size_t desc_size;

	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (h.name_size == 0 || h.name_size > 4096 || h.num_desc > 65536)
		return -EINVAL;
	desc_size = sizeof(struct kvm_stats_desc) + h.name_size;
	if (h.desc_offset > len || (size_t)h.num_desc * desc_size > len - h.desc_offset)
		return -EINVAL;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc d;
		const char *at = p + h.desc_offset + (size_t)i * desc_size;

		memcpy(&d, at, sizeof(d));
		if (strnlen(at + sizeof(d), h.name_size) == h.name_size)
			return -EINVAL; /* a name without its end */
		if (!strcmp(at + sizeof(d), name)) {
			if (d.size != 1)
				return -EINVAL;
			*offset = (uint64_t)h.data_offset + d.offset;
			return 0;
		}
	}
	return -ENOENT;
}

struct gang {
	pthread_mutex_t lock; /* ctl: the controller's thread steps it, the control thread reads it */
	struct gang_controller ctl;
	pthread_t thread;
	bool started;
	_Atomic int stop;
	uint64_t period_ns;
	clockid_t cpu_clock[VM_MAX_VCPUS];
};

static uint64_t ns_of(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

static int stat_u64(int fd, uint64_t off, uint64_t *v)
{
	ssize_t n = pread(fd, v, sizeof(*v), (off_t)off);

	return n == (ssize_t)sizeof(*v) ? 0 : n < 0 ? -errno : -EIO;
}

static void sample(struct vm *vm, struct gang *g, struct gang_sample *s)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct timespec t = {0};
		uint64_t halted = 0, blocking = 0;

		clock_gettime(g->cpu_clock[i], &t);
		(void)stat_u64(v->stats_fd, v->halt_wait_offset, &halted);
		(void)stat_u64(v->stats_fd, v->blocking_offset, &blocking);
		s[i].progress_ns = ns_of(&t) + halted;
		s[i].blocked = blocking != 0;
	}
}

static void set_hold(struct vm *vm, struct vcpu *v, bool hold)
{
	if (!hold) {
		pthread_mutex_lock(&vm->pause_lock);
		atomic_store(&v->gang_hold, 0);
		pthread_cond_broadcast(&vm->pause_cond);
		pthread_mutex_unlock(&vm->pause_lock);
		return;
	}
	atomic_store(&v->gang_hold, 1);
	v->run->immediate_exit = 1; /* closes the window between its check and KVM_RUN */
	pthread_kill(v->thread, SIGUSR1);
}

/*
 * Makes the vCPUs' holds what held says: the ones to stop are kicked out of
 * guest mode, and the ones to go on are woken by one broadcast, so a gang
 * that co-starts goes on together.
 */
static void apply_holds(struct vm *vm, const bool *held)
{
	bool wake = false;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (held[i] && !atomic_load(&vm->vcpus[i].gang_hold))
			set_hold(vm, &vm->vcpus[i], true);
	pthread_mutex_lock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (!held[i] && atomic_load(&vm->vcpus[i].gang_hold)) {
			atomic_store(&vm->vcpus[i].gang_hold, 0);
			wake = true;
		}
	if (wake)
		pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static void *gang_thread(void *arg)
{
	struct vm *vm = arg;
	struct gang *g = vm->gang;
	struct gang_sample s[VM_MAX_VCPUS];
	struct timespec next;

	if (vmm_confine_thread(VMM_THREAD_DEVICE) < 0) {
		vm_request_stop(vm, VM_ERROR, "cannot load the gang scheduler's system-call filter");
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&g->stop) && atomic_load(&vm->stop_reason) == VM_RUNNING) {
		uint64_t t = ns_of(&next) + g->period_ns;

		next.tv_sec = (time_t)(t / 1000000000ull);
		next.tv_nsec = (long)(t % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		if (atomic_load(&vm->paused)) {
			/* A paused domain's vCPUs park; none may wait here instead. */
			for (unsigned i = 0; i < vm->nvcpus; i++)
				if (g->ctl.held[i]) {
					g->ctl.held[i] = false;
					set_hold(vm, &vm->vcpus[i], false);
				}
			continue;
		}
		sample(vm, g, s);
		pthread_mutex_lock(&g->lock);
		gang_controller_step(&g->ctl, s);
		pthread_mutex_unlock(&g->lock);
		apply_holds(vm, g->ctl.held);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++)
		set_hold(vm, &vm->vcpus[i], false);
	return NULL;
}

int gang_start(struct vm *vm, char *err, size_t errlen)
{
	struct gang *g;
	uint64_t bound = (uint64_t)vm->cfg->gang_skew_us * 1000;
	int ret;

	if (!bound || vm->nvcpus < 2)
		return 0;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].stats_fd < 0) {
			snprintf(err, errlen, "gang scheduling needs KVM's vCPU statistics (halt_wait_ns "
					      "and blocking, Linux 5.16 or later)");
			return -ENOTSUP;
		}
	g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "gang scheduling: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&g->lock, NULL);
	gang_controller_init(&g->ctl, vm->nvcpus, bound);
	g->ctl.strict = vm->cfg->cpu_dedicated;
	/* A quarter of the bound, so a leader runs at most a period past it. */
	g->period_ns = bound / 4 < 500000 ? 500000 : bound / 4;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		ret = pthread_getcpuclockid(vm->vcpus[i].thread, &g->cpu_clock[i]);
		if (ret) {
			snprintf(err, errlen, "gang scheduling: vCPU %u's CPU clock: %s", i, strerror(ret));
			free(g);
			return -ret;
		}
	}
	vm->gang = g;
	ret = pthread_create(&g->thread, NULL, gang_thread, vm);
	if (ret) {
		snprintf(err, errlen, "gang scheduling: cannot start its thread: %s", strerror(ret));
		vm->gang = NULL;
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -ret;
	}
	g->started = true;
	return 0;
}

void gang_stop(struct vm *vm)
{
	struct gang *g = vm->gang;

	if (!g)
		return;
	atomic_store(&g->stop, 1);
	if (g->started)
		pthread_join(g->thread, NULL);
	vm->gang = NULL;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void gang_vcpu_stats(struct vm *vm, unsigned i, struct gang_vcpu_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!vm->gang || i >= vm->nvcpus)
		return;
	pthread_mutex_lock(&vm->gang->lock);
	*out = vm->gang->ctl.stats[i];
	pthread_mutex_unlock(&vm->gang->lock);
}

bool gang_strict(struct vm *vm, uint64_t *costops)
{
	bool strict;

	*costops = 0;
	if (!vm->gang)
		return false;
	pthread_mutex_lock(&vm->gang->lock);
	strict = vm->gang->ctl.strict;
	*costops = vm->gang->ctl.costops;
	pthread_mutex_unlock(&vm->gang->lock);
	return strict;
}
