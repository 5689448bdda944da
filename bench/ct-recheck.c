/*
 * ct-recheck: what a firewall rule change costs the datapath with a full
 * flow table. The change is made the way domus-net makes it
 * (ct_rules_changed, then ct_recheck_step with VFR_RECHECK_BUDGET between
 * rounds of frames), and, for comparison, the way it was made before
 * (vfr_conntrack_recheck: the whole table at once, every port waiting).
 * The rule closes every other flow, so half the flows go either way.
 *
 *   ct-recheck [--flows N]          (default 65536)
 *
 * Output: one line "flows=N whole_ms=X step_max_us=Y step_median_us=Z
 * steps=S removed=R": the whole table's pause against the longest single
 * step's, the steps taken, the flows removed (both ways must agree).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tests/unit/net_frames.h"
#include "net/conntrack.h"
#include "net/rules.h"
#include "net/vfr.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* A table of n TCP flows from 10.0.1.5 to 10.0.2.7, even ones to port 80, odd ones to 22. */
static struct ct_table *fill(uint32_t n)
{
	struct ct_ends ends = {.dir = VFR_DIR_IN, .dst_domain = 1, .src_net = 10, .dst_net = 10};
	struct ct_table *ct;
	uint8_t b[256];
	char why[PKT_REASON_MAX];

	if (ct_new(n, 0, 1, &ct) < 0)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		struct pkt p;
		uint32_t src = IP4(10, 0, 1, 5) + (i >> 15), f;
		size_t len = frame_tcp(b, src, (uint16_t)(10000 + (i & 0x7fff)), IP4(10, 0, 2, 7),
				       i % 2 ? 22 : 80, PKT_TCP_SYN, 0);
		if (pkt_parse(b, len, &p, why, sizeof(why)) != PKT_OK || ct_create(ct, &p, &ends, 0, &f) < 0) {
			fprintf(stderr, "ct-recheck: flow %u: not made\n", i);
			exit(1);
		}
	}
	return ct;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"flows", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
	uint32_t n = 65536, removed_whole, removed_steps = 0, id;
	struct vfr_ruleset *rs;
	struct vfr_rule r;
	struct ct_table *ct;
	double t0, whole_ms, *steps;
	unsigned nsteps = 0;
	bool more = true;
	char err[160];
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'n' || !(n = (uint32_t)strtoul(optarg, NULL, 10)) || n > (1u << 20)) {
			fprintf(stderr, "usage: ct-recheck [--flows N] (1 to 1048576)\n");
			return 2;
		}
	}
	if (vfr_ruleset_new(VFR_DROP, &rs) < 0 ||
	    vfr_rule_parse("accept in proto tcp to 10.0.2.0/24 port 22,80", &r, err, sizeof(err)) < 0 ||
	    vfr_ruleset_insert(rs, 0, &r, &id) < 0 ||
	    vfr_rule_parse("drop in proto tcp to any port 80", &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "ct-recheck: rules: %s\n", err);
		return 1;
	}
	steps = calloc(n / VFR_RECHECK_BUDGET + 64, sizeof(*steps));
	/* Before: the whole table, at once. */
	ct = fill(n);
	if (!ct || !steps || vfr_ruleset_insert(rs, 0, &r, &id) < 0)
		return 1;
	t0 = now_us();
	removed_whole = vfr_conntrack_recheck(ct, rs);
	whole_ms = (now_us() - t0) / 1000;
	ct_free(ct);
	/* Now: steps between rounds. */
	if (vfr_ruleset_remove(rs, id) < 0 || !(ct = fill(n)) || vfr_ruleset_insert(rs, 0, &r, &id) < 0)
		return 1;
	t0 = now_us();
	ct_rules_changed(ct, rs);
	steps[nsteps++] = now_us() - t0;
	while (more) {
		t0 = now_us();
		removed_steps += ct_recheck_step(ct, VFR_RECHECK_BUDGET, &more);
		steps[nsteps++] = now_us() - t0;
	}
	qsort(steps, nsteps, sizeof(*steps), by_value);
	printf("flows=%u whole_ms=%.2f step_max_us=%.1f step_median_us=%.1f steps=%u removed=%u/%u\n", n,
	       whole_ms, steps[nsteps - 1], steps[nsteps / 2], nsteps, removed_steps, removed_whole);
	ct_free(ct);
	vfr_ruleset_free(rs);
	free(steps);
	return removed_steps == removed_whole ? 0 : 1;
}
