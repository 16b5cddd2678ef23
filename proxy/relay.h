/*
 * The relay: bytes both ways between client and upstream, through a pool
 * buffer per direction held only while it has bytes, or, for bulk
 * directions, socket -> pipe -> socket with splice(2).
 */
#ifndef EDGE_RELAY_H
#define EDGE_RELAY_H

#include "proxy/conn.h"

/* A new connection's directions: no buffer, no pipe. */
void relay_init(struct conn *c);
/* Gives back what the directions hold (the connection is being freed). */
void relay_release(struct worker *w, struct conn *c);

/*
 * The buffer of the client-to-upstream direction, for the bytes that go
 * first; relay_start() then relays, those n bytes first.
 */
uint8_t *relay_start_buf(struct worker *w, struct conn *c);
void relay_start(struct worker *w, struct conn *c, uint32_t n);

/* Completions while relaying. d: 0 client to upstream, 1 the other way. */
void relay_recv(struct worker *w, struct conn *c, enum side s, int res,
		void *buf);
void relay_sent(struct worker *w, struct conn *c, enum side s, int res);
void relay_ready(struct worker *w, struct conn *c, int d, int res);
void relay_shut(struct worker *w, struct conn *c);

/*
 * Bytes all bulk directions of a worker splice in one loop turn. Past
 * them a direction that would read more waits in the worker's splice_wait
 * queue, oldest first, and while any waits, newly ready ones queue behind
 * them: a turn never holds the next validator's accept behind a flood's
 * worth of copying, and every relay still gets its share.
 */
#define TURN_SPLICE_BYTES (1024 * 1024)
/* Resumes waiting directions while the turn's bytes last; whether any wait. */
bool relay_run_waiting(struct worker *w);
/* c leaves the queue (it closes). */
void relay_unwait(struct worker *w, struct conn *c);

#endif
