/*
 * Unit tests for solver-api/rest_request.c, the REST responder's request
 * parser: the token of a challenge path, the identifier a Host names
 * (with a port, in brackets, in any case), and a PUT body, which must be
 * exactly the key authorization of the path's token, 1 to 500 bytes.
 * Every input goes through check_guarded(), so an over-read faults.
 */
#include <stdlib.h>	/* before check.h, which uses abort() */
#include <string.h>

#include "check.h"
#include "solver-api/rest_request.h"

#define TOKEN "abcdefghijklmnop_-0123456789ABCDEFGHIJ"
#define THUMB "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

struct tcase {
	const char *path;
	int want;
};

static const struct tcase tcases[] = {
	{ API_REST_PREFIX TOKEN, API_REST_OK },
	{ API_REST_PREFIX "abcdefghijklmnop", API_REST_OK },
	{ API_REST_PREFIX "abcdefghijklmno", API_REST_BAD_TOKEN },
	{ API_REST_PREFIX "abcdefghijklmnop%41", API_REST_BAD_TOKEN },
	{ API_REST_PREFIX "abcdefghijklmnop.x", API_REST_BAD_TOKEN },
	{ API_REST_PREFIX TOKEN "/x", API_REST_NOT_CHALLENGE },
	{ API_REST_PREFIX, API_REST_NOT_CHALLENGE },
	{ "/.well-known/acme-challenge", API_REST_NOT_CHALLENGE },
	{ "/v1/http-01/" TOKEN, API_REST_NOT_CHALLENGE },
	{ "", API_REST_NOT_CHALLENGE },
};

static void test_target(void)
{
	char token[TOKEN_MAX + 1];
	char longest[300];

	for (size_t i = 0; i < ARRAY_SIZE(tcases); i++) {
		const struct tcase *t = &tcases[i];
		size_t len = strlen(t->path);
		int r = api_rest_target_parse(check_guarded(t->path, len), len, token);

		CHECKF(r == t->want, "%s: %d", t->path, r);
		if (r == API_REST_OK)
			CHECKF(strcmp(token, t->path + strlen(API_REST_PREFIX)) == 0,
			       "%s: token %s", t->path, token);
	}
	/* The longest token fills the buffer exactly; one more is refused. */
	snprintf(longest, sizeof(longest), "%s", API_REST_PREFIX);
	size_t plen = strlen(longest);
	memset(longest + plen, 'T', TOKEN_MAX + 1);
	CHECK(api_rest_target_parse(check_guarded(longest, plen + TOKEN_MAX),
				    plen + TOKEN_MAX, token) == API_REST_OK &&
	      strlen(token) == TOKEN_MAX);
	CHECK(api_rest_target_parse(check_guarded(longest, plen + TOKEN_MAX + 1),
				    plen + TOKEN_MAX + 1, token) == API_REST_BAD_TOKEN);
}

struct hcase {
	const char *host;
	const char *name;	/* NULL: refused */
};

static const struct hcase hcases[] = {
	{ "www.example.com", "www.example.com" },
	{ "WWW.Example.COM", "www.example.com" },
	{ "www.example.com.", "www.example.com" },
	{ "www.example.com:80", "www.example.com" },
	{ "www.example.com:65535", "www.example.com" },
	{ "192.0.2.1", "192.0.2.1" },
	{ "192.0.2.1:8080", "192.0.2.1" },
	{ "[2001:db8::1]", "2001:db8::1" },
	{ "[2001:db8::1]:80", "2001:db8::1" },
	{ "www.example.com:", NULL },
	{ "www.example.com:123456", NULL },
	{ "www.example.com:8a", NULL },
	{ "www.example.com:80:80", NULL },
	{ "[2001:db8::1", NULL },
	{ "[2001:db8::1]x", NULL },
	{ "2001:db8::1", NULL },
	{ "*.example.com", NULL },
	{ "exa mple.com", NULL },
	{ "", NULL },
	{ ":80", NULL },
};

static void test_host(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(hcases); i++) {
		const struct hcase *t = &hcases[i];
		size_t len = strlen(t->host);
		struct ident id;
		int r = api_rest_host_parse(check_guarded(t->host, len), len, &id);

		CHECKF((r == API_REST_OK) == (t->name != NULL), "%s: %d", t->host, r);
		if (r == API_REST_OK && t->name)
			CHECKF(strcmp(id.name, t->name) == 0, "%s: %s", t->host, id.name);
		if (r != API_REST_OK)
			CHECKF(r == API_REST_BAD_HOST, "%s: %d", t->host, r);
	}
}

struct bcase {
	const char *body;
	size_t len;		/* 0: strlen */
	int want;
};

static const struct bcase bcases[] = {
	{ TOKEN "." THUMB, 0, API_REST_OK },
	{ "", 0, API_REST_NO_BODY },
	{ TOKEN "." THUMB "\n", 0, API_REST_BAD_BODY },
	{ " " TOKEN "." THUMB, 0, API_REST_BAD_BODY },
	{ TOKEN "." THUMB "A", 0, API_REST_BAD_BODY },
	{ TOKEN, 0, API_REST_BAD_BODY },
	{ "abcdefghijklmnopq." THUMB, 0, API_REST_BAD_BODY },	/* another token */
	{ "{\"key_authorization\": \"" TOKEN "." THUMB "\"}", 0, API_REST_BAD_BODY },
	{ TOKEN "." THUMB "\0", sizeof(TOKEN "." THUMB), API_REST_BAD_BODY },
};

static void test_body(void)
{
	char ka[KEYAUTH_MAX + 1], big[API_REST_BODY_MAX + 2];

	for (size_t i = 0; i < ARRAY_SIZE(bcases); i++) {
		const struct bcase *t = &bcases[i];
		size_t len = t->len ? t->len : strlen(t->body);
		int r = api_rest_body_parse(check_guarded(t->body, len), len, TOKEN, ka);

		CHECKF(r == t->want, "case %zu: %d", i, r);
		if (r == API_REST_OK)
			CHECK(strcmp(ka, TOKEN "." THUMB) == 0);
	}
	memset(big, 'x', sizeof(big));
	CHECK(api_rest_body_parse(check_guarded(big, API_REST_BODY_MAX),
				  API_REST_BODY_MAX, TOKEN, ka) == API_REST_BAD_BODY);
	CHECK(api_rest_body_parse(check_guarded(big, API_REST_BODY_MAX + 1),
				  API_REST_BODY_MAX + 1, TOKEN, ka) ==
	      API_REST_BODY_TOO_LARGE);
}

int main(void)
{
	test_target();
	test_host();
	test_body();
	return check_done();
}
