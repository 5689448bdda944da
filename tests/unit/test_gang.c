/*
 * Gang scheduling's controller (vmm/gang.c) on synthetic vCPU threads: a
 * host CPU simulated in steps of 100 us, shared round-robin by whatever is
 * runnable, where one vCPU gets the CPU far less often than its sibling
 * (the host's load, a low priority). The controller sees only what it sees
 * in the VMM: each vCPU's progress (CPU time plus time halted) and whether
 * it is halted. Also the parser of KVM's binary statistics, on good and on
 * malformed files, and the gang keys through the config.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "domain/domcfg.h"
#include "domain/xlcfg.h"
#include "vmm/gang.h"

#define STEP_NS 100000ull

struct sim {
	unsigned n;
	uint64_t progress[4];
	bool halted[4];
	unsigned share[4]; /* of every 10 steps of CPU, how many vCPU i may take when it competes */
	uint64_t tick;
};

/*
 * One step of the host: of the vCPUs that are neither held nor halted,
 * one runs (vCPU i in share[i] of 10 steps, a hog the rest); a halted one
 * makes progress by waiting.
 */
static void sim_step(struct sim *s, const bool *held)
{
	unsigned slot = (unsigned)(s->tick++ % 10), acc = 0;

	for (unsigned i = 0; i < s->n; i++)
		if (s->halted[i])
			s->progress[i] += STEP_NS;
	for (unsigned i = 0; i < s->n; i++) {
		if (held[i] || s->halted[i])
			continue;
		if (slot >= acc && slot < acc + s->share[i]) {
			s->progress[i] += STEP_NS;
			return;
		}
		acc += s->share[i];
	}
}

/* Runs for ms, the controller (when on) once a period; returns the largest lead seen. */
static uint64_t run(struct sim *s, struct gang_controller *g, bool on, unsigned ms, uint64_t period_ns)
{
	bool none[4] = {false};
	uint64_t worst = 0;

	for (uint64_t t = 0; t < (uint64_t)ms * 1000000; t += STEP_NS) {
		if (on && t % period_ns == 0) {
			struct gang_sample sm[4];
			for (unsigned i = 0; i < s->n; i++)
				sm[i] = (struct gang_sample){s->progress[i], s->halted[i]};
			gang_controller_step(g, sm);
		}
		sim_step(s, on ? g->held : none);
		uint64_t lo = UINT64_MAX, hi = 0;
		for (unsigned i = 0; i < s->n; i++) {
			if (s->halted[i])
				continue;
			lo = s->progress[i] < lo ? s->progress[i] : lo;
			hi = s->progress[i] > hi ? s->progress[i] : hi;
		}
		if (lo != UINT64_MAX && hi - lo > worst)
			worst = hi - lo;
	}
	return worst;
}

static void test_leader_held_laggard_catches_up(void **state)
{
	struct sim off = {.n = 2, .share = {6, 1}}, on = off;
	struct gang_controller g;
	uint64_t bound = 5000000, period = 1000000, worst_off, worst_on;

	(void)state;
	gang_controller_init(&g, 2, bound);
	worst_off = run(&off, &g, false, 2000, period);
	worst_on = run(&on, &g, true, 2000, period);
	/* Without: vCPU 0 runs six times as often, and is a second ahead after two. */
	assert_true(worst_off > 1000000000ull);
	/* With: never more than the bound and the period it takes to see it. */
	assert_true(worst_on <= bound + period + STEP_NS);
	assert_true(g.stats[0].holds > 10);
	assert_int_equal(g.stats[1].holds, 0);
	assert_true(g.stats[0].lead_max_ns > bound / 2);
	/* The lead histogram counted a sample each period, each vCPU. */
	uint64_t samples = 0;
	for (unsigned b = 0; b < GANG_SKEW_BUCKETS; b++)
		samples += g.stats[0].lead_hist[b];
	assert_int_equal(samples, 2000000000ull / period);
	/* Held, the leader went no further than the laggard and the bound. */
	assert_true(on.progress[0] <= on.progress[1] + bound + period + STEP_NS);
}

static void test_halted_sibling_holds_nobody(void **state)
{
	struct sim s = {.n = 3, .share = {5, 5, 0}, .halted = {false, false, true}};
	struct gang_controller g;

	(void)state;
	gang_controller_init(&g, 3, 5000000);
	/* vCPU 2 is idle (halted): the others make progress and nobody waits for it. */
	run(&s, &g, true, 500, 1000000);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(g.stats[i].holds, 0);
	assert_true(s.progress[0] > 200000000ull && s.progress[1] > 200000000ull);
}

static void test_hysteresis_and_halts(void **state)
{
	struct gang_controller g;
	struct gang_sample s[2] = {{0, false}, {0, false}};

	(void)state;
	gang_controller_init(&g, 2, 5000000);
	assert_int_equal(gang_controller_step(&g, s), 0);
	/* vCPU 0 ran 20 ms while vCPU 1 ran 10: 10 ms ahead, held. */
	s[0].progress_ns = 20000000, s[1].progress_ns = 10000000;
	assert_int_equal(gang_controller_step(&g, s), 1);
	assert_true(g.held[0] && !g.held[1]);
	/* vCPU 1 ran 4 ms: 6 ms behind, more than half the bound: still held. */
	s[1].progress_ns = 14000000;
	assert_int_equal(gang_controller_step(&g, s), 1);
	/* 4 ms more: 2 ms behind, within half the bound: released. */
	s[1].progress_ns = 18000000;
	assert_int_equal(gang_controller_step(&g, s), 0);
	assert_int_equal(g.stats[0].holds, 1);
	assert_int_equal(g.stats[0].lead_max_ns, 10000000);
	/* vCPU 1 halts for a second while vCPU 0 runs: nobody is behind. */
	s[0].progress_ns += 1000000000, s[1].progress_ns += 1000000000, s[1].blocked = true;
	assert_int_equal(gang_controller_step(&g, s), 0);
	/* It wakes, having got no further ahead by idling: nobody is held. */
	s[0].progress_ns += 1000000, s[1].progress_ns += 1000000, s[1].blocked = false;
	assert_int_equal(gang_controller_step(&g, s), 0);
	assert_int_equal(g.stats[1].holds, 0);
	assert_int_equal(gang_skew_bucket(999999), 0);
	assert_int_equal(gang_skew_bucket(1000000), 1);
	assert_int_equal(gang_skew_bucket(60000000), GANG_SKEW_BUCKETS - 1);
	assert_int_equal(gang_skew_bucket_ms(GANG_SKEW_BUCKETS - 1), 0);
}

/*
 * vCPUs that own their CPUs, where the host takes part of some CPUs: vCPU i
 * runs in avail[i] of every 10 steps unless held. Runs for ms, the
 * controller once a period, and counts the periods where some held vCPUs
 * went on while others stayed held (a partial release); returns the
 * largest lead seen.
 */
static uint64_t run_dedicated(const unsigned *avail, unsigned n, struct gang_controller *g, unsigned ms,
			      uint64_t period_ns, unsigned *partial_releases)
{
	uint64_t progress[4] = {0}, worst = 0, tick = 0;

	*partial_releases = 0;
	for (uint64_t t = 0; t < (uint64_t)ms * 1000000; t += STEP_NS) {
		if (t % period_ns == 0) {
			struct gang_sample sm[4];
			bool before[4];
			unsigned released = 0, still = 0;

			for (unsigned i = 0; i < n; i++) {
				sm[i] = (struct gang_sample){progress[i], false};
				before[i] = g->held[i];
			}
			gang_controller_step(g, sm);
			for (unsigned i = 0; i < n; i++) {
				released += before[i] && !g->held[i];
				still += before[i] && g->held[i];
			}
			*partial_releases += released && still;
		}
		for (unsigned i = 0; i < n; i++)
			if (!g->held[i] && tick % 10 < avail[i])
				progress[i] += STEP_NS;
		tick++;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (unsigned i = 0; i < n; i++) {
			lo = progress[i] < lo ? progress[i] : lo;
			hi = progress[i] > hi ? progress[i] : hi;
		}
		if (hi - lo > worst)
			worst = hi - lo;
	}
	return worst;
}

/*
 * Three vCPUs on CPUs of their own; the host takes 9 of 10 steps of vCPU
 * 2's CPU and 4 of vCPU 1's. Relaxed, each leader stops and goes alone;
 * strict, the leaders stop together and all go on in the same period, and
 * the one the host holds back is never held.
 */
static void test_strict_costop_costart(void **state)
{
	const unsigned avail[3] = {10, 6, 1};
	struct gang_controller relaxed, strict;
	uint64_t bound = 5000000, period = 1000000, worst_relaxed, worst_strict;
	unsigned partial_relaxed, partial_strict;

	(void)state;
	gang_controller_init(&relaxed, 3, bound);
	gang_controller_init(&strict, 3, bound);
	strict.strict = true;
	worst_relaxed = run_dedicated(avail, 3, &relaxed, 2000, period, &partial_relaxed);
	worst_strict = run_dedicated(avail, 3, &strict, 2000, period, &partial_strict);
	assert_true(partial_relaxed > 0);
	assert_int_equal(partial_strict, 0);
	assert_true(strict.costops > 10);
	assert_int_equal(relaxed.costops, 0);
	assert_true(strict.stats[0].holds > 10 && strict.stats[1].holds > 10);
	assert_int_equal(strict.stats[2].holds, 0);
	/* Both keep the gang within the bound, a period and a step. */
	assert_true(worst_strict <= bound + period + STEP_NS);
	assert_true(worst_relaxed <= bound + period + STEP_NS);
}

/* Strict: a co-stop takes every sibling past half the bound; the co-start waits for the last of them. */
static void test_strict_steps(void **state)
{
	struct gang_controller g;
	struct gang_sample s[3] = {{0, false}, {0, false}, {0, false}};

	(void)state;
	gang_controller_init(&g, 3, 4000000);
	g.strict = true;
	assert_int_equal(gang_controller_step(&g, s), 0);
	/* vCPU 0 5 ms ahead of vCPU 2, vCPU 1 3 ms: both stop; 1 ms would not have. */
	s[0].progress_ns = 5000000, s[1].progress_ns = 3000000;
	assert_int_equal(gang_controller_step(&g, s), 2);
	assert_true(g.held[0] && g.held[1] && !g.held[2] && g.costopped);
	assert_int_equal(g.costops, 1);
	/* vCPU 2 runs 2 ms: vCPU 1 is within half the bound, vCPU 0 (3 ms) not: both wait. */
	s[2].progress_ns = 2000000;
	assert_int_equal(gang_controller_step(&g, s), 2);
	/* 1 ms more: vCPU 0 within 2 ms: both go on together. */
	s[2].progress_ns = 3000000;
	assert_int_equal(gang_controller_step(&g, s), 0);
	assert_false(g.costopped);
	/* A halted sibling neither stops the gang nor is stopped. */
	s[2].blocked = true;
	s[0].progress_ns += 20000000, s[1].progress_ns += 20000000;
	assert_int_equal(gang_controller_step(&g, s), 0);
	assert_int_equal(g.costops, 1);
}

/* A statistics file as KVM lays it out: header, id, descriptors, data. */
static size_t stats_file(char *buf, size_t len, const char *const *names, unsigned n, uint32_t name_size)
{
	struct kvm_stats_header h = {.name_size = name_size, .num_desc = n, .id_offset = sizeof(h),
				     .desc_offset = sizeof(h) + 48};
	size_t desc = sizeof(struct kvm_stats_desc) + name_size;

	h.data_offset = h.desc_offset + (uint32_t)(n * desc);
	memset(buf, 0, len);
	memcpy(buf, &h, sizeof(h));
	for (unsigned i = 0; i < n; i++) {
		struct kvm_stats_desc d = {.size = 1, .offset = i * 8};
		memcpy(buf + h.desc_offset + i * desc, &d, sizeof(d));
		snprintf(buf + h.desc_offset + i * desc + sizeof(d), name_size, "%s", names[i]);
	}
	return h.data_offset + n * 8;
}

static void test_kvm_stats_find(void **state)
{
	static const char *const names[] = {"halt_successful_poll", "halt_wait_ns", "blocking"};
	char buf[4096];
	uint64_t off = 0;
	size_t len = stats_file(buf, sizeof(buf), names, 3, 48);
	struct kvm_stats_header h;

	(void)state;
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(kvm_stats_find(buf, len, "halt_wait_ns", &off), 0);
	assert_int_equal(off, h.data_offset + 8);
	assert_int_equal(kvm_stats_find(buf, len, "blocking", &off), 0);
	assert_int_equal(off, h.data_offset + 16);
	assert_int_equal(kvm_stats_find(buf, len, "no_such_stat", &off), -ENOENT);
	/* Cut short, descriptors past the end, a name without its end, a short header. */
	assert_int_equal(kvm_stats_find(buf, h.desc_offset + 10, "blocking", &off), -EINVAL);
	assert_int_equal(kvm_stats_find(buf, 8, "blocking", &off), -EINVAL);
	h.num_desc = 1000000;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(kvm_stats_find(buf, len, "blocking", &off), -EINVAL);
	h.num_desc = 3;
	memcpy(buf, &h, sizeof(h));
	memset(buf + h.desc_offset + sizeof(struct kvm_stats_desc), 'x', 48);
	assert_int_equal(kvm_stats_find(buf, len, "halt_wait_ns", &off), -EINVAL);
}

static int spec_of(const char *text, struct domain_spec *spec, char *err, size_t errlen)
{
	struct xl_config xl;
	int ret;

	domain_spec_defaults(spec);
	ret = xl_parse(text, strlen(text), "t.cfg", &xl, err, errlen);
	if (ret < 0)
		return ret;
	ret = domain_spec_from_xl(&xl, "t.cfg", spec, err, errlen);
	xl_free(&xl);
	return ret;
}

static void test_gang_keys(void **state)
{
	struct domain_spec *spec = malloc(sizeof(*spec));
	char err[256];

	(void)state;
	assert_non_null(spec);
	assert_int_equal(spec_of("name=\"a\"\nkernel=\"k\"\nvcpus=2\ngang=1\ngang_skew_ms=8\n", spec, err,
				 sizeof(err)), 0);
	assert_int_equal(spec->vm.gang_skew_us, 8000);
	assert_int_equal(spec_of("name=\"a\"\nkernel=\"k\"\nvcpus=2\n", spec, err, sizeof(err)), 0);
	assert_int_equal(spec->gang, -1);
	assert_int_equal(spec->vm.gang_skew_us, 0);
	domain_spec_gang(spec, 1); /* domusd --gang */
	assert_int_equal(spec->vm.gang_skew_us, VM_GANG_SKEW_DEFAULT_US);
	assert_int_equal(spec_of("name=\"a\"\nkernel=\"k\"\ngang=0\n", spec, err, sizeof(err)), 0);
	domain_spec_gang(spec, 1);
	assert_int_equal(spec->vm.gang_skew_us, 0);
	assert_int_equal(spec_of("name=\"a\"\nkernel=\"k\"\ngang=2\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "gang"));
	assert_int_equal(spec_of("name=\"a\"\nkernel=\"k\"\ngang_skew_ms=0\n", spec, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "gang_skew_ms"));
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leader_held_laggard_catches_up),
		cmocka_unit_test(test_halted_sibling_holds_nobody),
		cmocka_unit_test(test_hysteresis_and_halts),
		cmocka_unit_test(test_strict_costop_costart),
		cmocka_unit_test(test_strict_steps),
		cmocka_unit_test(test_kvm_stats_find),
		cmocka_unit_test(test_gang_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
