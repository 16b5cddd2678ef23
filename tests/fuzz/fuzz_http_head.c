/*
 * libFuzzer harness for http_head_parse(). Checks with __builtin_trap():
 *  - a result is one of the documented codes, consumed <= size and equal
 *    to head_len;
 *  - every slice lies inside the head; the normalised host is short,
 *    NUL-terminated and made only of the characters normalisation keeps;
 *    the derived fields are in range (version, Content-Length, chunked);
 *  - the prefix and split checks of wire_fuzz.h; a prefix that succeeds
 *    passes the checks above on its own copy and has the same fields.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http_head.h"
#include "wire_fuzz.h"

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

static int parse(const uint8_t *buf, size_t len, void *out)
{
	return http_head_parse(buf, len, out);
}

static void check(const void *out, const uint8_t *buf, size_t len)
{
	check_head(out, buf, len);
}

static void check_same(const void *got, const uint8_t *p, size_t len,
		       const void *whole, const uint8_t *data)
{
	check_head(got, p, len);
	REQUIRE(same_head(got, p, whole, data));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_wire fw = { parse, 0, check, check_same };
	struct http_head h, prefix;

	fuzz_wire_run(&fw, data, size, &h, &prefix);
	return 0;
}
