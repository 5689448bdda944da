/*
 * The disk scheduler (blk/sched.c) and its QoS spec (blk/qos.c), on a
 * simulated clock and a simulated disk that serves one request at a time
 * for as long as the cost model says.
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

#include "blk/qos.h"
#include "blk/sched.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- the QoS spec ---- */

static void test_qos_parse(void **state)
{
	struct blk_qos q;
	char err[256], text[BLK_QOS_TEXT_MAX];

	(void)state;
	blk_qos_default(&q);
	assert_int_equal(blk_qos_parse("reserve-iops=2k,weight=400,limit-bps=16M,burst-bps=32MiB,burst-ms=500,"
				       "class=interactive,deadline-ms=5", &q, err, sizeof(err)), 0);
	assert_int_equal(q.reserve_iops, 2000);
	assert_int_equal(q.weight, 400);
	assert_int_equal(q.limit_bps, 16 << 20);
	assert_int_equal(q.burst_bps, 32 << 20);
	assert_int_equal(q.burst_ms, 500);
	assert_true(q.interactive);
	assert_int_equal(q.deadline_ms, 5);
	/* A live change names only what changes; none clears a rate. */
	assert_int_equal(blk_qos_parse("limit-bps=none,burst-bps=0,class=batch", &q, err, sizeof(err)), 0);
	assert_int_equal(q.limit_bps, 0);
	assert_int_equal(q.reserve_iops, 2000);
	assert_false(q.interactive);
	blk_qos_format(&q, text, sizeof(text));
	assert_string_equal(text, "reserve-iops=2000,weight=400,burst-ms=500,deadline-ms=5");
	{
		struct blk_qos back;
		blk_qos_default(&back);
		assert_int_equal(blk_qos_parse(text, &back, err, sizeof(err)), 0);
		assert_true(blk_qos_equal(&q, &back));
	}
	blk_qos_default(&q);
	blk_qos_format(&q, text, sizeof(text));
	assert_string_equal(text, "");
	assert_int_equal(blk_qos_parse("", &q, err, sizeof(err)), 0);
}

static void expect_refused(const char *spec, const char *needle)
{
	struct blk_qos q, before;
	char err[256] = "";

	blk_qos_default(&q);
	before = q;
	assert_int_equal(blk_qos_parse(spec, &q, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("'%s' refused with '%s', which does not say '%s'", spec, err, needle);
	assert_true(blk_qos_equal(&q, &before));
}

static void test_qos_refused(void **state)
{
	(void)state;
	expect_refused("weight=0", "weight: 0 is out of bounds (1 to 10000");
	expect_refused("weight=10001", "weight: 10001 is out of bounds");
	expect_refused("limit-iops=fast", "limit-iops: 'fast' is not a number");
	expect_refused("limit-bps=1p", "limit-bps: '1p' is not a rate in bytes");
	expect_refused("limit-bps=99999999999999999999999", "limit-bps");
	expect_refused("reserve-iops=200m", "reserve-iops: 200m is out of bounds");
	expect_refused("burst-ms=5k", "burst-ms: '5k' is not a number of milliseconds");
	expect_refused("burst-ms=0", "burst-ms: 0 is out of bounds (1 to 3600000");
	expect_refused("deadline-ms=20000", "deadline-ms: 20000 is out of bounds");
	expect_refused("colour=blue", "unknown key 'colour'");
	expect_refused("weight", "'weight': expected KEY=VALUE");
	expect_refused("class=urgent", "class: 'urgent' is not interactive or batch");
	expect_refused("reserve-iops=500,limit-iops=100", "reserve-iops (500) is above limit-iops (100)");
	expect_refused("limit-iops=100,burst-iops=50", "burst-iops (50) must be above limit-iops (100)");
	expect_refused("burst-bps=1M", "burst-bps needs limit-bps");
}

/* ---- a simulated disk ---- */

struct sim_req {
	struct blk_sched_req r;
	int client;
};

struct sim_client {
	struct blk_sched_group *g;
	uint64_t bytes;  /* of each request */
	unsigned depth;  /* requests kept queued or in flight; 0: none (idle) */
	unsigned queued; /* queued or in flight now */
	uint64_t think_ns, next_at; /* a pause after each completion before the next request */
	uint64_t done_ops, done_bytes, reserve_ops;
	uint64_t max_wait;
};

struct sim {
	struct blk_sched s;
	struct sim_client c[1000];
	unsigned n;
	uint64_t now;
	uint64_t device_ns_per_op; /* the device's speed; 0: the cost model's */
};

static void sim_init(struct sim *m, unsigned n)
{
	memset(m, 0, sizeof(*m));
	blk_sched_init(&m->s);
	m->n = n;
	m->now = 1 * SEC;
	for (unsigned i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof(name), "g%u", i);
		m->c[i].g = blk_sched_group_get(&m->s, name);
		assert_non_null(m->c[i].g);
		blk_sched_group_ref(m->c[i].g);
		m->c[i].bytes = 4096;
	}
}

static void sim_qos(struct sim *m, unsigned i, const char *spec)
{
	struct blk_qos q = m->c[i].g->qos;
	char err[256];

	assert_int_equal(blk_qos_parse(spec, &q, err, sizeof(err)), 0);
	blk_sched_set_qos(&m->s, m->c[i].g, &q, m->now);
}

static void sim_refill(struct sim *m)
{
	for (unsigned i = 0; i < m->n; i++)
		while (m->c[i].queued < m->c[i].depth && m->now >= m->c[i].next_at) {
			struct sim_req *r = calloc(1, sizeof(*r));
			r->client = (int)i;
			r->r.bytes = m->c[i].bytes;
			r->r.owner = &m->c[i];
			blk_sched_enqueue(&m->s, m->c[i].g, &r->r, m->now);
			m->c[i].queued++;
		}
}

/*
 * Runs the disk for dur ns: one request at a time, each taking its cost
 * (or device_ns_per_op), clients topping their queues up as they complete.
 */
static void sim_run(struct sim *m, uint64_t dur)
{
	uint64_t end = m->now + dur;

	for (unsigned i = 0; i < m->n; i++)
		m->c[i].done_ops = m->c[i].done_bytes = m->c[i].reserve_ops = 0;
	while (m->now < end) {
		enum blk_sched_phase phase;
		struct blk_sched_req *r;
		struct sim_req *sr;
		struct sim_client *c;

		sim_refill(m);
		r = blk_sched_pick(&m->s, m->now, &phase);
		if (!r) {
			uint64_t due = blk_sched_next_due(&m->s, m->now);
			assert_true(due > m->now);
			for (unsigned i = 0; i < m->n; i++)
				if (m->c[i].next_at > m->now && m->c[i].next_at < due)
					due = m->c[i].next_at;
			m->now = due < end ? due : end;
			continue;
		}
		sr = (struct sim_req *)r;
		c = &m->c[sr->client];
		if (m->now - r->arrival_ns > c->max_wait)
			c->max_wait = m->now - r->arrival_ns;
		m->now += m->device_ns_per_op ? m->device_ns_per_op : blk_sched_cost(&m->s, r->bytes);
		blk_sched_done(&m->s, r, m->now);
		c->queued--;
		c->next_at = m->now + c->think_ns;
		if (m->now <= end) {
			c->done_ops++;
			c->done_bytes += r->bytes;
			c->reserve_ops += phase == BLK_PHASE_RESERVE;
		}
		free(sr);
	}
}

static void sim_drain(struct sim *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		struct blk_sched_req *r = blk_sched_take_owner(&m->s, &m->c[i], m->now), *next;
		for (; r; r = next) {
			next = r->next;
			blk_sched_done(&m->s, r, m->now);
			free(r);
		}
		m->c[i].depth = m->c[i].queued = 0;
		blk_sched_group_unref(&m->s, m->c[i].g);
	}
	assert_int_equal(m->s.ngroups, 0);
	blk_sched_free(&m->s);
}

static void assert_within(double got, double want, double pct, const char *what)
{
	if (got < want * (1 - pct / 100) || got > want * (1 + pct / 100))
		fail_msg("%s: %.1f, want %.1f within %.1f%%", what, got, want, pct);
}

/* ---- the scheduler ---- */

static void test_limit_holds_on_idle_disk(void **state)
{
	static struct sim m;

	(void)state;
	sim_init(&m, 1);
	sim_qos(&m, 0, "limit-iops=3000");
	m.c[0].depth = 32;
	m.device_ns_per_op = 10000; /* the disk could do 100000 IOPS */
	sim_run(&m, 10 * SEC);
	/* Firecracker measured 2765 of 3000; the limit is a ceiling and must be reached too. */
	assert_true(m.c[0].done_ops <= 30000 + 30000 / 50);
	assert_true(m.c[0].done_ops >= 30000 * 99 / 100);
	sim_qos(&m, 0, "limit-iops=0,limit-bps=10M");
	m.c[0].bytes = 64 << 10;
	sim_run(&m, 10 * SEC);
	assert_within((double)m.c[0].done_bytes, 100.0 * (1 << 20), 2, "bytes under limit-bps=10M");
	sim_drain(&m);
}

static void test_huge_request_does_not_wait_forever(void **state)
{
	static struct sim m;

	(void)state;
	sim_init(&m, 1);
	/* A request four times the limit's second: served, and then the debt is paid. */
	sim_qos(&m, 0, "limit-bps=1M");
	m.c[0].bytes = 4 << 20;
	m.c[0].depth = 2;
	m.device_ns_per_op = 1000000;
	sim_run(&m, 20 * SEC);
	assert_true(m.c[0].done_ops >= 4 && m.c[0].done_ops <= 6);
	assert_true(m.c[0].max_wait <= 9 * SEC);
	sim_drain(&m);
}

static void test_burst(void **state)
{
	static struct sim m;
	uint64_t first, second;

	(void)state;
	sim_init(&m, 1);
	sim_qos(&m, 0, "limit-iops=100,burst-iops=1000,burst-ms=1000");
	m.device_ns_per_op = 100000; /* 10000 IOPS */
	m.now += 10 * SEC;            /* idle: the bucket is full */
	m.c[0].depth = 64;
	sim_run(&m, 1 * SEC);
	first = m.c[0].done_ops;
	sim_run(&m, 5 * SEC);
	second = m.c[0].done_ops;
	/* The burst: at most 1000 a second, and it lasts about its length (900 above the limit). */
	assert_true(first <= 1000 + 2);
	assert_true(first >= 900);
	/* Then the limit again (what was left of the bucket goes in the first of these seconds). */
	assert_true(second <= 500 + 100 + 2);
	assert_true(second >= 490);
	sim_drain(&m);
}

static void test_weights_share(void **state)
{
	static struct sim m;
	double sum;

	(void)state;
	sim_init(&m, 3);
	sim_qos(&m, 0, "weight=100");
	sim_qos(&m, 1, "weight=200");
	sim_qos(&m, 2, "weight=400");
	for (unsigned i = 0; i < 3; i++)
		m.c[i].depth = 16;
	m.c[2].bytes = 64 << 10; /* a larger request costs more: shares are of device time */
	sim_run(&m, 10 * SEC);
	sum = 0;
	for (unsigned i = 0; i < 3; i++)
		sum += (double)m.c[i].done_ops * (double)blk_sched_cost(&m.s, m.c[i].bytes);
	assert_within((double)m.c[0].done_ops * (double)blk_sched_cost(&m.s, 4096), sum / 7, 1, "weight 1 share");
	assert_within((double)m.c[1].done_ops * (double)blk_sched_cost(&m.s, 4096), sum * 2 / 7, 1, "weight 2 share");
	assert_within((double)m.c[2].done_ops * (double)blk_sched_cost(&m.s, 64 << 10), sum * 4 / 7, 1,
		      "weight 4 share");
	sim_drain(&m);
}

static void test_reservation_met_under_neighbour(void **state)
{
	static struct sim m;
	struct blk_sched_stats st;

	(void)state;
	sim_init(&m, 2);
	/* The neighbour has 100 times the weight; the reservation holds all the same. */
	sim_qos(&m, 0, "reserve-iops=20000,weight=1");
	sim_qos(&m, 1, "weight=100");
	m.c[0].depth = m.c[1].depth = 32;
	m.device_ns_per_op = 20000; /* 50000 IOPS in all */
	sim_run(&m, 10 * SEC);
	assert_true(m.c[0].done_ops >= 200000 * 97 / 100);
	assert_true(m.c[0].reserve_ops > 0);
	/* Work conserving: the disk did all it could. */
	assert_within((double)(m.c[0].done_ops + m.c[1].done_ops), 500000, 0.1, "all served");
	blk_sched_stats(m.c[0].g, m.now, &st);
	assert_true(blk_sched_reserve_met(m.c[0].g, &st) >= 97);
	assert_int_equal(blk_sched_reserve_met(m.c[1].g, &st), -1);
	sim_drain(&m);
}

static void test_work_conserving(void **state)
{
	static struct sim m;

	(void)state;
	sim_init(&m, 3);
	sim_qos(&m, 0, "reserve-iops=10000,weight=1");
	sim_qos(&m, 1, "weight=1000");
	m.c[0].depth = 8;
	m.device_ns_per_op = 20000;
	/* Only the small one is busy: it gets the whole disk, not its reservation or weight. */
	sim_run(&m, 2 * SEC);
	assert_within((double)m.c[0].done_ops, 100000, 0.1, "alone");
	sim_drain(&m);
}

static void test_interactive_deadlines(void **state)
{
	static struct sim m;
	struct blk_sched_stats st;

	(void)state;
	sim_init(&m, 2);
	sim_qos(&m, 0, "reserve-iops=1000,class=interactive,deadline-ms=5");
	/* A batch group that never gets all it reserved: its tags are always due, and early. */
	sim_qos(&m, 1, "reserve-iops=45000,weight=1000");
	m.c[0].depth = 1; /* one read every 2 ms, within its reservation */
	m.c[0].think_ns = 2 * MS;
	m.c[1].depth = 64;
	m.device_ns_per_op = 25000;
	sim_run(&m, 5 * SEC);
	/* Served ahead of the batch group's reservation: it waits at most for the request before it. */
	assert_true(m.c[0].max_wait <= 2 * m.device_ns_per_op);
	blk_sched_stats(m.c[0].g, m.now, &st);
	assert_int_equal(st.deadline_missed, 0);
	assert_true(st.reserve_ops > 0);
	sim_drain(&m);
}

static void test_clock_jumps(void **state)
{
	static struct sim m;
	enum blk_sched_phase ph;
	struct blk_sched_req *r;
	unsigned got = 0, at_once = 1 + (unsigned)(BLK_SCHED_SLACK_NS * 100 / SEC); /* the slack's worth */

	(void)state;
	sim_init(&m, 1);
	m.now = 100 * SEC; /* so that going back 10 s stays a time */
	sim_qos(&m, 0, "limit-iops=100");
	m.c[0].depth = 50;
	sim_refill(&m);
	/* The clock going back changes nothing; an hour's jump gives no more than the slack. */
	while ((r = blk_sched_pick(&m.s, m.now, &ph))) {
		blk_sched_done(&m.s, r, m.now);
		free(r);
		got++;
	}
	assert_true(got <= at_once);
	while ((r = blk_sched_pick(&m.s, m.now - 10 * SEC, &ph))) {
		blk_sched_done(&m.s, r, m.now);
		free(r);
		got++;
	}
	assert_true(got <= at_once);
	m.now += 3600 * SEC;
	while ((r = blk_sched_pick(&m.s, m.now, &ph))) {
		blk_sched_done(&m.s, r, m.now);
		free(r);
		got++;
	}
	assert_true(got <= 2 * at_once);
	m.c[0].queued -= got;
	sim_drain(&m);
}

static void test_thousand_groups(void **state)
{
	static struct sim m;
	uint64_t min = UINT64_MAX, max = 0;

	(void)state;
	sim_init(&m, 1000);
	for (unsigned i = 0; i < 1000; i++) {
		m.c[i].depth = 2;
		/* One in ten is capped at 50 IOPS: the rest share what it leaves. */
		if (i % 10 == 0)
			sim_qos(&m, i, "limit-iops=50");
	}
	m.device_ns_per_op = 10000; /* 100000 IOPS */
	sim_run(&m, 2 * SEC);
	for (unsigned i = 0; i < 1000; i++) {
		if (i % 10 == 0) {
			assert_true(m.c[i].done_ops <= 102);
			continue;
		}
		if (m.c[i].done_ops < min)
			min = m.c[i].done_ops;
		if (m.c[i].done_ops > max)
			max = m.c[i].done_ops;
	}
	/* (200000 - 100 x 100) / 900 each. */
	assert_true(min >= 200 && max <= 215);
	assert_true(max - min <= min / 20);
	sim_drain(&m);
}

static void test_admission(void **state)
{
	struct blk_sched s;
	struct blk_sched_group *a, *b;
	struct blk_qos q;
	char err[512];

	(void)state;
	blk_sched_init(&s);
	s.op_ns = 100000; /* 10000 IOPS */
	a = blk_sched_group_get(&s, "a");
	b = blk_sched_group_get(&s, "b");
	blk_qos_default(&q);
	q.reserve_iops = 6000;
	assert_int_equal(blk_sched_admit(&s, a, &q, err, sizeof(err)), 0);
	blk_sched_set_qos(&s, a, &q, 0);
	q.reserve_iops = 4000;
	assert_int_equal(blk_sched_admit(&s, b, &q, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "needs 40.0% of the disk's time and other groups hold 60.0% of the 90.0%"));
	q.reserve_iops = 3000;
	assert_int_equal(blk_sched_admit(&s, b, &q, err, sizeof(err)), 0);
	/* A group's own reservation does not count against a change of it. */
	q.reserve_iops = 9000;
	assert_int_equal(blk_sched_admit(&s, a, &q, err, sizeof(err)), 0);
	blk_sched_free(&s);
}

static void test_settings(void **state)
{
	struct blk_sched_settings set = {20000, 1000, 90, 64, 0};
	char err[256];

	(void)state;
	assert_int_equal(blk_sched_settings_parse("op-ns=7260,byte-ps=492,depth=16", &set, err, sizeof(err)), 0);
	assert_int_equal(set.op_ns, 7260);
	assert_int_equal(set.byte_ps, 492);
	assert_int_equal(set.capacity_pct, 90);
	assert_int_equal(set.depth, 16);
	assert_int_equal(blk_sched_settings_parse("capacity-pct=101", &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "capacity-pct '101' must be 1 to 100"));
	assert_int_equal(blk_sched_settings_parse("depth=0", &set, err, sizeof(err)), -EINVAL);
	assert_int_equal(blk_sched_settings_parse("speed=1", &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown setting 'speed'"));
	assert_int_equal(blk_sched_settings_parse("op-ns", &set, err, sizeof(err)), -EINVAL);
	assert_int_equal(set.depth, 16);
}

static void test_move_keeps_requests(void **state)
{
	static struct sim m;
	struct blk_sched_group *shared;
	struct blk_sched_stats st;

	(void)state;
	sim_init(&m, 2);
	m.c[0].depth = 5;
	m.c[1].depth = 3;
	sim_refill(&m);
	shared = blk_sched_group_get(&m.s, "shared");
	blk_sched_group_ref(shared);
	blk_sched_move(&m.s, &m.c[0], m.c[0].g, shared, m.now);
	blk_sched_move(&m.s, &m.c[1], m.c[1].g, shared, m.now);
	blk_sched_group_unref(&m.s, m.c[0].g);
	blk_sched_group_unref(&m.s, m.c[1].g);
	blk_sched_group_ref(shared);
	m.c[0].g = m.c[1].g = shared;
	assert_int_equal(m.s.ngroups, 1);
	blk_sched_stats(shared, m.now, &st);
	assert_int_equal(st.waiting, 8);
	sim_qos(&m, 0, "limit-iops=1000");
	m.device_ns_per_op = 1000;
	sim_run(&m, 1 * SEC);
	/* The two disks share one limit. */
	assert_true(m.c[0].done_ops + m.c[1].done_ops <= 1002);
	assert_true(m.c[0].done_ops + m.c[1].done_ops >= 990);
	sim_drain(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qos_parse),
		cmocka_unit_test(test_qos_refused),
		cmocka_unit_test(test_limit_holds_on_idle_disk),
		cmocka_unit_test(test_huge_request_does_not_wait_forever),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_weights_share),
		cmocka_unit_test(test_reservation_met_under_neighbour),
		cmocka_unit_test(test_work_conserving),
		cmocka_unit_test(test_interactive_deadlines),
		cmocka_unit_test(test_clock_jumps),
		cmocka_unit_test(test_thousand_groups),
		cmocka_unit_test(test_admission),
		cmocka_unit_test(test_move_keeps_requests),
		cmocka_unit_test(test_settings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
