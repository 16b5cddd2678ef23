/*
 * The REST API on libevent's evhttp.
 *
 * Every request ends in exactly one reply: handlers return through reply()
 * or reply_error(), which also count the request for /metrics. Every write
 * to the store goes through apply_put()/apply_delete(): that is the seam
 * where replication to other nodes slots in (docs/ARCHITECTURE.md, "The
 * write path"), so nothing else may call store_put or store_delete.
 *
 * Bounds: headers (max_headers), body (max_body; a JSON 413 up to four
 * times that, evhttp's own 413 beyond, so an oversized body is never
 * buffered), per-connection timeout (timeout), and open connections
 * (max_connections: at the cap the listeners stop accepting and the
 * kernel's backlog holds the rest).
 */
#include "solver-api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/sha.h>

#include "solver-api/certgen.h"
#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "stats/pstats.h"
#include "store/store.h"

#define CERT_VALID_S (7 * 86400)
#define METRIC_SLOTS 128
#define PEM_MAX 16384

enum route_id {
	R_PUT_HTTP01,
	R_DELETE_HTTP01,
	R_PUT_TLSALPN01,
	R_DELETE_TLSALPN01,
	R_LIST,
	R_HEALTHZ,
	R_METRICS,
	R_OTHER,
	R_COUNT,
};

static const char *const route_names[R_COUNT] = {
	"put_http01", "delete_http01", "put_tlsalpn01", "delete_tlsalpn01",
	"list", "healthz", "metrics", "other",
};

struct metric {
	uint8_t route;
	uint16_t code;
	uint64_t count;
};

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct cfg *cfg;
	const char *cfg_path;
	struct store *store;
	struct evhttp_bound_socket **bound;
	size_t nbound;
	bool accepting;
	unsigned nconns;
	struct event *sweep_ev;
	struct event *sig_ev[3];
	struct metric metrics[METRIC_SLOTS];
	size_t nmetrics;
	uint64_t conns_refused;		/* times the cap paused accepting */
	struct store_entry scratch;	/* one request at a time: no reentry */
	struct store_entry existing;
};

/* What one request is about; filled step by step by the handlers. */
struct req_ctx {
	struct api *api;
	struct evhttp_request *req;
	enum route_id route;
	const struct cfg_client *client;
	char peer[ADDR_STRLEN];
};

/* ---- replies ---------------------------------------------------------- */

static void count_request(struct api *api, enum route_id route, int code)
{
	for (size_t i = 0; i < api->nmetrics; i++) {
		if (api->metrics[i].route == route && api->metrics[i].code == code) {
			api->metrics[i].count++;
			return;
		}
	}
	if (api->nmetrics < METRIC_SLOTS) {
		api->metrics[api->nmetrics++] =
			(struct metric){(uint8_t)route, (uint16_t)code, 1};
	}
}

static const char *reason_for(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	}
	return "Status";
}

static void reply_raw(struct req_ctx *rc, int code, const char *ctype,
		      const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	struct evbuffer *out = evbuffer_new();

	BUG_ON(!out);
	if (ctype)
		evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (body && len)
		evbuffer_add(out, body, len);
	count_request(rc->api, rc->route, code);
	evhttp_send_reply(rc->req, code, reason_for(code), code == 204 ? NULL : out);
	evbuffer_free(out);
}

/* Sends obj as the body and releases it. */
static void reply_json(struct req_ctx *rc, int code, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	BUG_ON(!s);
	reply_raw(rc, code, "application/json", s, strlen(s));
	free(s);
	json_decref(obj);
}

/* {"error": what, "detail": why}: what is a stable word for scripts. */
static void reply_error(struct req_ctx *rc, int code, const char *what,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply_error(struct req_ctx *rc, int code, const char *what,
			const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(rc->req),
				  "WWW-Authenticate", "Bearer realm=\"acme-edge\"");
	log_info("api: %s %s from %s%s%s: %d %s (%s)",
		 route_names[rc->route], evhttp_request_get_uri(rc->req), rc->peer,
		 rc->client ? " client " : "", rc->client ? rc->client->name : "",
		 code, what, detail);
	reply_json(rc, code, json_pack("{s:s, s:s}", "error", what, "detail",
				       detail));
}

static void format_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the write path: the only calls into the store's writer API ------- */

static int apply_put(struct api *api, struct store_entry *e)
{
	return store_put(api->store, e, clock_wall_ms());
}

static int apply_delete(struct api *api, enum store_kind kind, const char *key,
			size_t key_len)
{
	return store_delete(api->store, kind, key, key_len);
}

/* ---- authentication and scope ---------------------------------------- */

static bool client_allows(const struct cfg_client *cl, const struct ident *id)
{
	for (size_t i = 0; i < cl->npatterns; i++)
		if (pattern_match(&cl->patterns[i], id))
			return true;
	return false;
}

/*
 * Whether a client may replace or delete an entry: its own, or one bound to
 * a name inside its scope. Unbound http-01 entries of other clients are off
 * limits except to clients that may answer for any name.
 */
static bool client_may_touch(const struct cfg_client *cl,
			     const struct store_entry *e)
{
	struct ident id;

	if (cl->any || strcmp(e->client, cl->name) == 0)
		return true;
	if (e->ident_len == 0 || ident_parse(e->ident, e->ident_len, &id) != 0)
		return false;
	return client_allows(cl, &id);
}

/* Returns 0 with rc->client set, or -1 after replying 401/403. */
static int authenticate(struct req_ctx *rc)
{
	const char *auth = evhttp_find_header(
		evhttp_request_get_input_headers(rc->req), "Authorization");
	uint8_t digest[SHA256_DIGEST_LENGTH];
	const struct cfg_client *cl;
	const struct sockaddr *sa;

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
		reply_error(rc, 401, "unauthorized",
			    "send Authorization: Bearer <token>");
		return -1;
	}
	SHA256((const unsigned char *)auth + 7, strlen(auth + 7), digest);
	cl = cfg_client_by_token(rc->api->cfg, digest);
	if (!cl) {
		reply_error(rc, 401, "unauthorized", "unknown bearer token");
		return -1;
	}
	rc->client = cl;
	if (cl->ncidrs) {
		sa = evhttp_connection_get_addr(evhttp_request_get_connection(rc->req));
		bool ok = false;
		for (size_t i = 0; sa && !ok && i < cl->ncidrs; i++)
			ok = cidr_match(&cl->cidrs[i], sa);
		if (!ok) {
			reply_error(rc, 403, "source_not_allowed",
				    "client %s may not connect from %s", cl->name,
				    rc->peer);
			return -1;
		}
	}
	return 0;
}

static bool thumbprint_pinned_ok(const struct cfg_client *cl,
				 struct slice thumb)
{
	if (cl->nthumbprints == 0)
		return true;
	for (size_t i = 0; i < cl->nthumbprints; i++)
		if (thumb.len == THUMBPRINT_LEN &&
		    memcmp(cl->thumbprints[i], thumb.ptr, THUMBPRINT_LEN) == 0)
			return true;
	return false;
}

/* ---- request bodies ------------------------------------------------- */

/*
 * What a PUT carries, in either form: a text body (the key authorization)
 * with ?identifier= and ?ttl= in the query, or a JSON object.
 */
struct put_body {
	json_t *json;			/* owned; NULL for a text body */
	char text[KEYAUTH_MAX + 2];
	char query_ident[IDENT_NAME_MAX + 3];	/* room for "[v6]" */
	const char *key_authorization;	/* NULL when absent */
	const char *identifier;
	const char *digest;
	const char *certificate;
	const char *key;
	int64_t ttl_s;			/* -1: absent */
};

static int parse_ttl(struct req_ctx *rc, const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		goto bad;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		goto bad;
	*out = v;
	return 0;
bad:
	reply_error(rc, 400, "bad_ttl", "ttl must be a whole number of seconds");
	return -1;
}

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

/* Returns 0, or -1 after replying. */
static int read_put_body(struct req_ctx *rc, struct put_body *pb)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(rc->req);
	size_t len = evbuffer_get_length(in);
	struct api *api = rc->api;
	const char *q;
	struct evkeyvalq query;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(rc->req);

	memset(pb, 0, sizeof(*pb));
	pb->ttl_s = -1;
	if (len > api->cfg->api.max_body) {
		reply_error(rc, 413, "body_too_large", "the body is %zu bytes; the "
			    "limit is %u", len, api->cfg->api.max_body);
		return -1;
	}
	const char *body = (const char *)evbuffer_pullup(in, -1);
	size_t start = 0;
	while (start < len && (body[start] == ' ' || body[start] == '\t' ||
			       body[start] == '\r' || body[start] == '\n'))
		start++;

	if (start < len && body[start] == '{') {
		json_error_t jerr;
		bool bad = false;
		json_t *ttl;

		pb->json = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!pb->json || !json_is_object(pb->json)) {
			reply_error(rc, 400, "bad_json", "the body is not a JSON "
				    "object: %s", pb->json ? "not an object" : jerr.text);
			return -1;
		}
		const char *k;
		json_t *v;
		json_object_foreach(pb->json, k, v) {
			if (strcmp(k, "key_authorization") && strcmp(k, "identifier") &&
			    strcmp(k, "ttl") && strcmp(k, "digest") &&
			    strcmp(k, "certificate") && strcmp(k, "key")) {
				reply_error(rc, 400, "bad_json", "unknown field \"%s\"", k);
				return -1;
			}
		}
		pb->key_authorization = json_str(pb->json, "key_authorization", &bad);
		pb->identifier = json_str(pb->json, "identifier", &bad);
		pb->digest = json_str(pb->json, "digest", &bad);
		pb->certificate = json_str(pb->json, "certificate", &bad);
		pb->key = json_str(pb->json, "key", &bad);
		if (bad) {
			reply_error(rc, 400, "bad_json", "fields must be strings "
				    "(ttl a number)");
			return -1;
		}
		ttl = json_object_get(pb->json, "ttl");
		if (ttl && !json_is_null(ttl)) {
			if (!json_is_integer(ttl) || json_integer_value(ttl) < 0) {
				reply_error(rc, 400, "bad_ttl", "ttl must be a whole "
					    "number of seconds");
				return -1;
			}
			pb->ttl_s = json_integer_value(ttl);
		}
	} else {
		/* Text: the key authorization, trailing white space trimmed. */
		size_t end = len;
		while (end > start && (body[end - 1] == ' ' || body[end - 1] == '\t' ||
				       body[end - 1] == '\r' || body[end - 1] == '\n'))
			end--;
		if (end - start > KEYAUTH_MAX) {
			reply_error(rc, 400, "bad_key_authorization",
				    "a key authorization is at most %d characters",
				    KEYAUTH_MAX);
			return -1;
		}
		if (end > start) {
			memcpy(pb->text, body + start, end - start);
			pb->text[end - start] = '\0';
			if (strlen(pb->text) != end - start) {
				reply_error(rc, 400, "bad_key_authorization",
					    "NUL byte in the body");
				return -1;
			}
			pb->key_authorization = pb->text;
		}
	}

	/* The query may carry identifier and ttl for either form. */
	q = uri ? evhttp_uri_get_query(uri) : NULL;
	if (q) {
		if (evhttp_parse_query_str(q, &query) != 0) {
			reply_error(rc, 400, "bad_query", "malformed query string");
			return -1;
		}
		int rcode = 0;
		struct evkeyval *kv;
		TAILQ_FOREACH(kv, &query, next) {
			if (strcmp(kv->key, "identifier") == 0 && !pb->identifier) {
				if (strlen(kv->value) >= sizeof(pb->query_ident)) {
					rcode = -2;
					break;
				}
				strcpy(pb->query_ident, kv->value);
				pb->identifier = pb->query_ident;
			} else if (strcmp(kv->key, "ttl") == 0 && pb->ttl_s < 0) {
				if (parse_ttl(rc, kv->value, &pb->ttl_s)) {
					rcode = -1;
					break;
				}
			} else if (strcmp(kv->key, "identifier") != 0 &&
				   strcmp(kv->key, "ttl") != 0) {
				reply_error(rc, 400, "bad_query", "unknown parameter "
					    "\"%.64s\"", kv->key);
				rcode = -1;
				break;
			}
		}
		evhttp_clear_headers(&query);
		if (rcode == -2) {
			reply_error(rc, 400, "bad_identifier", "identifier is longer "
				    "than any DNS name");
			return -1;
		}
		if (rcode)
			return -1;
	}
	return 0;
}

/* Checks the TTL against the config; returns the expiry, or -1 after replying. */
static int64_t resolve_expiry(struct req_ctx *rc, int64_t ttl_s, int64_t now)
{
	const struct cfg *cfg = rc->api->cfg;

	if (ttl_s < 0)
		ttl_s = cfg->api.default_ttl_s;
	if (ttl_s < 1 || ttl_s > cfg->api.max_ttl_s) {
		reply_error(rc, 400, "bad_ttl", "ttl must be 1..%u seconds",
			    cfg->api.max_ttl_s);
		return -1;
	}
	return now + ttl_s * 1000;
}

/* Validates an identifier string and the client's scope over it. */
static int check_identifier(struct req_ctx *rc, const char *s, struct ident *id)
{
	if (ident_parse(s, strlen(s), id) != 0) {
		reply_error(rc, 400, "bad_identifier", "\"%.260s\" is not a DNS name "
			    "or an IP address", s);
		return -1;
	}
	if (!client_allows(rc->client, id)) {
		reply_error(rc, 403, "identifier_not_allowed", "client %s may not "
			    "answer for %s", rc->client->name, id->name);
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
		reply_error(rc, 400, "bad_key_authorization", "expected "
			    "\"token.thumbprint\" with a base64url token and a "
			    "%d-character thumbprint", THUMBPRINT_LEN);
		return -1;
	}
	if (!thumbprint_pinned_ok(rc->client, thumb)) {
		reply_error(rc, 403, "thumbprint_not_allowed", "client %s is "
			    "pinned to other ACME accounts", rc->client->name);
		return -1;
	}
	return 0;
}

/*
 * Refuses to replace an entry another client owns outside this client's
 * scope. Returns 0 (absent or ours to replace), or -1 after replying.
 */
static int check_owner(struct req_ctx *rc, enum store_kind kind,
		       const char *key, size_t key_len)
{
	struct api *api = rc->api;

	if (store_lookup(api->store, kind, key, key_len, clock_wall_ms(),
			 &api->existing) != 0)
		return 0;
	if (client_may_touch(rc->client, &api->existing))
		return 0;
	reply_error(rc, 403, "not_owner", "this %s challenge belongs to another "
		    "client", store_kind_name(kind));
	return -1;
}

static void fill_meta(struct store_entry *e, enum store_kind kind,
		      const char *key, size_t key_len, const struct ident *id,
		      const struct cfg_client *cl, int64_t now, int64_t expires)
{
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

	format_time(e->created_ms, created, sizeof(created));
	format_time(e->expires_ms, expires, sizeof(expires));
	return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:I}",
			 "kind", store_kind_name(e->kind),
			 e->kind == STORE_HTTP01 ? "token" : "name", e->key,
			 "identifier", e->ident_len ? e->ident : NULL,
			 "client", e->client, "created", created, "expires", expires,
			 "version", (json_int_t)e->version);
}

/* Stores e and answers 201/200, or 507 when the store is full. */
static void finish_put(struct req_ctx *rc, struct store_entry *e)
{
	int ret = apply_put(rc->api, e);

	if (ret == -ENOSPC) {
		reply_error(rc, 507, "store_full", "the token store holds %u "
			    "challenges already; raise [store] capacity or delete "
			    "finished ones", rc->api->cfg->store.capacity);
		return;
	}
	if (ret < 0) {
		log_err("api: store_put: %s", strerror(-ret));
		reply_error(rc, 500, "store_error", "%s", strerror(-ret));
		return;
	}
	log_info("api: client %s put %s %s%s%s (expires in %llds)",
		 rc->client->name, store_kind_name(e->kind),
		 e->kind == STORE_HTTP01 ? "token for " : "", e->ident_len ? e->ident
		 : (e->kind == STORE_HTTP01 ? "any name" : e->key), "",
		 (long long)((e->expires_ms - e->created_ms) / 1000));
	reply_json(rc, ret == 1 ? 200 : 201, entry_json(e));
}

/* ---- handlers --------------------------------------------------------- */

static void put_http01(struct req_ctx *rc, const char *token)
{
	struct api *api = rc->api;
	struct store_entry *e = &api->scratch;
	struct put_body pb;
	struct ident id;
	struct slice ka_token;
	bool bound = false;
	int64_t now = clock_wall_ms(), expires;

	if (!token_valid(token, strlen(token))) {
		reply_error(rc, 400, "bad_token", "an http-01 token is %d..%d "
			    "base64url characters", TOKEN_MIN, TOKEN_MAX);
		return;
	}
	if (read_put_body(rc, &pb))
		goto out;
	if (pb.digest || pb.certificate || pb.key) {
		reply_error(rc, 400, "bad_json", "digest, certificate and key are "
			    "for tls-alpn-01");
		goto out;
	}
	if (!pb.key_authorization) {
		reply_error(rc, 400, "bad_key_authorization", "the body must carry "
			    "the key authorization");
		goto out;
	}
	if (check_keyauth(rc, pb.key_authorization, &ka_token))
		goto out;
	if (ka_token.len != strlen(token) ||
	    memcmp(ka_token.ptr, token, ka_token.len) != 0) {
		reply_error(rc, 400, "bad_key_authorization", "the key "
			    "authorization is for another token");
		goto out;
	}
	if (pb.identifier) {
		if (check_identifier(rc, pb.identifier, &id))
			goto out;
		bound = true;
	} else if (!rc->client->any) {
		reply_error(rc, 400, "identifier_required", "client %s may answer "
			    "only for its own names, so it must bind the token to "
			    "an identifier", rc->client->name);
		goto out;
	}
	expires = resolve_expiry(rc, pb.ttl_s, now);
	if (expires < 0)
		goto out;
	if (check_owner(rc, STORE_HTTP01, token, strlen(token)))
		goto out;

	memset(e, 0, offsetof(struct store_entry, payload));
	fill_meta(e, STORE_HTTP01, token, strlen(token), bound ? &id : NULL,
		  rc->client, now, expires);
	e->payload_len = (uint32_t)strlen(pb.key_authorization);
	memcpy(e->payload, pb.key_authorization, e->payload_len);
	finish_put(rc, e);
out:
	json_decref(pb.json);
}

static void put_tlsalpn01(struct req_ctx *rc, const char *name)
{
	struct api *api = rc->api;
	struct store_entry *e = &api->scratch;
	struct certgen_der der = {0};
	struct put_body pb;
	struct ident id;
	uint8_t digest[32];
	char sni[IDENT_NAME_MAX + 1], err[256];
	int64_t now = clock_wall_ms(), expires;
	int forms;

	if (check_identifier(rc, name, &id))
		return;
	if (read_put_body(rc, &pb))
		goto out;
	if (pb.identifier && strcmp(pb.identifier, name) != 0) {
		struct ident other;
		if (ident_parse(pb.identifier, strlen(pb.identifier), &other) ||
		    strcmp(other.name, id.name) != 0) {
			reply_error(rc, 400, "bad_identifier", "the body names another "
				    "identifier than the path");
			goto out;
		}
	}
	forms = !!pb.key_authorization + !!pb.digest + !!(pb.certificate || pb.key);
	if (forms != 1) {
		reply_error(rc, 400, "bad_body", "send exactly one of: the key "
			    "authorization, its SHA-256 digest, or a certificate "
			    "and key");
		goto out;
	}
	if (rc->client->nthumbprints && !pb.key_authorization) {
		reply_error(rc, 403, "thumbprint_not_allowed", "client %s is pinned "
			    "to ACME accounts, so it must send the key "
			    "authorization itself", rc->client->name);
		goto out;
	}
	expires = resolve_expiry(rc, pb.ttl_s, now);
	if (expires < 0)
		goto out;

	if (pb.key_authorization) {
		struct slice tok;
		if (check_keyauth(rc, pb.key_authorization, &tok))
			goto out;
		SHA256((const unsigned char *)pb.key_authorization,
		       strlen(pb.key_authorization), digest);
	} else if (pb.digest) {
		if (digest_hex_decode(pb.digest, strlen(pb.digest), digest) != 0) {
			reply_error(rc, 400, "bad_digest", "digest must be the SHA-256 "
				    "of the key authorization as 64 hex digits (colons "
				    "allowed)");
			goto out;
		}
	}
	if (ident_sni_name(&id, sni, sizeof(sni)) < 0) {
		reply_error(rc, 500, "internal", "cannot form the SNI name");
		goto out;
	}
	if (check_owner(rc, STORE_TLSALPN01, sni, strlen(sni)))
		goto out;

	if (pb.certificate || pb.key) {
		if (!pb.certificate || !pb.key) {
			reply_error(rc, 400, "bad_certificate", "send both "
				    "certificate and key, in PEM");
			goto out;
		}
		if (certgen_import_pem(pb.certificate, strlen(pb.certificate), pb.key,
				       strlen(pb.key), &id, &der, err,
				       sizeof(err)) != 0) {
			reply_error(rc, 400, "bad_certificate", "%s", err);
			goto out;
		}
	} else if (certgen_build(&id, digest, CERT_VALID_S, &der, err,
				 sizeof(err)) != 0) {
		log_err("api: certificate for %s: %s", id.name, err);
		reply_error(rc, 500, "certificate_error", "%s", err);
		goto out;
	}
	if (der.cert_len + der.key_len > STORE_PAYLOAD_MAX) {
		reply_error(rc, 400, "bad_certificate", "certificate and key take "
			    "%zu bytes; the store holds at most %d",
			    der.cert_len + der.key_len, STORE_PAYLOAD_MAX);
		goto out;
	}
	memset(e, 0, offsetof(struct store_entry, payload));
	fill_meta(e, STORE_TLSALPN01, sni, strlen(sni), &id, rc->client, now,
		  expires);
	e->cert_len = (uint32_t)der.cert_len;
	e->payload_len = (uint32_t)(der.cert_len + der.key_len);
	memcpy(e->payload, der.cert, der.cert_len);
	memcpy(e->payload + der.cert_len, der.key, der.key_len);
	finish_put(rc, e);
out:
	certgen_der_free(&der);
	json_decref(pb.json);
}

static void delete_entry(struct req_ctx *rc, enum store_kind kind,
			 const char *key)
{
	struct api *api = rc->api;

	if (store_lookup(api->store, kind, key, strlen(key), clock_wall_ms(),
			 &api->existing) != 0) {
		reply_error(rc, 404, "not_found", "no %s challenge for \"%.260s\"",
			    store_kind_name(kind), key);
		return;
	}
	if (!client_may_touch(rc->client, &api->existing)) {
		reply_error(rc, 403, "not_owner", "this %s challenge belongs to "
			    "another client", store_kind_name(kind));
		return;
	}
	if (apply_delete(api, kind, key, strlen(key)) != 0) {
		reply_error(rc, 404, "not_found", "no %s challenge for \"%.260s\"",
			    store_kind_name(kind), key);
		return;
	}
	log_info("api: client %s deleted %s %s", rc->client->name,
		 store_kind_name(kind), key);
	reply_raw(rc, 204, NULL, NULL, 0);
}

static void delete_tlsalpn01(struct req_ctx *rc, const char *name)
{
	struct ident id;
	char sni[IDENT_NAME_MAX + 1];

	if (ident_parse(name, strlen(name), &id) != 0) {
		reply_error(rc, 400, "bad_identifier", "\"%.260s\" is not a DNS name "
			    "or an IP address", name);
		return;
	}
	if (ident_sni_name(&id, sni, sizeof(sni)) < 0) {
		reply_error(rc, 500, "internal", "cannot form the SNI name");
		return;
	}
	/*
	 * Outside the client's scope the answer is the same whether or not an
	 * entry exists, so a client cannot probe other clients' names.
	 */
	if (!client_allows(rc->client, &id)) {
		struct api *api = rc->api;
		bool own = store_lookup(api->store, STORE_TLSALPN01, sni, strlen(sni),
					clock_wall_ms(), &api->existing) == 0 &&
			   strcmp(api->existing.client, rc->client->name) == 0;
		if (!own) {
			reply_error(rc, 403, "identifier_not_allowed", "client %s may "
				    "not answer for %s", rc->client->name, id.name);
			return;
		}
	}
	delete_entry(rc, STORE_TLSALPN01, sni);
}

struct list_ctx {
	const struct cfg_client *client;
	json_t *arr;
	const struct pstats *ps;	/* NULL when no proxy runs */
};

static int list_one(const struct store_entry *e, void *arg)
{
	struct list_ctx *lc = arg;
	struct pstats_hit hit;
	char when[32];
	json_t *obj;

	if (!client_may_touch(lc->client, e))
		return 0;
	obj = entry_json(e);
	/* "Did the CA reach us?": the newest request any worker saw for it. */
	if (lc->ps && pstats_last_hit(lc->ps, e->kind, e->key, e->key_len, &hit)) {
		format_time(hit.time_ms, when, sizeof(when));
		json_object_set_new(obj, "last_hit",
				    json_pack("{s:s, s:s, s:s}", "time", when, "peer",
					      hit.peer, "outcome",
					      pstats_outcome_name(hit.outcome)));
	}
	json_array_append_new(lc->arr, obj);
	return 0;
}

/*
 * Maps the proxy's statistics for one request. Mapped per request rather
 * than kept, so a restarted proxy (a new file) is picked up without notice.
 */
static struct pstats *open_pstats(struct api *api)
{
	char path[CFG_PATH_MAX + 16], err[256];
	struct pstats *ps;

	pstats_path(api->cfg->store.path, path, sizeof(path));
	if (pstats_open(path, priv_uid(PRIV_PROXY), &ps, err, sizeof(err)) != 0)
		return NULL;
	return ps;
}

static void render_pstats(struct evbuffer *b, const struct pstats *ps)
{
	char last[96] = "";

	for (int i = 0; i < PS_COUNT; i++) {
		const char *m = pstats_metric((enum pstat)i);
		const char *bar = strchr(m, '|');
		size_t nlen = (size_t)(bar - m);

		if (strlen(last) != nlen || strncmp(last, m, nlen) != 0) {
			snprintf(last, sizeof(last), "%.*s", (int)nlen, m);
			/* Prometheus naming: counters end in _total. */
			bool counter = nlen > 6 && !strncmp(m + nlen - 6, "_total", 6);
			evbuffer_add_printf(b, "# TYPE %s %s\n", last,
					    counter ? "counter" : "gauge");
		}
		if (bar[1])
			evbuffer_add_printf(b, "%s{%s} %llu\n", last, bar + 1,
					    (unsigned long long)pstats_sum(ps, (enum pstat)i));
		else
			evbuffer_add_printf(b, "%s %llu\n", last,
					    (unsigned long long)pstats_sum(ps, (enum pstat)i));
	}
	evbuffer_add_printf(b, "# TYPE acmeedge_io_backend_info gauge\n"
			    "acmeedge_io_backend_info{backend=\"%s\"} 1\n"
			    "# TYPE acmeedge_proxy_workers gauge\n"
			    "acmeedge_proxy_workers %u\n",
			    pstats_backend(ps), pstats_nworkers(ps));
}

static void list_challenges(struct req_ctx *rc)
{
	struct list_ctx lc = {rc->client, json_array(), NULL};
	struct pstats *ps = open_pstats(rc->api);

	lc.ps = ps;
	/* Private keys stay in the store: entry_json never reads the payload. */
	store_iterate(rc->api->store, clock_wall_ms(), list_one, &lc,
		      &rc->api->scratch);
	pstats_close(ps);
	reply_json(rc, 200, json_pack("{s:o}", "challenges", lc.arr));
}

static void metrics(struct req_ctx *rc)
{
	struct api *api = rc->api;
	struct evbuffer *b = evbuffer_new();
	struct store_stats st;

	BUG_ON(!b);
	store_get_stats(api->store, &st);
	/* Count this scrape before rendering, so the numbers add up. */
	count_request(api, rc->route, 200);
	evbuffer_add_printf(b,
		"# HELP acmeedge_api_requests_total API requests by route and "
		"status code.\n# TYPE acmeedge_api_requests_total counter\n");
	for (size_t i = 0; i < api->nmetrics; i++)
		evbuffer_add_printf(b, "acmeedge_api_requests_total{route=\"%s\","
				    "code=\"%u\"} %llu\n",
				    route_names[api->metrics[i].route],
				    api->metrics[i].code,
				    (unsigned long long)api->metrics[i].count);
	evbuffer_add_printf(b,
		"# HELP acmeedge_store_entries Live challenges by kind.\n"
		"# TYPE acmeedge_store_entries gauge\n"
		"acmeedge_store_entries{kind=\"http-01\"} %u\n"
		"acmeedge_store_entries{kind=\"tls-alpn-01\"} %u\n"
		"# HELP acmeedge_store_used Slots in use in the token store.\n"
		"# TYPE acmeedge_store_used gauge\nacmeedge_store_used %u\n"
		"# HELP acmeedge_store_capacity Challenges the token store holds.\n"
		"# TYPE acmeedge_store_capacity gauge\nacmeedge_store_capacity %u\n"
		"# HELP acmeedge_store_puts_total Challenges stored since the "
		"store was created.\n# TYPE acmeedge_store_puts_total counter\n"
		"acmeedge_store_puts_total %llu\n"
		"# HELP acmeedge_api_connections Open API connections.\n"
		"# TYPE acmeedge_api_connections gauge\nacmeedge_api_connections %u\n"
		"# HELP acmeedge_api_connection_cap_hits_total Times the "
		"connection cap paused accepting.\n"
		"# TYPE acmeedge_api_connection_cap_hits_total counter\n"
		"acmeedge_api_connection_cap_hits_total %llu\n",
		st.used_http01, st.used_tlsalpn01, st.used, st.capacity,
		(unsigned long long)st.puts, api->nconns,
		(unsigned long long)api->conns_refused);
	struct pstats *ps = open_pstats(api);
	evbuffer_add_printf(b, "# HELP acmeedge_proxy_up Whether a proxy "
			    "process publishes statistics.\n"
			    "# TYPE acmeedge_proxy_up gauge\nacmeedge_proxy_up %d\n",
			    ps != NULL);
	if (ps) {
		render_pstats(b, ps);
		pstats_close(ps);
	}
	evhttp_add_header(evhttp_request_get_output_headers(rc->req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(rc->req, 200, "OK", b);
	evbuffer_free(b);
}

/* ---- dispatch --------------------------------------------------------- */

/*
 * Splits "/v1/<kind>/<name>" and percent-decodes the name into buf.
 * Returns the kind's route pair index (0 http-01, 1 tls-alpn-01) or -1.
 */
static int split_challenge_path(const char *path, char *buf, size_t cap)
{
	static const char *const prefixes[] = {"/v1/http-01/", "/v1/tls-alpn-01/"};

	for (int k = 0; k < 2; k++) {
		size_t plen = strlen(prefixes[k]);
		if (strncmp(path, prefixes[k], plen) != 0)
			continue;
		const char *rest = path + plen;
		if (*rest == '\0' || strchr(rest, '/') || strlen(rest) >= cap)
			return -1;
		size_t outlen = 0;
		char *dec = evhttp_uridecode(rest, 0, &outlen);
		if (!dec)
			return -1;
		if (outlen >= cap || strlen(dec) != outlen) {
			free(dec);
			return -1;
		}
		memcpy(buf, dec, outlen + 1);
		free(dec);
		return k;
	}
	return -1;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct req_ctx rc = {.api = api, .req = req, .route = R_OTHER};
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct sockaddr *sa =
		evhttp_connection_get_addr(evhttp_request_get_connection(req));
	char name[512];
	int kind;

	if (sa)
		addr_format(sa, rc.peer, sizeof(rc.peer));
	else
		strcpy(rc.peer, "?");
	if (!path || path[0] != '/') {
		reply_error(&rc, 400, "bad_request", "malformed request target");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		rc.route = R_HEALTHZ;
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
			goto not_allowed;
		reply_json(&rc, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		rc.route = R_METRICS;
		if (cmd != EVHTTP_REQ_GET)
			goto not_allowed;
		metrics(&rc);
		return;
	}
	if (strcmp(path, "/v1/challenges") == 0) {
		rc.route = R_LIST;
		if (cmd != EVHTTP_REQ_GET)
			goto not_allowed;
		if (authenticate(&rc) == 0)
			list_challenges(&rc);
		return;
	}
	kind = split_challenge_path(path, name, sizeof(name));
	if (kind < 0) {
		bool http01 = strncmp(path, "/v1/http-01/", 12) == 0;
		if (http01 || strncmp(path, "/v1/tls-alpn-01/", 16) == 0) {
			bool del = cmd == EVHTTP_REQ_DELETE;
			rc.route = http01 ? (del ? R_DELETE_HTTP01 : R_PUT_HTTP01)
					  : (del ? R_DELETE_TLSALPN01 : R_PUT_TLSALPN01);
			reply_error(&rc, 400, "bad_request", "expected /v1/<kind>/<one "
				    "path segment>");
			return;
		}
		reply_error(&rc, 404, "no_such_route", "no API route at %.200s", path);
		return;
	}
	if (cmd == EVHTTP_REQ_PUT)
		rc.route = kind == 0 ? R_PUT_HTTP01 : R_PUT_TLSALPN01;
	else if (cmd == EVHTTP_REQ_DELETE)
		rc.route = kind == 0 ? R_DELETE_HTTP01 : R_DELETE_TLSALPN01;
	else
		goto not_allowed;
	if (authenticate(&rc) != 0)
		return;
	switch (rc.route) {
	case R_PUT_HTTP01:
		put_http01(&rc, name);
		break;
	case R_DELETE_HTTP01:
		if (!token_valid(name, strlen(name)))
			reply_error(&rc, 400, "bad_token", "an http-01 token is %d..%d "
				    "base64url characters", TOKEN_MIN, TOKEN_MAX);
		else
			delete_entry(&rc, STORE_HTTP01, name);
		break;
	case R_PUT_TLSALPN01:
		put_tlsalpn01(&rc, name);
		break;
	default:
		delete_tlsalpn01(&rc, name);
		break;
	}
	return;
not_allowed:
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
			  rc.route == R_LIST || rc.route == R_METRICS ? "GET"
			  : rc.route == R_HEALTHZ ? "GET, HEAD" : "PUT, DELETE");
	reply_error(&rc, 405, "method_not_allowed", "method not allowed here");
}

/* ---- connections: the cap -------------------------------------------- */

static void set_accepting(struct api *api, bool on)
{
	if (api->accepting == on)
		return;
	api->accepting = on;
	for (size_t i = 0; i < api->nbound; i++) {
		struct evconnlistener *l =
			evhttp_bound_socket_get_listener(api->bound[i]);
		if (on)
			evconnlistener_enable(l);
		else
			evconnlistener_disable(l);
	}
	if (!on) {
		api->conns_refused++;
		log_warn("api: %u connections open, the cap: pausing accept",
			 api->nconns);
	}
}

static void conn_gone(struct evhttp_connection *evcon, void *arg)
{
	struct api *api = arg;

	(void)evcon;
	BUG_ON(api->nconns == 0);
	api->nconns--;
	if (api->nconns < api->cfg->api.max_connections)
		set_accepting(api, true);
}

struct adopt {
	struct api *api;
	struct bufferevent *bev;
};

/*
 * Runs one loop turn after evhttp accepted a connection, when evhttp has
 * wrapped our bufferevent in its connection (whose pointer it keeps as the
 * bufferevent's callback argument): registers the close callback that
 * counts the connection out. libevent 2.1 offers no per-connection hook at
 * accept time; the reference taken in conn_new keeps the bufferevent alive
 * until here even if evhttp already dropped the connection, which shows as
 * cleared callbacks.
 */
static void conn_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct adopt *ad = arg;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;

	(void)fd;
	(void)what;
	bufferevent_getcb(ad->bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb && cbarg)
		evhttp_connection_set_closecb(cbarg, conn_gone, ad->api);
	else
		conn_gone(NULL, ad->api);
	bufferevent_decref(ad->bev);
	free(ad);
}

static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
	static const struct timeval now = {0, 0};
	struct api *api = arg;
	struct adopt *ad = malloc(sizeof(*ad));
	struct bufferevent *bev;

	if (!ad)
		return NULL;
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		free(ad);
		return NULL;
	}
	ad->api = api;
	ad->bev = bev;
	bufferevent_incref(bev);
	if (event_base_once(base, -1, EV_TIMEOUT, conn_adopt, ad, &now) != 0) {
		bufferevent_decref(bev);
		bufferevent_free(bev);
		free(ad);
		return NULL;
	}
	api->nconns++;
	if (api->nconns >= api->cfg->api.max_connections)
		set_accepting(api, false);
	return bev;
}

/* ---- lifecycle -------------------------------------------------------- */

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct api *api = arg;
	unsigned n = store_sweep(api->store, clock_wall_ms());

	(void)fd;
	(void)what;
	if (n)
		log_info("api: swept %u expired challenge%s", n, n == 1 ? "" : "s");
}

static void arm_sweep(struct api *api)
{
	struct timeval tv = {
		.tv_sec = api->cfg->api.sweep_interval_ms / 1000,
		.tv_usec = (api->cfg->api.sweep_interval_ms % 1000) * 1000,
	};

	evtimer_del(api->sweep_ev);
	event_add(api->sweep_ev, &tv);
}

static void apply_limits(struct api *api)
{
	struct timeval tv = {
		.tv_sec = api->cfg->api.timeout_ms / 1000,
		.tv_usec = (api->cfg->api.timeout_ms % 1000) * 1000,
	};

	evhttp_set_max_headers_size(api->http, api->cfg->api.max_headers);
	/* Room for a JSON 413 on moderately oversized bodies; see the top. */
	evhttp_set_max_body_size(api->http, (ev_ssize_t)api->cfg->api.max_body * 4);
	evhttp_set_timeout_tv(api->http, &tv);
}

static void reload(struct api *api)
{
	struct cfg *next = cfg_reload(api->cfg_path, "api");

	if (!next)
		return;
	if (strcmp(next->store.path, api->cfg->store.path) ||
	    next->store.capacity != api->cfg->store.capacity)
		log_warn("api: [store] changes take effect only on restart");
	/*
	 * Listen addresses stay as bound; clients, TTLs, limits and the log
	 * level change now. Requests in flight hold no pointer into the old
	 * config beyond this call (one request at a time, run to completion).
	 */
	struct cfg *old = api->cfg;
	struct cfg_addr *listen = old->api.listen;
	size_t nlisten = old->api.nlisten;
	old->api.listen = next->api.listen;
	old->api.nlisten = next->api.nlisten;
	next->api.listen = listen;
	next->api.nlisten = nlisten;
	api->cfg = next;
	cfg_free(old);
	apply_limits(api);
	arm_sweep(api);
	log_info("api: reloaded %s: %zu client%s", api->cfg_path, next->nclients,
		 next->nclients == 1 ? "" : "s");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct api *api = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(api);
		return;
	}
	log_info("api: %s: stopping", strsignal((int)sig));
	event_base_loopexit(api->base, NULL);
}

static int bind_all(struct api *api)
{
	char addr[ADDR_STRLEN];

	api->bound = calloc(api->cfg->api.nlisten, sizeof(*api->bound));
	BUG_ON(!api->bound);
	for (size_t i = 0; i < api->cfg->api.nlisten; i++) {
		const struct cfg_addr *a = &api->cfg->api.listen[i];
		char host[INET6_ADDRSTRLEN];
		uint16_t port;

		addr_format((const struct sockaddr *)&a->sa, addr, sizeof(addr));
		if (a->sa.ss_family == AF_INET) {
			const struct sockaddr_in *s4 = (const void *)&a->sa;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		} else {
			const struct sockaddr_in6 *s6 = (const void *)&a->sa;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		}
		api->bound[i] = evhttp_bind_socket_with_handle(api->http, host, port);
		if (!api->bound[i]) {
			log_err("api: cannot listen on %s: %s", addr, strerror(errno));
			return -1;
		}
		api->nbound++;
		log_info("api: listening on %s", addr);
	}
	return 0;
}

int api_main(struct cfg *cfg, const char *cfg_path)
{
	static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
	struct api *api = calloc(1, sizeof(*api));
	char err[512];
	int rc = 1;

	BUG_ON(!api);
	api->cfg = cfg;
	api->cfg_path = cfg_path;
	api->accepting = true;
	signal(SIGPIPE, SIG_IGN);

	int ret = store_open_writer(cfg->store.path, cfg->store.capacity,
				    priv_owner(PRIV_API), &api->store, err,
				    sizeof(err));
	if (ret) {
		log_err("api: token store: %s", err);
		goto out;
	}
	api->base = event_base_new();
	api->http = api->base ? evhttp_new(api->base) : NULL;
	if (!api->http) {
		log_err("api: cannot set up libevent");
		goto out;
	}
	/* Every method reaches handle(), so a wrong one gets a JSON 405. */
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_POST | EVHTTP_REQ_PATCH |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
				   EVHTTP_REQ_CONNECT);
	evhttp_set_gencb(api->http, handle, api);
	evhttp_set_bevcb(api->http, conn_new, api);
	apply_limits(api);
	if (bind_all(api))
		goto out;
	if (priv_drop(PRIV_API) != 0)
		goto out;
	api->sweep_ev = event_new(api->base, -1, EV_PERSIST, on_sweep, api);
	BUG_ON(!api->sweep_ev);
	arm_sweep(api);
	for (int i = 0; i < 3; i++) {
		api->sig_ev[i] = evsignal_new(api->base, sigs[i], on_signal, api);
		BUG_ON(!api->sig_ev[i] || event_add(api->sig_ev[i], NULL));
	}
	log_info("api: ready: store %s, %u slots, %zu client%s", cfg->store.path,
		 cfg->store.capacity, cfg->nclients, cfg->nclients == 1 ? "" : "s");
	event_base_dispatch(api->base);
	rc = 0;
out:
	for (int i = 0; i < 3; i++)
		if (api->sig_ev[i])
			event_free(api->sig_ev[i]);
	if (api->sweep_ev)
		event_free(api->sweep_ev);
	/*
	 * evhttp_free frees the listeners before the connections, whose close
	 * callbacks would re-enable them: forget the listeners first.
	 */
	api->nbound = 0;
	if (api->http)
		evhttp_free(api->http);
	if (api->base)
		event_base_free(api->base);
	store_close(api->store);
	cfg_free(api->cfg);
	free(api->bound);
	free(api);
	return rc;
}
