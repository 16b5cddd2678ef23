/*
 * The core every connection module shares: the slab of connection slots,
 * the timer lists, the operations (the only calls into the backend for a
 * connection), and the dispatch of completions to the module whose state
 * the connection is in.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"
#include "proxy/acme_tls.h"
#include "proxy/answer.h"
#include "proxy/conn.h"
#include "proxy/peek.h"
#include "proxy/relay.h"
#include "proxy/upstream.h"

#define LINGER_MS 2000

__thread struct log_limit conn_lim_peer;

/* ---- timers: one FIFO list per timeout kind ---------------------------- */

static uint32_t timeout_of(const struct worker *w, enum timer_list tl)
{
	const struct cfg *cfg = w->lc->cfg;

	switch (tl) {
	case TL_PEEK:
		return cfg->proxy.peek_timeout_ms;
	case TL_CONNECT:
		return cfg->proxy.connect_timeout_ms;
	case TL_IDLE:
		return cfg->proxy.idle_timeout_ms;
	case TL_LINGER:
		return LINGER_MS;
	default:
		return 0;
	}
}

void timer_unlink(struct worker *w, struct conn *c)
{
	if (c->tlist == TL_NONE)
		return;
	conn_list_remove(&w->timers[c->tlist], c, offsetof(struct conn, timer));
	c->tlist = TL_NONE;
}

/*
 * All deadlines in one list share one timeout, so appending keeps each
 * list sorted and the tick only ever looks at list heads. A reload that
 * changes a timeout leaves older entries slightly out of order, which only
 * delays them by the difference.
 */
void timer_arm(struct worker *w, struct conn *c, enum timer_list tl)
{
	timer_unlink(w, c);
	c->tlist = (uint8_t)tl;
	c->deadline_ms = w->now_ms + timeout_of(w, tl);
	conn_list_append(&w->timers[tl], c, offsetof(struct conn, timer));
}

uint64_t timer_armed_at(const struct worker *w, const struct conn *c)
{
	return c->deadline_ms - timeout_of(w, (enum timer_list)c->tlist);
}

/* ---- slab ------------------------------------------------------------ */

void conn_slab_init(struct worker *w, uint32_t n)
{
	w->nconns_cap = n;
	w->conns = calloc(n, sizeof(*w->conns));
	w->free_slots = calloc(n, sizeof(*w->free_slots));
	BUG_ON(!w->conns || !w->free_slots);
	/* Low slots first: the hot part of the slab stays small. */
	for (uint32_t i = 0; i < n; i++)
		w->free_slots[i] = n - 1 - i;
	w->nfree = n;
}

void conn_slab_free(struct worker *w)
{
	FREE_NULL(w->conns);
	FREE_NULL(w->free_slots);
}

struct conn *conn_alloc(struct worker *w)
{
	struct conn *c;
	uint32_t gen;

	if (w->nfree == 0)
		return NULL;
	c = &w->conns[w->free_slots[--w->nfree]];
	gen = c->io.gen + 1;
	memset(c, 0, sizeof(*c));
	c->io.slot = (uint32_t)(c - w->conns);
	c->io.gen = gen & IO_GEN_MASK;
	c->io.fd[0] = c->io.fd[1] = -1;
	relay_init(c);
	c->born_ms = w->now_ms;
	w->active++;
	pstats_add(w->stats, PS_ACTIVE, 1);
	return c;
}

struct io_conn *io_conn_at(struct worker *w, uint32_t slot, uint32_t gen)
{
	struct conn *c;

	if (slot >= w->nconns_cap)
		return NULL;
	c = &w->conns[slot];
	return c->io.gen == gen && c->state != ST_FREE ? &c->io : NULL;
}

void conn_addr_set(union conn_addr *a, const struct sockaddr *sa,
		   socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (sa && sa->sa_family == AF_INET && len >= sizeof(a->in))
		memcpy(&a->in, sa, sizeof(a->in));
	else if (sa && sa->sa_family == AF_INET6 && len >= sizeof(a->in6))
		memcpy(&a->in6, sa, sizeof(a->in6));
	else
		a->sa.sa_family = AF_UNSPEC;
}

static void conn_release(struct worker *w, struct conn *c)
{
	BUG_ON(c->inflight != 0);
	timer_unlink(w, c);
	for (int i = 0; i < 2; i++)
		if (c->io.fd[i] >= 0)
			worker_close_fd(w, c->io.fd[i]);
	relay_release(w, c);
	FREE_NULL(c->in);
	FREE_NULL(c->out);
	if (c->tls) {
		acme_tls_free(c->tls);
		c->tls = NULL;
	}
	FREE_NULL(c->tls_names);
	if (c->lc) {
		live_cfg_put(c->lc);
		c->lc = NULL;
	}
	c->state = ST_FREE;
	w->free_slots[w->nfree++] = c->io.slot;
	w->active--;
	pstats_sub(w->stats, PS_ACTIVE, 1);
}

static uint32_t *state_count(struct worker *w, uint8_t st)
{
	switch (st) {
	case ST_PEEK:
	case ST_ANSWER:
	case ST_ACME_TLS:
	case ST_LINGER:
		return &w->at_peek;
	case ST_CONNECTING:
	case ST_RELAY:
		return &w->relaying;
	default:
		return NULL;
	}
}

void conn_state(struct worker *w, struct conn *c, enum conn_state st)
{
	uint32_t *from = state_count(w, c->state), *to = state_count(w, st);

	if (from)
		(*from)--;
	if (to)
		(*to)++;
	c->state = (uint8_t)st;
}

void conn_close(struct worker *w, struct conn *c, int stat)
{
	if (c->state == ST_CLOSING)
		return;
	if (stat >= 0)
		pstats_add(w->stats, (enum pstat)stat, 1);
	conn_state(w, c, ST_CLOSING);
	timer_unlink(w, c);
	worker_undefer(w, c);
	relay_unwait(w, c);
	if (c->inflight) {
		for (int s = 0; s < 2; s++)
			if (c->io.fd[s] >= 0)
				op_cancel(w, c, (enum side)s);
		return;
	}
	conn_release(w, c);
}

/* ---- operations ------------------------------------------------------ */

void op_recv(struct worker *w, struct conn *c, enum side s, void *buf,
	     size_t len, bool later)
{
	BUG_ON(recv_busy(c, s) || c->io.fd[s] < 0);
	c->io.pend[s].recv = IO_RECV;
	c->inflight++;
	w->io->recv(w, &c->io, s, buf, len, later);
}

void op_send(struct worker *w, struct conn *c, enum side s, const void *buf,
	     size_t len)
{
	BUG_ON(send_busy(c, s) || c->io.fd[s] < 0 || len == 0);
	c->io.pend[s].send = IO_SEND;
	c->inflight++;
	w->io->send(w, &c->io, s, buf, len);
}

void op_poll(struct worker *w, struct conn *c, enum side s, bool out,
	     bool yield)
{
	uint8_t *slot = out ? &c->io.pend[s].send : &c->io.pend[s].recv;

	BUG_ON(*slot || c->io.fd[s] < 0);
	*slot = out ? IO_POLL_OUT : IO_POLL_IN;
	c->inflight++;
	w->io->poll(w, &c->io, s, out, yield);
}

void op_shutdown(struct worker *w, struct conn *c, enum side s)
{
	c->inflight++;
	w->io->shutdown_wr(w, &c->io, s);
}

void op_connect(struct worker *w, struct conn *c, const struct sockaddr *sa,
		socklen_t len)
{
	c->io.pend[SIDE_UPSTREAM].connect = true;
	c->inflight++;
	w->io->connect(w, &c->io, sa, len);
}

void op_cancel(struct worker *w, struct conn *c, enum side s)
{
	c->inflight++;
	w->io->cancel(w, &c->io, s);
}

/* ---- completions ------------------------------------------------------ */

enum conn_rank conn_rank(const struct worker *w, const struct io_conn *ic)
{
	const struct conn *c = (const struct conn *)((const char *)ic -
						     offsetof(struct conn, io));

	if (c->state == ST_CLOSING)
		return RANK_FIRST;
	if (c->state != ST_PEEK && c->state != ST_ANSWER &&
	    c->state != ST_ACME_TLS)
		return RANK_LATER;
	return w->now_ms < c->born_ms + PEEK_YOUNG_MS ? RANK_FIRST : RANK_PEEK;
}

bool conn_complete(struct worker *w, struct io_conn *ic, enum io_op op,
		   enum side s, int res, void *buf)
{
	struct conn *c = conn_of(ic);

	BUG_ON(c->inflight == 0);
	c->inflight--;
	if (op == IO_RECV || op == IO_POLL_IN)
		c->io.pend[s].recv = 0;
	else if (op == IO_SEND || op == IO_POLL_OUT)
		c->io.pend[s].send = 0;
	else if (op == IO_CONNECT)
		c->io.pend[s].connect = false;

	if (c->state == ST_CLOSING) {
		/* A pool buffer a receive brought has no direction to go to. */
		bufpool_put(w, buf);
		if (c->inflight == 0)
			conn_release(w, c);
		return c->inflight != 0;
	}
	switch (op) {
	case IO_RECV:
		if (c->state == ST_PEEK)
			peek_recv(w, c, res);
		else if (c->state == ST_RELAY)
			relay_recv(w, c, s, res, buf);
		else
			answer_recv(w, c, res);
		break;
	case IO_SEND:
		if (c->state == ST_RELAY)
			relay_sent(w, c, s, res);
		else
			answer_sent(w, c, res);
		break;
	case IO_CONNECT:
		if (c->state == ST_CONNECTING)
			upstream_connected(w, c, res);
		break;
	case IO_SHUTDOWN:
		if (c->state == ST_RELAY)
			relay_shut(w, c);
		break;
	case IO_POLL_IN:
		if (c->state == ST_RELAY)
			relay_ready(w, c, s == SIDE_CLIENT ? 0 : 1, res);
		break;
	case IO_POLL_OUT:
		if (c->state == ST_RELAY)
			relay_ready(w, c, s == SIDE_UPSTREAM ? 0 : 1, res);
		break;
	default:
		break;
	}
	return c->inflight != 0;
}
