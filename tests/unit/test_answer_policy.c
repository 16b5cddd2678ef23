/*
 * Unit tests for the ACME answering policy (proxy/answer_policy.c): which
 * entry a request head or a ClientHello asks for, and, for each store
 * answer (no entry, an unbound entry, an entry bound to a name) and each
 * miss setting, whether the proxy answers, refuses or relays. Request
 * heads go through the real parser; hellos are filled in as the parser
 * would leave them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>	/* check.h uses abort() */
#include <string.h>

#include "check.h"
#include "proxy/answer_policy.h"
#include "wire/http_head.h"
#include "wire/tls_hello.h"

#define TOKEN "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define CHALLENGE "/.well-known/acme-challenge/"

enum entry_kind { NO_ENTRY, UNBOUND, BOUND };

struct hcase {
	const char *name;
	const char *head;
	bool asks;
	bool is_head;
	const char *token;	/* when asks */
	enum entry_kind entry;
	const char *bound_to;	/* BOUND: the entry's identifier */
	enum cfg_miss miss;
	enum policy_action want;
};

static const struct hcase hcases[] = {
	{ "GET, unbound entry", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, false, TOKEN, UNBOUND, NULL, MISS_FORWARD, POLICY_ANSWER },
	{ "HEAD, unbound entry", "HEAD " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, true, TOKEN, UNBOUND, NULL, MISS_FORWARD, POLICY_ANSWER },
	{ "GET, no entry, forward", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, false, TOKEN, NO_ENTRY, NULL, MISS_FORWARD, POLICY_MISS_RELAY },
	{ "GET, no entry, 404", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, false, TOKEN, NO_ENTRY, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "bound entry, its Host", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_404, POLICY_ANSWER },
	{ "bound entry, its Host with port and case",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: WWW.a.test:80\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_404, POLICY_ANSWER },
	{ "bound entry, another Host, 404",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: evil.test\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_404, POLICY_MISS_REFUSE },
	{ "bound entry, another Host, forward",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: evil.test\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_FORWARD, POLICY_MISS_RELAY },
	{ "bound entry, a Host that extends it",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test.evil\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_404, POLICY_MISS_REFUSE },
	{ "bound entry, HTTP/1.0 without Host",
	  "GET " CHALLENGE TOKEN " HTTP/1.0\r\n\r\n",
	  true, false, TOKEN, BOUND, "www.a.test", MISS_404, POLICY_MISS_REFUSE },
	{ "unbound entry, HTTP/1.0 without Host", "GET " CHALLENGE TOKEN " HTTP/1.0\r\n\r\n",
	  true, false, TOKEN, UNBOUND, NULL, MISS_404, POLICY_ANSWER },
	{ "absolute form", "GET http://a.test" CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, false, TOKEN, UNBOUND, NULL, MISS_404, POLICY_ANSWER },
	{ "query is not the token", "GET " CHALLENGE TOKEN "?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  true, false, TOKEN, UNBOUND, NULL, MISS_404, POLICY_ANSWER },
	{ "POST is relayed", "POST " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, UNBOUND, NULL, MISS_404, POLICY_RELAY },
	{ "a deeper path is relayed",
	  "GET " CHALLENGE TOKEN "/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, UNBOUND, NULL, MISS_404, POLICY_RELAY },
	{ "the prefix alone is relayed", "GET " CHALLENGE " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, NO_ENTRY, NULL, MISS_404, POLICY_RELAY },
	{ "the prefix without its slash",
	  "GET /.well-known/acme-challenge HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, NO_ENTRY, NULL, MISS_404, POLICY_RELAY },
	{ "another well-known path", "GET /.well-known/other/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, NO_ENTRY, NULL, MISS_404, POLICY_RELAY },
	{ "the prefix in other case",
	  "GET /.WELL-KNOWN/acme-challenge/" TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, UNBOUND, NULL, MISS_404, POLICY_RELAY },
	{ "lower-case get is another method", "get " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, UNBOUND, NULL, MISS_404, POLICY_RELAY },
	{ "plain request", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  false, false, NULL, NO_ENTRY, NULL, MISS_404, POLICY_RELAY },
};

static void entry_make(struct store_entry *e, enum entry_kind k,
		       const char *bound_to)
{
	memset(e, 0, sizeof(*e));
	e->kind = STORE_HTTP01;
	if (k == BOUND) {
		e->ident_len = (uint8_t)strlen(bound_to);
		memcpy(e->ident, bound_to, e->ident_len);
	}
}

static void test_http01(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(hcases); i++) {
		const struct hcase *t = &hcases[i];
		struct http_head h;
		struct http01_ask ask;
		struct store_entry e;
		int r = http_head_parse((const uint8_t *)t->head, strlen(t->head), &h);

		CHECKF(r > 0, "%s: parse %d", t->name, r);
		if (r <= 0)
			continue;
		policy_http01_ask(&h, &ask);
		CHECKF(ask.asks == t->asks, "%s: asks %d", t->name, ask.asks);
		if (t->asks) {
			CHECKF(ask.head == t->is_head, "%s: head", t->name);
			CHECKF(ask.token.len == strlen(t->token) &&
			       memcmp(ask.token.ptr, t->token, ask.token.len) == 0,
			       "%s: token %.*s", t->name, (int)ask.token.len,
			       ask.token.ptr);
		}
		entry_make(&e, t->entry, t->bound_to);
		enum policy_action a = policy_http01(&ask, &h,
						     t->entry == NO_ENTRY ? NULL : &e,
						     t->miss);
		CHECKF(a == t->want, "%s: action %d, want %d", t->name, a, t->want);
	}
}

struct tcase {
	const char *name;
	const char *sni;	/* NULL: no server_name extension */
	const char *alpn;	/* ProtocolNameList contents; NULL: no ALPN */
	size_t alpn_len;
	bool asks;
	const char *name_want;	/* the normalised name */
	bool entry;
	enum cfg_miss miss;
	enum policy_action want;
};

#define ALPN(s) .alpn = (s), .alpn_len = sizeof(s) - 1
#define ACME "\x0a" "acme-tls/1"
#define H2 "\x02" "h2"

static const struct tcase tcases[] = {
	{ "acme-tls/1 with an entry", "www.a.test", ALPN(ACME), true, "www.a.test",
	  true, MISS_REJECT, POLICY_ANSWER },
	{ "acme-tls/1 among others", "www.a.test", ALPN(H2 ACME), true, "www.a.test",
	  true, MISS_FORWARD, POLICY_ANSWER },
	{ "no entry, reject", "www.a.test", ALPN(ACME), true, "www.a.test",
	  false, MISS_REJECT, POLICY_MISS_REFUSE },
	{ "no entry, forward", "www.a.test", ALPN(ACME), true, "www.a.test",
	  false, MISS_FORWARD, POLICY_MISS_RELAY },
	{ "name lower-cased, trailing dot dropped", "WWW.A.Test.", ALPN(ACME), true,
	  "www.a.test", true, MISS_REJECT, POLICY_ANSWER },
	{ "no SNI, reject", NULL, ALPN(ACME), true, "", false, MISS_REJECT,
	  POLICY_MISS_REFUSE },
	{ "no SNI, forward", NULL, ALPN(ACME), true, "", false, MISS_FORWARD,
	  POLICY_MISS_RELAY },
	{ "no SNI never answers", NULL, ALPN(ACME), true, "", true, MISS_REJECT,
	  POLICY_MISS_REFUSE },
	{ "no SNI, no acme-tls/1", NULL, ALPN(H2), false, "", false, MISS_REJECT,
	  POLICY_RELAY },
	{ "h2 only is relayed", "www.a.test", ALPN(H2), false, "www.a.test",
	  true, MISS_REJECT, POLICY_RELAY },
	{ "no ALPN is relayed", "www.a.test", NULL, 0, false, "www.a.test",
	  true, MISS_REJECT, POLICY_RELAY },
	{ "a longer protocol is not acme-tls/1", "www.a.test",
	  ALPN("\x0b" "acme-tls/10"), false, "www.a.test", true, MISS_REJECT,
	  POLICY_RELAY },
};

static void test_tls(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(tcases); i++) {
		const struct tcase *t = &tcases[i];
		struct tls_hello h;
		struct tls_ask ask;
		struct store_entry e;

		memset(&h, 0, sizeof(h));
		if (t->sni) {
			h.has_sni = true;
			h.sni.ptr = t->sni;
			h.sni.len = strlen(t->sni);
		}
		if (t->alpn) {
			h.has_alpn = true;
			h.alpn.ptr = t->alpn;
			h.alpn.len = t->alpn_len;
		}
		policy_tls_ask(&h, &ask);
		CHECKF(ask.asks == t->asks, "%s: asks %d", t->name, ask.asks);
		CHECKF(ask.name_len == strlen(t->name_want) &&
		       strcmp(ask.name, t->name_want) == 0, "%s: name %s",
		       t->name, ask.name);
		memset(&e, 0, sizeof(e));
		e.kind = STORE_TLSALPN01;
		enum policy_action a = policy_tls(&ask, t->entry ? &e : NULL, t->miss);
		CHECKF(a == t->want, "%s: action %d, want %d", t->name, a, t->want);
	}
}

static void test_h2_preface(void)
{
	static const char pri[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4";
	size_t n = sizeof("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") - 1;

	for (size_t len = 1; len < sizeof(pri) - 1; len++)
		CHECKF(policy_h2_preface((const uint8_t *)pri, len) == (len >= n ? 1 : 0),
		       "preface, %zu bytes", len);
	CHECK(policy_h2_preface((const uint8_t *)"POST / HTTP/1.1\r\n", 17) == -1);
	CHECK(policy_h2_preface((const uint8_t *)"PRI * HTTP/1.1\r\n", 16) == -1);
	CHECK(policy_h2_preface((const uint8_t *)"PRI", 3) == 0);
	CHECK(policy_h2_preface((const uint8_t *)"pri", 3) == -1);
}

int main(void)
{
	test_http01();
	test_tls();
	test_h2_preface();
	return check_done();
}
