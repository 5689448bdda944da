/*
 * A domain that stays up doing nothing, for control-plane tests that need
 * many cheap domains: it says so, then halts with interrupts off. With
 * "echo" on its command line it instead echoes console input back,
 * upper-cased, so a test can tell the echo from its own typing.
 */
#include "payload.h"

#define COM1 0x3f8

static int has_word(const char *s, const char *w)
{
	for (; s && *s; s++) {
		const char *a = s, *b = w;
		while (*a && *b && *a == *b)
			a++, b++;
		if (!*b)
			return 1;
	}
	return 0;
}

void payload_main(const struct hvm_start_info *si)
{
	const char *cmdline = si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "";

	putstr("idle: up\n");
	if (!has_word(cmdline, "echo"))
		for (;;)
			__asm__ volatile("cli; hlt");
	putstr("idle: echoing\n");
	for (;;) {
		char c[2] = {0, 0};
		while (!(inb(COM1 + 5) & 0x01)) /* data ready */
			__asm__ volatile("pause");
		c[0] = (char)inb(COM1);
		if (c[0] >= 'a' && c[0] <= 'z')
			c[0] = (char)(c[0] - 'a' + 'A');
		if (c[0] == '!')
			poweroff();
		putstr(c);
	}
}
