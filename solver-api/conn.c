/*
 * Connections, and what bounds them:
 *  - max_connections: at the cap the listeners stop accepting and the
 *    kernel's backlog holds the rest;
 *  - max_connections_per_source: a connection past it, from one source
 *    (an IPv4 address, or an IPv6 /64), is closed at once, so one source
 *    can never hold the whole cap;
 *  - request_timeout: each request must arrive whole within it, counted
 *    from the connection's start or from the previous request. [api]
 *    timeout is evhttp's inactivity timeout: a client sending a byte now
 *    and then never trips it, this deadline it does.
 * A connection is cut by shutting its socket down: evhttp then sees the
 * end of the stream and frees the connection as when a client leaves.
 */
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/internal.h"

struct conn {
	struct api *api;
	struct bufferevent *bev;
	struct evhttp_connection *evcon;	/* NULL until adopted */
	struct event *deadline;
	uint8_t source[16];
	uint32_t bucket;
	struct conn *next;			/* in api->sources[bucket] */
};

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

/*
 * The source a peer counts under: an IPv4 address (plain or mapped) as
 * ::ffff:a.b.c.d, an IPv6 address by its /64, which one host usually
 * holds whole.
 */
static void source_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const uint8_t *a =
			((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
		memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
	}
}

static uint32_t source_bucket(const uint8_t key[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CONN_BUCKETS;
}

/* Arms (or re-arms) the connection's request deadline from now. */
static void deadline_arm(struct conn *c)
{
	uint32_t ms = c->api->cfg->api.request_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(c->deadline, &tv);
}

static void conn_cut(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	static struct log_limit lim;
	struct conn *c = arg;
	char peer[ADDR_STRLEN];

	(void)fd;
	(void)what;
	c->api->conns_cut_deadline++;
	addr_format(evhttp_connection_get_addr(c->evcon), peer, sizeof(peer));
	log_ratelimited(&lim, LOG_LVL_INFO, "api: %s sent no whole request "
			"within request_timeout (%ums): closing", peer,
			c->api->cfg->api.request_timeout_ms);
	conn_cut(c);
}

/* Counts a connection out; evhttp frees it right after. */
static void conn_gone(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;
	struct api *api = c->api;

	(void)evcon;
	if (c->evcon) {
		struct conn **pp = &api->sources[c->bucket];
		while (*pp != c)
			pp = &(*pp)->next;
		*pp = c->next;
		event_free(c->deadline);
	}
	free(c);
	BUG_ON(api->nconns == 0);
	api->nconns--;
	if (api->nconns < api->cfg->api.max_connections)
		set_accepting(api, true);
}

/* Files an adopted connection under its source; returns how many it has. */
static unsigned source_add(struct conn *c)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(c->evcon);
	unsigned n = 0;

	source_key(sa, c->source);
	c->bucket = source_bucket(c->source);
	c->next = c->api->sources[c->bucket];
	c->api->sources[c->bucket] = c;
	for (struct conn *o = c; o; o = o->next)
		n += memcmp(o->source, c->source, 16) == 0;
	return n;
}

/*
 * Runs one loop turn after evhttp accepted a connection, when evhttp has
 * wrapped our bufferevent in its connection (whose pointer it keeps as the
 * bufferevent's callback argument): registers the close callback that
 * counts the connection out, files it under its source and arms its
 * deadline. libevent 2.1 offers no per-connection hook at accept time; the
 * reference taken in conn_new keeps the bufferevent alive until here even
 * if evhttp already dropped the connection, which shows as cleared
 * callbacks.
 */
static void conn_adopt(evutil_socket_t fd, short what, void *arg)
{
	static struct log_limit lim;
	struct conn *c = arg;
	struct bufferevent *bev = c->bev;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;
	char peer[ADDR_STRLEN];

	(void)fd;
	(void)what;
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	c->deadline = eventcb && cbarg ?
		evtimer_new(c->api->base, on_deadline, c) : NULL;
	if (!c->deadline) {
		conn_gone(NULL, c);
		bufferevent_decref(bev);
		return;
	}
	c->evcon = cbarg;
	evhttp_connection_set_closecb(c->evcon, conn_gone, c);
	deadline_arm(c);
	if (source_add(c) > c->api->cfg->api.max_connections_per_source) {
		c->api->conns_cut_source++;
		addr_format(evhttp_connection_get_addr(c->evcon), peer,
			    sizeof(peer));
		log_ratelimited(&lim, LOG_LVL_INFO, "api: %s has more than "
				"max_connections_per_source (%u) open: closing "
				"the newest", peer,
				c->api->cfg->api.max_connections_per_source);
		conn_cut(c);
	}
	bufferevent_decref(bev);
}

void conn_request_started(struct api *api, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	uint8_t key[16];

	if (!evcon)
		return;
	source_key(evhttp_connection_get_addr(evcon), key);
	/* Not found: accepted this loop turn and not adopted yet, no deadline. */
	for (struct conn *c = api->sources[source_bucket(key)]; c; c = c->next) {
		if (c->evcon == evcon) {
			deadline_arm(c);
			return;
		}
	}
}

struct bufferevent *conn_new(struct event_base *base, void *arg)
{
	static const struct timeval now = {0, 0};
	struct api *api = arg;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->api = api;
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		free(c);
		return NULL;
	}
	bufferevent_incref(c->bev);
	if (event_base_once(base, -1, EV_TIMEOUT, conn_adopt, c, &now) != 0) {
		bufferevent_decref(c->bev);
		bufferevent_free(c->bev);
		free(c);
		return NULL;
	}
	api->nconns++;
	if (api->nconns >= api->cfg->api.max_connections)
		set_accepting(api, false);
	return c->bev;
}
