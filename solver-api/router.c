/*
 * Dispatch: the request parser (request.h) says which resource a path
 * names, and the route table below says, for each resource and method,
 * which handler answers, under which /metrics route, and whether it needs
 * an authenticated client. The table is also where a 405's Allow header
 * and route label come from, so they cannot drift from what is served.
 */
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/edge.h"
#include "solver-api/cluster.h"
#include "solver-api/internal.h"

struct route {
	enum api_resource res;
	enum evhttp_cmd_type method;
	const char *method_name;
	enum route_id id;
	bool auth;			/* needs an authenticated client */
	void (*fn)(struct req_ctx *rc);
};

/*
 * 200 {"status": "ok"}; in a cluster, 503 while the node is syncing (it
 * may lack entries the others answer) or degraded (it misses new writes),
 * so that a load balancer takes it out of rotation.
 */
static void handle_healthz(struct req_ctx *rc)
{
	struct cluster *cl = rc->api->cluster;
	enum cluster_state st;

	if (!cl) {
		api_reply_json(rc, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	st = cluster_state(cl, NULL);
	api_reply_json(rc, st == CLUSTER_READY ? 200 : 503,
		       json_pack("{s:s, s:o}", "status", cluster_state_name(st),
				 "cluster", cluster_health_json(cl)));
}

static const struct route routes[] = {
	{API_RES_HEALTHZ, EVHTTP_REQ_GET, "GET", R_HEALTHZ, false, handle_healthz},
	{API_RES_HEALTHZ, EVHTTP_REQ_HEAD, "HEAD", R_HEALTHZ, false, handle_healthz},
	{API_RES_METRICS, EVHTTP_REQ_GET, "GET", R_METRICS, false, handle_metrics},
	{API_RES_CHALLENGES, EVHTTP_REQ_GET, "GET", R_LIST, true, handle_list},
	{API_RES_ROOT, EVHTTP_REQ_GET, "GET", R_STATUS_PAGE, false,
	 handle_status_page},
	{API_RES_STATUS, EVHTTP_REQ_GET, "GET", R_STATUS, true, handle_status},
	{API_RES_HTTP01, EVHTTP_REQ_PUT, "PUT", R_PUT_HTTP01, true,
	 handle_put_http01},
	{API_RES_HTTP01, EVHTTP_REQ_DELETE, "DELETE", R_DELETE_HTTP01, true,
	 handle_delete_http01},
	{API_RES_TLSALPN01, EVHTTP_REQ_PUT, "PUT", R_PUT_TLSALPN01, true,
	 handle_put_tlsalpn01},
	{API_RES_TLSALPN01, EVHTTP_REQ_DELETE, "DELETE", R_DELETE_TLSALPN01, true,
	 handle_delete_tlsalpn01},
};

/*
 * The route for a resource and method; NULL when the resource does not
 * take that method. *first is the resource's first route, and *label the
 * route its errors count under when the method is wrong: the resource's
 * only route, or "other" when its methods have routes of their own.
 */
static const struct route *route_find(enum api_resource res,
				      enum evhttp_cmd_type method,
				      const struct route **first,
				      enum route_id *label)
{
	const struct route *hit = NULL;

	*first = NULL;
	*label = R_OTHER;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];
		if (r->res != res)
			continue;
		if (!*first) {
			*first = r;
			*label = r->id;
		} else if (r->id != *label) {
			*label = R_OTHER;
		}
		if (r->method == method)
			hit = r;
	}
	return hit;
}

/* "GET, HEAD": the methods a resource takes, in table order. */
static void allow_header(enum api_resource res, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (routes[i].res == res)
			n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s",
					      n ? ", " : "", routes[i].method_name);
}

int api_authenticate(struct req_ctx *rc, const struct sockaddr *sa)
{
	const char *auth = evhttp_find_header(
		evhttp_request_get_input_headers(rc->req), "Authorization");

	switch (auth_client(rc->api->cfg, auth, sa, &rc->client)) {
	case AUTH_OK:
		return 0;
	case AUTH_NO_BEARER:
		api_reply_error(rc, 401, "unauthorized",
				"send Authorization: Bearer <token>");
		break;
	case AUTH_UNKNOWN_TOKEN:
		api_reply_error(rc, 401, "unauthorized", "unknown bearer token");
		break;
	case AUTH_SOURCE_REFUSED:
		api_reply_error(rc, 403, "source_not_allowed", "client %s may not "
				"connect from %s", rc->client->name, rc->peer);
		break;
	}
	return -1;
}

/* Replies to a path the parser refused. */
static void reply_target_error(struct req_ctx *rc, int err, const char *path,
			       enum evhttp_cmd_type method)
{
	const struct route *first, *r;
	enum route_id label;

	switch (err) {
	case API_REQ_BAD_SEGMENT:
		/* Counted under the route the method names, or the resource's first. */
		r = route_find(rc->target.res, method, &first, &label);
		rc->route = (r ? r : first)->id;
		api_reply_error(rc, 400, "bad_request", "expected /v1/<kind>/<one "
				"path segment>");
		break;
	case API_REQ_NO_ROUTE:
		api_reply_error(rc, 404, "no_such_route", "no API route at %.200s",
				path);
		break;
	default:
		api_reply_error(rc, 400, "bad_request", "malformed request target");
		break;
	}
}

void router_handle(struct evhttp_request *req, void *arg)
{
	struct req_ctx rc = {.api = arg, .req = req, .route = R_OTHER};
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct sockaddr *sa =
		evhttp_connection_get_addr(evhttp_request_get_connection(req));
	const struct route *first, *r;
	enum route_id label;
	char allow[64];
	int err;

	conn_request_started(rc.api, req);
	if (sa)
		addr_format(sa, rc.peer, sizeof(rc.peer));
	else
		strcpy(rc.peer, "?");
	err = api_target_parse(path ? path : "", path ? strlen(path) : 0,
			       &rc.target);
	if (err != API_REQ_OK) {
		reply_target_error(&rc, err, path, method);
		return;
	}
	r = route_find(rc.target.res, method, &first, &label);
	if (!r) {
		rc.route = label;
		allow_header(rc.target.res, allow, sizeof(allow));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  allow);
		api_reply_error(&rc, 405, "method_not_allowed",
				"method not allowed here");
		return;
	}
	rc.route = r->id;
	if (r->auth && api_authenticate(&rc, sa) != 0)
		return;
	r->fn(&rc);
}
