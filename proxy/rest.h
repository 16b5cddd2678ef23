/*
 * The REST responder, the proxy's half: a PUT or DELETE of a challenge
 * path on port 80 is refused here (401, 403, 400) or handed to the API's
 * REST listener, which checks it again and answers. Never relayed to an
 * upstream, never written to the store by the proxy.
 */
#ifndef EDGE_PROXY_REST_H
#define EDGE_PROXY_REST_H

#include "proxy/answer_policy.h"
#include "proxy/conn.h"
#include "wire/http_head.h"

/* Takes request h (its head at the start of c->in), which ask asks. */
void rest_request(struct worker *w, struct conn *c, const struct http_head *h,
		  const struct rest_ask *ask);

#endif
