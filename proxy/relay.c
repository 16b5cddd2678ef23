#include "proxy/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"

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

void relay_init(struct conn *c)
{
	for (int d = 0; d < 2; d++)
		c->dir[d].pipe.fd[0] = c->dir[d].pipe.fd[1] = -1;
}

void relay_release(struct worker *w, struct conn *c)
{
	for (int d = 0; d < 2; d++) {
		dir_drop(w, &c->dir[d]);
		pipe_put(w, &c->dir[d]);
	}
}

/*
 * Pipe rounds (in, then out) per readiness, so one bulk relay cannot hold
 * the worker while others wait.
 */
#define SPLICE_ROUNDS 16

/* Direction d of c waits for a later turn's splicing (relay.h). */
static void splice_wait(struct worker *w, struct conn *c, int d)
{
	if (!c->splice_wait)
		conn_list_append(&w->splice_wait, c, offsetof(struct conn, later));
	c->splice_wait |= (uint8_t)(1u << d);
}

void relay_unwait(struct worker *w, struct conn *c)
{
	if (!c->splice_wait)
		return;
	conn_list_remove(&w->splice_wait, c, offsetof(struct conn, later));
	c->splice_wait = 0;
}

/*
 * splice(2) needs both sockets non-blocking: it blocks on the files' own
 * flags. Receives and sends through the backends are unaffected.
 */
static bool set_nonblock(struct conn *c)
{
	for (int s = 0; s < 2 && !c->nonblock; s++) {
		int fl = fcntl(c->io.fd[s], F_GETFL);

		if (fl < 0 || (!(fl & O_NONBLOCK) &&
			       fcntl(c->io.fd[s], F_SETFL, fl | O_NONBLOCK) < 0))
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
			n = splice(r->pipe.fd[0], NULL, c->io.fd[dst], NULL, r->piped,
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
		if (w->turn_spliced >= TURN_SPLICE_BYTES ||
		    (w->splice_wait.head && !w->splice_resuming)) {
			pipe_put(w, r);
			splice_wait(w, c, d);
			return true;
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
		n = splice(c->io.fd[src], NULL, r->pipe.fd[1], NULL, r->pipe.cap,
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
			w->turn_spliced += (uint64_t)n;
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
		if (!send_busy(c, dst))
			op_send(w, c, dst, r->buf + r->off, r->len - r->off);
		return;
	}
	r->len = r->off = 0;
	if (recv_busy(c, src) || send_busy(c, dst))
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

void relay_recv(struct worker *w, struct conn *c, enum side s, int res,
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
void relay_ready(struct worker *w, struct conn *c, int d, int res)
{
	if (res < 0) {
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	relay_pump(w, c, d);
}

void relay_sent(struct worker *w, struct conn *c, enum side s, int res)
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

bool relay_run_waiting(struct worker *w)
{
	w->splice_resuming = true;
	while (w->splice_wait.head && w->turn_spliced < TURN_SPLICE_BYTES) {
		struct conn *c = w->splice_wait.head;
		uint8_t dirs = c->splice_wait;

		relay_unwait(w, c);
		/* The first direction's pump may close the connection. */
		for (int d = 0; d < 2 && c->state == ST_RELAY; d++)
			if (dirs & (1u << d))
				relay_pump(w, c, d);
	}
	w->splice_resuming = false;
	return w->splice_wait.head != NULL;
}

void relay_shut(struct worker *w, struct conn *c)
{
	/* Both directions ended and both write sides shut: done. */
	if (c->dir[0].shut && c->dir[1].shut && c->dir[0].eof && c->dir[1].eof)
		conn_close(w, c, -1);
}

uint8_t *relay_start_buf(struct worker *w, struct conn *c)
{
	dir_hold(w, &c->dir[0], bufpool_get(w));
	return c->dir[0].buf;
}

void relay_start(struct worker *w, struct conn *c, uint32_t n)
{
	c->dir[0].len = n;
	c->dir[0].off = 0;
	conn_state(w, c, ST_RELAY);
	timer_arm(w, c, TL_IDLE);
	relay_pump(w, c, 0);
	relay_pump(w, c, 1);
}
