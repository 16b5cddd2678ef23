#include "solver-api/cluster_codec.h"

#include <stdio.h>
#include <string.h>

#include "common/edge.h"
#include "common/ident.h"

/* ---- writing ---------------------------------------------------------- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool bad;
};

static void put_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->bad || n > w->cap - w->len) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	put_bytes(w, b, 8);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
			(uint8_t)v};

	put_bytes(w, b, 4);
}

/* A length byte and the string; max bounds the string. */
static void put_str(struct wbuf *w, const char *s, size_t n, size_t max)
{
	if (n > max || n > UINT8_MAX) {
		w->bad = true;
		return;
	}
	put_u8(w, (uint8_t)n);
	put_bytes(w, s, n);
}

static void put_head(struct wbuf *w, uint8_t op, const char *origin,
		     uint64_t write_id, uint8_t kind, const char *key,
		     size_t key_len)
{
	if (!clc_node_valid(origin, strlen(origin)) || key_len == 0 ||
	    (kind != STORE_HTTP01 && kind != STORE_TLSALPN01))
		w->bad = true;
	put_u8(w, CLC_FORMAT);
	put_u8(w, op);
	put_str(w, origin, strlen(origin), CLC_NODE_MAX);
	put_u64(w, write_id);
	put_u8(w, kind);
	put_str(w, key, key_len, STORE_KEY_MAX);
}

size_t clc_encode_put(const char *origin, uint64_t write_id,
		      const struct store_entry *e, uint8_t *out, size_t cap)
{
	struct wbuf w = {out, 0, cap, false};

	if (e->payload_len == 0 || e->payload_len > STORE_PAYLOAD_MAX ||
	    e->cert_len > e->payload_len)
		return 0;
	put_head(&w, CLC_PUT, origin, write_id, e->kind, e->key, e->key_len);
	put_str(&w, e->ident, e->ident_len, STORE_IDENT_MAX);
	put_str(&w, e->client, e->client_len, STORE_CLIENT_MAX);
	put_u64(&w, (uint64_t)e->created_ms);
	put_u64(&w, (uint64_t)e->expires_ms);
	put_u32(&w, e->cert_len);
	put_u32(&w, e->payload_len);
	put_bytes(&w, e->payload, e->payload_len);
	return w.bad ? 0 : w.len;
}

size_t clc_encode_del(const char *origin, uint64_t write_id, uint8_t kind,
		      const char *key, size_t key_len, int64_t expires_ms,
		      uint8_t *out, size_t cap)
{
	struct wbuf w = {out, 0, cap, false};

	put_head(&w, CLC_DEL, origin, write_id, kind, key, key_len);
	put_u64(&w, (uint64_t)expires_ms);
	return w.bad ? 0 : w.len;
}

size_t clc_encode_hit(const char *origin, uint8_t kind, const char *key,
		      size_t key_len, int64_t time_ms, uint8_t outcome,
		      const char *peer, uint8_t *out, size_t cap)
{
	struct wbuf w = {out, 0, cap, false};

	put_head(&w, CLC_HIT, origin, 0, kind, key, key_len);
	put_u64(&w, (uint64_t)time_ms);
	put_u8(&w, outcome);
	put_str(&w, peer, strlen(peer), CLC_PEER_MAX);
	return w.bad ? 0 : w.len;
}

size_t clc_version_prefix(uint64_t version, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%llu:", (unsigned long long)version);

	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ---- reading ---------------------------------------------------------- */

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static const uint8_t *take(struct rbuf *r, size_t n)
{
	const uint8_t *at;

	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	at = r->p + r->off;
	r->off += n;
	return at;
}

static uint8_t get_u8(struct rbuf *r)
{
	const uint8_t *b = take(r, 1);

	return b ? b[0] : 0;
}

static uint64_t get_u64(struct rbuf *r)
{
	const uint8_t *b = take(r, 8);
	uint64_t v = 0;

	for (int i = 0; b && i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static uint32_t get_u32(struct rbuf *r)
{
	const uint8_t *b = take(r, 4);

	return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		   (uint32_t)b[2] << 8 | b[3] : 0;
}

/* Visible ASCII, no space: what keys, identifiers and peers are made of. */
static bool visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Copies a length-prefixed string of at most max bytes, NUL-terminated. */
static size_t get_str(struct rbuf *r, char *out, size_t max)
{
	uint8_t n = get_u8(r);
	const uint8_t *b;

	if (n > max) {
		r->bad = true;
		return 0;
	}
	b = take(r, n);
	if (!b)
		return 0;
	memcpy(out, b, n);
	out[n] = '\0';
	if (!visible(out, n))
		r->bad = true;
	return n;
}

bool clc_node_valid(const char *s, size_t len)
{
	if (len == 0 || len > CLC_NODE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* An SNI name as the API stores it: lower-case LDH labels and dots. */
static bool sni_key_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.'))
			return false;
	}
	return n > 0;
}

static int decode_version(const uint8_t *msg, size_t len, uint64_t *out,
			  size_t *body_off)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && msg[i] != ':'; i++) {
		if (msg[i] < '0' || msg[i] > '9' || i >= CLC_VERSION_DIGITS)
			return -1;
		v = v * 10 + (uint64_t)(msg[i] - '0');
	}
	/* Digits, then ':'; no sign, no leading zero but "0" itself. */
	if (i == 0 || i == len || (msg[0] == '0' && i > 1) || v > INT64_MAX)
		return -1;
	*out = v;
	*body_off = i + 1;
	return 0;
}

static void decode_put(struct rbuf *r, struct clc_event *ev,
		       struct store_entry *e)
{
	struct slice tok, thumb;

	memset(e, 0, offsetof(struct store_entry, payload));
	e->kind = ev->kind;
	e->key_len = ev->key_len;
	memcpy(e->key, ev->key, (size_t)ev->key_len + 1);
	e->ident_len = (uint8_t)get_str(r, e->ident, STORE_IDENT_MAX);
	e->client_len = (uint8_t)get_str(r, e->client, STORE_CLIENT_MAX);
	e->created_ms = (int64_t)get_u64(r);
	e->expires_ms = (int64_t)get_u64(r);
	e->cert_len = get_u32(r);
	e->payload_len = get_u32(r);
	if (r->bad || e->client_len == 0 ||
	    !clc_node_valid(e->client, e->client_len) ||
	    e->payload_len == 0 || e->payload_len > STORE_PAYLOAD_MAX ||
	    e->cert_len > e->payload_len || e->expires_ms <= 0) {
		r->bad = true;
		return;
	}
	const uint8_t *pl = take(r, e->payload_len);
	if (!pl)
		return;
	memcpy(e->payload, pl, e->payload_len);
	ev->expires_ms = e->expires_ms;
	if (e->kind == STORE_HTTP01) {
		/* The proxy serves it as the body: a key authorization for this token. */
		if (e->cert_len != 0 ||
		    keyauth_split((const char *)e->payload, e->payload_len, &tok,
				  &thumb) != 0 ||
		    tok.len != e->key_len || memcmp(tok.ptr, e->key, tok.len) != 0)
			r->bad = true;
	} else if (e->cert_len == 0 || e->cert_len == e->payload_len ||
		   e->ident_len == 0) {
		r->bad = true;
	}
}

int clc_decode(const uint8_t *msg, size_t len, struct clc_event *ev,
	       struct store_entry *entry)
{
	struct rbuf r;
	size_t off;

	memset(ev, 0, sizeof(*ev));
	if (len > CLC_MSG_MAX || decode_version(msg, len, &ev->version, &off))
		return -1;
	r = (struct rbuf){msg + off, len - off, 0, false};
	if (get_u8(&r) != CLC_FORMAT)
		return -1;
	ev->op = get_u8(&r);
	if (get_str(&r, ev->origin, CLC_NODE_MAX) == 0 ||
	    !clc_node_valid(ev->origin, strlen(ev->origin)))
		return -1;
	ev->write_id = get_u64(&r);
	ev->kind = get_u8(&r);
	ev->key_len = (uint8_t)get_str(&r, ev->key, STORE_KEY_MAX);
	if (r.bad || ev->key_len == 0)
		return -1;
	if (ev->kind == STORE_HTTP01) {
		if (!token_valid(ev->key, ev->key_len))
			return -1;
	} else if (ev->kind != STORE_TLSALPN01 ||
		   !sni_key_valid(ev->key, ev->key_len)) {
		return -1;
	}
	switch (ev->op) {
	case CLC_PUT:
		if (!entry || ev->version == 0)
			return -1;
		decode_put(&r, ev, entry);
		break;
	case CLC_DEL:
		ev->expires_ms = (int64_t)get_u64(&r);
		if (ev->version == 0 || ev->expires_ms <= 0)
			return -1;
		break;
	case CLC_HIT:
		ev->hit_ms = (int64_t)get_u64(&r);
		ev->outcome = get_u8(&r);
		get_str(&r, ev->peer, CLC_PEER_MAX);
		if (ev->outcome < 1 || ev->outcome > CLC_OUTCOME_MAX || ev->hit_ms <= 0 ||
		    ev->write_id != 0)
			return -1;
		break;
	default:
		return -1;
	}
	return r.bad || r.off != r.len ? -1 : 0;
}

size_t clc_ack_encode(uint64_t write_id, const char *node, char *out,
		      size_t cap)
{
	int n;

	if (!clc_node_valid(node, strlen(node)) || write_id == 0)
		return 0;
	n = snprintf(out, cap, "%llu %s", (unsigned long long)write_id, node);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int clc_ack_decode(const char *msg, size_t len, uint64_t *write_id,
		   char node[CLC_NODE_MAX + 1])
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && msg[i] != ' '; i++) {
		if (msg[i] < '0' || msg[i] > '9' || i >= 20)
			return -1;
		uint64_t d = (uint64_t)(msg[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (i == 0 || i == len || msg[0] == '0' ||
	    !clc_node_valid(msg + i + 1, len - i - 1))
		return -1;
	memcpy(node, msg + i + 1, len - i - 1);
	node[len - i - 1] = '\0';
	*write_id = v;
	return 0;
}
