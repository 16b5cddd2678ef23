/*
 * The REST responder's request parser: what a PUT or DELETE of
 * /.well-known/acme-challenge/<token> carries besides its bearer token (the
 * token in the path, the name in Host, the key authorization in the body),
 * as bytes in and a result or one error code out. Pure like request.h: no
 * I/O, no allocation, no global state; inputs carry explicit lengths.
 */
#ifndef EDGE_API_REST_REQUEST_H
#define EDGE_API_REST_REQUEST_H

#include <stddef.h>

#include "common/ident.h"

#define API_REST_PREFIX "/.well-known/acme-challenge/"
/* A body longer than this is refused (the reference responder's limit). */
#define API_REST_BODY_MAX 500

enum api_rest_error {
	API_REST_OK = 0,
	API_REST_NOT_CHALLENGE = -1,	/* not the prefix and one segment */
	API_REST_BAD_TOKEN = -2,	/* the segment is not an http-01 token */
	API_REST_NO_BODY = -3,		/* a PUT without a body */
	API_REST_BODY_TOO_LARGE = -4,	/* over API_REST_BODY_MAX bytes */
	API_REST_BAD_BODY = -5,		/* not "<token>.<thumbprint>" of this token */
	API_REST_BAD_HOST = -6,		/* Host is not a DNS name or an IP */
};

/*
 * The token of a challenge path, as sent (a token is base64url: nothing
 * to decode). Returns API_REST_OK with token NUL-terminated, or
 * NOT_CHALLENGE, or BAD_TOKEN.
 */
int api_rest_target_parse(const char *path, size_t len,
			  char token[TOKEN_MAX + 1]);

/*
 * The identifier a Host value names: a DNS name or an IP literal (IPv6 in
 * brackets), an optional ":port" after it. Returns API_REST_OK with *out
 * filled by ident_parse(), or BAD_HOST.
 */
int api_rest_host_parse(const char *host, size_t len, struct ident *out);

/*
 * A PUT body: 1 to API_REST_BODY_MAX bytes, exactly the key authorization
 * "<token>.<thumbprint>" of token (nothing around it). Returns
 * API_REST_OK with ka NUL-terminated, or NO_BODY, BODY_TOO_LARGE or
 * BAD_BODY.
 */
int api_rest_body_parse(const char *body, size_t len, const char *token,
			char ka[KEYAUTH_MAX + 1]);

#endif
