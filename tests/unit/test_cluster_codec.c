/*
 * solver-api/cluster_codec.c: every kind of event round-trips; every
 * prefix of a valid message, every single-byte change of its header and
 * lengths, and a table of hand-made bad messages are refused or decode to
 * something valid, never read past the input (each decode sees its bytes
 * right before a PROT_NONE page).
 */
#include <string.h>

#include "check.h"
#include "common/edge.h"
#include "solver-api/cluster_codec.h"

#define TOKEN "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define THUMB "0123456789012345678901234567890123456789abc"

static struct store_entry entry, out;
static uint8_t msg[CLC_MSG_MAX + 64];

static void http_entry(struct store_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->kind = STORE_HTTP01;
	e->key_len = (uint8_t)strlen(TOKEN);
	strcpy(e->key, TOKEN);
	strcpy(e->ident, "www.example.com");
	e->ident_len = (uint8_t)strlen(e->ident);
	strcpy(e->client, "certbot");
	e->client_len = 7;
	e->created_ms = 1700000000000;
	e->expires_ms = 1700000600000;
	e->payload_len = (uint32_t)strlen(TOKEN "." THUMB);
	memcpy(e->payload, TOKEN "." THUMB, e->payload_len);
}

static void alpn_entry(struct store_entry *e, uint32_t payload_len)
{
	memset(e, 0, sizeof(*e));
	e->kind = STORE_TLSALPN01;
	strcpy(e->key, "7.2.0.192.in-addr.arpa");
	e->key_len = (uint8_t)strlen(e->key);
	strcpy(e->ident, "192.0.2.7");
	e->ident_len = (uint8_t)strlen(e->ident);
	strcpy(e->client, "admin");
	e->client_len = 5;
	e->created_ms = 1;
	e->expires_ms = 2;
	e->cert_len = payload_len / 2;
	e->payload_len = payload_len;
	for (uint32_t i = 0; i < payload_len; i++)
		e->payload[i] = (uint8_t)(i * 7 + 3);	/* NULs and all */
}

/* version prefix + body into msg; returns the total length. */
static size_t frame(uint64_t version, const uint8_t *body, size_t blen)
{
	size_t n = clc_version_prefix(version, (char *)msg, sizeof(msg));

	CHECK(n > 0);
	memmove(msg + n, body, blen);
	return n + blen;
}

static int decode_guarded(const uint8_t *m, size_t len, struct clc_event *ev)
{
	return clc_decode(check_guarded(m, len), len, ev, &out);
}

static bool same_entry(const struct store_entry *a, const struct store_entry *b)
{
	return a->kind == b->kind && a->key_len == b->key_len &&
	       !strcmp(a->key, b->key) && a->ident_len == b->ident_len &&
	       !strcmp(a->ident, b->ident) && a->client_len == b->client_len &&
	       !strcmp(a->client, b->client) && a->created_ms == b->created_ms &&
	       a->expires_ms == b->expires_ms && a->cert_len == b->cert_len &&
	       a->payload_len == b->payload_len &&
	       !memcmp(a->payload, b->payload, a->payload_len);
}

/* Every strict prefix of a valid message is refused. */
static void prefixes_refused(const uint8_t *m, size_t len, const char *what)
{
	struct clc_event ev;
	size_t bad = 0;

	for (size_t k = 0; k < len; k++)
		if (decode_guarded(m, k, &ev) == 0)
			bad++;
	CHECKF(bad == 0, "%s: %zu prefixes decoded", what, bad);
}

/* Any byte changed anywhere: refused, or a valid decode (never a crash). */
static void mutations_safe(const uint8_t *m, size_t len)
{
	static uint8_t copy[CLC_MSG_MAX + 64];
	struct clc_event ev;

	for (size_t i = 0; i < len && i < 400; i++) {
		for (int v = 0; v < 256; v += 17) {
			memcpy(copy, m, len);
			copy[i] = (uint8_t)v;
			if (decode_guarded(copy, len, &ev) == 0 && ev.op == CLC_PUT)
				CHECK(out.payload_len <= STORE_PAYLOAD_MAX &&
				      out.cert_len <= out.payload_len);
		}
	}
}

static void test_put_roundtrip(void)
{
	static uint8_t body[CLC_BODY_MAX];
	struct clc_event ev;
	size_t blen, len;

	http_entry(&entry);
	blen = clc_encode_put("node-a", 42, &entry, body, sizeof(body));
	CHECK(blen > 0);
	len = frame(1234567, body, blen);
	CHECK(decode_guarded(msg, len, &ev) == 0);
	CHECK(ev.version == 1234567 && ev.op == CLC_PUT && ev.write_id == 42);
	CHECK(!strcmp(ev.origin, "node-a") && !strcmp(ev.key, TOKEN));
	CHECK(ev.expires_ms == entry.expires_ms);
	CHECK(same_entry(&entry, &out));
	prefixes_refused(msg, len, "http-01 put");
	mutations_safe(msg, len);
	/* Trailing bytes are refused. */
	msg[len] = 0;
	CHECK(decode_guarded(msg, len + 1, &ev) != 0);
	/* A put is refused where the caller gives no entry to fill. */
	CHECK(clc_decode(msg, len, &ev, NULL) != 0);
	/* Too small an output buffer: 0, not a partial body. */
	CHECK(clc_encode_put("node-a", 42, &entry, body, blen - 1) == 0);

	/* The largest payload, binary, round-trips. */
	alpn_entry(&entry, STORE_PAYLOAD_MAX);
	blen = clc_encode_put("n", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && blen <= CLC_BODY_MAX);
	len = frame(UINT64_C(1700000000000000), body, blen);
	CHECK(len <= CLC_MSG_MAX);
	CHECK(decode_guarded(msg, len, &ev) == 0 && same_entry(&entry, &out));
	CHECK(ev.version == UINT64_C(1700000000000000));
	prefixes_refused(msg, len, "tls-alpn-01 put");
	/* One byte more than the store holds is refused by the encoder. */
	entry.payload_len = STORE_PAYLOAD_MAX + 1;
	CHECK(clc_encode_put("n", 1, &entry, body, sizeof(body)) == 0);
}

static void test_del_and_hit(void)
{
	uint8_t body[600];
	struct clc_event ev;
	size_t blen, len;

	blen = clc_encode_del("node-c", 7, STORE_TLSALPN01, "www.example.com", 15,
			      99, body, sizeof(body));
	CHECK(blen > 0);
	len = frame(5, body, blen);
	CHECK(decode_guarded(msg, len, &ev) == 0);
	CHECK(ev.op == CLC_DEL && ev.kind == STORE_TLSALPN01 && ev.expires_ms == 99 &&
	      ev.write_id == 7 && !strcmp(ev.key, "www.example.com"));
	prefixes_refused(msg, len, "delete");
	mutations_safe(msg, len);
	/* A delete needs a version: 0 is for hit records only. */
	len = frame(0, body, blen);
	CHECK(decode_guarded(msg, len, &ev) != 0);

	blen = clc_encode_hit("node-b", STORE_HTTP01, TOKEN, strlen(TOKEN), 1234, 1,
			      "192.0.2.1:4431", body, sizeof(body));
	CHECK(blen > 0);
	len = frame(0, body, blen);
	CHECK(decode_guarded(msg, len, &ev) == 0);
	CHECK(ev.op == CLC_HIT && ev.hit_ms == 1234 && ev.outcome == 1 &&
	      !strcmp(ev.peer, "192.0.2.1:4431") && !strcmp(ev.origin, "node-b"));
	prefixes_refused(msg, len, "hit");
	mutations_safe(msg, len);
	/* Every outcome a hit record may hold travels, stateless answers too. */
	for (int o = 0; o <= CLC_OUTCOME_MAX + 1; o++) {
		blen = clc_encode_hit("node-b", STORE_HTTP01, TOKEN, strlen(TOKEN), 1234,
				      (uint8_t)o, "192.0.2.1:4431", body, sizeof(body));
		len = frame(0, body, blen);
		CHECKF((decode_guarded(msg, len, &ev) == 0) ==
		       (o >= 1 && o <= CLC_OUTCOME_MAX), "outcome %d", o);
	}
	/* Bad arguments are refused by the encoders. */
	CHECK(clc_encode_hit("bad node", STORE_HTTP01, TOKEN, strlen(TOKEN), 1, 1,
			     "p", body, sizeof(body)) == 0);
	CHECK(clc_encode_del("n", 1, 9, "k", 1, 1, body, sizeof(body)) == 0);
	CHECK(clc_encode_del("n", 1, STORE_HTTP01, "", 0, 1, body, sizeof(body)) == 0);
}

static void test_bad_messages(void)
{
	static const struct {
		const char *name;
		const char *msg;
		size_t len;
	} cases[] = {
		{"empty", "", 0},
		{"no colon", "123", 3},
		{"no version", ":\x01P", 3},
		{"sign", "-1:\x01P", 4},
		{"leading zero", "01:\x01", 4},
		{"too many digits", "12345678901234567890:\x01", 22},
		{"over int64", "9223372036854775808:\x01", 21},
		{"bad format", "1:\x02P\x01" "aXXXXXXXX", 14},
		{"bad op", "1:\x01Z\x01" "a\0\0\0\0\0\0\0\0\x01\x01" "a", 17},
		{"empty origin", "1:\x01P\x00", 5},
		{"origin with space", "1:\x01P\x03" "a b", 8},
		{"length past end", "1:\x01P\xff" "abc", 8},
	};
	struct clc_event ev;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECKF(decode_guarded((const uint8_t *)cases[i].msg, cases[i].len,
				      &ev) != 0, "%s", cases[i].name);
}

static void test_bad_entries(void)
{
	static uint8_t body[CLC_BODY_MAX];
	struct clc_event ev;
	size_t blen;

	/* http-01 whose key authorization is for another token. */
	http_entry(&entry);
	memcpy(entry.payload, "X", 1);
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
	/* http-01 with a certificate length. */
	http_entry(&entry);
	entry.cert_len = 1;
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
	/* tls-alpn-01 with all certificate and no key, or no certificate. */
	alpn_entry(&entry, 100);
	entry.cert_len = 100;
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
	entry.cert_len = 0;
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
	/* tls-alpn-01 key with upper case or a slash. */
	alpn_entry(&entry, 100);
	strcpy(entry.key, "Www.example.com");
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
	/* A client name with a space. */
	alpn_entry(&entry, 100);
	strcpy(entry.client, "a b");
	entry.client_len = 3;
	blen = clc_encode_put("a", 1, &entry, body, sizeof(body));
	CHECK(blen > 0 && decode_guarded(msg, frame(1, body, blen), &ev) != 0);
}

static void test_acks(void)
{
	char buf[CLC_ACK_MAX + 1], node[CLC_NODE_MAX + 1];
	uint64_t id;
	size_t n;

	n = clc_ack_encode(UINT64_MAX, "node-b", buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(clc_ack_decode(check_guarded(buf, n), n, &id, node) == 0);
	CHECK(id == UINT64_MAX && !strcmp(node, "node-b"));
	for (size_t k = 0; k < n; k++)
		CHECK(clc_ack_decode(check_guarded(buf, k), k, &id, node) != 0 ||
		      k > strlen("18446744073709551615 "));
	CHECK(clc_ack_decode("18446744073709551616 a", 22, &id, node) != 0);
	CHECK(clc_ack_decode("0 a", 3, &id, node) != 0);
	CHECK(clc_ack_decode("1 a b", 5, &id, node) != 0);
	CHECK(clc_ack_decode("1 ", 2, &id, node) != 0);
	CHECK(clc_ack_decode(" a", 2, &id, node) != 0);
	CHECK(clc_ack_encode(0, "a", buf, sizeof(buf)) == 0);
	CHECK(clc_ack_encode(1, "a", buf, 3) == 0);
}

int main(void)
{
	test_put_roundtrip();
	test_del_and_hit();
	test_bad_messages();
	test_bad_entries();
	test_acks();
	return check_done();
}
