/*
 * The VFR's rule set: an ordered list of rules, first match wins, and a
 * default policy per network for packets no rule matches. A rule is one
 * line of text (what `domus vfr add ...` and the API take), grammar in
 * docs/net.md:
 *
 *   accept in proto tcp from 10.0.1.0/24 to domain web port 22,80-90
 *   drop out proto udp to any port 53
 *   reject in proto icmp from network lan
 *
 * Names of domains and networks are kept as text in the rule and resolved
 * to ids by the caller (vfr_rule_resolve); the matcher compares ids, so it
 * never looks a name up on the packet path.
 */
#ifndef DOMUS_NET_RULES_H
#define DOMUS_NET_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFR_NAME_MAX 32	      /* a domain's or network's name, with its NUL */
#define VFR_PORT_RANGES 16    /* ranges in one port list */
#define VFR_RULES_MAX 4096    /* rules in one set */
#define VFR_NETWORKS_MAX 64   /* networks with their own default policy */
#define VFR_RULE_TEXT_MAX 512 /* a rule's text, parsed or printed */

enum vfr_action { VFR_ACCEPT = 0, VFR_DROP, VFR_REJECT };

/* Direction, seen from the domains: in = delivered to a domain's port, out = sent from one. */
#define VFR_DIR_IN 0x1
#define VFR_DIR_OUT 0x2
#define VFR_DIR_ANY (VFR_DIR_IN | VFR_DIR_OUT)

enum vfr_ep_kind { VFR_EP_ANY = 0, VFR_EP_CIDR, VFR_EP_DOMAIN, VFR_EP_NETWORK };

struct vfr_port_range {
	uint16_t lo, hi;
};

struct vfr_endpoint {
	enum vfr_ep_kind kind;
	uint32_t addr; /* VFR_EP_CIDR: host order, bits below the prefix zero */
	uint8_t prefix;
	char name[VFR_NAME_MAX]; /* VFR_EP_DOMAIN / VFR_EP_NETWORK */
	uint32_t id;		 /* the name's id, set by vfr_rule_resolve; 0 = unresolved */
	/* Ports (TCP and UDP only), sorted and merged; none = any port. */
	unsigned nports;
	struct vfr_port_range ports[VFR_PORT_RANGES];
};

struct vfr_rule {
	uint32_t id; /* given by the rule set; 0 in a rule not in one */
	enum vfr_action action;
	uint8_t dir; /* VFR_DIR_* */
	int proto;   /* IP protocol number, -1 = any */
	struct vfr_endpoint from, to;
};

/* What the matcher is told about one packet (the caller resolved ports to ids). */
struct vfr_match_input {
	uint8_t dir; /* VFR_DIR_IN and/or VFR_DIR_OUT: both for one domain to another */
	uint8_t proto;
	uint32_t src, dst; /* IPv4, host order */
	bool has_ports;	   /* false for later fragments and protocols without ports */
	uint16_t sport, dport;
	uint32_t src_domain, dst_domain; /* 0 = not a domain (the uplink) */
	uint32_t src_net, dst_net;	 /* 0 = none */
};

/*
 * Parses one rule. Returns 0, or -EINVAL with err naming the bad token
 * ("unknown action 'allow'", "port 70000 out of range", ...).
 */
int vfr_rule_parse(const char *text, struct vfr_rule *out, char *err, size_t errlen);
/* The rule as text that vfr_rule_parse reads back to the same rule. Returns the length. */
size_t vfr_rule_print(const struct vfr_rule *r, char *buf, size_t len);
/* True when a and b say the same (ids and resolved ids aside). */
bool vfr_rule_equal(const struct vfr_rule *a, const struct vfr_rule *b);

enum vfr_name_kind { VFR_NAME_DOMAIN, VFR_NAME_NETWORK };
/* Looks name up; 0 with *id set (never 0), or -ENOENT. */
typedef int (*vfr_lookup_fn)(void *ctx, enum vfr_name_kind kind, const char *name, uint32_t *id);
/* Resolves the rule's names to ids. 0, or the lookup's error with err naming the name. */
int vfr_rule_resolve(struct vfr_rule *r, vfr_lookup_fn lookup, void *ctx, char *err, size_t errlen);

struct vfr_ruleset;

/* An empty set whose packets all get default_action. 0 or -ENOMEM. */
int vfr_ruleset_new(enum vfr_action default_action, struct vfr_ruleset **out)
    __attribute__((warn_unused_result));
void vfr_ruleset_free(struct vfr_ruleset *rs);
/*
 * Inserts a copy of r before position pos (0 = first; pos >= count appends),
 * giving it a new id (never reused) returned in *id. 0, -ENOSPC when full.
 */
int vfr_ruleset_insert(struct vfr_ruleset *rs, size_t pos, const struct vfr_rule *r, uint32_t *id)
    __attribute__((warn_unused_result));
/*
 * The same with the id the caller chose (its supervisor's, kept across
 * restarts), want; 0 chooses as above. -EEXIST when a rule has it.
 */
int vfr_ruleset_insert_as(struct vfr_ruleset *rs, size_t pos, const struct vfr_rule *r,
			  uint32_t want, uint32_t *id) __attribute__((warn_unused_result));
/* Removes the rule with this id. 0 or -ENOENT. */
int vfr_ruleset_remove(struct vfr_ruleset *rs, uint32_t id);
size_t vfr_ruleset_count(const struct vfr_ruleset *rs);
/* The rule at position i (in match order), or NULL past the end. */
const struct vfr_rule *vfr_ruleset_get(const struct vfr_ruleset *rs, size_t i);
/* Sets the default policy of network net (0 sets the one for every other). 0 or -ENOSPC. */
int vfr_ruleset_set_default(struct vfr_ruleset *rs, uint32_t net, enum vfr_action a);
/* The default for packets that entered on network net. */
enum vfr_action vfr_ruleset_default(const struct vfr_ruleset *rs, uint32_t net);

/*
 * The verdict for a packet: the first rule that matches decides, its id in
 * *rule_id; with no match the default of the network the packet entered on
 * (in->src_net) decides and *rule_id is 0. rule_id may be NULL.
 */
enum vfr_action vfr_rules_match(const struct vfr_ruleset *rs, const struct vfr_match_input *in,
				uint32_t *rule_id);
/* Whether one rule matches the packet. */
bool vfr_rule_matches(const struct vfr_rule *r, const struct vfr_match_input *in);

/* True when every packet b matches also matches a (a covers b). */
bool vfr_rule_covers(const struct vfr_rule *a, const struct vfr_rule *b);
/*
 * Warnings about the set: a rule covered by an earlier one can never
 * decide. warn is called once per such rule, with the text ("rule 4 (drop
 * ...) is never reached: rule 2 (accept ...) matches all it matches,
 * with another action" or "... with the same action: redundant").
 * Returns the number of warnings.
 */
size_t vfr_ruleset_check(const struct vfr_ruleset *rs, void (*warn)(void *ctx, const char *text),
			 void *ctx);

const char *vfr_action_name(enum vfr_action a);

#endif
