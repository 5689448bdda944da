#include "net/pcap.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* host order: readers tell it from the magic */
}

size_t pcap_header(uint8_t buf[PCAP_HEADER_LEN])
{
	uint16_t major = 2, minor = 4;

	memset(buf, 0, PCAP_HEADER_LEN);
	put32(buf, PCAP_MAGIC);
	memcpy(buf + 4, &major, 2);
	memcpy(buf + 6, &minor, 2);
	/* thiszone and sigfigs stay 0: timestamps are UTC. */
	put32(buf + 16, PCAP_SNAPLEN);
	put32(buf + 20, PCAP_LINKTYPE_ETHERNET);
	return PCAP_HEADER_LEN;
}

size_t pcap_record(uint8_t buf[PCAP_RECORD_LEN], uint64_t ts_us, size_t len)
{
	uint32_t caplen = len > PCAP_SNAPLEN ? PCAP_SNAPLEN : (uint32_t)len;

	put32(buf, (uint32_t)(ts_us / 1000000));
	put32(buf + 4, (uint32_t)(ts_us % 1000000));
	put32(buf + 8, caplen);
	put32(buf + 12, (uint32_t)len);
	return PCAP_RECORD_LEN;
}

static int write_all(int fd, struct iovec *iov, int n, size_t total)
{
	ssize_t w = writev(fd, iov, n);

	if (w < 0)
		return -errno;
	return (size_t)w == total ? 0 : -EIO;
}

int pcap_write_header(int fd)
{
	uint8_t h[PCAP_HEADER_LEN];
	struct iovec iov = {h, pcap_header(h)};

	return write_all(fd, &iov, 1, sizeof(h));
}

int pcap_write_frame(int fd, uint64_t ts_us, const uint8_t *frame, size_t len)
{
	uint8_t h[PCAP_RECORD_LEN];
	size_t caplen = len > PCAP_SNAPLEN ? PCAP_SNAPLEN : len;
	struct iovec iov[2] = {{h, pcap_record(h, ts_us, len)}, {(void *)frame, caplen}};

	return write_all(fd, iov, 2, sizeof(h) + caplen);
}
