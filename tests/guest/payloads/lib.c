#include "payload.h"

#define COM1 0x3f8

static void putc_serial(char c)
{
	while (!(inb(COM1 + 5) & 0x20)) /* transmitter holding register empty */
		;
	outb(COM1, (uint8_t)c);
}

void putstr(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s);
	}
}

void puthex(uint64_t v)
{
	char buf[19] = "0x";
	for (int i = 0; i < 16; i++)
		buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
	buf[18] = 0;
	putstr(buf);
}

void putdec(uint64_t v)
{
	char buf[21];
	int i = 20;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	putstr(buf + i);
}

void poweroff(void)
{
	outb(0x600, (5 << 2) | 0x20);
	/* Where nothing listens at 0x600 (another VMM), stop here. */
	for (;;)
		__asm__ volatile("cli; hlt");
}
