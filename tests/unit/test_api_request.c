/*
 * Unit tests for solver-api/request.c: request paths, query strings and PUT
 * bodies. Every input goes through check_guarded(), so a parser that reads
 * one byte past its length faults at once; inputs are written with S() so
 * that embedded NULs keep their length.
 */
#include <stdlib.h>	/* before check.h, which uses abort() */
#include <string.h>

#include "check.h"
#include "solver-api/request.h"

struct bytes {
	const char *s;
	size_t len;
};

#define S(lit) { (lit), sizeof(lit) - 1 }
#define NOQ { NULL, 0 }

/* ------------------------------------------------------------- paths */

struct target_case {
	struct bytes path;
	int rc;
	enum api_resource res;
	const char *name;	/* decoded segment when rc is OK */
};

static const struct target_case target_cases[] = {
	{ S("/healthz"), API_REQ_OK, API_RES_HEALTHZ, "" },
	{ S("/metrics"), API_REQ_OK, API_RES_METRICS, "" },
	{ S("/v1/challenges"), API_REQ_OK, API_RES_CHALLENGES, "" },
	{ S("/v1/http-01/abc"), API_REQ_OK, API_RES_HTTP01, "abc" },
	{ S("/v1/tls-alpn-01/a.example.com"), API_REQ_OK, API_RES_TLSALPN01,
	  "a.example.com" },
	{ S("/v1/tls-alpn-01/2001:db8::1"), API_REQ_OK, API_RES_TLSALPN01,
	  "2001:db8::1" },
	/* percent-decoding: %XX only, '+' stays, other '%' stay */
	{ S("/v1/http-01/a%2Fb"), API_REQ_OK, API_RES_HTTP01, "a/b" },
	{ S("/v1/http-01/a%41%6a"), API_REQ_OK, API_RES_HTTP01, "aAj" },
	{ S("/v1/http-01/a+b"), API_REQ_OK, API_RES_HTTP01, "a+b" },
	{ S("/v1/http-01/a%zz"), API_REQ_OK, API_RES_HTTP01, "a%zz" },
	{ S("/v1/http-01/a%4"), API_REQ_OK, API_RES_HTTP01, "a%4" },
	{ S("/v1/http-01/%"), API_REQ_OK, API_RES_HTTP01, "%" },
	{ S("/v1/http-01/\xc3\xa9"), API_REQ_OK, API_RES_HTTP01, "\xc3\xa9" },
	/* the status page and the state behind it */
	{ S("/"), API_REQ_OK, API_RES_ROOT, NULL },
	{ S("/v1/status"), API_REQ_OK, API_RES_STATUS, NULL },
	/* a challenge path without exactly one segment */
	{ S("/v1/http-01/"), API_REQ_BAD_SEGMENT, API_RES_HTTP01, NULL },
	{ S("/v1/http-01/a/b"), API_REQ_BAD_SEGMENT, API_RES_HTTP01, NULL },
	{ S("/v1/tls-alpn-01/a/"), API_REQ_BAD_SEGMENT, API_RES_TLSALPN01, NULL },
	{ S("/v1/http-01/ab%00c"), API_REQ_BAD_SEGMENT, API_RES_HTTP01, NULL },
	/* no route: exact paths only */
	{ S("//"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1/status/"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/healthz/"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/healthz\0"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/HEALTHZ"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1/http-01"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1/challenges/x"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1/dns-01/x"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/v1/%68ttp-01/x"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	{ S("/\xff"), API_REQ_NO_ROUTE, API_RES_NONE, NULL },
	/* not a path */
	{ S(""), API_REQ_BAD_TARGET, API_RES_NONE, NULL },
	{ S("healthz"), API_REQ_BAD_TARGET, API_RES_NONE, NULL },
	{ S("*"), API_REQ_BAD_TARGET, API_RES_NONE, NULL },
};

static void test_target(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(target_cases); i++) {
		const struct target_case *t = &target_cases[i];
		struct api_target out;
		int rc = api_target_parse(check_guarded(t->path.s, t->path.len),
					  t->path.len, &out);

		CHECKF(rc == t->rc, "case %zu: rc %d, want %d", i, rc, t->rc);
		if (t->rc == API_REQ_OK || t->rc == API_REQ_BAD_SEGMENT)
			CHECKF(out.res == t->res, "case %zu: res %d", i, out.res);
		if (rc == API_REQ_OK && t->name)
			CHECKF(out.name_len == strlen(t->name) &&
			       strcmp(out.name, t->name) == 0,
			       "case %zu: name \"%s\", want \"%s\"", i, out.name,
			       t->name);
	}
}

static void test_target_lengths(void)
{
	static char path[16 + API_NAME_MAX + 2];
	const size_t plen = strlen("/v1/http-01/");
	struct api_target out;

	memcpy(path, "/v1/http-01/", plen);
	memset(path + plen, 'a', API_NAME_MAX + 1);
	/* API_NAME_MAX is taken, one more is not */
	CHECK(api_target_parse(check_guarded(path, plen + API_NAME_MAX),
			       plen + API_NAME_MAX, &out) == API_REQ_OK);
	CHECK(out.name_len == API_NAME_MAX && strlen(out.name) == API_NAME_MAX);
	CHECK(api_target_parse(check_guarded(path, plen + API_NAME_MAX + 1),
			       plen + API_NAME_MAX + 1, &out) ==
	      API_REQ_BAD_SEGMENT);
}

/* ------------------------------------------------------------- bodies */

#define KA "abcdefghijklmnop.0123456789012345678901234567890123456789abc"

struct put_case {
	struct bytes body;
	struct bytes query;	/* .s NULL: no '?' in the target */
	int rc;
	/* what a success carries; NULL: absent */
	const char *ka;
	const char *ident;
	const char *digest;
	int64_t ttl;
	const char *what;	/* on UNKNOWN_FIELD/PARAM and BAD_JSON when set */
};

static const struct put_case put_cases[] = {
	/* text bodies, white space around trimmed */
	{ S(KA), NOQ, API_REQ_OK, KA, NULL, NULL, -1, NULL },
	{ S(" \t\r\n" KA "\r\n \n"), NOQ, API_REQ_OK, KA, NULL, NULL, -1, NULL },
	{ S(""), NOQ, API_REQ_OK, NULL, NULL, NULL, -1, NULL },
	{ S(" \n "), NOQ, API_REQ_OK, NULL, NULL, NULL, -1, NULL },
	{ S("ab\0cd"), NOQ, API_REQ_KEYAUTH_NUL, NULL, NULL, NULL, -1, NULL },
	/* JSON bodies */
	{ S("{\"key_authorization\":\"" KA "\",\"identifier\":\"a.example.com\","
	    "\"ttl\":600}"), NOQ, API_REQ_OK, KA, "a.example.com", NULL, 600,
	  NULL },
	{ S("\n  {\"digest\":\"00ff\", \"ttl\": null, \"identifier\": null}"),
	  NOQ, API_REQ_OK, NULL, NULL, "00ff", -1, NULL },
	{ S("{}"), NOQ, API_REQ_OK, NULL, NULL, NULL, -1, NULL },
	{ S("{\"key_authorization\": "), NOQ, API_REQ_BAD_JSON, NULL, NULL,
	  NULL, -1, NULL },
	{ S("{\"a\":1} trailing"), NOQ, API_REQ_BAD_JSON, NULL, NULL, NULL, -1,
	  NULL },
	{ S("{\"digest\":\"a\",\"digest\":\"b\"}"), NOQ, API_REQ_BAD_JSON, NULL,
	  NULL, NULL, -1, NULL },
	{ S("{\"digest\":\"\xff\"}"), NOQ, API_REQ_BAD_JSON, NULL, NULL, NULL,
	  -1, NULL },
	{ S("{\"digest\":\"a\\u0000b\"}"), NOQ, API_REQ_BAD_JSON, NULL, NULL,
	  NULL, -1, NULL },
	{ S("{\"foo\":1}"), NOQ, API_REQ_UNKNOWN_FIELD, NULL, NULL, NULL, -1,
	  "foo" },
	{ S("{\"Identifier\":\"x\"}"), NOQ, API_REQ_UNKNOWN_FIELD, NULL, NULL,
	  NULL, -1, "Identifier" },
	{ S("{\"key_authorization\":5}"), NOQ, API_REQ_FIELD_TYPE, NULL, NULL,
	  NULL, -1, NULL },
	{ S("{\"identifier\":[\"x\"]}"), NOQ, API_REQ_FIELD_TYPE, NULL, NULL,
	  NULL, -1, NULL },
	{ S("{\"ttl\":-1}"), NOQ, API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S("{\"ttl\":1.5}"), NOQ, API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S("{\"ttl\":\"60\"}"), NOQ, API_REQ_BAD_TTL, NULL, NULL, NULL, -1,
	  NULL },
	{ S("{\"ttl\":true}"), NOQ, API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	/* the query: identifier and ttl, decoded, '+' is a space */
	{ S(KA), S("identifier=a.example.com&ttl=120"), API_REQ_OK, KA,
	  "a.example.com", NULL, 120, NULL },
	{ S(KA), S("identifier=%5B2001%3Adb8%3A%3A1%5D"), API_REQ_OK, KA,
	  "[2001:db8::1]", NULL, -1, NULL },
	{ S(KA), S("identifier=a+b"), API_REQ_OK, KA, "a b", NULL, -1, NULL },
	{ S(KA), S("ttl=0000000000000000000000000000042"), API_REQ_OK, KA, NULL,
	  NULL, 42, NULL },
	{ S(KA), S(""), API_REQ_OK, KA, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=5&"), API_REQ_OK, KA, NULL, NULL, 5, NULL },
	/* the first of repeated parameters wins; JSON wins over the query */
	{ S(KA), S("ttl=5&ttl=x&identifier=a.example&identifier=b"), API_REQ_OK,
	  KA, "a.example", NULL, 5, NULL },
	{ S("{\"identifier\":\"j.example\",\"ttl\":7}"),
	  S("identifier=q.example&ttl=9"), API_REQ_OK, NULL, "j.example", NULL,
	  7, NULL },
	{ S("{\"identifier\":\"j.example\"}"), S("identifier=%00&ttl=9"),
	  API_REQ_OK, NULL, "j.example", NULL, 9, NULL },
	/* a decoded NUL would cut the value short: refused */
	{ S(KA), S("identifier=a.example.com%00.evil.org"), API_REQ_QUERY_NUL,
	  NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=5%00x"), API_REQ_QUERY_NUL, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=5&ttl=%00"), API_REQ_OK, KA, NULL, NULL, 5, NULL },
	{ S(KA), S("ttl="), API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=-1"), API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=%2B5"), API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=1.5"), API_REQ_BAD_TTL, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=9223372036854775807"), API_REQ_OK, KA, NULL, NULL,
	  INT64_MAX, NULL },
	{ S(KA), S("ttl=9223372036854775808"), API_REQ_BAD_TTL, NULL, NULL,
	  NULL, -1, NULL },
	{ S(KA), S("ttl=99999999999999999999"), API_REQ_BAD_TTL, NULL, NULL,
	  NULL, -1, NULL },
	{ S(KA), S("foo=1"), API_REQ_UNKNOWN_PARAM, NULL, NULL, NULL, -1, "foo" },
	{ S(KA), S("ttl=5&%74tl=6"), API_REQ_UNKNOWN_PARAM, NULL, NULL, NULL,
	  -1, "%74tl" },
	{ S(KA), S("foo"), API_REQ_BAD_QUERY, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("=1"), API_REQ_BAD_QUERY, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("&ttl=1"), API_REQ_BAD_QUERY, NULL, NULL, NULL, -1, NULL },
	{ S(KA), S("ttl=1&&"), API_REQ_BAD_QUERY, NULL, NULL, NULL, -1, NULL },
	/* a malformed query is refused before any unknown parameter */
	{ S(KA), S("foo=1&bar"), API_REQ_BAD_QUERY, NULL, NULL, NULL, -1, NULL },
	/* the body is checked before the query */
	{ S("{\"foo\":1}"), S("bar=1"), API_REQ_UNKNOWN_FIELD, NULL, NULL, NULL,
	  -1, "foo" },
};

static bool same_str(const char *got, const char *want)
{
	if (!got || !want)
		return got == want;
	return strcmp(got, want) == 0;
}

/* Parses one case with either input right before a guard page. */
static void run_put(const struct put_case *t, size_t i, bool guard_query)
{
	struct api_put p;
	const char *body = t->body.s, *query = t->query.s;
	char *copy = malloc(t->body.len + t->query.len + 1);
	int rc;

	CHECK(copy != NULL);
	if (!copy)
		return;
	if (guard_query && query) {
		memcpy(copy, body, t->body.len);
		body = copy;
		query = check_guarded(query, t->query.len);
	} else {
		body = check_guarded(body, t->body.len);
		if (query) {
			memcpy(copy, query, t->query.len);
			query = copy;
		}
	}
	rc = api_put_parse(body, t->body.len, query, t->query.len, 1024, &p);
	CHECKF(rc == t->rc, "case %zu: rc %d, want %d (%s)", i, rc, t->rc,
	       p.what);
	if (rc == API_REQ_OK && t->rc == API_REQ_OK) {
		CHECKF(same_str(p.key_authorization, t->ka), "case %zu: ka", i);
		CHECKF(same_str(p.identifier, t->ident), "case %zu: ident %s", i,
		       p.identifier ? p.identifier : "(none)");
		CHECKF(same_str(p.digest, t->digest), "case %zu: digest", i);
		CHECKF(p.ttl_s == t->ttl, "case %zu: ttl %lld", i,
		       (long long)p.ttl_s);
		api_put_release(&p);
		api_put_release(&p);
	}
	if (rc != API_REQ_OK) {
		CHECKF(p.json == NULL, "case %zu: json held after an error", i);
		if (t->what)
			CHECKF(strcmp(p.what, t->what) == 0, "case %zu: what \"%s\"",
			       i, p.what);
		if (rc == API_REQ_BAD_JSON)
			CHECKF(p.what[0] != '\0', "case %zu: no reason", i);
	}
	free(copy);
}

static void test_put(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(put_cases); i++) {
		run_put(&put_cases[i], i, false);
		run_put(&put_cases[i], i, true);
	}
}

static void test_put_limits(void)
{
	static char body[2048], query[600];
	struct api_put p;
	size_t n;

	/* the body's size: max_body is taken, one more is not, unread */
	memset(body, ' ', sizeof(body));
	CHECK(api_put_parse(check_guarded(body, 1024), 1024, NULL, 0, 1024,
			    &p) == API_REQ_OK);
	CHECK(api_put_parse(NULL, 1025, NULL, 0, 1024, &p) == API_REQ_TOO_LARGE);
	CHECK(p.body_len == 1025 && p.json == NULL);

	/* a text key authorization: KEYAUTH_MAX characters at most */
	memset(body, 'a', KEYAUTH_MAX + 1);
	CHECK(api_put_parse(check_guarded(body, KEYAUTH_MAX), KEYAUTH_MAX, NULL,
			    0, 1024, &p) == API_REQ_OK);
	CHECK(p.key_authorization && strlen(p.key_authorization) == KEYAUTH_MAX);
	CHECK(api_put_parse(check_guarded(body, KEYAUTH_MAX + 1),
			    KEYAUTH_MAX + 1, NULL, 0, 1024, &p) ==
	      API_REQ_KEYAUTH_TOO_LONG);

	/* ?identifier=: 255 decoded characters at most */
	n = (size_t)snprintf(query, sizeof(query), "identifier=");
	memset(query + n, 'b', 256);
	CHECK(api_put_parse("", 0, check_guarded(query, n + 255), n + 255, 1024,
			    &p) == API_REQ_OK);
	CHECK(p.identifier && strlen(p.identifier) == 255);
	CHECK(api_put_parse("", 0, check_guarded(query, n + 256), n + 256, 1024,
			    &p) == API_REQ_IDENT_TOO_LONG);
	/* ... counted after decoding: "%62" is one character */
	n = (size_t)snprintf(query, sizeof(query), "identifier=");
	for (int i = 0; i < 150; i++)
		n += (size_t)snprintf(query + n, sizeof(query) - n, "%%62");
	CHECK(api_put_parse("", 0, check_guarded(query, n), n, 1024, &p) ==
	      API_REQ_OK);
	CHECK(p.identifier && strlen(p.identifier) == 150);

	/* an unknown field's name is cut to fit what */
	n = (size_t)snprintf(body, sizeof(body), "{\"");
	memset(body + n, 'k', 600);
	n += 600;
	n += (size_t)snprintf(body + n, sizeof(body) - n, "\":1}");
	CHECK(api_put_parse(check_guarded(body, n), n, NULL, 0, 1024, &p) ==
	      API_REQ_UNKNOWN_FIELD);
	CHECK(strlen(p.what) == API_WHAT_MAX);
}

int main(void)
{
	test_target();
	test_target_lengths();
	test_put();
	test_put_limits();
	return check_done();
}
