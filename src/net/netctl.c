/* The supervisor's end of domus-net's control socket (net/netctl.h), on lib/ctlproc. */
#include "net/netctl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ctlproc.h"

int netctl_spawn(const char *program, bool verbose, pid_t *pid, int *ctl_fd, char *err,
		 size_t errlen)
{
	return ctlproc_spawn(program, "domus-net", verbose, pid, ctl_fd, err, errlen);
}

int netctl_request(int ctl_fd, const char *text, const int *fds, unsigned nfds, char *reply,
		   size_t replylen, char *err, size_t errlen)
{
	char none[1];

	/* The text after "ok" is always wanted here: a caller that does not keep it gives none. */
	return ctlproc_request(ctl_fd, "domus-net", text, fds, nfds, NETCTL_REPLY_MS,
			       reply ? reply : none, reply ? replylen : sizeof(none), err, errlen);
}

void netctl_find_program(char *out, size_t len, const char *near)
{
	ctlproc_find_program(out, len, "DOMUS_NET", "domus-net", "../net", near);
}

const char *netctl_ip_str(uint32_t a, char *buf)
{
	struct in_addr in = {htonl(a)};

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
	return buf;
}

int netctl_parse_ip(const char *s, uint32_t *out)
{
	struct in_addr in;

	if (inet_pton(AF_INET, s, &in) != 1)
		return -EINVAL;
	*out = ntohl(in.s_addr);
	return 0;
}

int netctl_parse_cidr(const char *s, uint32_t *addr, uint8_t *prefix)
{
	char buf[32], *slash, *end;
	long n;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = 0;
	n = strtol(slash + 1, &end, 10);
	if (!slash[1] || *end || n < 1 || n > 32 || netctl_parse_ip(buf, addr) < 0)
		return -EINVAL;
	*prefix = (uint8_t)n;
	return 0;
}

uint32_t netctl_mask(uint8_t prefix) { return prefix ? ~0U << (32 - prefix) : 0; }

static const char *const mode_names[] = {"none", "routed", "nat", "rsip"};

const char *netctl_mode_name(enum vfr_uplink_mode m) { return mode_names[m]; }

int netctl_parse_mode(const char *s, enum vfr_uplink_mode *m)
{
	for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (!strcmp(s, mode_names[i])) {
			*m = (enum vfr_uplink_mode)i;
			return 0;
		}
	return -EINVAL;
}

int netctl_parse_action(const char *s, enum vfr_action *a)
{
	if (!strcmp(s, "accept"))
		*a = VFR_ACCEPT;
	else if (!strcmp(s, "drop"))
		*a = VFR_DROP;
	else if (!strcmp(s, "reject"))
		*a = VFR_REJECT;
	else
		return -EINVAL;
	return 0;
}

const char *netctl_mac_str(const uint8_t m[6], char *buf)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

void netctl_uplink_msg(const struct vfr_uplink_config *u, char *buf, size_t len)
{
	char mac[18], a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN];

	snprintf(buf, len, "uplink %s %s/%u %s", netctl_mac_str(u->mac, mac),
		 netctl_ip_str(u->addr, a), u->prefix, netctl_ip_str(u->gateway, g));
}

void netctl_net_msg(const struct vfr_net_config *n, char *buf, size_t len)
{
	char sub[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN], dns[INET_ADDRSTRLEN + 8] = "";

	if (n->dns) {
		strcpy(dns, " dns=");
		netctl_ip_str(n->dns, dns + 5);
	}
	snprintf(buf, len, "net %s %u %s/%u %s mode=%s default=%s%s", n->name, n->id,
		 netctl_ip_str(n->subnet, sub), n->prefix, netctl_ip_str(n->gateway, gw),
		 netctl_mode_name(n->mode), vfr_action_name(n->default_action), dns);
}

void netctl_port_msg(const struct vfr_port_config *p, const char *net_name, char *buf, size_t len)
{
	char mac[18], a[INET_ADDRSTRLEN];
	int n = snprintf(buf, len, "port %u %s %s %s %s", p->id, p->name, net_name,
			 netctl_mac_str(p->mac, mac), netctl_ip_str(p->addr, a));

	if (p->slice.end >= p->slice.start && p->slice.end && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " slice=%u-%u", p->slice.start, p->slice.end);
}

int netctl_parse_uplink(const char *spec, char *tap, size_t taplen, struct vfr_uplink_config *u,
			char *err, size_t errlen)
{
	char buf[128], *cidr, *gw;
	uint32_t mix = 0;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "'%.40s...': too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	cidr = strchr(buf, ':');
	if (!cidr) {
		snprintf(err, errlen, "'%s': expected TAP:ADDR/PREFIX[:GATEWAY]", spec);
		return -EINVAL;
	}
	*cidr++ = 0;
	gw = strchr(cidr, ':');
	if (gw)
		*gw++ = 0;
	memset(u, 0, sizeof(*u));
	if (netctl_parse_cidr(cidr, &u->addr, &u->prefix) < 0 ||
	    (gw && netctl_parse_ip(gw, &u->gateway) < 0)) {
		snprintf(err, errlen, "'%s': expected TAP:ADDR/PREFIX[:GATEWAY]", spec);
		return -EINVAL;
	}
	if (gw && (u->gateway & netctl_mask(u->prefix)) != (u->addr & netctl_mask(u->prefix))) {
		snprintf(err, errlen, "'%s': gateway %s is not on %s", spec, gw, cidr);
		return -EINVAL;
	}
	if (!*buf || strlen(buf) >= taplen) {
		snprintf(err, errlen, "'%s': a TAP name is 1 to %zu bytes", spec, taplen - 1);
		return -EINVAL;
	}
	strcpy(tap, buf);
	/* A locally administered MAC made from the address: the same on every start. */
	for (const char *c = cidr; *c; c++)
		mix = mix * 31 + (uint8_t)*c;
	u->mac[0] = 0x02, u->mac[1] = 0xd0, u->mac[2] = 0x75;
	u->mac[3] = (uint8_t)(mix >> 16), u->mac[4] = (uint8_t)(mix >> 8);
	u->mac[5] = (uint8_t)mix;
	return 0;
}
