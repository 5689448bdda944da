/*
 * The VFR's connection tracking (src/net/conntrack.c) with a fake clock:
 * the TCP handshake to ESTABLISHED from both directions, FIN and RST
 * teardown, UDP and ICMP echo timeouts, ICMP errors RELATED to their flow,
 * a full table and the per-domain limit, a recheck after a rule change,
 * and state saved and restored (also from corrupted bytes).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/conntrack.h"
#include "net_frames.h"

#define A IP4(10, 0, 1, 5)
#define B IP4(10, 0, 2, 7)

static struct pkt parsed(const uint8_t *b, size_t n)
{
	struct pkt p;
	char why[PKT_REASON_MAX];

	if (pkt_parse(b, n, &p, why, sizeof(why)) != PKT_OK)
		fail_msg("test frame refused: %s", why);
	return p;
}

static struct pkt tcp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint8_t flags)
{
	uint8_t b[256];

	return parsed(b, frame_tcp(b, src, sport, dst, dport, flags, 0));
}

static struct pkt udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport)
{
	uint8_t b[256];

	return parsed(b, frame_udp(b, src, sport, dst, dport, 10));
}

static struct pkt echo(uint32_t src, uint32_t dst, uint8_t type, uint16_t id)
{
	uint8_t b[256];

	return parsed(b, frame_echo(b, src, dst, type, id, 1));
}

static const struct ct_ends ends_a = {.dir = VFR_DIR_OUT, .src_domain = 1, .src_net = 10};

/* A's domain 1 opens a flow with the packet p. */
static uint32_t open_flow(struct ct_table *ct, const struct pkt *p, uint64_t now)
{
	uint32_t f, g;

	assert_int_equal(ct_track(ct, p, now, &f), CT_NEW);
	assert_int_equal(f, CT_NIL);
	assert_int_equal(ct_create(ct, p, &ends_a, now, &f), 0);
	assert_int_equal(ct_create(ct, p, &ends_a, now, &g), -EEXIST);
	return f;
}

static enum ct_state state_of(struct ct_table *ct, uint32_t f)
{
	const struct ct_flow *fl = ct_flow_get(ct, f);

	return fl ? (enum ct_state)fl->state : CT_FREE;
}

static void step(struct ct_table *ct, struct pkt p, uint64_t now, enum ct_result want,
		 enum ct_state then, uint32_t flow)
{
	uint32_t f;

	assert_int_equal(ct_track(ct, &p, now, &f), want);
	if (want == CT_ESTABLISHED)
		assert_int_equal(f, flow);
	assert_string_equal(ct_state_name(state_of(ct, flow)), ct_state_name(then));
}

static void test_tcp_handshake_and_fin(void **state)
{
	struct ct_table *ct;
	struct pkt syn = tcp(A, 40000, B, 22, PKT_TCP_SYN);
	uint32_t f;
	const struct ct_flow *fl;

	assert_int_equal(ct_new(64, 0, 1234, &ct), 0);
	/* Only a SYN opens a flow: a lone ACK or SYN+ACK is part of nothing. */
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 0, CT_INVALID, CT_FREE, 0);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 0, CT_INVALID, CT_FREE, 0);
	f = open_flow(ct, &syn, 1000);
	assert_int_equal(state_of(ct, f), CT_TCP_SYN_SENT);
	step(ct, syn, 1100, CT_ESTABLISHED, CT_TCP_SYN_SENT, f); /* retransmitted */
	/* The originator cannot answer its own SYN; data before the handshake is refused. */
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_SYN | PKT_TCP_ACK), 1100, CT_INVALID, CT_TCP_SYN_SENT,
	     f);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_ACK), 1100, CT_INVALID, CT_TCP_SYN_SENT, f);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 1200, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, f);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 1300, CT_ESTABLISHED, CT_TCP_ESTABLISHED, f);
	/* Both directions find the flow. */
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_PSH | PKT_TCP_ACK), 1400, CT_ESTABLISHED,
	     CT_TCP_ESTABLISHED, f);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_PSH | PKT_TCP_ACK), 1500, CT_ESTABLISHED,
	     CT_TCP_ESTABLISHED, f);
	/* Other ports are another flow; a SYN in an established flow is refused. */
	step(ct, tcp(A, 40001, B, 22, PKT_TCP_ACK), 1500, CT_INVALID, CT_TCP_ESTABLISHED, f);
	step(ct, syn, 1500, CT_INVALID, CT_TCP_ESTABLISHED, f);

	/* B closes first, A acknowledges, then closes. */
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_FIN | PKT_TCP_ACK), 1600, CT_ESTABLISHED,
	     CT_TCP_FIN_WAIT, f);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 1700, CT_ESTABLISHED, CT_TCP_CLOSE_WAIT, f);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_PSH | PKT_TCP_ACK), 1750, CT_ESTABLISHED,
	     CT_TCP_CLOSE_WAIT, f);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_FIN | PKT_TCP_ACK), 1800, CT_ESTABLISHED,
	     CT_TCP_TIME_WAIT, f);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_ACK), 1900, CT_ESTABLISHED, CT_TCP_TIME_WAIT, f);

	/* Counters each way, times. */
	fl = ct_flow_get(ct, f);
	assert_int_equal(fl->packets[0], 7);
	assert_int_equal(fl->packets[1], 4);
	assert_int_equal(fl->bytes[0], 7 * 40);
	assert_int_equal(fl->start_ms, 1000);
	assert_int_equal(fl->last_ms, 1900);
	assert_int_equal(fl->src, A);
	assert_int_equal(fl->dport, 22);
	assert_int_equal(fl->owner, 1);

	/* The same ports open again from TIME_WAIT: a new flow replaces the old. */
	assert_int_equal(ct_track(ct, &syn, 2000, &f), CT_NEW);
	assert_int_equal(ct_create(ct, &syn, &ends_a, 2000, &f), 0);
	assert_int_equal(ct_flow_get(ct, f)->start_ms, 2000);
	assert_int_equal(ct_count(ct), 1);
	ct_free(ct);
}

static void test_tcp_reset_and_timeouts(void **state)
{
	struct ct_table *ct;
	struct pkt syn = tcp(A, 40000, B, 80, PKT_TCP_SYN);
	uint32_t f;

	assert_int_equal(ct_new(64, 0, 1, &ct), 0);
	/* A refused connection: RST+ACK from the other side closes it. */
	f = open_flow(ct, &syn, 0);
	step(ct, tcp(B, 80, A, 40000, PKT_TCP_RST | PKT_TCP_ACK), 10, CT_ESTABLISHED, CT_TCP_CLOSED,
	     f);
	step(ct, tcp(A, 40000, B, 80, PKT_TCP_ACK), 20, CT_INVALID, CT_TCP_CLOSED, f);
	/* CLOSED lasts 10 s. */
	assert_int_equal(ct_expire(ct, 10000), 0);
	assert_int_equal(ct_expire(ct, 10011), 1);
	assert_int_equal(ct_count(ct), 0);

	/* A reset in ESTABLISHED, from the originator this time. */
	f = open_flow(ct, &syn, 20000);
	step(ct, tcp(B, 80, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 20001, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, f);
	step(ct, tcp(A, 40000, B, 80, PKT_TCP_ACK), 20002, CT_ESTABLISHED, CT_TCP_ESTABLISHED, f);
	step(ct, tcp(A, 40000, B, 80, PKT_TCP_RST), 20003, CT_ESTABLISHED, CT_TCP_CLOSED, f);
	ct_remove(ct, f);
	ct_remove(ct, f); /* twice is nothing */
	assert_int_equal(ct_count(ct), 0);

	/* A handshake never finished goes after 30 s; an idle established flow after 24 h. */
	f = open_flow(ct, &syn, 100000);
	assert_int_equal(ct_expire(ct, 130000), 0);
	assert_int_equal(ct_track(ct, &syn, 130001, &f), CT_NEW); /* past its time: gone */
	assert_int_equal(ct_expire(ct, 130001), 1);
	f = open_flow(ct, &syn, 200000);
	step(ct, tcp(B, 80, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 200000, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, f);
	step(ct, tcp(A, 40000, B, 80, PKT_TCP_ACK), 200000, CT_ESTABLISHED, CT_TCP_ESTABLISHED, f);
	assert_int_equal(ct_expire(ct, 200000 + 86400000ull), 0);
	assert_int_equal(ct_expire(ct, 200001 + 86400000ull), 1);
	ct_free(ct);
}

static void test_udp_icmp(void **state)
{
	struct ct_table *ct;
	struct pkt q = udp(A, 5353, B, 53), ping = echo(A, B, PKT_ICMP_ECHO, 7);
	uint32_t f, g;

	assert_int_equal(ct_new(64, 0, 1, &ct), 0);
	f = open_flow(ct, &q, 0);
	assert_int_equal(state_of(ct, f), CT_UDP_NEW);
	/* One way only: 30 s. */
	assert_int_equal(ct_expire(ct, 30000), 0);
	assert_int_equal(ct_expire(ct, 30001), 1);
	f = open_flow(ct, &q, 40000);
	step(ct, udp(B, 53, A, 5353), 41000, CT_ESTABLISHED, CT_UDP_REPLIED, f);
	/* Replied: 180 s after the last packet. */
	step(ct, q, 100000, CT_ESTABLISHED, CT_UDP_REPLIED, f);
	assert_int_equal(ct_expire(ct, 280000), 0);
	assert_int_equal(ct_expire(ct, 280001), 1);

	/* Echo: the request opens, the reply matches; a reply alone is part of nothing. */
	step(ct, echo(B, A, PKT_ICMP_ECHO_REPLY, 7), 0, CT_INVALID, CT_FREE, 0);
	g = open_flow(ct, &ping, 300000);
	assert_int_equal(state_of(ct, g), CT_ICMP_ECHO);
	step(ct, echo(B, A, PKT_ICMP_ECHO_REPLY, 8), 300001, CT_INVALID, CT_ICMP_ECHO, g);
	step(ct, echo(B, A, PKT_ICMP_ECHO_REPLY, 7), 300002, CT_ESTABLISHED, CT_ICMP_REPLIED, g);
	/* B's own ping to A with the same id is another flow. */
	assert_int_equal(ct_track(ct, &(struct pkt){0}, 0, &f), CT_UNTRACKED);
	struct pkt bping = echo(B, A, PKT_ICMP_ECHO, 7);
	assert_int_equal(ct_track(ct, &bping, 300003, &f), CT_NEW);
	assert_int_equal(ct_expire(ct, 330002), 0);
	assert_int_equal(ct_expire(ct, 330003), 1);
	/* Other ICMP (a timestamp request) is not tracked: the rules alone decide. */
	uint8_t b[64];
	size_t n = frame_echo(b, A, B, 13, 1, 1);
	struct pkt ts = parsed(b, n);
	assert_int_equal(ct_track(ct, &ts, 0, &f), CT_UNTRACKED);
	assert_int_equal(ct_create(ct, &ts, &ends_a, 0, &f), -EINVAL);
	ct_free(ct);
}

static void test_related(void **state)
{
	struct ct_table *ct;
	uint8_t orig[256], e[256];
	struct pkt q, err;
	uint32_t f, g;

	assert_int_equal(ct_new(64, 0, 1, &ct), 0);
	q = parsed(orig, frame_udp(orig, A, 5353, B, 53, 4));
	f = open_flow(ct, &q, 0);
	/* B's port unreachable about A's datagram. */
	err = parsed(e, frame_icmp_error(e, B, A, PKT_ICMP_UNREACH, 3, orig));
	assert_int_equal(ct_track(ct, &err, 10, &g), CT_RELATED);
	assert_int_equal(g, f);
	assert_int_equal(ct_flow_get(ct, f)->packets[1], 1);
	assert_int_equal(state_of(ct, f), CT_UDP_NEW); /* the state did not move */
	/* From a router on the way (time exceeded) too. */
	err = parsed(e, frame_icmp_error(e, IP4(10, 0, 0, 1), A, PKT_ICMP_TIME_EXCEEDED, 0, orig));
	assert_int_equal(ct_track(ct, &err, 10, &g), CT_RELATED);
	/* Sent to someone other than the datagram's sender: not related. */
	err = parsed(e, frame_icmp_error(e, B, IP4(10, 0, 1, 6), PKT_ICMP_UNREACH, 3, orig));
	assert_int_equal(ct_track(ct, &err, 10, &g), CT_INVALID);
	/* About a flow that does not exist. */
	q = parsed(orig, frame_udp(orig, A, 5354, B, 53, 4));
	err = parsed(e, frame_icmp_error(e, B, A, PKT_ICMP_UNREACH, 3, orig));
	assert_int_equal(ct_track(ct, &err, 10, &g), CT_INVALID);
	/* About an echo request. */
	q = parsed(orig, frame_echo(orig, A, B, PKT_ICMP_ECHO, 9, 1));
	f = open_flow(ct, &q, 20);
	err = parsed(e, frame_icmp_error(e, B, A, PKT_ICMP_UNREACH, 1, orig));
	assert_int_equal(ct_track(ct, &err, 30, &g), CT_RELATED);
	assert_int_equal(g, f);
	/* About a TCP SYN, to the sender. */
	q = parsed(orig, frame_tcp(orig, A, 40000, B, 25, PKT_TCP_SYN, 0));
	f = open_flow(ct, &q, 20);
	err = parsed(e, frame_icmp_error(e, B, A, PKT_ICMP_UNREACH, 10, orig));
	assert_int_equal(ct_track(ct, &err, 30, &g), CT_RELATED);
	assert_int_equal(g, f);
	ct_free(ct);
}

static void test_limits(void **state)
{
	struct ct_table *ct;
	struct ct_ends d1 = ends_a, d2 = {.dir = VFR_DIR_IN, .dst_domain = 2, .dst_net = 10};
	struct pkt p;
	uint32_t f, i;

	/* 8 flows in all, at most 5 for one domain. */
	assert_int_equal(ct_new(8, 5, 1, &ct), 0);
	for (i = 0; i < 5; i++) {
		p = udp(A, (uint16_t)(1000 + i), B, 53);
		assert_int_equal(ct_create(ct, &p, &d1, 0, &f), 0);
	}
	p = udp(A, 2000, B, 53);
	assert_int_equal(ct_create(ct, &p, &d1, 0, &f), -EDQUOT);
	assert_int_equal(ct_domain_count(ct, 1), 5);
	/* Domain 2 (flows from the uplink to it count against it) still gets its own. */
	for (i = 0; i < 3; i++) {
		p = udp(IP4(8, 8, 8, 8), (uint16_t)(3000 + i), B, 53);
		assert_int_equal(ct_create(ct, &p, &d2, 0, &f), 0);
	}
	assert_int_equal(ct_domain_count(ct, 2), 3);
	p = udp(IP4(8, 8, 8, 8), 4000, B, 53);
	assert_int_equal(ct_create(ct, &p, &d2, 0, &f), -ENOSPC);
	assert_int_equal(ct_stats(ct)->refused_full, 1);
	assert_int_equal(ct_stats(ct)->refused_domain, 1);
	/* Full of expired flows: the next one sweeps them out (at most once a second). */
	assert_int_equal(ct_create(ct, &p, &d2, 30001, &f), 0);
	assert_int_equal(ct_count(ct), 1);
	assert_int_equal(ct_domain_count(ct, 1), 0);
	/* Out-of-range domain ids are refused, not written past the counts. */
	struct ct_ends bad = {.src_domain = CT_MAX_DOMAINS};
	p = udp(A, 9, B, 9);
	assert_int_equal(ct_create(ct, &p, &bad, 0, &f), -EINVAL);
	ct_free(ct);
	assert_int_equal(ct_new(0, 0, 1, &ct), -EINVAL);
}

static uint32_t done_count;

static void done(void *ctx, const struct ct_flow *f)
{
	done_count++;
	assert_int_not_equal(f->state, CT_FREE);
}

static void test_recheck(void **state)
{
	struct vfr_ruleset *rs;
	struct vfr_rule r;
	struct ct_table *ct;
	struct ct_ends web = {.dir = VFR_DIR_IN, .dst_domain = 1, .src_net = 10, .dst_net = 10};
	struct pkt ssh = tcp(A, 40000, B, 22, PKT_TCP_SYN),
		   http = tcp(A, 40001, B, 80, PKT_TCP_SYN);
	uint32_t fs, fh, id;
	char err[128];

	assert_int_equal(vfr_ruleset_new(VFR_DROP, &rs), 0);
	assert_int_equal(
	    vfr_rule_parse("accept in proto tcp to 10.0.2.0/24 port 22,80", &r, err, sizeof(err)),
	    0);
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, &id), 0);
	assert_int_equal(ct_new(64, 0, 1, &ct), 0);
	ct_set_done(ct, done, NULL);
	assert_int_equal(ct_create(ct, &ssh, &web, 0, &fs), 0);
	assert_int_equal(ct_create(ct, &http, &web, 0, &fh), 0);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 1, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, fs);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 2, CT_ESTABLISHED, CT_TCP_ESTABLISHED, fs);
	assert_int_equal(vfr_conntrack_recheck(ct, rs), 0);

	/* Port 80 is closed ahead of the accept: ssh stays, http goes. */
	assert_int_equal(vfr_rule_parse("drop in proto tcp to any port 80", &r, err, sizeof(err)),
			 0);
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, NULL), 0);
	done_count = 0;
	assert_int_equal(vfr_conntrack_recheck(ct, rs), 1);
	assert_int_equal(done_count, 1);
	assert_int_equal(state_of(ct, fs), CT_TCP_ESTABLISHED);
	assert_null(ct_flow_get(ct, fh));
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 3, CT_ESTABLISHED, CT_TCP_ESTABLISHED, fs);
	/* The accept removed: the default (drop) takes ssh too. */
	assert_int_equal(vfr_ruleset_remove(rs, id), 0);
	assert_int_equal(vfr_conntrack_recheck(ct, rs), 1);
	assert_int_equal(ct_count(ct), 0);
	ct_free(ct);
	vfr_ruleset_free(rs);
}

static uint64_t done_last_packets;

static void done_packets(void *ctx, const struct ct_flow *f)
{
	done_last_packets = f->packets[0] + f->packets[1];
}

/*
 * A rule change checks nothing at once: a flow is judged on its next
 * packet (before it counts), the rest by steps of a bounded budget, and a
 * second change in the middle of a sweep starts it again under the newest
 * rules. Every verdict ends as the synchronous recheck's would.
 */
static void test_recheck_incremental(void **state)
{
	struct vfr_ruleset *rs;
	struct vfr_rule r;
	struct ct_table *ct;
	struct ct_ends web = {.dir = VFR_DIR_IN, .dst_domain = 1, .src_net = 10, .dst_net = 10};
	uint32_t flows[400], removed = 0, steps = 0, id80, f;
	char err[128];
	bool more = true;

	assert_int_equal(vfr_ruleset_new(VFR_DROP, &rs), 0);
	assert_int_equal(
	    vfr_rule_parse("accept in proto tcp to 10.0.2.0/24 port 22,80", &r, err, sizeof(err)),
	    0);
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, NULL), 0);
	assert_int_equal(ct_new(1024, 0, 1, &ct), 0);
	/* Even flows to port 80, odd ones to 22, all established. */
	for (uint16_t i = 0; i < 400; i++) {
		struct pkt syn = tcp(A, (uint16_t)(20000 + i), B, i % 2 ? 22 : 80, PKT_TCP_SYN);
		assert_int_equal(ct_create(ct, &syn, &web, 0, &flows[i]), 0);
	}
	assert_false(ct_recheck_pending(ct));

	assert_int_equal(vfr_rule_parse("drop in proto tcp to any port 80", &r, err, sizeof(err)),
			 0);
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, &id80), 0);
	ct_rules_changed(ct, rs);
	assert_true(ct_recheck_pending(ct));
	assert_int_equal(ct_count(ct), 400); /* nothing checked yet */

	/* The next packet of a port-80 flow: refused, not counted in the flow, the flow gone. */
	{
		struct pkt ack = tcp(B, 80, A, 20000, PKT_TCP_SYN | PKT_TCP_ACK);
		ct_set_done(ct, done_packets, NULL);
		assert_int_equal(ct_track(ct, &ack, 1, &f), CT_INVALID);
		assert_int_equal(f, CT_NIL);
		assert_null(ct_flow_get(ct, flows[0]));
		assert_int_equal(done_last_packets, 1); /* the SYN only */
		ct_set_done(ct, NULL, NULL);
	}
	/* A port-22 flow's packet passes, and the sweep will not match it again. */
	step(ct, tcp(B, 22, A, 20001, PKT_TCP_SYN | PKT_TCP_ACK), 1, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, flows[1]);
	assert_int_equal(ct_count(ct), 399);
	assert_int_equal(ct_recheck_removed(ct), 1);

	/* Steps of 50 flows: each removes at most 50, and a few of them finish the table. */
	while (more) {
		uint32_t n = ct_recheck_step(ct, 50, &more);
		assert_true(n <= 50);
		removed += n;
		steps++;
		assert_true(steps < 100);
		if (steps == 2) {
			assert_true(more);
			assert_int_equal(ct_count(ct), 399 - removed);
		}
	}
	assert_true(steps >= 8); /* 398 flows to match, 50 a step */
	assert_int_equal(removed, 199);
	assert_int_equal(ct_count(ct), 200);
	for (unsigned i = 0; i < 400; i++)
		if (i % 2)
			assert_non_null(ct_flow_get(ct, flows[i]));
		else
			assert_null(ct_flow_get(ct, flows[i]));
	assert_false(ct_recheck_pending(ct));
	assert_int_equal(ct_recheck_step(ct, 50, &more), 0);

	/* Two changes, the second mid-sweep: port 80 open again, then the accept gone. */
	assert_int_equal(vfr_ruleset_remove(rs, id80), 0);
	ct_rules_changed(ct, rs);
	ct_recheck_step(ct, 20, &more);
	assert_true(more);
	assert_int_equal(ct_count(ct), 200);
	assert_int_equal(vfr_ruleset_remove(rs, 1), 0);
	ct_rules_changed(ct, rs);
	do
		ct_recheck_step(ct, 64, &more);
	while (more);
	assert_int_equal(ct_count(ct), 0);
	ct_free(ct);
	vfr_ruleset_free(rs);
}

static void test_save_restore(void **state)
{
	struct ct_table *ct, *back;
	struct pkt syn = tcp(A, 40000, B, 22, PKT_TCP_SYN), q = udp(A, 5353, B, 53);
	size_t len;
	uint8_t *buf;
	uint32_t fs, fq, f;
	char err[128];

	assert_int_equal(ct_new(32, 4, 99, &ct), 0);
	fs = open_flow(ct, &syn, 0);
	step(ct, tcp(B, 22, A, 40000, PKT_TCP_SYN | PKT_TCP_ACK), 1, CT_ESTABLISHED,
	     CT_TCP_SYN_RECV, fs);
	step(ct, tcp(A, 40000, B, 22, PKT_TCP_ACK), 2, CT_ESTABLISHED, CT_TCP_ESTABLISHED, fs);
	fq = open_flow(ct, &q, 3);
	ct_region(ct, &len);
	assert_int_equal(len, ct_region_size(32));
	buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(ct_save(ct, buf, len - 1), -ENOSPC);
	assert_int_equal(ct_save(ct, buf, len), 0);
	ct_free(ct);

	/* The restored table goes on where the old one stopped. */
	assert_int_equal(ct_restore(buf, len, &back, err, sizeof(err)), 0);
	assert_int_equal(ct_count(back), 2);
	assert_int_equal(ct_domain_count(back, 1), 2);
	step(back, tcp(B, 22, A, 40000, PKT_TCP_ACK), 10, CT_ESTABLISHED, CT_TCP_ESTABLISHED, fs);
	step(back, udp(B, 53, A, 5353), 10, CT_ESTABLISHED, CT_UDP_REPLIED, fq);
	assert_int_equal(ct_flow_get(back, fs)->packets[0], 2);
	/* Its limits came along: 2 more for domain 1, then refused. */
	for (uint16_t port = 1; port <= 2; port++) {
		struct pkt p = udp(A, port, B, 9);
		assert_int_equal(ct_create(back, &p, &ends_a, 10, &f), 0);
	}
	struct pkt p5 = udp(A, 3, B, 9);
	assert_int_equal(ct_create(back, &p5, &ends_a, 10, &f), -EDQUOT);
	ct_free(back);

	/* Bad state is refused or cleaned, never followed. */
	assert_int_equal(ct_restore(buf, 16, &back, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "state of 16 bytes holds no header");
	assert_int_equal(ct_restore(buf, len - 1, &back, err, sizeof(err)), -EINVAL);
	buf[0] ^= 0xff;
	assert_int_equal(ct_restore(buf, len, &back, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a conntrack table"));
	buf[0] ^= 0xff;
	{
		/* Chains pointing anywhere, a flow in a state its protocol has not, a duplicate. */
		struct ct_header *h = (struct ct_header *)buf;
		struct ct_flow *flows = (struct ct_flow *)(buf + ((sizeof(*h) + 7) & ~(size_t)7));
		uint32_t *buckets = (uint32_t *)(flows + h->capacity);

		memset(buckets, 0x41, h->nbuckets * sizeof(uint32_t));
		flows[fs].next = 12345;
		flows[fq].state = CT_TCP_ESTABLISHED;
		flows[5] = flows[fs];
		flows[6].state = 200;
		h->count = 9999;
	}
	assert_int_equal(ct_restore(buf, len, &back, err, sizeof(err)), 0);
	assert_int_equal(ct_count(back), 1);
	step(back, tcp(B, 22, A, 40000, PKT_TCP_ACK), 10, CT_ESTABLISHED, CT_TCP_ESTABLISHED,
	     ct_flow_get(back, fs) ? fs : 5);
	ct_free(back);
	free(buf);
}

static void test_in_place(void **state)
{
	/* A table laid out in memory the caller owns (a memfd, in domus-net), attached again. */
	size_t len = ct_region_size(16);
	void *mem = aligned_alloc(8, (len + 7) & ~(size_t)7);
	struct ct_table *ct;
	struct pkt q = udp(A, 1, B, 2);
	uint32_t f;
	char err[64];

	assert_non_null(mem);
	assert_int_equal(ct_init(mem, len - 1, 16, 0, 5, &ct), -EINVAL);
	assert_int_equal(ct_init(mem, len, 16, 0, 5, &ct), 0);
	assert_int_equal(ct_capacity(ct), 16);
	f = open_flow(ct, &q, 0);
	/* Pings both ways with one id: two flows, both kept by the attach below. */
	struct pkt ab = echo(A, B, PKT_ICMP_ECHO, 7), ba = echo(B, A, PKT_ICMP_ECHO, 7);
	uint32_t fab = open_flow(ct, &ab, 0), fba = open_flow(ct, &ba, 0);
	ct_free(ct); /* the handle only */
	assert_int_equal(ct_attach(mem, len, &ct, err, sizeof(err)), 0);
	assert_int_equal(ct_count(ct), 3);
	step(ct, udp(B, 2, A, 1), 1, CT_ESTABLISHED, CT_UDP_REPLIED, f);
	step(ct, echo(B, A, PKT_ICMP_ECHO_REPLY, 7), 1, CT_ESTABLISHED, CT_ICMP_REPLIED, fab);
	step(ct, echo(A, B, PKT_ICMP_ECHO_REPLY, 7), 1, CT_ESTABLISHED, CT_ICMP_REPLIED, fba);
	ct_free(ct);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp_handshake_and_fin),
	    cmocka_unit_test(test_tcp_reset_and_timeouts),
	    cmocka_unit_test(test_udp_icmp),
	    cmocka_unit_test(test_related),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_recheck),
	    cmocka_unit_test(test_recheck_incremental),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_in_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
