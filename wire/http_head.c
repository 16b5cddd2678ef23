/*
 * HTTP/1.x request head parser.
 *
 * Like the other wire parsers it is stateless and rescans buf from the
 * start on every call (heads are capped at a few KiB by the caller). It is a
 * single forward pass: each byte is judged as soon as it is seen, so a
 * malformed request is refused at its first bad byte instead of after the
 * caller's timeout, and a decided result never changes when more bytes
 * arrive. Field semantics (Host, Content-Length, ...) are applied when the
 * field's line is complete; the checks that need the whole head (Host
 * present in HTTP/1.1, Transfer-Encoding vs Content-Length) when the empty
 * line is seen.
 *
 * Strictness is deliberate: this head decides which upstream gets the
 * bytes and whether we answer an ACME challenge, and the same bytes are then
 * replayed to an upstream that may parse them differently. Anything two
 * parsers could read two ways (obs-fold, bare CR, whitespace before ':',
 * duplicate Host, CL with TE) is refused rather than interpreted.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "wire/http_chars.h"
#include "wire/http_head.h"

struct cur {
	const uint8_t *b;
	size_t len;
	size_t pos;
};

/* What the fields said, gathered while walking them. */
struct fields {
	bool host_seen;
	bool host_empty;
	char host[HTTP_HOST_MAX + 1];
	size_t host_len;
	bool conn_close;
	bool conn_keep_alive;
	bool te_seen;
	bool te_chunked_last;
	int64_t content_length;
};

static bool is_hex(uint8_t c)
{
	return hex_digit(c) >= 0;
}

/* Case-insensitive compare of peer bytes with a lowercase literal. */
static bool ieq(const uint8_t *p, size_t n, const char *lit, size_t lit_len)
{
	size_t i;

	if (n != lit_len)
		return false;
	for (i = 0; i < n; i++) {
		if (ascii_lower(p[i]) != (uint8_t)lit[i])
			return false;
	}
	return true;
}

#define IEQ(p, n, lit) ieq((p), (n), lit, sizeof(lit) - 1)

static struct slice mk_slice(const uint8_t *p, size_t n)
{
	return (struct slice){ .ptr = (const char *)p, .len = n };
}

/*
 * Consumes a line end: CRLF or a bare LF. A CR followed by anything else
 * is a bare CR, which some parsers take as a line end and others do not.
 */
static int eat_eol(struct cur *c)
{
	if (c->pos == c->len)
		return WIRE_PARTIAL;
	if (c->b[c->pos] == '\n') {
		c->pos++;
		return 0;
	}
	if (c->b[c->pos] != '\r')
		return WIRE_INVALID;
	if (c->pos + 1 == c->len)
		return WIRE_PARTIAL;
	if (c->b[c->pos + 1] != '\n')
		return WIRE_INVALID;
	c->pos += 2;
	return 0;
}

/*
 * Normalises a Host value or an absolute-form authority into out (NUL
 * terminated): lowercase, port and IPv6 brackets removed, one trailing dot
 * removed from a name. Accepts reg-names of [a-z0-9._-], bracketed IPv6
 * literals of [0-9a-f:.], and an optional ":port" of at most 5 digits
 * (<= 65535; empty allowed, RFC 3986 port = *DIGIT). An empty input gives
 * an empty host; anything else that leaves no host is refused.
 */
static int host_norm(const uint8_t *p, size_t n, char *out, size_t *out_len)
{
	size_t i = 0, h = 0, port_start;
	uint32_t port = 0;

	if (n == 0) {
		out[0] = '\0';
		*out_len = 0;
		return 0;
	}
	if (p[0] == '[') {
		bool colon = false;

		for (i = 1; i < n && p[i] != ']'; i++) {
			if (!is_hex(p[i]) && p[i] != ':' && p[i] != '.')
				return WIRE_INVALID;
			if (p[i] == ':')
				colon = true;
			if (h == HTTP_HOST_MAX)
				return WIRE_INVALID;
			out[h++] = (char)ascii_lower(p[i]);
		}
		if (i == n || !colon)
			return WIRE_INVALID;	/* no ']', or not IPv6 */
		i++;
	} else {
		for (; i < n && p[i] != ':'; i++) {
			uint8_t ch = ascii_lower(p[i]);

			if (!((ch >= 'a' && ch <= 'z') || http_digit(ch) ||
			      ch == '.' || ch == '-' || ch == '_'))
				return WIRE_INVALID;
			if (h == HTTP_HOST_MAX + 1)
				return WIRE_INVALID;
			out[h++] = (char)ch;
		}
		/* One trailing dot: "example.com." is "example.com". */
		if (h > 0 && out[h - 1] == '.')
			h--;
		if (h > HTTP_HOST_MAX)
			return WIRE_INVALID;
	}
	if (h == 0)
		return WIRE_INVALID;
	if (i < n) {
		if (p[i] != ':')
			return WIRE_INVALID;	/* e.g. "[::1]x" */
		port_start = ++i;
		for (; i < n; i++) {
			if (!http_digit(p[i]) || i - port_start >= 5)
				return WIRE_INVALID;
			port = port * 10 + (uint32_t)(p[i] - '0');
		}
		if (port > 65535)
			return WIRE_INVALID;
	}
	out[h] = '\0';
	*out_len = h;
	return 0;
}

/*
 * Classifies the request-target (RFC 9112 §3.2). origin-form and
 * absolute-form give path and query; absolute-form ("http://" or
 * "https://", any case) also gives the host, which overrides the Host field
 * (§3.2.2). Userinfo in the authority is refused (RFC 9110 §4.2.4). "*",
 * authority-form and other schemes are let through with an empty path:
 * they are never challenge requests and the upstream judges them.
 */
static int parse_target(const uint8_t *t, size_t n, struct http_head *h)
{
	size_t i = 0, a, q;

	h->path = mk_slice(t, 0);
	h->query = mk_slice(t, 0);
	if (n >= 7 && IEQ(t, 7, "http://"))
		i = 7;
	else if (n >= 8 && IEQ(t, 8, "https://"))
		i = 8;
	if (i) {
		a = i;
		while (i < n && t[i] != '/' && t[i] != '?') {
			if (t[i] == '@')
				return WIRE_INVALID;
			i++;
		}
		if (host_norm(t + a, i - a, h->host, &h->host_len) < 0 ||
		    h->host_len == 0)
			return WIRE_INVALID;
		h->has_host = true;
		h->absolute_form = true;
	} else if (t[0] != '/') {
		return 0;
	}
	for (q = i; q < n && t[q] != '?'; q++)
		;
	h->path = mk_slice(t + i, q - i);
	if (q < n)
		h->query = mk_slice(t + q + 1, n - q - 1);
	return 0;
}

static int parse_request_line(struct cur *c, struct http_head *h)
{
	static const char version[] = "HTTP/1.";
	size_t start, i;
	int rc;

	/* RFC 9112 §2.2: empty lines before the request line are ignored. */
	for (;;) {
		if (c->pos == c->len)
			return WIRE_PARTIAL;
		if (c->b[c->pos] != '\r' && c->b[c->pos] != '\n')
			break;
		rc = eat_eol(c);
		if (rc < 0)
			return rc;
	}

	start = c->pos;
	while (c->pos < c->len && http_tchar(c->b[c->pos]))
		c->pos++;
	if (c->pos == c->len)
		return WIRE_PARTIAL;
	if (c->pos == start || c->b[c->pos] != ' ')
		return WIRE_INVALID;
	h->method = mk_slice(c->b + start, c->pos - start);
	c->pos++;

	/* Any visible byte, obs-text included; no CTL, no space. */
	start = c->pos;
	while (c->pos < c->len && c->b[c->pos] > ' ' && c->b[c->pos] != 0x7f) {
		c->pos++;
		if (c->pos - start > HTTP_HEAD_MAX_TARGET)
			return WIRE_TOOBIG;
	}
	if (c->pos == c->len)
		return WIRE_PARTIAL;
	if (c->pos == start || c->b[c->pos] != ' ')
		return WIRE_INVALID;
	h->target = mk_slice(c->b + start, c->pos - start);
	c->pos++;

	/* Exactly "HTTP/1.0" or "HTTP/1.1": refuses "PRI * HTTP/2.0" too. */
	for (i = 0; i < sizeof(version) - 1; i++, c->pos++) {
		if (c->pos == c->len)
			return WIRE_PARTIAL;
		if (c->b[c->pos] != (uint8_t)version[i])
			return WIRE_INVALID;
	}
	if (c->pos == c->len)
		return WIRE_PARTIAL;
	if (c->b[c->pos] != '0' && c->b[c->pos] != '1')
		return WIRE_INVALID;
	h->minor_version = c->b[c->pos] - '0';
	c->pos++;
	return eat_eol(c);
}

/* Connection (RFC 9110 §7.6.1): a comma list of case-insensitive tokens. */
static void on_connection(const uint8_t *v, size_t n, struct fields *f)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (http_ows(v[i]) || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && http_ows(v[e - 1]))
			e--;
		if (IEQ(v + s, e - s, "close"))
			f->conn_close = true;
		else if (IEQ(v + s, e - s, "keep-alive"))
			f->conn_keep_alive = true;
	}
}

/*
 * Content-Length (RFC 9110 §8.6): digits only. Repeated fields must agree;
 * a list ("5, 5") is refused rather than reconciled.
 */
static int on_content_length(const uint8_t *v, size_t n, struct fields *f)
{
	int64_t cl = 0;
	size_t i;

	if (n == 0)
		return WIRE_INVALID;
	for (i = 0; i < n; i++) {
		if (!http_digit(v[i]))
			return WIRE_INVALID;
		if (cl > (INT64_MAX - (v[i] - '0')) / 10)
			return WIRE_INVALID;
		cl = cl * 10 + (v[i] - '0');
	}
	if (f->content_length >= 0 && f->content_length != cl)
		return WIRE_INVALID;
	f->content_length = cl;
	return 0;
}

/*
 * Transfer-Encoding: remembers whether the last coding (parameters
 * stripped) is "chunked". Repeated fields form one list, so the last field
 * decides. A field with no coding at all is refused.
 */
static int on_transfer_encoding(const uint8_t *v, size_t n, struct fields *f)
{
	bool any = false, chunked = false;
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (http_ows(v[i]) || v[i] == ','))
			i++;
		if (i == n)
			break;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		for (e = s; e < i && v[e] != ';'; e++)
			;
		while (e > s && http_ows(v[e - 1]))
			e--;
		any = true;
		chunked = IEQ(v + s, e - s, "chunked");
	}
	if (!any)
		return WIRE_INVALID;
	f->te_seen = true;
	f->te_chunked_last = chunked;
	return 0;
}

static int on_field(const uint8_t *name, size_t nlen, const uint8_t *v,
		    size_t vlen, struct fields *f)
{
	if (IEQ(name, nlen, "host")) {
		/* Two Hosts could route one way here, another upstream. */
		if (f->host_seen)
			return WIRE_INVALID;
		f->host_seen = true;
		if (host_norm(v, vlen, f->host, &f->host_len) < 0)
			return WIRE_INVALID;
		f->host_empty = f->host_len == 0;
		return 0;
	}
	if (IEQ(name, nlen, "connection")) {
		on_connection(v, vlen, f);
		return 0;
	}
	if (IEQ(name, nlen, "content-length"))
		return on_content_length(v, vlen, f);
	if (IEQ(name, nlen, "transfer-encoding"))
		return on_transfer_encoding(v, vlen, f);
	return 0;
}

/*
 * Where the field value from pos on stops: at its first byte http_value_stops()
 * takes, or at len. A field value is most of a large head, and the caller
 * parses a head again as more of it arrives, so eight bytes are judged at
 * once while none of them is below 0x20 or 0x7f (exact tests for "some byte
 * is", with no false negatives); a word that may hold one, HTAB included,
 * is walked byte by byte.
 */
static size_t value_stop(const uint8_t *b, size_t pos, size_t len)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = UINT64_C(0x8080808080808080);

	for (;;) {
		size_t word_end;

		while (len - pos >= 8) {
			uint64_t x, del;

			memcpy(&x, b + pos, 8);
			del = x ^ (ones * 0x7f);
			if (((x - ones * 0x20) & ~x & highs) |
			    ((del - ones) & ~del & highs))
				break;
			pos += 8;
		}
		word_end = len - pos >= 8 ? pos + 8 : len;
		for (; pos < word_end; pos++)
			if (http_value_stops(b[pos]))
				return pos;
		if (pos == len)
			return pos;
	}
}

/* One field line, the cursor at its first byte (not CR, LF, SP or HTAB). */
static int parse_field(struct cur *c, struct fields *f)
{
	size_t ns, ne, vs, ve;
	int rc;

	ns = c->pos;
	while (c->pos < c->len && http_tchar(c->b[c->pos]))
		c->pos++;
	if (c->pos == c->len)
		return WIRE_PARTIAL;
	/* Also refuses "Name :" (RFC 9112 §5.1) and an empty name. */
	if (c->pos == ns || c->b[c->pos] != ':')
		return WIRE_INVALID;
	ne = c->pos++;

	while (c->pos < c->len && http_ows(c->b[c->pos]))
		c->pos++;
	vs = c->pos;
	c->pos = value_stop(c->b, c->pos, c->len);
	if (c->pos < c->len && c->b[c->pos] != '\r' && c->b[c->pos] != '\n')
		return WIRE_INVALID;
	ve = c->pos;
	rc = eat_eol(c);
	if (rc < 0)
		return rc;
	while (ve > vs && http_ows(c->b[ve - 1]))
		ve--;
	return on_field(c->b + ns, ne - ns, c->b + vs, ve - vs, f);
}

/* Checks that need the whole head, then fills in the derived fields. */
static int finish(struct http_head *h, const struct fields *f)
{
	if (f->te_seen) {
		/* RFC 9112 §6.1, §6.3: TE with CL, in 1.0, or not ending in
		 * chunked leaves the body length to interpretation. */
		if (f->content_length >= 0 || h->minor_version == 0 ||
		    !f->te_chunked_last)
			return WIRE_INVALID;
		h->chunked = true;
	}
	h->content_length = f->content_length;

	/* RFC 9112 §3.2: HTTP/1.1 needs Host; empty only for absolute-form. */
	if (h->minor_version == 1 &&
	    (!f->host_seen || (f->host_empty && !h->absolute_form)))
		return WIRE_INVALID;
	if (!h->absolute_form && f->host_seen && !f->host_empty) {
		memcpy(h->host, f->host, f->host_len + 1);
		h->host_len = f->host_len;
		h->has_host = true;
	}

	if (f->conn_close)
		h->keep_alive = false;
	else
		h->keep_alive = h->minor_version == 1 || f->conn_keep_alive;
	return 0;
}

int http_head_parse(const uint8_t *buf, size_t len, struct http_head *out)
{
	struct cur c = { .b = buf, .len = len, .pos = 0 };
	struct fields f;
	struct http_head h;
	int rc;

	memset(&h, 0, sizeof(h));
	memset(&f, 0, sizeof(f));
	f.content_length = -1;

	rc = parse_request_line(&c, &h);
	if (rc < 0)
		return rc;
	rc = parse_target((const uint8_t *)h.target.ptr, h.target.len, &h);
	if (rc < 0)
		return rc;

	for (;;) {
		uint8_t ch;

		if (c.pos == c.len)
			return WIRE_PARTIAL;
		ch = c.b[c.pos];
		if (ch == '\r' || ch == '\n') {
			rc = eat_eol(&c);
			if (rc < 0)
				return rc;
			break;
		}
		/* obs-fold, or whitespace before the first field (§2.2). */
		if (http_ows(ch))
			return WIRE_INVALID;
		if (++h.n_headers > HTTP_HEAD_MAX_HEADERS)
			return WIRE_TOOBIG;
		rc = parse_field(&c, &f);
		if (rc < 0)
			return rc;
	}

	rc = finish(&h, &f);
	if (rc < 0)
		return rc;
	/* The caller caps len to a few KiB; an int always holds it. */
	BUG_ON(c.pos > len || c.pos > (size_t)INT32_MAX);
	h.head_len = c.pos;
	*out = h;
	return (int)c.pos;
}
