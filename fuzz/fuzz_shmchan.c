/*
 * The guest channel (tests/guest/shmchan) under a hostile peer: the input
 * is the region as the peer left it (header, ring indices, ring data), then
 * a sequence of our sends and receives interleaved with the peer's writes
 * anywhere in the region. Attaching may fail and the rings may break; no
 * access may leave the region, which is allocated to its exact size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "shmchan.h"

#define RING 256
#define REGION (SHMCHAN_DATA_OFF + 2 * RING)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = {.p = data, .left = size};
	uint8_t *mem = malloc(REGION), buf[RING], msg[RING];
	struct shmchan_link l;
	const uint8_t *bytes;
	size_t len;
	bool notify;

	if (!mem)
		abort();
	memset(mem, 0, REGION);
	/* The first byte: the server's side (we lay out the region, the peer
	 * then meddles) or the client's (the peer laid it out). */
	if (fuzz_take(&in, 1) & 1) {
		if (shmchan_link_init(&l, mem, REGION, 1))
			abort();
		fuzz_poke(&in, mem, REGION);
		if (shmchan_link_accept(&l))
			goto out;
	} else {
		bytes = fuzz_take_bytes(&in, SHMCHAN_DATA_OFF, &len);
		memcpy(mem, bytes, len);
		if (shmchan_link_attach(&l, mem, REGION, 2))
			goto out;
	}
	for (int i = 0; i < 256 && in.left; i++) {
		switch (fuzz_take(&in, 1) % 4) {
		case 0:
			(void)shmchan_ring_recv(&l.rx, buf, (size_t)fuzz_take(&in, 2) % (RING + 1),
						&notify);
			break;
		case 1:
			len = (size_t)fuzz_take(&in, 2) % (RING + 1);
			memset(msg, i, len);
			(void)shmchan_ring_send(&l.tx, msg, len, &notify);
			break;
		case 2:
			shmchan_ring_set_waiting(fuzz_take(&in, 1) & 1 ? &l.tx : &l.rx, true);
			break;
		default:
			fuzz_poke(&in, mem, REGION);
			break;
		}
	}
out:
	free(mem);
	return 0;
}
