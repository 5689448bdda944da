/*
 * A domain that stays up doing nothing, for control-plane tests that need
 * many cheap domains: it says so, then halts with interrupts off. With
 * "echo" on its command line it instead echoes console input back,
 * upper-cased, so a test can tell the echo from its own typing; with
 * "chatter" it prints numbered lines as fast as its console takes them, a
 * console that never goes quiet; with "spin" it computes without end and
 * never leaves the guest, a vCPU whose CPU time is all its progress (the
 * CPU scheduler's tests); "spin2" starts vCPU 1 too, and both spin.
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

/*
 * Numbered lines, 64 at a time through one string output instruction: the
 * VMM takes a page of them per exit rather than an exit per character.
 */
static void __attribute__((noreturn)) chatter(void)
{
	static char block[64 * 32];
	uint64_t n = 0;

	for (;;) {
		unsigned long len = 0;
		for (int line = 0; line < 64; line++, n++) {
			char digits[24];
			int nd = 0;
			uint64_t v = n;
			const char *word = "chatter ";
			do
				digits[nd++] = (char)('0' + v % 10);
			while ((v /= 10) != 0);
			while (*word)
				block[len++] = *word++;
			while (nd)
				block[len++] = digits[--nd];
			block[len++] = '\n';
		}
		const char *p = block;
		__asm__ volatile("rep outsb" : "+S"(p), "+c"(len) : "d"((uint16_t)COM1) : "memory");
	}
}

/* vCPU 1, with "spin2": computes without end beside vCPU 0. */
void ap_main(void)
{
	for (;;)
		__asm__ volatile("pause");
}

void payload_main(const struct hvm_start_info *si)
{
	const char *cmdline = si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "";

	putstr("idle: up\n");
	if (has_word(cmdline, "chatter"))
		chatter();
	if (has_word(cmdline, "spin2"))
		start_ap(1); /* and spins, as below */
	if (has_word(cmdline, "spin") || has_word(cmdline, "spin2"))
		for (;;)
			__asm__ volatile("pause");
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
