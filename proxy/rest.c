/*
 * The REST responder on port 80 (rest.h). The bearer token is hashed and
 * looked up here only to decide whether the request may reach the API at
 * all: an anonymous or unknown caller, one outside its cidrs, or a client
 * without rest_responder is answered by the proxy and never touches the
 * API. Everything that changes the store is decided by the API.
 */
#include "proxy/rest.h"

#include <openssl/sha.h>
#include <string.h>

#include "common/ident.h"
#include "common/log.h"
#include "proxy/answer.h"
#include "proxy/upstream.h"
#include "wire/http_field.h"

/* Per thread, like the proxy's other lines about peers. */
static __thread struct log_limit lim_refused;

static const struct {
	int code;
	const char *reason, *what, *detail;
} refusals[] = {
	[REST_NO_BEARER] = {401, "Unauthorized", "unauthorized",
			    "send one Authorization: Bearer <token>"},
	[REST_UNKNOWN_TOKEN] = {401, "Unauthorized", "unauthorized",
				"unknown bearer token"},
	[REST_SOURCE_REFUSED] = {403, "Forbidden", "source_not_allowed",
				 "this client may not connect from here"},
	[REST_NOT_ENABLED] = {403, "Forbidden", "rest_not_enabled",
			      "this client has no rest_responder"},
	[REST_BAD_BODY] = {400, "Bad Request", "bad_body",
			   "send the key authorization as a body of 1 to 500 "
			   "bytes, with a Content-Length"},
};

/* The client the request's bearer token names; NULL when none does. */
static const struct cfg_client *bearer_client(const struct cfg *cfg,
					      struct slice token)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)token.ptr, token.len, digest);
	return cfg_client_by_token(cfg, digest);
}

void rest_request(struct worker *w, struct conn *c, const struct http_head *h,
		  const struct rest_ask *ask)
{
	const struct cfg *cfg = w->lc->cfg;
	const struct cfg_client *cl = NULL;
	struct slice auth, token;
	bool bearer = http_field_find(c->in, h->head_len, "authorization",
				      &auth) == 1 &&
		      http_bearer(auth, &token) == 0;
	const char *method = ask->put ? "PUT" : "DELETE";
	const char *host = h->has_host ? h->host : "-";
	/* The path may carry any visible byte: logged only when a token. */
	struct slice key = token_valid(ask->token.ptr, ask->token.len)
		? ask->token : (struct slice){"(not a token)", 13};
	char peer[ADDR_STRLEN];
	enum rest_verdict v;

	if (bearer)
		cl = bearer_client(cfg, token);
	v = policy_rest(ask, h, bearer, cl, conn_peer(c));
	addr_format(conn_peer(c), peer, sizeof(peer));
	if (v == REST_HAND_OFF) {
		pstats_add(w->stats, PS_REST_HANDED_OFF, 1);
		log_info("proxy: REST %s handed to the API: client %s (%s), "
			 "identifier %s, key %.*s", method, peer, cl->name, host,
			 (int)key.len, key.ptr);
		upstream_forward_rest(w, c);
		return;
	}
	log_ratelimited(&lim_refused, LOG_LVL_INFO, "proxy: REST %s refused: "
			"client %s%s%s, identifier %s, key %.*s: %d %s", method,
			peer, cl ? " " : "", cl ? cl->name : "", host,
			(int)key.len, key.ptr, refusals[v].code,
			refusals[v].what);
	answer_http_json_error(w, c, refusals[v].code, refusals[v].reason,
			       refusals[v].what, refusals[v].detail,
			       PS_REST_REFUSED);
}
