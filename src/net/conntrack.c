/* The VFR's connection tracking (conntrack.h, docs/net.md). */
#include "net/conntrack.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_CAPACITY_MAX (1u << 22)
/* A full table is swept for expired flows at most this often, so a flood cannot make every
 * packet pay for a walk of the whole table. */
#define CT_SWEEP_INTERVAL_MS 1000

struct ct_table {
	struct ct_header *h;
	struct ct_flow *flows;
	uint32_t *buckets;
	void *mem;
	bool owned;
	void (*done)(void *ctx, const struct ct_flow *f);
	void *done_ctx;
	/* The incremental recheck after a rule change (ct_rules_changed): not in the region. */
	const struct vfr_ruleset *rules; /* NULL: none asked for since the table was made here */
	uint32_t recheck_next;           /* the sweep's next index; capacity once it is done */
	uint64_t recheck_removed;
};

struct ct_key {
	uint8_t proto;
	uint32_t src, dst;
	uint16_t sport, dport;
};

static const char *const state_names[CT_STATE_COUNT] = {
    "free",	 "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",  "CLOSE_WAIT",
    "TIME_WAIT", "CLOSED",   "UDP_NEW",	 "UDP_REPLIED", "ICMP_ECHO", "ICMP_REPLIED",
};

const char *ct_state_name(enum ct_state s)
{
	return (unsigned)s < CT_STATE_COUNT ? state_names[s] : "?";
}

void ct_default_timeouts(struct ct_timeouts *t)
{
	memset(t, 0, sizeof(*t));
	t->ms[CT_TCP_SYN_SENT] = 30000;
	t->ms[CT_TCP_SYN_RECV] = 30000;
	t->ms[CT_TCP_ESTABLISHED] = 24 * 3600 * 1000u; /* pf's tcp.established */
	t->ms[CT_TCP_FIN_WAIT] = 120000;
	t->ms[CT_TCP_CLOSE_WAIT] = 60000;
	t->ms[CT_TCP_TIME_WAIT] = 120000; /* 2 MSL as Linux counts it */
	t->ms[CT_TCP_CLOSED] = 10000;
	t->ms[CT_UDP_NEW] = 30000;
	t->ms[CT_UDP_REPLIED] = 180000;
	t->ms[CT_ICMP_ECHO] = 30000;
	t->ms[CT_ICMP_REPLIED] = 30000;
}

static uint32_t nbuckets_for(uint32_t capacity)
{
	uint32_t n = 1;

	while (n < capacity)
		n <<= 1;
	return n;
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static size_t flows_off(void) { return align8(sizeof(struct ct_header)); }

static size_t buckets_off(uint32_t capacity)
{
	return flows_off() + (size_t)capacity * sizeof(struct ct_flow);
}

size_t ct_region_size(uint32_t capacity)
{
	return buckets_off(capacity) + (size_t)nbuckets_for(capacity) * sizeof(uint32_t);
}

static bool proto_of_state(uint8_t proto, uint8_t state)
{
	if (state >= CT_TCP_SYN_SENT && state <= CT_TCP_CLOSED)
		return proto == PKT_PROTO_TCP;
	if (state == CT_UDP_NEW || state == CT_UDP_REPLIED)
		return proto == PKT_PROTO_UDP;
	return (state == CT_ICMP_ECHO || state == CT_ICMP_REPLIED) && proto == PKT_PROTO_ICMP;
}

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser: every input bit reaches every output bit. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The same for both directions: the two ends are taken in a fixed order. */
static uint32_t bucket_of(const struct ct_table *ct, const struct ct_key *k)
{
	uint64_t a = (uint64_t)k->src << 16 | k->sport, b = (uint64_t)k->dst << 16 | k->dport;
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
	uint64_t h = mix(ct->h->seed ^ lo);

	h = mix(h ^ hi ^ (uint64_t)k->proto << 48);
	return (uint32_t)h & (ct->h->nbuckets - 1);
}

/*
 * The flow of k: *dir 0 when k goes the way the flow's first packet did,
 * 1 the other way. want_dir >= 0 asks for that direction only (ICMP echo,
 * whose two directions have the same ports).
 */
static uint32_t find(const struct ct_table *ct, const struct ct_key *k, int want_dir, int *dir)
{
	uint32_t i = ct->buckets[bucket_of(ct, k)], steps = 0;

	while (i != CT_NIL && steps++ < ct->h->capacity) {
		const struct ct_flow *f = &ct->flows[i];

		if (f->proto == k->proto) {
			if (want_dir != 1 && f->src == k->src && f->dst == k->dst &&
			    f->sport == k->sport && f->dport == k->dport) {
				*dir = 0;
				return i;
			}
			if (want_dir != 0 && f->src == k->dst && f->dst == k->src &&
			    f->sport == k->dport && f->dport == k->sport) {
				*dir = 1;
				return i;
			}
		}
		i = f->next;
	}
	return CT_NIL;
}

static void link_flow(struct ct_table *ct, uint32_t i)
{
	struct ct_flow *f = &ct->flows[i];
	struct ct_key k = {f->proto, f->src, f->dst, f->sport, f->dport};
	uint32_t b = bucket_of(ct, &k);

	f->next = ct->buckets[b];
	ct->buckets[b] = i;
}

static void unlink_flow(struct ct_table *ct, uint32_t i)
{
	struct ct_flow *f = &ct->flows[i];
	struct ct_key k = {f->proto, f->src, f->dst, f->sport, f->dport};
	uint32_t *pp = &ct->buckets[bucket_of(ct, &k)];

	while (*pp != CT_NIL && *pp != i)
		pp = &ct->flows[*pp].next;
	if (*pp == i)
		*pp = f->next;
}

static void layout(struct ct_table *ct, void *mem)
{
	ct->mem = mem;
	ct->h = mem;
	ct->flows = (struct ct_flow *)((char *)mem + flows_off());
	ct->buckets = (uint32_t *)((char *)mem + buckets_off(ct->h->capacity));
}

/* Buckets, free list, counts from the flows alone. */
static uint32_t rebuild(struct ct_table *ct)
{
	struct ct_header *h = ct->h;
	uint32_t i, dropped = 0;

	for (i = 0; i < h->nbuckets; i++)
		ct->buckets[i] = CT_NIL;
	memset(h->dom_count, 0, sizeof(h->dom_count));
	h->count = 0;
	h->free_head = CT_NIL;
	for (i = h->capacity; i-- > 0;) {
		struct ct_flow *f = &ct->flows[i];
		struct ct_key k = {f->proto, f->src, f->dst, f->sport, f->dport};
		int dir;

		if (f->state != CT_FREE &&
		    (f->state >= CT_STATE_COUNT || !proto_of_state(f->proto, f->state) ||
		     f->owner >= CT_MAX_DOMAINS ||
		     /* A duplicate; echo flows both ways with one id are two flows. */
		     find(ct, &k, f->proto == PKT_PROTO_ICMP ? 0 : -1, &dir) != CT_NIL)) {
			dropped++;
			f->state = CT_FREE;
		}
		if (f->state == CT_FREE) {
			memset(f, 0, sizeof(*f));
			f->next = h->free_head;
			h->free_head = i;
			continue;
		}
		link_flow(ct, i);
		h->count++;
		h->dom_count[f->owner]++;
	}
	return dropped;
}

int ct_init(void *mem, size_t len, uint32_t capacity, uint32_t per_domain_limit, uint64_t seed,
	    struct ct_table **out)
{
	struct ct_table *ct;

	if (!capacity || capacity > CT_CAPACITY_MAX || len < ct_region_size(capacity) ||
	    ((uintptr_t)mem & 7))
		return -EINVAL;
	ct = calloc(1, sizeof(*ct));
	if (!ct)
		return -ENOMEM;
	memset(mem, 0, ct_region_size(capacity));
	ct->h = mem;
	ct->h->magic = CT_MAGIC;
	ct->h->version = CT_VERSION;
	ct->h->capacity = capacity;
	ct->h->nbuckets = nbuckets_for(capacity);
	ct->h->per_domain_limit = per_domain_limit ? per_domain_limit : capacity;
	ct->h->seed = seed;
	ct_default_timeouts(&ct->h->timeouts);
	layout(ct, mem);
	rebuild(ct);
	ct->recheck_next = capacity;
	*out = ct;
	return 0;
}

__attribute__((format(printf, 3, 4))) static int aerr(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int ct_attach(void *mem, size_t len, struct ct_table **out, char *err, size_t errlen)
{
	struct ct_header *h = mem;
	struct ct_table *ct;
	unsigned s;

	if (((uintptr_t)mem & 7) || len < sizeof(*h))
		return aerr(err, errlen, "state of %zu bytes holds no header", len);
	if (h->magic != CT_MAGIC || h->version != CT_VERSION)
		return aerr(err, errlen, "state has magic 0x%08x version %u, not a conntrack table",
			    h->magic, h->version);
	if (!h->capacity || h->capacity > CT_CAPACITY_MAX ||
	    h->nbuckets != nbuckets_for(h->capacity))
		return aerr(err, errlen, "state has capacity %u and %u buckets", h->capacity,
			    h->nbuckets);
	if (len < ct_region_size(h->capacity))
		return aerr(err, errlen, "state of %zu bytes, a table of %u flows takes %zu", len,
			    h->capacity, ct_region_size(h->capacity));
	if (!h->per_domain_limit)
		h->per_domain_limit = h->capacity;
	for (s = 1; s < CT_STATE_COUNT; s++)
		if (!h->timeouts.ms[s])
			return aerr(err, errlen, "state has no timeout for %s", state_names[s]);
	ct = calloc(1, sizeof(*ct));
	if (!ct)
		return -ENOMEM;
	layout(ct, mem);
	rebuild(ct);
	/* Flows a previous process left unrechecked wait for the rules its supervisor sends again. */
	ct->recheck_next = h->capacity;
	*out = ct;
	return 0;
}

int ct_new(uint32_t capacity, uint32_t per_domain_limit, uint64_t seed, struct ct_table **out)
{
	void *mem;
	int ret;

	if (!capacity || capacity > CT_CAPACITY_MAX)
		return -EINVAL;
	mem = aligned_alloc(8, align8(ct_region_size(capacity)));
	if (!mem)
		return -ENOMEM;
	ret = ct_init(mem, ct_region_size(capacity), capacity, per_domain_limit, seed, out);
	if (ret) {
		free(mem);
		return ret;
	}
	(*out)->owned = true;
	return 0;
}

void ct_free(struct ct_table *ct)
{
	if (!ct)
		return;
	if (ct->owned)
		free(ct->mem);
	free(ct);
}

const void *ct_region(const struct ct_table *ct, size_t *len)
{
	*len = ct_region_size(ct->h->capacity);
	return ct->mem;
}

int ct_save(const struct ct_table *ct, void *buf, size_t len)
{
	size_t n = ct_region_size(ct->h->capacity);

	if (len < n)
		return -ENOSPC;
	memcpy(buf, ct->mem, n);
	return 0;
}

int ct_restore(const void *buf, size_t len, struct ct_table **out, char *err, size_t errlen)
{
	void *mem;
	int ret;

	if (len > ct_region_size(CT_CAPACITY_MAX))
		return aerr(err, errlen, "state of %zu bytes too large", len);
	mem = aligned_alloc(8, align8(len ? len : 8));
	if (!mem)
		return -ENOMEM;
	memcpy(mem, buf, len);
	ret = ct_attach(mem, len, out, err, errlen);
	if (ret) {
		free(mem);
		return ret;
	}
	(*out)->owned = true;
	return 0;
}

void ct_set_timeouts(struct ct_table *ct, const struct ct_timeouts *t)
{
	unsigned s;

	for (s = 1; s < CT_STATE_COUNT; s++)
		if (t->ms[s])
			ct->h->timeouts.ms[s] = t->ms[s];
}

const struct ct_header *ct_stats(const struct ct_table *ct) { return ct->h; }

void ct_set_done(struct ct_table *ct, void (*done)(void *ctx, const struct ct_flow *f), void *ctx)
{
	ct->done = done;
	ct->done_ctx = ctx;
}

void ct_flow_set_flags(struct ct_table *ct, uint32_t i, uint8_t flags)
{
	if (i < ct->h->capacity && ct->flows[i].state != CT_FREE)
		ct->flows[i].flags |= flags;
}

const struct ct_flow *ct_flow_get(const struct ct_table *ct, uint32_t i)
{
	return i < ct->h->capacity && ct->flows[i].state != CT_FREE ? &ct->flows[i] : NULL;
}

uint32_t ct_capacity(const struct ct_table *ct) { return ct->h->capacity; }

uint32_t ct_count(const struct ct_table *ct) { return ct->h->count; }

uint32_t ct_domain_count(const struct ct_table *ct, uint32_t domain)
{
	return domain < CT_MAX_DOMAINS ? ct->h->dom_count[domain] : 0;
}

void ct_remove(struct ct_table *ct, uint32_t i)
{
	struct ct_flow *f;

	if (i >= ct->h->capacity || ct->flows[i].state == CT_FREE)
		return;
	f = &ct->flows[i];
	if (ct->done)
		ct->done(ct->done_ctx, f);
	unlink_flow(ct, i);
	ct->h->dom_count[f->owner]--;
	ct->h->count--;
	memset(f, 0, sizeof(*f));
	f->next = ct->h->free_head;
	ct->h->free_head = i;
}

static bool expired(const struct ct_table *ct, const struct ct_flow *f, uint64_t now)
{
	return now > f->last_ms && now - f->last_ms > ct->h->timeouts.ms[f->state];
}

uint32_t ct_expire(struct ct_table *ct, uint64_t now)
{
	uint32_t i, n = 0;

	for (i = 0; i < ct->h->capacity; i++) {
		if (ct->flows[i].state != CT_FREE && expired(ct, &ct->flows[i], now)) {
			ct_remove(ct, i);
			n++;
		}
	}
	ct->h->last_sweep_ms = now;
	return n;
}

/* The key of an IPv4 packet ct tracks; false for what it does not. */
static bool key_of(const struct pkt *p, struct ct_key *k)
{
	if (p->l3 != PKT_L3_IPV4 || !(p->flags & PKT_F_L4))
		return false;
	k->proto = p->proto;
	k->src = p->src;
	k->dst = p->dst;
	k->sport = p->sport;
	k->dport = p->dport;
	switch (p->proto) {
	case PKT_PROTO_TCP:
	case PKT_PROTO_UDP:
		return true;
	case PKT_PROTO_ICMP:
		return p->icmp_type == PKT_ICMP_ECHO || p->icmp_type == PKT_ICMP_ECHO_REPLY;
	}
	return false;
}

static void count(struct ct_flow *f, int dir, const struct pkt *p, uint64_t now)
{
	f->packets[dir] += p->wire_packets;
	f->bytes[dir] += p->wire_bytes;
	if (now > f->last_ms)
		f->last_ms = now;
}

/* A TCP packet on flow f in direction dir: the next state, or CT_FREE to refuse it. */
static uint8_t tcp_next(const struct ct_flow *f, int dir, uint8_t flags, uint8_t *fin_seen)
{
	bool syn = flags & PKT_TCP_SYN, ack = flags & PKT_TCP_ACK, fin = flags & PKT_TCP_FIN;
	uint8_t fins = f->fin_seen;

	/* No window tracking (docs/net.md): a reset from either side closes. */
	if (flags & PKT_TCP_RST)
		return CT_TCP_CLOSED;
	switch (f->state) {
	case CT_TCP_SYN_SENT:
		if (dir == 0)
			return syn && !ack ? CT_TCP_SYN_SENT : CT_FREE;
		return syn ? CT_TCP_SYN_RECV : CT_FREE; /* SYN+ACK, or a simultaneous open */
	case CT_TCP_SYN_RECV:
		if (syn)
			return CT_TCP_SYN_RECV; /* retransmitted */
		if (!ack)
			return CT_FREE;
		if (!fin)
			return CT_TCP_ESTABLISHED;
		break; /* the handshake's last ACK with a FIN: on to the FIN below */
	case CT_TCP_ESTABLISHED:
	case CT_TCP_FIN_WAIT:
	case CT_TCP_CLOSE_WAIT:
		if (syn)
			return CT_FREE;
		break;
	case CT_TCP_TIME_WAIT:
		return syn ? CT_FREE : CT_TCP_TIME_WAIT;
	case CT_TCP_CLOSED:
		return CT_FREE; /* only a new SYN (ct_track opens the flow again) */
	default:
		return CT_FREE;
	}
	if (fin)
		fins |= (uint8_t)(1u << dir);
	*fin_seen = fins;
	if (fins == 3)
		return CT_TCP_TIME_WAIT;
	if (fins) {
		/* The side that did not close acknowledges the FIN: half-closed. */
		if (f->state == CT_TCP_FIN_WAIT && !(fins & (1u << dir)) && ack)
			return CT_TCP_CLOSE_WAIT;
		return f->state == CT_TCP_CLOSE_WAIT ? CT_TCP_CLOSE_WAIT : CT_TCP_FIN_WAIT;
	}
	return CT_TCP_ESTABLISHED;
}

/*
 * Flow i against the rules of the current generation, if it was not checked
 * under them yet: true if it stays, false if the rules no longer accept it
 * (then it is gone).
 */
static bool recheck_flow(struct ct_table *ct, uint32_t i)
{
	struct ct_flow *f = &ct->flows[i];
	struct vfr_match_input in;

	if (!ct->rules || f->rules_gen == ct->h->rules_gen)
		return true;
	ct_flow_match_input(f, &in);
	if (vfr_rules_match(ct->rules, &in, NULL) != VFR_ACCEPT) {
		ct_remove(ct, i);
		ct->recheck_removed++;
		return false;
	}
	f->rules_gen = ct->h->rules_gen;
	return true;
}

static enum ct_result track_related(struct ct_table *ct, const struct pkt *p, uint64_t now,
				    uint32_t *flow)
{
	const struct pkt_inner *in = &p->inner;
	struct ct_key k = {in->proto, in->src, in->dst, in->sport, in->dport};
	int want = -1, dir;
	uint32_t i;

	/* The error goes back to whoever sent the datagram it quotes. */
	if (!in->has_ports || p->dst != in->src)
		return CT_INVALID;
	if (in->proto == PKT_PROTO_ICMP)
		want = in->icmp_type == PKT_ICMP_ECHO ? 0 : 1;
	else if (in->proto != PKT_PROTO_TCP && in->proto != PKT_PROTO_UDP)
		return CT_INVALID;
	i = find(ct, &k, want, &dir);
	if (i == CT_NIL || expired(ct, &ct->flows[i], now) || !recheck_flow(ct, i))
		return CT_INVALID;
	/* Counted the way the quoted datagram's answer goes; the state does not move. */
	count(&ct->flows[i], !dir, p, now);
	*flow = i;
	return CT_RELATED;
}

enum ct_result ct_track(struct ct_table *ct, const struct pkt *p, uint64_t now, uint32_t *flow)
{
	struct ct_key k;
	struct ct_flow *f;
	int want = -1, dir;
	uint32_t i;
	uint8_t next, fins;

	*flow = CT_NIL;
	if (p->l3 == PKT_L3_IPV4 && (p->flags & PKT_F_ICMP_ERROR) && p->proto == PKT_PROTO_ICMP)
		return track_related(ct, p, now, flow);
	if (!key_of(p, &k))
		return CT_UNTRACKED;
	if (p->proto == PKT_PROTO_ICMP)
		want = p->icmp_type == PKT_ICMP_ECHO ? 0 : 1;
	i = find(ct, &k, want, &dir);
	/* A flow the rules changed under is judged by them before this packet counts in it. */
	if (i != CT_NIL && !expired(ct, &ct->flows[i], now) && !recheck_flow(ct, i))
		i = CT_NIL;
	if (i == CT_NIL || expired(ct, &ct->flows[i], now)) {
		if (p->proto == PKT_PROTO_TCP)
			return (p->tcp_flags & (PKT_TCP_SYN | PKT_TCP_ACK)) == PKT_TCP_SYN
				   ? CT_NEW
				   : CT_INVALID;
		if (p->proto == PKT_PROTO_ICMP)
			return p->icmp_type == PKT_ICMP_ECHO ? CT_NEW : CT_INVALID;
		return CT_NEW;
	}
	f = &ct->flows[i];
	switch (p->proto) {
	case PKT_PROTO_TCP:
		fins = f->fin_seen;
		/* A new SYN on the same ports after the old connection closed: a new flow. */
		if ((f->state == CT_TCP_TIME_WAIT || f->state == CT_TCP_CLOSED) && dir == 0 &&
		    (p->tcp_flags & (PKT_TCP_SYN | PKT_TCP_ACK | PKT_TCP_RST)) == PKT_TCP_SYN) {
			return CT_NEW; /* ct_create replaces it */
		}
		next = tcp_next(f, dir, p->tcp_flags, &fins);
		if (next == CT_FREE)
			return CT_INVALID;
		f->state = next;
		f->fin_seen = fins;
		break;
	case PKT_PROTO_UDP:
		if (dir == 1)
			f->state = CT_UDP_REPLIED;
		break;
	case PKT_PROTO_ICMP:
		if (dir == 1)
			f->state = CT_ICMP_REPLIED;
		break;
	}
	count(f, dir, p, now);
	*flow = i;
	return CT_ESTABLISHED;
}

static uint32_t owner_of(const struct ct_ends *e)
{
	uint32_t d = e->src_domain ? e->src_domain : e->dst_domain;

	return d < CT_MAX_DOMAINS ? d : 0;
}

int ct_create(struct ct_table *ct, const struct pkt *p, const struct ct_ends *ends, uint64_t now,
	      uint32_t *flow)
{
	struct ct_header *h = ct->h;
	struct ct_key k;
	struct ct_flow *f;
	uint32_t i, owner = owner_of(ends);
	int dir;

	if (!key_of(p, &k) || (p->proto == PKT_PROTO_ICMP && p->icmp_type != PKT_ICMP_ECHO) ||
	    (p->proto == PKT_PROTO_TCP &&
	     (p->tcp_flags & (PKT_TCP_SYN | PKT_TCP_ACK | PKT_TCP_RST)) != PKT_TCP_SYN))
		return -EINVAL;
	if (ends->src_domain >= CT_MAX_DOMAINS || ends->dst_domain >= CT_MAX_DOMAINS)
		return -EINVAL;
	i = find(ct, &k, p->proto == PKT_PROTO_ICMP ? 0 : -1, &dir);
	if (i != CT_NIL) {
		f = &ct->flows[i];
		/* Gone quiet past its timeout, or closed and opened again: its record ends here. */
		if (expired(ct, f, now) ||
		    (dir == 0 && (f->state == CT_TCP_TIME_WAIT || f->state == CT_TCP_CLOSED)))
			ct_remove(ct, i);
		else
			return -EEXIST;
	}
	if ((h->free_head == CT_NIL || h->dom_count[owner] >= h->per_domain_limit) &&
	    now - h->last_sweep_ms >= CT_SWEEP_INTERVAL_MS)
		ct_expire(ct, now);
	if (h->dom_count[owner] >= h->per_domain_limit) {
		h->refused_domain++;
		return -EDQUOT;
	}
	if (h->free_head == CT_NIL) {
		h->refused_full++;
		return -ENOSPC;
	}
	i = h->free_head;
	f = &ct->flows[i];
	h->free_head = f->next;
	memset(f, 0, sizeof(*f));
	f->proto = k.proto;
	f->src = k.src;
	f->dst = k.dst;
	f->sport = k.sport;
	f->dport = k.dport;
	f->state = p->proto == PKT_PROTO_TCP   ? CT_TCP_SYN_SENT
		   : p->proto == PKT_PROTO_UDP ? CT_UDP_NEW
					       : CT_ICMP_ECHO;
	f->owner = owner;
	f->ends = *ends;
	f->rules_gen = h->rules_gen; /* the caller matched it against the current rules */
	f->start_ms = f->last_ms = now;
	count(f, 0, p, now);
	link_flow(ct, i);
	h->count++;
	h->dom_count[owner]++;
	if (flow)
		*flow = i;
	return 0;
}

void ct_flow_match_input(const struct ct_flow *f, struct vfr_match_input *in)
{
	*in = (struct vfr_match_input){
	    .dir = f->ends.dir,
	    .proto = f->proto,
	    .src = f->src,
	    .dst = f->dst,
	    .has_ports = f->proto == PKT_PROTO_TCP || f->proto == PKT_PROTO_UDP,
	    .sport = f->sport,
	    .dport = f->dport,
	    .src_domain = f->ends.src_domain,
	    .dst_domain = f->ends.dst_domain,
	    .src_net = f->ends.src_net,
	    .dst_net = f->ends.dst_net,
	};
}

void ct_rules_changed(struct ct_table *ct, const struct vfr_ruleset *rs)
{
	ct->rules = rs;
	ct->h->rules_gen++;
	/* A sweep under way starts again: flows it passed were checked against older rules. */
	ct->recheck_next = 0;
}

uint32_t ct_recheck_step(struct ct_table *ct, uint32_t budget, bool *more)
{
	uint32_t n = 0, cap = ct->h->capacity;
	uint64_t visits = (uint64_t)budget * 16; /* free slots cost little, but not nothing */

	while (ct->recheck_next < cap && budget && visits--) {
		uint32_t i = ct->recheck_next++;
		const struct ct_flow *f = &ct->flows[i];

		if (f->state == CT_FREE || f->rules_gen == ct->h->rules_gen)
			continue; /* free, or rechecked on a packet already: costs no match */
		budget--;
		if (!recheck_flow(ct, i))
			n++;
	}
	if (more)
		*more = ct->recheck_next < cap;
	return n;
}

bool ct_recheck_pending(const struct ct_table *ct) { return ct->recheck_next < ct->h->capacity; }

uint64_t ct_recheck_removed(const struct ct_table *ct) { return ct->recheck_removed; }

uint32_t vfr_conntrack_recheck(struct ct_table *ct, const struct vfr_ruleset *rs)
{
	ct_rules_changed(ct, rs);
	return ct_recheck_step(ct, UINT32_MAX, NULL);
}
