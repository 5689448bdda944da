/* The VFR's rule set: parser, printer, ordered list, matcher, shadow check (rules.h). */
#include "net/rules.h"
#include "net/packet.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 64
#define TOKENS_MAX 32

struct vfr_ruleset {
	struct vfr_rule *rules;
	size_t count, cap;
	uint32_t next_id;
	enum vfr_action global_default;
	size_t ndefaults;
	struct {
		uint32_t net;
		enum vfr_action action;
	} defaults[VFR_NETWORKS_MAX];
};

static const char *const action_names[] = {"accept", "drop", "reject"};

const char *vfr_action_name(enum vfr_action a) { return (unsigned)a < 3 ? action_names[a] : "?"; }

__attribute__((format(printf, 3, 4))) static int perr(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

struct tokens {
	char tok[TOKENS_MAX][TOKEN_MAX];
	size_t n, i;
};

static int tokenize(const char *text, struct tokens *t, char *err, size_t errlen)
{
	const char *p = text;

	t->n = t->i = 0;
	if (strlen(text) >= VFR_RULE_TEXT_MAX)
		return perr(err, errlen, "rule longer than %d characters", VFR_RULE_TEXT_MAX - 1);
	for (;;) {
		size_t len = 0;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			return 0;
		if (t->n == TOKENS_MAX)
			return perr(err, errlen, "more than %d words", TOKENS_MAX);
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				return perr(err, errlen, "character 0x%02x not allowed",
					    (unsigned char)*p);
			if (len == TOKEN_MAX - 1)
				return perr(err, errlen, "word '%.20s...' too long", p - len);
			t->tok[t->n][len++] = *p++;
		}
		t->tok[t->n][len] = 0;
		t->n++;
	}
}

static const char *peek(const struct tokens *t) { return t->i < t->n ? t->tok[t->i] : NULL; }

static bool accept_word(struct tokens *t, const char *w)
{
	if (t->i < t->n && !strcmp(t->tok[t->i], w)) {
		t->i++;
		return true;
	}
	return false;
}

/* A decimal number in [0, max] that is the whole of s[0, len). */
static bool parse_num(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static int parse_cidr(const char *tok, struct vfr_endpoint *ep, char *err, size_t errlen)
{
	const char *p = tok, *slash = strchr(tok, '/');
	const char *end = slash ? slash : tok + strlen(tok);
	uint32_t addr = 0;
	unsigned long v, prefix = 32;
	int part;

	for (part = 0; part < 4; part++) {
		const char *dot = part < 3 ? memchr(p, '.', (size_t)(end - p)) : end;

		if (!dot || !parse_num(p, (size_t)(dot - p), 255, &v) ||
		    (dot - p > 1 && p[0] == '0'))
			return perr(err, errlen, "bad address '%s'", tok);
		addr = addr << 8 | (uint32_t)v;
		p = dot + 1;
	}
	if (slash && !parse_num(slash + 1, strlen(slash + 1), 32, &prefix))
		return perr(err, errlen, "bad prefix length in '%s'", tok);
	if (prefix < 32 && (addr & (0xffffffffu >> prefix)))
		return perr(err, errlen, "'%s' has bits set below its /%lu", tok, prefix);
	ep->kind = VFR_EP_CIDR;
	ep->addr = addr;
	ep->prefix = (uint8_t)prefix;
	return 0;
}

static bool name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= VFR_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (i > 0 && (c == '-' || c == '_' || c == '.'))))
			return false;
	}
	return true;
}

static int parse_endpoint(struct tokens *t, const char *what, struct vfr_endpoint *ep, char *err,
			  size_t errlen)
{
	const char *tok = peek(t);
	bool dom;

	if (!tok)
		return perr(err, errlen,
			    "'%s' needs an address, 'any', 'domain NAME' or 'network NAME'", what);
	t->i++;
	if (!strcmp(tok, "any")) {
		ep->kind = VFR_EP_ANY;
		return 0;
	}
	dom = !strcmp(tok, "domain");
	if (dom || !strcmp(tok, "network")) {
		const char *name = peek(t);

		if (!name)
			return perr(err, errlen, "'%s' needs a name", tok);
		if (!name_ok(name))
			return perr(err, errlen, "bad %s name '%s'", tok, name);
		t->i++;
		ep->kind = dom ? VFR_EP_DOMAIN : VFR_EP_NETWORK;
		snprintf(ep->name, sizeof(ep->name), "%s", name);
		return 0;
	}
	if (tok[0] >= '0' && tok[0] <= '9')
		return parse_cidr(tok, ep, err, errlen);
	return perr(err, errlen, "'%s' after '%s' is no address, 'any', 'domain' or 'network'", tok,
		    what);
}

static int range_cmp(const void *a, const void *b)
{
	const struct vfr_port_range *x = a, *y = b;

	return x->lo != y->lo ? (x->lo < y->lo ? -1 : 1) : (x->hi < y->hi ? -1 : x->hi > y->hi);
}

/* Sorts and merges overlapping or adjacent ranges, so that equal sets compare equal. */
static void normalise_ports(struct vfr_endpoint *ep)
{
	unsigned i, n = 0;

	if (!ep->nports)
		return;
	qsort(ep->ports, ep->nports, sizeof(ep->ports[0]), range_cmp);
	for (i = 1; i < ep->nports; i++) {
		if ((uint32_t)ep->ports[i].lo <= (uint32_t)ep->ports[n].hi + 1) {
			if (ep->ports[i].hi > ep->ports[n].hi)
				ep->ports[n].hi = ep->ports[i].hi;
		} else {
			ep->ports[++n] = ep->ports[i];
		}
	}
	ep->nports = n + 1;
}

static int parse_ports(const char *tok, struct vfr_endpoint *ep, char *err, size_t errlen)
{
	const char *p = tok;

	ep->nports = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *dash = memchr(p, '-', len);
		unsigned long lo, hi;

		if (ep->nports == VFR_PORT_RANGES)
			return perr(err, errlen, "more than %d port ranges in '%s'",
				    VFR_PORT_RANGES, tok);
		if (dash) {
			if (!parse_num(p, (size_t)(dash - p), 65535, &lo) ||
			    !parse_num(dash + 1, len - (size_t)(dash - p) - 1, 65535, &hi))
				return perr(err, errlen, "bad port range '%.*s'", (int)len, p);
			if (lo > hi)
				return perr(err, errlen, "port range '%.*s' runs backwards",
					    (int)len, p);
		} else {
			if (!parse_num(p, len, 65535, &lo))
				return perr(err, errlen, "bad port '%.*s'", (int)len, p);
			hi = lo;
		}
		ep->ports[ep->nports].lo = (uint16_t)lo;
		ep->ports[ep->nports].hi = (uint16_t)hi;
		ep->nports++;
		if (!comma)
			break;
		p = comma + 1;
	}
	normalise_ports(ep);
	return 0;
}

static int parse_side(struct tokens *t, const char *what, struct vfr_rule *r,
		      struct vfr_endpoint *ep, char *err, size_t errlen)
{
	int ret = parse_endpoint(t, what, ep, err, errlen);

	if (ret)
		return ret;
	if (!accept_word(t, "port"))
		return 0;
	if (r->proto != PKT_PROTO_TCP && r->proto != PKT_PROTO_UDP)
		return perr(err, errlen, "'port' needs 'proto tcp' or 'proto udp'");
	if (!peek(t))
		return perr(err, errlen, "'port' needs a port list");
	return parse_ports(t->tok[t->i++], ep, err, errlen);
}

int vfr_rule_parse(const char *text, struct vfr_rule *out, char *err, size_t errlen)
{
	struct tokens t;
	struct vfr_rule r = {.dir = VFR_DIR_ANY, .proto = -1};
	const char *tok;
	unsigned long v;
	int ret, a;

	if (err && errlen)
		err[0] = 0;
	ret = tokenize(text, &t, err, errlen);
	if (ret)
		return ret;
	tok = peek(&t);
	if (!tok)
		return perr(err, errlen, "empty rule");
	for (a = 0; a < 3; a++)
		if (!strcmp(tok, action_names[a]))
			break;
	if (a == 3)
		return perr(err, errlen, "unknown action '%s' (accept, drop or reject)", tok);
	r.action = (enum vfr_action)a;
	t.i++;
	if (accept_word(&t, "in"))
		r.dir = VFR_DIR_IN;
	else if (accept_word(&t, "out"))
		r.dir = VFR_DIR_OUT;
	if (accept_word(&t, "proto")) {
		tok = peek(&t);
		if (!tok)
			return perr(err, errlen, "'proto' needs tcp, udp, icmp, any or a number");
		if (!strcmp(tok, "tcp"))
			r.proto = PKT_PROTO_TCP;
		else if (!strcmp(tok, "udp"))
			r.proto = PKT_PROTO_UDP;
		else if (!strcmp(tok, "icmp"))
			r.proto = PKT_PROTO_ICMP;
		else if (!strcmp(tok, "any"))
			r.proto = -1;
		else if (parse_num(tok, strlen(tok), 255, &v))
			r.proto = (int)v;
		else
			return perr(err, errlen, "unknown protocol '%s'", tok);
		t.i++;
	}
	if (accept_word(&t, "from")) {
		ret = parse_side(&t, "from", &r, &r.from, err, errlen);
		if (ret)
			return ret;
	}
	if (accept_word(&t, "to")) {
		ret = parse_side(&t, "to", &r, &r.to, err, errlen);
		if (ret)
			return ret;
	}
	tok = peek(&t);
	if (tok) {
		if (!strcmp(tok, "in") || !strcmp(tok, "out") || !strcmp(tok, "proto") ||
		    !strcmp(tok, "from") || !strcmp(tok, "to"))
			return perr(err, errlen,
				    "'%s' out of order (action, in|out, proto, from, to)", tok);
		if (!strcmp(tok, "port"))
			return perr(err, errlen,
				    "'port' must follow 'from' or 'to' and its address");
		return perr(err, errlen, "unexpected '%s'", tok);
	}
	*out = r;
	return 0;
}

struct out {
	char *buf;
	size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->used < o->len ? o->buf + o->used : NULL,
		      o->used < o->len ? o->len - o->used : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

static void put_side(struct out *o, const char *what, const struct vfr_endpoint *ep)
{
	unsigned i;
	uint32_t a = ep->addr;

	if (ep->kind == VFR_EP_ANY && !ep->nports)
		return;
	put(o, " %s ", what);
	switch (ep->kind) {
	case VFR_EP_ANY:
		put(o, "any");
		break;
	case VFR_EP_CIDR:
		put(o, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
		if (ep->prefix != 32)
			put(o, "/%u", ep->prefix);
		break;
	case VFR_EP_DOMAIN:
		put(o, "domain %s", ep->name);
		break;
	case VFR_EP_NETWORK:
		put(o, "network %s", ep->name);
		break;
	}
	for (i = 0; i < ep->nports; i++) {
		put(o, "%s%u", i ? "," : " port ", ep->ports[i].lo);
		if (ep->ports[i].hi != ep->ports[i].lo)
			put(o, "-%u", ep->ports[i].hi);
	}
}

size_t vfr_rule_print(const struct vfr_rule *r, char *buf, size_t len)
{
	struct out o = {buf, len, 0};

	if (len)
		buf[0] = 0;
	put(&o, "%s", vfr_action_name(r->action));
	if (r->dir == VFR_DIR_IN)
		put(&o, " in");
	else if (r->dir == VFR_DIR_OUT)
		put(&o, " out");
	if (r->proto == PKT_PROTO_TCP)
		put(&o, " proto tcp");
	else if (r->proto == PKT_PROTO_UDP)
		put(&o, " proto udp");
	else if (r->proto == PKT_PROTO_ICMP)
		put(&o, " proto icmp");
	else if (r->proto >= 0)
		put(&o, " proto %d", r->proto);
	put_side(&o, "from", &r->from);
	put_side(&o, "to", &r->to);
	return o.used;
}

static bool ep_equal(const struct vfr_endpoint *a, const struct vfr_endpoint *b)
{
	if (a->kind != b->kind || a->nports != b->nports ||
	    memcmp(a->ports, b->ports, a->nports * sizeof(a->ports[0])))
		return false;
	switch (a->kind) {
	case VFR_EP_ANY:
		return true;
	case VFR_EP_CIDR:
		return a->addr == b->addr && a->prefix == b->prefix;
	default:
		return !strcmp(a->name, b->name);
	}
}

bool vfr_rule_equal(const struct vfr_rule *a, const struct vfr_rule *b)
{
	return a->action == b->action && a->dir == b->dir && a->proto == b->proto &&
	       ep_equal(&a->from, &b->from) && ep_equal(&a->to, &b->to);
}

static int resolve_ep(struct vfr_endpoint *ep, vfr_lookup_fn lookup, void *ctx, char *err,
		      size_t errlen)
{
	bool dom = ep->kind == VFR_EP_DOMAIN;
	int ret;

	if (!dom && ep->kind != VFR_EP_NETWORK)
		return 0;
	ret = lookup(ctx, dom ? VFR_NAME_DOMAIN : VFR_NAME_NETWORK, ep->name, &ep->id);
	if (ret == 0 && ep->id == 0)
		ret = -EINVAL;
	if (ret && err && errlen)
		snprintf(err, errlen, "no %s '%s'", dom ? "domain" : "network", ep->name);
	return ret;
}

int vfr_rule_resolve(struct vfr_rule *r, vfr_lookup_fn lookup, void *ctx, char *err, size_t errlen)
{
	int ret = resolve_ep(&r->from, lookup, ctx, err, errlen);

	return ret ? ret : resolve_ep(&r->to, lookup, ctx, err, errlen);
}

int vfr_ruleset_new(enum vfr_action default_action, struct vfr_ruleset **out)
{
	struct vfr_ruleset *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->next_id = 1;
	rs->global_default = default_action;
	*out = rs;
	return 0;
}

void vfr_ruleset_free(struct vfr_ruleset *rs)
{
	if (!rs)
		return;
	free(rs->rules);
	free(rs);
}

int vfr_ruleset_insert(struct vfr_ruleset *rs, size_t pos, const struct vfr_rule *r, uint32_t *id)
{
	return vfr_ruleset_insert_as(rs, pos, r, 0, id);
}

int vfr_ruleset_insert_as(struct vfr_ruleset *rs, size_t pos, const struct vfr_rule *r,
			  uint32_t want, uint32_t *id)
{
	if (rs->count == VFR_RULES_MAX || rs->next_id == UINT32_MAX || want == UINT32_MAX)
		return -ENOSPC;
	for (size_t i = 0; want && i < rs->count; i++)
		if (rs->rules[i].id == want)
			return -EEXIST;
	if (rs->count == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct vfr_rule *n = realloc(rs->rules, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rs->rules = n;
		rs->cap = cap;
	}
	if (pos > rs->count)
		pos = rs->count;
	memmove(rs->rules + pos + 1, rs->rules + pos, (rs->count - pos) * sizeof(*rs->rules));
	rs->rules[pos] = *r;
	if (want) {
		rs->rules[pos].id = want;
		if (want >= rs->next_id)
			rs->next_id = want + 1;
	} else {
		rs->rules[pos].id = rs->next_id++;
	}
	rs->count++;
	if (id)
		*id = rs->rules[pos].id;
	return 0;
}

int vfr_ruleset_remove(struct vfr_ruleset *rs, uint32_t id)
{
	size_t i;

	for (i = 0; i < rs->count; i++) {
		if (rs->rules[i].id == id) {
			memmove(rs->rules + i, rs->rules + i + 1,
				(rs->count - i - 1) * sizeof(*rs->rules));
			rs->count--;
			return 0;
		}
	}
	return -ENOENT;
}

size_t vfr_ruleset_count(const struct vfr_ruleset *rs) { return rs->count; }

const struct vfr_rule *vfr_ruleset_get(const struct vfr_ruleset *rs, size_t i)
{
	return i < rs->count ? &rs->rules[i] : NULL;
}

int vfr_ruleset_set_default(struct vfr_ruleset *rs, uint32_t net, enum vfr_action a)
{
	size_t i;

	if (net == 0) {
		rs->global_default = a;
		return 0;
	}
	for (i = 0; i < rs->ndefaults; i++) {
		if (rs->defaults[i].net == net) {
			rs->defaults[i].action = a;
			return 0;
		}
	}
	if (rs->ndefaults == VFR_NETWORKS_MAX)
		return -ENOSPC;
	rs->defaults[rs->ndefaults].net = net;
	rs->defaults[rs->ndefaults].action = a;
	rs->ndefaults++;
	return 0;
}

enum vfr_action vfr_ruleset_default(const struct vfr_ruleset *rs, uint32_t net)
{
	size_t i;

	for (i = 0; net && i < rs->ndefaults; i++)
		if (rs->defaults[i].net == net)
			return rs->defaults[i].action;
	return rs->global_default;
}

static bool ports_match(const struct vfr_endpoint *ep, bool has_ports, uint16_t port)
{
	unsigned i;

	if (!ep->nports)
		return true;
	if (!has_ports)
		return false; /* a later fragment matches no rule that names ports */
	for (i = 0; i < ep->nports; i++)
		if (port >= ep->ports[i].lo && port <= ep->ports[i].hi)
			return true;
	return false;
}

static bool ep_match(const struct vfr_endpoint *ep, uint32_t addr, uint32_t domain, uint32_t net)
{
	switch (ep->kind) {
	case VFR_EP_ANY:
		return true;
	case VFR_EP_CIDR:
		return ep->prefix == 0 || (addr & (0xffffffffu << (32 - ep->prefix))) == ep->addr;
	case VFR_EP_DOMAIN:
		return ep->id && ep->id == domain;
	case VFR_EP_NETWORK:
		return ep->id && ep->id == net;
	}
	return false;
}

bool vfr_rule_matches(const struct vfr_rule *r, const struct vfr_match_input *in)
{
	return (r->dir & in->dir) && (r->proto < 0 || r->proto == in->proto) &&
	       ep_match(&r->from, in->src, in->src_domain, in->src_net) &&
	       ports_match(&r->from, in->has_ports, in->sport) &&
	       ep_match(&r->to, in->dst, in->dst_domain, in->dst_net) &&
	       ports_match(&r->to, in->has_ports, in->dport);
}

enum vfr_action vfr_rules_match(const struct vfr_ruleset *rs, const struct vfr_match_input *in,
				uint32_t *rule_id)
{
	size_t i;

	for (i = 0; i < rs->count; i++) {
		if (vfr_rule_matches(&rs->rules[i], in)) {
			if (rule_id)
				*rule_id = rs->rules[i].id;
			return rs->rules[i].action;
		}
	}
	if (rule_id)
		*rule_id = 0;
	return vfr_ruleset_default(rs, in->src_net);
}

static bool ep_covers(const struct vfr_endpoint *a, const struct vfr_endpoint *b)
{
	unsigned i, j;

	switch (a->kind) {
	case VFR_EP_ANY:
		break;
	case VFR_EP_CIDR:
		if (b->kind != VFR_EP_CIDR || b->prefix < a->prefix ||
		    (a->prefix && (b->addr & (0xffffffffu << (32 - a->prefix))) != a->addr))
			return false;
		break;
	case VFR_EP_DOMAIN:
	case VFR_EP_NETWORK:
		/* A domain's addresses are not known here: only the same name covers. */
		if (b->kind != a->kind || strcmp(a->name, b->name))
			return false;
		break;
	}
	if (!a->nports)
		return true;
	if (!b->nports)
		return false;
	/* a's ranges are merged, so a range of b is covered only inside one of them. */
	for (j = 0; j < b->nports; j++) {
		for (i = 0; i < a->nports; i++)
			if (b->ports[j].lo >= a->ports[i].lo && b->ports[j].hi <= a->ports[i].hi)
				break;
		if (i == a->nports)
			return false;
	}
	return true;
}

bool vfr_rule_covers(const struct vfr_rule *a, const struct vfr_rule *b)
{
	return (a->dir & b->dir) == b->dir && (a->proto < 0 || a->proto == b->proto) &&
	       ep_covers(&a->from, &b->from) && ep_covers(&a->to, &b->to);
}

size_t vfr_ruleset_check(const struct vfr_ruleset *rs, void (*warn)(void *ctx, const char *text),
			 void *ctx)
{
	char ta[VFR_RULE_TEXT_MAX], tb[VFR_RULE_TEXT_MAX], msg[3 * VFR_RULE_TEXT_MAX];
	size_t i, j, n = 0;

	for (j = 1; j < rs->count; j++) {
		for (i = 0; i < j; i++) {
			const struct vfr_rule *a = &rs->rules[i], *b = &rs->rules[j];

			if (!vfr_rule_covers(a, b))
				continue;
			vfr_rule_print(a, ta, sizeof(ta));
			vfr_rule_print(b, tb, sizeof(tb));
			snprintf(msg, sizeof(msg),
				 "rule %u (%s) is never reached: rule %u (%s) matches all it "
				 "matches, %s",
				 b->id, tb, a->id, ta,
				 a->action == b->action ? "with the same action: redundant"
							: "with another action");
			if (warn)
				warn(ctx, msg);
			n++;
			break;
		}
	}
	return n;
}
