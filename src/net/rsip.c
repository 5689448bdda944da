/* RSIP port-space sharing: see rsip.h. */
#include "net/rsip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPORTS 65536u

static bool slot_used(const struct rsip_slice *s) { return s->start <= s->end; }

static void slot_clear(struct rsip_slice *s)
{
	*s = (struct rsip_slice){.domid = 0, .start = 1, .end = 0};
}

static int find_slot(const struct rsip_table *t, uint32_t domid)
{
	for (size_t i = 0; i < t->n_slots; i++)
		if (slot_used(&t->slices[i]) && t->slices[i].domid == domid)
			return (int)i;
	return -ENOENT;
}

int rsip_init(struct rsip_table *t, const struct rsip_config *cfg, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (cfg->n_forbidden > RSIP_MAX_FORBIDDEN) {
		snprintf(err, errlen, "%zu reserved ranges, at most %d", cfg->n_forbidden,
			 RSIP_MAX_FORBIDDEN);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_forbidden; i++) {
		if (cfg->forbidden[i].start > cfg->forbidden[i].end) {
			snprintf(err, errlen, "reserved range %u-%u is backwards",
				 cfg->forbidden[i].start, cfg->forbidden[i].end);
			return -EINVAL;
		}
	}
	t->cfg = *cfg;
	if (!t->cfg.slice_size)
		t->cfg.slice_size = RSIP_DEFAULT_SIZE;
	if (!t->cfg.align)
		t->cfg.align = RSIP_DEFAULT_ALIGN;
	t->owner = calloc(NPORTS, sizeof(*t->owner));
	if (!t->owner) {
		snprintf(err, errlen, "no memory for the port owner map");
		return -ENOMEM;
	}
	/* Port 0 is no port: a socket bound to it gets another. */
	t->owner[0] = RSIP_OWNER_FORBIDDEN;
	for (size_t i = 0; i < cfg->n_forbidden; i++)
		for (uint32_t p = cfg->forbidden[i].start; p <= cfg->forbidden[i].end; p++)
			t->owner[p] = RSIP_OWNER_FORBIDDEN;
	return 0;
}

void rsip_free(struct rsip_table *t)
{
	free(t->owner);
	t->owner = NULL;
	t->n_slots = 0;
}

/* Free ports in all, and the longest run of them, for the error that says why nothing fits. */
static void free_stats(const struct rsip_table *t, uint32_t *total, uint32_t *longest)
{
	uint32_t run = 0;

	*total = *longest = 0;
	for (uint32_t p = 0; p < NPORTS; p++) {
		if (t->owner[p]) {
			run = 0;
			continue;
		}
		(*total)++;
		if (++run > *longest)
			*longest = run;
	}
}

/* Describes what owns port p, inside an error about slice r. */
static void describe_conflict(const struct rsip_table *t, struct rsip_range r, uint16_t p,
			      char *err, size_t errlen)
{
	uint16_t o = t->owner[p];

	if (o == RSIP_OWNER_FORBIDDEN) {
		if (p == 0) {
			snprintf(err, errlen, "slice %u-%u includes port 0", r.start, r.end);
			return;
		}
		for (size_t i = 0; i < t->cfg.n_forbidden; i++) {
			const struct rsip_range *f = &t->cfg.forbidden[i];
			if (p >= f->start && p <= f->end) {
				snprintf(err, errlen,
					 "slice %u-%u overlaps the reserved range %u-%u", r.start,
					 r.end, f->start, f->end);
				return;
			}
		}
	}
	const struct rsip_slice *s = &t->slices[o - 1];
	snprintf(err, errlen, "slice %u-%u overlaps domain %u's %u-%u", r.start, r.end, s->domid,
		 s->start, s->end);
}

/* Puts r in a free slot for domid; the caller has checked that every port of r is free. */
static int place(struct rsip_table *t, uint32_t domid, struct rsip_range r, char *err,
		 size_t errlen)
{
	size_t i;

	for (i = 0; i < t->n_slots; i++)
		if (!slot_used(&t->slices[i]))
			break;
	if (i == RSIP_MAX_SLICES) {
		snprintf(err, errlen, "no room for another slice: %d domains have one",
			 RSIP_MAX_SLICES);
		return -ENOSPC;
	}
	if (i == t->n_slots)
		t->n_slots++;
	t->slices[i] = (struct rsip_slice){.domid = domid, .start = r.start, .end = r.end};
	for (uint32_t p = r.start; p <= r.end; p++)
		t->owner[p] = (uint16_t)(i + 1);
	return 0;
}

static int check_new_domain(const struct rsip_table *t, uint32_t domid, char *err, size_t errlen)
{
	int i = find_slot(t, domid);

	if (i < 0)
		return 0;
	snprintf(err, errlen, "domain %u already has the slice %u-%u", domid, t->slices[i].start,
		 t->slices[i].end);
	return -EEXIST;
}

int rsip_alloc(struct rsip_table *t, uint32_t domid, uint32_t size, struct rsip_range *out,
	       char *err, size_t errlen)
{
	uint32_t align = t->cfg.align, total, longest;
	int rc;

	if (!size)
		size = t->cfg.slice_size;
	if (size > NPORTS - 1) {
		snprintf(err, errlen, "a slice of %u ports: the port space has %u", size,
			 NPORTS - 1);
		return -EINVAL;
	}
	rc = check_new_domain(t, domid, err, errlen);
	if (rc)
		return rc;
	/* Each run of free ports once: the first aligned start in it that leaves room for size. */
	for (uint32_t a = 0; a < NPORTS;) {
		uint32_t b = a, s;

		if (t->owner[a]) {
			a++;
			continue;
		}
		while (b + 1 < NPORTS && !t->owner[b + 1])
			b++;
		s = (a + align - 1) / align * align;
		if (s + size - 1 <= b) {
			struct rsip_range r = {(uint16_t)s, (uint16_t)(s + size - 1)};
			rc = place(t, domid, r, err, errlen);
			if (!rc && out)
				*out = r;
			return rc;
		}
		a = b + 1;
	}
	free_stats(t, &total, &longest);
	if (longest >= size)
		snprintf(err, errlen,
			 "no free slice of %u ports starting at a multiple of %u: %u free in "
			 "pieces of at most %u",
			 size, align, total, longest);
	else
		snprintf(err, errlen, "no free slice of %u ports: %u free in pieces of at most %u",
			 size, total, longest);
	return -ENOSPC;
}

int rsip_request(struct rsip_table *t, uint32_t domid, struct rsip_range r, char *err,
		 size_t errlen)
{
	int rc;

	if (r.start > r.end) {
		snprintf(err, errlen, "slice %u-%u is backwards", r.start, r.end);
		return -EINVAL;
	}
	if (r.start == 0) {
		snprintf(err, errlen, "slice %u-%u includes port 0", r.start, r.end);
		return -EINVAL;
	}
	rc = check_new_domain(t, domid, err, errlen);
	if (rc)
		return rc;
	for (uint32_t p = r.start; p <= r.end; p++) {
		if (t->owner[p]) {
			describe_conflict(t, r, (uint16_t)p, err, errlen);
			return -EBUSY;
		}
	}
	return place(t, domid, r, err, errlen);
}

int rsip_release(struct rsip_table *t, uint32_t domid)
{
	int i = find_slot(t, domid);

	if (i < 0)
		return i;
	for (uint32_t p = t->slices[i].start; p <= t->slices[i].end; p++)
		t->owner[p] = 0;
	slot_clear(&t->slices[i]);
	while (t->n_slots && !slot_used(&t->slices[t->n_slots - 1]))
		t->n_slots--;
	return 0;
}

int rsip_slice_of(const struct rsip_table *t, uint32_t domid, struct rsip_range *out)
{
	int i = find_slot(t, domid);

	if (i < 0)
		return i;
	*out = (struct rsip_range){t->slices[i].start, t->slices[i].end};
	return 0;
}

size_t rsip_save(const struct rsip_table *t, struct rsip_slice *out, size_t max)
{
	size_t n = 0;
	uint32_t p = 1;

	/* In port order, straight from the owner map: sorted with no sort. */
	while (p < NPORTS) {
		uint16_t o = t->owner[p];

		if (!o || o == RSIP_OWNER_FORBIDDEN) {
			p++;
			continue;
		}
		if (n < max)
			out[n] = t->slices[o - 1];
		n++;
		p = t->slices[o - 1].end + 1u;
	}
	return n;
}

int rsip_restore(struct rsip_table *t, const struct rsip_slice *in, size_t n, char *err,
		 size_t errlen)
{
	char why[160];
	int rc;

	if (t->n_slots) {
		snprintf(err, errlen, "the table already has slices");
		return -EBUSY;
	}
	for (size_t i = 0; i < n; i++) {
		rc = rsip_request(t, in[i].domid, (struct rsip_range){in[i].start, in[i].end}, why,
				  sizeof(why));
		if (rc) {
			snprintf(err, errlen, "saved slice of domain %u: %s", in[i].domid, why);
			for (size_t j = 0; j < i; j++)
				(void)rsip_release(t, in[j].domid);
			return rc;
		}
	}
	return 0;
}

int rsip_owner(const struct rsip_table *t, uint16_t port, uint32_t *domid)
{
	uint16_t o = t->owner[port];

	if (!o || o == RSIP_OWNER_FORBIDDEN)
		return -ENOENT;
	*domid = t->slices[o - 1].domid;
	return 0;
}

/* ICMP types that carry the header of the packet they are about (RFC 792). */
static bool icmp_is_error(uint8_t type) { return type == 3 || type == 11 || type == 12; }

static bool has_ports(uint8_t proto) { return proto == RSIP_PROTO_TCP || proto == RSIP_PROTO_UDP; }

int rsip_demux(const struct rsip_table *t, const struct rsip_packet *p, uint32_t *domid)
{
	if (has_ports(p->proto))
		return rsip_owner(t, p->dst_port, domid);
	if (p->proto != RSIP_PROTO_ICMP)
		return -EPROTONOSUPPORT;
	if (p->icmp_type == 0)
		return rsip_owner(t, p->icmp_id, domid);
	/* An error about a packet a domain sent: that packet left from the domain's port. */
	if (icmp_is_error(p->icmp_type)) {
		if (!has_ports(p->inner_proto))
			return -EPROTONOSUPPORT;
		return rsip_owner(t, p->inner_src_port, domid);
	}
	/* Echo requests and the rest are the host's to answer. */
	return -EPROTONOSUPPORT;
}

static bool in_slice(const struct rsip_table *t, uint32_t domid, uint16_t port)
{
	uint32_t owner;

	return rsip_owner(t, port, &owner) == 0 && owner == domid;
}

bool rsip_outbound_ok(const struct rsip_table *t, uint32_t domid, const struct rsip_packet *p)
{
	if (has_ports(p->proto))
		return in_slice(t, domid, p->src_port);
	if (p->proto != RSIP_PROTO_ICMP)
		return false;
	if (p->icmp_type == 0 || p->icmp_type == 8)
		return in_slice(t, domid, p->icmp_id);
	/* An error the domain sends is about a packet it received: on its port. */
	if (icmp_is_error(p->icmp_type))
		return has_ports(p->inner_proto) && in_slice(t, domid, p->inner_dst_port);
	return false;
}

int rsip_parse_port_range(const char *text, struct rsip_range *out)
{
	unsigned long a, b;
	char *end;

	errno = 0;
	a = strtoul(text, &end, 10);
	if (end == text || errno || a > 65535 || (*end != ' ' && *end != '\t'))
		return -EINVAL;
	text = end;
	b = strtoul(text, &end, 10);
	if (end == text || errno || b > 65535 || a > b)
		return -EINVAL;
	while (*end == ' ' || *end == '\t' || *end == '\n')
		end++;
	if (*end)
		return -EINVAL;
	*out = (struct rsip_range){(uint16_t)a, (uint16_t)b};
	return 0;
}

static int fitted(int n, size_t len) { return n < 0 || (size_t)n >= len ? -ENOSPC : n; }

int rsip_format_cmdline(uint32_t addr, struct rsip_range r, char *buf, size_t len)
{
	return fitted(snprintf(buf, len, "domus.rsip=%u.%u.%u.%u:%u-%u", addr >> 24,
			       (addr >> 16) & 0xff, (addr >> 8) & 0xff, addr & 0xff, r.start,
			       r.end),
		      len);
}

int rsip_format_sysctl(struct rsip_range r, char *buf, size_t len)
{
	return fitted(
	    snprintf(buf, len, "sysctl -w net.ipv4.ip_local_port_range=\"%u %u\"", r.start, r.end),
	    len);
}

int rsip_format_dhcp_option(struct rsip_range r, uint8_t *buf, size_t len)
{
	if (len < 6)
		return -ENOSPC;
	buf[0] = RSIP_DHCP_OPTION;
	buf[1] = 4;
	buf[2] = (uint8_t)(r.start >> 8);
	buf[3] = (uint8_t)r.start;
	buf[4] = (uint8_t)(r.end >> 8);
	buf[5] = (uint8_t)r.end;
	return 6;
}
