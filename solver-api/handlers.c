/*
 * The challenge handlers: PUT and DELETE of http-01 and tls-alpn-01
 * entries, and the listing. Each runs after the router authenticated the
 * client, and ends in exactly one reply.
 *
 * Every write to the store goes through apply_put()/apply_delete(), so
 * nothing else may call store_put or store_delete (both are static here
 * for that reason). In a cluster (cluster.h) a handler hands its write to
 * the cluster instead, and the cluster applies every node's writes, this
 * node's included, through the same two functions (handlers_cluster_hooks).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/sha.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/certgen.h"
#include "solver-api/cluster.h"
#include "solver-api/internal.h"

#define CERT_VALID_S (7 * 86400)

/* ---- the write path: the only calls into the store's writer API ------- */

/*
 * The entry stored under e's kind and key, live or expired, into
 * api->previous: what a put replaces or a delete removes.
 */
static bool find_previous(struct api *api, enum store_kind kind,
			  const char *key, size_t key_len)
{
	return store_lookup(api->store, kind, key, key_len, INT64_MIN,
			    &api->previous) == 0;
}

static int apply_put(struct api *api, struct store_entry *e)
{
	bool had = find_previous(api, e->kind, e->key, e->key_len);
	int ret = store_put(api->store, e, clock_wall_ms());

	if (ret < 0)
		return ret;
	if (ret == 1 && had)
		quota_note_free(&api->quota, api->previous.slot);
	quota_note_put(&api->quota, e);
	return ret;
}

static int apply_delete(struct api *api, enum store_kind kind, const char *key,
			size_t key_len)
{
	bool had = find_previous(api, kind, key, key_len);
	int ret = store_delete(api->store, kind, key, key_len);

	if (ret == 0 && had)
		quota_note_free(&api->quota, api->previous.slot);
	return ret;
}

static int hook_put(void *arg, struct store_entry *e)
{
	return apply_put(arg, e);
}

static int hook_delete(void *arg, enum store_kind kind, const char *key,
		       size_t key_len)
{
	return apply_delete(arg, kind, key, key_len);
}

void handlers_cluster_hooks(struct api *api, struct cluster_hooks *out)
{
	*out = (struct cluster_hooks){api, hook_put, hook_delete, api->store};
}

/* ---- reading and checking what a PUT carries ------------------------- */

/*
 * The 4xx of each error of the request parser: the detail is pre, then the
 * parser's what (cut to what_max, none when 0), then post.
 */
static const struct put_error {
	int err;
	int status;
	const char *word;
	const char *pre;
	int what_max;
	const char *post;
} put_errors[] = {
	{API_REQ_BAD_JSON, 400, "bad_json", "the body is not a JSON object: ",
	 API_WHAT_MAX, ""},
	{API_REQ_UNKNOWN_FIELD, 400, "bad_json", "unknown field \"", API_WHAT_MAX,
	 "\""},
	{API_REQ_FIELD_TYPE, 400, "bad_json",
	 "fields must be strings (ttl a number)", 0, ""},
	{API_REQ_BAD_TTL, 400, "bad_ttl", "ttl must be a whole number of seconds",
	 0, ""},
	{API_REQ_KEYAUTH_NUL, 400, "bad_key_authorization", "NUL byte in the body",
	 0, ""},
	{API_REQ_UNKNOWN_PARAM, 400, "bad_query", "unknown parameter \"", 64, "\""},
	{API_REQ_QUERY_NUL, 400, "bad_query",
	 "a query value holds a NUL byte (%00)", 0, ""},
	{API_REQ_IDENT_TOO_LONG, 400, "bad_identifier",
	 "identifier is longer than any DNS name", 0, ""},
	/* last: also the answer to a code this table does not know */
	{API_REQ_BAD_QUERY, 400, "bad_query", "malformed query string", 0, ""},
};

/* Parses the body and query into pb; returns 0, or -1 after replying. */
static int read_put_body(struct req_ctx *rc, struct api_put *pb)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(rc->req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(rc->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	uint32_t max = rc->api->cfg->api.max_body;
	size_t len = evbuffer_get_length(in), i = 0;
	const char *body = NULL;
	int err;

	/* An oversized body is refused without being made contiguous. */
	if (len && len <= max)
		body = (const char *)evbuffer_pullup(in, -1);
	err = api_put_parse(body ? body : "", len, q, q ? strlen(q) : 0, max, pb);
	if (err == API_REQ_OK)
		return 0;
	if (err == API_REQ_TOO_LARGE) {
		api_reply_error(rc, 413, "body_too_large", "the body is %zu bytes; "
				"the limit is %u", pb->body_len, max);
		return -1;
	}
	if (err == API_REQ_KEYAUTH_TOO_LONG) {
		api_reply_error(rc, 400, "bad_key_authorization", "a key "
				"authorization is at most %d characters",
				KEYAUTH_MAX);
		return -1;
	}
	while (i < ARRAY_SIZE(put_errors) - 1 && put_errors[i].err != err)
		i++;
	const struct put_error *e = &put_errors[i];
	api_reply_error(rc, e->status, e->word, "%s%.*s%s", e->pre, e->what_max,
			e->what_max ? pb->what : "", e->post);
	return -1;
}

/* Checks the TTL against the config; returns the expiry, or -1 after replying. */
static int64_t resolve_expiry(struct req_ctx *rc, int64_t ttl_s, int64_t now)
{
	const struct cfg *cfg = rc->api->cfg;

	if (ttl_s < 0)
		ttl_s = cfg->api.default_ttl_s;
	if (ttl_s < 1 || ttl_s > cfg->api.max_ttl_s) {
		api_reply_error(rc, 400, "bad_ttl", "ttl must be 1..%u seconds",
				cfg->api.max_ttl_s);
		return -1;
	}
	return now + ttl_s * 1000;
}

/* Validates an identifier string and the client's scope over it. */
static int check_identifier(struct req_ctx *rc, const char *s, struct ident *id)
{
	if (ident_parse(s, strlen(s), id) != 0) {
		api_reply_error(rc, 400, "bad_identifier", "\"%.260s\" is not a DNS "
				"name or an IP address", s);
		return -1;
	}
	if (!auth_allows(rc->client, id)) {
		api_reply_error(rc, 403, "identifier_not_allowed", "client %s may "
				"not answer for %s", rc->client->name, id->name);
		return -1;
	}
	return 0;
}

/* Checks a key authorization's form and pinned thumbprint. */
static int check_keyauth(struct req_ctx *rc, const char *ka,
			 struct slice *token)
{
	struct slice thumb;

	if (keyauth_split(ka, strlen(ka), token, &thumb) != 0) {
		api_reply_error(rc, 400, "bad_key_authorization", "expected "
				"\"token.thumbprint\" with a base64url token and a "
				"%d-character thumbprint", THUMBPRINT_LEN);
		return -1;
	}
	if (!auth_thumbprint_ok(rc->client, thumb)) {
		api_reply_error(rc, 403, "thumbprint_not_allowed", "client %s is "
				"pinned to other ACME accounts", rc->client->name);
		return -1;
	}
	return 0;
}

/*
 * Refuses to replace an entry another client owns outside this client's
 * scope, and to add one past the client's quota (replacing its own live
 * entry adds none). Returns 0, or -1 after replying.
 */
/*
 * Conditional requests (RFC 9110 §13.1.1-2), for a client that must not
 * overwrite or remove what another wrote meanwhile (acme-edge selftest):
 * "If-None-Match: *" holds only when no entry exists, "If-Match: N" (N the
 * "version" of an answer, quoted or not) only when the entry is at that
 * version. e is the entry, or NULL. Returns 0, or -1 after a 412.
 */
static int check_precondition(struct req_ctx *rc, const struct store_entry *e)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(rc->req);
	const char *none = evhttp_find_header(h, "If-None-Match");
	const char *match = evhttp_find_header(h, "If-Match");
	char *end;
	unsigned long long v;

	if (none && e && strcmp(none, "*") == 0) {
		api_reply_error(rc, 412, "exists", "a %s challenge is stored for "
				"this key already", store_kind_name(e->kind));
		return -1;
	}
	if (!match || strcmp(match, "*") == 0)
		return 0;
	match += *match == '"';
	v = strtoull(match, &end, 10);
	if (!e || end == match || (*end && strcmp(end, "\"")) || e->version != v) {
		api_reply_error(rc, 412, "changed", "the challenge is not at version "
				"%.24s any more", match);
		return -1;
	}
	return 0;
}

static int check_owner(struct req_ctx *rc, enum store_kind kind,
		       const char *key, size_t key_len)
{
	struct api *api = rc->api;
	const struct cfg_client *cl = rc->client;
	int64_t now = clock_wall_ms();
	unsigned held;
	bool exists = store_lookup(api->store, kind, key, key_len, now,
				   &api->existing) == 0;

	if (check_precondition(rc, exists ? &api->existing : NULL))
		return -1;
	if (exists) {
		if (!auth_may_touch(cl, &api->existing)) {
			api_reply_error(rc, 403, "not_owner", "this %s challenge "
					"belongs to another client",
					store_kind_name(kind));
			return -1;
		}
		if (strcmp(api->existing.client, cl->name) == 0)
			return 0;
	}
	/* A quota of the whole store is none: store_full says it better. */
	if (cl->max_entries >= api->cfg->store.capacity)
		return 0;
	held = quota_held(&api->quota, cl->name, now);
	if (held < cl->max_entries)
		return 0;
	api_reply_error(rc, 507, "quota_exceeded", "client %s holds %u "
			"challenges, its quota ([client %s] max_entries = %u); "
			"delete finished ones", cl->name, held, cl->name,
			cl->max_entries);
	return -1;
}

/* ---- storing ---------------------------------------------------------- */

static void fill_meta(struct store_entry *e, enum store_kind kind,
		      const char *key, size_t key_len, const struct ident *id,
		      const struct cfg_client *cl, int64_t now, int64_t expires)
{
	memset(e, 0, offsetof(struct store_entry, payload));
	e->kind = (uint8_t)kind;
	e->key_len = (uint8_t)key_len;
	memcpy(e->key, key, key_len);
	e->key[key_len] = '\0';
	e->ident_len = id ? (uint8_t)id->name_len : 0;
	if (id)
		memcpy(e->ident, id->name, id->name_len + 1);
	e->client_len = (uint8_t)strlen(cl->name);
	memcpy(e->client, cl->name, e->client_len + 1);
	e->created_ms = now;
	e->expires_ms = expires;
}

static json_t *entry_json(const struct store_entry *e)
{
	char created[32], expires[32];

	api_format_time(e->created_ms, created, sizeof(created));
	api_format_time(e->expires_ms, expires, sizeof(expires));
	return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:I}",
			 "kind", store_kind_name(e->kind),
			 e->kind == STORE_HTTP01 ? "token" : "name", e->key,
			 "identifier", e->ident_len ? e->ident : NULL,
			 "client", e->client, "created", created, "expires", expires,
			 "version", (json_int_t)e->version);
}

static void log_put(const struct cfg_client *cl, const struct store_entry *e)
{
	log_info("api: client %s put %s %s%s (expires in %llds)",
		 cl->name, store_kind_name(e->kind),
		 e->kind == STORE_HTTP01 ? "token for " : "", e->ident_len ? e->ident
		 : (e->kind == STORE_HTTP01 ? "any name" : e->key),
		 (long long)((e->expires_ms - e->created_ms) / 1000));
}

/* ---- writes that wait for the cluster --------------------------------- */

/*
 * A request whose reply waits for the cluster. It outlives the handler, so
 * it holds copies: the client's name (a reload may free the config) and
 * the request context (evhttp keeps the request until a reply is sent,
 * even when the client went away meanwhile).
 */
struct deferred {
	struct req_ctx rc;
	struct cfg_client client;	/* the name only */
	enum store_kind kind;
	char key[STORE_KEY_MAX + 1];
};

static struct deferred *defer(struct req_ctx *rc)
{
	struct deferred *d = calloc(1, sizeof(*d));

	BUG_ON(!d);
	d->rc = *rc;
	memcpy(d->client.name, rc->client->name, sizeof(d->client.name));
	d->rc.client = &d->client;
	return d;
}

/* The answers a replicated write gets when it did not complete. */
static bool cluster_failed(struct req_ctx *rc, const struct cluster_result *r)
{
	json_t *nodes;

	switch (r->outcome) {
	case CLUSTER_ACKED:
		return false;
	case CLUSTER_TIMED_OUT:
		nodes = json_array();
		for (size_t i = 0; i < r->nmissing; i++)
			json_array_append_new(nodes, json_string(r->missing[i]));
		log_warn("api: %s from %s client %s: 504 ack_timeout (%u of %u "
			 "needed confirmed)", metrics_route_name(rc->route), rc->peer,
			 rc->client->name, r->acked, r->needed);
		api_reply_json(rc, 504, json_pack("{s:s, s:s, s:o, s:i, s:i}",
						  "error", "ack_timeout", "detail",
						  r->detail, "nodes", nodes,
						  "acknowledged", (int)r->acked,
						  "needed", (int)r->needed));
		return true;
	case CLUSTER_STORE_FULL:
		api_reply_error(rc, 507, "store_full", "%s", r->detail);
		return true;
	default:
		api_reply_error(rc, 503, "cluster_unavailable", "%s", r->detail);
		return true;
	}
}

static void put_replicated(void *arg, const struct cluster_result *r)
{
	struct deferred *d = arg;

	if (!cluster_failed(&d->rc, r)) {
		log_put(d->rc.client, r->entry);
		api_reply_json(&d->rc, put_status(&d->rc, r->store_ret == 1),
			       entry_json(r->entry));
	}
	free(d);
}

static void delete_replicated(void *arg, const struct cluster_result *r)
{
	struct deferred *d = arg;

	if (!cluster_failed(&d->rc, r)) {
		log_info("api: client %s deleted %s %s", d->client.name,
			 store_kind_name(d->kind), d->key);
		api_reply_raw(&d->rc, 204, NULL, NULL, 0);
	}
	free(d);
}

/* Hands a write to the cluster; its callback replies. */
static void replicate(struct req_ctx *rc, const struct store_entry *put,
		      enum store_kind kind, const char *key)
{
	struct deferred *d = defer(rc);
	const char *why;
	int ret;

	d->kind = kind;
	snprintf(d->key, sizeof(d->key), "%s", key);
	ret = put ? cluster_put(rc->api->cluster, put, put_replicated, d, &why)
		  : cluster_delete(rc->api->cluster, kind, key, strlen(key),
				   rc->api->existing.expires_ms, delete_replicated,
				   d, &why);
	if (ret != 0) {
		free(d);
		api_reply_error(rc, 503, "cluster_unavailable", "%s", why);
	}
}

/* Stores e and answers 201/200, or 507 when the store is full. */
static void finish_put(struct req_ctx *rc, struct store_entry *e)
{
	int ret;

	if (rc->api->cluster) {
		replicate(rc, e, (enum store_kind)e->kind, e->key);
		return;
	}
	ret = apply_put(rc->api, e);

	if (ret == -ENOSPC) {
		api_reply_error(rc, 507, "store_full", "the token store holds %u "
				"challenges already; raise [store] capacity or "
				"delete finished ones", rc->api->cfg->store.capacity);
		return;
	}
	if (ret < 0) {
		log_err("api: store_put: %s", strerror(-ret));
		api_reply_error(rc, 500, "store_error", "%s", strerror(-ret));
		return;
	}
	log_put(rc->client, e);
	api_reply_json(rc, put_status(rc, ret == 1), entry_json(e));
}

/* ---- the handlers ----------------------------------------------------- */

static bool token_ok(struct req_ctx *rc, const char *token)
{
	if (token_valid(token, strlen(token)))
		return true;
	api_reply_error(rc, 400, "bad_token", "an http-01 token is %d..%d "
			"base64url characters", TOKEN_MIN, TOKEN_MAX);
	return false;
}

void handle_put_http01(struct req_ctx *rc)
{
	struct api_put pb;

	if (!token_ok(rc, rc->target.name) || read_put_body(rc, &pb))
		return;
	http01_put(rc, rc->target.name, &pb);
	api_put_release(&pb);
}

void http01_put(struct req_ctx *rc, const char *token, const struct api_put *pb)
{
	struct store_entry *e = &rc->api->scratch;
	struct ident id;
	struct slice ka_token;
	bool bound = false;
	int64_t now = clock_wall_ms(), expires;

	if (pb->digest || pb->certificate || pb->key) {
		api_reply_error(rc, 400, "bad_json", "digest, certificate and key "
				"are for tls-alpn-01");
		return;
	}
	if (!pb->key_authorization) {
		api_reply_error(rc, 400, "bad_key_authorization", "the body must "
				"carry the key authorization");
		return;
	}
	if (check_keyauth(rc, pb->key_authorization, &ka_token))
		return;
	if (ka_token.len != strlen(token) ||
	    memcmp(ka_token.ptr, token, ka_token.len) != 0) {
		api_reply_error(rc, 400, "bad_key_authorization", "the key "
				"authorization is for another token");
		return;
	}
	if (pb->identifier) {
		if (check_identifier(rc, pb->identifier, &id))
			return;
		bound = true;
	} else if (!rc->client->any) {
		api_reply_error(rc, 400, "identifier_required", "client %s may "
				"answer only for its own names, so it must bind the "
				"token to an identifier", rc->client->name);
		return;
	}
	expires = resolve_expiry(rc, pb->ttl_s, now);
	if (expires < 0)
		return;
	if (check_owner(rc, STORE_HTTP01, token, strlen(token)))
		return;

	fill_meta(e, STORE_HTTP01, token, strlen(token), bound ? &id : NULL,
		  rc->client, now, expires);
	e->payload_len = (uint32_t)strlen(pb->key_authorization);
	memcpy(e->payload, pb->key_authorization, e->payload_len);
	finish_put(rc, e);
}

/*
 * The digest a tls-alpn-01 certificate carries, from the key authorization
 * or as sent; pb->certificate/key carry none. Returns 0, or -1 after
 * replying.
 */
static int tlsalpn01_digest(struct req_ctx *rc, const struct api_put *pb,
			    uint8_t digest[32])
{
	struct slice tok;

	if (pb->key_authorization) {
		if (check_keyauth(rc, pb->key_authorization, &tok))
			return -1;
		SHA256((const unsigned char *)pb->key_authorization,
		       strlen(pb->key_authorization), digest);
	} else if (pb->digest &&
		   digest_hex_decode(pb->digest, strlen(pb->digest), digest) != 0) {
		api_reply_error(rc, 400, "bad_digest", "digest must be the SHA-256 "
				"of the key authorization as 64 hex digits (colons "
				"allowed)");
		return -1;
	}
	return 0;
}

/* Builds or imports the certificate and key; returns 0, or -1 after replying. */
static int tlsalpn01_cert(struct req_ctx *rc, const struct api_put *pb,
			  const struct ident *id, const uint8_t digest[32],
			  struct certgen_der *der)
{
	char err[256];

	if (pb->certificate || pb->key) {
		if (!pb->certificate || !pb->key) {
			api_reply_error(rc, 400, "bad_certificate", "send both "
					"certificate and key, in PEM");
			return -1;
		}
		if (certgen_import_pem(pb->certificate, strlen(pb->certificate),
				       pb->key, strlen(pb->key), id, der, err,
				       sizeof(err)) != 0) {
			api_reply_error(rc, 400, "bad_certificate", "%s", err);
			return -1;
		}
	} else if (certgen_build(id, digest, CERT_VALID_S, der, err,
				 sizeof(err)) != 0) {
		log_err("api: certificate for %s: %s", id->name, err);
		api_reply_error(rc, 500, "certificate_error", "%s", err);
		return -1;
	}
	if (der->cert_len + der->key_len > STORE_PAYLOAD_MAX) {
		api_reply_error(rc, 400, "bad_certificate", "certificate and key "
				"take %zu bytes; the store holds at most %d",
				der->cert_len + der->key_len, STORE_PAYLOAD_MAX);
		return -1;
	}
	return 0;
}

void handle_put_tlsalpn01(struct req_ctx *rc)
{
	const char *name = rc->target.name;
	struct store_entry *e = &rc->api->scratch;
	struct certgen_der der = {0};
	struct api_put pb;
	struct ident id, other;
	uint8_t digest[32];
	char sni[IDENT_NAME_MAX + 1];
	int64_t now = clock_wall_ms(), expires;
	int forms;

	if (check_identifier(rc, name, &id) || read_put_body(rc, &pb))
		return;
	if (pb.identifier && strcmp(pb.identifier, name) != 0 &&
	    (ident_parse(pb.identifier, strlen(pb.identifier), &other) ||
	     strcmp(other.name, id.name) != 0)) {
		api_reply_error(rc, 400, "bad_identifier", "the body names another "
				"identifier than the path");
		goto out;
	}
	forms = !!pb.key_authorization + !!pb.digest + !!(pb.certificate || pb.key);
	if (forms != 1) {
		api_reply_error(rc, 400, "bad_body", "send exactly one of: the key "
				"authorization, its SHA-256 digest, or a certificate "
				"and key");
		goto out;
	}
	if (rc->client->nthumbprints && !pb.key_authorization) {
		api_reply_error(rc, 403, "thumbprint_not_allowed", "client %s is "
				"pinned to ACME accounts, so it must send the key "
				"authorization itself", rc->client->name);
		goto out;
	}
	expires = resolve_expiry(rc, pb.ttl_s, now);
	if (expires < 0 || tlsalpn01_digest(rc, &pb, digest))
		goto out;
	if (ident_sni_name(&id, sni, sizeof(sni)) < 0) {
		api_reply_error(rc, 500, "internal", "cannot form the SNI name");
		goto out;
	}
	if (check_owner(rc, STORE_TLSALPN01, sni, strlen(sni)) ||
	    tlsalpn01_cert(rc, &pb, &id, digest, &der))
		goto out;
	fill_meta(e, STORE_TLSALPN01, sni, strlen(sni), &id, rc->client, now,
		  expires);
	e->cert_len = (uint32_t)der.cert_len;
	e->payload_len = (uint32_t)(der.cert_len + der.key_len);
	memcpy(e->payload, der.cert, der.cert_len);
	memcpy(e->payload + der.cert_len, der.key, der.key_len);
	finish_put(rc, e);
out:
	certgen_der_free(&der);
	api_put_release(&pb);
}

static void delete_entry(struct req_ctx *rc, enum store_kind kind,
			 const char *key)
{
	struct api *api = rc->api;

	if (store_lookup(api->store, kind, key, strlen(key), clock_wall_ms(),
			 &api->existing) != 0)
		goto not_found;
	if (!auth_may_touch(rc->client, &api->existing)) {
		api_reply_error(rc, 403, "not_owner", "this %s challenge belongs "
				"to another client", store_kind_name(kind));
		return;
	}
	if (check_precondition(rc, &api->existing))
		return;
	if (api->cluster) {
		replicate(rc, NULL, kind, key);
		return;
	}
	if (apply_delete(api, kind, key, strlen(key)) != 0)
		goto not_found;
	log_info("api: client %s deleted %s %s", rc->client->name,
		 store_kind_name(kind), key);
	api_reply_raw(rc, 204, NULL, NULL, 0);
	return;
not_found:
	api_reply_error(rc, 404, "not_found", "no %s challenge for \"%.260s\"",
			store_kind_name(kind), key);
}

void handle_delete_http01(struct req_ctx *rc)
{
	http01_delete(rc, rc->target.name);
}

void http01_delete(struct req_ctx *rc, const char *token)
{
	if (token_ok(rc, token))
		delete_entry(rc, STORE_HTTP01, token);
}

void handle_delete_tlsalpn01(struct req_ctx *rc)
{
	const char *name = rc->target.name;
	struct api *api = rc->api;
	struct ident id;
	char sni[IDENT_NAME_MAX + 1];

	if (ident_parse(name, strlen(name), &id) != 0) {
		api_reply_error(rc, 400, "bad_identifier", "\"%.260s\" is not a DNS "
				"name or an IP address", name);
		return;
	}
	if (ident_sni_name(&id, sni, sizeof(sni)) < 0) {
		api_reply_error(rc, 500, "internal", "cannot form the SNI name");
		return;
	}
	/*
	 * Outside the client's scope the answer is the same whether or not an
	 * entry exists, so a client cannot probe other clients' names.
	 */
	if (!auth_allows(rc->client, &id) &&
	    (store_lookup(api->store, STORE_TLSALPN01, sni, strlen(sni),
			  clock_wall_ms(), &api->existing) != 0 ||
	     strcmp(api->existing.client, rc->client->name) != 0)) {
		api_reply_error(rc, 403, "identifier_not_allowed", "client %s may "
				"not answer for %s", rc->client->name, id.name);
		return;
	}
	delete_entry(rc, STORE_TLSALPN01, sni);
}

/* ---- the listing ------------------------------------------------------ */

struct list_ctx {
	const struct cfg_client *client;
	json_t *arr;
	const struct pstats *ps;	/* NULL when no proxy runs */
	const struct cluster *cluster;	/* NULL without [cluster] */
};

static int list_one(const struct store_entry *e, void *arg)
{
	struct list_ctx *lc = arg;
	struct pstats_hit hit;
	char when[32];
	json_t *obj;

	if (!auth_may_touch(lc->client, e))
		return 0;
	obj = entry_json(e);
	/* "Did the CA reach us?": the newest request any worker saw for it. */
	bool local = lc->ps && pstats_last_hit(lc->ps, e->kind, e->key,
					       e->key_len, &hit);
	if (local) {
		api_format_time(hit.time_ms, when, sizeof(when));
		json_object_set_new(obj, "last_hit",
				    json_pack("{s:s, s:s, s:s}", "time", when, "peer",
					      hit.peer, "outcome",
					      pstats_outcome_name(hit.outcome)));
	}
	/* In a cluster, also "which nodes did it reach?". */
	if (lc->cluster) {
		json_t *hits = cluster_hits_json(lc->cluster, e->kind, e->key,
						 e->key_len, local ? &hit : NULL);
		if (hits)
			json_object_set_new(obj, "hits", hits);
	}
	json_array_append_new(lc->arr, obj);
	return 0;
}

void handle_list(struct req_ctx *rc)
{
	struct pstats *ps = metrics_open_pstats(rc->api);
	struct list_ctx lc = {rc->client, json_array(), ps, rc->api->cluster};

	/* Private keys stay in the store: entry_json never reads the payload. */
	store_iterate(rc->api->store, clock_wall_ms(), list_one, &lc,
		      &rc->api->scratch);
	pstats_close(ps);
	api_reply_json(rc, 200, json_pack("{s:o}", "challenges", lc.arr));
}
