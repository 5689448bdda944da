/*
 * Sends flow records to an IPFIX collector on 127.0.0.1:PORT through
 * ipfix_export, and prints each unidirectional record it sent as
 * "proto,src,sport,dst,dport,packets,bytes,start_ms,end_ms" for
 * tests/unit/ipfix-nfdump to compare with what nfdump read.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/ipfix.h"

#define N 60

static void print(uint8_t proto, uint32_t s, uint16_t sp, uint32_t d, uint16_t dp, uint64_t pk,
		  uint64_t by, uint64_t t0, uint64_t t1)
{
	printf("%u,%u.%u.%u.%u,%u,%u.%u.%u.%u,%u,%llu,%llu,%llu,%llu\n", proto, s >> 24,
	       (s >> 16) & 0xff, (s >> 8) & 0xff, s & 0xff, sp, d >> 24, (d >> 16) & 0xff,
	       (d >> 8) & 0xff, d & 0xff, dp, (unsigned long long)pk, (unsigned long long)by,
	       (unsigned long long)t0, (unsigned long long)t1);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct ipfix_flow f[N];
	struct ipfix_exporter x;
	uint64_t now = (uint64_t)time(NULL) * 1000;
	int fd, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: ipfix_send PORT\n");
		return 2;
	}
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("ipfix_send: socket");
		return 1;
	}
	/* Enough flows for several messages of a 576-byte MTU, some one-way. */
	for (int i = 0; i < N; i++) {
		f[i] = (struct ipfix_flow){.start_ms = now - 60000 + (uint64_t)i * 137,
					   .end_ms = now - 1000 + (uint64_t)i,
					   .src_port_if = 1 + (uint32_t)(i % 3),
					   .dst_port_if = 0,
					   .src_addr = 0xcb007107,
					   .dst_addr = 0xc6336400u + (uint32_t)i,
					   .src_port = (uint16_t)(20000 + i),
					   .dst_port = i % 2 ? 53 : 443,
					   .proto = i % 2 ? 17 : 6,
					   .packets = 10 + (uint64_t)i,
					   .bytes = 1000 + (uint64_t)i * 1234567,
					   .rev_packets = i % 4 ? 5 + (uint64_t)i : 0,
					   .rev_bytes = i % 4 ? 700 + (uint64_t)i * 77 : 0,
					   .verdict = i % 5 ? IPFIX_ACCEPT : IPFIX_DROP,
					   .rule = (uint32_t)i};
	}
	ipfix_exporter_init(&x, 7, 576);
	rc = ipfix_export(&x, fd, now, f, N);
	if (rc) {
		fprintf(stderr, "ipfix_send: %s\n", strerror(-rc));
		return 1;
	}
	for (int i = 0; i < N; i++) {
		print(f[i].proto, f[i].src_addr, f[i].src_port, f[i].dst_addr, f[i].dst_port,
		      f[i].packets, f[i].bytes, f[i].start_ms, f[i].end_ms);
		if (f[i].rev_packets)
			print(f[i].proto, f[i].dst_addr, f[i].dst_port, f[i].src_addr,
			      f[i].src_port, f[i].rev_packets, f[i].rev_bytes, f[i].start_ms,
			      f[i].end_ms);
	}
	close(fd);
	return 0;
}
