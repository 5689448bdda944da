#include "ctl/nethost.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "domain/domcfg.h"
#include "ctl/domusd.h"
#include "devices/virtio_net.h"
#include "lib/log.h"
#include "lib/unix_socket.h"
#include "net/netctl.h"

struct nethost_network {
	struct nethost_network *next;
	struct vfr_net_config c;
	char spec[160]; /* as given, for the listing */
};

struct nethost_port {
	struct nethost_port *next;
	unsigned domid;
	struct vfr_port_config c;
	char net_name[VFR_NAME_MAX];
	char socket[108];
	int listen_fd;
};

struct nethost_rule {
	struct nethost_rule *next;
	uint32_t id; /* domusd's and domus-net's: domus-net is told which */
	char text[VFR_RULE_TEXT_MAX];
};

struct nethost_capture {
	struct nethost_capture *next;
	unsigned domid;
	int fd;
};

static struct nethost *of_proc(struct backend_proc *p)
{
	return (struct nethost *)((char *)p - offsetof(struct nethost, proc));
}

/* One request to domus-net, when it runs; while a restart is pending the replay will carry it. */
static int request(struct nethost *h, const char *text, const int *fds, unsigned nfds, char *reply,
		   size_t replylen, char *err, size_t errlen)
{
	char none[8];

	if (!backend_proc_running(&h->proc))
		return 0;
	return netctl_request(h->proc.ctl_fd, text, fds, nfds, reply ? reply : none,
			      reply ? replylen : sizeof(none), err, errlen);
}

static int send_state(struct nethost *h, char *err, size_t errlen)
{
	char reply[128];
	int ret;

	if (h->state_fd < 0) {
		size_t size = vfr_state_size(NETHOST_CT_CAPACITY);

		h->state_fd = memfd_create("domus-net-state", MFD_CLOEXEC);
		if (h->state_fd < 0 || ftruncate(h->state_fd, (off_t)size) < 0) {
			ret = -errno;
			snprintf(err, errlen, "the VFR's state region: %s", strerror(errno));
			if (h->state_fd >= 0)
				close(h->state_fd);
			h->state_fd = -1;
			return ret;
		}
	}
	if ((ret = request(h, "state", &h->state_fd, 1, reply, sizeof(reply), err, errlen)) < 0)
		return ret;
	log_debug("domus-net: state %s", reply);
	return 0;
}

static int send_flows(struct nethost *h, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fds[2], n = 1, ret;

	snprintf(path, sizeof(path), "%.4000s/flows.jsonl", h->dir);
	fds[0] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fds[0] < 0) {
		ret = -errno;
		snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
		return ret;
	}
	if (h->ipfix[0]) {
		char host[64];
		const char *colon = strrchr(h->ipfix, ':');
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};

		snprintf(host, sizeof(host), "%.*s", (int)(colon - h->ipfix), h->ipfix);
		inet_pton(AF_INET, host, &sa.sin_addr);
		fds[1] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "IPFIX collector %s: %s", h->ipfix, strerror(errno));
			if (fds[1] >= 0)
				close(fds[1]);
			close(fds[0]);
			return ret;
		}
		n = 2;
	}
	ret = request(h, "flows", fds, (unsigned)n, NULL, 0, err, errlen);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

static int send_rule(struct nethost *h, long pos, const struct nethost_rule *r, char *err,
		     size_t errlen)
{
	char msg[VFR_RULE_TEXT_MAX + 64];

	snprintf(msg, sizeof(msg), "rule add %ld id=%u %s", pos, r->id, r->text);
	return request(h, msg, NULL, 0, NULL, 0, err, errlen);
}

/* A new domus-net gets everything again, in the order it was given. */
static int started(struct backend_proc *proc, bool again, char *why, size_t whylen)
{
	struct nethost *h = of_proc(proc);
	char msg[VFR_RULE_TEXT_MAX + 64], err[512];
	unsigned nports = 0, failed = 0;

	if (send_state(h, err, sizeof(err)) < 0) {
		log_warnx("domus-net: %s", err);
		failed++;
	}
	if (h->have_uplink) {
		netctl_uplink_msg(&h->uplink, msg, sizeof(msg));
		if (request(h, msg, &h->tap_fd, 1, NULL, 0, err, sizeof(err)) < 0) {
			log_warnx("domus-net: uplink %s: %s", h->tap, err);
			failed++;
		}
	}
	for (struct nethost_network *n = h->networks; n; n = n->next) {
		netctl_net_msg(&n->c, msg, sizeof(msg));
		if (request(h, msg, NULL, 0, NULL, 0, err, sizeof(err)) < 0) {
			log_warnx("domus-net: network %s: %s", n->c.name, err);
			failed++;
		}
	}
	if (send_flows(h, err, sizeof(err)) < 0) {
		log_warnx("domus-net: flow records: %s", err);
		failed++;
	}
	for (struct nethost_port *p = h->ports; p; p = p->next, nports++) {
		netctl_port_msg(&p->c, p->net_name, msg, sizeof(msg));
		if (request(h, msg, &p->listen_fd, 1, NULL, 0, err, sizeof(err)) < 0) {
			log_warnx("domus-net: port of domain %u: %s", p->domid, err);
			failed++;
		}
	}
	for (struct nethost_rule *r = h->rules; r; r = r->next)
		if (send_rule(h, -1, r, err, sizeof(err)) < 0) {
			log_warnx("domus-net: rule %u: %s", r->id, err);
			failed++;
		}
	for (struct nethost_capture *c = h->captures; c; c = c->next) {
		snprintf(msg, sizeof(msg), "capture %u", c->domid);
		for (struct nethost_port *p = h->ports; p; p = p->next)
			if (p->domid == c->domid)
				snprintf(msg, sizeof(msg), "capture %u", p->c.id);
		if (request(h, msg, &c->fd, 1, NULL, 0, err, sizeof(err)) < 0)
			log_warnx("domus-net: capture of domain %u: %s", c->domid, err);
	}
	(void)why, (void)whylen; /* what it refuses is logged; the rest is served */
	if (again)
		log_info("domus-net started again (pid %d), serving %u port(s)%s", (int)proc->pid,
			 nports, failed ? "; some of its configuration was refused" : "");
	return 0;
}

void nethost_init(struct nethost *h, const char *program, const char *dir)
{
	memset(h, 0, sizeof(*h));
	backend_proc_init(&h->proc, "domus-net", program, netctl_spawn, started, &domusd_loop,
			  W_BACKEND_PID, W_BACKEND_TIMER);
	h->proc.verbose = D.verbose;
	snprintf(h->dir, sizeof(h->dir), "%s", dir);
	h->state_fd = h->tap_fd = -1;
	h->next_net_id = 1;
	h->next_rule_id = 1;
}

int nethost_set_uplink(struct nethost *h, const char *spec, char *err, size_t errlen)
{
	char tap[sizeof(h->tap)], why[256];

	if (netctl_parse_uplink(spec, tap, sizeof(tap), &h->uplink, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--uplink %s", why);
		return -EINVAL;
	}
	if (h->tap_fd >= 0)
		close(h->tap_fd);
	h->tap_fd = tap_open_uplink(tap, err, errlen);
	if (h->tap_fd < 0)
		return h->tap_fd;
	strcpy(h->tap, tap);
	h->have_uplink = true;
	return 0;
}

int nethost_set_ipfix(struct nethost *h, const char *spec, char *err, size_t errlen)
{
	const char *colon = strrchr(spec, ':');
	char host[64], *end;
	long port;
	uint32_t a;

	if (!colon || (size_t)(colon - spec) >= sizeof(host) || strlen(spec) >= sizeof(h->ipfix)) {
		snprintf(err, errlen, "--ipfix '%s': expected ADDR:PORT", spec);
		return -EINVAL;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	port = strtol(colon + 1, &end, 10);
	if (netctl_parse_ip(host, &a) < 0 || !colon[1] || *end || port < 1 || port > 65535) {
		snprintf(err, errlen, "--ipfix '%s': expected ADDR:PORT (an IPv4 address)", spec);
		return -EINVAL;
	}
	strcpy(h->ipfix, spec);
	return 0;
}

static struct nethost_network *find_network(const struct nethost *h, const char *name)
{
	for (struct nethost_network *n = h->networks; n; n = n->next)
		if (!strcmp(n->c.name, name))
			return n;
	return NULL;
}

int nethost_add_network(struct nethost *h, const char *spec, char *err, size_t errlen)
{
	struct nethost_network *n;
	char buf[160], *eq, *save = NULL, *tok;
	struct vfr_net_config c = {0};
	char msg[256];
	int ret;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "network '%.40s...': too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf || (size_t)(eq - buf) >= VFR_NAME_MAX) {
		snprintf(err, errlen, "network '%s': expected NAME=CIDR[,mode=..][,default=..][,dns=..] "
			 "(a name of 1 to %d bytes)", spec, VFR_NAME_MAX - 1);
		return -EINVAL;
	}
	*eq = 0;
	for (const char *p = buf; *p; p++)
		if (!(*p == '-' || *p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z'))) {
			snprintf(err, errlen, "network '%s': a name is letters, digits, '-' and '_'", spec);
			return -EINVAL;
		}
	strcpy(c.name, buf);
	tok = strtok_r(eq + 1, ",", &save);
	if (!tok || netctl_parse_cidr(tok, &c.subnet, &c.prefix) < 0 || c.prefix > 30) {
		snprintf(err, errlen, "network '%s': '%s' is not a subnet A.B.C.D/N (N 1 to 30)", spec,
			 tok ? tok : "");
		return -EINVAL;
	}
	if (c.subnet & ~netctl_mask(c.prefix)) {
		snprintf(err, errlen, "network '%s': %s has bits set below its prefix", spec, tok);
		return -EINVAL;
	}
	c.default_action = VFR_ACCEPT;
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		if (!strncmp(tok, "mode=", 5)) {
			if (netctl_parse_mode(tok + 5, &c.mode) < 0) {
				snprintf(err, errlen, "network '%s': mode '%s' must be none, routed, nat or rsip",
					 spec, tok + 5);
				return -EINVAL;
			}
		} else if (!strncmp(tok, "default=", 8)) {
			if (netctl_parse_action(tok + 8, &c.default_action) < 0) {
				snprintf(err, errlen, "network '%s': default '%s' must be accept, drop or reject",
					 spec, tok + 8);
				return -EINVAL;
			}
		} else if (!strncmp(tok, "dns=", 4)) {
			if (netctl_parse_ip(tok + 4, &c.dns) < 0) {
				snprintf(err, errlen, "network '%s': dns '%s' is not an IPv4 address", spec,
					 tok + 4);
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "network '%s': unknown option '%s' (mode=, default=, dns=)",
				 spec, tok);
			return -EINVAL;
		}
	}
	if (c.mode != VFR_UPLINK_NONE && !h->have_uplink) {
		snprintf(err, errlen,
			 "network '%s': mode %s needs an uplink (domusd --uplink TAP:ADDR/PREFIX)",
			 spec, netctl_mode_name(c.mode));
		return -EINVAL;
	}
	if (find_network(h, c.name)) {
		snprintf(err, errlen, "network '%s': there is a network %s already", spec, c.name);
		return -EEXIST;
	}
	for (struct nethost_network *o = h->networks; o; o = o->next) {
		uint32_t m = netctl_mask(c.prefix < o->c.prefix ? c.prefix : o->c.prefix);
		if ((c.subnet & m) == (o->c.subnet & m) && c.mode != VFR_UPLINK_RSIP &&
		    o->c.mode != VFR_UPLINK_RSIP) {
			snprintf(err, errlen, "network '%s': its subnet overlaps network %s's", spec,
				 o->c.name);
			return -EEXIST;
		}
	}
	c.gateway = c.subnet + 1;
	c.frag_policy = PKT_FRAG_DROP;
	/* An RSIP network's domains live on the uplink's link, with its address. */
	if (c.mode == VFR_UPLINK_RSIP) {
		c.subnet = h->uplink.addr & netctl_mask(h->uplink.prefix);
		c.prefix = h->uplink.prefix;
		c.gateway = h->uplink.gateway;
		if (!h->rsip_ready) {
			struct rsip_config rc = {0};
			/* The host's own services below 1024 and the ephemeral ports of a stock Linux stay out. */
			rc.forbidden[0] = (struct rsip_range){0, 1023};
			rc.n_forbidden = 1;
			if ((ret = rsip_init(&h->rsip, &rc, err, errlen)) < 0)
				return ret;
			h->rsip_ready = true;
		}
	}
	c.id = h->next_net_id;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->c = c;
	snprintf(n->spec, sizeof(n->spec), "%s", spec);
	netctl_net_msg(&n->c, msg, sizeof(msg));
	if ((ret = request(h, msg, NULL, 0, NULL, 0, err, errlen)) < 0) {
		free(n);
		return ret;
	}
	h->next_net_id++;
	/* Appended: a restarted domus-net learns them in this order. */
	struct nethost_network **pp = &h->networks;
	while (*pp)
		pp = &(*pp)->next;
	*pp = n;
	return 0;
}

json_t *nethost_networks_json(const struct nethost *h)
{
	json_t *a = json_array();
	char sub[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];

	for (const struct nethost_network *n = h->networks; n; n = n->next) {
		char cidr[INET_ADDRSTRLEN + 4];
		unsigned ports = 0;

		for (const struct nethost_port *p = h->ports; p; p = p->next)
			ports += p->c.net == n->c.id;
		snprintf(cidr, sizeof(cidr), "%s/%u", netctl_ip_str(n->c.subnet, sub), n->c.prefix);
		json_array_append_new(a, json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:i}", "name",
						   n->c.name, "id", (int)n->c.id, "subnet", cidr,
						   "gateway", netctl_ip_str(n->c.gateway, gw),
						   "mode", netctl_mode_name(n->c.mode), "default",
						   vfr_action_name(n->c.default_action), "ports",
						   (int)ports));
	}
	return a;
}

/* The lowest port id no port holds: ids are the VFR's domain ids, below CT_MAX_DOMAINS. */
static uint32_t free_port_id(const struct nethost *h)
{
	for (uint32_t id = 1; id < CT_MAX_DOMAINS; id++) {
		bool taken = false;
		for (const struct nethost_port *p = h->ports; p && !taken; p = p->next)
			taken = p->c.id == id;
		if (!taken)
			return id;
	}
	return 0;
}

/* The network's next address no port holds, after the gateway. */
static uint32_t free_address(const struct nethost *h, const struct nethost_network *n)
{
	uint32_t first = n->c.subnet + 1, last = (n->c.subnet | ~netctl_mask(n->c.prefix)) - 1;

	for (uint32_t a = first; a <= last; a++) {
		bool taken = a == n->c.gateway;
		for (const struct nethost_port *p = h->ports; p && !taken; p = p->next)
			taken = p->c.net == n->c.id && p->c.addr == a;
		if (!taken)
			return a;
	}
	return 0;
}

static void close_port(struct nethost_port *p, bool remove_socket)
{
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	if (remove_socket && p->socket[0])
		unlink(p->socket);
	free(p);
}

int nethost_attach(struct nethost *h, unsigned domid, const char *name, unsigned index,
		   const struct vif_config *v, char *socket, size_t socklen, uint8_t mac[6],
		   char *err, size_t errlen)
{
	const char *net_name = v->bridge[0] ? v->bridge : NETHOST_DEFAULT_NETWORK;
	struct nethost_network *n = find_network(h, net_name);
	struct nethost_port *p;
	char msg[256];
	int ret;

	if (!n) {
		snprintf(err, errlen, "vif %u: no network '%s' (domusd --network %s=CIDR, or domus vfr "
			 "net-add)", index, net_name, net_name);
		return -ENOENT;
	}
	for (p = h->ports; p; p = p->next)
		if (p->domid == domid) {
			snprintf(err, errlen, "vif %u: a domain has one domus-net interface at most", index);
			return -EINVAL;
		}
	if (strlen(name) >= VFR_NAME_MAX) {
		snprintf(err, errlen, "vif %u: the domain's name is longer than the VFR's %d bytes", index,
			 VFR_NAME_MAX - 1);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->listen_fd = -1;
	p->domid = domid;
	p->c.id = free_port_id(h);
	if (!p->c.id) {
		free(p);
		snprintf(err, errlen, "vif %u: every one of domus-net's %d ports is taken", index,
			 CT_MAX_DOMAINS - 1);
		return -ENOSPC;
	}
	snprintf(p->c.name, sizeof(p->c.name), "%s", name);
	snprintf(p->net_name, sizeof(p->net_name), "%.*s", VFR_NAME_MAX - 1, net_name);
	p->c.net = n->c.id;
	if (v->mac[0]) {
		if (mac_parse(v->mac, p->c.mac) < 0) {
			free(p);
			snprintf(err, errlen, "vif %u: bad mac '%s'", index, v->mac);
			return -EINVAL;
		}
	} else {
		/* Xen's OUI, as xl gives; the rest from the name, so a domain keeps its MAC. */
		uint32_t mix = 2166136261u;
		for (const char *c = name; *c; c++)
			mix = (mix ^ (uint8_t)*c) * 16777619u;
		p->c.mac[0] = 0x00, p->c.mac[1] = 0x16, p->c.mac[2] = 0x3e;
		p->c.mac[3] = (uint8_t)(mix >> 16) & 0x7f, p->c.mac[4] = (uint8_t)(mix >> 8);
		p->c.mac[5] = (uint8_t)mix;
	}
	if (n->c.mode == VFR_UPLINK_RSIP) {
		if (v->ip[0]) {
			free(p);
			snprintf(err, errlen, "vif %u: a domain on RSIP network %s uses the shared address; "
				 "ip= cannot be given", index, net_name);
			return -EINVAL;
		}
		p->c.addr = h->uplink.addr;
		if (v->rsip[0]) {
			unsigned lo = 0, hi = 0;
			sscanf(v->rsip, "%u-%u", &lo, &hi);
			p->c.slice = (struct rsip_range){(uint16_t)lo, (uint16_t)hi};
			ret = rsip_request(&h->rsip, p->c.id, p->c.slice, err, errlen);
		} else {
			ret = rsip_alloc(&h->rsip, p->c.id, 0, &p->c.slice, err, errlen);
		}
		if (ret < 0) {
			free(p);
			return ret;
		}
	} else if (v->ip[0]) {
		if (netctl_parse_ip(v->ip, &p->c.addr) < 0) {
			free(p);
			snprintf(err, errlen, "vif %u: ip '%s' is not an IPv4 address", index, v->ip);
			return -EINVAL;
		}
	} else if (!(p->c.addr = free_address(h, n))) {
		free(p);
		snprintf(err, errlen, "vif %u: network %s has no free address", index, net_name);
		return -ENOSPC;
	}
	snprintf(p->socket, sizeof(p->socket), "%.80s/%u.sock", h->dir, domid);
	p->listen_fd = unix_listen(p->socket, SOCK_STREAM, 4);
	if (p->listen_fd < 0) {
		ret = p->listen_fd;
		snprintf(err, errlen, "vif %u: cannot listen on %s: %s", index, p->socket, strerror(-ret));
		p->socket[0] = 0;
		goto fail;
	}
	/* Started with the first port; while a restart is pending, the port waits for it. */
	netctl_port_msg(&p->c, p->net_name, msg, sizeof(msg));
	if ((ret = backend_proc_ensure(&h->proc, err, errlen)) < 0 ||
	    (ret = request(h, msg, &p->listen_fd, 1, NULL, 0, err, errlen)) < 0)
		goto fail;
	p->next = h->ports;
	h->ports = p;
	snprintf(socket, socklen, "%s", p->socket);
	memcpy(mac, p->c.mac, 6);
	return 0;
fail:
	if (n->c.mode == VFR_UPLINK_RSIP)
		rsip_release(&h->rsip, p->c.id);
	close_port(p, true);
	return ret;
}

static void end_capture(struct nethost *h, unsigned domid)
{
	struct nethost_capture **cp = &h->captures;

	while (*cp) {
		struct nethost_capture *c = *cp;
		if (c->domid != domid) {
			cp = &c->next;
			continue;
		}
		*cp = c->next;
		close(c->fd);
		free(c);
	}
}

void nethost_detach(struct nethost *h, unsigned domid)
{
	struct nethost_port **pp = &h->ports;
	char msg[64], err[256];

	end_capture(h, domid);
	while (*pp) {
		struct nethost_port *p = *pp;
		if (p->domid != domid) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		snprintf(msg, sizeof(msg), "unport %u", p->c.id);
		if (request(h, msg, NULL, 0, NULL, 0, err, sizeof(err)) < 0)
			log_warnx("domus-net: removing the port of domain %u: %s", domid, err);
		if (h->rsip_ready)
			rsip_release(&h->rsip, p->c.id);
		close_port(p, true);
	}
}

static const struct nethost_port *port_of(const struct nethost *h, unsigned domid)
{
	for (const struct nethost_port *p = h->ports; p; p = p->next)
		if (p->domid == domid)
			return p;
	return NULL;
}

json_t *nethost_port_json(const struct nethost *h, unsigned domid)
{
	const struct nethost_port *p = port_of(h, domid);
	char mac[18], a[INET_ADDRSTRLEN];
	json_t *o;

	if (!p)
		return NULL;
	o = json_pack("{s:s,s:i,s:s,s:s,s:s}", "network", p->net_name, "port", (int)p->c.id, "mac",
		      netctl_mac_str(p->c.mac, mac), "address", netctl_ip_str(p->c.addr, a),
		      "socket", p->socket);
	if (o && p->c.slice.end)
		json_object_set_new(o, "rsip_slice", json_pack("[i,i]", p->c.slice.start, p->c.slice.end));
	return o;
}

int nethost_rule_add(struct nethost *h, long pos, const char *text, uint32_t *id, char *err,
		     size_t errlen)
{
	struct nethost_rule *r, **pp = &h->rules;
	struct vfr_rule parsed;
	long i = 0;
	int ret;

	/* Checked here too: with domus-net not running the rule still must make sense. */
	if ((ret = vfr_rule_parse(text, &parsed, err, errlen)) < 0)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->id = h->next_rule_id;
	vfr_rule_print(&parsed, r->text, sizeof(r->text));
	while (*pp && (pos < 0 || i < pos)) {
		pp = &(*pp)->next;
		i++;
	}
	if ((ret = send_rule(h, pos < 0 ? -1 : i, r, err, errlen)) < 0) {
		free(r);
		return ret;
	}
	r->next = *pp;
	*pp = r;
	h->next_rule_id++;
	*id = r->id;
	return 0;
}

int nethost_rule_remove(struct nethost *h, uint32_t id, char *err, size_t errlen)
{
	struct nethost_rule **pp = &h->rules;
	char msg[64];
	int ret;

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	if (!*pp) {
		snprintf(err, errlen, "no rule %u", id);
		return -ENOENT;
	}
	snprintf(msg, sizeof(msg), "rule remove %u", id);
	if ((ret = request(h, msg, NULL, 0, NULL, 0, err, errlen)) < 0)
		return ret;
	struct nethost_rule *r = *pp;
	*pp = r->next;
	free(r);
	return 0;
}

json_t *nethost_rules_json(const struct nethost *h)
{
	json_t *a = json_array();
	unsigned pos = 0;

	for (const struct nethost_rule *r = h->rules; r; r = r->next, pos++)
		json_array_append_new(a, json_pack("{s:i,s:i,s:s}", "id", (int)r->id, "position",
						   (int)pos, "rule", r->text));
	return a;
}

json_t *nethost_stats_json(struct nethost *h, char *err, size_t errlen)
{
	static char reply[NETCTL_MSG_MAX];
	json_error_t je;
	json_t *o;

	if (!backend_proc_running(&h->proc)) {
		snprintf(err, errlen, "domus-net is not running (it starts with the first interface)");
		return NULL;
	}
	if (netctl_request(h->proc.ctl_fd, "stats", NULL, 0, reply, sizeof(reply), err, errlen) < 0)
		return NULL;
	o = json_loads(reply, 0, &je);
	if (!o)
		snprintf(err, errlen, "domus-net's statistics are not JSON: %s", je.text);
	return o;
}

int nethost_capture(struct nethost *h, unsigned domid, const char *path, char *err, size_t errlen)
{
	const struct nethost_port *p = port_of(h, domid);
	struct nethost_capture *c;
	char msg[64];
	int fd, ret;

	if (!p) {
		snprintf(err, errlen, "the domain has no domus-net interface");
		return -ENOENT;
	}
	for (c = h->captures; c; c = c->next)
		if (c->domid == domid) {
			snprintf(err, errlen, "the domain's port is being captured already");
			return -EBUSY;
		}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	snprintf(msg, sizeof(msg), "capture %u", p->c.id);
	if ((ret = request(h, msg, &fd, 1, NULL, 0, err, errlen)) < 0) {
		close(fd);
		return ret;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->domid = domid;
	c->fd = fd;
	c->next = h->captures;
	h->captures = c;
	return 0;
}

int nethost_uncapture(struct nethost *h, unsigned domid, char *err, size_t errlen)
{
	const struct nethost_port *p = port_of(h, domid);
	char msg[64];
	bool found = false;
	int ret;

	for (struct nethost_capture *c = h->captures; c; c = c->next)
		found |= c->domid == domid;
	if (!p || !found) {
		snprintf(err, errlen, "the domain's port is not being captured");
		return -ENOENT;
	}
	snprintf(msg, sizeof(msg), "uncapture %u", p->c.id);
	if ((ret = request(h, msg, NULL, 0, NULL, 0, err, errlen)) < 0)
		return ret;
	end_capture(h, domid);
	return 0;
}

void nethost_stop(struct nethost *h)
{
	while (h->ports) {
		struct nethost_port *p = h->ports;
		h->ports = p->next;
		/* The sockets stay: domains keep running and the next domusd listens there again. */
		close_port(p, false);
	}
	while (h->captures)
		end_capture(h, h->captures->domid);
	backend_proc_stop(&h->proc);
	while (h->rules) {
		struct nethost_rule *r = h->rules;
		h->rules = r->next;
		free(r);
	}
	while (h->networks) {
		struct nethost_network *n = h->networks;
		h->networks = n->next;
		free(n);
	}
	if (h->rsip_ready)
		rsip_free(&h->rsip);
	h->rsip_ready = false;
	if (h->state_fd >= 0)
		close(h->state_fd);
	if (h->tap_fd >= 0)
		close(h->tap_fd);
	h->state_fd = h->tap_fd = -1;
}
