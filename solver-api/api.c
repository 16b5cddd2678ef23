/*
 * The solver API's process: the store opened for writing, evhttp on the
 * listen addresses, the sweep of expired entries, and signals (SIGHUP
 * reloads the config, SIGTERM and SIGINT stop).
 *
 * Bounds: headers (max_headers), body (max_body; a JSON 413 up to four
 * times that, evhttp's own 413 beyond, so an oversized body is never
 * buffered), per-connection inactivity timeout (timeout), and open
 * connections (max_connections, conn.c).
 */
#include "solver-api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "solver-api/cluster.h"
#include "solver-api/internal.h"

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
	if (api->cluster)
		cluster_reload(api->cluster, next);
	apply_limits(api);
	rest_listen_reload(api);
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
	if (api->cluster) {
		/* Writes waiting for the cluster get their 503 out before we go. */
		static const struct timeval flush = {0, 200 * 1000};
		cluster_stop(api->cluster);
		event_base_loopexit(api->base, &flush);
		return;
	}
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

/* Opens the store, sets evhttp up and binds; returns 0, or -1 after logging. */
static int api_start(struct api *api)
{
	static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
	const struct cfg *cfg = api->cfg;
	char err[512];

	if (store_open_writer(cfg->store.path, cfg->store.capacity,
			      priv_owner(PRIV_API), &api->store, err,
			      sizeof(err)) != 0) {
		log_err("api: token store: %s", err);
		return -1;
	}
	quota_load(&api->quota, api->store, &api->scratch, clock_wall_ms());
	api->base = event_base_new();
	api->http = api->base ? evhttp_new(api->base) : NULL;
	if (!api->http) {
		log_err("api: cannot set up libevent");
		return -1;
	}
	/* Every method reaches the router, so a wrong one gets a JSON 405. */
	evhttp_set_allowed_methods(api->http, API_EVERY_METHOD);
	evhttp_set_gencb(api->http, router_handle, api);
	evhttp_set_bevcb(api->http, conn_new, api);
	apply_limits(api);
	/*
	 * The REST listener is made as root too, like the store: its socket
	 * belongs to the API's user and the proxy's group.
	 */
	if (bind_all(api) || rest_listen_start(api))
		return -1;
	if (priv_drop(PRIV_API) != 0)
		return -1;
	api->sweep_ev = event_new(api->base, -1, EV_PERSIST, on_sweep, api);
	BUG_ON(!api->sweep_ev);
	arm_sweep(api);
	for (int i = 0; i < 3; i++) {
		api->sig_ev[i] = evsignal_new(api->base, sigs[i], on_signal, api);
		BUG_ON(!api->sig_ev[i] || event_add(api->sig_ev[i], NULL));
	}
	if (cfg->cluster.enabled) {
		struct cluster_hooks hooks;
		handlers_cluster_hooks(api, &hooks);
		cluster_open(api->base, cfg, &hooks, &api->cluster);
	}
	return 0;
}

static void api_free(struct api *api)
{
	cluster_close(api->cluster);
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
	rest_listen_stop(api);
	if (api->http)
		evhttp_free(api->http);
	if (api->base)
		event_base_free(api->base);
	store_close(api->store);
	quota_free(&api->quota);
	cfg_free(api->cfg);
	free(api->bound);
	free(api);
}

int api_main(struct cfg *cfg, const char *cfg_path)
{
	struct api *api = calloc(1, sizeof(*api));
	int rc = 1;

	BUG_ON(!api);
	api->cfg = cfg;
	api->cfg_path = cfg_path;
	api->accepting = true;
	signal(SIGPIPE, SIG_IGN);
	if (api_start(api) == 0) {
		log_info("api: ready: store %s, %u slots, %zu client%s",
			 cfg->store.path, cfg->store.capacity, cfg->nclients,
			 cfg->nclients == 1 ? "" : "s");
		event_base_dispatch(api->base);
		rc = 0;
	}
	api_free(api);
	return rc;
}
