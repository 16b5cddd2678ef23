/*
 * libFuzzer harness for solver-api/request.c. The input is split at its
 * first two '\n' into a path, a query string and a body ("path\nbody" has
 * no query: the target had no '?'), each copied to a heap block of its
 * exact size so that an over-read is caught by ASan. Invariants that must
 * hold for every input trap:
 *  - every result is a documented code, and the same input gives the same
 *    result;
 *  - a parsed path names a resource, and a challenge path's segment is
 *    NUL-free, at most API_NAME_MAX bytes, and parses back to itself once
 *    percent-encoded again;
 *  - a parsed body's strings are bounded and NUL-terminated; a text body
 *    holds no JSON tree, an error holds nothing (leaks show under ASan);
 *  - the body is judged before the query: an error of the body alone is
 *    the error of the body with any query.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "solver-api/request.h"

#define REQUIRE(c)                                                        \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

#define MAX_BODY 1024

static char *copy(const uint8_t *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	REQUIRE(c);
	memcpy(c, p, n);
	return c;
}

static void check_target(const char *path, size_t len)
{
	struct api_target t, again;
	int rc = api_target_parse(path, len, &t);

	REQUIRE(rc == API_REQ_OK || rc == API_REQ_BAD_TARGET ||
		rc == API_REQ_BAD_SEGMENT || rc == API_REQ_NO_ROUTE);
	REQUIRE(api_target_parse(path, len, &again) == rc);
	if (rc == API_REQ_BAD_SEGMENT)
		REQUIRE(t.res == API_RES_HTTP01 || t.res == API_RES_TLSALPN01);
	if (rc != API_REQ_OK)
		return;
	REQUIRE(t.res > API_RES_NONE && t.res <= API_RES_STATUS);
	REQUIRE(t.name_len <= API_NAME_MAX && strlen(t.name) == t.name_len);
	if (t.res != API_RES_HTTP01 && t.res != API_RES_TLSALPN01) {
		REQUIRE(t.name_len == 0);
		return;
	}
	REQUIRE(t.name_len > 0);
	/* Every byte as %XX again: the same resource and segment. */
	const char *prefix = t.res == API_RES_HTTP01 ? "/v1/http-01/"
						     : "/v1/tls-alpn-01/";
	size_t plen = strlen(prefix), n = plen;
	char enc[16 + 3 * API_NAME_MAX + 1];

	if (3 * t.name_len > API_NAME_MAX)
		return;
	memcpy(enc, prefix, plen);
	for (size_t i = 0; i < t.name_len; i++)
		n += (size_t)snprintf(enc + n, sizeof(enc) - n, "%%%02X",
				      (unsigned char)t.name[i]);
	char *e = copy((const uint8_t *)enc, n);
	REQUIRE(api_target_parse(e, n, &again) == API_REQ_OK);
	REQUIRE(again.res == t.res && again.name_len == t.name_len &&
		memcmp(again.name, t.name, t.name_len) == 0);
	free(e);
}

static bool bounded(const char *s, size_t max)
{
	return !s || strnlen(s, max + 1) <= max;
}

static int check_put(const char *body, size_t blen, const char *query,
		     size_t qlen)
{
	struct api_put p;
	int rc = api_put_parse(body, blen, query, qlen, MAX_BODY, &p);

	REQUIRE(rc <= API_REQ_OK && rc >= API_REQ_QUERY_NUL &&
		rc != API_REQ_BAD_TARGET && rc != API_REQ_BAD_SEGMENT &&
		rc != API_REQ_NO_ROUTE);
	REQUIRE(strnlen(p.what, sizeof(p.what)) <= API_WHAT_MAX);
	REQUIRE(p.body_len == blen);
	if (rc != API_REQ_OK) {
		REQUIRE(p.json == NULL);
		return rc;
	}
	REQUIRE(blen <= MAX_BODY);
	REQUIRE(p.ttl_s >= -1);
	if (!p.json) {
		REQUIRE(!p.digest && !p.certificate && !p.key);
		REQUIRE(bounded(p.key_authorization, KEYAUTH_MAX));
	} else {
		REQUIRE(bounded(p.key_authorization, MAX_BODY));
		REQUIRE(bounded(p.digest, MAX_BODY));
		REQUIRE(bounded(p.certificate, MAX_BODY));
		REQUIRE(bounded(p.key, MAX_BODY));
	}
	if (p.identifier == p.query_ident)
		REQUIRE(bounded(p.identifier, sizeof(p.query_ident) - 1));
	else
		REQUIRE(bounded(p.identifier, MAX_BODY));
	api_put_release(&p);
	REQUIRE(p.json == NULL);
	api_put_release(&p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl1 = memchr(data, '\n', size);
	size_t plen = nl1 ? (size_t)(nl1 - data) : size;
	const uint8_t *rest = nl1 ? nl1 + 1 : data + size;
	size_t rlen = (size_t)(data + size - rest);
	const uint8_t *nl2 = memchr(rest, '\n', rlen);
	const uint8_t *q = NULL, *b = rest;
	size_t qlen = 0, blen = rlen;

	if (nl2) {
		q = rest;
		qlen = (size_t)(nl2 - rest);
		b = nl2 + 1;
		blen = (size_t)(data + size - b);
	}
	char *path = copy(data, plen);
	char *query = q ? copy(q, qlen) : NULL;
	char *body = copy(b, blen);

	check_target(path, plen);
	int alone = check_put(body, blen, NULL, 0);
	int with = check_put(body, blen, query, qlen);
	REQUIRE(alone == API_REQ_OK || with == alone);
	REQUIRE(check_put(body, blen, query, qlen) == with);
	free(path);
	free(query);
	free(body);
	return 0;
}
