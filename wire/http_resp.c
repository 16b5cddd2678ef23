/*
 * HTTP/1.x response parser for the client side (http_resp.h).
 *
 * Stateless like the request parser: each call rescans from the start,
 * and the head is judged line by line, each line only once it is complete,
 * so a decided result depends only on bytes every longer input shares.
 * Lenient where a validator's HTTP client is (a missing reason phrase, a
 * bare LF, unknown fields), strict where two readings are possible
 * (obs-fold, a bare CR, whitespace before ':', conflicting lengths).
 */
#include "wire/http_resp.h"

#include <string.h>

#include "wire/http_chars.h"

/* Whether p[0..n) is lit (lowercase), ignoring ASCII case. */
static bool same_word(const uint8_t *p, size_t n, const char *lit)
{
	size_t i;

	if (n != strlen(lit))
		return false;
	for (i = 0; i < n && ascii_lower(p[i]) == (uint8_t)lit[i]; i++)
		;
	return i == n;
}

/* "HTTP/1.x NNN[ reason]" in p[0..n). */
static int status_line(const uint8_t *p, size_t n, struct http_resp *r)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !http_digit(p[7]) ||
	    p[8] != ' ' || !http_digit(p[9]) || !http_digit(p[10]) ||
	    !http_digit(p[11]) || (n > 12 && p[12] != ' '))
		return WIRE_INVALID;
	r->minor_version = p[7] - '0';
	if (r->minor_version > 1)
		return WIRE_INVALID;
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (r->status < 100)
		return WIRE_INVALID;
	r->reason.ptr = (const char *)p + (n > 12 ? 13 : 12);
	r->reason.len = n > 12 ? n - 13 : 0;
	return 0;
}

/* Content-Length: digits only; every field must agree. */
static int content_length(const uint8_t *v, size_t n, struct http_resp *r)
{
	int64_t x = 0;

	if (n == 0 || n > 18)
		return WIRE_INVALID;
	for (size_t i = 0; i < n; i++) {
		if (!http_digit(v[i]))
			return WIRE_INVALID;
		x = x * 10 + (v[i] - '0');
	}
	if (r->content_length >= 0 && r->content_length != x)
		return WIRE_INVALID;
	r->content_length = x;
	return 0;
}

/* Whether the last token of a Transfer-Encoding list is "chunked". */
static bool ends_chunked(const uint8_t *v, size_t n)
{
	size_t start = n;

	while (start > 0 && v[start - 1] != ',')
		start--;
	while (start < n && http_ows(v[start]))
		start++;
	return same_word(v + start, n - start, "chunked");
}

/* "name: value" in p[0..n), no CR or LF in it. */
static int field_line(const uint8_t *p, size_t n, struct http_resp *r)
{
	size_t colon = 0, vs, ve;

	while (colon < n && http_tchar(p[colon]))
		colon++;
	if (colon == 0 || colon == n || p[colon] != ':')
		return WIRE_INVALID;
	vs = colon + 1;
	ve = n;
	while (vs < ve && http_ows(p[vs]))
		vs++;
	while (ve > vs && http_ows(p[ve - 1]))
		ve--;
	for (size_t i = vs; i < ve; i++)
		if (http_value_stops(p[i]))
			return WIRE_INVALID;
	struct slice v = {(const char *)p + vs, ve - vs};
	if (same_word(p, colon, "server") && !r->server.ptr)
		r->server = v;
	else if (same_word(p, colon, "location") && !r->location.ptr)
		r->location = v;
	else if (same_word(p, colon, "transfer-encoding"))
		r->chunked = ends_chunked(p + vs, ve - vs);
	else if (same_word(p, colon, "content-length"))
		return content_length(p + vs, ve - vs, r);
	return 0;
}

int http_resp_parse(const uint8_t *buf, size_t len, struct http_resp *out)
{
	size_t lim = len < HTTP_RESP_HEAD_MAX ? len : HTTP_RESP_HEAD_MAX;
	struct http_resp r = {.content_length = -1};
	size_t pos = 0;
	int rc;

	if (memcmp(buf, "HTTP/1.", lim < 7 ? lim : 7) != 0)
		return WIRE_INVALID;
	for (;;) {
		const uint8_t *nl = memchr(buf + pos, '\n', lim - pos);
		size_t end, lend;

		if (!nl)
			return lim == HTTP_RESP_HEAD_MAX ? WIRE_TOOBIG : WIRE_PARTIAL;
		end = (size_t)(nl - buf);
		lend = end > pos && buf[end - 1] == '\r' ? end - 1 : end;
		if (memchr(buf + pos, '\r', lend - pos))
			return WIRE_INVALID;
		if (pos == 0) {
			rc = status_line(buf, lend, &r);
		} else if (lend == pos) {
			if (r.chunked)
				r.content_length = -1;
			r.head_len = end + 1;
			*out = r;
			return (int)r.head_len;
		} else if (++r.n_fields > HTTP_RESP_MAX_FIELDS) {
			rc = WIRE_TOOBIG;
		} else {
			rc = field_line(buf + pos, lend - pos, &r);
		}
		if (rc)
			return rc;
		pos = end + 1;
	}
}

/* More bytes are needed, and the peer may still send them. */
#define MORE(eof) ((eof) ? WIRE_INVALID : WIRE_PARTIAL)

/* The end of the line starting at *pos, moved past its LF; false if none. */
static bool skip_line(const uint8_t *b, size_t len, size_t *pos, size_t *line_len)
{
	const uint8_t *nl = memchr(b + *pos, '\n', len - *pos);

	if (!nl)
		return false;
	*line_len = (size_t)(nl - (b + *pos));
	*pos = (size_t)(nl - b) + 1;
	return true;
}

static int dechunk(const uint8_t *b, size_t len, bool eof, uint8_t *out,
		   size_t cap, size_t *out_len)
{
	size_t pos = 0, n = 0, line;

	for (;;) {
		uint64_t size = 0;
		int digits = 0, d;

		while (pos < len && (d = hex_digit(b[pos])) >= 0) {
			if (++digits > 8)
				return WIRE_INVALID;
			size = size * 16 + (uint64_t)d;
			pos++;
		}
		if (pos == len)
			return MORE(eof);
		if (digits == 0)
			return WIRE_INVALID;
		/* Chunk extensions are skipped to the end of the line. */
		if (!skip_line(b, len, &pos, &line))
			return MORE(eof);
		if (size == 0)
			break;
		if (size > cap - n)
			return WIRE_TOOBIG;
		if (len - pos < size)
			return MORE(eof);
		memcpy(out + n, b + pos, size);
		n += size;
		pos += size;
		if (pos < len && b[pos] == '\r')
			pos++;
		if (pos == len)
			return MORE(eof);
		if (b[pos++] != '\n')
			return WIRE_INVALID;
	}
	/* Trailer fields, up to an empty line. */
	for (;;) {
		size_t start = pos;

		if (!skip_line(b, len, &pos, &line))
			return MORE(eof);
		if (line == 0 || (line == 1 && b[start] == '\r'))
			break;
	}
	*out_len = n;
	return 1;
}

int http_resp_body(const struct http_resp *h, const uint8_t *body, size_t len,
		   bool eof, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t n;

	/* RFC 9112 §6.3: these never have a body, whatever the fields say. */
	if (h->status < 200 || h->status == 204 || h->status == 304) {
		*out_len = 0;
		return 1;
	}
	if (h->chunked)
		return dechunk(body, len, eof, out, cap, out_len);
	if (h->content_length >= 0) {
		if ((uint64_t)h->content_length > cap)
			return WIRE_TOOBIG;
		n = (size_t)h->content_length;
		if (len < n)
			return MORE(eof);
	} else {
		if (len > cap)
			return WIRE_TOOBIG;
		if (!eof)
			return WIRE_PARTIAL;
		n = len;
	}
	memcpy(out, body, n);
	*out_len = n;
	return 1;
}

/* ---- Location ---------------------------------------------------------- */

static bool host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       http_digit(c) || c == '-' || c == '.' || c == '_';
}

/* Copies s[0..n) into dst (room for cap bytes and a NUL), cut if longer. */
static void put_cut(char *dst, size_t cap, const char *s, size_t n)
{
	if (n > cap)
		n = cap;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* "host[:port]" or "[v6][:port]" in a[0..n) into u. */
static int authority(const char *a, size_t n, struct http_url *u)
{
	size_t hs = 0, he, i;
	unsigned port = 0;

	if (memchr(a, '@', n))
		return WIRE_INVALID;
	if (n && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (!close)
			return WIRE_INVALID;
		hs = 1;
		he = (size_t)(close - a);
		for (i = hs; i < he; i++)
			if (hex_digit((uint8_t)a[i]) < 0 && a[i] != ':' && a[i] != '.')
				return WIRE_INVALID;
		i = he + 1;
	} else {
		for (he = 0; he < n && host_char((uint8_t)a[he]); he++)
			;
		i = he;
	}
	if (he == hs)
		return WIRE_INVALID;
	if (he - hs > HTTP_URL_HOST_MAX)
		return WIRE_TOOBIG;
	for (size_t k = hs; k < he; k++)
		u->host[k - hs] = (char)ascii_lower((uint8_t)a[k]);
	u->host[he - hs] = '\0';
	u->port_given = false;
	u->port = u->https ? 443 : 80;
	if (i == n)
		return 0;
	if (a[i++] != ':')
		return WIRE_INVALID;
	if (i == n)		/* "host:" means the default port */
		return 0;
	if (n - i > 5)
		return WIRE_INVALID;
	for (; i < n; i++) {
		if (!http_digit((uint8_t)a[i]))
			return WIRE_INVALID;
		port = port * 10 + (unsigned)(a[i] - '0');
	}
	if (port == 0 || port > 65535)
		return WIRE_INVALID;
	u->port = (uint16_t)port;
	u->port_given = true;
	return 0;
}

/* Appends s[0..n) to u->path. */
static int path_add(struct http_url *u, const char *s, size_t n)
{
	size_t have = strlen(u->path);

	if (n > HTTP_URL_PATH_MAX - have)
		return WIRE_TOOBIG;
	memcpy(u->path + have, s, n);
	u->path[have + n] = '\0';
	return 0;
}

int http_url_resolve(const char *loc, size_t len, const struct http_url *base,
		     struct http_url *out)
{
	const char *hash = memchr(loc, '#', len);
	size_t s = 0, i;
	int rc;

	for (i = 0; i < len; i++)
		if ((uint8_t)loc[i] <= 0x20 || (uint8_t)loc[i] >= 0x7f)
			return WIRE_INVALID;
	if (hash)
		len = (size_t)(hash - loc);
	*out = *base;
	while (s < len && (host_char((uint8_t)loc[s]) || loc[s] == '+') &&
	       loc[s] != '_')
		s++;
	if (s > 0 && s < len && loc[s] == ':' &&
	    ((loc[0] | 0x20) >= 'a' && (loc[0] | 0x20) <= 'z')) {
		/* An absolute URL: "scheme://authority/path". */
		if (same_word((const uint8_t *)loc, s, "https")) {
			out->https = true;
		} else if (same_word((const uint8_t *)loc, s, "http")) {
			out->https = false;
		} else {
			put_cut(out->path, HTTP_URL_PATH_MAX, loc, s);
			return HTTP_URL_SCHEME;
		}
		loc += s + 1;
		len -= s + 1;
		if (len < 2 || loc[0] != '/' || loc[1] != '/')
			return WIRE_INVALID;
	}
	if (len >= 2 && loc[0] == '/' && loc[1] == '/') {
		loc += 2;
		len -= 2;
		for (i = 0; i < len && loc[i] != '/' && loc[i] != '?'; i++)
			;
		if ((rc = authority(loc, i, out)) != 0)
			return rc;
		loc += i;
		len -= i;
		out->path[0] = '\0';
		if (len == 0 || loc[0] == '?')
			path_add(out, "/", 1);
		return path_add(out, loc, len);
	}
	if (len && loc[0] == '/') {
		out->path[0] = '\0';
		return path_add(out, loc, len);
	}
	/* Relative to the base: its path up to the query or last '/'. */
	{
		size_t keep = strcspn(out->path, "?");
		if (len && loc[0] != '?')
			while (keep > 0 && out->path[keep - 1] != '/')
				keep--;
		if (len == 0)
			keep = strlen(out->path);
		out->path[keep] = '\0';
		if (!out->path[0])
			path_add(out, "/", 1);
	}
	return path_add(out, loc, len);
}
