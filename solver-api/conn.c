/*
 * Connections: the cap on open ones (max_connections). At the cap the
 * listeners stop accepting and the kernel's backlog holds the rest; every
 * connection is counted in when evhttp accepts it and out when evhttp
 * closes it.
 */
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/internal.h"

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

struct bufferevent *conn_new(struct event_base *base, void *arg)
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
