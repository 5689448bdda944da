#include "domain/xlcfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
	const char *p, *end;
	const char *name;
	unsigned line, col;
	char *err;
	size_t errlen;
};

static int fail_at(struct lexer *lx, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail_at(struct lexer *lx, unsigned line, unsigned col, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(lx->err, lx->errlen, "%s:%u:%u: %s", lx->name, line, col, what);
	return -EINVAL;
}

/* A printable description of the next character, for "found ..." messages. */
static const char *describe(struct lexer *lx, char *buf, size_t len)
{
	if (lx->p >= lx->end)
		return "end of file";
	if (*lx->p == '\n')
		return "end of line";
	if (isprint((unsigned char)*lx->p))
		snprintf(buf, len, "'%c'", *lx->p);
	else
		snprintf(buf, len, "byte 0x%02x", (unsigned char)*lx->p);
	return buf;
}

static void advance(struct lexer *lx)
{
	if (*lx->p == '\n') {
		lx->line++;
		lx->col = 1;
	} else {
		lx->col++;
	}
	lx->p++;
}

/* Skips blanks and comments; newlines too when `newlines` (inside lists). */
static void skip_space(struct lexer *lx, int newlines)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				advance(lx);
		} else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
			advance(lx);
		} else {
			break;
		}
	}
}

static int parse_string(struct lexer *lx, struct xl_value *v)
{
	char quote = *lx->p, *s;
	size_t n = 0;
	unsigned line = lx->line, col = lx->col;

	s = malloc(XL_MAX_STRING + 1);
	if (!s)
		return -ENOMEM;
	advance(lx);
	for (;;) {
		char c;
		if (lx->p >= lx->end || *lx->p == '\n') {
			free(s);
			return fail_at(lx, line, col, "unterminated string (missing %c)", quote);
		}
		c = *lx->p;
		if (c == quote) {
			advance(lx);
			break;
		}
		if (c == '\\' && quote == '"' && lx->p + 1 < lx->end && lx->p[1] != '\n') {
			advance(lx);
			c = *lx->p;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case '\\': case '"': case '\'': break;
			default:
				free(s);
				return fail_at(lx, lx->line, lx->col, "unknown escape '\\%c' in string", c);
			}
		}
		if (c == '\0') {
			free(s);
			return fail_at(lx, lx->line, lx->col, "NUL byte in string");
		}
		if (n == XL_MAX_STRING) {
			free(s);
			return fail_at(lx, line, col, "string longer than %d bytes", XL_MAX_STRING);
		}
		s[n++] = c;
		advance(lx);
	}
	s[n] = 0;
	v->type = XL_STRING;
	v->str = s;
	return 0;
}

static int parse_number(struct lexer *lx, struct xl_value *v)
{
	unsigned long long n = 0;
	unsigned base = 10, line = lx->line, col = lx->col;
	int digits = 0;

	if (lx->end - lx->p > 2 && lx->p[0] == '0' && (lx->p[1] == 'x' || lx->p[1] == 'X')) {
		base = 16;
		advance(lx);
		advance(lx);
	}
	while (lx->p < lx->end && isxdigit((unsigned char)*lx->p)) {
		char c = *lx->p;
		unsigned d = isdigit((unsigned char)c) ? (unsigned)(c - '0')
						       : (unsigned)(tolower((unsigned char)c) - 'a' + 10);
		if (d >= base)
			break;
		if (n > (~0ULL - d) / base)
			return fail_at(lx, line, col, "number too large");
		n = n * base + d;
		digits++;
		advance(lx);
	}
	if (!digits)
		return fail_at(lx, line, col, "expected digits");
	if (lx->p < lx->end && (isalnum((unsigned char)*lx->p) || *lx->p == '_' || *lx->p == '.'))
		return fail_at(lx, lx->line, lx->col, "unexpected '%c' in number (quote strings)",
			       *lx->p);
	v->type = XL_NUMBER;
	v->num = n;
	return 0;
}

static void value_free(struct xl_value *v)
{
	free(v->str);
	for (size_t i = 0; i < v->nitems; i++)
		value_free(&v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

static int parse_scalar(struct lexer *lx, struct xl_value *v)
{
	char buf[16];

	v->line = lx->line;
	v->col = lx->col;
	if (lx->p < lx->end && (*lx->p == '"' || *lx->p == '\''))
		return parse_string(lx, v);
	if (lx->p < lx->end && isdigit((unsigned char)*lx->p))
		return parse_number(lx, v);
	return fail_at(lx, lx->line, lx->col, "expected a value (a quoted string, a number or a list), found %s",
		       describe(lx, buf, sizeof(buf)));
}

static int parse_list(struct lexer *lx, struct xl_value *v)
{
	char buf[16];
	int ret;

	v->type = XL_LIST;
	v->line = lx->line;
	v->col = lx->col;
	advance(lx); /* [ */
	for (;;) {
		struct xl_value *items;

		skip_space(lx, 1);
		if (lx->p < lx->end && *lx->p == ']') {
			advance(lx);
			return 0;
		}
		if (v->nitems == XL_MAX_LIST)
			return fail_at(lx, lx->line, lx->col, "list longer than %d items", XL_MAX_LIST);
		if (lx->p < lx->end && *lx->p == '[')
			return fail_at(lx, lx->line, lx->col, "lists cannot be nested");
		items = realloc(v->items, (v->nitems + 1) * sizeof(*items));
		if (!items)
			return -ENOMEM;
		v->items = items;
		memset(&v->items[v->nitems], 0, sizeof(*items));
		ret = parse_scalar(lx, &v->items[v->nitems]);
		if (ret < 0)
			return ret;
		v->nitems++;
		skip_space(lx, 1);
		if (lx->p < lx->end && *lx->p == ',') {
			advance(lx);
			continue;
		}
		if (lx->p < lx->end && *lx->p == ']')
			continue;
		return fail_at(lx, lx->line, lx->col, "expected ',' or ']' in list, found %s",
			       describe(lx, buf, sizeof(buf)));
	}
}

static int parse_setting(struct lexer *lx, struct xl_config *cfg)
{
	struct xl_setting st = {0};
	const char *start = lx->p;
	char buf[16];
	size_t klen;
	int ret;

	st.line = lx->line;
	st.col = lx->col;
	if (!(isalpha((unsigned char)*lx->p) || *lx->p == '_'))
		return fail_at(lx, lx->line, lx->col, "expected a setting name, found %s",
			       describe(lx, buf, sizeof(buf)));
	while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) || *lx->p == '_'))
		advance(lx);
	klen = (size_t)(lx->p - start);
	if (klen > 64)
		return fail_at(lx, st.line, st.col, "setting name too long");
	skip_space(lx, 0);
	if (lx->p >= lx->end || *lx->p != '=')
		return fail_at(lx, lx->line, lx->col, "expected '=' after '%.*s', found %s",
			       (int)klen, start, describe(lx, buf, sizeof(buf)));
	advance(lx);
	skip_space(lx, 0);
	if (lx->p < lx->end && *lx->p == '[')
		ret = parse_list(lx, &st.value);
	else
		ret = parse_scalar(lx, &st.value);
	if (ret < 0) {
		value_free(&st.value);
		return ret;
	}
	/* A setting ends at end of line, ';' or a comment. */
	skip_space(lx, 0);
	if (lx->p < lx->end && *lx->p != '\n' && *lx->p != ';') {
		value_free(&st.value);
		return fail_at(lx, lx->line, lx->col, "expected end of line after the value, found %s",
			       describe(lx, buf, sizeof(buf)));
	}
	st.key = strndup(start, klen);
	if (!st.key) {
		value_free(&st.value);
		return -ENOMEM;
	}
	{
		const struct xl_setting *prev = xl_get(cfg, st.key);
		if (prev) {
			int r = fail_at(lx, st.line, st.col, "'%s' is set twice (first on line %u)",
					st.key, prev->line);
			free(st.key);
			value_free(&st.value);
			return r;
		}
	}
	if (cfg->n == XL_MAX_SETTINGS) {
		free(st.key);
		value_free(&st.value);
		return fail_at(lx, st.line, st.col, "more than %d settings", XL_MAX_SETTINGS);
	}
	{
		struct xl_setting *s = realloc(cfg->settings, (cfg->n + 1) * sizeof(*s));
		if (!s) {
			free(st.key);
			value_free(&st.value);
			return -ENOMEM;
		}
		cfg->settings = s;
		cfg->settings[cfg->n++] = st;
	}
	return 0;
}

int xl_parse(const char *text, size_t len, const char *name, struct xl_config *out, char *err,
	     size_t errlen)
{
	struct lexer lx = {.p = text, .end = text + len, .name = name, .line = 1, .col = 1,
			   .err = err, .errlen = errlen};
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (len > XL_MAX_INPUT)
		return fail_at(&lx, 1, 1, "file larger than %d bytes", XL_MAX_INPUT);
	for (;;) {
		skip_space(&lx, 1);
		while (lx.p < lx.end && *lx.p == ';') {
			advance(&lx);
			skip_space(&lx, 1);
		}
		if (lx.p >= lx.end)
			break;
		ret = parse_setting(&lx, out);
		if (ret < 0)
			break;
	}
	if (ret < 0)
		xl_free(out);
	return ret;
}

void xl_free(struct xl_config *cfg)
{
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->settings[i].key);
		value_free(&cfg->settings[i].value);
	}
	free(cfg->settings);
	memset(cfg, 0, sizeof(*cfg));
}

const struct xl_setting *xl_get(const struct xl_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (!strcmp(cfg->settings[i].key, key))
			return &cfg->settings[i];
	return NULL;
}
