/* Host memory accounting: MemTotal, the host's reserve, claims and releases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/memacct.h"

static void test_meminfo(void **state)
{
	uint64_t mib = 0;

	assert_int_equal(meminfo_total_mib("MemTotal:       24683416 kB\nMemFree:        1 kB\n", &mib), 0);
	assert_int_equal(mib, 24104);
	assert_int_equal(meminfo_total_mib("MemFree: 5 kB\nMemTotal:\t4194304 kB\n", &mib), 0);
	assert_int_equal(mib, 4096);
	assert_int_equal(meminfo_total_mib("MemFree: 5 kB\n", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("MemTotal: lots kB\n", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("MemTotal: 5 MB\n", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("MemTotal: 99999999999999999999999 kB\n", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("MemTotal: -2048 kB\n", &mib), -EINVAL);
	assert_int_equal(meminfo_total_mib("MemTotal: 2048 kBogus\n", &mib), -EINVAL);
}

static void test_capacity(void **state)
{
	/* An eighth for the host, at least 256 MiB, at most 2 GiB. */
	assert_int_equal(mem_account_capacity(4096, 0), 4096 - 512);
	assert_int_equal(mem_account_capacity(1024, 0), 1024 - 256);
	assert_int_equal(mem_account_capacity(65536, 0), 65536 - 2048);
	assert_int_equal(mem_account_capacity(200, 0), 0);
	/* A limit only lowers it. */
	assert_int_equal(mem_account_capacity(4096, 100), 100);
	assert_int_equal(mem_account_capacity(4096, 100000), 4096 - 512);
}

static void test_claims(void **state)
{
	struct mem_account a = {.capacity_mib = 1000};
	char err[256];

	assert_int_equal(mem_account_claim(&a, 600, err, sizeof(err)), 0);
	assert_int_equal(mem_account_free(&a), 400);
	assert_int_equal(mem_account_claim(&a, 401, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "401 MiB"));
	assert_non_null(strstr(err, "400 MiB free of 1000 MiB"));
	assert_int_equal(a.used_mib, 600);
	assert_int_equal(mem_account_claim(&a, 400, err, sizeof(err)), 0);
	assert_int_equal(mem_account_free(&a), 0);
	mem_account_release(&a, 600);
	assert_int_equal(mem_account_free(&a), 600);
	/* Releasing more than was claimed cannot wrap around. */
	mem_account_release(&a, 5000);
	assert_int_equal(a.used_mib, 0);
	assert_int_equal(mem_account_free(&a), 1000);
	/* Used beyond capacity (domains adopted after a restart): nothing is free. */
	a.used_mib = 1200;
	assert_int_equal(mem_account_free(&a), 0);
}

/* The cache takes half of the idle memory, at most its maximum, nothing when that is tiny. */
static void test_cache_policy(void **state)
{
	struct mem_account a = {.capacity_mib = 4000};
	uint64_t before;

	assert_int_equal(mem_account_cache_mib(mem_account_free(&a), 1024), 1024);
	assert_int_equal(mem_account_cache_mib(1000, 1024), 500);
	assert_int_equal(mem_account_cache_mib(1000, 0), 0); /* the cache switched off */
	assert_int_equal(mem_account_cache_mib(16, 1024), 8);
	assert_int_equal(mem_account_cache_mib(15, 1024), 0);
	assert_int_equal(mem_account_cache_mib(0, 1024), 0);
	assert_int_equal(mem_account_cache_mib(UINT64_MAX, UINT64_MAX), UINT64_MAX / 2);
	/* A domain admitted shrinks the cache, and the two together never pass the capacity. */
	for (uint64_t claim = 0; claim <= 4000; claim += 250) {
		char err[256];
		struct mem_account b = {.capacity_mib = 4000};
		assert_int_equal(mem_account_claim(&b, claim, err, sizeof(err)), 0);
		assert_true(b.used_mib + mem_account_cache_mib(mem_account_free(&b), UINT64_MAX) <= b.capacity_mib);
	}
	before = mem_account_cache_mib(mem_account_free(&a), 4000);
	a.used_mib = 3000;
	assert_true(mem_account_cache_mib(mem_account_free(&a), 4000) < before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_cache_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
