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
/* A connect completed (CONNECTING). */
void upstream_connected(struct worker *w, struct conn *c, int res);

#endif
