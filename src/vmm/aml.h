/*
 * A small AML encoder (ACPI 6 chapter 20) for the few objects domus's DSDT
 * needs: scopes, devices, names, integers, strings, packages, buffers.
 * Nested objects are built into their own buffer, then wrapped with a
 * PkgLength, since the length prefix depends on the body's size.
 */
#ifndef DOMUS_AML_H
#define DOMUS_AML_H

#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int error; /* sticky -ENOMEM */
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t b);
/* Integer with the smallest encoding. */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* A 4-character name segment, or a path starting with '\\' of dotted segments. */
void aml_namestring(struct aml *a, const char *name);
/* Name(name, <body>) where body is an already encoded data object. */
void aml_name(struct aml *a, const char *name, const struct aml *body);
void aml_name_integer(struct aml *a, const char *name, uint64_t v);
void aml_name_string(struct aml *a, const char *name, const char *s);
/* EISA id such as "PNP0A03" compressed into a 32-bit integer. */
uint32_t aml_eisaid(const char *id);
/* Scope(name){body}, Device(name){body}, Package(n){body}, Buffer(){bytes}. */
void aml_scope(struct aml *a, const char *name, const struct aml *body);
void aml_device(struct aml *a, const char *name, const struct aml *body);
void aml_package(struct aml *a, unsigned nelems, const struct aml *body);
void aml_buffer(struct aml *a, const void *p, size_t n);
/* Method(name, nargs){body}; Notify(path, value) as a statement. */
void aml_method(struct aml *a, const char *name, unsigned nargs, const struct aml *body);
void aml_notify(struct aml *a, const char *path, uint64_t value);
/* The PkgLength encoding of a body of n bytes (including its own bytes). */
size_t aml_pkglength(uint8_t out[4], size_t n);

#endif
