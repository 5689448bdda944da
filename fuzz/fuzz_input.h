/*
 * An input read as a sequence of operations and their operands, for the
 * targets that drive a device through many steps (fuzz_devices, fuzz_net).
 * Reading past the end gives zeros, so every input is a whole sequence.
 */
#ifndef DOMUS_FUZZ_INPUT_H
#define DOMUS_FUZZ_INPUT_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

/* The next n bytes (n <= 8) as a little-endian number. */
static inline uint64_t fuzz_take(struct fuzz_input *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->left; i++, in->p++, in->left--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

/* Up to max bytes of the input, where they are; *len says how many. */
static inline const uint8_t *fuzz_take_bytes(struct fuzz_input *in, size_t max, size_t *len)
{
	const uint8_t *p = in->p;

	*len = max < in->left ? max : in->left;
	in->p += *len;
	in->left -= *len;
	return p;
}

/*
 * A guest memory write of the driver's: a 16-bit address, a length byte
 * and that many bytes, cut at the end of the mem_size bytes at mem.
 */
static inline void fuzz_poke(struct fuzz_input *in, uint8_t *mem, size_t mem_size)
{
	size_t at = (size_t)fuzz_take(in, 2) % mem_size, len;
	const uint8_t *bytes = fuzz_take_bytes(in, (size_t)fuzz_take(in, 1), &len);

	if (len > mem_size - at)
		len = mem_size - at;
	memcpy(mem + at, bytes, len);
}

/*
 * Guest RAM of size bytes, mapped once: anonymous memory, as the balloon's
 * page discards (MADV_DONTNEED on a buffer that is not a memfd) expect.
 */
static inline uint8_t *fuzz_guest_ram(size_t size)
{
	static uint8_t *ram;

	if (!ram) {
		ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ram == MAP_FAILED)
			abort();
	}
	return ram;
}

/* A descriptor that takes whatever devices write (their output, TAP frames), opened once. */
static inline int fuzz_sink_fd(void)
{
	static int fd = -1;

	if (fd < 0 && (fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
		abort();
	return fd;
}

#endif
