/*
 * Unit tests for the client-side HTTP parsers of wire/http_resp.h: response
 * heads (fed whole, byte by byte and split at every offset, against a guard
 * page), bodies (Content-Length, chunked, to the end of the connection,
 * each also cut at every length), and Location values resolved against
 * the URL asked for.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "feed.h"
#include "wire/http_resp.h"

struct rcase {
	const char *name;
	const char *in;
	size_t len;
	int rc;			/* 1 = success covering head_len, else WIRE_ */
	size_t head_len;	/* 0: all of in */
	int status;
	const char *server;	/* NULL: none */
	const char *location;
	int64_t cl;		/* -1: none */
	bool chunked;
};

#define S(s) .in = (s), .len = sizeof(s) - 1
#define OK200 .rc = 1, .status = 200, .cl = -1

static const struct rcase heads[] = {
	{"minimal", S("HTTP/1.1 200 OK\r\n\r\n"), OK200},
	{"no reason", S("HTTP/1.1 204\r\n\r\n"), .rc = 1, .status = 204, .cl = -1},
	{"bare LF", S("HTTP/1.0 200 OK\nServer: x\n\n"), OK200, .server = "x"},
	{"fields", S("HTTP/1.1 404 Not Found\r\nServer:  nginx/1.22 \r\n"
		     "Content-Length: 12\r\nX-A: b\r\n\r\nbody follows"),
	 .rc = 1, .head_len = 76, .status = 404, .server = "nginx/1.22", .cl = 12},
	{"redirect", S("HTTP/1.1 301 Moved\r\nlocation: https://a.example/x\r\n"
		       "LOCATION: /second\r\n\r\n"),
	 .rc = 1, .status = 301, .location = "https://a.example/x", .cl = -1},
	{"chunked wins", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			   "Transfer-Encoding: gzip, chunked\r\n\r\n"),
	 OK200, .chunked = true},
	{"te not chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
	 OK200},
	{"same lengths", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
			   "Content-Length: 3\r\n\r\n"), .rc = 1, .status = 200, .cl = 3},
	{"empty server", S("HTTP/1.1 200 OK\r\nServer:\r\n\r\n"), OK200, .server = ""},
	{"obs-text reason", S("HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\n\r\n"), OK200},
	{"not http", S("SSH-2.0-OpenSSH\r\n\r\n"), .rc = WIRE_INVALID},
	{"http/2", S("HTTP/2 200\r\n\r\n"), .rc = WIRE_INVALID},
	{"http/1.2", S("HTTP/1.2 200 OK\r\n\r\n"), .rc = WIRE_INVALID},
	{"short status", S("HTTP/1.1 20 OK\r\n\r\n"), .rc = WIRE_INVALID},
	{"status 099", S("HTTP/1.1 099 x\r\n\r\n"), .rc = WIRE_INVALID},
	{"glued reason", S("HTTP/1.1 200OK\r\n\r\n"), .rc = WIRE_INVALID},
	{"conflicting lengths", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
				  "Content-Length: 4\r\n\r\n"), .rc = WIRE_INVALID},
	{"length list", S("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"),
	 .rc = WIRE_INVALID},
	{"negative length", S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
	 .rc = WIRE_INVALID},
	{"huge length", S("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n"),
	 .rc = WIRE_INVALID},
	{"obs-fold", S("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n"), .rc = WIRE_INVALID},
	{"space before colon", S("HTTP/1.1 200 OK\r\nServer : x\r\n\r\n"),
	 .rc = WIRE_INVALID},
	{"no colon", S("HTTP/1.1 200 OK\r\nServer\r\n\r\n"), .rc = WIRE_INVALID},
	{"bare CR", S("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), .rc = WIRE_INVALID},
	{"CTL in value", S("HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n"), .rc = WIRE_INVALID},
	{"partial", S("HTTP/1.1 200 OK\r\nServer: x\r\n"), .rc = WIRE_PARTIAL},
	{"empty", S(""), .rc = WIRE_PARTIAL},
};

static int parse_head(const void *arg, const uint8_t *in, size_t len, void *out)
{
	(void)arg;
	return http_resp_parse(in, len, out);
}

static bool slice_is(struct slice s, const char *want)
{
	if (!want)
		return s.ptr == NULL;
	return s.ptr && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static void check_head(const void *arg, enum feed_mode mode, int rc,
		       const void *out, const uint8_t *in, size_t len)
{
	const struct rcase *c = arg;
	const struct http_resp *r = out;

	(void)in;
	(void)len;
	CHECKF(r->head_len == (size_t)rc, "%s (%s): head_len", c->name,
	       feed_mode_name(mode));
	CHECKF(r->status == c->status, "%s: status %d", c->name, r->status);
	CHECKF(slice_is(r->server, c->server), "%s: server", c->name);
	CHECKF(slice_is(r->location, c->location), "%s: location", c->name);
	CHECKF(r->content_length == c->cl, "%s: content_length %lld", c->name,
	       (long long)r->content_length);
	CHECKF(r->chunked == c->chunked, "%s: chunked", c->name);
}

static void test_heads(void)
{
	static const struct feed_ops ops = {parse_head, check_head};
	struct http_resp r;

	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		const struct rcase *c = &heads[i];
		feed_run(c->name, c->in, c->len,
			 feed_want(c->rc, c->head_len, c->len), &ops, c, &r);
	}
}

/* A head with no end within the limit, and one with too many fields. */
static void test_head_limits(void)
{
	size_t n = HTTP_RESP_HEAD_MAX + 10, k;
	char *big = malloc(n);
	struct http_resp r;

	BUG_ON(!big);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', n - 20);
	CHECK(http_resp_parse((uint8_t *)big, n, &r) == WIRE_TOOBIG);
	CHECK(http_resp_parse((uint8_t *)big, HTTP_RESP_HEAD_MAX - 1, &r) ==
	      WIRE_PARTIAL);
	k = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i <= HTTP_RESP_MAX_FIELDS; i++)
		k += (size_t)sprintf(big + k, "X: %d\r\n", i);
	k += (size_t)sprintf(big + k, "\r\n");
	CHECK(http_resp_parse((uint8_t *)big, k, &r) == WIRE_TOOBIG);
	free(big);
}

struct bcase {
	const char *name;
	const char *head;
	const char *body;
	size_t body_len;
	bool eof;
	int rc;
	const char *want;	/* success: the payload */
	size_t cap;		/* 0: 64 */
};

#define B(s) .body = (s), .body_len = sizeof(s) - 1

static const struct bcase bodies[] = {
	{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", B("abcdef"),
	 false, 1, "abc"},
	{"length cut", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", B("abc"),
	 true, WIRE_INVALID, NULL},
	{"length waits", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", B("abc"),
	 false, WIRE_PARTIAL, NULL},
	{"length over cap", "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", B(""),
	 false, WIRE_TOOBIG, NULL},
	{"to eof", "HTTP/1.0 200 OK\r\n\r\n", B("key.auth\n"), true, 1, "key.auth\n"},
	{"to eof waits", "HTTP/1.0 200 OK\r\n\r\n", B("key"), false, WIRE_PARTIAL, NULL},
	{"to eof over cap", "HTTP/1.0 200 OK\r\n\r\n", B("abcdef"), true,
	 WIRE_TOOBIG, NULL, 4},
	{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", B(""),
	 false, 1, ""},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("3\r\nabc\r\n1;ext=1\r\nd\r\n0\r\nX-T: 1\r\n\r\n"), false, 1, "abcd"},
	{"chunked bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("A\nabcdefghij\n0\n\n"), false, 1, "abcdefghij"},
	{"chunked waits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("3\r\nabc\r\n0\r\n"), false, WIRE_PARTIAL, NULL},
	{"chunked cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("3\r\nab"), true, WIRE_INVALID, NULL},
	{"chunked no size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("\r\nabc\r\n"), false, WIRE_INVALID, NULL},
	{"chunked no CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("3\r\nabcX0\r\n\r\n"), false, WIRE_INVALID, NULL},
	{"chunked huge size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("fffffffff\r\n"), false, WIRE_INVALID, NULL},
	{"chunked over cap", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	 B("41\r\n"), false, WIRE_TOOBIG, NULL},
};

static void test_bodies(void)
{
	uint8_t out[64];

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		const struct bcase *c = &bodies[i];
		size_t cap = c->cap ? c->cap : sizeof(out), n = 0;
		struct http_resp r;
		const uint8_t *g;
		int rc;

		BUG_ON(http_resp_parse((const uint8_t *)c->head, strlen(c->head),
				       &r) <= 0);
		g = check_guarded(c->body, c->body_len);
		rc = http_resp_body(&r, g, c->body_len, c->eof, out, cap, &n);
		CHECKF(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 1 && c->want)
			CHECKF(n == strlen(c->want) && !memcmp(out, c->want, n),
			       "%s: payload", c->name);
		/* A cut body never reads past its end, and waits or fails. */
		for (size_t k = 0; k < c->body_len; k++) {
			g = check_guarded(c->body, k);
			rc = http_resp_body(&r, g, k, false, out, cap, &n);
			CHECKF(rc == WIRE_PARTIAL || rc == WIRE_INVALID || rc == 1 ||
			       rc == WIRE_TOOBIG, "%s: cut at %zu: rc %d", c->name,
			       k, rc);
		}
	}
}

struct ucase {
	const char *loc;
	int rc;
	bool https;
	const char *host;
	unsigned port;
	bool port_given;
	const char *path;
};

static const struct ucase urls[] = {
	{"https://Other.Example/p?q=1#frag", 0, true, "other.example", 443, false, "/p?q=1"},
	{"http://a.example:8080/x", 0, false, "a.example", 8080, true, "/x"},
	{"HTTP://a.example:80", 0, false, "a.example", 80, true, "/"},
	{"http://a.example:/x", 0, false, "a.example", 80, false, "/x"},
	{"http://[2001:db8::1]:443/y", 0, false, "2001:db8::1", 443, true, "/y"},
	{"http://a.example?x", 0, false, "a.example", 80, false, "/?x"},
	{"//b.example/z", 0, false, "b.example", 80, false, "/z"},
	{"/abs?q", 0, false, "www.example.com", 80, false, "/abs?q"},
	{"rel", 0, false, "www.example.com", 80, false, "/.well-known/acme-challenge/rel"},
	{"?only", 0, false, "www.example.com", 80, false,
	 "/.well-known/acme-challenge/tok?only"},
	{"", 0, false, "www.example.com", 80, false, "/.well-known/acme-challenge/tok"},
	{.loc = "ftp://a.example/x", .rc = HTTP_URL_SCHEME, .path = "ftp"},
	{.loc = "javascript:alert(1)", .rc = HTTP_URL_SCHEME, .path = "javascript"},
	{.loc = "http://user@a.example/", .rc = WIRE_INVALID},
	{.loc = "http://a.example:99999/", .rc = WIRE_INVALID},
	{.loc = "http://a.example:0/", .rc = WIRE_INVALID},
	{.loc = "http://a.example:8x/", .rc = WIRE_INVALID},
	{.loc = "http:///x", .rc = WIRE_INVALID},
	{.loc = "http:x", .rc = WIRE_INVALID},
	{.loc = "http://[::1/", .rc = WIRE_INVALID},
	{.loc = "http://a b/", .rc = WIRE_INVALID},
	{.loc = "/caf\xc3\xa9", .rc = WIRE_INVALID},
};

static void test_urls(void)
{
	struct http_url base = {.port = 80};
	char longpath[HTTP_URL_PATH_MAX + 8];
	struct http_url u;

	strcpy(base.host, "www.example.com");
	strcpy(base.path, "/.well-known/acme-challenge/tok");
	for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
		const struct ucase *c = &urls[i];
		const char *g = check_guarded(c->loc, strlen(c->loc));
		int rc = http_url_resolve(g, strlen(c->loc), &base, &u);

		CHECKF(rc == c->rc, "%s: rc %d, want %d", c->loc, rc, c->rc);
		if (rc == HTTP_URL_SCHEME)
			CHECKF(!strcmp(u.path, c->path), "%s: scheme %s", c->loc, u.path);
		if (rc != 0 || c->rc != 0)
			continue;
		CHECKF(u.https == c->https && u.port == c->port &&
		       u.port_given == c->port_given, "%s: scheme or port", c->loc);
		CHECKF(!strcmp(u.host, c->host), "%s: host %s", c->loc, u.host);
		CHECKF(!strcmp(u.path, c->path), "%s: path %s", c->loc, u.path);
	}
	longpath[0] = '/';
	memset(longpath + 1, 'a', sizeof(longpath) - 2);
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK(http_url_resolve(longpath, strlen(longpath), &base, &u) == WIRE_TOOBIG);
}

int main(void)
{
	test_heads();
	test_head_limits();
	test_bodies();
	test_urls();
	return check_done();
}
