/*
 * The status page: GET / serves status.html (embedded at build time, see
 * CMakeLists.txt), a self-contained page that asks for a client token and
 * shows that client's challenges and the gateway's state by calling the
 * JSON API with it; GET /v1/status is that state.
 *
 * The page loads nothing from anywhere: its one style and one script are
 * inline, allowed by their SHA-256 in the Content-Security-Policy and by
 * nothing else, and it may connect only to this origin. A script injected
 * into the page (through an entry's name, say) would not run.
 */
#include <string.h>

#include <event2/http.h>
#include <openssl/evp.h>

#include "common/edge.h"
#include "solver-api/cluster.h"
#include "solver-api/internal.h"

extern const unsigned char status_html[];
extern const size_t status_html_len;

/* "'sha256-<base64>'" of the page's text between open and close. */
static void inline_hash(const char *open, const char *close, char *out,
			size_t cap)
{
	const char *html = (const char *)status_html;
	const char *a = strstr(html, open), *b;
	unsigned char d[EVP_MAX_MD_SIZE], b64[64];
	unsigned int dlen = 0;

	BUG_ON(!a);
	a += strlen(open);
	b = strstr(a, close);
	BUG_ON(!b);
	BUG_ON(!EVP_Digest(a, (size_t)(b - a), d, &dlen, EVP_sha256(), NULL));
	EVP_EncodeBlock(b64, d, (int)dlen);
	snprintf(out, cap, "'sha256-%s'", (const char *)b64);
}

/* Computed once: the page is the same bytes for the process's life. */
static const char *page_csp(void)
{
	static char csp[512];
	char script[96], style[96];

	if (csp[0])
		return csp;
	inline_hash("<script>", "</script>", script, sizeof(script));
	inline_hash("<style>", "</style>", style, sizeof(style));
	snprintf(csp, sizeof(csp), "default-src 'none'; script-src %s; "
		 "style-src %s; connect-src 'self'; frame-ancestors 'none'; "
		 "base-uri 'none'; form-action 'none'", script, style);
	return csp;
}

void handle_status_page(struct req_ctx *rc)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);

	evhttp_add_header(h, "Content-Security-Policy", page_csp());
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	api_reply_raw(rc, 200, "text/html; charset=utf-8",
		      (const char *)status_html, status_html_len);
}

/* The proxy's side, from the statistics it publishes; up false without. */
static json_t *proxy_json(const struct pstats *ps)
{
	if (!ps)
		return json_pack("{s:b}", "up", 0);
#define S(id) ((json_int_t)pstats_sum(ps, PS_##id))
	return json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:{s:{s:I, s:I}, "
			 "s:{s:I, s:I}}, s:I}",
			 "up", 1, "io_backend", pstats_backend(ps),
			 "workers", (json_int_t)pstats_nworkers(ps),
			 "started_ms", (json_int_t)pstats_started_ms(ps),
			 "connections", S(ACTIVE),
			 "accepted", S(ACCEPTED_HTTP) + S(ACCEPTED_HTTPS),
			 "challenges",
			 "http-01", "answered", S(HTTP01_ANSWERED),
			 "missed", S(HTTP01_MISSED),
			 "tls-alpn-01", "answered", S(TLSALPN01_ANSWERED),
			 "missed", S(TLSALPN01_MISSED),
			 "bytes_relayed", S(BYTES_TO_UPSTREAM) + S(BYTES_TO_CLIENT));
#undef S
}

void handle_status(struct req_ctx *rc)
{
	struct api *api = rc->api;
	struct pstats *ps = metrics_open_pstats(api);
	struct store_stats st;
	json_t *obj;

	store_get_stats(api->store, &st);
	obj = json_pack("{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I}}",
			"version", EDGE_VERSION, "client", rc->client->name,
			"proxy", proxy_json(ps),
			"store", "used", (json_int_t)st.used,
			"capacity", (json_int_t)st.capacity,
			"http-01", (json_int_t)st.used_http01,
			"tls-alpn-01", (json_int_t)st.used_tlsalpn01,
			"api", "connections", (json_int_t)api->nconns);
	pstats_close(ps);
	if (obj)
		json_object_set_new(obj, "cluster", api->cluster ?
				    cluster_health_json(api->cluster) : json_null());
	api_reply_json(rc, 200, obj);
}
