/*
 * Unit tests for http_head_parse(): a table of good and bad request heads,
 * each fed whole, one byte at a time and split in two at every offset, the
 * input placed right before a PROT_NONE page so that an over-read faults.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>	/* check.h uses abort() */
#include <string.h>

#include "check.h"
#include "feed.h"
#include "wire/http_head.h"

struct hcase {
	const char *name;
	const char *in;
	size_t len;
	size_t head_len;	/* success: bytes of head; 0 means len */
	int rc;			/* 1 = success, else the WIRE_ code */
	const char *method;
	const char *path;
	const char *query;
	const char *host;	/* NULL: has_host must be false */
	int minor;
	bool ka;
	bool chunked;
	int64_t cl;		/* content_length; 0 in the table means -1 */
	bool has_cl;		/* cl above is meant literally */
};

#define S(s) .in = (s), .len = sizeof(s) - 1
#define OK .rc = 1
#define BAD .rc = WIRE_INVALID

#define H11 " HTTP/1.1\r\n"
#define HOST_A "Host: a.example\r\n"
#define END "\r\n"

#define X8 "X-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\n"
#define X63 X8 X8 X8 X8 X8 X8 X8 "X-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\nX-A: 1\r\n"

#define P16 "/aaaaaaaaaaaaaaa"
#define P256 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16
#define P4096 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256 P256

#define N16 "aaaaaaaaaaaaaaaa"
#define N64 N16 N16 N16 N16
#define N255 N64 N64 N64 N16 N16 N16 "aaaaaaaaaaaaaaa"

static const struct hcase cases[] = {
	/* good */
	{ "simple GET", S("GET /" H11 HOST_A END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "challenge, port, close",
	  S("GET /.well-known/acme-challenge/tok_EN-123?x=1&y" H11
	    "Host: Example.COM:80\r\nUser-Agent: Go-http-client/1.1\r\n"
	    "Accept: */*\r\nConnection: close\r\nAccept-Encoding: gzip\r\n"
	    END), OK,
	  .method = "GET", .path = "/.well-known/acme-challenge/tok_EN-123",
	  .query = "x=1&y", .host = "example.com", .minor = 1, .ka = false },
	{ "absolute-form overrides Host",
	  S("GET http://Example.com:8080/p/a?q=1" H11
	    "Host: other.example\r\n" END), OK,
	  .method = "GET", .path = "/p/a", .query = "q=1",
	  .host = "example.com", .minor = 1, .ka = true },
	{ "absolute-form, empty Host",
	  S("GET http://a.example/" H11 "Host:\r\n" END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "absolute-form https, no path",
	  S("GET HTTPS://a.example" H11 HOST_A END), OK, .method = "GET",
	  .path = "", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "absolute-form query without path",
	  S("GET http://a.example?x" H11 HOST_A END), OK, .method = "GET",
	  .path = "", .query = "x", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "HEAD, lowercase host name",
	  S("HEAD /x" H11 "host: A.Example\r\n" END), OK, .method = "HEAD",
	  .path = "/x", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "HTTP/1.0 keep-alive, no Host",
	  S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .minor = 0, .ka = true },
	{ "HTTP/1.0 default close",
	  S("GET /a?b HTTP/1.0\r\nHost: a.example\r\n" END), OK,
	  .method = "GET", .path = "/a", .query = "b", .host = "a.example",
	  .minor = 0, .ka = false },
	{ "HTTP/1.0 empty Host",
	  S("GET / HTTP/1.0\r\nHost: \r\n" END), OK, .method = "GET",
	  .path = "/", .query = "", .minor = 0, .ka = false },
	{ "pipelined request after the head",
	  S("GET /a" H11 HOST_A END "GET /b" H11 HOST_A END),
	  .head_len = sizeof("GET /a" H11 HOST_A END) - 1, OK,
	  .method = "GET", .path = "/a", .query = "", .host = "a.example",
	  .minor = 1, .ka = true },
	{ "body bytes after the head",
	  S("POST /a" H11 HOST_A "Content-Length: 5\r\n" END "hello"),
	  .head_len = sizeof("POST /a" H11 HOST_A "Content-Length: 5\r\n"
			     END) - 1,
	  OK, .method = "POST", .path = "/a", .query = "",
	  .host = "a.example", .minor = 1, .ka = true, .cl = 5,
	  .has_cl = true },
	{ "IPv6 host with port",
	  S("GET /" H11 "Host: [2001:DB8::1]:80\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .host = "2001:db8::1",
	  .minor = 1, .ka = true },
	{ "IPv6 host, no port", S("GET /" H11 "Host: [::1]\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .host = "::1",
	  .minor = 1, .ka = true },
	{ "IPv4 host with port",
	  S("GET /" H11 "Host: 192.0.2.1:5002\r\n" END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "192.0.2.1", .minor = 1,
	  .ka = true },
	{ "host, port and trailing dot",
	  S("GET /" H11 "Host: Example.COM.:5002\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .host = "example.com",
	  .minor = 1, .ka = true },
	{ "host with underscore and hyphen",
	  S("GET /" H11 "Host: my_host-1.example\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "",
	  .host = "my_host-1.example", .minor = 1, .ka = true },
	{ "host 255 bytes", S("GET /" H11 "Host: " N255 "\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .host = N255,
	  .minor = 1, .ka = true },
	{ "host 255 bytes plus trailing dot",
	  S("GET /" H11 "Host: " N255 ".\r\n" END), OK, .method = "GET",
	  .path = "/", .query = "", .host = N255, .minor = 1, .ka = true },
	{ "bare LF line endings",
	  S("GET / HTTP/1.1\nHost: a.example\n\n"), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "mixed line endings",
	  S("GET / HTTP/1.1\r\nHost: a.example\nX: y\r\n\n"), OK,
	  .method = "GET", .path = "/", .query = "", .host = "a.example",
	  .minor = 1, .ka = true },
	{ "empty lines before the request line",
	  S("\r\n\n\r\nGET /" H11 HOST_A END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "OWS around values",
	  S("GET /" H11 "Host: \t a.example \t\r\nConnection:close \r\n" END),
	  OK, .method = "GET", .path = "/", .query = "", .host = "a.example",
	  .minor = 1, .ka = false },
	{ "repeated equal Content-Length",
	  S("POST /x" H11 HOST_A "Content-Length: 42\r\ncontent-length: 042\r\n"
	    END), OK, .method = "POST", .path = "/x", .query = "",
	  .host = "a.example", .minor = 1, .ka = true, .cl = 42,
	  .has_cl = true },
	{ "Content-Length 0", S("POST /x" H11 HOST_A "Content-Length: 0\r\n"
				END), OK,
	  .method = "POST", .path = "/x", .query = "", .host = "a.example",
	  .minor = 1, .ka = true, .cl = 0, .has_cl = true },
	{ "Content-Length INT64_MAX",
	  S("POST /x" H11 HOST_A "Content-Length: 9223372036854775807\r\n"
	    END), OK, .method = "POST", .path = "/x", .query = "",
	  .host = "a.example", .minor = 1, .ka = true,
	  .cl = INT64_MAX, .has_cl = true },
	{ "Transfer-Encoding gzip, Chunked",
	  S("POST /x" H11 HOST_A "Transfer-Encoding: gzip, Chunked\r\n" END),
	  OK, .method = "POST", .path = "/x", .query = "",
	  .host = "a.example", .minor = 1, .ka = true, .chunked = true },
	{ "Transfer-Encoding over two fields",
	  S("POST /x" H11 HOST_A "Transfer-Encoding: gzip\r\n"
	    "Transfer-Encoding: chunked ; x=1\r\n" END), OK, .method = "POST",
	  .path = "/x", .query = "", .host = "a.example", .minor = 1,
	  .ka = true, .chunked = true },
	{ "Connection list on 1.0",
	  S("GET / HTTP/1.0\r\nConnection: Upgrade, keep-alive\r\n" END), OK,
	  .method = "GET", .path = "/", .query = "", .minor = 0, .ka = true },
	{ "Connection close wins",
	  S("GET /" H11 HOST_A "Connection: foo,,  CLOSE \r\n"
	    "Connection: keep-alive\r\n" END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = false },
	{ "OPTIONS *", S("OPTIONS *" H11 HOST_A END), OK,
	  .method = "OPTIONS", .path = "", .query = "", .host = "a.example",
	  .minor = 1, .ka = true },
	{ "CONNECT authority-form",
	  S("CONNECT a.example:443" H11 HOST_A END), OK, .method = "CONNECT",
	  .path = "", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "empty field value",
	  S("GET /" H11 "X-Empty:\r\n" HOST_A END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "obs-text in target and value",
	  S("GET /caf\xc3\xa9" H11 HOST_A "X: \xff\tz\r\n" END), OK,
	  .method = "GET", .path = "/caf\xc3\xa9", .query = "",
	  .host = "a.example", .minor = 1, .ka = true },
	{ "64 fields", S("GET /" H11 HOST_A X63 END), OK, .method = "GET",
	  .path = "/", .query = "", .host = "a.example", .minor = 1,
	  .ka = true },
	{ "target of 4096 bytes", S("GET " P4096 H11 HOST_A END), OK,
	  .method = "GET", .path = P4096, .query = "", .host = "a.example",
	  .minor = 1, .ka = true },
	{ "odd method token", S("M-SEARCH~! /" H11 HOST_A END), OK,
	  .method = "M-SEARCH~!", .path = "/", .query = "",
	  .host = "a.example", .minor = 1, .ka = true },

	/* incomplete */
	{ "no end of head", S("GET /" H11 HOST_A), .rc = WIRE_PARTIAL },
	{ "head ends in CR", S("GET /" H11 HOST_A "\r"), .rc = WIRE_PARTIAL },
	{ "only empty lines", S("\r\n\r\n"), .rc = WIRE_PARTIAL },

	/* bad */
	{ "two Host fields", S("GET /" H11 HOST_A "Host: b.example\r\n" END),
	  BAD },
	{ "two equal Host fields", S("GET /" H11 HOST_A HOST_A END), BAD },
	{ "Host twice, absolute-form",
	  S("GET http://a.example/" H11 HOST_A HOST_A END), BAD },
	{ "space before colon", S("GET /" H11 "Host : a.example\r\n" END),
	  BAD },
	{ "tab before colon", S("GET /" H11 "Host\t: a.example\r\n" END),
	  BAD },
	{ "obs-fold", S("GET /" H11 HOST_A "X: a\r\n b\r\n" END), BAD },
	{ "tab obs-fold", S("GET /" H11 HOST_A "X: a\r\n\tb\r\n" END), BAD },
	{ "space before first field", S("GET /" H11 " " HOST_A END), BAD },
	{ "bare CR in value", S("GET /" H11 HOST_A "X: a\rb\r\n" END), BAD },
	{ "bare CR line end", S("GET /" H11 "Host: a.example\r\r\n" END),
	  BAD },
	{ "bare CR in request line", S("GET /\r HTTP/1.1\r\n" HOST_A END),
	  BAD },
	{ "CR then junk at head end", S("GET /" H11 HOST_A "\rx"), BAD },
	{ "NUL in value", S("GET /" H11 HOST_A "X: a\0b\r\n" END), BAD },
	{ "DEL in value", S("GET /" H11 HOST_A "X: a\x7f\r\n" END), BAD },
	{ "ESC in value", S("GET /" H11 HOST_A "X: \x1b[0m\r\n" END), BAD },
	{ "HTTP/1.2", S("GET / HTTP/1.2\r\n" HOST_A END), BAD },
	{ "lowercase http/1.1", S("GET / http/1.1\r\n" HOST_A END), BAD },
	{ "HTTP/2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), BAD },
	{ "HTTP/0.9", S("GET /\r\n"), BAD },
	{ "HTTP/1.10", S("GET / HTTP/1.10\r\n" HOST_A END), BAD },
	{ "space after version", S("GET / HTTP/1.1 \r\n" HOST_A END), BAD },
	{ "missing Host in 1.1", S("GET /" H11 "X: y\r\n" END), BAD },
	{ "empty Host in 1.1", S("GET /" H11 "Host:\r\n" END), BAD },
	{ "CL and TE",
	  S("POST /x" H11 HOST_A "Content-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n" END), BAD },
	{ "TE and CL",
	  S("POST /x" H11 HOST_A "Transfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n" END), BAD },
	{ "two different CLs",
	  S("POST /x" H11 HOST_A "Content-Length: 5\r\n"
	    "Content-Length: 6\r\n" END), BAD },
	{ "CL overflow",
	  S("POST /x" H11 HOST_A "Content-Length: 9223372036854775808\r\n"
	    END), BAD },
	{ "CL long overflow",
	  S("POST /x" H11 HOST_A "Content-Length: 99999999999999999999999\r\n"
	    END), BAD },
	{ "CL negative", S("POST /x" H11 HOST_A "Content-Length: -1\r\n" END),
	  BAD },
	{ "CL plus sign", S("POST /x" H11 HOST_A "Content-Length: +1\r\n" END),
	  BAD },
	{ "CL list", S("POST /x" H11 HOST_A "Content-Length: 1, 1\r\n" END),
	  BAD },
	{ "CL empty", S("POST /x" H11 HOST_A "Content-Length:\r\n" END), BAD },
	{ "CL hex", S("POST /x" H11 HOST_A "Content-Length: 0x10\r\n" END),
	  BAD },
	{ "TE in HTTP/1.0",
	  S("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n" END), BAD },
	{ "TE not ending in chunked",
	  S("POST /x" H11 HOST_A "Transfer-Encoding: chunked, gzip\r\n" END),
	  BAD },
	{ "TE empty", S("POST /x" H11 HOST_A "Transfer-Encoding: ,\r\n" END),
	  BAD },
	{ "too many fields", S("GET /" H11 HOST_A X63 "X-B: 2\r\n" END),
	  .rc = WIRE_TOOBIG },
	{ "target of 4097 bytes", S("GET /" P4096 H11 HOST_A END),
	  .rc = WIRE_TOOBIG },
	{ "method with (", S("GE(T /" H11 HOST_A END), BAD },
	{ "method with /", S("GET/ /" H11 HOST_A END), BAD },
	{ "empty method", S(" /" H11 HOST_A END), BAD },
	{ "two spaces after method", S("GET  /" H11 HOST_A END), BAD },
	{ "two spaces after target", S("GET /  HTTP/1.1\r\n" HOST_A END), BAD },
	{ "tab in target", S("GET /a\tb" H11 HOST_A END), BAD },
	{ "DEL in target", S("GET /a\x7f" H11 HOST_A END), BAD },
	{ "Host with space", S("GET /" H11 "Host: a b\r\n" END), BAD },
	{ "Host with slash", S("GET /" H11 "Host: a/b\r\n" END), BAD },
	{ "Host with userinfo", S("GET /" H11 "Host: u@a.example\r\n" END),
	  BAD },
	{ "Host with percent", S("GET /" H11 "Host: a%2eb\r\n" END), BAD },
	{ "Host unclosed bracket", S("GET /" H11 "Host: [::1\r\n" END), BAD },
	{ "Host stray bracket", S("GET /" H11 "Host: ::1]\r\n" END), BAD },
	{ "Host junk after bracket", S("GET /" H11 "Host: [::1]x\r\n" END),
	  BAD },
	{ "Host bracketed name", S("GET /" H11 "Host: [a.example]\r\n" END),
	  BAD },
	{ "Host unbracketed IPv6", S("GET /" H11 "Host: 2001:db8::1\r\n" END),
	  BAD },
	{ "Host port not numeric", S("GET /" H11 "Host: a:http\r\n" END), BAD },
	{ "Host port 65536", S("GET /" H11 "Host: a:65536\r\n" END), BAD },
	{ "Host port 6 digits", S("GET /" H11 "Host: a:000080\r\n" END), BAD },
	{ "Host only port", S("GET /" H11 "Host: :80\r\n" END), BAD },
	{ "Host only dot", S("GET /" H11 "Host: .\r\n" END), BAD },
	{ "Host 256 bytes", S("GET /" H11 "Host: " N255 "a\r\n" END), BAD },
	{ "absolute-form userinfo",
	  S("GET http://u:p@a.example/" H11 HOST_A END), BAD },
	{ "absolute-form empty authority", S("GET http:///x" H11 HOST_A END),
	  BAD },
	{ "absolute-form bad host", S("GET http://a!b/" H11 HOST_A END), BAD },
	{ "absolute-form still needs Host in 1.1",
	  S("GET http://a.example/" H11 END), BAD },
	{ "empty field name", S("GET /" H11 HOST_A ": x\r\n" END), BAD },
	{ "field without colon", S("GET /" H11 HOST_A "X-A 1\r\n" END), BAD },
	{ "field name with (", S("GET /" H11 HOST_A "X(y): 1\r\n" END), BAD },
	{ "field name non-ASCII", S("GET /" H11 HOST_A "X\xc3\xa9: 1\r\n" END),
	  BAD },
	{ "TLS record", S("\x16\x03\x01\x00\xdc\x01"), BAD },
	{ "PROXY header", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), BAD },
};

static int parse(const void *arg, const uint8_t *in, size_t len, void *out)
{
	return http_head_parse(in, len, out);
}

static bool slice_is(struct slice s, const char *want)
{
	return want && s.len == strlen(want) &&
	       memcmp(s.ptr, want, s.len) == 0;
}

static bool inside(struct slice s, const uint8_t *base, size_t len)
{
	const char *b = (const char *)base;

	return s.ptr >= b && s.ptr + s.len <= b + len;
}

/* Called right after a successful parse, while base is still the input. */
static void check_fields(const void *arg, enum feed_mode m, int rc,
			 const void *out, const uint8_t *base, size_t len)
{
	const struct hcase *c = arg;
	const struct http_head *h = out;
	const char *mode = feed_mode_name(m);
	int64_t cl = c->has_cl ? c->cl : -1;

	/* Tying head_len to rc once, on the whole input, is enough. */
	if (m == FEED_WHOLE)
		CHECKF(h->head_len == (size_t)rc, "%s: head_len", c->name);
	CHECKF(slice_is(h->method, c->method) && slice_is(h->path, c->path) &&
	       slice_is(h->query, c->query), "%s/%s: method/path/query "
	       "'%.*s' '%.*s' '%.*s'", c->name, mode, (int)h->method.len,
	       h->method.ptr, (int)h->path.len, h->path.ptr,
	       (int)h->query.len, h->query.ptr);
	CHECKF(inside(h->method, base, len) && inside(h->target, base, len) &&
	       inside(h->path, base, len) && inside(h->query, base, len),
	       "%s/%s: slices outside input", c->name, mode);
	if (c->host)
		CHECKF(h->has_host && h->host_len == strlen(c->host) &&
		       strcmp(h->host, c->host) == 0,
		       "%s/%s: host '%s'", c->name, mode, h->host);
	else
		CHECKF(!h->has_host && h->host_len == 0 && h->host[0] == '\0',
		       "%s/%s: unexpected host '%s'", c->name, mode, h->host);
	CHECKF(h->minor_version == c->minor && h->keep_alive == c->ka &&
	       h->chunked == c->chunked && h->content_length == cl,
	       "%s/%s: minor %d ka %d chunked %d cl %lld", c->name, mode,
	       h->minor_version, h->keep_alive, h->chunked,
	       (long long)h->content_length);
}

static void run(const struct hcase *c)
{
	static const struct feed_ops ops = { parse, check_fields };
	struct http_head h;

	feed_run(c->name, c->in, c->len, feed_want(c->rc, c->head_len, c->len),
		 &ops, c, &h);
}

/*
 * Field values are judged eight bytes at a time: every byte value at every
 * offset of a value long enough to span several words (and at its very
 * end, where the last word is partial) must be judged as a byte-at-a-time
 * walk would, with a tab (allowed, yet below 0x20) before it or not.
 */
static void long_values(void)
{
	static const char pre[] = "GET /" H11 HOST_A "X-Fill: ";
	char in[sizeof(pre) + 64];
	size_t n_cases = 0;

	for (unsigned byte = 0; byte < 256; byte++) {
		if (byte == '\r' || byte == '\n')
			continue;	/* they end the value: the table's cases */
		for (size_t at = 0; at < 24; at++) {
			for (int tab = 0; tab < 2; tab++) {
				bool stops = (byte < ' ' && byte != '\t') ||
					     byte == 0x7f;
				struct hcase c = {
					.name = "long value", .in = in,
					.rc = stops ? WIRE_INVALID : 1,
					.method = "GET", .path = "/", .query = "",
					.host = "a.example", .minor = 1, .ka = true,
				};
				size_t n = sizeof(pre) - 1;

				memcpy(in, pre, n);
				memset(in + n, 'v', 24);
				if (tab)
					in[n + at / 2] = '\t';
				in[n + at] = (char)byte;
				/* 'v' then: a value never ends in blanks it keeps. */
				memcpy(in + n + 24, "v\r\n\r\n", 5);
				c.len = n + 29;
				run(&c);
				n_cases++;
			}
		}
	}
	printf("%zu long-value cases\n", n_cases);
}

int main(void)
{
	size_t i, n_bad = 0;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		run(&cases[i]);
		if (cases[i].rc == WIRE_INVALID || cases[i].rc == WIRE_TOOBIG)
			n_bad++;
	}
	printf("%zu cases (%zu bad)\n", ARRAY_SIZE(cases), n_bad);
	long_values();
	return check_done();
}
