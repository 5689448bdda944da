/*
 * domusd's balloon policy, apart from the daemon: which running domains
 * give memory back when a new domain does not fit, and which get it again
 * when memory frees up. Pure functions over a table of domains, so the
 * policy is tested alone (tests/unit/test_balloon_policy.c).
 *
 * Reclaim takes from the idlest domain first: the one whose guest reports
 * the largest share of its memory available (MemAvailable / target). A
 * domain gives at most down to the larger of its minmem and what its guest
 * uses plus a headroom (BALLOON_HEADROOM_PCT of its target, at least
 * BALLOON_HEADROOM_MIN_MIB), so reclaim never drives a guest into its OOM
 * killer. A domain whose guest has sent no statistics is taken from last,
 * and only down to its minmem plus half the way there.
 */
#ifndef DOMUS_BALLOON_POLICY_H
#define DOMUS_BALLOON_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BALLOON_HEADROOM_PCT 10
#define BALLOON_HEADROOM_MIN_MIB 16

struct balloon_member {
	const char *name;
	uint64_t target_mib; /* what it has now (domusd's word) */
	uint64_t min_mib;    /* minmem */
	uint64_t want_mib;   /* its configured memory: what give-back restores */
	uint64_t max_mib;    /* maxmem */
	bool have_stats;
	uint64_t available_mib; /* the guest's MemAvailable, from its statistics */
	uint64_t new_target_mib; /* out: the plan */
};

/* How far reclaim may shrink m. */
uint64_t balloon_floor_mib(const struct balloon_member *m);
/*
 * Plans to free need_mib from the members, idlest first: sets every
 * new_target_mib (unchanged for those not asked) and returns what the plan
 * frees, which is less than need_mib when the members cannot give it.
 */
uint64_t balloon_plan_reclaim(struct balloon_member *m, size_t n, uint64_t need_mib);
/*
 * Plans to hand free_mib back to members below their configured memory,
 * the least idle first; returns what it hands out.
 */
uint64_t balloon_plan_give_back(struct balloon_member *m, size_t n, uint64_t free_mib);
/* The plan as text for an error message: "a: 512 -> 300 MiB, b: ..." */
void balloon_plan_describe(const struct balloon_member *m, size_t n, char *buf, size_t len);

#endif
