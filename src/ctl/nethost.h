/*
 * The host's network driver domain: one domus-net process, the Virtual
 * Firewall Router, serving the network interfaces of every domain domusd
 * runs (src/net/netctl.h is its control protocol, docs/net.md the whole).
 * domusd owns the configuration (the uplink, the networks, each domain's
 * port with its MAC, address and RSIP slice, the rules in order, the
 * captures) and the state region (connection tracking, NAT), a memfd it
 * keeps; when domus-net dies it is started again (backing off as for
 * domus-blk), handed the same region and every message again, and each
 * VMM reconnects to its port's unchanged socket.
 */
#ifndef DOMUS_NETHOST_H
#define DOMUS_NETHOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/backend_proc.h"
#include "net/rsip.h"
#include "net/vfr.h"

struct vif_config;
struct nethost_network;
struct nethost_port;
struct nethost_rule;
struct nethost_capture;

#define NETHOST_CT_CAPACITY 65536 /* flows tracked at once, for every domain */
#define NETHOST_DEFAULT_NETWORK "default"

struct nethost {
	struct backend_proc proc; /* domus-net */
	char dir[PATH_MAX - 64];  /* the ports' sockets, the flow log */
	int state_fd;		  /* the VFR's state region, kept across restarts */
	bool have_uplink;
	int tap_fd;
	char tap[16];
	struct vfr_uplink_config uplink;
	char ipfix[128]; /* HOST:PORT of an IPFIX collector, "" for none */
	struct nethost_network *networks;
	struct nethost_port *ports;
	struct nethost_rule *rules; /* in match order */
	struct nethost_capture *captures;
	uint32_t next_net_id, next_rule_id;
	struct rsip_table rsip; /* the slices of the uplink's address's ports */
	bool rsip_ready;
};

void nethost_init(struct nethost *h, const char *program, const char *dir);
/*
 * The uplink: "TAP:ADDR/PREFIX[:GATEWAY]" (domusd --uplink). The TAP is
 * opened (made if missing) now. 0 or -errno with err.
 */
int nethost_set_uplink(struct nethost *h, const char *spec, char *err, size_t errlen);
/* Where IPFIX records go: "HOST:PORT" (an IPv4 address). 0 or -EINVAL with err. */
int nethost_set_ipfix(struct nethost *h, const char *spec, char *err, size_t errlen);
/*
 * A network: "NAME=CIDR[,mode=none|routed|nat|rsip][,default=accept|drop|reject][,dns=ADDR]"
 * (domusd --network, domus vfr net-add). 0 or -errno with err.
 */
int nethost_add_network(struct nethost *h, const char *spec, char *err, size_t errlen);
json_t *nethost_networks_json(const struct nethost *h);

/*
 * Serves interface index of domain domid (named name) through domus-net,
 * starting it if need be: the vif's network (bridge=, else "default"),
 * its MAC (or one made from the domain's name), its address (or the
 * network's next free one; in RSIP networks the uplink's, with a slice).
 * The port's socket path in socket, its MAC in mac. 0 or -errno with err.
 */
int nethost_attach(struct nethost *h, unsigned domid, const char *name, unsigned index,
		   const struct vif_config *v, char *socket, size_t socklen, uint8_t mac[6],
		   char *err, size_t errlen);
/* Stops serving domid's interfaces (its captures end). */
void nethost_detach(struct nethost *h, unsigned domid);
/* The domain's interface as JSON (network, mac, address, slice), or NULL without one. */
json_t *nethost_port_json(const struct nethost *h, unsigned domid);

/* The rules, live: pos < 0 appends. The rule's id in *id. 0 or -errno with err. */
int nethost_rule_add(struct nethost *h, long pos, const char *text, uint32_t *id, char *err,
		     size_t errlen);
int nethost_rule_remove(struct nethost *h, uint32_t id, char *err, size_t errlen);
json_t *nethost_rules_json(const struct nethost *h);
/* domus-net's counters (per port, conntrack), as it reports them; NULL with err. */
json_t *nethost_stats_json(struct nethost *h, char *err, size_t errlen);
/* A pcap capture of domid's port into path (made, 0600), until nethost_uncapture. */
int nethost_capture(struct nethost *h, unsigned domid, const char *path, char *err, size_t errlen);
int nethost_uncapture(struct nethost *h, unsigned domid, char *err, size_t errlen);
/* Ends domus-net at domusd's exit (sockets stay for the next domusd). */
void nethost_stop(struct nethost *h);

#endif
