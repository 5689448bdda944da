/*
 * The VFR's frame parser on hostile frames, then connection tracking on
 * what parsed: the first byte picks a clock step, the rest is the frame,
 * fed to a small table kept across inputs so flows build up, collide and
 * expire; now and then the table is saved and restored.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/conntrack.h"
#include "net/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ct_table *ct;
	static uint64_t now;
	static unsigned runs;
	static const struct ct_ends ends = {.dir = VFR_DIR_OUT, .src_domain = 3, .src_net = 1};
	static uint8_t saved[1 << 16];
	char why[PKT_REASON_MAX];
	struct pkt p;
	uint32_t flow;

	if (!ct && ct_new(64, 16, 42, &ct))
		abort();
	if (size < 1)
		return 0;
	now += (uint64_t)data[0] * 997;
	if (pkt_parse(data + 1, size - 1, &p, why, sizeof(why)) != PKT_OK) {
		if (!why[0] || !memchr(why, 0, sizeof(why)))
			abort(); /* every refusal says why */
		return 0;
	}
	if (ct_track(ct, &p, now, &flow) == CT_NEW) {
		int ret = ct_create(ct, &p, &ends, now, &flow);

		if (ret == 0 && !ct_flow_get(ct, flow))
			abort();
	}
	if (ct_count(ct) > ct_capacity(ct) || ct_domain_count(ct, 3) > 16)
		abort();
	if (++runs % 256 == 0) {
		struct ct_table *back;
		size_t len;

		ct_region(ct, &len);
		if (len > sizeof(saved) || ct_save(ct, saved, len) ||
		    ct_restore(saved, len, &back, why, sizeof(why)) ||
		    ct_count(back) != ct_count(ct))
			abort();
		ct_free(ct);
		ct = back;
		ct_expire(ct, now);
	}
	return 0;
}
