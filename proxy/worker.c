/*
 * A worker's loop and what the backend reports of its listeners: taking
 * accepted connections in (making room at the cap), running out
 * deadlines, and draining on a graceful stop.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/ident.h"
#include "common/log.h"
#include "proxy/acme_tls.h"
#include "proxy/conn.h"
#include "proxy/evict.h"
#include "proxy/peek.h"
#include "proxy/relay.h"
#include "proxy/worker.h"

#define LOOP_TICK_MS 100
/* Deadlines handled per loop turn at most (worker_tick). */
#define EXPIRE_BUDGET 64

/* After an accept error, before accepting again on that listener. */
#define ACCEPT_BACKOFF_MS 100

/* ---- accepting -------------------------------------------------------- */

static bool peer_trusted(const struct cfg *cfg, const struct sockaddr *sa)
{
	for (size_t i = 0; i < cfg->proxy.ntrusted_proxies; i++)
		if (cidr_match(&cfg->proxy.trusted_proxies[i], sa))
			return true;
	return false;
}

void worker_accepted(struct worker *w, unsigned li, int fd,
		     const struct sockaddr *peer, socklen_t len)
{
	const struct listener *l = &w->listeners[li];
	struct conn *c;

	pstats_add(w->stats, l->https ? PS_ACCEPTED_HTTPS : PS_ACCEPTED_HTTP, 1);
	evict_for_accept(w);
	c = conn_alloc(w);
	if (!c) {
		evict_refused(w);
		pstats_add(w->stats, PS_CLOSE_OVER_CAP, 1);
		close(fd);
		return;
	}
	c->io.fd[SIDE_CLIENT] = fd;
	c->https = l->https;
	c->listener = (uint8_t)li;
	conn_state(w, c, ST_PEEK);
	conn_addr_set(&c->peer, peer, len);
	/* TCP_NODELAY comes from the listener: Linux copies it on accept. */
	if (w->lc->cfg->proxy.ntrusted_proxies)
		c->trusted = peer_trusted(w->lc->cfg, conn_peer(c));
	timer_arm(w, c, TL_PEEK);
	peek_more(w, c);
}

/*
 * Stop listening now, not at teardown: an open listening socket keeps
 * completing handshakes into its backlog, and those clients would hang
 * for the whole grace period before a reset. Closed, new connections are
 * refused at once.
 */
static void listener_close(struct listener *l)
{
	l->armed = false;
	l->paused = false;
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
}

void worker_accept_ended(struct worker *w, unsigned li)
{
	struct listener *l = &w->listeners[li];

	if (w->draining) {
		listener_close(l);
	} else if (w->now_ms < l->retry_at_ms) {
		/* Re-armed at once, a failing accept would fail again at once. */
		l->armed = false;
		l->paused = true;
	} else {
		w->io->accept(w, li);
	}
}

void worker_accept_failed(struct worker *w, unsigned li, int err)
{
	static __thread struct log_limit lim;

	log_ratelimited(&lim, LOG_LVL_ERR, "proxy: accept on listener %u: %s",
			li, strerror(-err));
	w->listeners[li].retry_at_ms = w->now_ms + ACCEPT_BACKOFF_MS;
	if (err == -EMFILE || err == -ENFILE)
		evict_for_descriptor(w);
}

/* Listeners paused after an error accept again once their time came. */
static void listeners_resume(struct worker *w)
{
	for (unsigned i = 0; i < w->nlisteners; i++) {
		struct listener *l = &w->listeners[i];

		if (!l->paused)
			continue;
		if (w->draining) {
			listener_close(l);
		} else if (w->now_ms >= l->retry_at_ms) {
			l->paused = false;
			w->io->accept(w, i);
		}
	}
}

/* ---- decisions that wait for the end of the turn ---------------------- */

/* Closes what worker_close_fd held, through the backend (io_ops.close). */
static void worker_closes_flush(struct worker *w)
{
	for (uint32_t i = 0; i < w->nclosing; i++)
		w->io->close(w, w->closing[i]);
	w->nclosing = 0;
}

void worker_close_fd(struct worker *w, int fd)
{
	if (w->nclosing == CLOSE_BATCH)
		worker_closes_flush(w);
	w->closing[w->nclosing++] = fd;
}

void worker_defer(struct worker *w, struct conn *c)
{
	BUG_ON(c->deferred);
	c->deferred = true;
	conn_list_append(&w->later, c, offsetof(struct conn, later));
}

void worker_undefer(struct worker *w, struct conn *c)
{
	if (!c->deferred)
		return;
	conn_list_remove(&w->later, c, offsetof(struct conn, later));
	c->deferred = false;
}

bool worker_run_deferred(struct worker *w)
{
	for (unsigned n = 0; n < DEFER_BUDGET && w->later.head; n++) {
		struct conn *c = w->later.head;

		worker_undefer(w, c);
		/* Its decision again, from the same bytes, now carried out. */
		c->decide_now = true;
		peek_advance(w, c);
		c->decide_now = false;
	}
	return w->later.head != NULL;
}

/* ---- deadlines and draining ------------------------------------------- */

static void expire(struct worker *w, struct conn *c)
{
	enum timer_list tl = (enum timer_list)c->tlist;

	timer_unlink(w, c);
	switch (tl) {
	case TL_PEEK:
		if (c->state == ST_PEEK && c->in_len == 0 && c->requests > 0)
			conn_close(w, c, -1);	/* keep-alive, nothing asked */
		else
			peek_refuse(w, c, PS_CLOSE_PEEK_TIMEOUT, "timed out");
		break;
	case TL_CONNECT:
		/* The connect completes with -ECANCELED and tries the next one. */
		if (c->state == ST_CONNECTING)
			op_cancel(w, c, SIDE_UPSTREAM);
		break;
	case TL_IDLE:
		conn_close(w, c, PS_CLOSE_IDLE_TIMEOUT);
		break;
	default:
		conn_close(w, c, -1);
		break;
	}
}

/*
 * Deadlines past, EXPIRE_BUDGET a turn: thousands of connections opened
 * together by a flood time out together, and closing them all in one turn
 * would keep a validator's bytes waiting that long. Returns whether some
 * are left for the next turn.
 */
static bool worker_tick(struct worker *w)
{
	unsigned n = 0;

	for (int tl = TL_PEEK; tl < TL_COUNT; tl++) {
		struct conn *c;
		while ((c = w->timers[tl].head) && c->deadline_ms <= w->now_ms) {
			if (n++ == EXPIRE_BUDGET)
				return true;
			expire(w, c);
		}
	}
	return false;
}

/*
 * Graceful stop, step two: close what is idle or not yet identified; what
 * relays or answers keeps going until the grace period ends.
 */
static void worker_drain(struct worker *w, bool force)
{
	for (uint32_t i = 0; i < w->nconns_cap; i++) {
		struct conn *c = &w->conns[i];
		if (c->state == ST_FREE || c->state == ST_CLOSING)
			continue;
		if (force || c->state == ST_PEEK)
			conn_close(w, c, PS_CLOSE_DRAIN);
	}
}

/* ---- the loop --------------------------------------------------------- */

static bool listeners_armed(const struct worker *w)
{
	for (unsigned i = 0; i < w->nlisteners; i++)
		if (w->listeners[i].armed)
			return true;
	return false;
}

/*
 * The ring is made by the thread that uses it: io_uring ties a registered
 * ring fd, SINGLE_ISSUER and DEFER_TASKRUN to the creating task. The
 * outcome is reported back so that a worker that cannot start stops the
 * process with its one-line reason.
 */
static int worker_start_io(struct worker *w)
{
	struct proxy *px = w->px;
	char err[256];
	int rc = w->io->init(w, err, sizeof(err));

	if (rc)
		log_err("proxy: %s", err);
	pthread_mutex_lock(&px->start_mu);
	px->started++;
	if (rc)
		px->start_failed++;
	pthread_cond_signal(&px->start_cv);
	pthread_mutex_unlock(&px->start_mu);
	return rc;
}

/* ---- the scheduler's slice -------------------------------------------- */

/* sched_setattr(2)'s first version, declared here: libcs differ on it. */
struct slice_attr {
	uint32_t size;
	uint32_t policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime;	/* on a fair policy: the slice asked for, ns */
	uint64_t deadline;
	uint64_t period;
};

/*
 * Asks the kernel for sched_slice_us as this thread's time slice. A worker
 * sleeps until the network wakes it and then has a turn's work to do; with
 * the default slice, a worker woken while another task (a second worker on
 * the same core, ksoftirqd) runs waits for that task's slice to end, and a
 * validator waits with it. A short slice lets the woken worker go first
 * without giving it more of the CPU: its weight, hence its share, is
 * unchanged. Linux takes the hint from 6.12 on and ignores it before;
 * the policy and nice value (the operator's) are kept as they are.
 */
static void worker_slice(struct worker *w)
{
	uint32_t want = w->lc->cfg->proxy.sched_slice_us;
	struct slice_attr a = {0};
	const char *why = NULL;

	if (want == w->slice_us)
		return;
	w->slice_us = want;
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) != 0)
		why = strerror(errno);
	else if (a.policy != SCHED_OTHER && a.policy != SCHED_BATCH)
		why = "not on a fair scheduling policy";
	if (!why) {
		a.size = sizeof(a);
		a.flags &= 0x01;	/* SCHED_FLAG_RESET_ON_FORK, if it was set */
		a.runtime = (uint64_t)want * 1000;
		if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
			why = strerror(errno);
		else if (want && (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) != 0 ||
				  a.runtime != (uint64_t)want * 1000))
			why = "this kernel keeps its own slices (Linux 6.12 takes them)";
	}
	if (w->id != 0)
		return;
	if (why)
		log_info("proxy: sched_slice_us = %u not applied: %s", want, why);
	else if (want)
		log_info("proxy: workers run with a %u us scheduler slice", want);
}

/*
 * Gives up the CPU at the end of a turn once a slice has passed since the
 * last time. The scheduler takes the CPU from a running thread only when it
 * sleeps, when a task it woke is due first, or at its tick (4 ms at HZ=250)
 * once the slice is spent: two workers sharing a core under a flood never
 * sleep and never wake each other, so each held the core for a whole tick,
 * and a validator's connection on the other worker waited it out. A yield
 * costs one system call, which returns at once when nothing else wants the
 * CPU, and moves no share of it: the worker's deadline goes one slice on,
 * its virtual runtime is untouched. With the kernel's own slice
 * (sched_slice_us = 0) the kernel's ticks are left to decide.
 */
static void worker_yield(struct worker *w)
{
	uint64_t now;

	if (!w->slice_us)
		return;
	now = clock_mono_us();
	if (now - w->yielded_us < w->slice_us)
		return;
	/* What the turn queued (a validator's answer among it) goes out
	 * first, not after the slice of whoever runs next. */
	w->io->submit(w);
	sched_yield();
	w->yielded_us = now;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct proxy *px = w->px;
	bool busy = false;		/* work left over: the next wait polls */

	if (worker_start_io(w) != 0)
		return NULL;
	worker_slice(w);
	log_batch(true);
	for (unsigned i = 0; i < w->nlisteners; i++)
		w->io->accept(w, i);
	for (;;) {
		struct live_cfg *cur = atomic_load(&px->live);

		if (cur != w->lc) {
			live_cfg_put(w->lc);
			w->lc = live_cfg_get(px);
			worker_slice(w);
		}
		if (atomic_load(&px->stop) && !w->draining) {
			w->draining = true;
			w->stop_deadline_ms = w->now_ms + w->lc->cfg->proxy.grace_ms;
			for (unsigned i = 0; i < w->nlisteners; i++)
				if (w->listeners[i].armed)
					w->io->accept_stop(w, i);
			worker_drain(w, false);
		}
		if (w->draining) {
			if (w->now_ms >= w->stop_deadline_ms)
				worker_drain(w, true);
			if (w->active == 0 && !listeners_armed(w))
				break;
		}
		w->turn_spliced = 0;
		worker_closes_flush(w);
		w->io->wait(w, busy ? 0 : LOOP_TICK_MS);
		busy = worker_run_deferred(w);
		busy |= relay_run_waiting(w);
		busy |= worker_tick(w);
		if (w->lc->cfg->proxy.nhttps)
			busy |= acme_tls_warm(w->tls_ctx, px->store, w->now_ms);
		listeners_resume(w);
		evict_log(w);
		log_flush();
		worker_yield(w);
	}
	/* The last wait closed what came before it; no wait follows these. */
	for (uint32_t i = 0; i < w->nclosing; i++)
		close(w->closing[i]);
	w->nclosing = 0;
	log_batch(false);
	return NULL;
}
