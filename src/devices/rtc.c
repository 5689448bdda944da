/*
 * MC146818 CMOS real-time clock at ports 0x70/0x71.  Time registers are
 * computed from the host's clock at every read, in BCD, 24-hour mode, with
 * the century at 0x32 as the FADT says, so the guest reads the wall time.
 */
#include <string.h>

#include "devices/platform.h"
#include "vmm/vm.h"

#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_CENTURY 0x32
#define RTC_B_24H 0x02
#define RTC_B_BINARY 0x04

static uint8_t to_bcd(struct rtc *rtc, unsigned v)
{
	if (rtc->cmos[RTC_REG_B] & RTC_B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

uint8_t rtc_read(struct rtc *rtc, uint8_t reg)
{
	time_t t = rtc->now ? rtc->now() : time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	switch (reg) {
	case 0x00: return to_bcd(rtc, (unsigned)tm.tm_sec);
	case 0x02: return to_bcd(rtc, (unsigned)tm.tm_min);
	case 0x04: return to_bcd(rtc, (unsigned)tm.tm_hour);
	case 0x06: return to_bcd(rtc, (unsigned)tm.tm_wday + 1);
	case 0x07: return to_bcd(rtc, (unsigned)tm.tm_mday);
	case 0x08: return to_bcd(rtc, (unsigned)tm.tm_mon + 1);
	case 0x09: return to_bcd(rtc, (unsigned)tm.tm_year % 100);
	case RTC_CENTURY: return to_bcd(rtc, (unsigned)(tm.tm_year + 1900) / 100);
	case RTC_REG_A: return 0x26; /* 32.768 kHz base, 1024 Hz rate; update never in progress */
	case RTC_REG_C: return 0;
	case RTC_REG_D: return 0x80; /* battery good */
	default: return reg < sizeof(rtc->cmos) ? rtc->cmos[reg] : 0xff;
	}
}

static void rtc_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct rtc *rtc = opaque;

	memset(data, 0xff, len);
	pthread_mutex_lock(&rtc->lock);
	if (off == 1)
		*(uint8_t *)data = rtc_read(rtc, rtc->index);
	pthread_mutex_unlock(&rtc->lock);
}

static void rtc_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct rtc *rtc = opaque;
	uint8_t v = *(const uint8_t *)data;

	pthread_mutex_lock(&rtc->lock);
	if (off == 0) {
		rtc->index = v & 0x7f; /* bit 7 is the NMI mask */
	} else if (rtc->index == RTC_REG_B) {
		rtc->cmos[RTC_REG_B] = v & (RTC_B_24H | RTC_B_BINARY);
	} else if (rtc->index > RTC_REG_D && rtc->index != RTC_CENTURY) {
		/* General-purpose CMOS bytes; writes to the clock itself are not kept. */
		rtc->cmos[rtc->index] = v;
	}
	pthread_mutex_unlock(&rtc->lock);
}

static const struct bus_ops rtc_ops = {.read = rtc_pio_read, .write = rtc_pio_write};

int rtc_add(struct vm *vm, struct rtc *rtc)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->cmos[RTC_REG_B] = RTC_B_24H;
	return vm ? bus_register(&vm->pio, 0x70, 2, &rtc_ops, rtc) : 0;
}
