/*
 * RSIP (Realm Specific IP, RFC 3102/3103) port-space sharing for domus-net:
 * every domain of an RSIP network uses the host's one public IPv4 address
 * and owns a slice of its port space. Nothing is rewritten: the VFR checks
 * that a domain's packets leave from a port of its slice and delivers
 * inbound packets to the owner of their destination port. A pure library
 * over one table per shared address, tested alone (tests/unit/test_net_rsip.c).
 *
 * One slice covers TCP, UDP and ICMP echo identifiers together: a guest's
 * net.ipv4.ip_local_port_range applies to TCP and UDP at once, so one
 * range is what a stock guest can apply, and one owner per number keeps
 * the demultiplexer a single lookup.
 *
 * Ports the caller forbids (below 1024, the host's own ephemeral range) and
 * port 0 are never handed out. Slices chosen by the table start at a
 * multiple of its alignment; slices asked for explicitly may start anywhere
 * free. Demultiplexing is O(1): a 65536-entry owner map beside the slices.
 */
#ifndef DOMUS_NET_RSIP_H
#define DOMUS_NET_RSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RSIP_MAX_SLICES 1024
#define RSIP_MAX_FORBIDDEN 16
#define RSIP_DEFAULT_SIZE 1000
#define RSIP_DEFAULT_ALIGN 1000
/* Site-specific DHCP option (RFC 3942 keeps 224-254 for sites) carrying the slice. */
#define RSIP_DHCP_OPTION 224

#define RSIP_PROTO_ICMP 1
#define RSIP_PROTO_TCP 6
#define RSIP_PROTO_UDP 17

/* Inclusive, as ip_local_port_range is. */
struct rsip_range {
	uint16_t start, end;
};

/* One slice as saved: the flat array domusd persists. */
struct rsip_slice {
	uint32_t domid;
	uint16_t start, end;
};

struct rsip_config {
	struct rsip_range forbidden[RSIP_MAX_FORBIDDEN];
	size_t n_forbidden;
	uint16_t slice_size; /* what rsip_alloc hands out when asked for 0; 0: RSIP_DEFAULT_SIZE */
	uint16_t align;	     /* start of chosen slices, a multiple of it; 0: RSIP_DEFAULT_ALIGN */
};

struct rsip_table {
	struct rsip_config cfg;
	struct rsip_slice slices[RSIP_MAX_SLICES]; /* slots; a free one has end < start */
	size_t n_slots;				   /* slots in use or freed, from the start */
	/* Per port: 0 free, RSIP_OWNER_FORBIDDEN, or slot + 1. */
	uint16_t *owner;
};
#define RSIP_OWNER_FORBIDDEN 0xffff

/* A packet as the VFR's parser gives it, only what RSIP looks at. */
struct rsip_packet {
	uint8_t proto;		     /* RSIP_PROTO_* or any other IP protocol */
	uint16_t src_port, dst_port; /* TCP, UDP */
	uint8_t icmp_type;	     /* ICMP */
	uint16_t icmp_id;	     /* ICMP echo request and reply */
	uint8_t inner_proto;	     /* ICMP error: the embedded original header */
	uint16_t inner_src_port, inner_dst_port;
};

/*
 * Sets up an empty table with cfg's forbidden ranges (port 0 always is).
 * 0, -EINVAL with why in err (a range backwards, an alignment of 0 ...),
 * or -ENOMEM.
 */
int rsip_init(struct rsip_table *t, const struct rsip_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void rsip_free(struct rsip_table *t);

/*
 * Gives domid a slice of size ports (0: the table's slice size), at the
 * lowest aligned start where it fits. 0 with the slice in *out; -EEXIST if
 * domid has one, -ENOSPC with "no free slice of N ports: F free in pieces
 * of at most P" in err, -EINVAL for a size that cannot be.
 */
int rsip_alloc(struct rsip_table *t, uint32_t domid, uint32_t size, struct rsip_range *out,
	       char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * Gives domid exactly r. -EBUSY with "slice 20000-20999 overlaps domain 3's
 * 20500-21499" (or the reserved range it overlaps) in err, -EEXIST, -EINVAL
 * (backwards, port 0), -ENOSPC when the table has no slot left.
 */
int rsip_request(struct rsip_table *t, uint32_t domid, struct rsip_range r, char *err,
		 size_t errlen) __attribute__((warn_unused_result));
/* Takes domid's slice back; -ENOENT if it had none. */
int rsip_release(struct rsip_table *t, uint32_t domid);
/* domid's slice in *out, or -ENOENT. */
int rsip_slice_of(const struct rsip_table *t, uint32_t domid, struct rsip_range *out);

/* The slices, by start, into out (at most max); returns how many there are. */
size_t rsip_save(const struct rsip_table *t, struct rsip_slice *out, size_t max);
/*
 * Puts saved slices back into an empty table, each checked as rsip_request
 * checks it (so a slice now inside a forbidden range is refused, with the
 * domain named in err). On error the table is left empty.
 */
int rsip_restore(struct rsip_table *t, const struct rsip_slice *in, size_t n, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

/* The domain owning port, or -ENOENT. */
int rsip_owner(const struct rsip_table *t, uint16_t port, uint32_t *domid);
/*
 * The domain an inbound packet for the shared address goes to: by
 * destination port for TCP and UDP, by identifier for an echo reply, by
 * the embedded header's source port for an ICMP error (destination
 * unreachable, time exceeded, parameter problem: the original left from
 * the domain's port). -ENOENT when no domain owns it, -EPROTONOSUPPORT for
 * what carries no port (other protocols, other ICMP types: the host's).
 */
int rsip_demux(const struct rsip_table *t, const struct rsip_packet *p, uint32_t *domid);
/*
 * Whether domid may send p from the shared address: the source port of TCP
 * and UDP, the identifier of an echo request or reply, the embedded
 * header's destination port of an ICMP error it sends, all in its slice.
 * Anything else is refused.
 */
bool rsip_outbound_ok(const struct rsip_table *t, uint32_t domid, const struct rsip_packet *p);

/* "32768\t60999\n", as /proc/sys/net/ipv4/ip_local_port_range reads: 0 or -EINVAL. */
int rsip_parse_port_range(const char *text, struct rsip_range *out);

/*
 * What the guest is told. The kernel command line parameter
 * "domus.rsip=203.0.113.7:20000-20999"; the guest's commands
 * "sysctl -w net.ipv4.ip_local_port_range=\"20000 20999\""; and the DHCP
 * option's bytes (code RSIP_DHCP_OPTION, length 4, start and end as 16-bit
 * big-endian: the address is the lease itself). addr is in host order.
 * Each returns the length written, or -ENOSPC when it does not fit.
 */
int rsip_format_cmdline(uint32_t addr, struct rsip_range r, char *buf, size_t len);
int rsip_format_sysctl(struct rsip_range r, char *buf, size_t len);
int rsip_format_dhcp_option(struct rsip_range r, uint8_t *buf, size_t len);

#endif
