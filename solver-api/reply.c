/*
 * Replies: every request ends in exactly one, and each is counted for
 * /metrics under the request's route and status code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/internal.h"

static const char *reason_for(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 507: return "Insufficient Storage";
	}
	return "Status";
}

void api_reply_raw(struct req_ctx *rc, int code, const char *ctype,
		   const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(rc->req);
	struct evbuffer *out = evbuffer_new();

	BUG_ON(!out);
	if (ctype)
		evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	/* One request per connection the proxy hands over: rest.c. */
	if (rc->rest)
		evhttp_add_header(h, "Connection", "close");
	if (body && len)
		evbuffer_add(out, body, len);
	metrics_count(rc->api, rc->route, code);
	evhttp_send_reply(rc->req, code, reason_for(code), code == 204 ? NULL : out);
	evbuffer_free(out);
}

void api_reply_json(struct req_ctx *rc, int code, json_t *obj)
{
	static const char fallback[] = "{\"error\":\"internal\",\"detail\":"
		"\"the reply could not be encoded as JSON\"}";
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (!s) {
		/*
		 * jansson refuses text that is not UTF-8. What the API puts in
		 * a reply is validated or escaped first, so this is our bug,
		 * but one a peer might find: answer anyway, never abort.
		 */
		log_err("api: a %d reply could not be encoded as JSON", code);
		api_reply_raw(rc, code, "application/json",
			      code >= 400 ? fallback : "{}",
			      code >= 400 ? sizeof(fallback) - 1 : 2);
		return;
	}
	api_reply_raw(rc, code, "application/json", s, strlen(s));
	free(s);
}

void api_reply_error(struct req_ctx *rc, int code, const char *what,
		     const char *fmt, ...)
{
	static struct log_limit anonymous;
	const char *target = evhttp_request_get_uri(rc->req);
	char raw[512], detail[640], uri[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/*
	 * Request text made printable ASCII (log_escape): valid UTF-8 for
	 * jansson whatever the request held, cut only between whole escapes.
	 */
	target = target ? target : "";
	log_escape(detail, sizeof(detail), raw, strlen(raw));
	log_escape(uri, sizeof(uri), target, strlen(target));
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(rc->req),
				  "WWW-Authenticate", "Bearer realm=\"acme-edge\"");
	/*
	 * A client's own errors are what its operator troubleshoots with:
	 * all of them. Anyone can send requests that fail before a client
	 * is known, so those are rate-limited, or they would flood the log.
	 */
	if (rc->client)
		log_info("api: %s %s from %s client %s: %d %s (%s)",
			 metrics_route_name(rc->route), uri, rc->peer,
			 rc->client->name, code, what, detail);
	else
		log_ratelimited(&anonymous, LOG_LVL_INFO, "api: %s %s from %s: "
				"%d %s (%s)", metrics_route_name(rc->route), uri,
				rc->peer, code, what, detail);
	api_reply_json(rc, code, json_pack("{s:s, s:s}", "error", what, "detail",
					   detail));
}

void api_format_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
