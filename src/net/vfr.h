/*
 * The Virtual Firewall Router's datapath: one frame in from a port (a
 * domain's virtio-net, or the uplink), zero or more frames out. Pure: no
 * sockets, no clock reads (now is an argument), no allocation on the packet
 * path. domus-net (src/net/domus-net.c) feeds it what the guests send and
 * hands its output to the guests' receive queues and the uplink's TAP;
 * tests feed it crafted frames.
 *
 * What it does with a frame from a domain's port, in order:
 *   1. parse (net/packet.c); malformed or refused frames are dropped;
 *   2. anti-spoofing: the source MAC must be the port's, the source IPv4
 *      address the port's (0.0.0.0 only for DHCP), ARP's sender the same;
 *   3. ARP requests for the network's gateway or any address on the network
 *      are answered by the VFR itself (the port that owns an address, or
 *      the gateway's MAC for addresses beyond), never flooded;
 *   4. DHCP (UDP 67) is answered by the VFR: the port's fixed address, the
 *      network's mask, the gateway as router, DNS, lease time, and in RSIP
 *      networks the port's slice as option 224 (net/rsip.h);
 *   5. IPv4 to an address on the same network is switched to its port, to
 *      another network routed (TTL decremented, MACs rewritten), beyond
 *      every network sent to the uplink as the network's mode says;
 *   6. every forwarded IPv4 packet passes connection tracking and, when it
 *      starts a flow, the rules (net/rules.h); denied packets are counted
 *      and logged (rate limited), rejected ones answered (TCP RST or ICMP
 *      port/admin unreachable).
 * Frames from the uplink: ARP for the uplink's address answered; IPv4 for
 * a domain delivered by the network's mode (routed: by address; NAT: by
 * the translation table; RSIP: to the owner of the destination port).
 *
 * State that must survive a restart (conntrack, NAT translations) lives in
 * one flat region the caller gives (a memfd domusd keeps); configuration
 * (networks, ports, rules, slices) is handed again by domusd.
 */
#ifndef DOMUS_NET_VFR_H
#define DOMUS_NET_VFR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/conntrack.h"
#include "net/ipfix.h"
#include "net/offload.h"
#include "net/rsip.h"
#include "net/rules.h"

#define VFR_MAX_PORTS 256
#define VFR_UPLINK 0 /* the uplink's port id; a domain's port has its domain id */
#define VFR_FRAME_MAX 1518 /* Ethernet, one VLAN tag, no FCS */
#define VFR_MTU 1500
/* A TCP/IPv4 segment a sender left to cut: an IPv4 packet of up to 64 KiB, no VLAN tag. */
#define VFR_GSO_FRAME_MAX (14 + 65535)

enum vfr_uplink_mode {
	VFR_UPLINK_NONE = 0, /* a network of domains only */
	VFR_UPLINK_ROUTED,   /* forwarded as is; the far side routes the subnet to the uplink's address */
	VFR_UPLINK_NAT,	     /* masquerade: source rewritten to the uplink's address and a free port */
	VFR_UPLINK_RSIP,     /* domains use the uplink's address and their own slice of its ports */
};

struct vfr_uplink_config {
	uint8_t mac[6];	  /* the VFR's MAC on the uplink */
	uint32_t addr;	  /* its address there: the shared public address for NAT and RSIP */
	uint8_t prefix;	  /* the uplink link's prefix length */
	uint32_t gateway; /* next hop for everything beyond; 0: deliver on link by ARP */
};

struct vfr_net_config {
	uint32_t id; /* nonzero, unique; the rules' network id */
	char name[VFR_NAME_MAX];
	uint32_t subnet; /* host order, bits below prefix zero; RSIP: the uplink's link */
	uint8_t prefix;
	uint32_t gateway; /* the VFR's own address on the network (0: the subnet's first) */
	uint32_t dns;	  /* handed out by DHCP; 0: none */
	enum vfr_action default_action;
	enum vfr_uplink_mode mode;
	enum pkt_frag_policy frag_policy;
};

struct vfr_port_config {
	uint32_t id; /* the domain id: 1 .. CT_MAX_DOMAINS - 1 */
	char name[VFR_NAME_MAX];
	uint32_t net;	 /* network id */
	uint8_t mac[6];	 /* the only source MAC the port may use */
	uint32_t addr;	 /* the only source address (RSIP: the uplink's address) */
	struct rsip_range slice; /* RSIP networks: the domain's ports */
	uint32_t rate_pps;	 /* frames per second the port may send, 0: unlimited */
};

/* Counters per port (and for the uplink), for `domus vfr stats`. */
struct vfr_port_stats {
	uint64_t rx_frames, rx_bytes; /* from the port into the VFR */
	uint64_t tx_frames, tx_bytes; /* delivered to the port */
	uint64_t malformed, refused, spoofed, denied, rejected, rate_limited, no_route;
	uint64_t arp_replies, dhcp_replies;
};

struct vfr_callbacks {
	void *ctx;
	/*
	 * A frame to deliver on port (VFR_UPLINK or a domain's id). off is
	 * NULL, or what its sender left undone and the VFR kept (a partial
	 * checksum, a TCP segment of up to 64 KiB: vfr_input_offload), for
	 * the receiver to take or the caller to do (net/offload.h). Must not
	 * call back in.
	 */
	void (*emit)(void *ctx, uint32_t port, const uint8_t *frame, size_t len,
		     const struct virtio_net_hdr *off);
	/* One line for the deny log (already rate limited), no newline. May be NULL. */
	void (*log)(void *ctx, const char *line);
	/* A flow left the table (and denied first packets, verdict drop/reject). May be NULL. */
	void (*flow)(void *ctx, const struct ipfix_flow *f);
};

struct vfr;

/* Bytes of state region for a conntrack table of ct_capacity flows and a NAT table. */
size_t vfr_state_size(uint32_t ct_capacity);
/*
 * A VFR on state[0, len): laid out anew when fresh, else taken over from
 * a previous process (checked; what makes no sense is dropped, err says
 * what). seed keys the hashes. 0 or -errno with err.
 */
int vfr_new(void *state, size_t len, bool fresh, uint32_t ct_capacity, uint64_t seed,
	    const struct vfr_callbacks *cb, struct vfr **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void vfr_free(struct vfr *v);

/* 0, or -EINVAL / -EEXIST / -ENOSPC with err naming what is wrong. */
int vfr_set_uplink(struct vfr *v, const struct vfr_uplink_config *u, char *err, size_t errlen);
int vfr_add_net(struct vfr *v, const struct vfr_net_config *n, char *err, size_t errlen);
/* Refused: unknown network, address outside it or taken, MAC taken, slice overlapping. */
int vfr_add_port(struct vfr *v, const struct vfr_port_config *p, char *err, size_t errlen);
/* Removes the port and its flows (and clears its pairs slot). 0 or -ENOENT. */
int vfr_remove_port(struct vfr *v, uint32_t id);
/*
 * Port id's slot in the state region for the queue pairs its domain's
 * driver uses (0: not known), which outlives the process as the flows do:
 * the driver says it once, over the control queue, and not again to a
 * restarted domus-net. NULL for an id out of range.
 */
uint16_t *vfr_port_pairs_slot(struct vfr *v, uint32_t id);

/*
 * Rules: text as net/rules.h reads it, names resolved against the ports and
 * networks known. Insert before position pos (-1 or past the end: append);
 * the new rule's id in *id. Established flows the new set still accepts
 * stay; the others are removed. 0 or -errno with err.
 */
int vfr_rule_add(struct vfr *v, const char *text, long pos, uint32_t *id, char *err,
		 size_t errlen);
/* The same with the id the caller chose (want; 0: one is chosen). */
int vfr_rule_add_as(struct vfr *v, const char *text, long pos, uint32_t want, uint32_t *id,
		    char *err, size_t errlen);
int vfr_rule_remove(struct vfr *v, uint32_t id, char *err, size_t errlen);
const struct vfr_ruleset *vfr_rules(const struct vfr *v);

/*
 * One frame sent by port (a domain's id, or VFR_UPLINK) at now (ms, any
 * monotonic clock; wall_ms is the epoch time for flow records). Outputs go
 * through cb->emit before it returns. Never fails: a bad frame is counted.
 */
void vfr_input(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len, uint64_t now,
	       uint64_t wall_ms);
/*
 * The same for a frame whose sender left work to a device, as virtio-net's
 * header says (off; NULL or asking nothing: vfr_input). Taken: a partial
 * checksum that is the IPv4 packet's TCP or UDP checksum; a TCP/IPv4
 * segment (VIRTIO_NET_HDR_GSO_TCPV4, the checksum partial) of up to
 * VFR_GSO_FRAME_MAX bytes whose frames, cut at gso_size, fit the MTU.
 * Anything else is malformed. The frame goes through switching, the
 * firewall and NAT whole and leaves with the work still undone (emit's
 * off); every counter (ports, flows, flow records, the rate limit) counts
 * the frames it stands for.
 */
void vfr_input_offload(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len,
		       const struct virtio_net_hdr *off, uint64_t now, uint64_t wall_ms);
/* Expires idle flows (records for them go to cb->flow). Call about once a second. */
void vfr_tick(struct vfr *v, uint64_t now, uint64_t wall_ms);
/*
 * A rule change does not recheck every flow while traffic waits: each flow
 * is rechecked on its next packet, and the rest here, at most budget flows
 * a call, between batches of packets (ct_recheck_step). Returns whether
 * flows remain to be rechecked (the caller calls again soon, not after
 * sleeping).
 */
bool vfr_recheck_step(struct vfr *v, uint32_t budget);
#define VFR_RECHECK_BUDGET 256 /* flows a step matches: a few microseconds of rules */

/* Counters of a port (VFR_UPLINK for the uplink); NULL when there is no such port. */
const struct vfr_port_stats *vfr_port_stats(const struct vfr *v, uint32_t port);
const struct ct_table *vfr_conntrack(const struct vfr *v);

#endif
