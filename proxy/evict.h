/*
 * The cap, and who makes room at it.
 *
 * A worker relays at most max_connections connections (connecting to an
 * upstream, or relaying). Its descriptor room is what max_connections
 * relays and the reserve hold: 2 * max_connections + reserve. A relay
 * holds two descriptors, a connection at the peek one: those still being
 * read, answered here (an http-01 answer, an acme-tls/1 handshake) or
 * lingering after an answer, each bounded by peek_timeout or the linger
 * time. So with few relays open, twice max_connections idle or slow
 * clients are held without closing any (each one closed is one more
 * reconnect to take in), and the reserve is always theirs. The slab holds
 * the room and the reserve again for connections that are still closing.
 *
 *   - Accepting: a connection is taken in while the room has a descriptor
 *     free, or fewer than the reserve are at the peek. Past both, the one
 *     at the peek longest is closed for it: a validator's request takes a
 *     round trip, a slow or idle client's takes seconds.
 *   - Relaying: the upstream socket takes a descriptor, made free by
 *     closing the connection at the peek longest when the room is full.
 *     The connection that would be relay max_connections + 1 closes the
 *     relay idle longest (no byte either way, or its connect unanswered)
 *     if that one has been idle RELAY_IDLE_EVICT_MS; else it is refused.
 *
 * Relays therefore never take the reserve, and no number of idle or slow
 * clients, whatever they hold, keeps a validator out.
 */
#ifndef EDGE_EVICT_H
#define EDGE_EVICT_H

#include <stdbool.h>

#include "proxy/worker.h"

#define RELAY_IDLE_EVICT_MS 1000

/* Before taking a new connection in: makes room if the cap says so. */
void evict_for_accept(struct worker *w);
struct conn;

/* Before c, at the peek, becomes a relay: false when it may not. */
bool evict_for_relay(struct worker *w, const struct conn *c);
/* A new connection found no free slot (all taken by closing ones). */
void evict_refused(struct worker *w);
/*
 * Accept ran out of descriptors (the budget of proxy.c did not hold:
 * descriptors taken elsewhere): the connection at the peek longest gives
 * its back for the next accept.
 */
void evict_for_descriptor(struct worker *w);
/*
 * Once per loop turn: at most one line a second tells what the cap did,
 * however many connections it closed or refused meanwhile.
 */
void evict_log(struct worker *w);

#endif
