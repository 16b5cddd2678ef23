/*
 * What the solver API's files share: the server's state, one request's
 * context, and the calls between the parts (lifecycle and connections in
 * api.c and conn.c, dispatch in router.c, replies in reply.c, clients in
 * auth.c, challenges in handlers.c, /metrics in metrics.c).
 *
 * One request at a time, run to completion: a handler holds no pointer
 * into the config beyond its own call, so a reload may swap it between
 * requests.
 */
#ifndef EDGE_API_INTERNAL_H
#define EDGE_API_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "common/cfg.h"
#include "common/ident.h"
#include "solver-api/request.h"
#include "stats/pstats.h"
#include "store/store.h"

/* The routes requests are counted under on /metrics. */
enum route_id {
	R_PUT_HTTP01,
	R_DELETE_HTTP01,
	R_PUT_TLSALPN01,
	R_DELETE_TLSALPN01,
	R_LIST,
	R_HEALTHZ,
	R_METRICS,
	R_STATUS_PAGE,
	R_STATUS,
	R_REST_PUT,		/* the REST responder (rest.c) */
	R_REST_DELETE,
	R_OTHER,
	R_COUNT,
};

/* What evhttp lets through: all of it, so that the API answers a 405 itself. */
#define API_EVERY_METHOD                                                   \
	(EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_POST | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS |          \
	 EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT)

#define METRIC_SLOTS 128
#define CONN_BUCKETS 1024	/* open connections, hashed by source */

struct conn;

/* quota.c: who holds each store slot, until when (see there). */
struct quota {
	uint32_t *owner;		/* per slot: 1-based name id, 0: free */
	int64_t *expires;		/* per slot, wall clock ms */
	uint32_t nslots;
	char (*names)[STORE_CLIENT_MAX + 1];
	uint32_t nnames;
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
	uint64_t conns_cut_deadline;	/* closed at request_timeout */
	uint64_t conns_cut_source;	/* closed past max_connections_per_source */
	struct conn *sources[CONN_BUCKETS];
	struct quota quota;
	struct store_entry scratch;	/* one request at a time: no reentry */
	struct store_entry existing;
	struct store_entry previous;	/* the write path's own */
	struct cluster *cluster;	/* NULL without [cluster] */
	struct rest_listener *rest;	/* NULL without the REST listener */
};

/* What one request is about; filled step by step by the dispatcher. */
struct req_ctx {
	struct api *api;
	struct evhttp_request *req;
	enum route_id route;
	const struct cfg_client *client;	/* set once authenticated */
	struct api_target target;
	char peer[ADDR_STRLEN];
	/*
	 * Came through the REST responder (rest.c): a stored PUT answers 201
	 * even when it replaced an entry, as the reference responder does,
	 * and every answer closes the connection.
	 */
	bool rest;
};

/* The status of a PUT stored (replaced: an entry was there before). */
static inline int put_status(const struct req_ctx *rc, bool replaced)
{
	return replaced && !rc->rest ? 200 : 201;
}

/* ---- reply.c: every request ends in exactly one of these ------------- */

void api_reply_raw(struct req_ctx *rc, int code, const char *ctype,
		   const char *body, size_t len);
/* Sends obj as the body and releases it. */
void api_reply_json(struct req_ctx *rc, int code, json_t *obj);
/* {"error": what, "detail": why}: what is a stable word for scripts. */
void api_reply_error(struct req_ctx *rc, int code, const char *what,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* RFC 3339 UTC, second precision. */
void api_format_time(int64_t ms, char *buf, size_t cap);

/* ---- auth.c: bearer token to client, source addresses, scope --------- */

enum auth_result {
	AUTH_OK = 0,
	AUTH_NO_BEARER,		/* no "Authorization: Bearer <token>" */
	AUTH_UNKNOWN_TOKEN,
	AUTH_SOURCE_REFUSED,	/* *out is the client; the peer is outside its cidrs */
};

enum auth_result auth_client(const struct cfg *cfg, const char *authorization,
			     const struct sockaddr *peer,
			     const struct cfg_client **out);
bool auth_allows(const struct cfg_client *cl, const struct ident *id);
bool auth_may_touch(const struct cfg_client *cl, const struct store_entry *e);
bool auth_thumbprint_ok(const struct cfg_client *cl, struct slice thumb);

/* ---- handlers.c ------------------------------------------------------- */

void handle_put_http01(struct req_ctx *rc);
void handle_delete_http01(struct req_ctx *rc);
void handle_put_tlsalpn01(struct req_ctx *rc);
void handle_delete_tlsalpn01(struct req_ctx *rc);
void handle_list(struct req_ctx *rc);
/*
 * The http-01 PUT and DELETE after their request was read, shared by the
 * API's routes and the REST responder's: token is the path's, pb what the
 * request carries (key authorization, identifier, TTL). Each ends in
 * exactly one reply.
 */
void http01_put(struct req_ctx *rc, const char *token, const struct api_put *pb);
void http01_delete(struct req_ctx *rc, const char *token);
/*
 * The cluster applies other nodes' writes through the handlers' write
 * path: these hooks are apply_put()/apply_delete() themselves.
 */
struct cluster_hooks;
void handlers_cluster_hooks(struct api *api, struct cluster_hooks *out);

/* ---- quota.c --------------------------------------------------------- */

/* Fills q from every live entry of the store. */
void quota_load(struct quota *q, const struct store *st,
		struct store_entry *scratch, int64_t now);
/* e was stored (e->slot, e->client, e->expires_ms set by the put). */
void quota_note_put(struct quota *q, const struct store_entry *e);
/* The store freed slot. */
void quota_note_free(struct quota *q, uint32_t slot);
/* Entries client holds that are live at now. */
unsigned quota_held(const struct quota *q, const char *client, int64_t now);
void quota_free(struct quota *q);

/* ---- status_page.c: GET / (the page) and GET /v1/status --------------- */

void handle_status_page(struct req_ctx *rc);
void handle_status(struct req_ctx *rc);

/* ---- metrics.c -------------------------------------------------------- */

const char *metrics_route_name(enum route_id route);
void metrics_count(struct api *api, enum route_id route, int code);
void handle_metrics(struct req_ctx *rc);
/*
 * Maps the proxy's statistics for one request, or NULL when no proxy
 * publishes them; release with pstats_close().
 */
struct pstats *metrics_open_pstats(struct api *api);

/* ---- rest_listen.c and rest.c: the REST responder --------------------- */

/*
 * Listens on [api] rest_listen, where only the proxy connects: every
 * connection starts with a PROXY v2 header naming the client, which is
 * taken off before evhttp reads the request. Returns 0 (also when there
 * is nothing to listen on), or -1 after logging.
 */
int rest_listen_start(struct api *api);
void rest_listen_stop(struct api *api);
/* Applies a reloaded config's limits to the REST listener. */
void rest_listen_reload(struct api *api);
/*
 * The client's address the PROXY header of req's connection carried;
 * NULL when there was none (the connection is then cut before a request).
 */
const struct sockaddr *rest_listen_peer(struct api *api,
					struct evhttp_request *req);
/* The REST listener's request handler. */
void rest_handle(struct evhttp_request *req, void *arg);

/* ---- router.c and conn.c, for api.c ----------------------------------- */

void router_handle(struct evhttp_request *req, void *arg);
/*
 * Authenticates the client into rc->client, sa the address it connects
 * from; returns 0, or -1 after replying (401, or 403 outside its cidrs).
 */
int api_authenticate(struct req_ctx *rc, const struct sockaddr *sa);
struct bufferevent *conn_new(struct event_base *base, void *arg);
/* A request arrived whole: the next one has request_timeout from now. */
void conn_request_started(struct api *api, struct evhttp_request *req);

#endif
