/*
 * HTTP/1.x responses as a client reads them (RFC 9112 §4, §6-§7; RFC 9110
 * §10.2.2): the status line and header fields of a response, its body
 * (Content-Length, chunked, or up to the end of the connection), and a
 * Location value resolved against the URL that was asked for. What
 * `acme-edge selftest` uses to read what a CA's validator would read. Pure:
 * no allocation, no I/O.
 */
#ifndef EDGE_HTTP_RESP_H
#define EDGE_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/edge.h"
#include "wire/wire.h"

#define HTTP_RESP_HEAD_MAX 16384	/* bytes up to the empty line */
#define HTTP_RESP_MAX_FIELDS 100

/* A parsed head; slices point into the caller's buffer, values trimmed. */
struct http_resp {
	int status;			/* 100..999 */
	int minor_version;		/* 0 or 1 */
	struct slice reason;
	struct slice server;		/* the first Server field; len 0 if none */
	struct slice location;		/* the first Location field */
	int64_t content_length;		/* -1 when absent */
	bool chunked;			/* Transfer-Encoding ends in chunked */
	unsigned n_fields;
	size_t head_len;		/* up to and including the empty line */
};

/*
 * Parses the response head at the start of buf (len bytes). Lines end in
 * CRLF or a bare LF. Follows wire/wire.h's contract. Returns
 *   > 0           head_len;
 *   WIRE_PARTIAL  no end of head yet, nothing wrong so far;
 *   WIRE_TOOBIG   no end of head in the first HTTP_RESP_HEAD_MAX bytes, or
 *                 more than HTTP_RESP_MAX_FIELDS fields;
 *   WIRE_INVALID  not "HTTP/1.x NNN", a field line without a name and ':',
 *                 obs-fold, a bare CR, a bad or conflicting Content-Length.
 * *out is written only on success.
 */
int http_resp_parse(const uint8_t *buf, size_t len, struct http_resp *out);

/*
 * Decodes the body of the response whose head is h, from the bytes that
 * followed the head (body, len: all received so far; eof: whether the
 * peer closed). The payload goes to out (cap bytes), its length to
 * *out_len. Returns 1 when the body is complete; WIRE_PARTIAL when more
 * bytes are needed; WIRE_TOOBIG when the payload exceeds cap; WIRE_INVALID
 * for malformed chunked framing or a connection closed before the body
 * ended. A body without Content-Length or chunked framing ends at eof.
 */
int http_resp_body(const struct http_resp *h, const uint8_t *body, size_t len,
		   bool eof, uint8_t *out, size_t cap, size_t *out_len);

#define HTTP_URL_HOST_MAX 255
#define HTTP_URL_PATH_MAX 2047

/* An http or https URL, split. */
struct http_url {
	bool https;
	bool port_given;		/* the URL named a port */
	uint16_t port;			/* the one named, else 80 or 443 */
	char host[HTTP_URL_HOST_MAX + 1];	/* lowercase; IPv6 without brackets */
	char path[HTTP_URL_PATH_MAX + 1];	/* path and query, from '/' */
};

#define HTTP_URL_SCHEME -5		/* a scheme other than http(s) */

/*
 * Resolves a Location value (len bytes, not NUL-terminated) against base,
 * the URL that was asked for (RFC 3986 §5.2, without dot-segment removal;
 * the fragment is dropped). Returns 0; HTTP_URL_SCHEME with out->path
 * holding the scheme; WIRE_INVALID for userinfo, an empty or malformed
 * host or port, or a byte outside printable ASCII; WIRE_TOOBIG for a host
 * or path over the limits.
 */
int http_url_resolve(const char *loc, size_t len, const struct http_url *base,
		     struct http_url *out);

#endif
