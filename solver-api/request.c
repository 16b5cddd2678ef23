/*
 * The solver API's request parser (request.h): paths, query strings and PUT
 * bodies. Percent-decoding follows what evhttp did for the API before this
 * parser existed, so that clients see the same answers: "%XX" with two hex
 * digits is one byte, any other '%' stays as it is, and '+' means a space in
 * query values only.
 */
#include "solver-api/request.h"

#include <string.h>

/* The resources with a fixed path, and the two that take one segment. */
static const struct {
	const char *path;
	enum api_resource res;
} exact_paths[] = {
	{"/healthz", API_RES_HEALTHZ},
	{"/metrics", API_RES_METRICS},
	{"/v1/challenges", API_RES_CHALLENGES},
	{"/", API_RES_ROOT},
	{"/v1/status", API_RES_STATUS},
};

static const struct {
	const char *prefix;
	enum api_resource res;
} segment_paths[] = {
	{"/v1/http-01/", API_RES_HTTP01},
	{"/v1/tls-alpn-01/", API_RES_TLSALPN01},
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether s[0..len) is exactly the NUL-terminated word w. */
static bool bytes_are(const char *s, size_t len, const char *w)
{
	return strlen(w) == len && memcmp(s, w, len) == 0;
}

/* The next decoded byte of s[0..len) from *i on, moving *i past it. */
static unsigned char pct_next(const char *s, size_t len, size_t *i, bool plus)
{
	unsigned char c = (unsigned char)s[*i];
	int hi, lo;

	if (c == '%' && *i + 2 < len &&
	    (hi = hex_digit((uint8_t)s[*i + 1])) >= 0 &&
	    (lo = hex_digit((uint8_t)s[*i + 2])) >= 0) {
		*i += 3;
		return (unsigned char)(hi << 4 | lo);
	}
	(*i)++;
	return plus && c == '+' ? ' ' : c;
}

int api_target_parse(const char *path, size_t len, struct api_target *out)
{
	out->res = API_RES_NONE;
	out->name[0] = '\0';
	out->name_len = 0;
	if (len == 0 || path[0] != '/')
		return API_REQ_BAD_TARGET;
	for (size_t k = 0; k < ARRAY_SIZE(exact_paths); k++) {
		if (bytes_are(path, len, exact_paths[k].path)) {
			out->res = exact_paths[k].res;
			return API_REQ_OK;
		}
	}
	for (size_t k = 0; k < ARRAY_SIZE(segment_paths); k++) {
		size_t plen = strlen(segment_paths[k].prefix);

		if (len < plen || memcmp(path, segment_paths[k].prefix, plen) != 0)
			continue;
		out->res = segment_paths[k].res;
		const char *rest = path + plen;
		size_t rlen = len - plen, i = 0, n = 0;

		if (rlen == 0 || rlen > API_NAME_MAX || memchr(rest, '/', rlen))
			return API_REQ_BAD_SEGMENT;
		while (i < rlen) {
			unsigned char c = pct_next(rest, rlen, &i, false);
			if (c == '\0')
				return API_REQ_BAD_SEGMENT;
			out->name[n++] = (char)c;
		}
		out->name[n] = '\0';
		out->name_len = n;
		return API_REQ_OK;
	}
	return API_REQ_NO_ROUTE;
}

/* Copies a name into p->what, cut to fit. */
static void set_what(struct api_put *p, const char *s, size_t len)
{
	if (len > API_WHAT_MAX)
		len = API_WHAT_MAX;
	memcpy(p->what, s, len);
	p->what[len] = '\0';
}

static int fail(struct api_put *p, int code)
{
	api_put_release(p);
	return code;
}

/* A JSON field that must be a string when present; sets *bad otherwise. */
static const char *json_str(json_t *obj, const char *key, bool *bad)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

static int parse_json(const char *body, size_t len, struct api_put *p)
{
	static const char *const fields[] = {
		"key_authorization", "identifier", "ttl", "digest",
		"certificate", "key",
	};
	json_error_t jerr;
	bool bad = false;
	const char *k;
	json_t *v, *ttl;

	p->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!p->json || !json_is_object(p->json)) {
		if (p->json)
			set_what(p, "not an object", 13);
		else
			set_what(p, jerr.text, strnlen(jerr.text, sizeof(jerr.text)));
		return API_REQ_BAD_JSON;
	}
	json_object_foreach(p->json, k, v) {
		size_t f = 0;
		while (f < ARRAY_SIZE(fields) && strcmp(k, fields[f]) != 0)
			f++;
		if (f == ARRAY_SIZE(fields)) {
			set_what(p, k, strlen(k));
			return API_REQ_UNKNOWN_FIELD;
		}
	}
	p->key_authorization = json_str(p->json, "key_authorization", &bad);
	p->identifier = json_str(p->json, "identifier", &bad);
	p->digest = json_str(p->json, "digest", &bad);
	p->certificate = json_str(p->json, "certificate", &bad);
	p->key = json_str(p->json, "key", &bad);
	if (bad)
		return API_REQ_FIELD_TYPE;
	ttl = json_object_get(p->json, "ttl");
	if (ttl && !json_is_null(ttl)) {
		if (!json_is_integer(ttl) || json_integer_value(ttl) < 0)
			return API_REQ_BAD_TTL;
		p->ttl_s = json_integer_value(ttl);
	}
	return API_REQ_OK;
}

/* Text: the key authorization, white space around it trimmed. */
static int parse_text(const char *body, size_t start, size_t end,
		      struct api_put *p)
{
	while (end > start && is_space(body[end - 1]))
		end--;
	if (end - start > KEYAUTH_MAX)
		return API_REQ_KEYAUTH_TOO_LONG;
	if (end == start)
		return API_REQ_OK;
	if (memchr(body + start, '\0', end - start))
		return API_REQ_KEYAUTH_NUL;
	memcpy(p->text, body + start, end - start);
	p->text[end - start] = '\0';
	p->key_authorization = p->text;
	return API_REQ_OK;
}

/* A decimal ttl: digits only, at least one, within int64_t. */
static int query_ttl(const char *v, size_t len, int64_t *out)
{
	int64_t n = 0;
	size_t i = 0, digits = 0;

	while (i < len) {
		unsigned char c = pct_next(v, len, &i, true);
		if (c == '\0')
			return API_REQ_QUERY_NUL;
		if (c < '0' || c > '9')
			return API_REQ_BAD_TTL;
		if (n > (INT64_MAX - (c - '0')) / 10)
			return API_REQ_BAD_TTL;
		n = n * 10 + (c - '0');
		digits++;
	}
	if (digits == 0)
		return API_REQ_BAD_TTL;
	*out = n;
	return API_REQ_OK;
}

/* The identifier parameter, decoded into p->query_ident. */
static int query_ident(const char *v, size_t len, struct api_put *p)
{
	size_t i = 0, n = 0;

	while (i < len) {
		unsigned char c = pct_next(v, len, &i, true);
		if (c == '\0')
			return API_REQ_QUERY_NUL;
		if (n + 1 >= sizeof(p->query_ident))
			return API_REQ_IDENT_TOO_LONG;
		p->query_ident[n++] = (char)c;
	}
	p->query_ident[n] = '\0';
	p->identifier = p->query_ident;
	return API_REQ_OK;
}

/*
 * "k=v&k=v": every pair needs a non-empty key and an '='; keys are taken as
 * sent, values are decoded. A trailing '&' is allowed, an empty pair
 * elsewhere is not. The whole string is checked before any pair is used.
 */
static int parse_query(const char *q, size_t len, struct api_put *p)
{
	for (int pass = 0; pass < 2; pass++) {
		size_t i = 0;

		while (i < len) {
			const char *amp = memchr(q + i, '&', len - i);
			size_t j = amp ? (size_t)(amp - q) : len;
			const char *eq = memchr(q + i, '=', j - i);
			const char *key = q + i;
			size_t klen = eq ? (size_t)(eq - key) : 0;
			int rc = API_REQ_OK;

			i = j + 1;
			if (pass == 0) {
				if (!eq || klen == 0)
					return API_REQ_BAD_QUERY;
				continue;
			}
			const char *val = eq + 1;
			size_t vlen = (size_t)(q + j - val);
			if (bytes_are(key, klen, "identifier")) {
				if (!p->identifier)
					rc = query_ident(val, vlen, p);
			} else if (bytes_are(key, klen, "ttl")) {
				if (p->ttl_s < 0)
					rc = query_ttl(val, vlen, &p->ttl_s);
			} else {
				set_what(p, key, klen);
				rc = API_REQ_UNKNOWN_PARAM;
			}
			if (rc != API_REQ_OK)
				return rc;
		}
	}
	return API_REQ_OK;
}

int api_put_parse(const char *body, size_t len, const char *query,
		  size_t query_len, size_t max_body, struct api_put *out)
{
	size_t start = 0;
	int rc;

	memset(out, 0, offsetof(struct api_put, text));
	out->text[0] = '\0';
	out->query_ident[0] = '\0';
	out->ttl_s = -1;
	out->body_len = len;
	if (len > max_body)
		return API_REQ_TOO_LARGE;
	while (start < len && is_space(body[start]))
		start++;
	if (start < len && body[start] == '{')
		rc = parse_json(body, len, out);
	else
		rc = parse_text(body, start, len, out);
	if (rc == API_REQ_OK && query)
		rc = parse_query(query, query_len, out);
	return rc == API_REQ_OK ? rc : fail(out, rc);
}

void api_put_release(struct api_put *p)
{
	json_decref(p->json);
	p->json = NULL;
	if (p->key_authorization != p->text)
		p->key_authorization = NULL;
	if (p->identifier != p->query_ident)
		p->identifier = NULL;
	p->digest = p->certificate = p->key = NULL;
}
