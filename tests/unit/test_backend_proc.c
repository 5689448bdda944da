/* Restarting a driver-domain child (domus-blk, domus-net): one that dies at once is backed off, not spun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/backend_proc.h"

static void test_backoff(void **state)
{
	unsigned d = 25; /* before the first restart */

	/* Dying within a second, again and again: 50, 100, 200, ... up to 5 s. */
	d = backend_restart_delay_ms(d, 10);
	assert_int_equal(d, 50);
	d = backend_restart_delay_ms(d, 60);
	assert_int_equal(d, 100);
	for (int i = 0; i < 20; i++)
		d = backend_restart_delay_ms(d, 5);
	assert_int_equal(d, 5000);
	/* One that ran a while is started again at once. */
	assert_int_equal(backend_restart_delay_ms(d, 1000), 50);
	assert_int_equal(backend_restart_delay_ms(50, 3600000), 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_backoff)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
