/*
 * The VFR's rule set (src/net/rules.c): parse and print round trips, every
 * parse error naming its token, names resolved to ids, insertion order and
 * removal, first match wins, default policy per network, and the warnings
 * for rules an earlier one covers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/packet.h"
#include "net/rules.h"

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

/* Domains web = 1, db = 2; networks lan = 10, dmz = 11. */
static int lookup(void *ctx, enum vfr_name_kind kind, const char *name, uint32_t *id)
{
	static const struct {
		enum vfr_name_kind kind;
		const char *name;
		uint32_t id;
	} names[] = {{VFR_NAME_DOMAIN, "web", 1},
		     {VFR_NAME_DOMAIN, "db", 2},
		     {VFR_NAME_NETWORK, "lan", 10},
		     {VFR_NAME_NETWORK, "dmz", 11}};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].kind == kind && !strcmp(names[i].name, name)) {
			*id = names[i].id;
			return 0;
		}
	}
	return -ENOENT;
}

static struct vfr_rule rule(const char *text)
{
	struct vfr_rule r;
	char err[128];

	if (vfr_rule_parse(text, &r, err, sizeof(err)))
		fail_msg("'%s': %s", text, err);
	if (vfr_rule_resolve(&r, lookup, NULL, err, sizeof(err)))
		fail_msg("'%s': %s", text, err);
	return r;
}

static void test_parse(void **state)
{
	struct vfr_rule r =
	    rule("accept in proto tcp from 10.0.1.0/24 to domain web port 22,80-90");

	assert_int_equal(r.action, VFR_ACCEPT);
	assert_int_equal(r.dir, VFR_DIR_IN);
	assert_int_equal(r.proto, PKT_PROTO_TCP);
	assert_int_equal(r.from.kind, VFR_EP_CIDR);
	assert_int_equal(r.from.addr, IP4(10, 0, 1, 0));
	assert_int_equal(r.from.prefix, 24);
	assert_int_equal(r.to.kind, VFR_EP_DOMAIN);
	assert_string_equal(r.to.name, "web");
	assert_int_equal(r.to.id, 1);
	assert_int_equal(r.to.nports, 2);
	assert_int_equal(r.to.ports[1].lo, 80);
	assert_int_equal(r.to.ports[1].hi, 90);

	r = rule("drop out proto udp to any port 53");
	assert_int_equal(r.action, VFR_DROP);
	assert_int_equal(r.dir, VFR_DIR_OUT);
	assert_int_equal(r.from.kind, VFR_EP_ANY);
	assert_int_equal(r.to.kind, VFR_EP_ANY);
	assert_int_equal(r.to.ports[0].lo, 53);

	r = rule("reject in proto icmp from network lan");
	assert_int_equal(r.action, VFR_REJECT);
	assert_int_equal(r.proto, PKT_PROTO_ICMP);
	assert_int_equal(r.from.kind, VFR_EP_NETWORK);
	assert_int_equal(r.from.id, 10);

	/* The least rule: every packet, both ways. */
	r = rule("  drop\t");
	assert_int_equal(r.dir, VFR_DIR_ANY);
	assert_int_equal(r.proto, -1);
}

static void round_trip(const char *text, const char *printed)
{
	struct vfr_rule a, b;
	char buf[VFR_RULE_TEXT_MAX], err[128];

	assert_int_equal(vfr_rule_parse(text, &a, err, sizeof(err)), 0);
	vfr_rule_print(&a, buf, sizeof(buf));
	assert_string_equal(buf, printed);
	assert_int_equal(vfr_rule_parse(buf, &b, err, sizeof(err)), 0);
	assert_true(vfr_rule_equal(&a, &b));
}

static void test_round_trip(void **state)
{
	round_trip("accept in proto tcp from 10.0.1.0/24 to domain web port 22,80-90",
		   "accept in proto tcp from 10.0.1.0/24 to domain web port 22,80-90");
	round_trip("drop out proto udp to any port 53", "drop out proto udp to any port 53");
	round_trip("reject in proto icmp from network lan",
		   "reject in proto icmp from network lan");
	/* Defaults left out, ports sorted and merged, protocols by number named. */
	round_trip("accept proto any from any to any", "accept");
	round_trip("accept proto 6 from 10.0.0.7/32 port 90-100,80-89,5,6,7 to 1.2.3.4",
		   "accept proto tcp from 10.0.0.7 port 5-7,80-100 to 1.2.3.4");
	round_trip("drop proto 47 to 0.0.0.0/0", "drop proto 47 to 0.0.0.0/0");
	round_trip("accept proto udp from any port 0-65535",
		   "accept proto udp from any port 0-65535");
	round_trip("drop out proto tcp from domain db to network dmz port 443",
		   "drop out proto tcp from domain db to network dmz port 443");

	/* The printer says how long the text is even when the buffer is short. */
	struct vfr_rule r = rule("drop out proto udp to any port 53");
	char small[8];

	assert_int_equal(vfr_rule_print(&r, small, sizeof(small)), 33);
	assert_string_equal(small, "drop ou");
}

static void bad(const char *text, const char *err)
{
	struct vfr_rule r;
	char buf[128];

	assert_int_equal(vfr_rule_parse(text, &r, buf, sizeof(buf)), -EINVAL);
	assert_string_equal(buf, err);
}

static void test_errors(void **state)
{
	char long_rule[600];

	bad("", "empty rule");
	bad("allow in", "unknown action 'allow' (accept, drop or reject)");
	bad("accept proto", "'proto' needs tcp, udp, icmp, any or a number");
	bad("accept proto sctp", "unknown protocol 'sctp'");
	bad("accept proto 256", "unknown protocol '256'");
	bad("accept from", "'from' needs an address, 'any', 'domain NAME' or 'network NAME'");
	bad("accept from domain", "'domain' needs a name");
	bad("accept to network -x", "bad network name '-x'");
	bad("accept from domain a/b", "bad domain name 'a/b'");
	bad("accept from host", "'host' after 'from' is no address, 'any', 'domain' or 'network'");
	bad("accept from 10.0.0", "bad address '10.0.0'");
	bad("accept from 10.0.0.256", "bad address '10.0.0.256'");
	bad("accept from 10.0.0.01", "bad address '10.0.0.01'");
	bad("accept from 10.0.0.1.2", "bad address '10.0.0.1.2'");
	bad("accept from 10.0.0.0/33", "bad prefix length in '10.0.0.0/33'");
	bad("accept from 10.0.0.0/", "bad prefix length in '10.0.0.0/'");
	bad("accept from 10.0.1.5/24", "'10.0.1.5/24' has bits set below its /24");
	bad("accept to any port 80", "'port' needs 'proto tcp' or 'proto udp'");
	bad("accept proto icmp to any port 80", "'port' needs 'proto tcp' or 'proto udp'");
	bad("accept proto tcp to any port", "'port' needs a port list");
	bad("accept proto tcp to any port 70000", "bad port '70000'");
	bad("accept proto tcp to any port 80,", "bad port ''");
	bad("accept proto tcp to any port 90-80", "port range '90-80' runs backwards");
	bad("accept proto tcp to any port 1-", "bad port range '1-'");
	bad("accept proto tcp to any port 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
	    "more than 16 port ranges in '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17'");
	bad("accept proto tcp port 80", "'port' must follow 'from' or 'to' and its address");
	bad("accept to any from any", "'from' out of order (action, in|out, proto, from, to)");
	bad("accept in out", "'out' out of order (action, in|out, proto, from, to)");
	bad("accept to any proto tcp", "'proto' out of order (action, in|out, proto, from, to)");
	bad("accept to any log", "unexpected 'log'");
	bad("accept to domain w\x01", "character 0x01 not allowed");
	bad("accept to domain abcdefghijklmnopqrstuvwxyz0123456789",
	    "bad domain name 'abcdefghijklmnopqrstuvwxyz0123456789'");
	memset(long_rule, 'a', sizeof(long_rule) - 1);
	long_rule[sizeof(long_rule) - 1] = 0;
	bad(long_rule, "rule longer than 511 characters");
	bad("drop a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3 4 5 6 7",
	    "more than 32 words");
	bad("drop to domain "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    "word 'xxxxxxxxxxxxxxxxxxxx...' too long");

	/* Unknown names are the resolver's error. */
	struct vfr_rule r;
	char err[64];

	assert_int_equal(vfr_rule_parse("accept to domain mail", &r, err, sizeof(err)), 0);
	assert_int_equal(vfr_rule_resolve(&r, lookup, NULL, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "no domain 'mail'");
}

static struct vfr_match_input tcp_in(uint32_t src, uint32_t dst, uint16_t dport)
{
	return (struct vfr_match_input){.dir = VFR_DIR_IN,
					.proto = PKT_PROTO_TCP,
					.src = src,
					.dst = dst,
					.has_ports = true,
					.sport = 40000,
					.dport = dport,
					.src_net = 10};
}

static void test_match(void **state)
{
	struct vfr_ruleset *rs;
	struct vfr_rule r;
	struct vfr_match_input in;
	uint32_t id, ids[4];

	assert_int_equal(vfr_ruleset_new(VFR_DROP, &rs), 0);
	r = rule("accept in proto tcp from 10.0.1.0/24 to domain web port 22,80-90");
	assert_int_equal(vfr_ruleset_insert(rs, 99, &r, &ids[0]), 0);
	r = rule("reject in proto tcp from 10.0.1.66 to domain web");
	assert_int_equal(vfr_ruleset_insert(rs, 99, &r, &ids[1]), 0);
	r = rule("drop out proto udp to any port 53");
	assert_int_equal(vfr_ruleset_insert(rs, 99, &r, &ids[2]), 0);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[2], 3);

	in = tcp_in(IP4(10, 0, 1, 66), IP4(10, 0, 2, 2), 80);
	in.dst_domain = 1;
	/* First match wins: rule 1 accepts before rule 2 rejects. */
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_ACCEPT);
	assert_int_equal(id, ids[0]);
	in.dport = 91;
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_REJECT);
	assert_int_equal(id, ids[1]);
	in.dport = 22;
	in.dst_domain = 2; /* db, not web */
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);
	assert_int_equal(id, 0);
	/* A later fragment has no ports: no rule that names ports matches it. */
	in.dst_domain = 1;
	in.has_ports = false;
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_REJECT);
	in.has_ports = true;
	/* The direction: rule 1 is for packets delivered to domains. */
	in.dir = VFR_DIR_OUT;
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);
	in.dir = VFR_DIR_IN | VFR_DIR_OUT; /* domain to domain: both */
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_ACCEPT);
	/* An unresolved name never matches, even the id 0 of "no domain". */
	in.dst_domain = 0;
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);

	/* Insert at a position: rule 4 goes first and decides. */
	r = rule("drop proto tcp to domain web port 80");
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, &ids[3]), 0);
	assert_int_equal(vfr_ruleset_count(rs), 4);
	assert_int_equal(vfr_ruleset_get(rs, 0)->id, ids[3]);
	assert_int_equal(vfr_ruleset_get(rs, 1)->id, ids[0]);
	assert_null(vfr_ruleset_get(rs, 4));
	in = tcp_in(IP4(10, 0, 1, 5), IP4(10, 0, 2, 2), 80);
	in.dst_domain = 1;
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);
	assert_int_equal(id, ids[3]);
	/* Removed by id: the order of the rest is kept, ids are not reused. */
	assert_int_equal(vfr_ruleset_remove(rs, ids[3]), 0);
	assert_int_equal(vfr_ruleset_remove(rs, ids[3]), -ENOENT);
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_ACCEPT);
	assert_int_equal(id, ids[0]);
	assert_int_equal(vfr_ruleset_insert(rs, 1, &r, &id), 0);
	assert_int_equal(id, 5);
	assert_int_equal(vfr_ruleset_get(rs, 1)->id, 5);

	/* UDP out to port 53 from anywhere. */
	in = (struct vfr_match_input){.dir = VFR_DIR_OUT,
				      .proto = PKT_PROTO_UDP,
				      .src = IP4(10, 0, 1, 5),
				      .dst = IP4(8, 8, 8, 8),
				      .has_ports = true,
				      .sport = 5353,
				      .dport = 53,
				      .src_domain = 1,
				      .src_net = 10};
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);
	assert_int_equal(id, ids[2]);
	vfr_ruleset_free(rs);
}

static void test_defaults(void **state)
{
	struct vfr_ruleset *rs;
	struct vfr_match_input in = tcp_in(1, 2, 80);
	uint32_t id = 99;

	assert_int_equal(vfr_ruleset_new(VFR_DROP, &rs), 0);
	assert_int_equal(vfr_rules_match(rs, &in, &id), VFR_DROP);
	assert_int_equal(id, 0);
	/* The network the packet entered on decides: lan accepts, dmz rejects, others drop. */
	assert_int_equal(vfr_ruleset_set_default(rs, 10, VFR_ACCEPT), 0);
	assert_int_equal(vfr_ruleset_set_default(rs, 11, VFR_REJECT), 0);
	assert_int_equal(vfr_rules_match(rs, &in, NULL), VFR_ACCEPT);
	in.src_net = 11;
	assert_int_equal(vfr_rules_match(rs, &in, NULL), VFR_REJECT);
	in.src_net = 12;
	assert_int_equal(vfr_rules_match(rs, &in, NULL), VFR_DROP);
	assert_int_equal(vfr_ruleset_set_default(rs, 0, VFR_ACCEPT), 0);
	assert_int_equal(vfr_rules_match(rs, &in, NULL), VFR_ACCEPT);
	assert_int_equal(vfr_ruleset_set_default(rs, 11, VFR_DROP), 0);
	assert_int_equal(vfr_ruleset_default(rs, 11), VFR_DROP);
	for (uint32_t net = 100; net < 100 + VFR_NETWORKS_MAX - 2; net++)
		assert_int_equal(vfr_ruleset_set_default(rs, net, VFR_DROP), 0);
	assert_int_equal(vfr_ruleset_set_default(rs, 999, VFR_DROP), -ENOSPC);
	vfr_ruleset_free(rs);
}

static char warnings[4][3 * VFR_RULE_TEXT_MAX];
static size_t nwarnings;

static void warn(void *ctx, const char *text)
{
	if (nwarnings < 4)
		snprintf(warnings[nwarnings], sizeof(warnings[0]), "%s", text);
	nwarnings++;
}

static void test_shadow(void **state)
{
	static const char *const texts[] = {
	    "accept in proto tcp from 10.0.0.0/16 to domain web port 1-1000",
	    "drop in proto tcp from 10.0.1.0/24 to domain web port 22,80", /* covered, other action
									    */
	    "accept proto tcp from 10.0.1.0/24 to domain web port 22",	/* both ways: not covered */
	    "accept in proto tcp from 10.0.3.4 to domain web port 443", /* 443 within 1-1000 */
	    "drop in proto tcp from 10.1.0.0/24 to domain web port 22", /* outside 10.0/16 */
	    "drop in proto tcp from 10.0.0.0/8 to domain web port 22",	/* wider than rule 1 */
	    "reject in proto tcp from 10.0.0.0/16 to domain db port 22", /* another domain */
	    "drop in proto tcp from 10.0.0.0/16 to domain web port 999-1001",
	    "drop in proto udp from 10.0.0.0/16 to domain web", /* udp */
	};
	struct vfr_ruleset *rs;
	struct vfr_rule r;
	size_t i;

	assert_int_equal(vfr_ruleset_new(VFR_DROP, &rs), 0);
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		r = rule(texts[i]);
		assert_int_equal(vfr_ruleset_insert(rs, 99, &r, NULL), 0);
	}
	nwarnings = 0;
	assert_int_equal(vfr_ruleset_check(rs, warn, NULL), 2);
	assert_int_equal(nwarnings, 2);
	assert_string_equal(warnings[0],
			    "rule 2 (drop in proto tcp from 10.0.1.0/24 to domain web port 22,80) "
			    "is never reached: rule 1 (accept in proto tcp from 10.0.0.0/16 to "
			    "domain web port 1-1000) matches all it matches, with another action");
	assert_non_null(strstr(warnings[1], "rule 4 ("));
	assert_non_null(strstr(warnings[1], "with the same action: redundant"));

	/* Coverage itself: any covers everything, a name only itself. */
	struct vfr_rule a = rule("drop"), b = rule("accept in proto udp from domain db port 1");

	assert_true(vfr_rule_covers(&a, &b));
	assert_false(vfr_rule_covers(&b, &a));
	a = rule("drop from domain db");
	assert_true(vfr_rule_covers(&a, &b));
	a = rule("drop from network lan");
	assert_false(vfr_rule_covers(&a, &b));
	a = rule("drop from 0.0.0.0/0");
	assert_false(vfr_rule_covers(&a, &b)); /* a domain's addresses are not known here */
	b = rule("drop from 192.168.0.1");
	assert_true(vfr_rule_covers(&a, &b));
	vfr_ruleset_free(rs);
}

static void test_full(void **state)
{
	struct vfr_ruleset *rs;
	struct vfr_rule r = rule("drop");
	uint32_t i;

	assert_int_equal(vfr_ruleset_new(VFR_ACCEPT, &rs), 0);
	for (i = 0; i < VFR_RULES_MAX; i++)
		assert_int_equal(vfr_ruleset_insert(rs, 0, &r, NULL), 0);
	assert_int_equal(vfr_ruleset_insert(rs, 0, &r, NULL), -ENOSPC);
	vfr_ruleset_free(rs);
	vfr_ruleset_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_errors),   cmocka_unit_test(test_match),
	    cmocka_unit_test(test_defaults), cmocka_unit_test(test_shadow),
	    cmocka_unit_test(test_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
