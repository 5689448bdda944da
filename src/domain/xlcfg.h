/*
 * Xen's xl.cfg syntax (xl.cfg(5)): settings KEY = VALUE, one per line or
 * separated by ';', where VALUE is a quoted string ("..." or '...'), a
 * number, or a list [ VALUE, ... ] that may span lines and end with a
 * comma; '#' starts a comment. The parser only reads syntax; what the keys
 * mean is domcfg's business.
 */
#ifndef DOMUS_XLCFG_H
#define DOMUS_XLCFG_H

#include <stddef.h>

#define XL_MAX_INPUT (1 << 20)
#define XL_MAX_SETTINGS 256
#define XL_MAX_LIST 256
#define XL_MAX_STRING 4096

enum xl_type { XL_STRING, XL_NUMBER, XL_LIST };

struct xl_value {
	enum xl_type type;
	char *str;               /* XL_STRING */
	unsigned long long num;  /* XL_NUMBER */
	struct xl_value *items;  /* XL_LIST: strings and numbers */
	size_t nitems;
	unsigned line, col;
};

struct xl_setting {
	char *key;
	struct xl_value value;
	unsigned line, col;
};

struct xl_config {
	struct xl_setting *settings;
	size_t n;
};

/*
 * Parses text (not necessarily NUL-terminated). Returns 0, or -EINVAL with
 * "NAME:LINE:COL: what was expected" in err, or -ENOMEM. On error *out is
 * left empty.
 */
int xl_parse(const char *text, size_t len, const char *name, struct xl_config *out, char *err,
	     size_t errlen) __attribute__((warn_unused_result));
void xl_free(struct xl_config *cfg);
const struct xl_setting *xl_get(const struct xl_config *cfg, const char *key);

#endif
