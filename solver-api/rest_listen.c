/*
 * The REST responder's listener: a Unix socket ([api] rest_listen, by
 * default "<store path>.rest") where the proxy hands over the PUTs and
 * DELETEs of challenge paths it received on port 80, each connection
 * opening with a PROXY v2 header that names the client.
 *
 * The header is accepted here and nowhere else: the API's own listeners
 * never parse one. It is taken off before evhttp reads a byte: the
 * bufferevent evhttp is handed holds its read callback back (a read low
 * watermark no request reaches) while a callback on its input buffer,
 * which runs as each read lands and before the bufferevent tells evhttp,
 * parses the header with the project's parser (wire/proxy_hdr.h), keeps
 * the address, drains exactly the header's bytes and lets evhttp read on.
 * A connection whose first bytes are not a v2 header carrying an address
 * is shut down: evhttp sees the end of the stream and frees it, having
 * read nothing. libevent 2.1 cannot give evhttp a connection accepted
 * elsewhere, hence the header comes off inside the bufferevent.
 *
 * Bounds: the header is decided by its first PROXY_HDR_MAX_LEN bytes;
 * evhttp's timeout bounds every wait; headers and body are bounded as on
 * the API's listeners (a REST body is at most API_REST_BODY_MAX bytes,
 * and the proxy refuses a larger one before it hands anything over);
 * max_connections caps the open connections here too.
 *
 * Who may connect: the socket is mode 0660, owned by the API's user and
 * the group that reads the token store (the proxy's). Whoever can connect
 * can claim any client address, so that is the trust the group already
 * has; the proxy, for its part, checks the socket's listener is the API's
 * user (or root, which made it) before it sends anything.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "solver-api/internal.h"
#include "solver-api/rest_request.h"
#include "wire/proxy_hdr.h"

/* A read low watermark no request reaches: evhttp waits for the header. */
#define HOLD_READS (1u << 30)
#define REST_MAX_BODY (8 * API_REST_BODY_MAX)

struct rest_conn {
	struct rest_listener *rl;
	struct bufferevent *bev;
	struct sockaddr_storage peer;	/* from the PROXY header */
	bool has_peer;
	bool decided;			/* the header was taken off, or refused */
	struct rest_conn *next;
};

struct rest_listener {
	struct api *api;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;	/* NULL while stopping */
	struct sockaddr_un addr;
	unsigned nconns;
	bool accepting;
	struct rest_conn *conns;
};

static struct log_limit lim_header;

static void set_accepting(struct rest_listener *rl, bool on)
{
	if (rl->accepting == on || !rl->bound)
		return;
	rl->accepting = on;
	if (on)
		evconnlistener_enable(evhttp_bound_socket_get_listener(rl->bound));
	else
		evconnlistener_disable(evhttp_bound_socket_get_listener(rl->bound));
}

/* Runs as bytes land in the input, before evhttp hears of them. */
static void take_header(struct evbuffer *in, const struct evbuffer_cb_info *info,
			void *arg)
{
	struct rest_conn *c = arg;
	size_t n = evbuffer_get_length(in);
	struct proxy_hdr ph;
	int r;

	if (!info->n_added || c->decided)
		return;
	if (n > PROXY_HDR_MAX_LEN)
		n = PROXY_HDR_MAX_LEN;
	r = proxy_hdr_parse(evbuffer_pullup(in, (ev_ssize_t)n), n, &ph);
	if (r == WIRE_PARTIAL)
		return;		/* decided by PROXY_HDR_MAX_LEN bytes at most */
	c->decided = true;
	/* The list is walked with the next entry saved: removing this one is safe. */
	evbuffer_remove_cb(in, take_header, c);
	if (r > 0 && ph.version == 2 && !ph.local) {
		c->peer = ph.src;
		c->has_peer = true;
		evbuffer_drain(in, (size_t)r);
		bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
		return;
	}
	log_ratelimited(&lim_header, LOG_LVL_WARN, "api: REST listener: a "
			"connection without a PROXY v2 header naming the client: "
			"closed (only the proxy should connect there)");
	evbuffer_drain(in, evbuffer_get_length(in));
	shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
}

static void rest_conn_gone(struct evhttp_connection *evcon, void *arg)
{
	struct rest_conn *c = arg, **pp;
	struct rest_listener *rl = c->rl;

	(void)evcon;
	if (!c->decided)
		evbuffer_remove_cb(bufferevent_get_input(c->bev), take_header, c);
	for (pp = &rl->conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	free(c);
	BUG_ON(rl->nconns == 0);
	rl->nconns--;
	if (rl->nconns < rl->api->cfg->api.max_connections)
		set_accepting(rl, true);
}

/*
 * One loop turn after the accept, evhttp has wrapped the bufferevent in its
 * connection (the bufferevent's callback argument): the close callback
 * counts it out. Our reference kept the bufferevent alive in case evhttp
 * dropped the connection meanwhile, which shows as cleared callbacks.
 */
static void rest_conn_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct rest_conn *c = arg;
	struct bufferevent *bev = c->bev;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;

	(void)fd;
	(void)what;
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb && cbarg)
		evhttp_connection_set_closecb(cbarg, rest_conn_gone, c);
	else
		rest_conn_gone(NULL, c);
	bufferevent_decref(bev);
}

static struct bufferevent *rest_conn_new(struct event_base *base, void *arg)
{
	static const struct timeval now = {0, 0};
	struct rest_listener *rl = arg;
	struct rest_conn *c = calloc(1, sizeof(*c));

	BUG_ON(!c);
	c->rl = rl;
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	BUG_ON(!c->bev);
	bufferevent_setwatermark(c->bev, EV_READ, HOLD_READS, 0);
	BUG_ON(!evbuffer_add_cb(bufferevent_get_input(c->bev), take_header, c));
	bufferevent_incref(c->bev);
	BUG_ON(event_base_once(base, -1, EV_TIMEOUT, rest_conn_adopt, c, &now) != 0);
	c->next = rl->conns;
	rl->conns = c;
	if (++rl->nconns >= rl->api->cfg->api.max_connections)
		set_accepting(rl, false);
	return c->bev;
}

const struct sockaddr *rest_listen_peer(struct api *api,
					struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(
		evhttp_request_get_connection(req));

	for (struct rest_conn *c = api->rest ? api->rest->conns : NULL; c;
	     c = c->next)
		if (c->bev == bev)
			return c->has_peer ? (const struct sockaddr *)&c->peer : NULL;
	return NULL;
}

void rest_listen_reload(struct api *api)
{
	struct rest_listener *rl = api->rest;
	const struct cfg *cfg = api->cfg;
	struct timeval tv = {
		.tv_sec = cfg->api.timeout_ms / 1000,
		.tv_usec = (cfg->api.timeout_ms % 1000) * 1000,
	};

	if (!rl)
		return;
	if (cfg->api.rest_listen.sa.ss_family != AF_UNIX ||
	    strcmp(((const struct sockaddr_un *)&cfg->api.rest_listen.sa)->sun_path,
		   rl->addr.sun_path) != 0)
		log_warn("api: [api] rest_listen changes take effect only on restart");
	evhttp_set_max_headers_size(rl->http, cfg->api.max_headers);
	evhttp_set_max_body_size(rl->http, REST_MAX_BODY);
	evhttp_set_timeout_tv(rl->http, &tv);
}

/*
 * The listening socket at path, made before the API drops root (as the
 * store is): owned by the API's user and the proxy's group, mode 0660. A
 * stale socket of the API's is replaced, anything else there refused.
 */
static int listen_at(const struct sockaddr_un *su, socklen_t len)
{
	struct shm_owner own = priv_owner(PRIV_API);
	const char *path = su->sun_path;
	struct stat st;
	mode_t old;
	int fd, rc;

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) ||
		    (st.st_uid != own.uid && st.st_uid != geteuid())) {
			log_err("api: REST listener: %s exists and is not a socket "
				"of the API's user: not replaced", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("api: REST listener: socket: %s", strerror(errno));
		return -1;
	}
	/* Created 0660 at once: no moment when others may connect. */
	old = umask(0117);
	rc = bind(fd, (const struct sockaddr *)su, len);
	umask(old);
	if (rc != 0 ||
	    ((own.uid != geteuid() || own.gid != getegid()) &&
	     chown(path, own.uid, own.gid) != 0) ||
	    listen(fd, 128) != 0) {
		log_err("api: REST listener: %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int rest_listen_start(struct api *api)
{
	const struct cfg_addr *a = &api->cfg->api.rest_listen;
	struct rest_listener *rl;
	int fd;

	if (a->sa.ss_family != AF_UNIX)
		return 0;	/* too long a store path, and no client uses it */
	rl = calloc(1, sizeof(*rl));
	BUG_ON(!rl);
	rl->api = api;
	memcpy(&rl->addr, &a->sa, sizeof(rl->addr));
	rl->http = evhttp_new(api->base);
	BUG_ON(!rl->http);
	api->rest = rl;
	/* Every method reaches rest_handle, so a wrong one gets a JSON 405. */
	evhttp_set_allowed_methods(rl->http, API_EVERY_METHOD);
	evhttp_set_gencb(rl->http, rest_handle, api);
	evhttp_set_bevcb(rl->http, rest_conn_new, rl);
	rest_listen_reload(api);
	fd = listen_at(&rl->addr, a->len);
	if (fd < 0)
		return -1;
	rl->bound = evhttp_accept_socket_with_handle(rl->http, fd);
	if (!rl->bound) {
		log_err("api: REST listener: cannot accept on %s", rl->addr.sun_path);
		close(fd);
		return -1;
	}
	rl->accepting = true;
	log_info("api: REST responder listening on %s", rl->addr.sun_path);
	return 0;
}

void rest_listen_stop(struct api *api)
{
	struct rest_listener *rl = api->rest;

	if (!rl)
		return;
	/* Connections closing now must not re-enable the listener being freed. */
	bool listened = rl->bound != NULL;
	rl->bound = NULL;
	evhttp_free(rl->http);
	if (listened)
		unlink(rl->addr.sun_path);
	/* Accepted in the last loop turn, never adopted: evhttp freed them. */
	while (rl->conns) {
		struct rest_conn *c = rl->conns;
		rl->conns = c->next;
		free(c);
	}
	free(rl);
	api->rest = NULL;
}
