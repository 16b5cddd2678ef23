/*
 * Peeking, bounded in size (IN_MAX_*) and in time (the TL_PEEK deadline):
 * the answering policy decides from what was read, answer.c or
 * upstream.c takes it from there.
 */
#include "proxy/peek.h"

#include <stdlib.h>
#include <string.h>

#include "common/edge.h"
#include "common/ident.h"
#include "common/log.h"
#include "proxy/answer.h"
#include "proxy/answer_policy.h"
#include "proxy/rest.h"
#include "proxy/upstream.h"
#include "wire/http_head.h"
#include "wire/proxy_hdr.h"
#include "wire/tls_hello.h"

#define IN_MAX_HTTP 8192		/* request head, with pipelined bytes */
#define IN_MAX_TLS (16384 + 2048)	/* hello plus record headers */

void peek_more(struct worker *w, struct conn *c)
{
	uint32_t max = c->https ? IN_MAX_TLS : IN_MAX_HTTP;

	if (c->in_len == c->in_cap && c->in_cap < max) {
		uint32_t cap = c->in_cap ? c->in_cap * 2 : CONN_IN_INITIAL;
		uint8_t *p;
		if (cap > max)
			cap = max;
		p = realloc(c->in, cap);
		BUG_ON(!p);
		c->in = p;
		c->in_cap = cap;
	}
	BUG_ON(c->in_len >= c->in_cap);
	/* After an answer the client reads it before it asks again. */
	if (!recv_busy(c, SIDE_CLIENT))
		op_recv(w, c, SIDE_CLIENT, c->in + c->in_len,
			c->in_cap - c->in_len, c->requests > 0 && c->in_len == 0);
}

/*
 * Whether what the peek decided for c waits for the end of the loop turn
 * (worker.h): anything but answering a recognised challenge does, once.
 */
static bool later(struct worker *w, struct conn *c)
{
	if (c->decide_now)
		return false;
	worker_defer(w, c);
	return true;
}

void peek_refuse(struct worker *w, struct conn *c, int stat, const char *why)
{
	char peer[ADDR_STRLEN];

	addr_format(conn_peer(c), peer, sizeof(peer));
	log_ratelimited(&conn_lim_peer, LOG_LVL_INFO, "proxy: %s from %s: %s",
			c->https ? "https" : "http", peer, why);
	conn_close(w, c, stat);
}

/* Returns true when peeking may go on to the request or hello. */
static bool peek_proxy_header(struct worker *w, struct conn *c)
{
	struct proxy_hdr ph;
	int r = proxy_hdr_parse(c->in, c->in_len, &ph);

	if (r == WIRE_NOTPROXY) {
		c->proxy_done = true;
		return true;
	}
	if (r == WIRE_PARTIAL) {
		peek_more(w, c);
		return false;
	}
	if ((!c->trusted || r < 0) && later(w, c))
		return false;
	if (!c->trusted) {
		peek_refuse(w, c, PS_CLOSE_PROXY_UNTRUSTED,
			    "PROXY header from an address not in trusted_proxies");
		return false;
	}
	if (r < 0) {
		peek_refuse(w, c, PS_CLOSE_PROXY_BAD, "malformed PROXY header");
		return false;
	}
	if (!ph.local) {
		conn_addr_set(&c->peer, (const struct sockaddr *)&ph.src,
			      sizeof(ph.src));
		conn_addr_set(&c->local, (const struct sockaddr *)&ph.dst,
			      sizeof(ph.dst));
	}
	conn_consume(c, (size_t)r);
	c->proxy_done = true;
	return true;
}

static void peek_hello(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = w->lc->cfg;
	const struct store_entry *e = NULL;
	struct tls_hello h;
	struct tls_ask ask;
	enum policy_action act;
	int r = tls_hello_parse(c->in, c->in_len, &h, w->hello_scratch,
				sizeof(w->hello_scratch));

	if (r == WIRE_PARTIAL && c->in_len < IN_MAX_TLS) {
		peek_more(w, c);
		return;
	}
	if (r < 0 && later(w, c))
		return;
	if (r == WIRE_PARTIAL || r == WIRE_TOOBIG) {
		peek_refuse(w, c, PS_CLOSE_HELLO_TOO_LARGE, "ClientHello too large");
		return;
	}
	if (r < 0) {
		peek_refuse(w, c, PS_CLOSE_BAD_HELLO, "malformed ClientHello");
		return;
	}
	policy_tls_ask(&h, &ask);
	if (ask.asks && ask.name_len &&
	    store_lookup(w->px->store, STORE_TLSALPN01, ask.name, ask.name_len,
			 clock_wall_ms(), &w->entry) == 0)
		e = &w->entry;
	act = policy_tls(&ask, e, cfg->proxy.tls_miss);
	if (act != POLICY_ANSWER && later(w, c))
		return;
	if (answer_tls(w, c, &ask, act, e))
		return;
	upstream_forward(w, c, ask.name, ask.name_len);
}

static void peek_request(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = w->lc->cfg;
	const struct store_entry *e = NULL;
	const struct cfg_stateless *rule;
	struct http_head h;
	struct http01_ask ask;
	struct rest_ask rest;
	enum policy_action act;
	int r = policy_h2_preface(c->in, c->in_len);

	if (r >= 0) {
		if (r == 0)
			peek_more(w, c);
		else if (!later(w, c))
			upstream_forward(w, c, NULL, 0);
		return;
	}
	r = http_head_parse(c->in, c->in_len, &h);

	if (r == WIRE_PARTIAL && c->in_len < IN_MAX_HTTP) {
		peek_more(w, c);
		return;
	}
	if (r < 0 && later(w, c))
		return;
	if (r == WIRE_PARTIAL || r == WIRE_TOOBIG) {
		answer_http_error(w, c, 431, "Request Header Fields Too Large",
				  PS_CLOSE_HEAD_TOO_LARGE);
		return;
	}
	if (r < 0) {
		char peer[ADDR_STRLEN];
		addr_format(conn_peer(c), peer, sizeof(peer));
		log_ratelimited(&conn_lim_peer, LOG_LVL_INFO,
				"proxy: http from %s: malformed request head", peer);
		answer_http_error(w, c, 400, "Bad Request", PS_CLOSE_BAD_REQUEST);
		return;
	}
	/* PUT and DELETE of a challenge path: the gateway's, never relayed. */
	policy_rest_ask(&h, &rest);
	if (rest.asks) {
		if (!later(w, c))
			rest_request(w, c, &h, &rest);
		return;
	}
	policy_http01_ask(&h, &ask);
	if (ask.asks && store_lookup(w->px->store, STORE_HTTP01, ask.token.ptr,
				     ask.token.len, clock_wall_ms(), &w->entry) == 0)
		e = &w->entry;
	rule = policy_stateless_rule(&ask, &h, cfg);
	act = policy_http01(&ask, &h, e, rule, cfg->proxy.http_miss);
	if (act != POLICY_ANSWER && act != POLICY_STATELESS && later(w, c))
		return;
	if (answer_http01(w, c, &h, &ask, act, e, rule))
		return;
	upstream_forward(w, c, h.has_host ? h.host : NULL, h.host_len);
}

void peek_advance(struct worker *w, struct conn *c)
{
	if (!c->proxy_done && !peek_proxy_header(w, c))
		return;
	if (c->in_len == 0) {
		peek_more(w, c);
		return;
	}
	if (c->https)
		peek_hello(w, c);
	else
		peek_request(w, c);
}

void peek_recv(struct worker *w, struct conn *c, int res)
{
	if (res < 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	if (res == 0) {
		/* Closed before saying anything complete: nothing to answer. */
		conn_close(w, c, c->in_len ? (c->https ? PS_CLOSE_BAD_HELLO
						       : PS_CLOSE_BAD_REQUEST) : -1);
		return;
	}
	c->in_len += (uint32_t)res;
	peek_advance(w, c);
}
