/*
 * A connection and its state machine, written once for every I/O backend.
 *
 *   accept -> PEEK: read the PROXY header (trusted peers), then the HTTP
 *             request head (:80) or the ClientHello (:443), bounded in size
 *             and in time (peek_timeout). peek.c
 *   PEEK -> ANSWER   an http-01 challenge (or 400/404/408/431/502) answered
 *                    here; keep-alive returns to PEEK for the next request.
 *   PEEK -> ACME_TLS acme-tls/1 for a name with a challenge: the handshake
 *                    runs through memory BIOs (acme_tls.c). answer.c
 *   PEEK -> CONNECTING -> RELAY  everything else: the bytes read so far are
 *                    replayed to the upstream (upstream.c), then bytes flow
 *                    both ways (relay.c).
 *   ANSWER/ACME_TLS -> LINGER: our last bytes are out; we shut our write
 *                    side and read until the client closes (bounded), so a
 *                    close never turns into an RST that would destroy data
 *                    the client has not read yet.
 *   any -> CLOSING: every operation in flight is cancelled; the connection
 *                    is freed by the completion that brings inflight to 0,
 *                    never earlier.
 *
 * Invariants: at most one receive and one send in flight per socket; a
 * buffer handed to the backend is not touched until its operation
 * completes; every operation started increments inflight and its
 * completion decrements it, whatever the result (-ECANCELED included).
 * Only the op_*() functions of conn.c start operations, which keeps
 * io.pend exact for the backends.
 */
#ifndef EDGE_CONN_H
#define EDGE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/log.h"
#include "proxy/io.h"
#include "proxy/worker.h"

struct conn;

/* One connection's links in a list of them (struct conn_list). */
struct conn_link {
	struct conn *prev, *next;
};

/* Bytes of client input a connection first allocates. */
#define CONN_IN_INITIAL 2048

enum conn_state {
	ST_FREE = 0,
	ST_PEEK,		/* reading PROXY header / request head / hello */
	ST_ANSWER,		/* sending a locally made HTTP answer */
	ST_ACME_TLS,		/* acme-tls/1 handshake in progress */
	ST_CONNECTING,		/* to an upstream */
	ST_RELAY,		/* bytes both ways */
	ST_LINGER,		/* our last bytes sent: read and drop until EOF */
	ST_CLOSING,		/* waiting for operations to end, then freed */
};

/*
 * One direction of a relay: bytes read from one side, not yet all sent.
 * buf is a pool buffer held only while it has bytes (or a receive into it
 * is in flight): an idle relayed connection holds none.
 */
struct relay_dir {
	uint8_t *buf;
	uint32_t len;		/* bytes in buf */
	uint32_t off;		/* bytes of them already sent */
	bool eof;		/* the source side said EOF */
	bool shut;		/* we shut the destination's write side */
	/*
	 * Bulk: a receive once filled a whole buffer, so bytes now move
	 * socket -> pipe -> socket with splice(2) and never through user
	 * space. The pipe is held only while bytes are in it (or are about
	 * to be): a bulk direction waiting for its source holds none.
	 */
	bool bulk;
	struct splice_pipe pipe;
	uint32_t piped;		/* bytes in the pipe */
};

/*
 * An address and port as accept or a PROXY header gives them, in 28
 * bytes where a sockaddr_storage takes 128: the slab holds two per
 * connection. AF_UNSPEC: unknown.
 */
union conn_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Keeps sa when it is IPv4 or IPv6 (len bytes of it), else unknown. */
void conn_addr_set(union conn_addr *a, const struct sockaddr *sa,
		   socklen_t len);

struct conn {
	struct io_conn io;	/* slot, generation, sockets, requests */
	uint8_t state;		/* enum conn_state */
	uint8_t listener;	/* index into the worker's listeners */
	bool https;
	bool trusted;		/* peer may send a PROXY header */
	bool proxy_done;	/* PROXY header consumed (or none expected) */
	bool keep_alive;	/* answer keeps the connection for more requests */
	bool said_all;		/* the client has no more bytes to send us */
	bool nonblock;		/* both sockets O_NONBLOCK (splice needs it) */
	bool deferred;		/* its peek decided; the decision waits (worker.h) */
	bool decide_now;	/* its turn in that queue: carry the decision out */
	uint8_t splice_wait;	/* 1 << d: bulk directions waiting for a turn */
	uint16_t inflight;	/* operations started, not yet completed */
	/*
	 * The client, from accept (or a trusted PROXY header): the kernel
	 * forgets it once the client resets, though its bytes may still be
	 * relayed. local: where it connected to, asked for when needed.
	 */
	union conn_addr peer;
	union conn_addr local;
	uint64_t born_ms;	/* accepted (conn_rank) */

	/* Client input until the connection is answered or relayed. */
	uint8_t *in;
	uint32_t in_len;
	uint32_t in_cap;

	/* Locally made output (HTTP answers, TLS records). */
	uint8_t *out;
	uint32_t out_len;
	uint32_t out_off;
	uint32_t out_cap;

	/* Relay, dir[0]: client to upstream; dir[1]: upstream to client. */
	struct relay_dir dir[2];

	/* Upstream choice: a reference to the config the route came from. */
	struct live_cfg *lc;
	const struct cfg_route *route;
	uint32_t server_next;
	uint8_t attempts;

	struct acme_tls *tls;
	char *tls_names;	/* "key\0identifier\0" of the entry, for the log */
	uint32_t requests;	/* answered on this connection */

	/*
	 * The worker's queue of decisions waiting (deferred) at the peek, or
	 * of bulk directions waiting for splicing room (splice_wait) once
	 * relaying: never both at once.
	 */
	struct conn_link later;

	/* Timer list membership: deadlines in a list are in arm order. */
	uint8_t tlist;
	uint64_t deadline_ms;
	struct conn_link timer;
};

/*
 * The lists a connection is on (a timer list, the deferred queue), each
 * through its own links: off is offsetof(struct conn, timer) or
 * offsetof(struct conn, later).
 */
static inline struct conn_link *conn_link_at(struct conn *c, size_t off)
{
	return (struct conn_link *)((char *)c + off);
}

static inline void conn_list_append(struct conn_list *l, struct conn *c,
				    size_t off)
{
	struct conn_link *k = conn_link_at(c, off);

	k->prev = l->tail;
	k->next = NULL;
	if (l->tail)
		conn_link_at(l->tail, off)->next = c;
	else
		l->head = c;
	l->tail = c;
}

static inline void conn_list_remove(struct conn_list *l, struct conn *c,
				    size_t off)
{
	struct conn_link *k = conn_link_at(c, off);

	if (k->prev)
		conn_link_at(k->prev, off)->next = k->next;
	else
		l->head = k->next;
	if (k->next)
		conn_link_at(k->next, off)->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

static inline struct conn *conn_of(struct io_conn *ic)
{
	return (struct conn *)((char *)ic - offsetof(struct conn, io));
}

/* Per thread, one budget for every peer-misbehaviour line of a worker. */
extern __thread struct log_limit conn_lim_peer;

/* The worker's n connection slots, all free; and their end. */
void conn_slab_init(struct worker *w, uint32_t n);
void conn_slab_free(struct worker *w);
/* Takes a free slot for a new connection; NULL when none is free. */
struct conn *conn_alloc(struct worker *w);
/*
 * Starts closing: counts stat (a pstat, or -1), cancels what is in
 * flight, and frees now if nothing is. Safe to call more than once.
 */
void conn_close(struct worker *w, struct conn *c, int stat);

/* Moves c to state st, keeping the worker's counts of each kind exact. */
void conn_state(struct worker *w, struct conn *c, enum conn_state st);

/* (Re)arms c's deadline on list tl; unlinks it from any other. */
void timer_arm(struct worker *w, struct conn *c, enum timer_list tl);
void timer_unlink(struct worker *w, struct conn *c);
/* When c's deadline was last armed (it is on a list). */
uint64_t timer_armed_at(const struct worker *w, const struct conn *c);

/*
 * The only calls into the backend for a connection. later: the peer is
 * not expected to have sent anything yet (it waits for our answer or for
 * the other side), so the backend may wait for input before trying.
 */
void op_recv(struct worker *w, struct conn *c, enum side s, void *buf,
	     size_t len, bool later);
void op_send(struct worker *w, struct conn *c, enum side s, const void *buf,
	     size_t len);
void op_poll(struct worker *w, struct conn *c, enum side s, bool out,
	     bool yield);
void op_shutdown(struct worker *w, struct conn *c, enum side s);
void op_connect(struct worker *w, struct conn *c, const struct sockaddr *sa,
		socklen_t len);
/* Ends what socket s has in flight; completes as IO_CANCEL. */
void op_cancel(struct worker *w, struct conn *c, enum side s);

static inline bool recv_busy(const struct conn *c, enum side s)
{
	return c->io.pend[s].recv != 0;
}

static inline bool send_busy(const struct conn *c, enum side s)
{
	return c->io.pend[s].send != 0;
}

/* Drops the first n bytes of client input. */
static inline void conn_consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= (uint32_t)n;
}

static inline const struct sockaddr *conn_peer(const struct conn *c)
{
	return &c->peer.sa;
}

#endif
