/*
 * The RSIP table under random sequences of allocations, explicit requests,
 * releases, save/restore and lookups, over random reserved ranges. After
 * every step: no two slices overlap, every owner-map entry agrees with the
 * slice table, no reserved port or port 0 is handed out, and the
 * demultiplexer and the outbound check agree with the slices. abort() on a
 * violation.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/rsip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *in;
static size_t left;

static uint8_t byte(void)
{
	if (!left)
		return 0;
	left--;
	return *in++;
}

static uint16_t word(void) { return (uint16_t)(byte() << 8 | byte()); }

static bool reserved(const struct rsip_config *c, uint32_t p)
{
	if (p == 0)
		return true;
	for (size_t i = 0; i < c->n_forbidden; i++)
		if (p >= c->forbidden[i].start && p <= c->forbidden[i].end)
			return true;
	return false;
}

static void check(const struct rsip_table *t, const struct rsip_config *c)
{
	static uint32_t owner_of[65536];
	static struct rsip_slice saved[RSIP_MAX_SLICES];
	size_t n;

	memset(owner_of, 0xff, sizeof(owner_of));
	for (size_t i = 0; i < t->n_slots; i++) {
		const struct rsip_slice *s = &t->slices[i];
		if (s->start > s->end)
			continue;
		for (size_t j = 0; j < i; j++)
			if (t->slices[j].start <= t->slices[j].end &&
			    t->slices[j].domid == s->domid)
				abort(); /* one slice per domain */
		for (uint32_t p = s->start; p <= s->end; p++) {
			if (owner_of[p] != UINT32_MAX || reserved(c, p))
				abort();
			owner_of[p] = (uint32_t)i;
		}
	}
	for (uint32_t p = 0; p < 65536; p++) {
		uint32_t d;
		int rc = rsip_owner(t, (uint16_t)p, &d);
		if (owner_of[p] == UINT32_MAX) {
			if (rc != -ENOENT)
				abort();
			if (reserved(c, p) != (t->owner[p] == RSIP_OWNER_FORBIDDEN))
				abort();
			continue;
		}
		if (rc || d != t->slices[owner_of[p]].domid || t->owner[p] != owner_of[p] + 1)
			abort();
	}
	n = rsip_save(t, saved, RSIP_MAX_SLICES);
	for (size_t i = 1; i < n; i++)
		if (saved[i - 1].end >= saved[i].start)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rsip_table t;
	static struct rsip_slice saved[RSIP_MAX_SLICES];
	struct rsip_config cfg = {0};
	struct rsip_range r;
	char err[200];
	uint32_t d;

	in = data;
	left = size;
	cfg.n_forbidden = byte() % 4;
	for (size_t i = 0; i < cfg.n_forbidden; i++) {
		uint16_t a = word(), b = word();
		cfg.forbidden[i] = a <= b ? (struct rsip_range){a, b} : (struct rsip_range){b, a};
	}
	cfg.slice_size = word() % 4096;
	cfg.align = word() % 4096;
	if (rsip_init(&t, &cfg, err, sizeof(err)))
		return 0;
	for (int step = 0; left && step < 64; step++) {
		uint8_t op = byte() % 6;
		uint32_t dom = byte() % 16;
		switch (op) {
		case 0:
			if (rsip_alloc(&t, dom, word() % 8192, &r, err, sizeof(err)) == 0) {
				if (rsip_owner(&t, r.start, &d) || d != dom)
					abort();
			}
			break;
		case 1:
			r.start = word();
			r.end = (uint16_t)(r.start + word() % 4096);
			(void)rsip_request(&t, dom, r, err, sizeof(err));
			break;
		case 2:
			(void)rsip_release(&t, dom);
			break;
		case 3: {
			struct rsip_packet p = {.proto = byte(),
						.src_port = word(),
						.dst_port = word(),
						.icmp_type = byte() % 16,
						.icmp_id = word(),
						.inner_proto = byte() % 20,
						.inner_src_port = word(),
						.inner_dst_port = word()};
			bool ok = rsip_outbound_ok(&t, dom, &p);
			if (p.proto == RSIP_PROTO_TCP || p.proto == RSIP_PROTO_UDP) {
				int rc = rsip_owner(&t, p.src_port, &d);
				if (ok != (rc == 0 && d == dom))
					abort();
				if (rsip_demux(&t, &p, &d) == 0 &&
				    (rsip_slice_of(&t, d, &r) || p.dst_port < r.start ||
				     p.dst_port > r.end))
					abort();
			}
			break;
		}
		case 4: {
			/* Save, restore into a fresh table of the same configuration: the same
			 * owners. */
			size_t n = rsip_save(&t, saved, RSIP_MAX_SLICES);
			rsip_free(&t);
			if (rsip_init(&t, &cfg, err, sizeof(err)))
				abort();
			if (rsip_restore(&t, saved, n, err, sizeof(err)))
				abort();
			break;
		}
		default:
			(void)rsip_slice_of(&t, dom, &r);
			break;
		}
		check(&t, &cfg);
	}
	rsip_free(&t);
	return 0;
}
