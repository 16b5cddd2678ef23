/*
 * The REST responder's requests (README, "The proxy"): what simple-acme's
 * REST validation and its reference responder speak, a PUT of the key
 * authorization to http://<identifier>/.well-known/acme-challenge/<token>
 * and a DELETE of the same URL, with a bearer token. The proxy hands them
 * over from port 80 (rest_listen.c); every check is made here again, with
 * the API's own pieces: auth.c for the token and the source address (the
 * one the PROXY header named), the request parser, and the one write path
 * (http01_put, http01_delete), so a REST write is scoped, owned, counted
 * against quotas and replicated like any other.
 *
 * Statuses are the reference responder's: 201 for every PUT stored (a
 * replace too), 204 for a DELETE (404 when absent), 400 for a body that is
 * missing, empty, over 500 bytes or not "<token>.<thumbprint>"; and the
 * API's 401 and 403. The entry is bound to the request's Host with the
 * client's default TTL. Every answer closes the connection (reply.c).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/edge.h"
#include "solver-api/internal.h"
#include "solver-api/rest_request.h"

/* The Host as an identifier; 0, or -1 after replying. */
static int rest_host(struct req_ctx *rc, struct ident *id)
{
	const char *host = evhttp_find_header(
		evhttp_request_get_input_headers(rc->req), "Host");

	if (host && api_rest_host_parse(host, strlen(host), id) == API_REST_OK)
		return 0;
	api_reply_error(rc, 400, "bad_identifier", "Host must name the DNS name "
			"or IP address the challenge is for");
	return -1;
}

/* The body of a PUT; 0 with ka filled, or -1 after replying. */
static int rest_body(struct req_ctx *rc, const char *token,
		     char ka[KEYAUTH_MAX + 1])
{
	struct evbuffer *in = evhttp_request_get_input_buffer(rc->req);
	size_t len = evbuffer_get_length(in);
	const char *body = len && len <= API_REST_BODY_MAX
		? (const char *)evbuffer_pullup(in, -1) : "";

	switch (api_rest_body_parse(body, len, token, ka)) {
	case API_REST_OK:
		return 0;
	case API_REST_NO_BODY:
		api_reply_error(rc, 400, "bad_body", "the body must be the key "
				"authorization");
		break;
	case API_REST_BODY_TOO_LARGE:
		api_reply_error(rc, 400, "bad_body", "the body is %zu bytes; the "
				"limit is %d", len, API_REST_BODY_MAX);
		break;
	default:
		api_reply_error(rc, 400, "bad_key_authorization", "the body must "
				"be \"<token>.<thumbprint>\" for the token in the path");
		break;
	}
	return -1;
}

static void rest_put(struct req_ctx *rc, const char *token, const struct ident *id)
{
	char ka[KEYAUTH_MAX + 1];
	struct api_put pb;

	if (rest_body(rc, token, ka))
		return;
	memset(&pb, 0, sizeof(pb));
	pb.key_authorization = ka;
	pb.identifier = id->name;
	pb.ttl_s = -1;		/* the default TTL */
	http01_put(rc, token, &pb);
}

/*
 * The reference responder keys a challenge by its URL: a DELETE under
 * another Host than the PUT's finds nothing.
 */
static void rest_delete(struct req_ctx *rc, const char *token,
			const struct ident *id)
{
	struct api *api = rc->api;
	const struct store_entry *e = &api->existing;

	if (!auth_allows(rc->client, id)) {
		api_reply_error(rc, 403, "identifier_not_allowed", "client %s may "
				"not answer for %s", rc->client->name, id->name);
		return;
	}
	if (store_lookup(api->store, STORE_HTTP01, token, strlen(token),
			 clock_wall_ms(), &api->existing) != 0 ||
	    (e->ident_len && strcmp(e->ident, id->name) != 0)) {
		api_reply_error(rc, 404, "not_found", "no http-01 challenge for "
				"\"%s\" at %s", token, id->name);
		return;
	}
	http01_delete(rc, token);
}

void rest_handle(struct evhttp_request *req, void *arg)
{
	struct req_ctx rc = {.api = arg, .req = req, .route = R_OTHER, .rest = true};
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct sockaddr *peer = rest_listen_peer(rc.api, req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	char token[TOKEN_MAX + 1];
	struct ident id;

	if (peer)
		addr_format(peer, rc.peer, sizeof(rc.peer));
	else
		strcpy(rc.peer, "?");
	if (method != EVHTTP_REQ_PUT && method != EVHTTP_REQ_DELETE) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "PUT, DELETE");
		api_reply_error(&rc, 405, "method_not_allowed", "the REST "
				"responder takes PUT and DELETE");
		return;
	}
	rc.route = method == EVHTTP_REQ_PUT ? R_REST_PUT : R_REST_DELETE;
	if (!peer) {
		/* rest_listen.c cuts such a connection first: our own bug. */
		api_reply_error(&rc, 500, "internal", "no client address");
		return;
	}
	if (api_authenticate(&rc, peer) != 0)
		return;
	if (!rc.client->rest_responder) {
		api_reply_error(&rc, 403, "rest_not_enabled", "client %s has no "
				"rest_responder", rc.client->name);
		return;
	}
	/* The proxy checks the same before it hands a request over. */
	if (evbuffer_get_length(in) > API_REST_BODY_MAX ||
	    (method == EVHTTP_REQ_PUT && evbuffer_get_length(in) == 0)) {
		char ka[KEYAUTH_MAX + 1];
		rest_body(&rc, "", ka);
		return;
	}
	switch (api_rest_target_parse(path ? path : "", path ? strlen(path) : 0,
				      token)) {
	case API_REST_OK:
		break;
	case API_REST_BAD_TOKEN:
		api_reply_error(&rc, 400, "bad_token", "an http-01 token is %d..%d "
				"base64url characters", TOKEN_MIN, TOKEN_MAX);
		return;
	default:
		api_reply_error(&rc, 404, "no_such_route", "the REST responder "
				"serves %s<token> only", API_REST_PREFIX);
		return;
	}
	if (rest_host(&rc, &id))
		return;
	if (method == EVHTTP_REQ_PUT)
		rest_put(&rc, token, &id);
	else
		rest_delete(&rc, token, &id);
}
