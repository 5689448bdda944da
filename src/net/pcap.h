/*
 * Packet captures in the classic pcap format (what tcpdump -r and
 * Wireshark read): a 24-byte global header (magic 0xa1b2c3d4 in host
 * order, version 2.4, microsecond timestamps, snapshot length, link type
 * 1: Ethernet), then per frame a 16-byte record header (seconds,
 * microseconds, captured length, length on the wire) and the frame.
 * domus-net writes one per `capture ID` (net/domus-net.c).
 */
#ifndef DOMUS_NET_PCAP_H
#define DOMUS_NET_PCAP_H

#include <stddef.h>
#include <stdint.h>

#define PCAP_MAGIC 0xa1b2c3d4u
#define PCAP_HEADER_LEN 24
#define PCAP_RECORD_LEN 16
#define PCAP_LINKTYPE_ETHERNET 1
#define PCAP_SNAPLEN 65535

/* The global header into buf. Returns PCAP_HEADER_LEN. */
size_t pcap_header(uint8_t buf[PCAP_HEADER_LEN]);
/* One record's header for a frame of len bytes at ts_us (since the epoch). Returns PCAP_RECORD_LEN.
 */
size_t pcap_record(uint8_t buf[PCAP_RECORD_LEN], uint64_t ts_us, size_t len);
/* Writes the global header to fd. 0 or -errno. */
int pcap_write_header(int fd);
/*
 * Writes one record (header and frame together, one writev) to fd. 0, or
 * -errno; a write cut short is -EIO (the file is no longer well formed).
 */
int pcap_write_frame(int fd, uint64_t ts_us, const uint8_t *frame, size_t len);

#endif
