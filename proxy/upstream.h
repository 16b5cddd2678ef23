/*
 * Upstreams: choosing the route for a name, connecting to its servers in
 * turn, and, once connected, replaying what the client said (after a
 * PROXY header when the route wants one) before the relay takes over.
 */
#ifndef EDGE_UPSTREAM_H
#define EDGE_UPSTREAM_H

#include <stddef.h>

#include "proxy/conn.h"

/* Relays c to the upstream name (NULL: none) routes to. */
void upstream_forward(struct worker *w, struct conn *c, const char *name,
		      size_t name_len);
/*
 * Relays c to the API's REST listener ([api] rest_listen), after a PROXY
 * v2 header with the client's address: the REST responder's hand-off.
 */
void upstream_forward_rest(struct worker *w, struct conn *c);
/* A connect completed (CONNECTING). */
void upstream_connected(struct worker *w, struct conn *c, int res);

#endif
