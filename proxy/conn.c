/*
 * The connection state machine, written once for every I/O backend.
 *
 *   accept -> PEEK: read the PROXY header (trusted peers), then the HTTP
 *             request head (:80) or the ClientHello (:443), bounded in size
 *             and in time (peek_timeout).
 *   PEEK -> ANSWER   an http-01 challenge (or 400/404/408/431/502) answered
 *                    here; keep-alive returns to PEEK for the next request.
 *   PEEK -> ACME_TLS acme-tls/1 for a name with a challenge: the handshake
 *                    runs through memory BIOs (acme_tls.c).
 *   PEEK -> CONNECTING -> RELAY  everything else: the bytes read so far are
 *                    replayed to the upstream, then bytes flow both ways.
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
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/acme_tls.h"
#include "common/edge.h"
#include "wire/http_head.h"
#include "common/ident.h"
#include "common/log.h"
#include "wire/proxy_hdr.h"
#include "wire/tls_hello.h"
#include "proxy/worker.h"

#define IN_INITIAL 2048
#define IN_MAX_HTTP 8192		/* request head, with pipelined bytes */
#define IN_MAX_TLS (16384 + 2048)	/* hello plus record headers */
#define OUT_CAP 16384
#define LINGER_MS 2000
#define CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define ACME_TLS_ALPN "acme-tls/1"

/* Per thread: each worker limits its own peer-misbehaviour lines. */
static __thread struct log_limit lim_peer;
static __thread struct log_limit lim_miss;

static void peek_advance(struct worker *w, struct conn *c);
static void relay_pump(struct worker *w, struct conn *c, int d);

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

static void timer_unlink(struct worker *w, struct conn *c)
{
	struct timer_head *t;

	if (c->tlist == TL_NONE)
		return;
	t = &w->timers[c->tlist];
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		t->head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		t->tail = c->tprev;
	c->tprev = c->tnext = NULL;
	c->tlist = TL_NONE;
}

/*
 * (Re)arms a connection's deadline. All deadlines in one list share one
 * timeout, so appending keeps each list sorted and the tick only ever
 * looks at list heads. A reload that changes a timeout leaves older
 * entries slightly out of order, which only delays them by the difference.
 */
static void timer_arm(struct worker *w, struct conn *c, enum timer_list tl)
{
	struct timer_head *t = &w->timers[tl];

	timer_unlink(w, c);
	c->tlist = (uint8_t)tl;
	c->deadline_ms = w->now_ms + timeout_of(w, tl);
	c->tprev = t->tail;
	c->tnext = NULL;
	if (t->tail)
		t->tail->tnext = c;
	else
		t->head = c;
	t->tail = c;
}

/* ---- slab ------------------------------------------------------------ */

static struct conn *conn_alloc(struct worker *w)
{
	struct conn *c;
	uint32_t gen;

	if (w->nfree == 0)
		return NULL;
	c = &w->conns[w->free_slots[--w->nfree]];
	gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->slot = (uint32_t)(c - w->conns);
	c->gen = gen & 0x7fffff;
	c->fd[0] = c->fd[1] = -1;
	for (int d = 0; d < 2; d++)
		c->dir[d].pipe.fd[0] = c->dir[d].pipe.fd[1] = -1;
	w->active++;
	pstats_add(w->stats, PS_ACTIVE, 1);
	return c;
}

/*
 * The client's address, asked of the kernel only when something needs it
 * (a log line, a hit record, a PROXY header): most connections never do,
 * and a multishot accept cannot return it. Unknown (AF_UNSPEC) if the
 * client has already gone.
 */
static struct sockaddr *conn_peer(struct conn *c)
{
	socklen_t plen = sizeof(c->peer);

	if (c->peer.ss_family == AF_UNSPEC && c->fd[SIDE_CLIENT] >= 0 &&
	    getpeername(c->fd[SIDE_CLIENT], (struct sockaddr *)&c->peer, &plen) != 0)
		c->peer.ss_family = AF_UNSPEC;
	return (struct sockaddr *)&c->peer;
}

/*
 * A direction's buffer comes and goes through these two, so the gauge of
 * buffers held by connections stays exact (idle ones must hold none).
 */
static void dir_hold(struct worker *w, struct relay_dir *r, void *buf)
{
	r->buf = buf;
	pstats_add(w->stats, PS_RELAY_BUFFERS, 1);
}

static void dir_drop(struct worker *w, struct relay_dir *r)
{
	if (!r->buf)
		return;
	bufpool_put(w, r->buf);
	r->buf = NULL;
	pstats_sub(w->stats, PS_RELAY_BUFFERS, 1);
}

/*
 * Splice pipes: taken when a bulk direction is about to move bytes, given
 * back once empty, so their number follows the relays moving bytes now,
 * not the relays open. Bounded per worker by splice_pipes (each is two
 * descriptors and up to PIPE_BYTES of pinned pages); past it, a bulk
 * direction copies through a buffer until a pipe is free again.
 */
static bool pipe_get(struct worker *w, struct relay_dir *r)
{
	struct splice_pipe p;
	int cap;

	BUG_ON(r->pipe.fd[0] >= 0);
	if (w->npipes) {
		p = w->pipes[--w->npipes];
	} else {
		if (w->pipes_open >= w->lc->cfg->proxy.splice_pipes)
			return false;
		if (pipe2(p.fd, O_NONBLOCK | O_CLOEXEC) < 0) {
			static __thread struct log_limit lim;
			log_ratelimited(&lim, LOG_LVL_ERR, "proxy: pipe: %s: "
					"relaying through buffers", strerror(errno));
			return false;
		}
		/* Refused past the user's pipe quota: the default size works. */
		cap = fcntl(p.fd[1], F_SETPIPE_SZ, PIPE_BYTES);
		if (cap < 0)
			cap = fcntl(p.fd[1], F_GETPIPE_SZ);
		p.cap = cap > 0 ? (uint32_t)cap : 4096;
		w->pipes_open++;
	}
	r->pipe = p;
	pstats_add(w->stats, PS_RELAY_PIPES, 1);
	return true;
}

/* A pipe with bytes left in it is closed: they belong to no stream now. */
static void pipe_put(struct worker *w, struct relay_dir *r)
{
	if (r->pipe.fd[0] < 0)
		return;
	if (r->piped == 0 && w->npipes < PIPE_KEEP &&
	    w->pipes_open <= w->lc->cfg->proxy.splice_pipes) {
		w->pipes[w->npipes++] = r->pipe;
	} else {
		close(r->pipe.fd[0]);
		close(r->pipe.fd[1]);
		w->pipes_open--;
	}
	r->pipe.fd[0] = r->pipe.fd[1] = -1;
	r->piped = 0;
	pstats_sub(w->stats, PS_RELAY_PIPES, 1);
}

static void conn_release(struct worker *w, struct conn *c)
{
	BUG_ON(c->inflight != 0);
	timer_unlink(w, c);
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0)
			close(c->fd[i]);
		dir_drop(w, &c->dir[i]);
		pipe_put(w, &c->dir[i]);
	}
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
	w->free_slots[w->nfree++] = c->slot;
	w->active--;
	pstats_sub(w->stats, PS_ACTIVE, 1);
}

/*
 * Starts closing: counts why, cancels what is in flight, and frees now if
 * nothing is. Safe to call more than once.
 */
static void conn_close(struct worker *w, struct conn *c, int stat)
{
	if (c->state == ST_CLOSING)
		return;
	if (stat >= 0)
		pstats_add(w->stats, (enum pstat)stat, 1);
	c->state = ST_CLOSING;
	timer_unlink(w, c);
	if (c->inflight) {
		for (int s = 0; s < 2; s++) {
			if (c->fd[s] < 0)
				continue;
			c->inflight++;
			w->io->cancel(w, c, (enum side)s);
		}
		return;
	}
	conn_release(w, c);
}

/* ---- operations: the only calls into the backend for a connection ---- */

/*
 * later: the peer is not expected to have sent anything yet (it waits for
 * our answer or for the other side), so the backend may wait for input
 * before trying to read.
 */
static void op_recv(struct worker *w, struct conn *c, enum side s, void *buf,
		    size_t len, bool later)
{
	BUG_ON(c->recv_busy[s] || c->fd[s] < 0);
	c->recv_busy[s] = true;
	c->inflight++;
	w->io->recv(w, c, s, buf, len, later);
}

static void op_send(struct worker *w, struct conn *c, enum side s,
		    const void *buf, size_t len)
{
	BUG_ON(c->send_busy[s] || c->fd[s] < 0 || len == 0);
	c->send_busy[s] = true;
	c->inflight++;
	w->io->send(w, c, s, buf, len);
}

static void op_poll(struct worker *w, struct conn *c, enum side s, bool out,
		    bool yield)
{
	bool *busy = out ? c->send_busy : c->recv_busy;

	BUG_ON(busy[s] || c->fd[s] < 0);
	busy[s] = true;
	(out ? c->send_poll : c->recv_poll)[s] = true;
	c->inflight++;
	w->io->poll(w, c, s, out, yield);
}

static void op_shutdown(struct worker *w, struct conn *c, enum side s)
{
	c->inflight++;
	w->io->shutdown_wr(w, c, s);
}

/* ---- local answers ---------------------------------------------------- */

static void out_reset(struct conn *c)
{
	c->out_len = c->out_off = 0;
	if (!c->out) {
		c->out = malloc(OUT_CAP);
		BUG_ON(!c->out);
		c->out_cap = OUT_CAP;
	}
}

static void out_flush(struct worker *w, struct conn *c)
{
	if (c->out_off < c->out_len && !c->send_busy[SIDE_CLIENT])
		op_send(w, c, SIDE_CLIENT, c->out + c->out_off,
			c->out_len - c->out_off);
}

/* Our last bytes are out: half-close and read until the client closes. */
static void linger(struct worker *w, struct conn *c)
{
	c->state = ST_LINGER;
	timer_arm(w, c, TL_LINGER);
	op_shutdown(w, c, SIDE_CLIENT);
	if (!c->recv_busy[SIDE_CLIENT]) {
		if (!c->in) {
			c->in = malloc(IN_INITIAL);
			BUG_ON(!c->in);
			c->in_cap = IN_INITIAL;
		}
		op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
	}
}

/* Appends n bytes to the answer being made; answers fit out_cap. */
static void out_put(struct conn *c, const void *src, size_t n)
{
	BUG_ON(c->out_len + n > c->out_cap);
	memcpy(c->out + c->out_len, src, n);
	c->out_len += (uint32_t)n;
}

static void out_puts(struct conn *c, const char *s)
{
	out_put(c, s, strlen(s));
}

static void out_putu(struct conn *c, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	out_put(c, d + i, sizeof(d) - i);
}

/*
 * Queues an HTTP answer; keep decides whether the connection returns to
 * PEEK after it. Made without printf: it runs once per challenge answered.
 */
static void http_answer(struct worker *w, struct conn *c, int code,
			const char *reason, const char *ctype, const char *body,
			size_t body_len, bool head_only, bool keep)
{
	out_reset(c);
	out_puts(c, "HTTP/1.1 ");
	out_putu(c, (uint64_t)code);
	out_puts(c, " ");
	out_puts(c, reason);
	out_puts(c, "\r\nServer: acme-edge\r\nContent-Type: ");
	out_puts(c, ctype);
	out_puts(c, "\r\nContent-Length: ");
	out_putu(c, body_len);
	out_puts(c, "\r\nCache-Control: no-store\r\nConnection: ");
	out_puts(c, keep ? "keep-alive\r\n\r\n" : "close\r\n\r\n");
	if (!head_only)
		out_put(c, body, body_len);
	c->keep_alive = keep;
	c->state = ST_ANSWER;
	timer_arm(w, c, TL_PEEK);
	out_flush(w, c);
}

static void http_error(struct worker *w, struct conn *c, int code,
		       const char *reason, int stat)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);

	if (stat >= 0)
		pstats_add(w->stats, (enum pstat)stat, 1);
	http_answer(w, c, code, reason, "text/plain", body, (size_t)n, false,
		    false);
}

/* ---- upstreams -------------------------------------------------------- */

static const struct cfg_addr *route_servers(const struct conn *c, size_t *n)
{
	if (!c->route) {
		*n = 0;
		return NULL;
	}
	*n = c->https ? c->route->nhttps : c->route->nhttp;
	return c->https ? c->route->https : c->route->http;
}

static void connect_next(struct worker *w, struct conn *c);

/*
 * Chooses the route for a name and starts connecting. The connection keeps
 * a reference to the config snapshot the route lives in, so a reload while
 * it connects cannot free it.
 */
static void forward(struct worker *w, struct conn *c, const char *name,
		    size_t name_len)
{
	size_t n;

	if (!c->lc) {
		c->lc = w->lc;
		atomic_fetch_add(&c->lc->refs, 1);
	}
	c->route = cfg_route_for(c->lc->cfg, name, name_len);
	route_servers(c, &n);
	if (n == 0) {
		log_ratelimited(&lim_peer, LOG_LVL_INFO,
				"proxy: no %s upstream for \"%.*s\"",
				c->https ? "https" : "http", (int)name_len, name);
		if (c->https)
			conn_close(w, c, PS_CLOSE_NO_ROUTE);
		else
			http_error(w, c, 502, "Bad Gateway", PS_CLOSE_NO_ROUTE);
		return;
	}
	/* Round-robin per worker: a shared counter would be a shared write. */
	c->server_next = (uint32_t)(w->now_ms + c->slot) % (uint32_t)n;
	c->attempts = 0;
	c->state = ST_CONNECTING;
	connect_next(w, c);
}

static void upstream_failed(struct worker *w, struct conn *c)
{
	pstats_add(w->stats, PS_UPSTREAM_UNREACHABLE, 1);
	log_ratelimited(&lim_peer, LOG_LVL_WARN,
			"proxy: every %s upstream of route %s failed",
			c->https ? "https" : "http", c->route->name);
	if (c->https)
		conn_close(w, c, -1);
	else
		http_error(w, c, 502, "Bad Gateway", -1);
}

static void connect_next(struct worker *w, struct conn *c)
{
	size_t n;
	const struct cfg_addr *servers = route_servers(c, &n);
	const struct cfg_addr *a;
	int one = 1, fd;

	if (c->fd[SIDE_UPSTREAM] >= 0) {
		close(c->fd[SIDE_UPSTREAM]);
		c->fd[SIDE_UPSTREAM] = -1;
	}
	if (c->attempts >= n) {
		upstream_failed(w, c);
		return;
	}
	a = &servers[(c->server_next + c->attempts) % n];
	c->attempts++;
	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		log_err("proxy: socket: %s", strerror(errno));
		upstream_failed(w, c);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd[SIDE_UPSTREAM] = fd;
	timer_arm(w, c, TL_CONNECT);
	c->inflight++;
	c->connect_busy = true;
	w->io->connect(w, c, (const struct sockaddr *)&a->sa, a->len);
}

/*
 * Connected: the PROXY header (if the route wants one) and every byte read
 * from the client so far go first, then the relay takes over.
 */
static void on_connected(struct worker *w, struct conn *c)
{
	struct relay_dir *up = &c->dir[0];
	uint32_t n = 0;

	pstats_add(w->stats, c->https ? PS_RELAYED_HTTPS : PS_RELAYED_HTTP, 1);
	dir_hold(w, up, bufpool_get(w));
	if (c->route->proxy_protocol != PP_OFF) {
		socklen_t llen = sizeof(c->local);
		if (c->local.ss_family == AF_UNSPEC)
			getsockname(c->fd[SIDE_CLIENT], (struct sockaddr *)&c->local,
				    &llen);
		int r = c->route->proxy_protocol == PP_V1
			? proxy_hdr_write_v1((char *)up->buf, RELAY_BUF,
					     conn_peer(c),
					     (struct sockaddr *)&c->local)
			: proxy_hdr_write_v2(up->buf, RELAY_BUF,
					     conn_peer(c),
					     (struct sockaddr *)&c->local);
		BUG_ON(r < 0);
		n = (uint32_t)r;
	}
	BUG_ON(n + c->in_len > RELAY_BUF);
	memcpy(up->buf + n, c->in, c->in_len);
	up->len = n + c->in_len;
	up->off = 0;
	pstats_add(w->stats, PS_BYTES_TO_UPSTREAM, c->in_len);
	FREE_NULL(c->in);
	c->in_len = c->in_cap = 0;
	live_cfg_put(c->lc);
	c->lc = NULL;
	c->route = NULL;
	c->state = ST_RELAY;
	timer_arm(w, c, TL_IDLE);
	relay_pump(w, c, 0);
	relay_pump(w, c, 1);
}

/* ---- relay ------------------------------------------------------------ */

/*
 * Pipe rounds (in, then out) per readiness, so one bulk relay cannot hold
 * the worker while others wait.
 */
#define SPLICE_ROUNDS 16

/*
 * splice(2) needs both sockets non-blocking: it blocks on the files' own
 * flags. Receives and sends through the backends are unaffected.
 */
static bool set_nonblock(struct conn *c)
{
	for (int s = 0; s < 2 && !c->nonblock; s++) {
		int fl = fcntl(c->fd[s], F_GETFL);

		if (fl < 0 || (!(fl & O_NONBLOCK) &&
			       fcntl(c->fd[s], F_SETFL, fl | O_NONBLOCK) < 0))
			return false;
	}
	c->nonblock = true;
	return true;
}

/*
 * Moves a bulk direction's bytes src -> pipe -> dst, the pipe emptied
 * before it is filled again (so a full pipe never reads as a blocked
 * socket), until a socket would block; then waits for that socket alone,
 * which keeps the buffered relay's backpressure. true: a wait is in
 * flight or the connection is closing; false: the relay goes on without
 * splicing for now (the source said EOF and the pipe is empty, or no pipe
 * is free).
 */
static bool splice_pump(struct worker *w, struct conn *c, int d)
{
	struct relay_dir *r = &c->dir[d];
	enum side src = d == 0 ? SIDE_CLIENT : SIDE_UPSTREAM;
	enum side dst = d == 0 ? SIDE_UPSTREAM : SIDE_CLIENT;
	unsigned rounds = 0;
	bool short_read = false;
	ssize_t n;

	if (!c->nonblock && !set_nonblock(c)) {
		r->bulk = false;
		return false;
	}
	for (;;) {
		if (r->piped) {
			n = splice(r->pipe.fd[0], NULL, c->fd[dst], NULL, r->piped,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				r->piped -= (uint32_t)n;
				timer_arm(w, c, TL_IDLE);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				op_poll(w, c, dst, true, false);
				return true;
			}
			conn_close(w, c, PS_CLOSE_RESET);
			return true;
		}
		if (r->eof || (r->pipe.fd[0] < 0 && !pipe_get(w, r))) {
			pipe_put(w, r);
			return false;
		}
		/*
		 * Others' turn; it comes back at once if still readable. A
		 * short read most likely emptied the socket: waiting saves the
		 * read that would fail (the poll still sees bytes already in).
		 */
		if (rounds++ == SPLICE_ROUNDS || short_read) {
			pipe_put(w, r);
			op_poll(w, c, src, false, true);
			return true;
		}
		n = splice(c->fd[src], NULL, r->pipe.fd[1], NULL, r->pipe.cap,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			r->piped = (uint32_t)n;
			/*
			 * Against the pipe's real size: with a refused
			 * resize, every read would look short.
			 */
			short_read = n < r->pipe.cap;
			pstats_add(w->stats, d == 0 ? PS_BYTES_TO_UPSTREAM
						    : PS_BYTES_TO_CLIENT, (uint64_t)n);
			pstats_add(w->stats, PS_BYTES_SPLICED, (uint64_t)n);
			timer_arm(w, c, TL_IDLE);
			continue;
		}
		if (n == 0) {
			r->eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			pipe_put(w, r);
			op_poll(w, c, src, false, false);
			return true;
		}
		if (errno == ENOSYS || errno == EPERM || errno == EINVAL) {
			/*
			 * A seccomp filter or a socket that cannot splice:
			 * nothing moved yet, so this relay copies instead.
			 */
			log_warn("proxy: splice: %s: bulk relays copy through "
				 "buffers from now on", strerror(errno));
			w->no_splice = true;
			r->bulk = false;
			pipe_put(w, r);
			return false;
		}
		conn_close(w, c, PS_CLOSE_RESET);
		return true;
	}
}

/*
 * Moves one direction forward: send what is buffered, else receive more,
 * else (source at EOF) shut the destination's write side. One buffer per
 * direction is the backpressure: nothing more is read from a side until
 * the other side has taken everything read before. A drained buffer goes
 * back to the pool at once and the next receive takes one only when bytes
 * arrive, so a connection with nothing to relay holds no buffer. A bulk
 * direction splices instead, with the same one-thing-at-a-time rule.
 */
static void relay_pump(struct worker *w, struct conn *c, int d)
{
	struct relay_dir *r = &c->dir[d];
	enum side src = d == 0 ? SIDE_CLIENT : SIDE_UPSTREAM;
	enum side dst = d == 0 ? SIDE_UPSTREAM : SIDE_CLIENT;

	if (r->off < r->len) {
		if (!c->send_busy[dst])
			op_send(w, c, dst, r->buf + r->off, r->len - r->off);
		return;
	}
	r->len = r->off = 0;
	if (c->recv_busy[src] || c->send_busy[dst])
		return;
	dir_drop(w, r);
	if ((r->piped || (r->bulk && !r->eof)) && splice_pump(w, c, d))
		return;
	if (r->eof) {
		if (!r->shut) {
			r->shut = true;
			op_shutdown(w, c, dst);
		}
		return;
	}
	op_recv(w, c, src, NULL, RELAY_BUF, !r->bulk);
}

static void relay_recv(struct worker *w, struct conn *c, enum side s, int res,
		       void *buf)
{
	int d = s == SIDE_CLIENT ? 0 : 1;
	struct relay_dir *r = &c->dir[d];

	if (buf) {
		/* A pooled receive: the direction held nothing while it waited. */
		BUG_ON(r->buf);
		dir_hold(w, r, buf);
	}
	if (res == -ENOBUFS && !r->buf) {
		/* The pool ran dry under the ring: this receive brings its own. */
		dir_hold(w, r, bufpool_get(w));
		op_recv(w, c, s, r->buf, RELAY_BUF, false);
		return;
	}
	if (res < 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	if (res == 0) {
		r->eof = true;
	} else {
		r->len = (uint32_t)res;
		pstats_add(w->stats, d == 0 ? PS_BYTES_TO_UPSTREAM
					    : PS_BYTES_TO_CLIENT, (uint64_t)res);
		timer_arm(w, c, TL_IDLE);
		/* A full buffer: more is waiting, so splice from now on. */
		if (res == RELAY_BUF && w->lc->cfg->proxy.splice_pipes &&
		    !w->no_splice)
			r->bulk = true;
	}
	relay_pump(w, c, d);
}

/* A bulk direction's socket is ready: splice on. */
static void relay_ready(struct worker *w, struct conn *c, int d, int res)
{
	if (res < 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	relay_pump(w, c, d);
}

static void relay_sent(struct worker *w, struct conn *c, enum side s, int res)
{
	int d = s == SIDE_UPSTREAM ? 0 : 1;

	if (res <= 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	c->dir[d].off += (uint32_t)res;
	timer_arm(w, c, TL_IDLE);
	relay_pump(w, c, d);
}

static void relay_shut(struct worker *w, struct conn *c)
{
	/* Both directions ended and both write sides shut: done. */
	if (c->dir[0].shut && c->dir[1].shut && c->dir[0].eof && c->dir[1].eof)
		conn_close(w, c, -1);
}

/* ---- acme-tls/1 ------------------------------------------------------- */

static void log_challenge(struct worker *w, struct conn *c, uint8_t kind,
			  const char *key, size_t key_len, const char *ident,
			  enum pstats_outcome outcome, const char *detail)
{
	char peer[ADDR_STRLEN];

	pstats_hit(w->stats, kind, key, key_len, conn_peer(c),
		   outcome, clock_wall_ms());
	addr_format(conn_peer(c), peer, sizeof(peer));
	if (outcome == HIT_ANSWERED)
		log_info("proxy: %s answered: client %s, identifier %s, key %.*s%s%s",
			 store_kind_name((enum store_kind)kind), peer, ident,
			 (int)key_len, key, detail ? ", " : "", detail ? detail : "");
	else
		log_ratelimited(&lim_miss, LOG_LVL_INFO,
				"proxy: %s %s: client %s, identifier %s, key %.*s%s%s",
				store_kind_name((enum store_kind)kind),
				outcome == HIT_MISSED ? "missed" : "failed", peer,
				ident, (int)key_len, key, detail ? ", " : "",
				detail ? detail : "");
}

static void tls_drive(struct worker *w, struct conn *c)
{
	enum acme_tls_status st = acme_tls_step(c->tls);
	const char *key = c->tls_names, *ident = key + strlen(key) + 1;

	if (c->out_off == c->out_len)
		c->out_len = c->out_off = 0;
	c->out_len += (uint32_t)acme_tls_take(c->tls, c->out + c->out_len,
					      c->out_cap - c->out_len);
	if (st == ACME_TLS_DONE || st == ACME_TLS_ERROR) {
		bool ok = st == ACME_TLS_DONE;
		pstats_add(w->stats, ok ? PS_HANDSHAKE_OK : PS_HANDSHAKE_FAILED, 1);
		pstats_add(w->stats, ok ? PS_TLSALPN01_ANSWERED : PS_TLSALPN01_MISSED, 1);
		log_challenge(w, c, STORE_TLSALPN01, key, strlen(key), ident,
			      ok ? HIT_ANSWERED : HIT_FAILED,
			      ok ? acme_tls_version(c->tls) : acme_tls_error(c->tls));
		c->keep_alive = false;
		c->state = ST_ANSWER;
		if (c->out_off == c->out_len) {
			linger(w, c);
			return;
		}
		out_flush(w, c);
		return;
	}
	/* WANT_READ: send what OpenSSL produced, and read the client's reply. */
	out_flush(w, c);
	if (!c->recv_busy[SIDE_CLIENT])
		op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
}

static void tls_recv(struct worker *w, struct conn *c, int res)
{
	if (res <= 0) {
		pstats_add(w->stats, PS_HANDSHAKE_FAILED, 1);
		conn_close(w, c, res < 0 ? PS_CLOSE_RESET : -1);
		return;
	}
	if (acme_tls_feed(c->tls, c->in, (size_t)res) != 0) {
		conn_close(w, c, PS_HANDSHAKE_FAILED);
		return;
	}
	tls_drive(w, c);
}

/* ---- peeking ---------------------------------------------------------- */

static void recv_more(struct worker *w, struct conn *c)
{
	uint32_t max = c->https ? IN_MAX_TLS : IN_MAX_HTTP;

	if (c->in_len == c->in_cap && c->in_cap < max) {
		uint32_t cap = c->in_cap ? c->in_cap * 2 : IN_INITIAL;
		uint8_t *p;
		if (cap > max)
			cap = max;
		p = realloc(c->in, cap);
		BUG_ON(!p);
		c->in = p;
		c->in_cap = cap;
	}
	BUG_ON(c->in_len >= c->in_cap);
	/* After an answer the client reads it before it asks again. */
	if (!c->recv_busy[SIDE_CLIENT])
		op_recv(w, c, SIDE_CLIENT, c->in + c->in_len, c->in_cap - c->in_len,
			c->requests > 0 && c->in_len == 0);
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= (uint32_t)n;
}

static void refuse(struct worker *w, struct conn *c, int stat, const char *why)
{
	char peer[ADDR_STRLEN];

	addr_format(conn_peer(c), peer, sizeof(peer));
	log_ratelimited(&lim_peer, LOG_LVL_INFO, "proxy: %s from %s: %s",
			c->https ? "https" : "http", peer, why);
	conn_close(w, c, stat);
}

/* Returns true when peeking may go on to the request or hello. */
static bool peek_proxy_header(struct worker *w, struct conn *c)
{
	struct proxy_hdr ph;
	int r = proxy_hdr_parse(c->in, c->in_len, &ph);

	if (r == WIRE_NOTPROXY) {
		c->proxy_done = true;
		return true;
	}
	if (r == WIRE_PARTIAL) {
		recv_more(w, c);
		return false;
	}
	if (!c->trusted) {
		refuse(w, c, PS_CLOSE_PROXY_UNTRUSTED,
		       "PROXY header from an address not in trusted_proxies");
		return false;
	}
	if (r < 0) {
		refuse(w, c, PS_CLOSE_PROXY_BAD, "malformed PROXY header");
		return false;
	}
	if (!ph.local) {
		c->peer = ph.src;
		c->local = ph.dst;
	}
	consume(c, (size_t)r);
	c->proxy_done = true;
	return true;
}

static void lower_name(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = (char)ascii_lower((uint8_t)src[i]);
	dst[len] = '\0';
}

static void peek_hello(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = w->lc->cfg;
	struct tls_hello h;
	char sni[TLS_SNI_MAX + 1], err[256];
	size_t sni_len = 0;
	int r = tls_hello_parse(c->in, c->in_len, &h, w->hello_scratch,
				sizeof(w->hello_scratch));

	if (r == WIRE_PARTIAL) {
		if (c->in_len >= IN_MAX_TLS) {
			refuse(w, c, PS_CLOSE_HELLO_TOO_LARGE, "ClientHello too large");
			return;
		}
		recv_more(w, c);
		return;
	}
	if (r == WIRE_TOOBIG) {
		refuse(w, c, PS_CLOSE_HELLO_TOO_LARGE, "ClientHello too large");
		return;
	}
	if (r < 0) {
		refuse(w, c, PS_CLOSE_BAD_HELLO, "malformed ClientHello");
		return;
	}
	if (h.has_sni) {
		sni_len = h.sni.len;
		if (sni_len && h.sni.ptr[sni_len - 1] == '.')
			sni_len--;
		lower_name(sni, h.sni.ptr, sni_len);
	}
	if (h.has_sni && sni_len &&
	    tls_hello_alpn_offers(&h, ACME_TLS_ALPN, strlen(ACME_TLS_ALPN))) {
		if (store_lookup(w->px->store, STORE_TLSALPN01, sni, sni_len,
				 clock_wall_ms(), &w->entry) == 0) {
			c->tls = acme_tls_new(w->tls_ctx, &w->entry, err, sizeof(err));
			if (!c->tls) {
				pstats_add(w->stats, PS_TLSALPN01_MISSED, 1);
				log_challenge(w, c, STORE_TLSALPN01, sni, sni_len,
					      w->entry.ident, HIT_FAILED, err);
				conn_close(w, c, PS_HANDSHAKE_FAILED);
				return;
			}
			/*
			 * w->entry is shared by the worker's connections and
			 * the handshake spans loop turns: keep the names.
			 */
			c->tls_names = malloc(w->entry.key_len + w->entry.ident_len + 2);
			BUG_ON(!c->tls_names);
			memcpy(c->tls_names, w->entry.key, w->entry.key_len + 1);
			memcpy(c->tls_names + w->entry.key_len + 1, w->entry.ident,
			       w->entry.ident_len + 1);
			c->state = ST_ACME_TLS;
			out_reset(c);
			if (acme_tls_feed(c->tls, c->in, c->in_len) != 0) {
				conn_close(w, c, PS_HANDSHAKE_FAILED);
				return;
			}
			c->in_len = 0;
			tls_drive(w, c);
			return;
		}
		pstats_add(w->stats, PS_TLSALPN01_MISSED, 1);
		log_challenge(w, c, STORE_TLSALPN01, sni, sni_len, sni, HIT_MISSED,
			      cfg->proxy.tls_miss == MISS_REJECT ? "rejected"
								 : "forwarded");
		if (cfg->proxy.tls_miss == MISS_REJECT) {
			out_reset(c);
			memcpy(c->out, acme_tls_alert_unrecognized_name,
			       sizeof(acme_tls_alert_unrecognized_name));
			c->out_len = sizeof(acme_tls_alert_unrecognized_name);
			c->keep_alive = false;
			c->state = ST_ANSWER;
			pstats_add(w->stats, PS_CLOSE_TLS_REJECT, 1);
			out_flush(w, c);
			return;
		}
	}
	forward(w, c, sni, sni_len);
}

/* A token as the path's last segment: /.well-known/acme-challenge/<token>. */
static bool challenge_token(const struct http_head *h, struct slice *tok)
{
	size_t plen = strlen(CHALLENGE_PREFIX);

	if (h->path.len <= plen || memcmp(h->path.ptr, CHALLENGE_PREFIX, plen) != 0)
		return false;
	tok->ptr = h->path.ptr + plen;
	tok->len = h->path.len - plen;
	return memchr(tok->ptr, '/', tok->len) == NULL;
}

static void peek_request(struct worker *w, struct conn *c)
{
	const struct cfg *cfg = w->lc->cfg;
	struct http_head h;
	struct slice tok;
	int r = http_head_parse(c->in, c->in_len, &h);
	bool get, head;

	if (r == WIRE_PARTIAL) {
		if (c->in_len >= IN_MAX_HTTP) {
			http_error(w, c, 431, "Request Header Fields Too Large",
				   PS_CLOSE_HEAD_TOO_LARGE);
			return;
		}
		recv_more(w, c);
		return;
	}
	if (r == WIRE_TOOBIG) {
		http_error(w, c, 431, "Request Header Fields Too Large",
			   PS_CLOSE_HEAD_TOO_LARGE);
		return;
	}
	if (r < 0) {
		char peer[ADDR_STRLEN];
		addr_format(conn_peer(c), peer, sizeof(peer));
		log_ratelimited(&lim_peer, LOG_LVL_INFO,
				"proxy: http from %s: malformed request head", peer);
		http_error(w, c, 400, "Bad Request", PS_CLOSE_BAD_REQUEST);
		return;
	}
	get = h.method.len == 3 && memcmp(h.method.ptr, "GET", 3) == 0;
	head = h.method.len == 4 && memcmp(h.method.ptr, "HEAD", 4) == 0;
	if ((get || head) && challenge_token(&h, &tok)) {
		const struct store_entry *e = &w->entry;
		bool nobody = h.content_length <= 0 && !h.chunked;
		bool keep = h.keep_alive && nobody;
		bool hit = store_lookup(w->px->store, STORE_HTTP01, tok.ptr, tok.len,
					clock_wall_ms(), &w->entry) == 0;
		/* A bound entry answers only on its own name. */
		if (hit && e->ident_len &&
		    (e->ident_len != h.host_len || memcmp(e->ident, h.host, h.host_len)))
			hit = false;
		if (hit) {
			pstats_add(w->stats, PS_HTTP01_ANSWERED, 1);
			log_challenge(w, c, STORE_HTTP01, tok.ptr, tok.len,
				      h.has_host ? h.host : "-", HIT_ANSWERED, NULL);
			c->requests++;
			consume(c, h.head_len);
			/* Asked to close, all read: nothing can follow (no RST). */
			c->said_all = !h.keep_alive && nobody && c->in_len == 0;
			http_answer(w, c, 200, "OK", "application/octet-stream",
				    (const char *)e->payload, e->payload_len, head, keep);
			return;
		}
		pstats_add(w->stats, PS_HTTP01_MISSED, 1);
		log_challenge(w, c, STORE_HTTP01, tok.ptr, tok.len,
			      h.has_host ? h.host : "-", HIT_MISSED,
			      cfg->proxy.http_miss == MISS_404 ? "404" : "forwarded");
		if (cfg->proxy.http_miss == MISS_404) {
			static const char body[] = "no such challenge\n";
			consume(c, h.head_len);
			c->said_all = !h.keep_alive && nobody && c->in_len == 0;
			http_answer(w, c, 404, "Not Found", "text/plain", body,
				    sizeof(body) - 1, head, keep);
			return;
		}
	}
	forward(w, c, h.has_host ? h.host : NULL, h.host_len);
}

static void peek_advance(struct worker *w, struct conn *c)
{
	if (!c->proxy_done && !peek_proxy_header(w, c))
		return;
	if (c->in_len == 0) {
		recv_more(w, c);
		return;
	}
	if (c->https)
		peek_hello(w, c);
	else
		peek_request(w, c);
}

static void peek_recv(struct worker *w, struct conn *c, int res)
{
	if (res < 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	if (res == 0) {
		/* Closed before saying anything complete: nothing to answer. */
		conn_close(w, c, c->in_len ? (c->https ? PS_CLOSE_BAD_HELLO
						       : PS_CLOSE_BAD_REQUEST) : -1);
		return;
	}
	c->in_len += (uint32_t)res;
	peek_advance(w, c);
}

/* ---- completions ------------------------------------------------------ */

static void answer_sent(struct worker *w, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	c->out_off += (uint32_t)res;
	if (c->tls && c->out_off == c->out_len && acme_tls_pending(c->tls)) {
		c->out_len = c->out_off = 0;
		c->out_len = (uint32_t)acme_tls_take(c->tls, c->out, c->out_cap);
	}
	if (c->out_off < c->out_len) {
		out_flush(w, c);
		return;
	}
	if (c->tls) {
		/* Handshake output sent; more may come after the client's reply. */
		if (c->state == ST_ACME_TLS)
			return;
		linger(w, c);
		return;
	}
	if (!c->keep_alive) {
		/*
		 * A close with nothing unread makes the kernel send what is
		 * queued, then FIN: lingering (shutdown, read to EOF) is needed
		 * only when the client may still be sending, since bytes arriving
		 * after close() turn into a reset that can destroy our answer.
		 */
		if (c->said_all && !c->recv_busy[SIDE_CLIENT])
			conn_close(w, c, -1);
		else
			linger(w, c);
		return;
	}
	/* Keep-alive: the next request may already be in the buffer. */
	c->state = ST_PEEK;
	c->out_len = c->out_off = 0;
	timer_arm(w, c, TL_PEEK);
	if (w->draining) {
		conn_close(w, c, PS_CLOSE_DRAIN);
		return;
	}
	if (c->in_len)
		peek_advance(w, c);
	else
		recv_more(w, c);
}

void conn_complete(struct worker *w, struct conn *c, enum io_op op,
		   enum side s, int res, void *buf)
{
	BUG_ON(c->inflight == 0);
	c->inflight--;
	if (op == IO_RECV) {
		c->recv_busy[s] = false;
	} else if (op == IO_SEND) {
		c->send_busy[s] = false;
	} else if (op == IO_POLL_IN) {
		c->recv_busy[s] = false;
		c->recv_poll[s] = false;
	} else if (op == IO_POLL_OUT) {
		c->send_busy[s] = false;
		c->send_poll[s] = false;
	} else if (op == IO_CONNECT)
		c->connect_busy = false;

	if (c->state == ST_CLOSING) {
		/* A pool buffer a receive brought has no direction to go to. */
		bufpool_put(w, buf);
		if (c->inflight == 0)
			conn_release(w, c);
		return;
	}
	switch (op) {
	case IO_RECV:
		switch (c->state) {
		case ST_PEEK:
			peek_recv(w, c, res);
			break;
		case ST_ACME_TLS:
			tls_recv(w, c, res);
			break;
		case ST_RELAY:
			relay_recv(w, c, s, res, buf);
			break;
		case ST_LINGER:
			if (res <= 0)
				conn_close(w, c, -1);
			else
				op_recv(w, c, SIDE_CLIENT, c->in, c->in_cap, true);
			break;
		default:
			/* ANSWER: a receive left from TLS; the answer decides. */
			if (res <= 0 && !c->send_busy[SIDE_CLIENT])
				conn_close(w, c, -1);
			break;
		}
		break;
	case IO_SEND:
		if (c->state == ST_RELAY)
			relay_sent(w, c, s, res);
		else
			answer_sent(w, c, res);
		break;
	case IO_CONNECT:
		if (c->state != ST_CONNECTING)
			break;
		if (res < 0) {
			pstats_add(w->stats, res == -ECANCELED ? PS_UPSTREAM_CONNECT_TIMEOUT
							       : PS_UPSTREAM_CONNECT_FAILED, 1);
			connect_next(w, c);
			break;
		}
		on_connected(w, c);
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
}

/* ---- accepting -------------------------------------------------------- */

static bool peer_trusted(const struct cfg *cfg, const struct sockaddr *sa)
{
	for (size_t i = 0; i < cfg->proxy.ntrusted_proxies; i++)
		if (cidr_match(&cfg->proxy.trusted_proxies[i], sa))
			return true;
	return false;
}

/*
 * At the cap, the oldest connection still peeking makes room: it has not
 * shown itself to be anything yet, and a validator's connection must not
 * be starved by idle or slow ones. Relayed connections are never evicted.
 */
static struct conn *evict_for(struct worker *w)
{
	struct conn *victim = w->timers[TL_PEEK].head;

	while (victim && victim->state != ST_PEEK)
		victim = victim->tnext;
	if (victim)
		conn_close(w, victim, PS_CLOSE_EVICTED);
	return conn_alloc(w);
}

void worker_accepted(struct worker *w, unsigned li, int fd)
{
	const struct listener *l = &w->listeners[li];
	struct conn *c;

	pstats_add(w->stats, l->https ? PS_ACCEPTED_HTTPS : PS_ACCEPTED_HTTP, 1);
	uint32_t cap = w->lc->cfg->proxy.max_connections;
	if (cap > w->nconns_cap - w->reserve)
		cap = w->nconns_cap - w->reserve;
	c = w->active >= cap ? evict_for(w) : conn_alloc(w);
	if (!c) {
		pstats_add(w->stats, PS_CLOSE_OVER_CAP, 1);
		close(fd);
		return;
	}
	c->fd[SIDE_CLIENT] = fd;
	c->https = l->https;
	c->listener = (uint8_t)li;
	c->state = ST_PEEK;
	/* TCP_NODELAY comes from the listener: Linux copies it on accept. */
	if (w->lc->cfg->proxy.ntrusted_proxies) {
		if (conn_peer(c)->sa_family == AF_UNSPEC) {
			conn_close(w, c, PS_CLOSE_RESET);
			return;
		}
		c->trusted = peer_trusted(w->lc->cfg, conn_peer(c));
	}
	timer_arm(w, c, TL_PEEK);
	recv_more(w, c);
}

void worker_accept_ended(struct worker *w, unsigned li)
{
	if (w->draining) {
		struct listener *l = &w->listeners[li];
		l->armed = false;
		/*
		 * Stop listening now, not at teardown: an open listening socket
		 * keeps completing handshakes into its backlog, and those clients
		 * would hang for the whole grace period before a reset. Closed,
		 * new connections are refused at once.
		 */
		if (l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
		}
		return;
	}
	w->io->accept(w, li);
}

void worker_accept_failed(struct worker *w, unsigned li, int err)
{
	static __thread struct log_limit lim;

	log_ratelimited(&lim, LOG_LVL_ERR, "proxy: accept on listener %u: %s",
			li, strerror(-err));
}

/* ---- the loop --------------------------------------------------------- */

static void expire(struct worker *w, struct conn *c)
{
	enum timer_list tl = (enum timer_list)c->tlist;

	timer_unlink(w, c);
	switch (tl) {
	case TL_PEEK:
		if (c->state == ST_PEEK && c->in_len == 0 && c->requests > 0)
			conn_close(w, c, -1);	/* keep-alive, nothing asked */
		else
			refuse(w, c, PS_CLOSE_PEEK_TIMEOUT, "timed out");
		break;
	case TL_CONNECT:
		/* The connect completes with -ECANCELED and tries the next one. */
		if (c->state == ST_CONNECTING) {
			c->inflight++;
			w->io->cancel(w, c, SIDE_UPSTREAM);
		}
		break;
	case TL_IDLE:
		conn_close(w, c, PS_CLOSE_IDLE_TIMEOUT);
		break;
	default:
		conn_close(w, c, -1);
		break;
	}
}

void worker_tick(struct worker *w)
{
	for (int tl = TL_PEEK; tl < TL_COUNT; tl++) {
		struct conn *c;
		while ((c = w->timers[tl].head) && c->deadline_ms <= w->now_ms)
			expire(w, c);
	}
}

/*
 * Graceful stop, step two: close what is idle or not yet identified; what
 * relays or answers keeps going until the grace period ends.
 */
void worker_drain(struct worker *w, bool force)
{
	for (uint32_t i = 0; i < w->nconns_cap; i++) {
		struct conn *c = &w->conns[i];
		if (c->state == ST_FREE || c->state == ST_CLOSING)
			continue;
		if (force || c->state == ST_PEEK)
			conn_close(w, c, PS_CLOSE_DRAIN);
	}
}
