/*
 * The domain state stream's reader (vmm/snapshot.c) under a hostile
 * stream: a saved file or a migration sender is not trusted. It may
 * refuse, naming the reason; it must never crash, read past the input or
 * write past the payload buffer it is given.
 */
#include <stdint.h>
#include <stdlib.h>

#include "vmm/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[64 << 10];
	struct snap_stream r;
	struct snap_section sec;

	snap_stream_buffer(&r, data, size);
	if (snap_read_header(&r) < 0)
		return 0;
	/* A payload buffer smaller than a memory chunk: the reader must say -EMSGSIZE, not overrun. */
	for (int i = 0; i < 64; i++) {
		if (snap_read_section(&r, &sec, payload, sizeof(payload)) < 0 || sec.type == SNAP_END)
			break;
		if (sec.len > sizeof(payload))
			abort();
	}
	return 0;
}
