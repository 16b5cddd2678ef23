/*
 * libFuzzer harness for solver-api/rest_request.c, the REST responder's
 * request parser. The input is split at its first two '\n' into a path, a
 * Host value and a body, each copied to a heap block of its exact size so
 * that an over-read is caught by ASan. Invariants that trap:
 *  - every result is a documented code, and the same input gives the same
 *    result;
 *  - a token taken from a path is a valid http-01 token and the path's
 *    last bytes;
 *  - a Host taken gives an identifier that parses again to itself;
 *  - a body taken is exactly the key authorization of the path's token
 *    (or of a fixed token when the path gave none), byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "solver-api/rest_request.h"

#define REQUIRE(c)                                                        \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static char *copy(const uint8_t *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	REQUIRE(c);
	memcpy(c, p, n);
	return c;
}

/* The next part of data up to a '\n' (or the end); advances *pos past it. */
static char *part(const uint8_t *data, size_t size, size_t *pos, size_t *len)
{
	const uint8_t *nl = memchr(data + *pos, '\n', size - *pos);
	size_t end = nl ? (size_t)(nl - data) : size;

	*len = end - *pos;
	char *p = copy(data + *pos, *len);
	*pos = nl ? end + 1 : size;
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0, plen, hlen, blen;
	char *path = part(data, size, &pos, &plen);
	char *host = part(data, size, &pos, &hlen);
	char *body = copy(data + pos, size - pos);
	char token[TOKEN_MAX + 1], again[TOKEN_MAX + 1], ka[KEYAUTH_MAX + 1];
	struct ident id, id2;
	int r;

	blen = size - pos;
	r = api_rest_target_parse(path, plen, token);
	REQUIRE(r == API_REST_OK || r == API_REST_NOT_CHALLENGE ||
		r == API_REST_BAD_TOKEN);
	REQUIRE(api_rest_target_parse(path, plen, again) == r);
	if (r == API_REST_OK) {
		size_t n = strlen(token);
		REQUIRE(token_valid(token, n) && n < plen &&
			memcmp(path + plen - n, token, n) == 0);
	} else {
		strcpy(token, "abcdefghijklmnop");
	}

	r = api_rest_host_parse(host, hlen, &id);
	REQUIRE(r == API_REST_OK || r == API_REST_BAD_HOST);
	if (r == API_REST_OK) {
		REQUIRE(ident_parse(id.name, id.name_len, &id2) == 0);
		REQUIRE(strcmp(id.name, id2.name) == 0);
	}

	r = api_rest_body_parse(body, blen, token, ka);
	REQUIRE(r == API_REST_OK || r == API_REST_NO_BODY ||
		r == API_REST_BODY_TOO_LARGE || r == API_REST_BAD_BODY);
	REQUIRE((r == API_REST_NO_BODY) == (blen == 0));
	REQUIRE((r == API_REST_BODY_TOO_LARGE) == (blen > API_REST_BODY_MAX));
	if (r == API_REST_OK) {
		size_t n = strlen(token);
		REQUIRE(strlen(ka) == blen && memcmp(ka, body, blen) == 0);
		REQUIRE(blen == n + 1 + THUMBPRINT_LEN && memcmp(ka, token, n) == 0 &&
			ka[n] == '.');
	}
	free(path);
	free(host);
	free(body);
	return 0;
}
