/*
 * GET /metrics: the Prometheus text exposition of the API's request
 * counters, the store's occupancy, the API's connections, and the proxy's
 * per-worker counters read from its statistics file.
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "common/edge.h"
#include "common/priv.h"
#include "solver-api/cluster.h"
#include "solver-api/internal.h"

static const char *const route_names[R_COUNT] = {
	"put_http01", "delete_http01", "put_tlsalpn01", "delete_tlsalpn01",
	"list", "healthz", "metrics", "status_page", "status", "rest_put",
	"rest_delete", "other",
};

const char *metrics_route_name(enum route_id route)
{
	return route_names[route];
}

void metrics_count(struct api *api, enum route_id route, int code)
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

/*
 * Mapped per request rather than kept, so a restarted proxy (a new file)
 * is picked up without notice.
 */
struct pstats *metrics_open_pstats(struct api *api)
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

static void render_api(struct evbuffer *b, const struct api *api)
{
	struct store_stats st;

	store_get_stats(api->store, &st);
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
		"acmeedge_api_connection_cap_hits_total %llu\n"
		"# HELP acmeedge_api_connections_cut_total Connections the API "
		"closed: no whole request within request_timeout, or past "
		"max_connections_per_source.\n"
		"# TYPE acmeedge_api_connections_cut_total counter\n"
		"acmeedge_api_connections_cut_total{reason=\"request_timeout\"} %llu\n"
		"acmeedge_api_connections_cut_total{reason=\"per_source\"} %llu\n",
		st.used_http01, st.used_tlsalpn01, st.used, st.capacity,
		(unsigned long long)st.puts, api->nconns,
		(unsigned long long)api->conns_refused,
		(unsigned long long)api->conns_cut_deadline,
		(unsigned long long)api->conns_cut_source);
}

void handle_metrics(struct req_ctx *rc)
{
	struct api *api = rc->api;
	struct evbuffer *b = evbuffer_new();
	struct pstats *ps;

	BUG_ON(!b);
	/* Count this scrape before rendering, so the numbers add up. */
	metrics_count(api, rc->route, 200);
	render_api(b, api);
	ps = metrics_open_pstats(api);
	evbuffer_add_printf(b, "# HELP acmeedge_proxy_up Whether a proxy "
			    "process publishes statistics.\n"
			    "# TYPE acmeedge_proxy_up gauge\nacmeedge_proxy_up %d\n",
			    ps != NULL);
	if (ps) {
		render_pstats(b, ps);
		pstats_close(ps);
	}
	if (api->cluster)
		cluster_metrics(api->cluster, b);
	evhttp_add_header(evhttp_request_get_output_headers(rc->req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(rc->req, 200, "OK", b);
	evbuffer_free(b);
}
