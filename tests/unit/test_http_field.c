/*
 * Unit tests for wire/http_field.c: finding a field in a request head (by
 * name in any case, the first of several, white space around the value
 * dropped, the search ending at the empty line or at the length given,
 * the request line never taken for a field), and reading Bearer
 * credentials the way the solver API reads them. Every head is placed
 * right before a PROT_NONE page, whole and cut at every length.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "wire/http_field.h"

struct fcase {
	const char *name;
	const char *head;
	const char *field;
	int count;
	const char *value;	/* when count > 0 */
};

static const struct fcase fcases[] = {
	{ "plain", "PUT /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n",
	  "authorization", 1, "Bearer t" },
	{ "any case", "PUT /x HTTP/1.1\r\nAUTHORIZATION: Bearer t\r\n\r\n",
	  "Authorization", 1, "Bearer t" },
	{ "white space around", "PUT /x HTTP/1.1\r\nauthorization:  \t Bearer t \t\r\n\r\n",
	  "authorization", 1, "Bearer t" },
	{ "no white space", "PUT /x HTTP/1.1\r\nauthorization:Bearer t\r\n\r\n",
	  "authorization", 1, "Bearer t" },
	{ "empty value", "PUT /x HTTP/1.1\r\nauthorization:\r\n\r\n",
	  "authorization", 1, "" },
	{ "bare LF", "PUT /x HTTP/1.1\nHost: a\nauthorization: Bearer t\n\n",
	  "authorization", 1, "Bearer t" },
	{ "two: the first, counted twice",
	  "PUT /x HTTP/1.1\r\nAuthorization: Bearer one\r\nX: y\r\nauthorization: Bearer two\r\n\r\n",
	  "authorization", 2, "Bearer one" },
	{ "absent", "PUT /x HTTP/1.1\r\nHost: a\r\n\r\n", "authorization", 0, NULL },
	{ "a longer name is another field",
	  "PUT /x HTTP/1.1\r\nAuthorization-X: Bearer t\r\n\r\n", "authorization", 0, NULL },
	{ "a prefix of the name is another field",
	  "PUT /x HTTP/1.1\r\nAuthorizatio: Bearer t\r\n\r\n", "authorization", 0, NULL },
	{ "white space before the colon is part of the name",
	  "PUT /x HTTP/1.1\r\nAuthorization : Bearer t\r\n\r\n", "authorization", 0, NULL },
	{ "the request line is not a field",
	  "Authorization: Bearer t HTTP/1.1\r\nHost: a\r\n\r\n", "authorization", 0, NULL },
	{ "after the empty line: the body",
	  "PUT /x HTTP/1.1\r\nHost: a\r\n\r\nAuthorization: Bearer t\r\n", "authorization", 0, NULL },
	{ "a line without a colon is skipped",
	  "PUT /x HTTP/1.1\r\nnonsense\r\nAuthorization: Bearer t\r\n\r\n",
	  "authorization", 1, "Bearer t" },
	{ "a value with a colon", "PUT /x HTTP/1.1\r\nHost: a:80\r\n\r\n", "host", 1, "a:80" },
	{ "no end of head", "PUT /x HTTP/1.1\r\nAuthorization: Bearer t", "authorization",
	  1, "Bearer t" },
	{ "no line end at all", "PUT /x HTTP/1.1", "authorization", 0, NULL },
	{ "empty input", "", "authorization", 0, NULL },
	{ "empty lines before the request line",
	  "\r\n\nPUT /x HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n", "authorization",
	  1, "Bearer t" },
	{ "a lone CR is not an empty line",
	  "\rAuthorization: Bearer t\r\nAuthorization: Bearer u\r\n\r\n", "authorization",
	  1, "Bearer u" },
};

static void test_find(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fcases); i++) {
		const struct fcase *t = &fcases[i];
		size_t len = strlen(t->head);
		const uint8_t *in = check_guarded(t->head, len);
		struct slice v = {0};
		int n = http_field_find(in, len, t->field, &v);

		CHECKF(n == t->count, "%s: count %d", t->name, n);
		if (n > 0 && t->value)
			CHECKF(v.len == strlen(t->value) &&
			       memcmp(v.ptr, t->value, v.len) == 0 &&
			       v.ptr >= (const char *)in &&
			       v.ptr + v.len <= (const char *)in + len,
			       "%s: value \"%.*s\"", t->name, (int)v.len, v.ptr);
		/* Every cut: never more found than whole, never out of bounds. */
		for (size_t k = 0; k < len; k++) {
			const uint8_t *p = check_guarded(t->head, k);
			struct slice w = {0};
			int m = http_field_find(p, k, t->field, &w);
			CHECKF(m <= n && (m == 0 || (w.ptr >= (const char *)p &&
						     w.ptr + w.len <= (const char *)p + k)),
			       "%s: cut at %zu: %d", t->name, k, m);
		}
	}
}

struct bcase {
	const char *value;
	bool ok;
	const char *token;
};

static const struct bcase bcases[] = {
	{ "Bearer abc", true, "abc" },
	{ "bearer abc", true, "abc" },
	{ "BEARER a b", true, "a b" },
	{ "Bearer  abc", true, " abc" },	/* as the API reads it: one space */
	{ "Bearer ", false, NULL },
	{ "Bearer", false, NULL },
	{ "Bearerabc", false, NULL },
	{ "Bearer\tabc", false, NULL },
	{ "Basic YWJj", false, NULL },
	{ "", false, NULL },
};

static void test_bearer(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bcases); i++) {
		const struct bcase *t = &bcases[i];
		size_t len = strlen(t->value);
		struct slice v = {check_guarded(t->value, len), len}, tok = {0};
		int r = http_bearer(v, &tok);

		CHECKF((r == 0) == t->ok, "\"%s\": %d", t->value, r);
		if (r == 0 && t->token)
			CHECKF(tok.len == strlen(t->token) &&
			       memcmp(tok.ptr, t->token, tok.len) == 0,
			       "\"%s\": token \"%.*s\"", t->value, (int)tok.len, tok.ptr);
	}
}

int main(void)
{
	test_find();
	test_bearer();
	return check_done();
}
