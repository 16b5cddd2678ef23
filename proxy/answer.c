#include "proxy/answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/edge.h"
#include "common/ident.h"
#include "common/log.h"
#include "proxy/acme_tls.h"
#include "proxy/peek.h"

#define OUT_CAP 16384
/* Bytes of a challenge line's detail logged at most (errors are shorter). */
#define DETAIL_MAX 255

/* Per thread: each worker limits its own lines of challenges missed. */
static __thread struct log_limit lim_miss;

static void out_reset(struct conn *c)
{
	c->out_len = c->out_off = 0;
	if (!c->out) {
		c->out = malloc(OUT_CAP);
		BUG_ON(!c->out);
		c->out_cap = OUT_CAP;
	}
}

static void out_flush(struct worker *w, struct conn *c)
{
	if (c->out_off < c->out_len && !send_busy(c, SIDE_CLIENT))
		op_send(w, c, SIDE_CLIENT, c->out + c->out_off,
			c->out_len - c->out_off);
}

/* Our last bytes are out: half-close and read until the client closes. */
static void linger(struct worker *w, struct conn *c)
{
	conn_state(w, c, ST_LINGER);
	timer_arm(w, c, TL_LINGER);
	op_shutdown(w, c, SIDE_CLIENT);
	if (!recv_busy(c, SIDE_CLIENT)) {
		if (!c->in) {
			c->in = malloc(CONN_IN_INITIAL);
			BUG_ON(!c->in);
			c->in_cap = CONN_IN_INITIAL;
		}
		op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
	}
}

/* Appends n bytes to the answer being made; answers fit out_cap. */
static void out_put(struct conn *c, const void *src, size_t n)
{
	BUG_ON(c->out_len + n > c->out_cap);
	memcpy(c->out + c->out_len, src, n);
	c->out_len += (uint32_t)n;
}

static void out_puts(struct conn *c, const char *s)
{
	out_put(c, s, strlen(s));
}

static void out_putu(struct conn *c, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	out_put(c, d + i, sizeof(d) - i);
}

/*
 * Queues an HTTP answer; keep decides whether the connection returns to
 * PEEK after it; extra: more header lines, each ending in CRLF, or NULL.
 * Made without printf: it runs once per challenge answered.
 */
static void http_answer_with(struct worker *w, struct conn *c, int code,
			     const char *reason, const char *extra,
			     const char *ctype, const char *body,
			     size_t body_len, bool head_only, bool keep)
{
	out_reset(c);
	out_puts(c, "HTTP/1.1 ");
	out_putu(c, (uint64_t)code);
	out_puts(c, " ");
	out_puts(c, reason);
	out_puts(c, "\r\n");
	if (extra)
		out_puts(c, extra);
	out_puts(c, "Server: acme-edge\r\nContent-Type: ");
	out_puts(c, ctype);
	out_puts(c, "\r\nContent-Length: ");
	out_putu(c, body_len);
	out_puts(c, "\r\nCache-Control: no-store\r\nConnection: ");
	out_puts(c, keep ? "keep-alive\r\n\r\n" : "close\r\n\r\n");
	if (!head_only)
		out_put(c, body, body_len);
	c->keep_alive = keep;
	conn_state(w, c, ST_ANSWER);
	timer_arm(w, c, TL_PEEK);
	out_flush(w, c);
}

static void http_answer(struct worker *w, struct conn *c, int code,
			const char *reason, const char *ctype, const char *body,
			size_t body_len, bool head_only, bool keep)
{
	http_answer_with(w, c, code, reason, NULL, ctype, body, body_len,
			 head_only, keep);
}

void answer_http_json_error(struct worker *w, struct conn *c, int code,
			    const char *reason, const char *what,
			    const char *detail, int stat)
{
	char body[512];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"detail\":\"%s\"}",
			 what, detail);

	BUG_ON(n < 0 || (size_t)n >= sizeof(body));
	if (stat >= 0)
		pstats_add(w->stats, (enum pstat)stat, 1);
	http_answer_with(w, c, code, reason, code == 401 ?
			 "WWW-Authenticate: Bearer realm=\"acme-edge\"\r\n" : NULL,
			 "application/json", body, (size_t)n, false, false);
}

void answer_http_error(struct worker *w, struct conn *c, int code,
		       const char *reason, int stat)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);

	if (stat >= 0)
		pstats_add(w->stats, (enum pstat)stat, 1);
	http_answer(w, c, code, reason, "text/plain", body, (size_t)n, false,
		    false);
}

/*
 * key and ident may be the peer's own bytes (a token from the request
 * target, an SNI name), detail an error that quotes some: escaped, no
 * client can write a line of its own.
 */
static void log_challenge(struct worker *w, struct conn *c, uint8_t kind,
			  const char *key, size_t key_len, const char *ident,
			  enum pstats_outcome outcome, const char *detail)
{
	char peer[ADDR_STRLEN];
	char k[LOG_ESC_SIZE(STORE_KEY_MAX)], id[LOG_ESC_SIZE(TLS_SNI_MAX)];
	char d[LOG_ESC_SIZE(DETAIL_MAX)];

	pstats_hit(w->stats, kind, key, key_len, conn_peer(c),
		   outcome, clock_wall_ms());
	if (!log_enabled(LOG_LVL_INFO))
		return;
	addr_format(conn_peer(c), peer, sizeof(peer));
	log_escape(k, sizeof(k), key, key_len);
	log_escape(id, sizeof(id), ident, strlen(ident));
	log_escape(d, sizeof(d), detail ? detail : "", detail ? strlen(detail) : 0);
	if (outcome == HIT_ANSWERED || outcome == HIT_STATELESS)
		log_info("proxy: %s answered: client %s, identifier %s, key %s%s%s",
			 store_kind_name((enum store_kind)kind), peer, id, k,
			 detail ? ", " : "", d);
	else
		log_ratelimited(&lim_miss, LOG_LVL_INFO,
				"proxy: %s %s: client %s, identifier %s, key %s%s%s",
				store_kind_name((enum store_kind)kind),
				outcome == HIT_MISSED ? "missed" : "failed", peer,
				id, k, detail ? ", " : "", d);
}

bool answer_http01(struct worker *w, struct conn *c, const struct http_head *h,
		   const struct http01_ask *ask, enum policy_action act,
		   const struct store_entry *e, const struct cfg_stateless *rule)
{
	static const char miss_body[] = "no such challenge\n";
	bool nobody = h->content_length <= 0 && !h->chunked;
	const char *host = h->has_host ? h->host : "-";
	char body[STATELESS_BODY_MAX], detail[CFG_NAME_MAX + 32];
	size_t body_len = 0;

	if (act == POLICY_RELAY)
		return false;
	if (act == POLICY_ANSWER) {
		pstats_add(w->stats, PS_HTTP01_ANSWERED, 1);
		log_challenge(w, c, STORE_HTTP01, ask->token.ptr, ask->token.len,
			      host, HIT_ANSWERED, NULL);
		c->requests++;
	} else if (act == POLICY_STATELESS) {
		body_len = policy_stateless_body(ask, rule, body);
		snprintf(detail, sizeof(detail), "stateless [stateless %s]",
			 rule->name);
		pstats_add(w->stats, PS_HTTP01_STATELESS, 1);
		log_challenge(w, c, STORE_HTTP01, ask->token.ptr, ask->token.len,
			      host, HIT_STATELESS, detail);
		c->requests++;
	} else {
		pstats_add(w->stats, PS_HTTP01_MISSED, 1);
		log_challenge(w, c, STORE_HTTP01, ask->token.ptr, ask->token.len,
			      host, HIT_MISSED,
			      act == POLICY_MISS_REFUSE ? "404" : "forwarded");
		if (act == POLICY_MISS_RELAY)
			return false;
	}
	conn_consume(c, h->head_len);
	/* Asked to close, all read: nothing can follow (no RST). */
	c->said_all = !h->keep_alive && nobody && c->in_len == 0;
	if (act == POLICY_ANSWER)
		http_answer(w, c, 200, "OK", "application/octet-stream",
			    (const char *)e->payload, e->payload_len, ask->head,
			    h->keep_alive && nobody);
	else if (act == POLICY_STATELESS)
		http_answer(w, c, 200, "OK", "application/octet-stream", body,
			    body_len, ask->head, h->keep_alive && nobody);
	else
		http_answer(w, c, 404, "Not Found", "text/plain", miss_body,
			    sizeof(miss_body) - 1, ask->head,
			    h->keep_alive && nobody);
	return true;
}

static void tls_drive(struct worker *w, struct conn *c)
{
	enum acme_tls_status st = acme_tls_step(c->tls);
	const char *key = c->tls_names, *ident = key + strlen(key) + 1;

	if (c->out_off == c->out_len)
		c->out_len = c->out_off = 0;
	c->out_len += (uint32_t)acme_tls_take(c->tls, c->out + c->out_len,
					      c->out_cap - c->out_len);
	if (st == ACME_TLS_DONE || st == ACME_TLS_ERROR) {
		bool ok = st == ACME_TLS_DONE;
		pstats_add(w->stats, ok ? PS_HANDSHAKE_OK : PS_HANDSHAKE_FAILED, 1);
		pstats_add(w->stats, ok ? PS_TLSALPN01_ANSWERED : PS_TLSALPN01_MISSED, 1);
		log_challenge(w, c, STORE_TLSALPN01, key, strlen(key), ident,
			      ok ? HIT_ANSWERED : HIT_FAILED,
			      ok ? acme_tls_version(c->tls) : acme_tls_error(c->tls));
		c->keep_alive = false;
		conn_state(w, c, ST_ANSWER);
		if (c->out_off == c->out_len) {
			linger(w, c);
			return;
		}
		out_flush(w, c);
		return;
	}
	/* WANT_READ: send what OpenSSL produced, and read the client's reply. */
	out_flush(w, c);
	if (!recv_busy(c, SIDE_CLIENT))
		op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
}

/* The handshake for entry e; the hello is all of c->in. */
static void tls_start(struct worker *w, struct conn *c,
		      const struct tls_ask *ask, const struct store_entry *e)
{
	char err[256];

	c->tls = acme_tls_new(w->tls_ctx, e, err, sizeof(err));
	if (!c->tls) {
		pstats_add(w->stats, PS_TLSALPN01_MISSED, 1);
		log_challenge(w, c, STORE_TLSALPN01, ask->name, ask->name_len,
			      e->ident, HIT_FAILED, err);
		conn_close(w, c, PS_HANDSHAKE_FAILED);
		return;
	}
	/*
	 * e is the worker's lookup copy, shared by its connections, and the
	 * handshake spans loop turns: keep the names.
	 */
	c->tls_names = malloc(e->key_len + e->ident_len + 2);
	BUG_ON(!c->tls_names);
	memcpy(c->tls_names, e->key, e->key_len + 1);
	memcpy(c->tls_names + e->key_len + 1, e->ident, e->ident_len + 1);
	conn_state(w, c, ST_ACME_TLS);
	out_reset(c);
	if (acme_tls_feed(c->tls, c->in, c->in_len) != 0) {
		conn_close(w, c, PS_HANDSHAKE_FAILED);
		return;
	}
	c->in_len = 0;
	tls_drive(w, c);
}

bool answer_tls(struct worker *w, struct conn *c, const struct tls_ask *ask,
		enum policy_action act, const struct store_entry *e)
{
	const char *name = ask->name_len ? ask->name : "-";

	if (act == POLICY_RELAY)
		return false;
	if (act == POLICY_ANSWER) {
		tls_start(w, c, ask, e);
		return true;
	}
	pstats_add(w->stats, PS_TLSALPN01_MISSED, 1);
	log_challenge(w, c, STORE_TLSALPN01, name, strlen(name), name, HIT_MISSED,
		      act == POLICY_MISS_REFUSE ? "rejected" : "forwarded");
	if (act == POLICY_MISS_RELAY)
		return false;
	out_reset(c);
	out_put(c, acme_tls_alert_unrecognized_name,
		sizeof(acme_tls_alert_unrecognized_name));
	c->keep_alive = false;
	conn_state(w, c, ST_ANSWER);
	pstats_add(w->stats, PS_CLOSE_TLS_REJECT, 1);
	out_flush(w, c);
	return true;
}

static void tls_recv(struct worker *w, struct conn *c, int res)
{
	if (res <= 0) {
		pstats_add(w->stats, PS_HANDSHAKE_FAILED, 1);
		conn_close(w, c, res < 0 ? PS_CLOSE_RESET : -1);
		return;
	}
	if (acme_tls_feed(c->tls, c->in, (size_t)res) != 0) {
		conn_close(w, c, PS_HANDSHAKE_FAILED);
		return;
	}
	tls_drive(w, c);
}

void answer_recv(struct worker *w, struct conn *c, int res)
{
	switch (c->state) {
	case ST_ACME_TLS:
		tls_recv(w, c, res);
		break;
	case ST_LINGER:
		if (res <= 0)
			conn_close(w, c, -1);
		else
			op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
		break;
	default:
		/* ANSWER: a receive left from TLS; the answer decides. */
		if (res <= 0 && !send_busy(c, SIDE_CLIENT))
			conn_close(w, c, -1);
		break;
	}
}

void answer_sent(struct worker *w, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	c->out_off += (uint32_t)res;
	if (c->tls && c->out_off == c->out_len && acme_tls_pending(c->tls)) {
		c->out_len = c->out_off = 0;
		c->out_len = (uint32_t)acme_tls_take(c->tls, c->out, c->out_cap);
	}
	if (c->out_off < c->out_len) {
		out_flush(w, c);
		return;
	}
	if (c->tls) {
		/* Handshake output sent; more may come after the client's reply. */
		if (c->state == ST_ACME_TLS)
			return;
		linger(w, c);
		return;
	}
	if (!c->keep_alive) {
		/*
		 * A close with nothing unread makes the kernel send what is
		 * queued, then FIN: lingering (shutdown, read to EOF) is needed
		 * only when the client may still be sending, since bytes arriving
		 * after close() turn into a reset that can destroy our answer.
		 */
		if (c->said_all && !recv_busy(c, SIDE_CLIENT))
			conn_close(w, c, -1);
		else
			linger(w, c);
		return;
	}
	/* Keep-alive: the next request may already be in the buffer. */
	conn_state(w, c, ST_PEEK);
	c->out_len = c->out_off = 0;
	timer_arm(w, c, TL_PEEK);
	if (w->draining) {
		conn_close(w, c, PS_CLOSE_DRAIN);
		return;
	}
	if (c->in_len)
		peek_advance(w, c);
	else
		peek_more(w, c);
}
