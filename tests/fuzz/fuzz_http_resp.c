/*
 * libFuzzer harness for the client-side HTTP parsers (wire/http_resp.h),
 * as `acme-edge selftest` meets them in what a server sends. Checks with
 * __builtin_trap():
 *  - http_resp_parse(): one of the documented codes; every slice inside
 *    the head, fields in range; the prefix and split checks of
 *    wire_fuzz.h;
 *  - http_resp_body() on the bytes after the head, with and without the
 *    end of the stream: a documented code, a payload within its room, and
 *    a complete body stays complete (same payload) when the peer closes;
 *  - http_url_resolve() of the Location: a documented code; on success a
 *    NUL-terminated lowercase host, a path starting with '/', a port.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http_resp.h"
#include "wire_fuzz.h"

#define BODY_ROOM 4096

static void check_head(const struct http_resp *r, const uint8_t *base,
		       size_t head_len)
{
	REQUIRE(r->head_len == head_len);
	REQUIRE(r->status >= 100 && r->status <= 999);
	REQUIRE(r->minor_version == 0 || r->minor_version == 1);
	REQUIRE(slice_in(r->reason, base, head_len));
	REQUIRE(!r->server.ptr || slice_in(r->server, base, head_len));
	REQUIRE(!r->location.ptr || slice_in(r->location, base, head_len));
	REQUIRE(r->content_length >= -1);
	REQUIRE(!r->chunked || r->content_length == -1);
	REQUIRE(r->n_fields <= HTTP_RESP_MAX_FIELDS);
}

static size_t off(struct slice s, const uint8_t *base)
{
	return s.ptr ? (size_t)((const uint8_t *)s.ptr - base) : (size_t)-1;
}

static int parse(const uint8_t *buf, size_t len, void *out)
{
	return http_resp_parse(buf, len, out);
}

static void check(const void *out, const uint8_t *buf, size_t len)
{
	check_head(out, buf, len);
}

static void check_same(const void *got, const uint8_t *p, size_t len,
		       const void *whole, const uint8_t *data)
{
	const struct http_resp *x = got, *y = whole;

	check_head(x, p, len);
	REQUIRE(x->status == y->status && x->head_len == y->head_len &&
		x->content_length == y->content_length &&
		x->chunked == y->chunked && x->n_fields == y->n_fields &&
		off(x->server, p) == off(y->server, data) &&
		x->server.len == y->server.len &&
		off(x->location, p) == off(y->location, data) &&
		x->location.len == y->location.len);
}

static void check_body(const struct http_resp *r, const uint8_t *body,
		       size_t len)
{
	static uint8_t a[BODY_ROOM], b[BODY_ROOM];
	size_t na = 0, nb = 0;
	int open = http_resp_body(r, body, len, false, a, sizeof(a), &na);
	int closed = http_resp_body(r, body, len, true, b, sizeof(b), &nb);

	REQUIRE(open == 1 || open == WIRE_PARTIAL || open == WIRE_INVALID ||
		open == WIRE_TOOBIG);
	REQUIRE(closed == 1 || closed == WIRE_INVALID || closed == WIRE_TOOBIG);
	if (open == 1) {
		REQUIRE(na <= sizeof(a) && na <= len);
		REQUIRE(closed == 1 && nb == na && memcmp(a, b, na) == 0);
	}
	if (closed == 1)
		REQUIRE(nb <= sizeof(b) && nb <= len);
}

static void check_location(struct slice loc)
{
	struct http_url base = {.port = 80}, u;
	int rc;

	strcpy(base.host, "www.example.com");
	strcpy(base.path, "/.well-known/acme-challenge/t?q");
	rc = http_url_resolve(loc.ptr, loc.len, &base, &u);
	REQUIRE(rc == 0 || rc == HTTP_URL_SCHEME || rc == WIRE_INVALID ||
		rc == WIRE_TOOBIG);
	if (rc == HTTP_URL_SCHEME)
		REQUIRE(memchr(u.path, '\0', sizeof(u.path)) != NULL);
	if (rc != 0)
		return;
	REQUIRE(memchr(u.host, '\0', sizeof(u.host)) && u.host[0]);
	for (const char *h = u.host; *h; h++)
		REQUIRE(!(*h >= 'A' && *h <= 'Z'));
	REQUIRE(memchr(u.path, '\0', sizeof(u.path)) && u.path[0] == '/');
	REQUIRE(u.port > 0);
	REQUIRE(u.port_given || u.port == (u.https ? 443 : 80));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_wire fw = {parse, 0, check, check_same};
	struct http_resp r, prefix;
	int rc = fuzz_wire_run(&fw, data, size, &r, &prefix);

	if (rc > 0) {
		check_body(&r, data + rc, size - (size_t)rc);
		if (r.location.ptr)
			check_location(r.location);
	}
	/* Location values on their own, bounded like a header value. */
	if (size <= 4096)
		check_location((struct slice){(const char *)data, size});
	return 0;
}
