/*
 * The io_uring backend: one ring per worker, multishot accept, one
 * submission per loop turn (io_uring_submit_and_wait_timeout), and all
 * completions of a turn handled before the ring's CQ head moves.
 *
 * user_data packs op:8 | side:1 | gen:23 | slot:32 (for accepts, slot is
 * the listener index). A completion whose generation no longer matches its
 * slot is stale: counted and dropped. With inflight accounting in conn.c
 * that should never happen; the check keeps a bug from becoming a
 * use-after-free.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge.h"
#include "log.h"
#include "worker.h"

#define RING_ENTRIES 4096
#define CQ_FACTOR 4

struct uring {
	struct io_uring ring;
};

static inline uint64_t ud_pack(enum io_op op, enum side s, uint32_t gen,
			       uint32_t slot)
{
	return (uint64_t)op << 56 | (uint64_t)(s & 1) << 55 |
	       (uint64_t)(gen & 0x7fffff) << 32 | slot;
}

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct uring *u = w->io_priv;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	while (!sqe) {
		/* The SQ is full: hand it to the kernel and take a fresh one. */
		int rc = io_uring_submit(&u->ring);
		BUG_ON(rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static struct io_uring_sqe *conn_sqe(struct worker *w, struct conn *c,
				     enum io_op op, enum side s)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_sqe_set_data64(sqe, ud_pack(op, s, c->gen, c->slot));
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

static int uring_init(struct worker *w, char *err, size_t errlen)
{
	static const int needed[] = {
		IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
		IORING_OP_CONNECT, IORING_OP_SHUTDOWN, IORING_OP_ASYNC_CANCEL,
		IORING_OP_TIMEOUT,
		/*
		 * Not used, but it arrived in 5.19 with multishot accept and
		 * cancel by descriptor, which the probe cannot see directly:
		 * without them accepts would fail at once and be re-armed
		 * forever. Its absence sends auto to epoll.
		 */
		IORING_OP_SOCKET,
	};
	static const char *const names[] = {
		"accept", "recv", "send", "connect", "shutdown", "async_cancel",
		"timeout", "socket (5.19: multishot accept, cancel by fd)",
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
	free(u);
	w->io_priv = NULL;
}

static void uring_accept(struct worker *w, unsigned li)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_multishot_accept(sqe, w->listeners[li].fd, NULL, NULL,
				       SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_pack(IO_ACCEPT, 0, 0, li));
	w->listeners[li].armed = true;
}

static void uring_accept_stop(struct worker *w, unsigned li)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_cancel_fd(sqe, w->listeners[li].fd, IORING_ASYNC_CANCEL_ALL);
	/* Its own completion carries nothing we need. */
	io_uring_sqe_set_data64(sqe, ud_pack(IO_TICK, 0, 0, 0));
}

static void uring_recv(struct worker *w, struct conn *c, enum side s,
		       void *buf, size_t len)
{
	io_uring_prep_recv(conn_sqe(w, c, IO_RECV, s), c->fd[s], buf, len, 0);
}

static void uring_send(struct worker *w, struct conn *c, enum side s,
		       const void *buf, size_t len)
{
	io_uring_prep_send(conn_sqe(w, c, IO_SEND, s), c->fd[s], buf, len,
			   MSG_NOSIGNAL);
}

static void uring_connect(struct worker *w, struct conn *c,
			  const struct sockaddr *sa, socklen_t len)
{
	io_uring_prep_connect(conn_sqe(w, c, IO_CONNECT, SIDE_UPSTREAM),
			      c->fd[SIDE_UPSTREAM], sa, len);
}

static void uring_shutdown_wr(struct worker *w, struct conn *c, enum side s)
{
	io_uring_prep_shutdown(conn_sqe(w, c, IO_SHUTDOWN, s), c->fd[s], SHUT_WR);
}

static void uring_cancel(struct worker *w, struct conn *c, enum side s)
{
	io_uring_prep_cancel_fd(conn_sqe(w, c, IO_CANCEL, s), c->fd[s],
				IORING_ASYNC_CANCEL_ALL);
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum io_op op = (enum io_op)(ud >> 56);
	enum side s = (enum side)((ud >> 55) & 1);
	uint32_t gen = (uint32_t)(ud >> 32) & 0x7fffff;
	uint32_t slot = (uint32_t)ud;
	struct conn *c;

	if (op == IO_TICK)
		return;
	if (op == IO_ACCEPT) {
		if (slot >= w->nlisteners)
			return;
		if (cqe->res >= 0) {
			worker_accepted(w, slot, cqe->res);
		} else if (cqe->res != -ECANCELED && cqe->res != -EINVAL) {
			worker_accept_failed(w, slot, cqe->res);
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			worker_accept_ended(w, slot);
		return;
	}
	if (slot >= w->nconns_cap) {
		pstats_add(w->stats, PS_STALE_CQE, 1);
		return;
	}
	c = &w->conns[slot];
	if (c->gen != gen || c->state == ST_FREE) {
		pstats_add(w->stats, PS_STALE_CQE, 1);
		return;
	}
	conn_complete(w, c, op, s, cqe->res);
}

static void uring_wait(struct worker *w, unsigned timeout_ms)
{
	struct uring *u = w->io_priv;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int rc;

	rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY &&
	    rc != -EAGAIN) {
		static __thread struct log_limit lim;
		log_ratelimited(&lim, LOG_LVL_ERR, "proxy: io_uring wait: %s",
				strerror(-rc));
		/* Never spin on a ring that keeps failing. */
		usleep(10000);
	}
	w->now_ms = clock_mono_ms();
	io_uring_for_each_cqe(&u->ring, head, cqe) {
		dispatch(w, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
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
	.cancel = uring_cancel,
	.wait = uring_wait,
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
