#include "vmm/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->error)
		return;
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		uint8_t *nb;
		while (cap < a->len + n)
			cap *= 2;
		nb = realloc(a->buf, cap);
		if (!nb) {
			a->error = -ENOMEM;
			return;
		}
		a->buf = nb;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, 0x00); /* ZeroOp */
	} else if (v == 1) {
		aml_byte(a, 0x01); /* OneOp */
	} else if (v <= 0xff) {
		aml_byte(a, 0x0a); /* BytePrefix */
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xffff) {
		aml_byte(a, 0x0b); /* WordPrefix */
		aml_bytes(a, &(uint16_t){(uint16_t)v}, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, 0x0c); /* DWordPrefix */
		aml_bytes(a, &(uint32_t){(uint32_t)v}, 4);
	} else {
		aml_byte(a, 0x0e); /* QWordPrefix */
		aml_bytes(a, &v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, 0x0d); /* StringPrefix */
	aml_bytes(a, s, strlen(s) + 1);
}

static void aml_nameseg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = {'_', '_', '_', '_'};

	memcpy(seg, s, n > 4 ? 4 : n);
	aml_bytes(a, seg, 4);
}

void aml_namestring(struct aml *a, const char *name)
{
	const char *p = name;
	unsigned nseg = 1;

	if (*p == '\\') {
		aml_byte(a, '\\');
		p++;
	}
	for (const char *q = p; *q; q++)
		nseg += *q == '.';
	if (nseg == 2)
		aml_byte(a, 0x2e); /* DualNamePrefix */
	else if (nseg > 2) {
		aml_byte(a, 0x2f); /* MultiNamePrefix */
		aml_byte(a, (uint8_t)nseg);
	}
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		aml_nameseg(a, p, n);
		p += n + (dot ? 1 : 0);
	}
}

size_t aml_pkglength(uint8_t out[4], size_t n)
{
	/* The length counts its own encoding bytes, so try 1..4 of them. */
	if (n + 1 < 0x40) {
		out[0] = (uint8_t)(n + 1);
		return 1;
	}
	for (size_t extra = 1; extra <= 3; extra++) {
		size_t total = n + 1 + extra;
		if (total < (1UL << (4 + 8 * extra))) {
			out[0] = (uint8_t)((extra << 6) | (total & 0xf));
			for (size_t i = 0; i < extra; i++)
				out[1 + i] = (uint8_t)(total >> (4 + 8 * i));
			return 1 + extra;
		}
	}
	return 0;
}

static void aml_wrap(struct aml *a, const uint8_t *op, size_t oplen, const struct aml *head,
		     const struct aml *body)
{
	uint8_t pl[4];
	size_t n = head->len + body->len, pln;

	if (head->error || body->error) {
		a->error = -ENOMEM;
		return;
	}
	pln = aml_pkglength(pl, n);
	aml_bytes(a, op, oplen);
	aml_bytes(a, pl, pln);
	aml_bytes(a, head->buf, head->len);
	aml_bytes(a, body->buf, body->len);
}

static void aml_named_block(struct aml *a, const uint8_t *op, size_t oplen, const char *name,
			    const struct aml *body)
{
	struct aml head;

	aml_init(&head);
	aml_namestring(&head, name);
	aml_wrap(a, op, oplen, &head, body);
	aml_free(&head);
}

void aml_scope(struct aml *a, const char *name, const struct aml *body)
{
	static const uint8_t op[] = {0x10}; /* ScopeOp */
	aml_named_block(a, op, sizeof(op), name, body);
}

void aml_device(struct aml *a, const char *name, const struct aml *body)
{
	static const uint8_t op[] = {0x5b, 0x82}; /* ExtOpPrefix DeviceOp */
	aml_named_block(a, op, sizeof(op), name, body);
}

void aml_method(struct aml *a, const char *name, unsigned nargs, const struct aml *body)
{
	static const uint8_t op[] = {0x14}; /* MethodOp */
	struct aml head;

	aml_init(&head);
	aml_namestring(&head, name);
	aml_byte(&head, (uint8_t)(nargs & 7)); /* MethodFlags: not serialized */
	aml_wrap(a, op, sizeof(op), &head, body);
	aml_free(&head);
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	aml_byte(a, 0x86); /* NotifyOp */
	aml_namestring(a, path);
	aml_integer(a, value);
}

void aml_package(struct aml *a, unsigned nelems, const struct aml *body)
{
	static const uint8_t op[] = {0x12}; /* PackageOp */
	struct aml head;

	aml_init(&head);
	aml_byte(&head, (uint8_t)nelems);
	aml_wrap(a, op, sizeof(op), &head, body);
	aml_free(&head);
}

void aml_buffer(struct aml *a, const void *p, size_t n)
{
	static const uint8_t op[] = {0x11}; /* BufferOp */
	struct aml head, body;

	aml_init(&head);
	aml_init(&body);
	aml_integer(&head, n);
	aml_bytes(&body, p, n);
	aml_wrap(a, op, sizeof(op), &head, &body);
	aml_free(&head);
	aml_free(&body);
}

void aml_name(struct aml *a, const char *name, const struct aml *body)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_namestring(a, name);
	if (body->error)
		a->error = body->error;
	else
		aml_bytes(a, body->buf, body->len);
}

void aml_name_integer(struct aml *a, const char *name, uint64_t v)
{
	aml_byte(a, 0x08);
	aml_namestring(a, name);
	aml_integer(a, v);
}

void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_byte(a, 0x08);
	aml_namestring(a, name);
	aml_string(a, s);
}

uint32_t aml_eisaid(const char *id)
{
	/* Three letters of 5 bits each, then four hex digits; stored big-endian. */
	uint32_t v = 0;
	unsigned digits = 0;

	if (strlen(id) != 7)
		return 0;
	v |= (uint32_t)((id[0] - '@') & 0x1f) << 26;
	v |= (uint32_t)((id[1] - '@') & 0x1f) << 21;
	v |= (uint32_t)((id[2] - '@') & 0x1f) << 16;
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		unsigned d = c >= 'A' ? (unsigned)(c - 'A' + 10) : (unsigned)(c - '0');
		digits = (digits << 4) | (d & 0xf);
	}
	v |= digits;
	return __builtin_bswap32(v);
}
