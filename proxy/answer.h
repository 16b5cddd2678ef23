/*
 * Local answers: what the proxy says itself. HTTP answers (http-01
 * challenges, their misses, errors), acme-tls/1 handshakes and the
 * unrecognized_name alert, the log line and hit record of every challenge
 * asked, and the lingering close after our last byte.
 */
#ifndef EDGE_ANSWER_H
#define EDGE_ANSWER_H

#include <stdbool.h>

#include "proxy/answer_policy.h"
#include "proxy/conn.h"
#include "wire/http_head.h"

/* Answers with an error page and closes after it; stat: a pstat, or -1. */
void answer_http_error(struct worker *w, struct conn *c, int code,
		       const char *reason, int stat);

/*
 * The same as {"error": what, "detail": detail}, the solver API's form
 * (both ours, never peer bytes: they are not escaped); a 401 carries the
 * Bearer challenge.
 */
void answer_http_json_error(struct worker *w, struct conn *c, int code,
			    const char *reason, const char *what,
			    const char *detail, int stat);

/*
 * Acts on what the policy decided for request h: counts and logs a
 * challenge asked, answers it (from entry e, or from the [stateless] rule;
 * a miss with 404) and consumes its head. false: the connection is the
 * caller's to relay.
 */
bool answer_http01(struct worker *w, struct conn *c, const struct http_head *h,
		   const struct http01_ask *ask, enum policy_action act,
		   const struct store_entry *e, const struct cfg_stateless *rule);

/*
 * The same for a ClientHello, all of it in c->in: starts the handshake
 * with entry e, or refuses a miss with an alert.
 */
bool answer_tls(struct worker *w, struct conn *c, const struct tls_ask *ask,
		enum policy_action act, const struct store_entry *e);

/* Completions while answering (ANSWER, ACME_TLS, LINGER). */
void answer_recv(struct worker *w, struct conn *c, int res);
void answer_sent(struct worker *w, struct conn *c, int res);

#endif
