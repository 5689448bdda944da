/* RSIP: slice allocation, refusals and their messages, save/restore, demultiplexing, guest strings.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/rsip.h"

/* A host as Debian ships it: privileged ports and the default ephemeral range reserved. */
static void host_table(struct rsip_table *t)
{
	struct rsip_config cfg = {.forbidden = {{0, 1023}, {32768, 60999}}, .n_forbidden = 2};
	char err[160];

	assert_int_equal(rsip_init(t, &cfg, err, sizeof(err)), 0);
}

static void test_alloc_aligned(void **state)
{
	struct rsip_table t;
	struct rsip_range r;
	char err[160];

	host_table(&t);
	/* 1000 is inside 0-1023, so the first aligned start is 2000. */
	assert_int_equal(rsip_alloc(&t, 1, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 2000);
	assert_int_equal(r.end, 2999);
	assert_int_equal(rsip_alloc(&t, 2, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 3000);
	/* A requested size, still at a multiple of the alignment. */
	assert_int_equal(rsip_alloc(&t, 3, 500, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 4000);
	assert_int_equal(r.end, 4499);
	assert_int_equal(rsip_alloc(&t, 4, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 5000);
	/* One slice per domain. */
	assert_int_equal(rsip_alloc(&t, 1, 0, &r, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "domain 1 already has the slice 2000-2999");
	assert_int_equal(rsip_alloc(&t, 9, 70000, &r, err, sizeof(err)), -EINVAL);
	rsip_free(&t);
}

static void test_forbidden_never_given(void **state)
{
	struct rsip_table t;
	struct rsip_range r;
	char err[160];
	uint32_t n = 0, d;

	host_table(&t);
	/* Fill the table: 2000-31999 (30) and 61000-64999 (4); 65000-65535 is too short. */
	while (rsip_alloc(&t, 100 + n, 0, &r, err, sizeof(err)) == 0) {
		assert_false(r.start <= 1023);
		assert_false(r.end >= 32768 && r.start <= 60999);
		n++;
	}
	assert_int_equal(n, 34);
	for (uint32_t p = 0; p < 1024; p++)
		assert_int_equal(rsip_owner(&t, (uint16_t)p, &d), -ENOENT);
	for (uint32_t p = 32768; p <= 60999; p++)
		assert_int_equal(rsip_owner(&t, (uint16_t)p, &d), -ENOENT);
	/* Asked for explicitly, reserved ports are refused, naming the range. */
	assert_int_equal(rsip_request(&t, 900, (struct rsip_range){60000, 60100}, err, sizeof(err)),
			 -EBUSY);
	assert_string_equal(err, "slice 60000-60100 overlaps the reserved range 32768-60999");
	assert_int_equal(rsip_request(&t, 900, (struct rsip_range){0, 10}, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "slice 0-10 includes port 0");
	rsip_free(&t);
}

static void test_overlap_refused(void **state)
{
	struct rsip_table t;
	char err[160];

	host_table(&t);
	assert_int_equal(rsip_request(&t, 3, (struct rsip_range){20500, 21499}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){20000, 20999}, err, sizeof(err)),
			 -EBUSY);
	assert_string_equal(err, "slice 20000-20999 overlaps domain 3's 20500-21499");
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){21499, 21499}, err, sizeof(err)),
			 -EBUSY);
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){21000, 20000}, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "slice 21000-20000 is backwards");
	/* Touching is not overlapping. */
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){21500, 21999}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_request(&t, 5, (struct rsip_range){20000, 20499}, err, sizeof(err)),
			 0);
	rsip_free(&t);
}

static void test_exhaustion_message(void **state)
{
	struct rsip_config cfg = {.forbidden = {{0, 9999}, {11200, 65535}}, .n_forbidden = 2};
	struct rsip_table t;
	struct rsip_range r;
	char err[160];

	/* 10000-11199 free, a domain near its start: pieces of 50 and 1100, the big one unaligned.
	 */
	assert_int_equal(rsip_init(&t, &cfg, err, sizeof(err)), 0);
	assert_int_equal(rsip_request(&t, 1, (struct rsip_range){10050, 10099}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_alloc(&t, 2, 1200, &r, err, sizeof(err)), -ENOSPC);
	assert_string_equal(err,
			    "no free slice of 1200 ports: 1150 free in pieces of at most 1100");
	/* A piece big enough but not aligned: the message says why. */
	assert_int_equal(rsip_alloc(&t, 2, 1000, &r, err, sizeof(err)), -ENOSPC);
	assert_string_equal(err, "no free slice of 1000 ports starting at a multiple of 1000: "
				 "1150 free in pieces of at most 1100");
	assert_int_equal(rsip_alloc(&t, 2, 200, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 11000);
	rsip_free(&t);

	/* Alignment 1: any free piece, the lowest first. */
	cfg.align = 1;
	assert_int_equal(rsip_init(&t, &cfg, err, sizeof(err)), 0);
	assert_int_equal(rsip_request(&t, 1, (struct rsip_range){10050, 10099}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_alloc(&t, 2, 1000, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 10100);
	assert_int_equal(r.end, 11099);
	assert_int_equal(rsip_alloc(&t, 3, 40, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 10000);
	assert_int_equal(rsip_alloc(&t, 4, 0, &r, err, sizeof(err)), -ENOSPC);
	assert_string_equal(err, "no free slice of 1000 ports: 110 free in pieces of at most 100");
	rsip_free(&t);

	cfg.forbidden[0] = (struct rsip_range){5, 1};
	assert_int_equal(rsip_init(&t, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "reserved range 5-1 is backwards");
}

static void test_release_reuse(void **state)
{
	struct rsip_table t;
	struct rsip_range r;
	char err[160];
	uint32_t d;

	host_table(&t);
	assert_int_equal(rsip_alloc(&t, 1, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(rsip_alloc(&t, 2, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(rsip_owner(&t, 2500, &d), 0);
	assert_int_equal(d, 1);
	assert_int_equal(rsip_release(&t, 1), 0);
	assert_int_equal(rsip_release(&t, 1), -ENOENT);
	assert_int_equal(rsip_owner(&t, 2500, &d), -ENOENT);
	assert_int_equal(rsip_slice_of(&t, 1, &r), -ENOENT);
	/* The hole is the lowest fit again. */
	assert_int_equal(rsip_alloc(&t, 7, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.start, 2000);
	assert_int_equal(rsip_owner(&t, 2999, &d), 0);
	assert_int_equal(d, 7);
	assert_int_equal(rsip_slice_of(&t, 2, &r), 0);
	assert_int_equal(r.start, 3000);
	rsip_free(&t);
}

static void test_save_restore(void **state)
{
	struct rsip_table t, u;
	struct rsip_range r;
	struct rsip_slice saved[8];
	char err[160];
	uint32_t d;

	host_table(&t);
	assert_int_equal(rsip_request(&t, 5, (struct rsip_range){62000, 62999}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_alloc(&t, 6, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(rsip_alloc(&t, 8, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(rsip_release(&t, 6), 0);
	assert_int_equal(rsip_save(&t, saved, 8), 2);
	/* By start. */
	assert_int_equal(saved[0].domid, 8);
	assert_int_equal(saved[0].start, 3000);
	assert_int_equal(saved[0].end, 3999);
	assert_int_equal(saved[1].domid, 5);
	assert_int_equal(saved[1].start, 62000);
	assert_int_equal(rsip_save(&t, saved, 1), 2);

	host_table(&u);
	assert_int_equal(rsip_restore(&u, saved, 2, err, sizeof(err)), 0);
	assert_int_equal(rsip_owner(&u, 62500, &d), 0);
	assert_int_equal(d, 5);
	assert_int_equal(rsip_owner(&u, 3000, &d), 0);
	assert_int_equal(d, 8);
	assert_int_equal(rsip_restore(&u, saved, 2, err, sizeof(err)), -EBUSY);
	rsip_free(&u);

	/* The host's ephemeral range grew over a saved slice: refused, the domain named, nothing
	 * kept. */
	struct rsip_config cfg = {.forbidden = {{0, 1023}, {32768, 63999}}, .n_forbidden = 2};
	assert_int_equal(rsip_init(&u, &cfg, err, sizeof(err)), 0);
	assert_int_equal(rsip_restore(&u, saved, 2, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "saved slice of domain 5: slice 62000-62999 overlaps the "
				 "reserved range 32768-63999");
	assert_int_equal(rsip_owner(&u, 3000, &d), -ENOENT);
	assert_int_equal(rsip_save(&u, saved, 8), 0);
	rsip_free(&u);
	rsip_free(&t);
}

static void test_demux(void **state)
{
	struct rsip_table t;
	char err[160];
	uint32_t d = 0;

	host_table(&t);
	assert_int_equal(rsip_request(&t, 3, (struct rsip_range){20000, 20999}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){21000, 21999}, err, sizeof(err)),
			 0);
	struct rsip_packet tcp = {.proto = RSIP_PROTO_TCP, .src_port = 443, .dst_port = 21000};
	assert_int_equal(rsip_demux(&t, &tcp, &d), 0);
	assert_int_equal(d, 4);
	struct rsip_packet udp = {.proto = RSIP_PROTO_UDP, .src_port = 53, .dst_port = 20999};
	assert_int_equal(rsip_demux(&t, &udp, &d), 0);
	assert_int_equal(d, 3);
	udp.dst_port = 22000;
	assert_int_equal(rsip_demux(&t, &udp, &d), -ENOENT);
	/* Port unreachable about a UDP datagram domain 4 sent from 21500. */
	struct rsip_packet unreach = {.proto = RSIP_PROTO_ICMP,
				      .icmp_type = 3,
				      .inner_proto = RSIP_PROTO_UDP,
				      .inner_src_port = 21500,
				      .inner_dst_port = 53};
	assert_int_equal(rsip_demux(&t, &unreach, &d), 0);
	assert_int_equal(d, 4);
	/* Time exceeded about domain 3's TCP segment. */
	struct rsip_packet ttl = {.proto = RSIP_PROTO_ICMP,
				  .icmp_type = 11,
				  .inner_proto = RSIP_PROTO_TCP,
				  .inner_src_port = 20001};
	assert_int_equal(rsip_demux(&t, &ttl, &d), 0);
	assert_int_equal(d, 3);
	ttl.inner_proto = 47; /* GRE: no port to go by */
	assert_int_equal(rsip_demux(&t, &ttl, &d), -EPROTONOSUPPORT);
	struct rsip_packet reply = {.proto = RSIP_PROTO_ICMP, .icmp_type = 0, .icmp_id = 20005};
	assert_int_equal(rsip_demux(&t, &reply, &d), 0);
	assert_int_equal(d, 3);
	/* Echo requests to the shared address are the host's, as is what has no port. */
	struct rsip_packet ping = {.proto = RSIP_PROTO_ICMP, .icmp_type = 8, .icmp_id = 20005};
	assert_int_equal(rsip_demux(&t, &ping, &d), -EPROTONOSUPPORT);
	struct rsip_packet esp = {.proto = 50};
	assert_int_equal(rsip_demux(&t, &esp, &d), -EPROTONOSUPPORT);
	rsip_free(&t);
}

static void test_outbound(void **state)
{
	struct rsip_table t;
	char err[160];

	host_table(&t);
	assert_int_equal(rsip_request(&t, 3, (struct rsip_range){20000, 20999}, err, sizeof(err)),
			 0);
	assert_int_equal(rsip_request(&t, 4, (struct rsip_range){21000, 21999}, err, sizeof(err)),
			 0);
	struct rsip_packet p = {.proto = RSIP_PROTO_TCP, .src_port = 20000, .dst_port = 80};
	assert_true(rsip_outbound_ok(&t, 3, &p));
	assert_false(rsip_outbound_ok(&t, 4, &p));
	p.src_port = 22;
	assert_false(rsip_outbound_ok(&t, 3, &p));
	p = (struct rsip_packet){.proto = RSIP_PROTO_UDP, .src_port = 21999};
	assert_true(rsip_outbound_ok(&t, 4, &p));
	p.src_port = 22000;
	assert_false(rsip_outbound_ok(&t, 4, &p));
	p = (struct rsip_packet){.proto = RSIP_PROTO_ICMP, .icmp_type = 8, .icmp_id = 20500};
	assert_true(rsip_outbound_ok(&t, 3, &p));
	p.icmp_id = 1234;
	assert_false(rsip_outbound_ok(&t, 3, &p));
	/* Domain 4 says port unreachable about a datagram sent to its 21234. */
	p = (struct rsip_packet){.proto = RSIP_PROTO_ICMP,
				 .icmp_type = 3,
				 .inner_proto = RSIP_PROTO_UDP,
				 .inner_src_port = 53,
				 .inner_dst_port = 21234};
	assert_true(rsip_outbound_ok(&t, 4, &p));
	assert_false(rsip_outbound_ok(&t, 3, &p));
	p = (struct rsip_packet){.proto = RSIP_PROTO_ICMP, .icmp_type = 5};
	assert_false(rsip_outbound_ok(&t, 3, &p));
	p = (struct rsip_packet){.proto = 47};
	assert_false(rsip_outbound_ok(&t, 3, &p));
	/* A domain with no slice sends nothing. */
	p = (struct rsip_packet){.proto = RSIP_PROTO_TCP, .src_port = 20000};
	assert_false(rsip_outbound_ok(&t, 9, &p));
	rsip_free(&t);
}

static void test_guest_strings(void **state)
{
	struct rsip_range r = {20000, 20999}, h;
	uint8_t opt[8];
	char buf[80];

	assert_int_equal(rsip_format_cmdline(0xcb007107, r, buf, sizeof(buf)), 34);
	assert_string_equal(buf, "domus.rsip=203.0.113.7:20000-20999");
	assert_int_equal(rsip_format_cmdline(0xcb007107, r, buf, 10), -ENOSPC);
	assert_true(rsip_format_sysctl(r, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "sysctl -w net.ipv4.ip_local_port_range=\"20000 20999\"");
	assert_int_equal(rsip_format_dhcp_option(r, opt, sizeof(opt)), 6);
	const uint8_t want[6] = {224, 4, 0x4e, 0x20, 0x52, 0x07};
	assert_memory_equal(opt, want, 6);
	assert_int_equal(rsip_format_dhcp_option(r, opt, 5), -ENOSPC);

	assert_int_equal(rsip_parse_port_range("32768\t60999\n", &h), 0);
	assert_int_equal(h.start, 32768);
	assert_int_equal(h.end, 60999);
	assert_int_equal(rsip_parse_port_range("1024 65535", &h), 0);
	assert_int_equal(rsip_parse_port_range("60999 32768\n", &h), -EINVAL);
	assert_int_equal(rsip_parse_port_range("32768", &h), -EINVAL);
	assert_int_equal(rsip_parse_port_range("1 70000", &h), -EINVAL);
	assert_int_equal(rsip_parse_port_range("1 2 3", &h), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_aligned),   cmocka_unit_test(test_forbidden_never_given),
	    cmocka_unit_test(test_overlap_refused), cmocka_unit_test(test_exhaustion_message),
	    cmocka_unit_test(test_release_reuse),   cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_demux),	    cmocka_unit_test(test_outbound),
	    cmocka_unit_test(test_guest_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
