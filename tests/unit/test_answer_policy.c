/*
 * Unit tests for the ACME answering policy (proxy/answer_policy.c): which
 * entry a request head or a ClientHello asks for, and, for each store
 * answer (no entry, an unbound entry, an entry bound to a name) and each
 * miss setting, whether the proxy answers, refuses or relays; which
 * [stateless] rule answers a token no entry holds, with what body; and
 * which REST responder requests go to the API, which are refused. Request
 * heads go through the real parser; hellos are filled in as the parser
 * would leave them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* Parses a case's head and what it asks; false (a failed check) if it does not parse. */
static bool head_ask(const char *name, const char *text, struct http_head *h,
		     struct http01_ask *ask)
{
	int r = http_head_parse((const uint8_t *)text, strlen(text), h);

	CHECKF(r > 0, "%s: parse %d", name, r);
	if (r <= 0)
		return false;
	policy_http01_ask(h, ask);
	return true;
}

/* The policy's decision with the store holding an entry of kind k. */
static enum policy_action decide(const struct http01_ask *ask,
				 const struct http_head *h, enum entry_kind k,
				 const char *bound_to,
				 const struct cfg_stateless *rule,
				 enum cfg_miss miss)
{
	struct store_entry e;

	entry_make(&e, k, bound_to);
	return policy_http01(ask, h, k == NO_ENTRY ? NULL : &e, rule, miss);
}

static void test_http01(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(hcases); i++) {
		const struct hcase *t = &hcases[i];
		struct http_head h;
		struct http01_ask ask;

		if (!head_ask(t->name, t->head, &h, &ask))
			continue;
		CHECKF(ask.asks == t->asks, "%s: asks %d", t->name, ask.asks);
		if (t->asks) {
			CHECKF(ask.head == t->is_head, "%s: head", t->name);
			CHECKF(ask.token.len == strlen(t->token) &&
			       memcmp(ask.token.ptr, t->token, ask.token.len) == 0,
			       "%s: token %.*s", t->name, (int)ask.token.len,
			       ask.token.ptr);
		}
		enum policy_action a = decide(&ask, &h, t->entry, t->bound_to,
					      NULL, t->miss);
		CHECKF(a == t->want, "%s: action %d, want %d", t->name, a, t->want);
	}
}

/* ---- [stateless NAME] rules ------------------------------------------ */

#define THUMB_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA"
#define THUMB_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbB"
#define THUMB_ANY "ccccccccccccccccccccccccccccccccccccccccc-_"

/* Rules as cfg.c leaves them, from their identifiers words. */
static struct cfg_stateless *rule_make(const char *name, const char *thumb,
				       const char *const *words, size_t n)
{
	struct cfg_stateless *st = calloc(1, sizeof(*st));

	CHECK(st != NULL);
	snprintf(st->name, sizeof(st->name), "%s", name);
	snprintf(st->thumbprint, sizeof(st->thumbprint), "%s", thumb);
	st->patterns = calloc(n, sizeof(*st->patterns));
	CHECK(st->patterns != NULL);
	for (size_t i = 0; i < n; i++) {
		CHECKF(pattern_parse(words[i], strlen(words[i]),
				     &st->patterns[i]) == 0, "pattern %s", words[i]);
		st->any |= st->patterns[i].kind == PATTERN_ANY;
	}
	st->npatterns = n;
	return st;
}

struct scase {
	const char *name;
	const char *head;
	enum entry_kind entry;
	const char *bound_to;
	bool with_any;		/* a third rule, "*", after the two others */
	const char *rule;	/* the rule found, NULL for none */
	enum cfg_miss miss;
	enum policy_action want;
};

#define TOK16 "ABCDEFGHIJKLMNOP"	/* TOKEN_MIN characters */

static const struct scase scases[] = {
	{ "in scope, no entry", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, "a", MISS_404, POLICY_STATELESS },
	{ "HEAD in scope", "HEAD " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, "a", MISS_FORWARD, POLICY_STATELESS },
	{ "Host with port and case", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: WWW.A.test:80\r\n\r\n",
	  NO_ENTRY, NULL, false, "a", MISS_404, POLICY_STATELESS },
	{ "the second rule's exact name", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: b.test\r\n\r\n",
	  NO_ENTRY, NULL, false, "b", MISS_404, POLICY_STATELESS },
	{ "the first rule wins an overlap", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: x.b.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, "a", MISS_404, POLICY_STATELESS },
	{ "the shortest token", "GET " CHALLENGE TOK16 " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, "a", MISS_404, POLICY_STATELESS },
	{ "*.a.test does not cover a.test", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "out of scope, forward", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: c.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_FORWARD, POLICY_MISS_RELAY },
	{ "out of scope, but a \"*\" rule", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: c.test\r\n\r\n",
	  NO_ENTRY, NULL, true, "any", MISS_FORWARD, POLICY_STATELESS },
	{ "a name that only ends like one in scope",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: evilb.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "a stored unbound entry wins", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  UNBOUND, NULL, false, "a", MISS_404, POLICY_ANSWER },
	{ "a stored entry bound here wins", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  BOUND, "www.a.test", false, "a", MISS_404, POLICY_ANSWER },
	{ "a stored entry bound elsewhere is a miss, not stateless",
	  "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  BOUND, "other.a.test", false, "a", MISS_404, POLICY_MISS_REFUSE },
	{ "a token too short", "GET " CHALLENGE "ABCDEFGHIJKLMNO HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "a token outside base64url", "GET " CHALLENGE "abcdefghijklmnop%2e HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_FORWARD, POLICY_MISS_RELAY },
	{ "a token with a dot", "GET " CHALLENGE "abcdefghijklmnop.q HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, false, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "HTTP/1.0 without Host", "GET " CHALLENGE TOKEN " HTTP/1.0\r\n\r\n",
	  NO_ENTRY, NULL, true, NULL, MISS_404, POLICY_MISS_REFUSE },
	{ "POST is relayed", "POST " CHALLENGE TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, true, NULL, MISS_404, POLICY_RELAY },
	{ "a deeper path is relayed", "GET " CHALLENGE TOKEN "/x HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, true, NULL, MISS_404, POLICY_RELAY },
	{ "not a challenge", "GET /" TOKEN " HTTP/1.1\r\nHost: www.a.test\r\n\r\n",
	  NO_ENTRY, NULL, true, NULL, MISS_404, POLICY_RELAY },
};

static void test_stateless(void)
{
	static const char *const wa[] = {"*.a.test"};
	static const char *const wb[] = {"b.test", "*.b.a.test"};
	static const char *const wany[] = {"*"};
	struct cfg_stateless *ra = rule_make("a", THUMB_A, wa, 1);
	struct cfg_stateless *rb = rule_make("b", THUMB_B, wb, 2);
	struct cfg_stateless *rany = rule_make("any", THUMB_ANY, wany, 1);
	struct cfg_stateless rules[3] = {*ra, *rb, *rany};
	struct cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.stateless = rules;
	for (size_t i = 0; i < ARRAY_SIZE(scases); i++) {
		const struct scase *t = &scases[i];
		struct http_head h;
		struct http01_ask ask;

		if (!head_ask(t->name, t->head, &h, &ask))
			continue;
		cfg.nstateless = t->with_any ? 3 : 2;
		const struct cfg_stateless *rule = policy_stateless_rule(&ask, &h, &cfg);
		CHECKF((rule == NULL) == (t->rule == NULL) &&
		       (!rule || strcmp(rule->name, t->rule) == 0),
		       "%s: rule %s, want %s", t->name, rule ? rule->name : "none",
		       t->rule ? t->rule : "none");
		enum policy_action a = decide(&ask, &h, t->entry, t->bound_to,
					      rule, t->miss);
		CHECKF(a == t->want, "%s: action %d, want %d", t->name, a, t->want);
		if (a != POLICY_STATELESS)
			continue;
		char body[STATELESS_BODY_MAX + 1];
		size_t n = policy_stateless_body(&ask, rule, body);
		body[n] = '\0';
		CHECKF(n == ask.token.len + 1 + THUMBPRINT_LEN &&
		       memcmp(body, ask.token.ptr, ask.token.len) == 0 &&
		       body[ask.token.len] == '.' &&
		       strcmp(body + ask.token.len + 1, rule->thumbprint) == 0,
		       "%s: body %s", t->name, body);
	}

	/* The longest token a rule answers fills the body exactly. */
	char head[600], tok[TOKEN_MAX + 2], body[STATELESS_BODY_MAX];
	memset(tok, 'Z', TOKEN_MAX);
	tok[TOKEN_MAX] = '\0';
	snprintf(head, sizeof(head), "GET " CHALLENGE "%s HTTP/1.1\r\nHost: www.a.test\r\n\r\n", tok);
	struct http_head h;
	struct http01_ask ask;
	CHECK(head_ask("longest token", head, &h, &ask));
	cfg.nstateless = 1;
	const struct cfg_stateless *rule = policy_stateless_rule(&ask, &h, &cfg);
	CHECK(rule == &rules[0]);
	CHECK(policy_stateless_body(&ask, rule, body) == STATELESS_BODY_MAX);
	/* One more character and no rule answers: no longer a token. */
	tok[TOKEN_MAX] = 'Z';
	tok[TOKEN_MAX + 1] = '\0';
	snprintf(head, sizeof(head), "GET " CHALLENGE "%s HTTP/1.1\r\nHost: www.a.test\r\n\r\n", tok);
	CHECK(head_ask("token too long", head, &h, &ask));
	CHECK(policy_stateless_rule(&ask, &h, &cfg) == NULL);
	/* No rules at all. */
	cfg.nstateless = 0;
	CHECK(policy_stateless_rule(&ask, &h, &cfg) == NULL);

	free(ra->patterns);
	free(rb->patterns);
	free(rany->patterns);
	free(ra);
	free(rb);
	free(rany);
}

/* ---- the REST responder ----------------------------------------------- */

struct rcase {
	const char *name;
	const char *head;
	bool asks, put;
	bool bearer;
	int client;		/* 0: none; 1: enabled; 2: not enabled; 3: no cidrs */
	const char *peer;	/* IPv4 */
	enum rest_verdict want;
};

#define RPUT(extra) "PUT " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n" extra "\r\n"
#define RDEL(extra) "DELETE " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a.test\r\n" extra "\r\n"
#define CL(n) "Content-Length: " #n "\r\n"

static const struct rcase rcases[] = {
	{ "PUT, all well", RPUT(CL(60)), true, true, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "DELETE, no body", RDEL(""), true, false, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "DELETE, a small body", RDEL(CL(10)), true, false, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "PUT, the largest body", RPUT(CL(500)), true, true, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "no bearer", RPUT(CL(60)), true, true, false, 1, "10.0.0.1", REST_NO_BEARER },
	{ "no bearer wins over all", RPUT(CL(9999)), true, true, false, 0, "192.0.2.1",
	  REST_NO_BEARER },
	{ "unknown token", RPUT(CL(60)), true, true, true, 0, "10.0.0.1", REST_UNKNOWN_TOKEN },
	{ "outside the cidrs", RPUT(CL(60)), true, true, true, 1, "192.0.2.1",
	  REST_SOURCE_REFUSED },
	{ "outside the cidrs, not enabled either", RPUT(CL(60)), true, true, true, 2,
	  "192.0.2.1", REST_SOURCE_REFUSED },
	{ "not enabled", RPUT(CL(60)), true, true, true, 2, "10.0.0.1", REST_NOT_ENABLED },
	{ "not enabled, no cidrs", RPUT(CL(60)), true, true, true, 3, "192.0.2.1",
	  REST_NOT_ENABLED },
	{ "PUT without a body", RPUT(""), true, true, true, 1, "10.0.0.1", REST_BAD_BODY },
	{ "PUT with an empty body", RPUT(CL(0)), true, true, true, 1, "10.0.0.1", REST_BAD_BODY },
	{ "PUT, a body over 500", RPUT(CL(501)), true, true, true, 1, "10.0.0.1", REST_BAD_BODY },
	{ "PUT, chunked", RPUT("Transfer-Encoding: chunked\r\n"), true, true, true, 1,
	  "10.0.0.1", REST_BAD_BODY },
	{ "DELETE, a body over 500", RDEL(CL(501)), true, false, true, 1, "10.0.0.1",
	  REST_BAD_BODY },
	{ "GET is the answering policy's", "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n",
	  false, false, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "POST is relayed", "POST " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a\r\n" CL(5) "\r\n",
	  false, false, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "PUT of a deeper path is relayed",
	  "PUT " CHALLENGE TOKEN "/x HTTP/1.1\r\nHost: a\r\n" CL(5) "\r\n",
	  false, true, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "PUT of another path is relayed", "PUT /upload HTTP/1.1\r\nHost: a\r\n" CL(5) "\r\n",
	  false, true, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "lower-case put is another method",
	  "put " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a\r\n" CL(5) "\r\n",
	  false, false, true, 1, "10.0.0.1", REST_HAND_OFF },
	{ "PUT with a query", "PUT " CHALLENGE TOKEN "?x=1 HTTP/1.1\r\nHost: a\r\n" CL(5) "\r\n",
	  true, true, true, 1, "10.0.0.1", REST_HAND_OFF },
};

static void test_rest(void)
{
	struct cfg_client cl[4];
	struct cidr net;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	CHECK(cidr_parse("10.0.0.0/8", 10, &net) == 0);
	memset(cl, 0, sizeof(cl));
	cl[1].cidrs = cl[2].cidrs = &net;
	cl[1].ncidrs = cl[2].ncidrs = 1;
	cl[1].rest_responder = true;
	for (size_t i = 0; i < ARRAY_SIZE(rcases); i++) {
		const struct rcase *t = &rcases[i];
		struct http_head h;
		struct rest_ask ask;
		int r = http_head_parse((const uint8_t *)t->head, strlen(t->head), &h);

		CHECKF(r > 0, "%s: parse %d", t->name, r);
		if (r <= 0)
			continue;
		policy_rest_ask(&h, &ask);
		CHECKF(ask.asks == t->asks, "%s: asks %d", t->name, ask.asks);
		if (!ask.asks)
			continue;
		CHECKF(ask.put == t->put && ask.token.len == strlen(TOKEN) &&
		       memcmp(ask.token.ptr, TOKEN, ask.token.len) == 0,
		       "%s: put %d, token %.*s", t->name, ask.put,
		       (int)ask.token.len, ask.token.ptr);
		CHECK(inet_pton(AF_INET, t->peer, &sa.sin_addr) == 1);
		enum rest_verdict v = policy_rest(&ask, &h, t->bearer,
						  t->client ? &cl[t->client] : NULL,
						  (const struct sockaddr *)&sa);
		CHECKF(v == t->want, "%s: verdict %d, want %d", t->name, v, t->want);
	}
	/* A GET of the challenge path is never the REST responder's. */
	struct http_head h;
	struct rest_ask ask;
	const char *get = "GET " CHALLENGE TOKEN " HTTP/1.1\r\nHost: a\r\n\r\n";
	CHECK(http_head_parse((const uint8_t *)get, strlen(get), &h) > 0);
	policy_rest_ask(&h, &ask);
	CHECK(!ask.asks);
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
	test_stateless();
	test_rest();
	test_tls();
	test_h2_preface();
	return check_done();
}
