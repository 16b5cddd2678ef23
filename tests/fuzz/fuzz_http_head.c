/*
 * libFuzzer harness for http_head_parse(). Checks with __builtin_trap():
 *  - a result is one of the documented codes, consumed <= size and equal
 *    to head_len;
 *  - every slice lies inside the head; the normalised host is short,
 *    NUL-terminated and made only of the characters normalisation keeps;
 *    the derived fields are in range (version, Content-Length, chunked);
 *  - prefixes: shorter than the head give PARTIAL, at least as long give
 *    the same result and fields; for an error, a prefix gives PARTIAL or
 *    that error; split at a data-derived offset into two calls gives the
 *    whole-input result.
 * Prefixes are copied to exact-size heap buffers so ASan sees over-reads.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"

#define REQUIRE(c)                                                        \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static bool slice_in(struct slice s, const uint8_t *base, size_t len)
{
	const char *b = (const char *)base;

	return s.ptr >= b && s.ptr <= b + len && s.len <= len &&
	       s.ptr + s.len <= b + len;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '-' || c == '_' || c == ':';
}

static void check_head(const struct http_head *h, const uint8_t *base,
		       size_t head_len)
{
	size_t i;

	REQUIRE(h->head_len == head_len);
	REQUIRE(slice_in(h->method, base, head_len) && h->method.len > 0);
	REQUIRE(slice_in(h->target, base, head_len) && h->target.len > 0 &&
		h->target.len <= HTTP_HEAD_MAX_TARGET);
	REQUIRE(slice_in(h->path, base, head_len));
	REQUIRE(slice_in(h->query, base, head_len));
	REQUIRE(h->path.len == 0 || (h->path.ptr >= h->target.ptr &&
		h->path.ptr + h->path.len <= h->target.ptr + h->target.len));
	REQUIRE(h->minor_version == 0 || h->minor_version == 1);
	REQUIRE(h->host_len <= HTTP_HOST_MAX && h->host[h->host_len] == '\0');
	REQUIRE(h->has_host == (h->host_len > 0));
	for (i = 0; i < h->host_len; i++)
		REQUIRE(host_char(h->host[i]));
	REQUIRE(h->content_length >= -1);
	REQUIRE(!h->chunked || h->content_length == -1);
	REQUIRE(!h->chunked || h->minor_version == 1);
	REQUIRE(h->n_headers <= HTTP_HEAD_MAX_HEADERS);
	REQUIRE(h->minor_version == 0 || h->n_headers >= 1);
}

static size_t off(struct slice s, const uint8_t *base)
{
	return (size_t)((const uint8_t *)s.ptr - base);
}

static bool same_head(const struct http_head *x, const uint8_t *xb,
		      const struct http_head *y, const uint8_t *yb)
{
	return off(x->method, xb) == off(y->method, yb) &&
	       x->method.len == y->method.len &&
	       off(x->target, xb) == off(y->target, yb) &&
	       x->target.len == y->target.len &&
	       x->path.len == y->path.len && x->query.len == y->query.len &&
	       (x->path.len == 0 || off(x->path, xb) == off(y->path, yb)) &&
	       (x->query.len == 0 || off(x->query, xb) == off(y->query, yb)) &&
	       x->minor_version == y->minor_version &&
	       x->host_len == y->host_len &&
	       strcmp(x->host, y->host) == 0 && x->has_host == y->has_host &&
	       x->keep_alive == y->keep_alive && x->chunked == y->chunked &&
	       x->content_length == y->content_length &&
	       x->n_headers == y->n_headers && x->head_len == y->head_len;
}

static void check_prefix(const uint8_t *data, size_t size, size_t k, int rc,
			 const struct http_head *whole)
{
	uint8_t *p = malloc(k ? k : 1);
	struct http_head h;
	int r;

	REQUIRE(p);
	memcpy(p, data, k);
	r = http_head_parse(p, k, &h);
	if (rc > 0) {
		if (k < (size_t)rc) {
			REQUIRE(r == WIRE_PARTIAL);
		} else {
			REQUIRE(r == rc);
			check_head(&h, p, (size_t)r);
			REQUIRE(same_head(&h, p, whole, data));
		}
	} else if (rc == WIRE_PARTIAL) {
		REQUIRE(r == WIRE_PARTIAL);
	} else {
		REQUIRE(r == WIRE_PARTIAL || r == rc);
	}
	free(p);
	if (r == WIRE_PARTIAL)
		r = http_head_parse(data, size, &h);
	REQUIRE(r == rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head h;
	int rc;

	rc = http_head_parse(data, size, &h);
	REQUIRE(rc > 0 || rc == WIRE_PARTIAL || rc == WIRE_INVALID ||
		rc == WIRE_TOOBIG);
	if (rc > 0) {
		REQUIRE((size_t)rc <= size);
		check_head(&h, data, (size_t)rc);
	}

	check_prefix(data, size, fnv1a(data, size) % (size + 1), rc, &h);
	check_prefix(data, size, size / 2, rc, &h);
	if (rc > 0)
		check_prefix(data, size, (size_t)rc - 1, rc, &h);
	if (size > 0)
		check_prefix(data, size, size - 1, rc, &h);
	return 0;
}
