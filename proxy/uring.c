/*
 * The io_uring backend: per worker a ring for the connections and one for
 * the listeners' accepts (32 single-shot accepts per listener), so that an
 * accept never runs behind the connections' queued work (acc_take); one
 * submission per loop turn (io_uring_submit_and_wait_timeout), and a
 * turn's completions taken in passes by rank, those past a pass's budget
 * copied off the CQ and carried to the next turn (uring_wait).
 *
 * user_data is io.h's encoding. A completion whose generation no longer
 * matches its slot is stale: counted and dropped. With the connections'
 * inflight accounting that should never happen; the check keeps a bug
 * from becoming a use-after-free.
 *
 * Relay receives take their buffer from a provided-buffer ring (group
 * BGID): the kernel picks one only when bytes arrive, so the thousands of
 * idle relayed connections a worker may hold pin no buffer. A buffer has
 * one owner at a time: the worker's pool (w->pool) -> the ring, stocked at
 * the start of each loop turn -> a connection (recv completion carrying
 * IORING_CQE_F_BUFFER) -> the kernel while sent -> the pool again
 * (bufpool_put once its direction drained). An empty ring makes a receive
 * fail with -ENOBUFS; the relay then receives into a buffer of its own, and
 * the stock doubles (up to the ring's size) so it happens rarely.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"
#include "proxy/io.h"
#include "proxy/worker.h"

#define RING_ENTRIES 4096
#define CQ_FACTOR 4
#define BGID 0
#define BR_ENTRIES 256		/* slots of the buffer ring (a power of 2) */
#define BR_STOCK_MIN 32		/* buffers kept in the ring at first */
#define URGENT_ROUNDS 3		/* submit-and-reap rounds of a turn's first pass */
#define TW_BATCH 512		/* deferred completions run per reap (see reap) */
#define TW_PER_ENTER 20		/* the most the kernel runs per enter (reap) */
#define REAP_AFTER 16		/* a wait bringing this many may have left some */
#define PASS_BUDGET 256		/* completions a held pass delivers per turn */
/* The eventfd read that wakes the connections' ring for the accept ring. */
#define UD_WAKE io_ud(IO_IGNORE, 0, 0, 1)

/* Linux 6.10; Debian 12's liburing headers predate it. */
#ifndef IORING_ACCEPT_POLL_FIRST
#define IORING_ACCEPT_POLL_FIRST (1U << 2)
#endif

/* Accepts in flight per listener (at most 32: a bit each). */
#define ACCEPT_DEPTH IO_ACCEPTED_PENDING_MAX

/*
 * One listener's accepts: ACCEPT_DEPTH single-shot requests, each with an
 * address of its own. A multishot accept would be one request in all, but
 * it writes every client's address to one place, overwritten before the
 * completions are seen, and getpeername fails once a client has reset.
 */
struct uaccept {
	uint32_t busy;			/* bit i: accept i in flight */
	bool stopping;			/* stopped or failed: re-arm none */
	bool nonempty;			/* the last accept left others queued */
	socklen_t len[ACCEPT_DEPTH];
	struct sockaddr_storage addr[ACCEPT_DEPTH];
};

/*
 * A completion taken off the CQ for a later pass, possibly a later turn:
 * its user data, result and the pool buffer it brought (taken from the
 * buffer ring at once, so that the ring's stock stays counted right).
 */
struct held_cqe {
	uint64_t ud;
	int32_t res;
	void *buf;
};

/* A FIFO of them, as long as the CQ (a power of 2): a CQ's worth fits. */
struct held {
	struct held_cqe *q;
	uint32_t mask, head, len;
};

struct uring {
	struct io_uring ring;
	/*
	 * The listeners' accepts, on a ring of their own (see acc_take) when
	 * the kernel makes one: aring_on. Its eventfd is signalled when an
	 * accept's completion is posted; a read of it (wake_armed) on the
	 * connections' ring ends that ring's wait.
	 */
	struct io_uring aring;
	bool aring_on, wake_armed;
	bool poll_first;		/* the kernel takes IORING_ACCEPT_POLL_FIRST */
	int wake_fd;
	uint64_t wake_val;
	struct io_uring_buf_ring *br;
	size_t br_size;
	uint32_t stock;			/* buffers in the ring now */
	uint32_t stock_goal;
	bool nobufs;			/* a receive found the ring empty */
	uint16_t free_bids[BR_ENTRIES];	/* ids with no buffer behind them */
	uint32_t nfree_bids;
	void *bufs[BR_ENTRIES];		/* id -> the buffer given to the ring */
	struct uaccept *acc;		/* by listener */
	struct held peek, later;	/* the passes after the first (uring_wait) */
};

static struct io_uring_sqe *ring_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	while (!sqe) {
		/* The SQ is full: hand it to the kernel and take a fresh one. */
		int rc = io_uring_submit(ring);
		BUG_ON(rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

/* Submits what r holds, if anything: an empty submit is still a system call. */
static void ring_flush(struct io_uring *r)
{
	if (io_uring_sq_ready(r))
		(void)io_uring_submit(r);
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	return ring_sqe(&((struct uring *)w->io_priv)->ring);
}

/* Accepts and their cancels go where the accepts are. */
static struct io_uring_sqe *acc_sqe(struct worker *w)
{
	struct uring *u = w->io_priv;

	return ring_sqe(u->aring_on ? &u->aring : &u->ring);
}

static struct io_uring_sqe *conn_sqe(struct worker *w, struct io_conn *c,
				     enum io_op op, enum side s)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_sqe_set_data64(sqe, io_ud(op, s, c->gen, c->slot));
	return sqe;
}

/*
 * Explains why io_uring is unavailable in one line: the sysctl, a seccomp
 * filter (EPERM/ENOSYS with the sysctl open), or plain lack of memory.
 */
static void explain(int rc, char *err, size_t errlen)
{
	int disabled = -1;
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");

	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = -1;
		fclose(f);
	}
	if (rc == -ENOSYS && disabled <= 0)
		snprintf(err, errlen, "io_uring_setup: ENOSYS: the kernel lacks "
			 "io_uring or a seccomp filter blocks it");
	else if (rc == -EPERM && disabled > 0)
		snprintf(err, errlen, "io_uring_setup: EPERM: "
			 "kernel.io_uring_disabled = %d", disabled);
	else if (rc == -EPERM)
		snprintf(err, errlen, "io_uring_setup: EPERM: blocked by a seccomp "
			 "filter or an LSM (kernel.io_uring_disabled = %d)", disabled);
	else
		snprintf(err, errlen, "io_uring_setup: %s", strerror(-rc));
}

/* liburing 2.3 has no io_uring_setup_buf_ring: map and register by hand. */
static int br_setup(struct uring *u)
{
	struct io_uring_buf_reg reg;
	int rc;

	u->br_size = BR_ENTRIES * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (u->br == MAP_FAILED) {
		u->br = NULL;
		return -errno;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = BR_ENTRIES;
	reg.bgid = BGID;
	rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (rc < 0) {
		munmap(u->br, u->br_size);
		u->br = NULL;
		return rc;
	}
	io_uring_buf_ring_init(u->br);
	for (uint32_t i = 0; i < BR_ENTRIES; i++)
		u->free_bids[i] = (uint16_t)(BR_ENTRIES - 1 - i);
	u->nfree_bids = BR_ENTRIES;
	u->stock_goal = BR_STOCK_MIN;
	return 0;
}

/* Tops the ring up from the pool: called once per loop turn. */
static void br_stock(struct worker *w, struct uring *u)
{
	int added = 0;

	if (u->nobufs) {
		u->nobufs = false;
		if (u->stock_goal < BR_ENTRIES)
			u->stock_goal *= 2;
	}
	while (u->stock < u->stock_goal) {
		uint16_t bid = u->free_bids[--u->nfree_bids];

		u->bufs[bid] = bufpool_get(w);
		io_uring_buf_ring_add(u->br, u->bufs[bid], RELAY_BUF, bid,
				      io_uring_buf_ring_mask(BR_ENTRIES), added++);
		u->stock++;
	}
	if (added)
		io_uring_buf_ring_advance(u->br, added);
}

/* The buffer a completion took from the ring, now the caller's. */
static void *br_take(struct uring *u, uint32_t cflags)
{
	uint16_t bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);
	void *b;

	BUG_ON(bid >= BR_ENTRIES || !u->bufs[bid]);
	b = u->bufs[bid];
	u->bufs[bid] = NULL;
	u->free_bids[u->nfree_bids++] = bid;
	u->stock--;
	return b;
}

/* At exit: what held completions still own goes back to the pool. */
static void held_drop(struct worker *w, struct held *h)
{
	for (; h->len; h->len--, h->head = (h->head + 1) & h->mask)
		bufpool_put(w, h->q[h->head].buf);
}

/*
 * IORING_ACCEPT_POLL_FIRST, and accept completions that say whether others
 * are queued, came with Linux 6.10; an older kernel fails an accept that
 * carries the flag (EINVAL), and the opcode probe cannot see flags.
 */
static bool accept_poll_first_ok(void)
{
	struct utsname un;
	unsigned major, minor;

	if (uname(&un) < 0 || sscanf(un.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 10);
}

/*
 * The accept ring: as many entries as accepts and their cancels can take,
 * one issuer like the connections' ring, but its completions run as
 * ordinary task work, not deferred. The kernel runs that on the worker's
 * next return from any system call, ahead of the connections' deferred
 * work, and wakes the worker for it where it sleeps in the connections'
 * ring's wait; the completion posted there signals the eventfd from the
 * worker's own context, which ends the wait (acc_listen). A deferred ring
 * signals its eventfd where the accept completes, in the network's
 * softirq, and the kernel (6.18) postpones such a signal by an RCU grace
 * period: an idle worker saw each new connection 14-16 ms late. A kernel
 * or a limit that refuses the ring leaves the accepts on the connections'
 * ring, as they were before it (the worker only loses their head start).
 */
static void aring_setup(struct worker *w, struct uring *u)
{
	struct io_uring_params p;
	unsigned entries = 64;

	while (entries < (w->nlisteners + 1) * (ACCEPT_DEPTH + 1))
		entries *= 2;
	memset(&p, 0, sizeof(p));
	/*
	 * Cooperative: a running worker is not interrupted (it runs the task
	 * work at its next system call); a sleeping one is woken.
	 */
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_COOP_TASKRUN;
	if (io_uring_queue_init_params(entries, &u->aring, &p) < 0)
		return;
	/* Blocking: a read of it on the ring waits for a signal. */
	u->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (u->wake_fd < 0) {
		io_uring_queue_exit(&u->aring);
		return;
	}
	if (io_uring_register_eventfd(&u->aring, u->wake_fd) < 0) {
		close(u->wake_fd);
		io_uring_queue_exit(&u->aring);
		return;
	}
	/* Silent but while the connections' ring waits (acc_listen). */
	(void)io_uring_cq_eventfd_toggle(&u->aring, false);
	u->aring_on = true;
}

static int uring_init(struct worker *w, char *err, size_t errlen)
{
	static const int needed[] = {
		IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
		IORING_OP_CONNECT, IORING_OP_ASYNC_CANCEL,
		IORING_OP_TIMEOUT, IORING_OP_POLL_ADD, IORING_OP_CLOSE,
		/*
		 * Not used, but it arrived in 5.19 with cancel by descriptor,
		 * which the probe cannot see directly and accept_stop needs.
		 * Its absence sends auto to epoll.
		 */
		IORING_OP_SOCKET,
	};
	static const char *const names[] = {
		"accept", "recv", "send", "connect", "async_cancel",
		"timeout", "poll_add", "close", "socket (5.19: cancel by fd)",
	};
	struct uring *u = calloc(1, sizeof(*u));
	struct io_uring_params p;
	struct io_uring_probe *probe;
	int rc;

	BUG_ON(!u);
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
		  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = RING_ENTRIES * CQ_FACTOR;
	rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
	if (rc == -EINVAL) {
		/* An older kernel: the optional flags go, the ring stays. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * CQ_FACTOR;
		rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
	}
	if (rc < 0) {
		explain(rc, err, errlen);
		free(u);
		return rc;
	}
	if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
		snprintf(err, errlen, "io_uring lacks NODROP or EXT_ARG (kernel "
			 "older than 5.11)");
		io_uring_queue_exit(&u->ring);
		free(u);
		return -ENOSYS;
	}
	/* uring_close posts no completion on success. */
	if (!(p.features & IORING_FEAT_CQE_SKIP)) {
		snprintf(err, errlen, "io_uring lacks CQE_SKIP (kernel older "
			 "than 5.17)");
		io_uring_queue_exit(&u->ring);
		free(u);
		return -ENOSYS;
	}
	probe = io_uring_get_probe_ring(&u->ring);
	if (!probe) {
		snprintf(err, errlen, "io_uring probe failed");
		io_uring_queue_exit(&u->ring);
		free(u);
		return -ENOSYS;
	}
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++) {
		if (!io_uring_opcode_supported(probe, needed[i])) {
			snprintf(err, errlen, "io_uring lacks the %s operation",
				 names[i]);
			io_uring_free_probe(probe);
			io_uring_queue_exit(&u->ring);
			free(u);
			return -ENOSYS;
		}
	}
	io_uring_free_probe(probe);
	rc = br_setup(u);
	if (rc < 0) {
		snprintf(err, errlen, "io_uring provided-buffer ring: %s",
			 strerror(-rc));
		io_uring_queue_exit(&u->ring);
		free(u);
		return rc == -EINVAL ? -ENOSYS : rc;
	}
	aring_setup(w, u);
	u->poll_first = accept_poll_first_ok();
	u->acc = calloc(w->nlisteners ? w->nlisteners : 1, sizeof(*u->acc));
	u->peek.q = calloc(p.cq_entries, sizeof(*u->peek.q));
	u->later.q = calloc(p.cq_entries, sizeof(*u->later.q));
	u->peek.mask = u->later.mask = p.cq_entries - 1;
	BUG_ON(!u->acc || !u->peek.q || !u->later.q);
	io_uring_register_ring_fd(&u->ring);
	w->io_priv = u;
	return 0;
}

static void uring_fini(struct worker *w)
{
	struct uring *u = w->io_priv;

	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	if (u->aring_on) {
		io_uring_queue_exit(&u->aring);
		close(u->wake_fd);
	}
	if (u->br)
		munmap(u->br, u->br_size);
	for (uint32_t i = 0; i < BR_ENTRIES; i++)
		free(u->bufs[i]);
	free(u->acc);
	held_drop(w, &u->peek);
	held_drop(w, &u->later);
	free(u->peek.q);
	free(u->later.q);
	free(u);
	w->io_priv = NULL;
}

/* Accept i of listener li; its index rides in the user data's gen. */
static void accept_arm(struct worker *w, struct uaccept *a, unsigned li,
		       unsigned i)
{
	struct io_uring_sqe *sqe = acc_sqe(w);

	a->len[i] = sizeof(a->addr[i]);
	io_uring_prep_accept(sqe, w->listeners[li].fd,
			     (struct sockaddr *)&a->addr[i], &a->len[i],
			     SOCK_CLOEXEC);
	/*
	 * The kernel sets up a socket and its file before it looks at the
	 * queue, and tears them down again when the queue is empty: an
	 * accept tried at once on an empty queue cost as much as one that
	 * succeeds (twice epoll's accept time per connection, perf). Poll
	 * first, but where the last completion said more were queued.
	 */
	if (((struct uring *)w->io_priv)->poll_first && !a->nonempty)
		sqe->ioprio |= IORING_ACCEPT_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, io_ud(IO_ACCEPT, 0, i, li));
	a->busy |= UINT32_C(1) << i;
}

static void uring_accept(struct worker *w, unsigned li)
{
	struct uring *u = w->io_priv;
	struct uaccept *a = &u->acc[li];

	a->stopping = false;
	for (unsigned i = 0; i < ACCEPT_DEPTH; i++)
		if (!(a->busy & UINT32_C(1) << i))
			accept_arm(w, a, li, i);
	w->listeners[li].armed = true;
}

static void uring_accept_stop(struct worker *w, unsigned li)
{
	struct uring *u = w->io_priv;
	struct io_uring_sqe *sqe = acc_sqe(w);

	u->acc[li].stopping = true;
	io_uring_prep_cancel_fd(sqe, w->listeners[li].fd, IORING_ASYNC_CANCEL_ALL);
	/* Its own completion carries nothing we need. */
	io_uring_sqe_set_data64(sqe, io_ud(IO_IGNORE, 0, 0, 0));
}

/*
 * An error ends accepting on the listener, as it would end a multishot
 * accept: the others are cancelled, and once none is in flight the worker
 * hears that accepting ended.
 */
static void accept_done(struct worker *w, unsigned li, unsigned i, int res)
{
	struct uring *u = w->io_priv;
	struct uaccept *a = &u->acc[li];

	a->busy &= ~(UINT32_C(1) << i);
	if (res >= 0) {
		worker_accepted(w, li, res, (struct sockaddr *)&a->addr[i],
				a->len[i]);
		if (!a->stopping) {
			accept_arm(w, a, li, i);
			return;
		}
	} else if (res != -ECANCELED && res != -EINVAL) {
		worker_accept_failed(w, li, res);
		if (!a->stopping && a->busy)
			uring_accept_stop(w, li);
		a->stopping = true;
	}
	if (a->busy == 0)
		worker_accept_ended(w, li);
}

/*
 * later skips the receive attempt that would fail with EAGAIN before the
 * poll is armed (perf: ~3 % of the CPU of keep-alive HTTP-01 answers).
 */
static void uring_recv(struct worker *w, struct io_conn *c, enum side s,
		       void *buf, size_t len, bool later)
{
	struct io_uring_sqe *sqe = conn_sqe(w, c, IO_RECV, s);

	io_uring_prep_recv(sqe, c->fd[s], buf, buf ? len : RELAY_BUF, 0);
	if (later)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	if (!buf) {
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BGID;
	}
}

static void uring_send(struct worker *w, struct io_conn *c, enum side s,
		       const void *buf, size_t len)
{
	io_uring_prep_send(conn_sqe(w, c, IO_SEND, s), c->fd[s], buf, len,
			   MSG_NOSIGNAL);
}

static void uring_connect(struct worker *w, struct io_conn *c,
			  const struct sockaddr *sa, socklen_t len)
{
	io_uring_prep_connect(conn_sqe(w, c, IO_CONNECT, SIDE_UPSTREAM),
			      c->fd[SIDE_UPSTREAM], sa, len);
}

/* A poll request looks at the socket when armed: a yield needs nothing more. */
static void uring_poll(struct worker *w, struct io_conn *c, enum side s,
		       bool out, bool yield)
{
	(void)yield;
	io_uring_prep_poll_add(conn_sqe(w, c, out ? IO_POLL_OUT : IO_POLL_IN, s),
			       c->fd[s], out ? POLLOUT : POLLIN);
}

/*
 * The kernel never runs IORING_OP_SHUTDOWN in place: it always goes to an
 * io-wq thread, which then competes with this one for the core (seen under
 * a new-connection flood: a worker thread woken per batch of half-closes,
 * running for milliseconds). shutdown(2) on a TCP socket does not block, so
 * it runs here, and a NOP, completed within the submit, carries its
 * completion; nothing reads a shutdown's result.
 */
static void uring_shutdown_wr(struct worker *w, struct io_conn *c,
			      enum side s)
{
	(void)shutdown(c->fd[s], SHUT_WR);
	io_uring_prep_nop(conn_sqe(w, c, IO_SHUTDOWN, s));
}

/*
 * Cancels by user_data, one request each: c->pend says which are in
 * flight. Cancelling by descriptor would be one SQE, but the kernel then
 * walks every bucket of the ring's poll table per cancel (profiled: 4 % of
 * the proxy's CPU on new :443 connections), where a user_data lookup is
 * one hashed bucket. The last SQE carries IO_CANCEL, the one completion
 * the connection counts; the others' completions are ignored.
 */
static void uring_cancel(struct worker *w, struct io_conn *c, enum side s)
{
	const struct io_pending *p = &c->pend[s];
	enum io_op ops[3];
	unsigned n = 0;

	if (p->recv)
		ops[n++] = (enum io_op)p->recv;
	if (p->send)
		ops[n++] = (enum io_op)p->send;
	if (p->connect)
		ops[n++] = IO_CONNECT;
	if (n == 0) {
		io_uring_prep_nop(conn_sqe(w, c, IO_CANCEL, s));
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = get_sqe(w);

		io_uring_prep_cancel64(sqe, io_ud(ops[i], s, c->gen, c->slot), 0);
		io_uring_sqe_set_data64(sqe, i + 1 == n
					? io_ud(IO_CANCEL, s, c->gen, c->slot)
					: io_ud(IO_IGNORE, 0, 0, 0));
	}
}

/*
 * Queued behind the turn's sends, so run after them in the same submission.
 * The close of a socket never blocks (sockets have no flush), so it runs
 * in place, not on an io-wq thread; a close failing (it cannot: the
 * descriptor is ours) is the only completion posted.
 */
static void uring_close(struct worker *w, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_close(sqe, fd);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, io_ud(IO_IGNORE, 0, 0, 0));
}

/* The pool buffer a completion brought, if any, now the caller's. */
static void *cqe_buf(struct worker *w, const struct io_uring_cqe *cqe)
{
	struct uring *u = w->io_priv;
	void *buf;

	if (io_ud_op(io_uring_cqe_get_data64(cqe)) != IO_RECV)
		return NULL;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		if (cqe->res == -ENOBUFS)
			u->nobufs = true;
		return NULL;
	}
	buf = br_take(u, cqe->flags);
	if (cqe->res <= 0) {
		bufpool_put(w, buf);
		buf = NULL;
	}
	return buf;
}

static void deliver(struct worker *w, uint64_t ud, int res, void *buf)
{
	enum io_op op = io_ud_op(ud);
	uint32_t slot = io_ud_slot(ud);
	struct io_conn *c;

	if (op == IO_IGNORE)
		return;
	if (op == IO_ACCEPT) {
		if (slot < w->nlisteners && io_ud_gen(ud) < ACCEPT_DEPTH)
			accept_done(w, slot, io_ud_gen(ud), res);
		return;
	}
	c = io_conn_at(w, slot, io_ud_gen(ud));
	if (!c) {
		pstats_add(w->stats, PS_STALE_CQE, 1);
		bufpool_put(w, buf);
		return;
	}
	conn_complete(w, c, op, io_ud_side(ud), res, buf);
}

/* Whether an accept's completion left others queued on its listener. */
static void acc_note(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct uring *u = w->io_priv;

	if (io_ud_op(ud) == IO_ACCEPT && io_ud_slot(ud) < w->nlisteners)
		u->acc[io_ud_slot(ud)].nonempty =
			cqe->res >= 0 && (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY);
}

static void dispatch(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	if (ud == UD_WAKE) {
		((struct uring *)w->io_priv)->wake_armed = false;
		return;
	}
	acc_note(w, cqe);
	deliver(w, ud, cqe->res, cqe_buf(w, cqe));
}

/*
 * Delivers what the accept ring completed; returns how many. On the
 * connections' ring an accept's completion would run behind every relay
 * receive the kernel deferred before it (hundreds under bulk transfers,
 * each copying up to a buffer). The accept ring's completions are posted
 * by task work the kernel runs on every return from a system call, so the
 * loop finds them here at the start of a turn and between each batch of
 * the connections' deferred work; looking costs no system call.
 */
static unsigned acc_take(struct worker *w, struct uring *u)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	if (!u->aring_on)
		return 0;
	/* Re-armed accepts go in now, their completions with the next call. */
	ring_flush(&u->aring);
	io_uring_for_each_cqe(&u->aring, head, cqe) {
		acc_note(w, cqe);
		deliver(w, io_uring_cqe_get_data64(cqe), cqe->res, NULL);
		n++;
	}
	io_uring_cq_advance(&u->aring, n);
	return n;
}

/*
 * Whether the connections' ring may wait: an accept must end that wait, so
 * a read of the accept ring's eventfd is armed on it, and the eventfd,
 * silent while the worker runs (the loop looks at the accept ring between
 * batches anyway), speaks until the wait ends (acc_quiet). False when the
 * accept ring already has work: no wait then.
 */
static bool acc_listen(struct worker *w, struct uring *u)
{
	struct io_uring_sqe *sqe;

	if (!u->aring_on)
		return true;
	/* No listener goes unwatched through the wait. */
	ring_flush(&u->aring);
	if (!u->wake_armed) {
		sqe = get_sqe(w);
		io_uring_prep_read(sqe, u->wake_fd, &u->wake_val,
				   sizeof(u->wake_val), 0);
		io_uring_sqe_set_data64(sqe, UD_WAKE);
		u->wake_armed = true;
	}
	(void)io_uring_cq_eventfd_toggle(&u->aring, true);
	/*
	 * A completion posted before the eventfd spoke raised no signal.
	 * One whose task work is still pending runs in the wait, which
	 * signals it then.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !io_uring_cq_ready(&u->aring);
}

static void acc_quiet(struct uring *u)
{
	if (u->aring_on)
		(void)io_uring_cq_eventfd_toggle(&u->aring, false);
}

/* Copies cqe off the CQ into h; false when h is full. */
static bool hold(struct worker *w, struct held *h, const struct io_uring_cqe *cqe)
{
	struct held_cqe *e;

	if (h->len == h->mask + 1)
		return false;
	e = &h->q[(h->head + h->len++) & h->mask];
	e->ud = io_uring_cqe_get_data64(cqe);
	e->res = cqe->res;
	e->buf = cqe_buf(w, cqe);
	return true;
}

/* Delivers up to PASS_BUDGET of h's completions, oldest first. */
static void held_run(struct worker *w, struct held *h)
{
	for (unsigned n = 0; n < PASS_BUDGET && h->len; n++) {
		struct held_cqe e = h->q[h->head];

		h->head = (h->head + 1) & h->mask;
		h->len--;
		deliver(w, e.ud, e.res, e.buf);
	}
}

/*
 * Runs the ring's deferred completions, up to TW_BATCH, without waiting.
 * Since Linux 6.13 a DEFER_TASKRUN ring runs only max(20, min_complete) of
 * them per wait: asked for one completion, a turn under a flood would take
 * in some 40 of the hundreds pending, and a validator's accept would wait
 * several turns behind relay completions before it is even seen. Each
 * get_events runs up to those 20, and one that brought fewer found the
 * rest done. Asking a wait for TW_BATCH with a zero timeout instead costs
 * the trip through the scheduler that every timed wait takes: measured,
 * 15 % of the HTTP-01 keep-alive throughput per core.
 */
static unsigned reap(struct worker *w, struct uring *u)
{
	unsigned n = io_uring_cq_ready(&u->ring), accepted = 0;

	for (unsigned i = 0; i < TW_BATCH / TW_PER_ENTER; i++) {
		unsigned before = n;

		accepted += acc_take(w, u);
		if (io_uring_get_events(&u->ring) < 0)
			break;
		n = io_uring_cq_ready(&u->ring);
		if (n - before < TW_PER_ENTER)
			break;
	}
	return accepted + acc_take(w, u);
}

/* Accepts go first, with the young connections at the peek (conn_rank). */
static enum conn_rank cqe_rank(struct worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum io_op op = io_ud_op(ud);
	struct io_conn *c;

	/* An ignored completion costs nothing to deliver. */
	if (op == IO_ACCEPT || op == IO_IGNORE)
		return RANK_FIRST;
	c = io_conn_at(w, io_ud_slot(ud), io_ud_gen(ud));
	return c ? conn_rank(w, c) : RANK_LATER;
}

/*
 * A turn in passes over its completions, by rank (conn_rank). First,
 * accepts and young connections at the peek; their requests (an answer,
 * the next accepts and receives) go to the kernel at once, and what that
 * completes at once (a receive whose bytes were already there) is taken
 * in the same pass, up to URGENT_ROUNDS times: a validator's connection
 * goes from accepted to answered within one turn. Then connections at the
 * peek for a second or more (a slow flood's thousands of bytes arriving
 * together), then the relays' completions and what those start.
 *
 * Those two passes deliver at most PASS_BUDGET completions a turn each;
 * the rest are copied off the CQ and carried, in order, to the next turn,
 * which then only polls the ring. A turn so stays short whatever arrives
 * at once, and a validator that connects during it waits for that much and
 * no more. A connection's rank only grows (except into closing, whose
 * completions may come in any order), so none of its completions can be
 * delivered ahead of one it had earlier. Should a FIFO fill, the scan
 * stops there and what follows stays on the CQ for the next turn.
 */
static void uring_wait(struct worker *w, unsigned timeout_ms)
{
	struct uring *u = w->io_priv;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0, mask = u->ring.cq.ring_mask, accepted;
	bool full = false;
	int rc;

	br_stock(w, u);
	if (!(u->peek.len | u->later.len) && acc_listen(w, u)) {
		rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts,
						      NULL);
		acc_quiet(u);
		w->now_ms = clock_mono_ms();
		/* A wait that brought few completions left none behind. */
		if (io_uring_cq_ready(&u->ring) >= REAP_AFTER)
			accepted = reap(w, u);
		else
			accepted = acc_take(w, u);
	} else {
		/*
		 * Work carried over, or accepts waiting: look at the ring,
		 * never wait on it. The look must run the ring's deferred
		 * work (reap): a plain submit leaves it queued, and under a
		 * steady stream of accepts every turn would take this branch
		 * and the connections' receives, resets among them, would
		 * wait for the first turn no client connected in.
		 */
		acc_quiet(u);
		rc = io_uring_submit(&u->ring);
		w->now_ms = clock_mono_ms();
		accepted = reap(w, u);
	}
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY &&
	    rc != -EAGAIN) {
		static __thread struct log_limit lim;
		log_ratelimited(&lim, LOG_LVL_ERR, "proxy: io_uring wait: %s",
				strerror(-rc));
		/* Never spin on a ring that keeps failing. */
		usleep(10000);
		w->now_ms = clock_mono_ms();
	}
	/* The CQ head stays put until the scan is done: seen counts from it. */
	head = *u->ring.cq.khead;
	for (unsigned round = 0;; round++) {
		unsigned n = io_uring_cq_ready(&u->ring), urgent = accepted;

		for (; seen < n; seen++) {
			cqe = &u->ring.cq.cqes[(head + seen) & mask];
			switch (cqe_rank(w, cqe)) {
			case RANK_FIRST:
				dispatch(w, cqe);
				urgent++;
				continue;
			case RANK_PEEK:
				full = !hold(w, &u->peek, cqe);
				break;
			case RANK_LATER:
				full = !hold(w, &u->later, cqe);
				break;
			}
			if (full)
				break;
		}
		/* With nothing to go ahead of, the next wait submits. */
		if (full || !urgent || !(u->peek.len | u->later.len) ||
		    round == URGENT_ROUNDS)
			break;
		io_uring_submit(&u->ring);
		accepted = reap(w, u);
	}
	io_uring_cq_advance(&u->ring, seen);
	if (u->peek.len | u->later.len)
		ring_flush(&u->ring);
	held_run(w, &u->peek);
	held_run(w, &u->later);
}

static void uring_submit(struct worker *w)
{
	ring_flush(&((struct uring *)w->io_priv)->ring);
}

const struct io_ops io_uring_ops = {
	.name = "io_uring",
	.init = uring_init,
	.fini = uring_fini,
	.accept = uring_accept,
	.accept_stop = uring_accept_stop,
	.recv = uring_recv,
	.send = uring_send,
	.connect = uring_connect,
	.shutdown_wr = uring_shutdown_wr,
	.poll = uring_poll,
	.cancel = uring_cancel,
	.wait = uring_wait,
	.submit = uring_submit,
	.close = uring_close,
};

/*
 * The start-up probe (io_backend = auto or io_uring): exactly the set-up a
 * worker does, ring flags, their EINVAL retry, features and every
 * operation above, on a ring that is closed again at once.
 */
int uring_probe(char *why, size_t len)
{
	struct worker *w = calloc(1, sizeof(*w));
	int rc;

	BUG_ON(!w);
	rc = uring_init(w, why, len);
	if (rc == 0)
		uring_fini(w);
	free(w);
	return rc;
}
