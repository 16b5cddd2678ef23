/*
 * HTTP/1.x request head parsing (RFC 9112 §2-§3, §5-§6; RFC 9110 §5, §7.2,
 * §8.6): request line, header fields, and the few fields the proxy acts on
 * (Host, Connection, Content-Length, Transfer-Encoding). Pure: no
 * allocation, no I/O.
 */
#ifndef EDGE_HTTP_HEAD_H
#define EDGE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/edge.h"
#include "wire/wire.h"

#define HTTP_HEAD_MAX_HEADERS 64
#define HTTP_HEAD_MAX_TARGET 4096
#define HTTP_HOST_MAX 255	/* normalised host, without NUL */

/*
 * A parsed head. Slices point into the caller's buffer. path and query come
 * from origin-form ("/p?q") and absolute-form ("http://h/p?q"); they are
 * empty for "*", authority-form, other schemes, and for "http://h" without
 * a path (which means "/"). query excludes the '?'.
 */
struct http_head {
	struct slice method;		/* token, case-sensitive */
	struct slice target;		/* request-target as sent */
	struct slice path;
	struct slice query;
	int minor_version;		/* 0 or 1 */
	char host[HTTP_HOST_MAX + 1];	/* normalised, NUL-terminated */
	size_t host_len;
	bool has_host;			/* from absolute-form or Host */
	bool absolute_form;		/* target was http:// or https:// */
	bool keep_alive;		/* version default + Connection */
	bool chunked;			/* Transfer-Encoding ends in chunked */
	int64_t content_length;		/* -1 when absent */
	unsigned int n_headers;		/* field lines, at most 64 */
	size_t head_len;		/* up to and including the empty line */
};

/*
 * Parses the request head at the start of buf (len bytes, below INT_MAX;
 * the caller caps len, e.g. 8 KiB, and answers 431 when its cap is reached
 * while this still returns WIRE_PARTIAL). Lines end in CRLF or a bare LF;
 * empty lines before the request line are skipped (RFC 9112 §2.2). Slices
 * in *out point into buf; buf is never written.
 *
 * Returns
 *   > 0           head_len: bytes up to and including the empty line that
 *                 ends the head (pipelined bytes after it are not touched);
 *   WIRE_PARTIAL  no end of head yet, and nothing wrong so far;
 *   WIRE_TOOBIG   more than HTTP_HEAD_MAX_HEADERS fields, or a request
 *                 target longer than HTTP_HEAD_MAX_TARGET (414/431);
 *   WIRE_INVALID  malformed (answer 400): bad request line or version
 *                 other than HTTP/1.0 or HTTP/1.1, whitespace before ':',
 *                 obs-fold, a bare CR, a CTL in a value, several or a bad
 *                 Host, no Host in HTTP/1.1, a bad or conflicting
 *                 Content-Length, Transfer-Encoding with Content-Length, in
 *                 HTTP/1.0, or not ending in "chunked".
 * *out is written only on success.
 */
int http_head_parse(const uint8_t *buf, size_t len, struct http_head *out);

#endif
