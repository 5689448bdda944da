/* The 8250 UART as Linux's driver probes and drives it, and the CMOS clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/platform.h"
#include "devices/serial.h"

static struct serial s;

static int setup(void **state)
{
	assert_int_equal(serial_add(NULL, &s, 0x3f8, 4, -1), 0);
	return 0;
}

static void test_probe(void **state)
{
	serial_write_reg(&s, 7, 0xa5); /* scratch */
	assert_int_equal(serial_read_reg(&s, 7), 0xa5);
	serial_write_reg(&s, 4, 0x1a); /* loopback with RTS and OUT2 */
	assert_int_equal(serial_read_reg(&s, 6) & 0xf0, 0x90);
	serial_write_reg(&s, 4, 0x08);
	serial_write_reg(&s, 2, 0x01); /* FIFO enable */
	assert_int_equal(serial_read_reg(&s, 2) & 0xc0, 0xc0);
	serial_write_reg(&s, 3, 0x83); /* DLAB: divisor latch */
	serial_write_reg(&s, 0, 0x01);
	assert_int_equal(serial_read_reg(&s, 0), 0x01);
	serial_write_reg(&s, 3, 0x03);
}

static void test_thre_interrupt(void **state)
{
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x01); /* nothing pending */
	serial_write_reg(&s, 1, 0x02);                         /* enable THRE interrupt */
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x02);
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x01); /* reading IIR acknowledged it */
	serial_write_reg(&s, 0, 'x');                          /* a write empties at once */
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x02);
	assert_true(serial_read_reg(&s, 5) & 0x60);
}

static void test_input(void **state)
{
	assert_int_equal(serial_read_reg(&s, 5) & 1, 0);
	assert_int_equal(serial_input(&s, "hi", 2), 2);
	serial_write_reg(&s, 1, 0x01); /* receive interrupt */
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x04);
	assert_int_equal(serial_read_reg(&s, 5) & 1, 1);
	assert_int_equal(serial_read_reg(&s, 0), 'h');
	assert_int_equal(serial_read_reg(&s, 0), 'i');
	assert_int_equal(serial_read_reg(&s, 5) & 1, 0);
	assert_int_equal(serial_read_reg(&s, 2) & 0x0f, 0x01);
}

static void test_input_overflow(void **state)
{
	static char big[SERIAL_RX_FIFO + 100];
	memset(big, 'a', sizeof(big));
	assert_int_equal(serial_input(&s, big, sizeof(big)), SERIAL_RX_FIFO);
	assert_int_equal(serial_input(&s, "b", 1), 0);
}

static time_t fixed_time(void)
{
	return 1795527907; /* 2026-11-24 13:45:07 UTC */
}

static void test_rtc(void **state)
{
	struct rtc rtc;

	assert_int_equal(rtc_add(NULL, &rtc), 0);
	rtc.now = fixed_time;
	assert_int_equal(rtc_read(&rtc, 0x00), 0x07);
	assert_int_equal(rtc_read(&rtc, 0x02), 0x45);
	assert_int_equal(rtc_read(&rtc, 0x04), 0x13);
	assert_int_equal(rtc_read(&rtc, 0x07), 0x24);
	assert_int_equal(rtc_read(&rtc, 0x08), 0x11);
	assert_int_equal(rtc_read(&rtc, 0x09), 0x26);
	assert_int_equal(rtc_read(&rtc, 0x32), 0x20);
	assert_int_equal(rtc_read(&rtc, 0x0a) & 0x80, 0); /* no update in progress */
	assert_int_equal(rtc_read(&rtc, 0x0d) & 0x80, 0x80);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_probe, setup),
		cmocka_unit_test_setup(test_thre_interrupt, setup),
		cmocka_unit_test_setup(test_input, setup),
		cmocka_unit_test_setup(test_input_overflow, setup),
		cmocka_unit_test(test_rtc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
