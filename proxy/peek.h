/*
 * Peeking: reading what a client says first (a PROXY header from a trusted
 * peer, then the HTTP request head or the ClientHello), bounded in size
 * and in time, and handing the connection to a local answer or a relay.
 */
#ifndef EDGE_PEEK_H
#define EDGE_PEEK_H

#include "proxy/conn.h"

/* Receives more client input into c->in, growing it up to the port's cap. */
void peek_more(struct worker *w, struct conn *c);
/* Acts on what c->in holds: asks for more, answers, or forwards. */
void peek_advance(struct worker *w, struct conn *c);
void peek_recv(struct worker *w, struct conn *c, int res);
/* Closes a misbehaving client, counted as stat, with a rate-limited line. */
void peek_refuse(struct worker *w, struct conn *c, int stat, const char *why);

#endif
