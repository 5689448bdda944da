/* domusd's balloon policy: floors, reclaim from the idlest first, give-back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/balloon_policy.h"

static struct balloon_member member(const char *name, uint64_t target, uint64_t min, uint64_t want,
				    long available)
{
	return (struct balloon_member){.name = name, .target_mib = target, .min_mib = min,
				       .want_mib = want, .max_mib = want, .have_stats = available >= 0,
				       .available_mib = available >= 0 ? (uint64_t)available : 0};
}

static void test_floor(void **state)
{
	struct balloon_member m = member("a", 512, 128, 512, 480);

	/* Uses 32, plus a headroom of 51: below minmem, which wins. */
	assert_int_equal(balloon_floor_mib(&m), 128);
	/* Uses 400: it keeps 400 + 10% of 512. */
	m.available_mib = 112;
	assert_int_equal(balloon_floor_mib(&m), 400 + 51);
	/* Headroom is at least 16 MiB. */
	m = member("b", 100, 10, 100, 90);
	assert_int_equal(balloon_floor_mib(&m), 10 + 16);
	/* A guest reporting more available than it has is all free, not an underflow. */
	m = member("c", 256, 64, 256, 9999);
	assert_int_equal(balloon_floor_mib(&m), 64);
	/* Nothing to give below minmem, nor from a guest that uses it all. */
	m = member("d", 64, 64, 64, 60);
	assert_int_equal(balloon_floor_mib(&m), 64);
	m = member("e", 256, 64, 256, 0);
	assert_int_equal(balloon_floor_mib(&m), 256);
	/* No statistics: half-way to minmem. */
	m = member("f", 512, 128, 512, -1);
	assert_int_equal(balloon_floor_mib(&m), 320);
}

static void test_reclaim_idlest_first(void **state)
{
	struct balloon_member m[3] = {
		member("busy", 512, 128, 512, 100),  /* idle 20% */
		member("idle", 512, 128, 512, 450),  /* idle 88% */
		member("quiet", 512, 128, 512, -1),  /* no statistics: last */
	};

	assert_int_equal(balloon_plan_reclaim(m, 3, 200), 200);
	assert_int_equal(m[1].new_target_mib, 312);
	assert_int_equal(m[0].new_target_mib, 512);
	assert_int_equal(m[2].new_target_mib, 512);

	/* More than idle can give: it goes to its floor, then busy, then quiet. */
	assert_int_equal(balloon_plan_reclaim(m, 3, 500), 500);
	assert_int_equal(m[1].new_target_mib, 128);
	assert_int_equal(m[0].new_target_mib, 512 - (512 - 463)); /* busy's floor: 412 + 51 */
	assert_int_equal(m[2].new_target_mib, 512 - (500 - 384 - 49));
}

static void test_reclaim_short(void **state)
{
	struct balloon_member m[2] = {
		member("a", 256, 64, 256, 200),
		member("b", 128, 128, 128, 100),
	};
	char text[256];

	/* a gives down to what it uses plus 10%: 56 + 25 = 81; b nothing. */
	assert_int_equal(balloon_plan_reclaim(m, 2, 1000), 256 - 81);
	assert_int_equal(m[0].new_target_mib, 81);
	assert_int_equal(m[1].new_target_mib, 128);
	balloon_plan_describe(m, 2, text, sizeof(text));
	assert_string_equal(text, "a 256 MiB (at least 81), b 128 MiB (at least 128)");
	/* Nobody to ask. */
	assert_int_equal(balloon_plan_reclaim(NULL, 0, 10), 0);
	/* A short buffer is cut, not overrun. */
	balloon_plan_describe(m, 2, text, 8);
	assert_int_equal(strlen(text), 7);
}

static void test_give_back(void **state)
{
	struct balloon_member m[3] = {
		member("idle", 200, 64, 512, 180),  /* wants 312 more, idle */
		member("busy", 300, 64, 512, 10),   /* wants 212 more, busy: first */
		member("full", 512, 64, 512, 10),   /* has what it wants */
	};

	assert_int_equal(balloon_plan_give_back(m, 3, 250), 250);
	assert_int_equal(m[1].new_target_mib, 512);
	assert_int_equal(m[0].new_target_mib, 238);
	assert_int_equal(m[2].new_target_mib, 512);
	/* Never past what each wants, however much is free. */
	assert_int_equal(balloon_plan_give_back(m, 3, 100000), 312 + 212);
	assert_int_equal(m[0].new_target_mib, 512);
	/* maxmem bounds it too. */
	m[0].max_mib = 300;
	assert_int_equal(balloon_plan_give_back(m, 1, 1000), 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor),
		cmocka_unit_test(test_reclaim_idlest_first),
		cmocka_unit_test(test_reclaim_short),
		cmocka_unit_test(test_give_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
