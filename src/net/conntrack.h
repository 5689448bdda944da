/*
 * The VFR's connection tracking: a bounded table of flows keyed by the
 * 5-tuple, so that replies and the rest of a connection the rules let in
 * pass without the rules, ICMP errors about a flow pass as RELATED, and a
 * flow's counters and times are there for the flow-record exporter.
 *
 * The table is one flat region: a header, an array of fixed-size entries
 * and an array of hash buckets, linked by indices, never pointers, so that
 * the region can live in a memfd the backend maps again after a restart
 * (ct_attach checks everything in it and rebuilds the index). ct_new
 * allocates one on the heap; ct_init lays one out in memory the caller
 * gives. No clock is read here: every call that needs time takes now, in
 * milliseconds of any monotonic clock.
 *
 * One domain cannot fill the table: each domain may hold at most
 * per_domain_limit flows (the flow counts against the domain that opened
 * it, or the domain it goes to when it came from the uplink).
 */
#ifndef DOMUS_NET_CONNTRACK_H
#define DOMUS_NET_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/packet.h"
#include "net/rules.h"

#define CT_MAX_DOMAINS 1024 /* domain ids are 0 (none: the uplink) .. CT_MAX_DOMAINS - 1 */
#define CT_NIL UINT32_MAX
#define CT_MAGIC 0x64637431u /* "dct1" */
#define CT_VERSION 1

enum ct_state {
	CT_FREE = 0,
	CT_TCP_SYN_SENT,
	CT_TCP_SYN_RECV,
	CT_TCP_ESTABLISHED,
	CT_TCP_FIN_WAIT,   /* one side sent FIN */
	CT_TCP_CLOSE_WAIT, /* the other side acknowledged it */
	CT_TCP_TIME_WAIT,  /* both sides sent FIN */
	CT_TCP_CLOSED,	   /* reset */
	CT_UDP_NEW,	   /* packets one way only */
	CT_UDP_REPLIED,
	CT_ICMP_ECHO, /* echo request seen */
	CT_ICMP_REPLIED,
	CT_STATE_COUNT
};

/* What ct_track says of one packet. */
enum ct_result {
	CT_NEW = 0,	/* no flow: the rules decide, then ct_create */
	CT_ESTABLISHED, /* part of a flow (either direction) */
	CT_RELATED,	/* an ICMP error about a flow */
	CT_INVALID,	/* cannot start a flow and is part of none (a lone ACK, an echo reply) */
	CT_UNTRACKED,	/* not something tracked: ARP, later fragments, other protocols */
};

/* Timeouts in milliseconds, per state (defaults: ct_default_timeouts). */
struct ct_timeouts {
	uint32_t ms[CT_STATE_COUNT];
};

/* Which ends of a flow are domains and networks: what the rules saw when it was created. */
struct ct_ends {
	uint8_t dir; /* VFR_DIR_* */
	uint32_t src_domain, dst_domain, src_net, dst_net;
};

/*
 * One flow, as it lies in the table. orig is the direction of the packet
 * that opened it; [0] counters count that way, [1] the replies.
 */
struct ct_flow {
	uint8_t state; /* enum ct_state; CT_FREE = unused */
	uint8_t proto;
	uint8_t fin_seen; /* TCP: bit 0 orig sent FIN, bit 1 reply sent FIN */
	uint8_t flags;	  /* CT_FLOW_F_*: the table's user's own marks, kept across restarts */
	uint32_t src, dst; /* the originator's view */
	uint16_t sport, dport;
	uint32_t next;	/* hash chain, or the free list; CT_NIL ends it */
	uint32_t owner; /* the domain the flow counts against */
	struct ct_ends ends;
	/*
	 * The rule set's generation (ct_header.rules_gen) this flow was last
	 * accepted under; it sits in what was padding before start_ms, so the
	 * region's layout (CT_VERSION) is unchanged.
	 */
	uint32_t rules_gen;
	uint64_t start_ms, last_ms;
	uint64_t packets[2], bytes[2];
};

#define CT_FLOW_F_REPORTED 0x01 /* its flow record went out when the connection closed */

struct ct_header {
	uint32_t magic, version;
	uint32_t capacity, nbuckets;
	uint32_t per_domain_limit;
	uint32_t count, free_head;
	uint32_t rules_gen; /* bumped by ct_rules_changed: flows of another generation are rechecked */
	uint64_t seed;
	uint64_t last_sweep_ms;
	uint64_t refused_full, refused_domain; /* flows not created, for the statistics */
	struct ct_timeouts timeouts;
	uint32_t dom_count[CT_MAX_DOMAINS];
};

struct ct_table;

void ct_default_timeouts(struct ct_timeouts *t);
/* Bytes a table of capacity flows takes (header, flows, buckets). */
size_t ct_region_size(uint32_t capacity);
/*
 * Lays out an empty table in mem[0, len) (at least ct_region_size, 8-byte
 * aligned). seed keys the hash (the caller takes it from getrandom so that
 * a guest cannot aim at one bucket). 0 or -EINVAL.
 */
int ct_init(void *mem, size_t len, uint32_t capacity, uint32_t per_domain_limit, uint64_t seed,
	    struct ct_table **out) __attribute__((warn_unused_result));
/*
 * Takes a table a previous process left in mem[0, len): checks the header
 * and every flow, drops flows that make no sense and rebuilds buckets,
 * free list and per-domain counts. 0, or -EINVAL with err saying why.
 */
int ct_attach(void *mem, size_t len, struct ct_table **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* ct_init on memory of its own; ct_free frees it. */
int ct_new(uint32_t capacity, uint32_t per_domain_limit, uint64_t seed, struct ct_table **out)
    __attribute__((warn_unused_result));
void ct_free(struct ct_table *ct);
/* The table's region, for ct_save: its bytes are the whole state. */
const void *ct_region(const struct ct_table *ct, size_t *len);
/* Copies the state into buf (ct_region_size bytes). 0 or -ENOSPC. */
int ct_save(const struct ct_table *ct, void *buf, size_t len);
/* A heap table from bytes ct_save wrote (checked as ct_attach does). */
int ct_restore(const void *buf, size_t len, struct ct_table **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void ct_set_timeouts(struct ct_table *ct, const struct ct_timeouts *t);
const struct ct_header *ct_stats(const struct ct_table *ct);

/*
 * Looks the packet's flow up (either direction) and, when found and not
 * idle past its timeout, moves it
 * on (TCP state, counters, last time). *flow gets its index (CT_NIL
 * without one; for CT_RELATED the flow the error refers to). A TCP packet
 * the flow's state refuses (a SYN+ACK from the originator, data before the
 * handshake) is CT_INVALID.
 */
enum ct_result ct_track(struct ct_table *ct, const struct pkt *p, uint64_t now, uint32_t *flow);
/*
 * Creates the flow for a packet ct_track said was CT_NEW and the rules
 * accept. ends is what the rules matched on. 0; -ENOSPC when the table is
 * full, -EDQUOT when the owning domain holds per_domain_limit flows,
 * -EINVAL for a packet that cannot open one (CT_INVALID, CT_UNTRACKED),
 * -EEXIST when it has one.
 */
int ct_create(struct ct_table *ct, const struct pkt *p, const struct ct_ends *ends, uint64_t now,
	      uint32_t *flow) __attribute__((warn_unused_result));
/* Sets flags (CT_FLOW_F_*) on flow i; a no-op for a free index. */
void ct_flow_set_flags(struct ct_table *ct, uint32_t i, uint8_t flags);
/* The flow at index i, or NULL when there is none. */
const struct ct_flow *ct_flow_get(const struct ct_table *ct, uint32_t i);
uint32_t ct_capacity(const struct ct_table *ct);
uint32_t ct_count(const struct ct_table *ct);
uint32_t ct_domain_count(const struct ct_table *ct, uint32_t domain);
/*
 * done sees every flow just before it leaves the table (expired, removed,
 * reset and opened again, dropped by a recheck), with its last counters
 * and times: where the flow-record exporter writes its record. Not kept in
 * the region: set again after ct_attach.
 */
void ct_set_done(struct ct_table *ct, void (*done)(void *ctx, const struct ct_flow *f), void *ctx);
/* Removes flow i (a no-op for a free index). */
void ct_remove(struct ct_table *ct, uint32_t i);
/* Removes every flow idle past its state's timeout at now. Returns how many went. */
uint32_t ct_expire(struct ct_table *ct, uint64_t now);
/* What the rules are asked about flow f: its first packet, as struct ct_ends recorded it. */
void ct_flow_match_input(const struct ct_flow *f, struct vfr_match_input *in);
/*
 * After a rule change, incrementally: every flow is to be matched again
 * against rs (which must stay valid until the next call) as its first
 * packet was (struct ct_ends); flows the rules no longer accept are
 * removed, flows still accepted stay as they are, state and counters kept.
 * Nothing is matched here: a flow is rechecked on its next packet (in
 * ct_track, before that packet counts in it or passes by it), and the
 * rest by ct_recheck_step, a few at a time between packets, so that
 * traffic never waits for the whole table.
 */
void ct_rules_changed(struct ct_table *ct, const struct vfr_ruleset *rs);
/*
 * Rechecks up to budget flows of the pending sweep (those already rechecked
 * on a packet are skipped for free). Returns how many flows it removed;
 * *more (may be NULL) says whether the sweep still has flows to visit.
 */
uint32_t ct_recheck_step(struct ct_table *ct, uint32_t budget, bool *more);
/* Whether a sweep is under way (the caller keeps calling ct_recheck_step). */
bool ct_recheck_pending(const struct ct_table *ct);
/* Flows removed by rechecks (on a packet or by the sweep) since the table was made here. */
uint64_t ct_recheck_removed(const struct ct_table *ct);
/* The whole recheck at once (ct_rules_changed, then the sweep to its end): how many went. */
uint32_t vfr_conntrack_recheck(struct ct_table *ct, const struct vfr_ruleset *rs);
const char *ct_state_name(enum ct_state s);

#endif
