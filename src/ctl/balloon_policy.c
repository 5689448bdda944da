/* domusd's balloon policy: see balloon_policy.h. */
#include "ctl/balloon_policy.h"

#include <stdio.h>
#include <stdlib.h>

uint64_t balloon_floor_mib(const struct balloon_member *m)
{
	uint64_t floor = m->min_mib, headroom, used;

	if (m->target_mib <= m->min_mib)
		return m->target_mib;
	if (!m->have_stats)
		return m->min_mib + (m->target_mib - m->min_mib) / 2;
	headroom = m->target_mib * BALLOON_HEADROOM_PCT / 100;
	if (headroom < BALLOON_HEADROOM_MIN_MIB)
		headroom = BALLOON_HEADROOM_MIN_MIB;
	/* A guest that reports more available than it has is read as having all of it free. */
	used = m->available_mib < m->target_mib ? m->target_mib - m->available_mib : 0;
	if (used + headroom > floor)
		floor = used + headroom;
	return floor < m->target_mib ? floor : m->target_mib;
}

/* Idleness in thousandths: the share of its memory the guest does not use; -1 without statistics. */
static long idleness(const struct balloon_member *m)
{
	if (!m->have_stats || !m->target_mib)
		return -1;
	if (m->available_mib >= m->target_mib)
		return 1000;
	return (long)(m->available_mib * 1000 / m->target_mib);
}

static size_t *order_by_idleness(const struct balloon_member *m, size_t n, bool idlest_first)
{
	size_t *ord = malloc((n ? n : 1) * sizeof(*ord));

	if (!ord)
		return NULL;
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	/* Insertion sort: a host runs tens of domains, and ties keep the table's order. */
	for (size_t i = 1; i < n; i++) {
		size_t k = ord[i], j = i;
		while (j > 0 && (idlest_first ? idleness(&m[ord[j - 1]]) < idleness(&m[k])
					      : idleness(&m[ord[j - 1]]) > idleness(&m[k]))) {
			ord[j] = ord[j - 1];
			j--;
		}
		ord[j] = k;
	}
	return ord;
}

uint64_t balloon_plan_reclaim(struct balloon_member *m, size_t n, uint64_t need_mib)
{
	size_t *ord = order_by_idleness(m, n, true);
	uint64_t freed = 0;

	for (size_t i = 0; i < n; i++)
		m[i].new_target_mib = m[i].target_mib;
	if (!ord)
		return 0;
	for (size_t i = 0; i < n && freed < need_mib; i++) {
		struct balloon_member *x = &m[ord[i]];
		uint64_t can = x->target_mib - balloon_floor_mib(x);
		uint64_t take = can < need_mib - freed ? can : need_mib - freed;

		x->new_target_mib = x->target_mib - take;
		freed += take;
	}
	free(ord);
	return freed;
}

uint64_t balloon_plan_give_back(struct balloon_member *m, size_t n, uint64_t free_mib)
{
	size_t *ord = order_by_idleness(m, n, false);
	uint64_t given = 0;

	for (size_t i = 0; i < n; i++)
		m[i].new_target_mib = m[i].target_mib;
	if (!ord)
		return 0;
	for (size_t i = 0; i < n && given < free_mib; i++) {
		struct balloon_member *x = &m[ord[i]];
		uint64_t want = x->want_mib < x->max_mib ? x->want_mib : x->max_mib;
		uint64_t lack = want > x->target_mib ? want - x->target_mib : 0;
		uint64_t give = lack < free_mib - given ? lack : free_mib - given;

		x->new_target_mib = x->target_mib + give;
		given += give;
	}
	free(ord);
	return given;
}

void balloon_plan_describe(const struct balloon_member *m, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = 0;
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s %llu MiB (at least %llu)", off ? ", " : "",
				 m[i].name, (unsigned long long)m[i].target_mib,
				 (unsigned long long)balloon_floor_mib(&m[i]));
		if (w < 0)
			break;
		off += (size_t)w;
	}
}
