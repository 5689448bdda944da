#include "vmm/snapshot.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_SIZE 16
#define SECTION_HEADER_SIZE 24

static int snap_fail(struct snap_stream *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int snap_fail(struct snap_stream *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return err;
}

void snap_stream_fd(struct snap_stream *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
}

void snap_stream_buffer(struct snap_stream *s, const void *buf, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->buf = buf;
	s->buf_len = len;
}

uint64_t snap_type_limit(uint32_t type)
{
	switch (type) {
	case SNAP_CONFIG:
		return 1u << 20;
	case SNAP_VM:
	case SNAP_VCPU:
	case SNAP_DEVICE:
		return 256u << 10;
	case SNAP_MEMORY:
		return SNAP_MEMORY_CHUNK + 8;
	case SNAP_ZERO:
		return 16;
	case SNAP_END:
		return 8;
	default:
		return 0;
	}
}

static int write_all(struct snap_stream *s, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len > 0) {
		ssize_t n = write(s->fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return snap_fail(s, -errno, "write: %s", strerror(errno));
		b += n;
		len -= (size_t)n;
		s->bytes += (uint64_t)n;
	}
	return 0;
}

/* 0, or -EPROTO when the stream ends first (`what` names what was cut short). */
static int read_all(struct snap_stream *s, void *p, size_t len, const char *what)
{
	uint8_t *b = p;

	if (len == 0)
		return 0;
	if (s->fd < 0) {
		if (len > s->buf_len - s->buf_off)
			return snap_fail(s, -EPROTO, "the stream ends inside %s (at byte %llu)", what,
					 (unsigned long long)s->bytes);
		memcpy(b, s->buf + s->buf_off, len);
		s->buf_off += len;
		s->bytes += len;
		return 0;
	}
	while (len > 0) {
		ssize_t n = read(s->fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return snap_fail(s, -errno, "read: %s", strerror(errno));
		if (n == 0)
			return snap_fail(s, -EPROTO, "the stream ends inside %s (at byte %llu)", what,
					 (unsigned long long)s->bytes);
		b += n;
		len -= (size_t)n;
		s->bytes += (uint64_t)n;
	}
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* The CRC of a section: its header's first 16 bytes (type, instance, length), then its payload. */
static uint32_t section_crc(const uint8_t *header, const void *p, size_t len)
{
	uLong crc = crc32(crc32(0L, Z_NULL, 0), header, 16);
	const uint8_t *b = p;

	/* zlib takes a uInt length: large payloads go in pieces. */
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, b, n);
		b += n;
		len -= n;
	}
	return (uint32_t)crc;
}

int snap_write_header(struct snap_stream *s)
{
	uint8_t h[HEADER_SIZE];

	memcpy(h, SNAP_MAGIC, 8);
	put32(h + 8, SNAP_VERSION);
	put32(h + 12, HEADER_SIZE);
	return write_all(s, h, sizeof(h));
}

int snap_write_section(struct snap_stream *s, uint32_t type, uint32_t instance, const void *payload,
		       size_t len)
{
	uint8_t h[SECTION_HEADER_SIZE];
	int ret;

	if (len > snap_type_limit(type))
		return snap_fail(s, -EMSGSIZE, "section type %u: %zu bytes, more than its limit of %llu",
				 type, len, (unsigned long long)snap_type_limit(type));
	put32(h, type);
	put32(h + 4, instance);
	put64(h + 8, len);
	put32(h + 16, section_crc(h, payload, len));
	put32(h + 20, 0);
	if ((ret = write_all(s, h, sizeof(h))) < 0 || (len && (ret = write_all(s, payload, len)) < 0))
		return ret;
	s->sections++;
	return 0;
}

int snap_write_end(struct snap_stream *s)
{
	uint8_t count[8];

	put64(count, s->sections);
	return snap_write_section(s, SNAP_END, 0, count, sizeof(count));
}

int snap_read_header(struct snap_stream *s)
{
	uint8_t h[HEADER_SIZE];
	uint32_t version, size;
	int ret;

	if ((ret = read_all(s, h, sizeof(h), "the header")) < 0)
		return ret;
	if (memcmp(h, SNAP_MAGIC, 8) != 0)
		return snap_fail(s, -EPROTO, "not a domus state stream (no %s magic)", SNAP_MAGIC);
	version = get32(h + 8);
	size = get32(h + 12);
	if (version != SNAP_VERSION)
		return snap_fail(s, -EPROTO,
				 "stream version %u, this domus reads version %u only", version,
				 SNAP_VERSION);
	if (size != HEADER_SIZE)
		return snap_fail(s, -EPROTO, "header size %u, expected %u", size, HEADER_SIZE);
	return 0;
}

int snap_read_section(struct snap_stream *s, struct snap_section *sec, void *payload, size_t cap)
{
	uint8_t h[SECTION_HEADER_SIZE];
	uint64_t limit;
	int ret;

	if ((ret = read_all(s, h, sizeof(h), "a section header")) < 0)
		return ret;
	sec->type = get32(h);
	sec->instance = get32(h + 4);
	sec->len = get64(h + 8);
	sec->crc = get32(h + 16);
	limit = snap_type_limit(sec->type);
	if (limit == 0)
		return snap_fail(s, -EPROTO, "section %llu: unknown type %u",
				 (unsigned long long)s->sections, sec->type);
	if (get32(h + 20) != 0)
		return snap_fail(s, -EPROTO, "section %llu: reserved field is not zero",
				 (unsigned long long)s->sections);
	if (sec->len > limit)
		return snap_fail(s, -EPROTO, "section %llu (type %u): %llu bytes, more than its limit of %llu",
				 (unsigned long long)s->sections, sec->type, (unsigned long long)sec->len,
				 (unsigned long long)limit);
	if (sec->len > cap)
		return snap_fail(s, -EMSGSIZE, "section %llu (type %u): %llu bytes, the reader has room for %zu",
				 (unsigned long long)s->sections, sec->type, (unsigned long long)sec->len,
				 cap);
	if ((ret = read_all(s, payload, (size_t)sec->len, "a section's payload")) < 0)
		return ret;
	if (section_crc(h, payload, (size_t)sec->len) != sec->crc)
		return snap_fail(s, -EPROTO, "section %llu (type %u): CRC mismatch, the stream is corrupted",
				 (unsigned long long)s->sections, sec->type);
	if (sec->type == SNAP_END) {
		if (sec->len != 8 || get64(payload) != s->sections)
			return snap_fail(s, -EPROTO, "the end says %llu sections, %llu were read",
					 sec->len == 8 ? (unsigned long long)get64(payload) : 0ULL,
					 (unsigned long long)s->sections);
		return 0;
	}
	s->sections++;
	return 0;
}
