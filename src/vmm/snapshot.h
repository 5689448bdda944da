/*
 * The domain state stream: what `domus save` writes to a file and a
 * migration sends over a pipe. Read and written strictly in order (a pipe
 * cannot seek), it is a header and then sections, each with its own
 * length and CRC-32 so that a truncated or corrupted stream is refused at
 * the first bad byte, naming what is wrong:
 *
 *   header   "DOMUSNAP" | u32 version | u32 header size (16)
 *   section  u32 type | u32 instance | u64 payload length | u32 crc32 | u32 zero
 *            | payload            (the CRC-32 covers the first 16 bytes and the payload)
 *   ...
 *   end      a section of type SNAP_END whose payload is the u64 count of
 *            the sections before it
 *
 * All integers little-endian. A reader refuses another version, an
 * unknown section type, a payload longer than its type allows, a CRC that
 * does not match, and a stream that ends before SNAP_END.
 */
#ifndef DOMUS_SNAPSHOT_H
#define DOMUS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "DOMUSNAP"
#define SNAP_VERSION 1

enum snap_type {
	SNAP_CONFIG = 1, /* the domain's JSON configuration */
	SNAP_VM = 2,     /* VM-wide KVM state: clock, interrupt controllers, PIT */
	SNAP_VCPU = 3,   /* one vCPU's KVM state; instance = vCPU index */
	SNAP_DEVICE = 4, /* one device's state; payload starts with its name */
	SNAP_MEMORY = 5, /* u64 guest-physical address, then the bytes */
	SNAP_ZERO = 6,   /* u64 guest-physical address, u64 length: zeros there */
	SNAP_END = 7,
	SNAP_TYPE_MAX = SNAP_END,
};

/* The largest payload a section may carry: memory goes in chunks of at most 4 MiB. */
#define SNAP_MEMORY_CHUNK (4u << 20)
#define SNAP_MAX_PAYLOAD (SNAP_MEMORY_CHUNK + 8)

struct snap_section {
	uint32_t type;
	uint32_t instance;
	uint64_t len;
	uint32_t crc;
};

/*
 * A stream over a descriptor, or over a buffer in memory (fd < 0: the
 * reader takes bytes from buf/len, for tests and the fuzz target).
 */
struct snap_stream {
	int fd;
	const uint8_t *buf;
	size_t buf_len, buf_off;
	uint64_t sections;   /* sections written or read so far */
	uint64_t bytes;      /* bytes written or read so far */
	char err[160];       /* what was wrong, for the one place that logs it */
};

void snap_stream_fd(struct snap_stream *s, int fd);
void snap_stream_buffer(struct snap_stream *s, const void *buf, size_t len);

/* Writer: the header, then sections, then snap_write_end. 0 or -errno. */
int snap_write_header(struct snap_stream *s);
int snap_write_section(struct snap_stream *s, uint32_t type, uint32_t instance, const void *payload,
		       size_t len);
int snap_write_end(struct snap_stream *s);

/*
 * Reader: snap_read_header checks magic and version; snap_read_section
 * reads the next section's header and its whole payload into `payload`
 * (of `cap` bytes) and checks its CRC. At SNAP_END it checks the count and
 * returns 0 with sec->type == SNAP_END. -EPROTO for a bad stream (s->err
 * says why), -EMSGSIZE for a payload larger than cap, or -errno.
 */
int snap_read_header(struct snap_stream *s);
int snap_read_section(struct snap_stream *s, struct snap_section *sec, void *payload, size_t cap);

/* The largest payload a section of this type may carry, 0 for an unknown type. */
uint64_t snap_type_limit(uint32_t type);

#endif
