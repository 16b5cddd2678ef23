/*
 * The epoll backend: readiness turned into the completion contract of
 * struct io_ops (io.h), on one libevent event_base per worker thread.
 *
 * Every operation a connection starts becomes a record on its socket's
 * side record (struct eside, one per connection slot and side, in an array
 * parallel to the worker's slab): a pending receive, send or connect,
 * which the backend performs with non-blocking syscalls, or a result
 * waiting to be delivered. Nothing is delivered from inside the io_ops
 * call that started it (the connection code is not re-entrant): results
 * queue on the side, and wait() delivers them.
 *
 * wait() turns:
 *   1. run: accept on ready listeners; attempt every operation on the ready
 *      list (recv/send with MSG_DONTWAIT, a connect's SO_ERROR), queueing
 *      its result unless it would block; deliver queued results through
 *      conn_complete(), which starts new operations onto the ready list;
 *      again, a bounded number of rounds. Each pass takes connections at
 *      the peek first and a bounded number of the others (run_list, run).
 *   2. event_base_loop(EVLOOP_ONCE), bounded by timeout_ms with a timer,
 *      or non-blocking when work is left over; the callbacks only mark
 *      sides ready.
 *   3. run again.
 *
 * Sockets are registered edge-triggered for reading and writing, once,
 * when an operation first would block, and stay registered while the
 * connection has operations in flight: a keep-alive connection costs no
 * epoll_ctl per request. Because every operation is attempted before it
 * waits, an edge that arrived while nothing waited is never lost. A
 * connection closes a socket only when it has nothing in flight (and the
 * upstream socket after a failed connect), so a side's event is deleted
 * before delivering a failed connect, when cancelling, and after a
 * delivery leaves the connection with nothing in flight or frees it.
 *
 * Bounds: each side holds at most one receive, one send and one connect
 * (io.h's contract), plus counts of finished shutdowns and cancels; the
 * ready and done lists are intrusive, so at most one entry per side.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"
#include "proxy/io.h"
#include "proxy/worker.h"

#define NIL UINT32_MAX
#define RUN_ROUNDS 16		/* run passes per loop turn */
#define RUN_BUDGET 64		/* sides of relays run per run() */
#define PEEK_BUDGET 256		/* sides at the peek for long run per run() */
#define ACCEPT_BATCH 64		/* accepts per listener readiness */
#define LISTEN_RETRY_MS 100	/* after event_add refused a listener */

/* Pending operations: started, not yet performed. */
#define P_RECV 1u
#define P_SEND 2u
#define P_CONNECT 4u
/* Finished operations, results not yet delivered. */
#define D_RECV 1u
#define D_SEND 2u
#define D_CONNECT 4u

#define RES_KEEP 4		/* results kept per shutdown/cancel count */

struct ep;

/* One socket of one connection: what is pending, what is done. */
struct eside {
	struct ep *ep;
	uint32_t idx;		/* slot * 2 + side */
	uint32_t gen;		/* the connection generation the ops are of */
	int ev_fd;		/* fd the event is added for, or -1 */
	uint8_t pend;		/* P_* */
	uint8_t done;		/* D_* */
	uint8_t nshut;		/* shutdowns finished, undelivered */
	uint8_t ncancel;	/* cancels finished, undelivered */
	bool try_rd;		/* a receive should be attempted */
	bool try_wr;		/* a send or connect check should be attempted */
	bool in_ready;
	bool in_done;
	bool rpooled;		/* the receive takes a pool buffer (io_ops.recv) */
	bool rpoll;		/* the pending receive is a poll for input */
	bool spoll;		/* the pending send is a poll for output */
	void *rbuf;
	const void *sbuf;
	size_t rlen;
	size_t slen;
	int recv_res;
	int send_res;
	int conn_res;
	int shut_res[RES_KEEP];
	int cancel_res[RES_KEEP];
	uint32_t ready_next;
	uint32_t done_next;
	/* followed by the struct event (event_get_struct_event_size bytes) */
};

enum lis_state {
	LS_IDLE = 0,		/* not accepting */
	LS_ARMED,		/* event added */
	LS_PAUSED,		/* accepting, but waiting out a back-off */
};

struct elis {
	struct ep *ep;
	unsigned li;
	uint8_t state;
	bool ready;		/* readable: accept now */
	bool ended;		/* worker_accept_ended() owed */
	uint64_t retry_at_ms;	/* event_add refused: not before */
	struct event *ev;
};

struct ep {
	struct worker *w;
	struct event_base *base;
	struct event *timer;
	struct elis *lis;
	unsigned nlis;
	unsigned nlis_work;	/* listeners with ready or ended set */
	uint8_t *sides;
	size_t stride;
	size_t ev_off;
	uint32_t nsides;
	uint32_t ready_head, ready_tail;
	uint32_t done_head, done_tail;
	uint32_t *urgent, *peek, *rest;	/* a pass's sides, by rank (run_list) */
	unsigned spent;			/* sides of relays run by this run() */
	unsigned spent_peek;		/* and of RANK_PEEK connections */
};

/* ---- side records ------------------------------------------------------ */

static inline struct eside *side_at(struct ep *ep, uint32_t idx)
{
	return (struct eside *)(ep->sides + (size_t)idx * ep->stride);
}

static inline struct event *side_ev(struct eside *e)
{
	return (struct event *)((uint8_t *)e + e->ep->ev_off);
}

static void ready_push(struct ep *ep, struct eside *e)
{
	if (e->in_ready)
		return;
	e->in_ready = true;
	e->ready_next = NIL;
	if (ep->ready_tail == NIL)
		ep->ready_head = e->idx;
	else
		side_at(ep, ep->ready_tail)->ready_next = e->idx;
	ep->ready_tail = e->idx;
}

static void done_push(struct ep *ep, struct eside *e)
{
	if (e->in_done)
		return;
	e->in_done = true;
	e->done_next = NIL;
	if (ep->done_tail == NIL)
		ep->done_head = e->idx;
	else
		side_at(ep, ep->done_tail)->done_next = e->idx;
	ep->done_tail = e->idx;
}

static inline bool side_has_done(const struct eside *e)
{
	return e->done || e->nshut || e->ncancel;
}

static void side_unreg(struct eside *e)
{
	if (e->ev_fd < 0)
		return;
	event_del(side_ev(e));
	e->ev_fd = -1;
}

static void side_cb(evutil_socket_t fd, short what, void *arg);

/* Registers the side's socket (edge-triggered, both ways); 0 or -errno. */
static int side_reg(struct eside *e, int fd)
{
	if (e->ev_fd == fd)
		return 0;
	side_unreg(e);
	if (event_assign(side_ev(e), e->ep->base, fd,
			 EV_READ | EV_WRITE | EV_ET | EV_PERSIST, side_cb, e) != 0)
		return -EINVAL;
	errno = 0;
	if (event_add(side_ev(e), NULL) != 0)
		return errno ? -errno : -ENOMEM;
	e->ev_fd = fd;
	return 0;
}

/* The side record of c's socket s, reset if it last served another life. */
static struct eside *side_of(struct worker *w, struct io_conn *c, enum side s)
{
	struct ep *ep = w->io_priv;
	struct eside *e = side_at(ep, c->slot * 2 + (uint32_t)s);

	if (e->gen != c->gen) {
		side_unreg(e);
		if (e->pend || side_has_done(e))
			pstats_add(w->stats, PS_STALE_CQE, 1);
		e->gen = c->gen;
		e->pend = e->done = 0;
		e->nshut = e->ncancel = 0;
		e->try_rd = e->try_wr = false;
		e->rpoll = e->spoll = false;
	}
	return e;
}

static void put_done(struct ep *ep, struct eside *e, unsigned bit, int res)
{
	BUG_ON(e->done & bit);
	e->done |= (uint8_t)bit;
	if (bit == D_RECV)
		e->recv_res = res;
	else if (bit == D_SEND)
		e->send_res = res;
	else
		e->conn_res = res;
	done_push(ep, e);
}

static void put_counted(struct ep *ep, struct eside *e, uint8_t *n, int *res,
			int r)
{
	BUG_ON(*n == UINT8_MAX);
	res[*n < RES_KEEP ? *n : RES_KEEP - 1] = r;
	(*n)++;
	done_push(ep, e);
}

/* Ends every pending operation of a side with res (-ECANCELED, or an error). */
static unsigned end_pending(struct ep *ep, struct eside *e, int res)
{
	unsigned n = 0;

	if (e->pend & P_CONNECT) {
		put_done(ep, e, D_CONNECT, res);
		n++;
	}
	if (e->pend & P_RECV) {
		put_done(ep, e, D_RECV, res);
		n++;
	}
	if (e->pend & P_SEND) {
		put_done(ep, e, D_SEND, res);
		n++;
	}
	e->pend = 0;
	e->try_rd = e->try_wr = false;
	return n;
}

/* ---- the operations ----------------------------------------------------- */

/*
 * Always attempted first, later or not: an edge that came while no
 * receive was pending was dropped, so only an attempt can see its bytes.
 */
static void ep_recv(struct worker *w, struct io_conn *c, enum side s, void *buf,
		    size_t len, bool later)
{
	(void)later;
	struct eside *e = side_of(w, c, s);

	BUG_ON((e->pend & P_RECV) || (e->done & D_RECV));
	e->pend |= P_RECV;
	e->rbuf = buf;
	e->rpooled = !buf;
	e->rpoll = false;
	e->rlen = len;
	e->try_rd = true;
	ready_push(w->io_priv, e);
}

static void ep_send(struct worker *w, struct io_conn *c, enum side s,
		    const void *buf, size_t len)
{
	struct eside *e = side_of(w, c, s);

	BUG_ON((e->pend & P_SEND) || (e->done & D_SEND));
	e->pend |= P_SEND;
	e->spoll = false;
	e->sbuf = buf;
	e->slen = len;
	e->try_wr = true;
	ready_push(w->io_priv, e);
}

static void ep_connect(struct worker *w, struct io_conn *c,
		       const struct sockaddr *sa, socklen_t len)
{
	struct ep *ep = w->io_priv;
	struct eside *e = side_of(w, c, SIDE_UPSTREAM);
	int fd = c->fd[SIDE_UPSTREAM];
	int fl, rc;

	BUG_ON((e->pend & P_CONNECT) || (e->done & D_CONNECT));
	/* A fresh socket, perhaps under an fd number registered before. */
	side_unreg(e);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		put_done(ep, e, D_CONNECT, -errno);
		return;
	}
	rc = connect(fd, sa, len);
	if (rc == 0) {
		put_done(ep, e, D_CONNECT, 0);
		return;
	}
	/* EINTR: the connection goes on in the background, as EINPROGRESS. */
	if (errno != EINPROGRESS && errno != EINTR) {
		put_done(ep, e, D_CONNECT, -errno);
		return;
	}
	e->pend |= P_CONNECT;
	e->try_wr = false;
	rc = side_reg(e, fd);
	if (rc < 0)
		end_pending(ep, e, rc);
}

/*
 * A poll waits for the socket's next edge, never attempting first: the
 * caller has just seen EAGAIN, and any byte (or room) arriving since
 * raises an edge on the registered socket. A yield may find the socket
 * ready with no edge to come, so it is reported ready at once (delivered
 * on the next run pass, after others' results): at worst the caller sees
 * EAGAIN and polls again.
 */
static void ep_poll(struct worker *w, struct io_conn *c, enum side s, bool out,
		    bool yield)
{
	struct ep *ep = w->io_priv;
	struct eside *e = side_of(w, c, s);
	int rc;

	if (out) {
		BUG_ON((e->pend & P_SEND) || (e->done & D_SEND));
		e->spoll = true;
		e->try_wr = false;
	} else {
		BUG_ON((e->pend & P_RECV) || (e->done & D_RECV));
		e->rpoll = true;
		e->rpooled = false;
		e->try_rd = false;
	}
	if (yield) {
		put_done(ep, e, out ? D_SEND : D_RECV, out ? POLLOUT : POLLIN);
		return;
	}
	e->pend |= out ? P_SEND : P_RECV;
	rc = side_reg(e, c->fd[s]);
	if (rc < 0)
		end_pending(ep, e, rc);
}

static void ep_shutdown_wr(struct worker *w, struct io_conn *c, enum side s)
{
	struct eside *e = side_of(w, c, s);
	int r = shutdown(c->fd[s], SHUT_WR) == 0 ? 0 : -errno;

	put_counted(w->io_priv, e, &e->nshut, e->shut_res, r);
}

static void ep_cancel(struct worker *w, struct io_conn *c, enum side s)
{
	struct ep *ep = w->io_priv;
	struct eside *e = side_of(w, c, s);
	unsigned n = end_pending(ep, e, -ECANCELED);

	/* Nothing waits on this socket now, and it may be closed next. */
	side_unreg(e);
	put_counted(ep, e, &e->ncancel, e->cancel_res, n ? (int)n : -ENOENT);
}

/* ---- performing them ---------------------------------------------------- */

static void attempt(struct ep *ep, struct eside *e)
{
	struct worker *w = ep->w;
	struct io_conn *c;
	enum side s = (enum side)(e->idx & 1);
	ssize_t n;
	int fd, rc;

	if (!e->pend || !(c = io_conn_at(w, e->idx >> 1, e->gen)))
		return;
	fd = c->fd[s];
	if (fd < 0) {
		end_pending(ep, e, -EBADF);
		return;
	}
	if ((e->pend & P_CONNECT) && e->try_wr) {
		int err = 0;
		socklen_t el = sizeof(err);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		e->try_wr = false;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err) {
			e->pend &= (uint8_t)~P_CONNECT;
			put_done(ep, e, D_CONNECT, -err);
		} else if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
			e->pend &= (uint8_t)~P_CONNECT;
			put_done(ep, e, D_CONNECT, 0);
		} else if (errno != ENOTCONN) {
			e->pend &= (uint8_t)~P_CONNECT;
			put_done(ep, e, D_CONNECT, -errno);
		}
		/* ENOTCONN: a wakeup before the handshake ended; wait on. */
	}
	if ((e->pend & P_RECV) && e->try_rd && e->rpoll) {
		e->try_rd = false;
		e->pend &= (uint8_t)~P_RECV;
		put_done(ep, e, D_RECV, POLLIN);
	}
	if ((e->pend & P_SEND) && e->try_wr && e->spoll) {
		e->try_wr = false;
		e->pend &= (uint8_t)~P_SEND;
		put_done(ep, e, D_SEND, POLLOUT);
	}
	if ((e->pend & P_RECV) && e->try_rd) {
		/* A pooled receive holds a buffer only if bytes came. */
		void *buf = e->rpooled ? bufpool_get(w) : e->rbuf;

		e->try_rd = false;
		do
			n = recv(fd, buf, e->rlen, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			e->pend &= (uint8_t)~P_RECV;
			if (n > 0)
				e->rbuf = buf;
			put_done(ep, e, D_RECV, n >= 0 ? (int)n : -errno);
		}
		if (e->rpooled && buf != e->rbuf)
			bufpool_put(w, buf);
	}
	if ((e->pend & P_SEND) && e->try_wr) {
		e->try_wr = false;
		do
			n = send(fd, e->sbuf, e->slen, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			e->pend &= (uint8_t)~P_SEND;
			put_done(ep, e, D_SEND, n >= 0 ? (int)n : -errno);
		}
	}
	if (e->pend) {
		/* Something would block: wait for the socket's next edge. */
		rc = side_reg(e, fd);
		if (rc < 0) {
			static __thread struct log_limit lim;
			log_ratelimited(&lim, LOG_LVL_ERR, "proxy: epoll: cannot "
					"watch a socket: %s", strerror(-rc));
			end_pending(ep, e, rc);
		}
	}
}

static void side_cb(evutil_socket_t fd, short what, void *arg)
{
	struct eside *e = arg;
	bool push = false;

	if ((what & EV_READ) && (e->pend & P_RECV)) {
		e->try_rd = true;
		push = true;
	}
	if ((what & EV_WRITE) && (e->pend & (P_SEND | P_CONNECT))) {
		e->try_wr = true;
		push = true;
	}
	if (push)
		ready_push(e->ep, e);
}

/* Deletes the events of both sockets of a slot. */
static void slot_unreg(struct ep *ep, uint32_t slot)
{
	side_unreg(side_at(ep, slot * 2));
	side_unreg(side_at(ep, slot * 2 + 1));
}

static void deliver(struct ep *ep, struct eside *e)
{
	struct worker *w = ep->w;
	uint32_t slot = e->idx >> 1;
	enum side s = (enum side)(e->idx & 1);

	while (side_has_done(e)) {
		struct io_conn *c = io_conn_at(w, slot, e->gen);
		void *buf = NULL;
		enum io_op op;
		int res;

		if (!c) {
			/* Cannot happen with the connections' inflight accounting. */
			pstats_add(w->stats, PS_STALE_CQE, 1);
			if ((e->done & D_RECV) && e->rpooled)
				bufpool_put(w, e->rbuf);
			e->rbuf = NULL;
			e->done = 0;
			e->nshut = e->ncancel = 0;
			return;
		}
		if (e->done & D_CONNECT) {
			op = IO_CONNECT;
			res = e->conn_res;
			e->done &= (uint8_t)~D_CONNECT;
			/* The connection closes this socket and may reuse its number. */
			if (res < 0)
				side_unreg(e);
		} else if (e->done & D_RECV) {
			op = e->rpoll ? IO_POLL_IN : IO_RECV;
			res = e->recv_res;
			buf = e->rpooled ? e->rbuf : NULL;
			e->rbuf = NULL;
			e->rpoll = false;
			e->done &= (uint8_t)~D_RECV;
		} else if (e->done & D_SEND) {
			op = e->spoll ? IO_POLL_OUT : IO_SEND;
			res = e->send_res;
			e->spoll = false;
			e->done &= (uint8_t)~D_SEND;
		} else if (e->nshut) {
			op = IO_SHUTDOWN;
			res = e->shut_res[0];
			memmove(e->shut_res, e->shut_res + 1,
				sizeof(e->shut_res) - sizeof(e->shut_res[0]));
			e->nshut--;
		} else {
			op = IO_CANCEL;
			res = e->cancel_res[0];
			memmove(e->cancel_res, e->cancel_res + 1,
				sizeof(e->cancel_res) - sizeof(e->cancel_res[0]));
			e->ncancel--;
		}
		/* Nothing in flight (or freed): its sockets may close any time. */
		if (!conn_complete(w, c, op, s, res, buf))
			slot_unreg(ep, slot);
	}
}

/*
 * The ready list (attempts) or the done list (deliveries), taken as it is:
 * what a pass starts waits for the next, rank by rank (conn_rank): the
 * sides of young connections at the peek (and closing ones, whose slots
 * new connections need) first, then those at the peek for longer while
 * the run's PEEK_BUDGET lasts, then others while its RUN_BUDGET lasts;
 * those left keep their place at the front of the list. So a validator's
 * accept, read and answer never wait behind a slow flood's bytes or a
 * pass's worth of bulk relaying.
 */
static inline uint32_t *link_of(struct eside *e, bool ready)
{
	return ready ? &e->ready_next : &e->done_next;
}

static void run_one(struct ep *ep, uint32_t idx, bool ready)
{
	struct eside *e = side_at(ep, idx);

	if (ready) {
		e->in_ready = false;
		attempt(ep, e);
	} else {
		e->in_done = false;
		deliver(ep, e);
	}
}

/* Puts the n sides at idx, in their order, at the front of the list. */
static void relink(struct ep *ep, bool ready, const uint32_t *idx, uint32_t n)
{
	uint32_t *head = ready ? &ep->ready_head : &ep->done_head;
	uint32_t *tail = ready ? &ep->ready_tail : &ep->done_tail;

	if (n == 0)
		return;
	for (uint32_t k = 0; k + 1 < n; k++)
		*link_of(side_at(ep, idx[k]), ready) = idx[k + 1];
	*link_of(side_at(ep, idx[n - 1]), ready) = *head;
	if (*head == NIL)
		*tail = idx[n - 1];
	*head = idx[0];
}

static void run_list(struct ep *ep, bool ready)
{
	uint32_t *head = ready ? &ep->ready_head : &ep->done_head;
	uint32_t *tail = ready ? &ep->ready_tail : &ep->done_tail;
	uint32_t idx = *head, nu = 0, np = 0, nr = 0, i, j;

	*head = *tail = NIL;
	for (; idx != NIL; idx = *link_of(side_at(ep, idx), ready)) {
		const struct eside *e = side_at(ep, idx);
		const struct io_conn *c = io_conn_at(ep->w, idx >> 1, e->gen);

		switch (c ? conn_rank(ep->w, c) : RANK_FIRST) {
		case RANK_FIRST:
			ep->urgent[nu++] = idx;
			break;
		case RANK_PEEK:
			ep->peek[np++] = idx;
			break;
		case RANK_LATER:
			ep->rest[nr++] = idx;
			break;
		}
	}
	for (i = 0; i < nu; i++)
		run_one(ep, ep->urgent[i], ready);
	for (j = 0; j < np && ep->spent_peek < PEEK_BUDGET; j++, ep->spent_peek++)
		run_one(ep, ep->peek[j], ready);
	for (i = 0; i < nr && ep->spent < RUN_BUDGET; i++, ep->spent++)
		run_one(ep, ep->rest[i], ready);
	/* Those left go back to the front, in their order, ranks kept. */
	relink(ep, ready, ep->rest + i, nr - i);
	relink(ep, ready, ep->peek + j, np - j);
}

/* ---- accepting ---------------------------------------------------------- */

static void lis_work(struct ep *ep, struct elis *l, bool ready, bool ended)
{
	bool before = l->ready || l->ended;

	l->ready = ready;
	l->ended = ended;
	if (before && !(ready || ended))
		ep->nlis_work--;
	else if (!before && (ready || ended))
		ep->nlis_work++;
}

static void lis_cb(evutil_socket_t fd, short what, void *arg)
{
	struct elis *l = arg;

	if (l->state == LS_ARMED && !l->ready)
		lis_work(l->ep, l, true, l->ended);
}

static void accept_end(struct ep *ep, struct elis *l, int err)
{
	if (l->state == LS_ARMED)
		event_del(l->ev);
	l->state = LS_IDLE;
	lis_work(ep, l, false, l->ended);
	if (err != -EINVAL)
		worker_accept_failed(ep->w, l->li, err);
	worker_accept_ended(ep->w, l->li);
}

static void accept_batch(struct ep *ep, struct elis *l)
{
	struct worker *w = ep->w;
	int lfd = w->listeners[l->li].fd;

	lis_work(ep, l, false, l->ended);
	for (unsigned i = 0; i < ACCEPT_BATCH && l->state == LS_ARMED; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			worker_accepted(w, l->li, fd, (struct sockaddr *)&ss, len);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case EPERM:
		case ENETDOWN:
		case ENOPROTOOPT:
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case EOPNOTSUPP:
		case ENETUNREACH:
			/* That one connection's problem; the listener is fine. */
			continue;
		default:
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM...: as on io_uring,
			 * accepting ends; the worker re-arms it after a back-off,
			 * so a full fd table does not spin. */
			accept_end(ep, l, -errno);
			return;
		}
	}
}

static void run_listeners(struct ep *ep)
{
	for (unsigned i = 0; i < ep->nlis && ep->nlis_work; i++) {
		struct elis *l = &ep->lis[i];

		if (l->ended) {
			lis_work(ep, l, l->ready, false);
			worker_accept_ended(ep->w, l->li);
		}
		if (l->ready)
			accept_batch(ep, l);
	}
}

/* Listeners whose back-off has passed start accepting. */
static void resume_listeners(struct ep *ep)
{
	for (unsigned i = 0; i < ep->nlis; i++) {
		struct elis *l = &ep->lis[i];

		if (l->state != LS_PAUSED || ep->w->now_ms < l->retry_at_ms)
			continue;
		if (event_add(l->ev, NULL) == 0) {
			l->state = LS_ARMED;
		} else {
			l->retry_at_ms = ep->w->now_ms + LISTEN_RETRY_MS;
		}
	}
}

static void ep_accept(struct worker *w, unsigned li)
{
	struct ep *ep = w->io_priv;
	struct elis *l = &ep->lis[li];

	w->listeners[li].armed = true;
	if (l->state == LS_ARMED)
		return;
	l->state = LS_PAUSED;
	resume_listeners(ep);
}

static void ep_accept_stop(struct worker *w, unsigned li)
{
	struct ep *ep = w->io_priv;
	struct elis *l = &ep->lis[li];

	if (l->state == LS_ARMED)
		event_del(l->ev);
	l->state = LS_IDLE;
	/* As a cancelled multishot accept: the end is reported from wait(). */
	lis_work(ep, l, false, true);
}

/* ---- the loop ----------------------------------------------------------- */

static bool has_work(const struct ep *ep)
{
	return ep->ready_head != NIL || ep->done_head != NIL || ep->nlis_work;
}

/*
 * Rounds until nothing is left, RUN_ROUNDS at most, or one of the budgets
 * is spent: new connections and bytes are only seen in the event loop
 * between two runs, so a run must not last a flood's worth of relaying or
 * of slow clients' bytes.
 */
static void run(struct ep *ep)
{
	ep->spent = ep->spent_peek = 0;
	for (unsigned round = 0; round < RUN_ROUNDS && has_work(ep) &&
	     ep->spent < RUN_BUDGET && ep->spent_peek < PEEK_BUDGET; round++) {
		if (ep->nlis_work)
			run_listeners(ep);
		if (ep->ready_head != NIL)
			run_list(ep, true);
		if (ep->done_head != NIL)
			run_list(ep, false);
	}
}

/* Every send is made in place (attempt): the turn's are out already. */
static void ep_close(struct worker *w, int fd)
{
	(void)w;
	close(fd);
}

/* Nothing waits to be handed over: see ep_close. */
static void ep_submit(struct worker *w)
{
	(void)w;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Only there to end a blocking loop turn. */
}

static void ep_wait(struct worker *w, unsigned timeout_ms)
{
	struct ep *ep = w->io_priv;
	int rc;

	run(ep);
	resume_listeners(ep);
	if (has_work(ep)) {
		rc = event_base_loop(ep->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	} else {
		struct timeval tv = {
			.tv_sec = timeout_ms / 1000,
			.tv_usec = (long)(timeout_ms % 1000) * 1000,
		};
		event_add(ep->timer, &tv);
		rc = event_base_loop(ep->base, EVLOOP_ONCE);
	}
	if (rc < 0) {
		static __thread struct log_limit lim;
		log_ratelimited(&lim, LOG_LVL_ERR, "proxy: epoll: event loop "
				"failed: %s", strerror(errno));
		/* Never spin on a loop that keeps failing. */
		usleep(10000);
	}
	w->now_ms = clock_mono_ms();
	run(ep);
}

/* ---- set-up ------------------------------------------------------------- */

static void ev_log(int severity, const char *msg)
{
	static __thread struct log_limit lim;

	if (severity >= EVENT_LOG_WARN)
		log_ratelimited(&lim, severity >= EVENT_LOG_ERR ? LOG_LVL_ERR
							       : LOG_LVL_WARN,
				"proxy: libevent: %s", msg);
}

static void ev_global_init(void)
{
	event_set_log_callback(ev_log);
}

static void ep_free(struct ep *ep)
{
	for (uint32_t i = 0; ep->sides && i < ep->nsides; i++)
		side_unreg(side_at(ep, i));
	for (unsigned i = 0; ep->lis && i < ep->nlis; i++)
		if (ep->lis[i].ev)
			event_free(ep->lis[i].ev);
	if (ep->timer)
		event_free(ep->timer);
	if (ep->base)
		event_base_free(ep->base);
	free(ep->lis);
	free(ep->sides);
	free(ep->urgent);
	free(ep->peek);
	free(ep->rest);
	free(ep);
}

static int ep_init(struct worker *w, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct ep *ep = calloc(1, sizeof(*ep));
	struct event_config *ec;
	const char *method;
	int rc = -ENOMEM;

	BUG_ON(!ep);
	pthread_once(&once, ev_global_init);
	ep->w = w;
	ep->ready_head = ep->ready_tail = NIL;
	ep->done_head = ep->done_tail = NIL;

	ec = event_config_new();
	BUG_ON(!ec);
	/* One base per worker thread, used by that thread only. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	event_config_set_flag(ec, EVENT_BASE_FLAG_IGNORE_ENV);
	event_config_avoid_method(ec, "select");
	event_config_avoid_method(ec, "poll");
	errno = 0;
	ep->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!ep->base) {
		rc = errno ? -errno : -ENOMEM;
		err_set(err, errlen, "epoll: cannot make an event base: %s",
			 strerror(-rc));
		goto fail;
	}
	method = event_base_get_method(ep->base);
	if (strcmp(method, "epoll") != 0) {
		rc = -ENOSYS;
		err_set(err, errlen, "epoll: libevent chose %s, not epoll", method);
		goto fail;
	}
	ep->timer = event_new(ep->base, -1, 0, timer_cb, NULL);
	BUG_ON(!ep->timer);

	ep->nlis = w->nlisteners;
	ep->lis = calloc(ep->nlis ? ep->nlis : 1, sizeof(*ep->lis));
	BUG_ON(!ep->lis);
	for (unsigned i = 0; i < ep->nlis; i++) {
		struct elis *l = &ep->lis[i];
		int lfd = w->listeners[i].fd;
		int fl = fcntl(lfd, F_GETFL);

		/* Made blocking by proxy.c; accept4 here must never wait. */
		if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0) {
			rc = -errno;
			err_set(err, errlen, "epoll: listener: %s", strerror(errno));
			goto fail;
		}
		l->ep = ep;
		l->li = i;
		l->ev = event_new(ep->base, w->listeners[i].fd, EV_READ | EV_PERSIST,
				  lis_cb, l);
		BUG_ON(!l->ev);
	}

	/* The side records, each followed by its struct event. */
	ep->ev_off = (sizeof(struct eside) + 15) & ~(size_t)15;
	ep->stride = (ep->ev_off + event_get_struct_event_size() + 15) &
		     ~(size_t)15;
	ep->nsides = w->nconns_cap * 2;
	ep->sides = calloc(ep->nsides, ep->stride);
	ep->urgent = calloc(ep->nsides, sizeof(*ep->urgent));
	ep->peek = calloc(ep->nsides, sizeof(*ep->peek));
	ep->rest = calloc(ep->nsides, sizeof(*ep->rest));
	BUG_ON(!ep->sides || !ep->urgent || !ep->peek || !ep->rest);
	for (uint32_t i = 0; i < ep->nsides; i++) {
		struct eside *e = side_at(ep, i);
		e->ep = ep;
		e->idx = i;
		e->ev_fd = -1;
		e->gen = UINT32_MAX;	/* no connection generation is this */
	}
	w->io_priv = ep;
	return 0;
fail:
	ep_free(ep);
	return rc;
}

static void ep_fini(struct worker *w)
{
	struct ep *ep = w->io_priv;

	if (!ep)
		return;
	ep_free(ep);
	w->io_priv = NULL;
}

const struct io_ops io_epoll_ops = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.accept = ep_accept,
	.accept_stop = ep_accept_stop,
	.recv = ep_recv,
	.send = ep_send,
	.connect = ep_connect,
	.shutdown_wr = ep_shutdown_wr,
	.poll = ep_poll,
	.cancel = ep_cancel,
	.wait = ep_wait,
	.submit = ep_submit,
	.close = ep_close,
};
