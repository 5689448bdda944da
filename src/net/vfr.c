/*
 * TEMPORARY, replaced by the real datapath: a stand-in for the VFR (vfr.h)
 * so that domus-net and its tests build and run before the real one is
 * merged. It only switches frames by destination MAC between the ports of
 * one network (and to the uplink when no port has the MAC); no ARP, no
 * DHCP, no routing, no rules on the path (they are parsed and kept),
 * conntrack laid out in the state region but never fed. Nothing here is
 * meant to last: the final merge takes the real src/net/vfr.c.
 */
#include "net/vfr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMP_MAGIC 0x56465254u /* "VFRT" */
#define HEADER 64

struct temp_port {
	bool used;
	struct vfr_port_config cfg;
	struct vfr_port_stats st;
};

struct vfr {
	struct vfr_callbacks cb;
	struct ct_table *ct;
	struct vfr_ruleset *rules;
	bool have_uplink;
	struct vfr_uplink_config uplink;
	struct vfr_port_stats uplink_st;
	struct vfr_net_config nets[VFR_NETWORKS_MAX];
	unsigned nnets;
	struct temp_port ports[CT_MAX_DOMAINS];
};

size_t vfr_state_size(uint32_t ct_capacity) { return HEADER + ct_region_size(ct_capacity); }

int vfr_new(void *state, size_t len, bool fresh, uint32_t ct_capacity, uint64_t seed,
	    const struct vfr_callbacks *cb, struct vfr **out, char *err, size_t errlen)
{
	struct vfr *v;
	uint32_t *magic = state;
	int ret;

	if (len < vfr_state_size(ct_capacity)) {
		snprintf(err, errlen, "a state region of %zu bytes, %zu needed", len,
			 vfr_state_size(ct_capacity));
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v || vfr_ruleset_new(VFR_ACCEPT, &v->rules) < 0) {
		free(v);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v->cb = *cb;
	if (!fresh && *magic != TEMP_MAGIC) {
		snprintf(err, errlen, "the state region is not a VFR's; laid out anew");
		fresh = true;
	}
	if (fresh) {
		*magic = TEMP_MAGIC;
		ret =
		    ct_init((uint8_t *)state + HEADER, len - HEADER, ct_capacity, 0, seed, &v->ct);
	} else {
		ret = ct_attach((uint8_t *)state + HEADER, len - HEADER, &v->ct, err, errlen);
	}
	if (ret < 0) {
		vfr_free(v);
		return ret;
	}
	*out = v;
	return 0;
}

void vfr_free(struct vfr *v)
{
	if (!v)
		return;
	vfr_ruleset_free(v->rules);
	free(v);
}

int vfr_set_uplink(struct vfr *v, const struct vfr_uplink_config *u, char *err, size_t errlen)
{
	v->uplink = *u;
	v->have_uplink = true;
	return 0;
}

int vfr_add_net(struct vfr *v, const struct vfr_net_config *n, char *err, size_t errlen)
{
	if (n->id == 0) {
		snprintf(err, errlen, "network id 0");
		return -EINVAL;
	}
	for (unsigned i = 0; i < v->nnets; i++)
		if (v->nets[i].id == n->id || !strcmp(v->nets[i].name, n->name)) {
			snprintf(err, errlen, "network %s (%u) exists", n->name, n->id);
			return -EEXIST;
		}
	if (v->nnets == VFR_NETWORKS_MAX) {
		snprintf(err, errlen, "at most %d networks", VFR_NETWORKS_MAX);
		return -ENOSPC;
	}
	v->nets[v->nnets++] = *n;
	return 0;
}

int vfr_add_port(struct vfr *v, const struct vfr_port_config *p, char *err, size_t errlen)
{
	bool net = false;

	if (p->id == 0 || p->id >= CT_MAX_DOMAINS) {
		snprintf(err, errlen, "port id %u: 1 to %d", p->id, CT_MAX_DOMAINS - 1);
		return -EINVAL;
	}
	for (unsigned i = 0; i < v->nnets; i++)
		net |= v->nets[i].id == p->net;
	if (!net) {
		snprintf(err, errlen, "port %u: no network %u", p->id, p->net);
		return -EINVAL;
	}
	if (v->ports[p->id].used) {
		snprintf(err, errlen, "port %u exists", p->id);
		return -EEXIST;
	}
	for (unsigned i = 1; i < CT_MAX_DOMAINS; i++)
		if (v->ports[i].used && !memcmp(v->ports[i].cfg.mac, p->mac, 6)) {
			snprintf(err, errlen, "port %u: its MAC is port %u's", p->id, i);
			return -EEXIST;
		}
	v->ports[p->id] = (struct temp_port){.used = true, .cfg = *p};
	return 0;
}

int vfr_remove_port(struct vfr *v, uint32_t id)
{
	if (id == 0 || id >= CT_MAX_DOMAINS || !v->ports[id].used)
		return -ENOENT;
	v->ports[id].used = false;
	return 0;
}

static int lookup(void *ctx, enum vfr_name_kind kind, const char *name, uint32_t *id)
{
	struct vfr *v = ctx;

	if (kind == VFR_NAME_NETWORK) {
		for (unsigned i = 0; i < v->nnets; i++)
			if (!strcmp(v->nets[i].name, name))
				return *id = v->nets[i].id, 0;
		return -ENOENT;
	}
	for (unsigned i = 1; i < CT_MAX_DOMAINS; i++)
		if (v->ports[i].used && !strcmp(v->ports[i].cfg.name, name))
			return *id = i, 0;
	return -ENOENT;
}

int vfr_rule_add(struct vfr *v, const char *text, long pos, uint32_t *id, char *err, size_t errlen)
{
	struct vfr_rule r;
	int ret;

	if ((ret = vfr_rule_parse(text, &r, err, errlen)) < 0 ||
	    (ret = vfr_rule_resolve(&r, lookup, v, err, errlen)) < 0)
		return ret;
	ret = vfr_ruleset_insert(v->rules, pos < 0 ? (size_t)-1 : (size_t)pos, &r, id);
	if (ret < 0)
		snprintf(err, errlen, "the rule set is full");
	return ret;
}

int vfr_rule_remove(struct vfr *v, uint32_t id, char *err, size_t errlen)
{
	if (vfr_ruleset_remove(v->rules, id) < 0) {
		snprintf(err, errlen, "no rule %u", id);
		return -ENOENT;
	}
	return 0;
}

const struct vfr_ruleset *vfr_rules(const struct vfr *v) { return v->rules; }

static struct vfr_port_stats *stats_of(struct vfr *v, uint32_t port)
{
	if (port == VFR_UPLINK)
		return v->have_uplink ? &v->uplink_st : NULL;
	return port < CT_MAX_DOMAINS && v->ports[port].used ? &v->ports[port].st : NULL;
}

static void deliver(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len)
{
	struct vfr_port_stats *st = stats_of(v, port);

	st->tx_frames++;
	st->tx_bytes += len;
	v->cb.emit(v->cb.ctx, port, frame, len);
}

void vfr_input(struct vfr *v, uint32_t port, const uint8_t *frame, size_t len, uint64_t now,
	       uint64_t wall_ms)
{
	struct vfr_port_stats *st = stats_of(v, port);
	uint32_t net;

	if (!st)
		return;
	net = port == VFR_UPLINK ? 0 : v->ports[port].cfg.net;
	st->rx_frames++;
	st->rx_bytes += len;
	if (len < 14 || len > VFR_FRAME_MAX) {
		st->malformed++;
		return;
	}
	if (port != VFR_UPLINK && memcmp(frame + 6, v->ports[port].cfg.mac, 6)) {
		st->spoofed++;
		return;
	}
	for (unsigned i = 1; i < CT_MAX_DOMAINS; i++)
		if (i != port && v->ports[i].used &&
		    (port == VFR_UPLINK || v->ports[i].cfg.net == net) &&
		    !memcmp(frame, v->ports[i].cfg.mac, 6)) {
			deliver(v, i, frame, len);
			return;
		}
	if (port != VFR_UPLINK && v->have_uplink)
		deliver(v, VFR_UPLINK, frame, len);
	else
		st->no_route++;
}

void vfr_tick(struct vfr *v, uint64_t now, uint64_t wall_ms) { ct_expire(v->ct, now); }

const struct vfr_port_stats *vfr_port_stats(const struct vfr *v, uint32_t port)
{
	return stats_of((struct vfr *)v, port);
}

const struct ct_table *vfr_conntrack(const struct vfr *v) { return v->ct; }
