#include "domain/shm_spec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int shm_name_check(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (n == 0 || n >= SHM_NAME_MAX)
		return bad(err, errlen, "name '%.80s': 1 to %d bytes", name, SHM_NAME_MAX - 1);
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return bad(err, errlen,
			   "name '%.80s' may hold only letters, digits, '.', '_' and '-'", name);
	/* It names a file in the sockets' directory: no "." or "..", nothing hidden. */
	if (name[0] == '.')
		return bad(err, errlen, "name '%.80s' may not start with '.'", name);
	return 0;
}

int shm_size_parse(const char *text, uint64_t *bytes)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!text[0] || text[0] < '0' || text[0] > '9' || strlen(text) > 24)
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		return -EINVAL;
	}
	/* "4MiB" and "4MB" read as 4M too; nothing else may follow. */
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "b")))
		end += strlen(end);
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*bytes = (uint64_t)v << shift;
	return 0;
}

int shm_check(uint64_t size, unsigned vectors, bool doorbell, char *err, size_t errlen)
{
	if (size < SHM_SIZE_MIN || size > SHM_SIZE_MAX || (size & (size - 1))) {
		char text[32];
		shm_size_format(size, text, sizeof(text));
		return bad(err, errlen, "size %s: a power of two from 4K to 1G, please", text);
	}
	if (doorbell && (vectors < 1 || vectors > SHM_VECTORS_MAX))
		return bad(err, errlen, "vectors %u: 1 to %d", vectors, SHM_VECTORS_MAX);
	if (!doorbell && vectors)
		return bad(err, errlen, "vectors %u: a plain region (doorbell=0) has no interrupts",
			   vectors);
	return 0;
}

int shm_spec_parse(const char *spec, struct shm_config *s, char *err, size_t errlen)
{
	char buf[DISK_PATH_MAX + 256], *save = NULL, *tok, *path = NULL;
	bool have_size = false, have_vectors = false;
	char why[160];

	memset(s, 0, sizeof(*s));
	s->doorbell = true;
	if (strlen(spec) >= sizeof(buf))
		return bad(err, errlen, "shm '%.40s...': too long", spec);
	strcpy(buf, spec);
	/* path= is last: everything after it, commas included, is the socket's path. */
	for (char *p = strstr(buf, "path="); p; p = strstr(p + 1, "path="))
		if (p == buf || p[-1] == ',') {
			path = p + 5;
			p[p == buf ? 0 : -1] = 0;
			break;
		}
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		const char *v;

		while (*tok == ' ')
			tok++;
		if (!eq)
			return bad(err, errlen, "shm '%.200s': '%.40s' is not key=value", spec,
				   tok);
		*eq = 0;
		v = eq + 1;
		if (!strcmp(tok, "name")) {
			if (shm_name_check(v, why, sizeof(why)) < 0)
				return bad(err, errlen, "shm '%.200s': %s", spec, why);
			strcpy(s->name, v);
		} else if (!strcmp(tok, "size")) {
			if (shm_size_parse(v, &s->size) < 0)
				return bad(err, errlen,
					   "shm '%.200s': size '%.40s' is not a size (bytes, or "
					   "with K, M, G)",
					   spec, v);
			have_size = true;
		} else if (!strcmp(tok, "doorbell")) {
			if (strcmp(v, "0") && strcmp(v, "1"))
				return bad(err, errlen, "shm '%.200s': doorbell '%.40s': 0 or 1",
					   spec, v);
			s->doorbell = v[0] == '1';
		} else if (!strcmp(tok, "vectors")) {
			unsigned long n;
			if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 4)
				return bad(err, errlen,
					   "shm '%.200s': vectors '%.40s' is not a number", spec,
					   v);
			n = strtoul(v, &end, 10);
			s->vectors = (unsigned)n;
			have_vectors = true;
		} else {
			return bad(err, errlen,
				   "shm '%.200s': unknown key '%.40s' (name, size, doorbell, "
				   "vectors, path)",
				   spec, tok);
		}
	}
	if (!s->name[0])
		return bad(err, errlen, "shm '%.200s': no name=", spec);
	if (!have_size)
		return bad(err, errlen, "shm '%.200s': no size=", spec);
	if (s->doorbell && !have_vectors)
		s->vectors = SHM_VECTORS_DEFAULT;
	if (shm_check(s->size, s->vectors, s->doorbell, why, sizeof(why)) < 0)
		return bad(err, errlen, "shm '%.200s': %s", spec, why);
	if (path) {
		if (!*path || strlen(path) >= sizeof(s->path))
			return bad(err, errlen, "shm '%.200s': path is 1 to %zu bytes", spec,
				   sizeof(s->path) - 1);
		strcpy(s->path, path);
	}
	return 0;
}

void shm_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char suffix[] = "KMG";

	for (int i = 2; i >= 0; i--) {
		unsigned shift = 10 * (unsigned)(i + 1);
		if (bytes && !(bytes & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(bytes >> shift),
				 suffix[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

void shm_spec_format(const struct shm_config *s, char *buf, size_t len)
{
	char size[32];
	int n;

	shm_size_format(s->size, size, sizeof(size));
	n = snprintf(buf, len, "name=%s,size=%s,doorbell=%d", s->name, size, s->doorbell);
	if (n >= 0 && (size_t)n < len && s->doorbell)
		n += snprintf(buf + n, len - (size_t)n, ",vectors=%u", s->vectors);
	if (n >= 0 && (size_t)n < len && s->path[0])
		snprintf(buf + n, len - (size_t)n, ",path=%s", s->path);
}
