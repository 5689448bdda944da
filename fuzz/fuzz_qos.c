/*
 * The disk QoS spec (blk/qos.c) and the disk scheduler (blk/sched.c) on
 * hostile input. The first line is a spec, as xl.cfg, the API or the CLI
 * hand it: whatever parses formats to text that parses back to the same
 * QoS, and every refusal says why. The rest drives two groups with that QoS
 * and the default one through arrivals, picks, completions and clock steps
 * (backwards too): every request that arrives is picked or taken back
 * exactly once, and a group is never handed a request its limit holds back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk/qos.h"
#include "blk/sched.h"
#include "domain/domcfg.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQS 64

static void check_spec(const char *text, struct blk_qos *q)
{
	char err[256] = "", out[BLK_QOS_TEXT_MAX];
	struct blk_qos back;

	blk_qos_default(q);
	if (blk_qos_parse(text, q, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		blk_qos_default(q);
		return;
	}
	blk_qos_format(q, out, sizeof(out));
	blk_qos_default(&back);
	if (blk_qos_parse(out, &back, err, sizeof(err)) < 0 || !blk_qos_equal(q, &back))
		abort();
	{
		char vdev[16], canon[BLK_QOS_TEXT_MAX];
		/* The xl.cfg entry form takes the same spec after a disk's name. */
		char entry[BLK_QOS_TEXT_MAX + 8];
		memcpy(entry, "xvdb: ", 6);
		memcpy(entry + 6, out, strlen(out) + 1);
		if (disk_qos_entry_parse(entry, vdev, sizeof(vdev), canon, sizeof(canon), err, sizeof(err)) < 0 ||
		    strcmp(vdev, "xvdb") || strcmp(canon, out))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[2 * BLK_QOS_TEXT_MAX];
	size_t n = 0;
	struct blk_qos q;
	struct blk_sched s;
	struct blk_sched_group *g[2];
	struct blk_sched_req reqs[MAX_REQS], *inflight[MAX_REQS];
	unsigned nfree = MAX_REQS, ninflight = 0, arrived = 0, finished = 0, owners[MAX_REQS];
	struct blk_sched_req *freelist[MAX_REQS];
	uint64_t now = 1000000000ull;
	struct fuzz_input in;

	while (n < size && n < sizeof(text) - 1 && data[n] != '\n') {
		text[n] = (char)data[n];
		n++;
	}
	text[n] = 0;
	check_spec(text, &q);
	in = (struct fuzz_input){data + n, size - n};
	blk_sched_init(&s);
	g[0] = blk_sched_group_get(&s, "a");
	g[1] = blk_sched_group_get(&s, "b");
	blk_sched_group_ref(g[0]);
	blk_sched_group_ref(g[1]);
	blk_sched_set_qos(&s, g[0], &q, now);
	for (unsigned i = 0; i < MAX_REQS; i++)
		freelist[i] = &reqs[i];
	while (in.left) {
		unsigned op = (unsigned)fuzz_take(&in, 1) % 5;
		enum blk_sched_phase ph;
		struct blk_sched_req *r;

		if (op == 0 && nfree) {
			unsigned who = (unsigned)fuzz_take(&in, 1) & 1;
			r = freelist[--nfree];
			memset(r, 0, sizeof(*r));
			r->bytes = fuzz_take(&in, 4);
			r->owner = &owners[who];
			blk_sched_enqueue(&s, g[who], r, now);
			arrived++;
		} else if (op == 1 && ninflight < MAX_REQS && (r = blk_sched_pick(&s, now, &ph))) {
			inflight[ninflight++] = r;
		} else if (op == 2 && ninflight) {
			unsigned k = (unsigned)fuzz_take(&in, 1) % ninflight;
			r = inflight[k];
			inflight[k] = inflight[--ninflight];
			blk_sched_done(&s, r, now);
			freelist[nfree++] = r;
			finished++;
		} else if (op == 3) {
			uint64_t step = fuzz_take(&in, 4);
			now = fuzz_take(&in, 1) == 0xff && now > step ? now - step : now + step * 1000;
		} else if (op == 4) {
			uint64_t due = blk_sched_next_due(&s, now);
			if (due != UINT64_MAX && due > now && blk_sched_pick(&s, now, &ph))
				abort(); /* something went although everything waits for its limit */
		}
	}
	/* Whatever still waits is taken back (as a disk going away does), then completes. */
	for (unsigned who = 0; who < 2; who++)
		for (struct blk_sched_req *r = blk_sched_take_owner(&s, &owners[who], now), *next; r; r = next) {
			next = r->next;
			blk_sched_done(&s, r, now);
			finished++;
		}
	while (ninflight) {
		blk_sched_done(&s, inflight[--ninflight], now);
		finished++;
	}
	if (finished != arrived)
		abort();
	blk_sched_group_unref(&s, g[0]);
	blk_sched_group_unref(&s, g[1]);
	if (s.ngroups)
		abort(); /* idle and unused groups are freed */
	blk_sched_free(&s);
	return 0;
}
