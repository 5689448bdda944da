/* Flow records: IPFIX header, template and data bytes, MTU splitting, sequence numbers, template
 * refresh; JSON lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/ipfix.h"

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

static uint32_t get32(const uint8_t *p) { return get16(p) << 16 | get16(p + 2); }

static struct ipfix_flow flow(int i)
{
	return (struct ipfix_flow){.start_ms = 1700000000123ull,
				   .end_ms = 1700000004567ull,
				   .src_domain = "web",
				   .dst_domain = NULL,
				   .src_port_if = 3,
				   .dst_port_if = 0,
				   .src_addr = 0xcb007107,
				   .dst_addr = 0xc0000201,
				   .src_port = (uint16_t)(20000 + i),
				   .dst_port = 443,
				   .proto = 6,
				   .packets = 12,
				   .bytes = 3400,
				   .rev_packets = 10,
				   .rev_bytes = 56000,
				   .verdict = IPFIX_ACCEPT,
				   .rule = 4};
}

static void test_first_message_bytes(void **state)
{
	struct ipfix_exporter x;
	struct ipfix_flow f = flow(0);
	uint8_t buf[1500];
	size_t used;
	int len;

	f.rev_packets = 0;
	f.verdict = IPFIX_DROP;
	ipfix_exporter_init(&x, 7, 1500);
	len = ipfix_encode(&x, 1700000010999ull, &f, 1, &used, buf, sizeof(buf));
	assert_int_equal(used, 1);
	assert_int_equal(len, 16 + 56 + 4 + 54);
	/* Header: version 10, length, export time in seconds, sequence 0, domain 7. */
	const uint8_t header[16] = {0, 10, 0, 130, 0x65, 0x53, 0xf1, 0x0a, 0, 0, 0, 0, 0, 0, 0, 7};
	assert_memory_equal(buf, header, 16);
	/* Template set, by hand: set 2, 56 bytes, template 256 of 12 fields, (id, length) each. */
	const uint8_t tmpl[56] = {
	    0, 2,   0, 56, 1, 0, 0, 12, 0, 8, 0, 4, /* sourceIPv4Address */
	    0, 12,  0, 4,			    /* destinationIPv4Address */
	    0, 7,   0, 2,			    /* sourceTransportPort */
	    0, 11,  0, 2,			    /* destinationTransportPort */
	    0, 4,   0, 1,			    /* protocolIdentifier */
	    0, 1,   0, 8,			    /* octetDeltaCount */
	    0, 2,   0, 8,			    /* packetDeltaCount */
	    0, 152, 0, 8,			    /* flowStartMilliseconds */
	    0, 153, 0, 8,			    /* flowEndMilliseconds */
	    0, 10,  0, 4,			    /* ingressInterface */
	    0, 14,  0, 4,			    /* egressInterface */
	    0, 89,  0, 1,			    /* forwardingStatus */
	};
	assert_memory_equal(buf + 16, tmpl, 56);
	/* Data set 256 with one record. */
	const uint8_t data[58] = {
	    1,	  0,	0,    58,   203,  0,	113,  7,    192, 0, 2, 1, /* addresses */
	    0x4e, 0x20, 0x01, 0xbb, 6,					  /* 20000, 443, TCP */
	    0,	  0,	0,    0,    0,	  0,	0x0d, 0x48,		  /* 3400 bytes */
	    0,	  0,	0,    0,    0,	  0,	0,    12,		  /* 12 packets */
	    0,	  0,	0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,		  /* 1700000000123 ms */
	    0,	  0,	0x01, 0x8b, 0xcf, 0xe5, 0x79, 0xd7,		  /* 1700000004567 ms */
	    0,	  0,	0,    3,    0,	  0,	0,    0,		  /* ingress 3, egress 0 */
	    129,							  /* dropped by a rule */
	};
	assert_memory_equal(buf + 72, data, 58);
	assert_int_equal(x.seq, 1);
}

static void test_reverse_record(void **state)
{
	struct ipfix_exporter x;
	struct ipfix_flow f = flow(1);
	uint8_t buf[1500];
	const uint8_t *r;
	size_t used;
	int len;

	ipfix_exporter_init(&x, 1, 1500);
	len = ipfix_encode(&x, 1700000010000ull, &f, 1, &used, buf, sizeof(buf));
	assert_int_equal(len, 16 + 56 + 4 + 2 * 54);
	assert_int_equal(get16(buf + 72 + 2), 4 + 2 * 54);
	/* The second record goes back: addresses, ports and interfaces swapped, its own counts. */
	r = buf + 72 + 4 + 54;
	assert_int_equal(get32(r), 0xc0000201);
	assert_int_equal(get32(r + 4), 0xcb007107);
	assert_int_equal(get16(r + 8), 443);
	assert_int_equal(get16(r + 10), 20001);
	assert_int_equal(get32(r + 13 + 4), 56000);
	assert_int_equal(get32(r + 21 + 4), 10);
	assert_int_equal(get32(r + 45), 0);
	assert_int_equal(get32(r + 49), 3);
	assert_int_equal(r[53], IPFIX_FWD_FORWARDED);
	assert_int_equal(x.seq, 2);
}

static void test_mtu_split_and_sequence(void **state)
{
	struct ipfix_exporter x;
	struct ipfix_flow f[20];
	uint8_t buf[1500];
	size_t used, done = 0, msgs = 0;
	uint32_t seq = 0;
	int len;

	for (int i = 0; i < 20; i++)
		f[i] = flow(i);
	/* A 576-byte path: messages of at most 548; with the template 4 flows, then 4 a message. */
	ipfix_exporter_init(&x, 9, 576);
	while (done < 20) {
		len = ipfix_encode(&x, 1700000010000ull, f + done, 20 - done, &used, buf,
				   sizeof(buf));
		assert_true(len > 0);
		assert_true(len <= 576 - 28);
		assert_int_equal(get16(buf + 2), len);
		assert_int_equal(get32(buf + 8), seq);
		assert_int_equal(get32(buf + 12), 9);
		assert_int_equal(used, 4);
		/* The template only in the first. */
		assert_int_equal(get16(buf + 16), msgs ? IPFIX_TEMPLATE_ID : IPFIX_SET_TEMPLATE);
		seq += 2 * (uint32_t)used;
		done += used;
		msgs++;
	}
	assert_int_equal(msgs, 5);
	assert_int_equal(x.seq, 40);
	/* Nothing to send and no template due: no message. */
	assert_int_equal(ipfix_encode(&x, 1700000010000ull, f, 0, &used, buf, sizeof(buf)), 0);
	/* The buffer limits too; too small for a first message is refused. */
	assert_int_equal(ipfix_encode(&x, 1700000010000ull, f, 20, &used, buf, 183), -EMSGSIZE);
	ipfix_exporter_init(&x, 9, 200);
	assert_int_equal(ipfix_encode(&x, 1700000010000ull, f, 20, &used, buf, sizeof(buf)),
			 -EMSGSIZE);
	assert_int_equal(x.seq, 0);
}

static void test_template_refresh(void **state)
{
	struct ipfix_exporter x;
	struct ipfix_flow f = flow(0);
	uint8_t buf[1500];
	size_t used;
	uint64_t t = 1700000000000ull;

	ipfix_exporter_init(&x, 1, 1500);
	assert_int_equal(ipfix_encode(&x, t, &f, 1, &used, buf, sizeof(buf)), 16 + 56 + 4 + 108);
	assert_int_equal(ipfix_encode(&x, t + 59999, &f, 1, &used, buf, sizeof(buf)), 16 + 4 + 108);
	/* A minute on, the template again, even with no flows to carry. */
	assert_int_equal(ipfix_encode(&x, t + 60000, NULL, 0, &used, buf, sizeof(buf)), 16 + 56);
	assert_int_equal(get16(buf + 16), IPFIX_SET_TEMPLATE);
	assert_int_equal(get32(buf + 8), 4);
	assert_int_equal(ipfix_encode(&x, t + 60001, &f, 1, &used, buf, sizeof(buf)), 16 + 4 + 108);
	x.refresh_ms = 1000;
	assert_int_equal(ipfix_encode(&x, t + 61000, &f, 1, &used, buf, sizeof(buf)),
			 16 + 56 + 4 + 108);
}

static void test_json_line(void **state)
{
	struct ipfix_flow f = flow(0);
	char buf[512];
	int n;

	n = ipfix_json_line(&f, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_string_equal(
	    buf, "{\"start\":1700000000123,\"end\":1700000004567,\"src_domain\":\"web\","
		 "\"dst_domain\":null,\"proto\":6,\"src\":\"203.0.113.7\",\"sport\":20000,"
		 "\"dst\":\"192.0.2.1\",\"dport\":443,\"packets\":12,\"bytes\":3400,"
		 "\"rev_packets\":10,\"rev_bytes\":56000,\"verdict\":\"accept\",\"rule\":4}"
		 "\n");
	f.verdict = IPFIX_REJECT;
	f.dst_domain = "db \"main\"";
	assert_true(ipfix_json_line(&f, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"dst_domain\":\"db \\\"main\\\"\""));
	assert_non_null(strstr(buf, "\"verdict\":\"reject\""));
	assert_int_equal(ipfix_json_line(&f, buf, 40), -ENOSPC);
	assert_string_equal(ipfix_verdict_name(IPFIX_DROP), "drop");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_message_bytes),
	    cmocka_unit_test(test_reverse_record),
	    cmocka_unit_test(test_mtu_split_and_sequence),
	    cmocka_unit_test(test_template_refresh),
	    cmocka_unit_test(test_json_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
