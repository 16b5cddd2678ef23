/*
 * The REST responder's request parser (rest_request.h).
 */
#include "solver-api/rest_request.h"

#include <string.h>

int api_rest_target_parse(const char *path, size_t len,
			  char token[TOKEN_MAX + 1])
{
	size_t plen = strlen(API_REST_PREFIX);

	if (len <= plen || memcmp(path, API_REST_PREFIX, plen) != 0 ||
	    memchr(path + plen, '/', len - plen))
		return API_REST_NOT_CHALLENGE;
	if (!token_valid(path + plen, len - plen))
		return API_REST_BAD_TOKEN;
	memcpy(token, path + plen, len - plen);
	token[len - plen] = '\0';
	return API_REST_OK;
}

int api_rest_host_parse(const char *host, size_t len, struct ident *out)
{
	size_t n = len, i;

	/* The port, if any: after "]" for IPv6, after the only ":" otherwise. */
	if (len && host[0] == '[') {
		const char *end = memchr(host, ']', len);
		if (!end)
			return API_REST_BAD_HOST;
		n = (size_t)(end - host) + 1;
	} else {
		const char *colon = memchr(host, ':', len);
		if (colon)
			n = (size_t)(colon - host);
	}
	if (n < len) {
		if (host[n] != ':' || n + 1 == len || len - n - 1 > 5)
			return API_REST_BAD_HOST;
		for (i = n + 1; i < len; i++)
			if (host[i] < '0' || host[i] > '9')
				return API_REST_BAD_HOST;
	}
	return ident_parse(host, n, out) == 0 ? API_REST_OK : API_REST_BAD_HOST;
}

int api_rest_body_parse(const char *body, size_t len, const char *token,
			char ka[KEYAUTH_MAX + 1])
{
	struct slice tok, thumb;

	if (len == 0)
		return API_REST_NO_BODY;
	if (len > API_REST_BODY_MAX)
		return API_REST_BODY_TOO_LARGE;
	if (keyauth_split(body, len, &tok, &thumb) != 0 ||
	    tok.len != strlen(token) || memcmp(tok.ptr, token, tok.len) != 0)
		return API_REST_BAD_BODY;
	/* keyauth_split: TOKEN_MAX + 1 + THUMBPRINT_LEN at most. */
	memcpy(ka, body, len);
	ka[len] = '\0';
	return API_REST_OK;
}
