#include "blk/qos.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void blk_qos_default(struct blk_qos *q)
{
	*q = (struct blk_qos){.weight = BLK_QOS_DEFAULT_WEIGHT, .burst_ms = BLK_QOS_DEFAULT_BURST_MS,
			      .deadline_ms = BLK_QOS_DEFAULT_DEADLINE_MS};
}

bool blk_qos_equal(const struct blk_qos *a, const struct blk_qos *b)
{
	return a->reserve_iops == b->reserve_iops && a->reserve_bps == b->reserve_bps &&
	       a->weight == b->weight && a->limit_iops == b->limit_iops && a->limit_bps == b->limit_bps &&
	       a->burst_iops == b->burst_iops && a->burst_bps == b->burst_bps &&
	       a->burst_ms == b->burst_ms && a->interactive == b->interactive &&
	       a->deadline_ms == b->deadline_ms;
}

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * A number with an optional suffix: k, m, g, t multiply by base^1..4 (base 0:
 * no suffix). * "none" is 0. -ERANGE past max, -EINVAL when it is not a number.
 */
static int parse_amount(const char *s, unsigned base, uint64_t max, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!strcmp(s, "none")) {
		*out = 0;
		return 0;
	}
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		if (base == 0)
			return -EINVAL;
		const char *units = "kmgt", *u = strchr(units, tolower((unsigned char)*p));
		if (!u || !*u)
			return -EINVAL;
		for (long i = 0; i <= u - units; i++)
			mult *= base;
		p++;
		/* "16M", "16MB", "16MiB": the same for bytes. */
		if (base == 1024 && (!strcasecmp(p, "b") || !strcasecmp(p, "ib")))
			p += strlen(p);
		if (*p)
			return -EINVAL;
	}
	if (v > max / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

struct key {
	const char *name;
	unsigned base; /* 1000: a count, 1024: bytes, 0: milliseconds (no suffix) */
	uint64_t min, max;
	size_t offset; /* of a uint64_t, or of a uint32_t when width is 4 */
	unsigned width;
};

#define FIELD64(f) offsetof(struct blk_qos, f), 8
#define FIELD32(f) offsetof(struct blk_qos, f), 4

static const struct key keys[] = {
	{"reserve-iops", 1000, 0, BLK_QOS_MAX_IOPS, FIELD64(reserve_iops)},
	{"reserve-bps", 1024, 0, BLK_QOS_MAX_BPS, FIELD64(reserve_bps)},
	{"weight", 1000, 1, BLK_QOS_MAX_WEIGHT, FIELD32(weight)},
	{"limit-iops", 1000, 0, BLK_QOS_MAX_IOPS, FIELD64(limit_iops)},
	{"limit-bps", 1024, 0, BLK_QOS_MAX_BPS, FIELD64(limit_bps)},
	{"burst-iops", 1000, 0, BLK_QOS_MAX_IOPS, FIELD64(burst_iops)},
	{"burst-bps", 1024, 0, BLK_QOS_MAX_BPS, FIELD64(burst_bps)},
	{"burst-ms", 0, 1, BLK_QOS_MAX_BURST_MS, FIELD32(burst_ms)},
	{"deadline-ms", 0, 1, BLK_QOS_MAX_DEADLINE_MS, FIELD32(deadline_ms)},
};

static int parse_key(const struct key *k, const char *value, struct blk_qos *q, char *err, size_t errlen)
{
	uint64_t v;
	int ret = parse_amount(value, k->base, k->max, &v);

	if (ret == -EINVAL)
		return bad(err, errlen, "%s: '%s' is not %s", k->name, value,
			   k->base == 1024 ? "a rate in bytes per second (a number, with k, m or g)"
			   : k->base ? "a number (with k or m)" : "a number of milliseconds");
	if (ret == -ERANGE || v < k->min)
		return bad(err, errlen, "%s: %s is out of bounds (%llu to %llu%s)", k->name, value,
			   (unsigned long long)k->min, (unsigned long long)k->max,
			   k->min == 0 ? ", 0 or none for no limit" : "");
	if (k->width == 8)
		memcpy((char *)q + k->offset, &v, 8);
	else {
		uint32_t v32 = (uint32_t)v;
		memcpy((char *)q + k->offset, &v32, 4);
	}
	return 0;
}

/* The rules between keys, once all are read. */
static int check(const struct blk_qos *q, char *err, size_t errlen)
{
	if (q->limit_iops && q->reserve_iops > q->limit_iops)
		return bad(err, errlen, "reserve-iops (%llu) is above limit-iops (%llu)",
			   (unsigned long long)q->reserve_iops, (unsigned long long)q->limit_iops);
	if (q->limit_bps && q->reserve_bps > q->limit_bps)
		return bad(err, errlen, "reserve-bps (%llu) is above limit-bps (%llu)",
			   (unsigned long long)q->reserve_bps, (unsigned long long)q->limit_bps);
	if (q->burst_iops && q->burst_iops <= q->limit_iops)
		return bad(err, errlen, "burst-iops (%llu) must be above limit-iops (%llu)",
			   (unsigned long long)q->burst_iops, (unsigned long long)q->limit_iops);
	if (q->burst_iops && !q->limit_iops)
		return bad(err, errlen, "burst-iops needs limit-iops: a burst goes above a limit");
	if (q->burst_bps && q->burst_bps <= q->limit_bps)
		return bad(err, errlen, "burst-bps (%llu) must be above limit-bps (%llu)",
			   (unsigned long long)q->burst_bps, (unsigned long long)q->limit_bps);
	if (q->burst_bps && !q->limit_bps)
		return bad(err, errlen, "burst-bps needs limit-bps: a burst goes above a limit");
	return 0;
}

int blk_qos_parse(const char *spec, struct blk_qos *q, char *err, size_t errlen)
{
	char buf[BLK_QOS_TEXT_MAX * 2], *save = NULL, *tok;
	struct blk_qos n = *q;
	int ret;

	if (strlen(spec) >= sizeof(buf))
		return bad(err, errlen, "'%.40s...': too long (at most %zu characters)", spec, sizeof(buf) - 1);
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(tok, '=');
		const struct key *k = NULL;

		if (!eq)
			return bad(err, errlen, "'%s': expected KEY=VALUE", tok);
		*eq = 0;
		if (!strcmp(tok, "class")) {
			if (!strcmp(eq + 1, "interactive"))
				n.interactive = true;
			else if (!strcmp(eq + 1, "batch"))
				n.interactive = false;
			else
				return bad(err, errlen, "class: '%s' is not interactive or batch", eq + 1);
			continue;
		}
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(tok, keys[i].name))
				k = &keys[i];
		if (!k)
			return bad(err, errlen, "unknown key '%s' (reserve-iops, reserve-bps, weight, "
				   "limit-iops, limit-bps, burst-iops, burst-bps, burst-ms, class, deadline-ms)",
				   tok);
		if ((ret = parse_key(k, eq + 1, &n, err, errlen)) < 0)
			return ret;
	}
	if ((ret = check(&n, err, errlen)) < 0)
		return ret;
	*q = n;
	return 0;
}

void blk_qos_format(const struct blk_qos *q, char *buf, size_t len)
{
	struct blk_qos def;
	size_t used = 0;

	blk_qos_default(&def);
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t v = 0, d = 0;
		if (keys[i].width == 8) {
			memcpy(&v, (const char *)q + keys[i].offset, 8);
			memcpy(&d, (const char *)&def + keys[i].offset, 8);
		} else {
			uint32_t v32, d32;
			memcpy(&v32, (const char *)q + keys[i].offset, 4);
			memcpy(&d32, (const char *)&def + keys[i].offset, 4);
			v = v32, d = d32;
		}
		if (v != d && used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s=%llu", used ? "," : "",
						 keys[i].name, (unsigned long long)v);
	}
	if (q->interactive && used < len)
		snprintf(buf + used, len - used, "%sclass=interactive", used ? "," : "");
}
