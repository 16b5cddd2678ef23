/*
 * The solver API's request parser: the request path, the query string and
 * the body of a PUT, as bytes in and a result or one error code out. Pure:
 * no I/O, no reply, no global state, inputs carry explicit lengths and are
 * never written. The one allocation is the JSON tree of a JSON body, which
 * the result owns until api_put_release(); on an error nothing is held.
 * The handler maps an error code to its JSON 4xx.
 */
#ifndef EDGE_API_REQUEST_H
#define EDGE_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/ident.h"

/* What a request path names. */
enum api_resource {
	API_RES_NONE = 0,
	API_RES_HEALTHZ,	/* /healthz */
	API_RES_METRICS,	/* /metrics */
	API_RES_CHALLENGES,	/* /v1/challenges */
	API_RES_HTTP01,		/* /v1/http-01/{token} */
	API_RES_TLSALPN01,	/* /v1/tls-alpn-01/{identifier} */
	API_RES_ROOT,		/* /: the status page */
	API_RES_STATUS,		/* /v1/status */
};

/* Longest path segment taken, before and after percent-decoding. */
#define API_NAME_MAX 511

enum api_req_error {
	API_REQ_OK = 0,
	API_REQ_BAD_TARGET = -1,	/* the path does not start with '/' */
	API_REQ_BAD_SEGMENT = -2,	/* a challenge path without exactly one segment */
	API_REQ_NO_ROUTE = -3,		/* no resource at that path */
	API_REQ_TOO_LARGE = -4,		/* the body is over max_body */
	API_REQ_BAD_JSON = -5,		/* not a JSON object (what: why) */
	API_REQ_UNKNOWN_FIELD = -6,	/* what: the field */
	API_REQ_FIELD_TYPE = -7,	/* a field that is not a string */
	API_REQ_BAD_TTL = -8,		/* ttl not a whole number of seconds */
	API_REQ_KEYAUTH_TOO_LONG = -9,	/* text body over KEYAUTH_MAX */
	API_REQ_KEYAUTH_NUL = -10,	/* NUL byte in a text body */
	API_REQ_BAD_QUERY = -11,	/* malformed query string */
	API_REQ_UNKNOWN_PARAM = -12,	/* what: the parameter */
	API_REQ_IDENT_TOO_LONG = -13,	/* ?identifier= longer than any name */
	API_REQ_QUERY_NUL = -14,	/* a query value decodes to a NUL byte */
};

struct api_target {
	enum api_resource res;
	/* HTTP01 and TLSALPN01: the last segment, percent-decoded, no NUL in it */
	char name[API_NAME_MAX + 1];
	size_t name_len;
};

/*
 * Parses a request path (without query or fragment), as the client sent it.
 * The resource paths are exact: "/healthz/" or "/v1/challenges/x" are no
 * route. A challenge path takes exactly one more segment, which is
 * percent-decoded ('+' stays '+'); "%2F" decodes to a '/' inside the name.
 * Returns API_REQ_OK, or BAD_TARGET, BAD_SEGMENT (with out->res set to the
 * challenge resource, so the error is counted under its route) or NO_ROUTE.
 */
int api_target_parse(const char *path, size_t len, struct api_target *out);

#define API_WHAT_MAX 255

/*
 * What a PUT carries, in either form: a text body (the key authorization,
 * white space around it trimmed) with ?identifier= and ?ttl= in the query,
 * or a JSON object with the fields below. A field given in the JSON body
 * wins over the same parameter in the query, and the first of repeated
 * parameters wins. The string pointers point into this struct or into
 * json; absent fields are NULL.
 */
struct api_put {
	json_t *json;			/* owned; NULL for a text body */
	const char *key_authorization;
	const char *identifier;
	const char *digest;
	const char *certificate;
	const char *key;
	int64_t ttl_s;			/* -1: absent */
	size_t body_len;
	/* BAD_JSON, UNKNOWN_FIELD, UNKNOWN_PARAM: what is wrong, cut to fit */
	char what[API_WHAT_MAX + 1];
	char text[KEYAUTH_MAX + 1];
	char query_ident[IDENT_NAME_MAX + 3];	/* room for "[v6]" and a dot */
};

/*
 * Parses a PUT's body (len bytes) and query string (NULL when the target
 * had no '?'). Checks in this order, and the first failure is the result:
 * the body's size against max_body, the body, the query. Returns
 * API_REQ_OK, after which the caller releases out with api_put_release(),
 * or an error code with nothing held (out->what and out->body_len still
 * describe it).
 */
int api_put_parse(const char *body, size_t len, const char *query,
		  size_t query_len, size_t max_body, struct api_put *out);

/* Frees what a successful api_put_parse() holds; safe to call twice. */
void api_put_release(struct api_put *p);

#endif
