/*
 * The I/O seam: all that the connection code and an I/O backend (uring.c,
 * epoll.c) know of each other.
 *
 * The connection code is written once against struct io_ops, a
 * completion-style interface: every operation it starts ends in exactly
 * one call to conn_complete() (or worker_accepted() for accepts), with a
 * result in the cqe->res convention (bytes, 0, or -errno). Both backends
 * honour that contract, including for cancelled operations, which complete
 * with -ECANCELED. A backend sees a connection only as struct io_conn.
 */
#ifndef EDGE_IO_H
#define EDGE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct worker;

enum io_op {
	IO_ACCEPT = 1,
	IO_RECV = 2,
	IO_SEND = 3,
	IO_CONNECT = 4,
	IO_SHUTDOWN = 5,
	IO_CANCEL = 6,
	/*
	 * A request no connection counts on (stopping an accept, each cancel
	 * but the last of a socket's): its completion is dropped unseen.
	 */
	IO_IGNORE = 7,
	IO_POLL_IN = 8,		/* readiness for splice(2), see io_ops.poll */
	IO_POLL_OUT = 9,
};

enum side {
	SIDE_CLIENT = 0,
	SIDE_UPSTREAM = 1,
};

/*
 * A request's user data: op:8 | side:1 | gen:IO_GEN_BITS | slot:32 (for
 * accepts, slot is the listener index and gen the backend's own). A
 * connection slot's generation
 * goes up by one, modulo 2^IO_GEN_BITS, every time the slot is reused, so
 * that a completion of an earlier life of the slot is known to be stale.
 */
#define IO_GEN_BITS 23
#define IO_GEN_MASK ((UINT32_C(1) << IO_GEN_BITS) - 1)
_Static_assert(8 + 1 + IO_GEN_BITS + 32 == 64, "user data is 64 bits");

static inline uint64_t io_ud(enum io_op op, enum side s, uint32_t gen,
			     uint32_t slot)
{
	return (uint64_t)op << (33 + IO_GEN_BITS) |
	       (uint64_t)(s & 1) << (32 + IO_GEN_BITS) |
	       (uint64_t)(gen & IO_GEN_MASK) << 32 | slot;
}

static inline enum io_op io_ud_op(uint64_t ud)
{
	return (enum io_op)(ud >> (33 + IO_GEN_BITS));
}

static inline enum side io_ud_side(uint64_t ud)
{
	return (enum side)((ud >> (32 + IO_GEN_BITS)) & 1);
}

static inline uint32_t io_ud_gen(uint64_t ud)
{
	return (uint32_t)(ud >> 32) & IO_GEN_MASK;
}

static inline uint32_t io_ud_slot(uint64_t ud)
{
	return (uint32_t)ud;
}

/*
 * What one socket of a connection has in flight: at most one request in
 * its receive slot (a receive, or a poll for input), one in its send slot
 * (a send, or a poll for output), and on the upstream socket a connect.
 * The connection code keeps it; a backend reads it to cancel exactly those.
 */
struct io_pending {
	uint8_t recv;		/* IO_RECV, IO_POLL_IN, or 0 */
	uint8_t send;		/* IO_SEND, IO_POLL_OUT, or 0 */
	bool connect;
};

/* A connection as a backend sees it; only the connection code writes it. */
struct io_conn {
	uint32_t slot;
	uint32_t gen;		/* IO_GEN_BITS wide */
	int fd[2];		/* by enum side; -1 when none */
	struct io_pending pend[2];
};

struct io_ops {
	const char *name;
	/* Sets up the backend for w; -errno and a one-line reason on failure. */
	int (*init)(struct worker *w, char *err, size_t errlen);
	void (*fini)(struct worker *w);
	/*
	 * Arms accepting on listener li until disarmed or an error; every
	 * connection accepted comes with its client's address.
	 */
	void (*accept)(struct worker *w, unsigned li);
	/*
	 * Receives into buf; with buf NULL, into a relay buffer the backend
	 * takes from the worker's pool only once bytes have arrived (io_uring:
	 * a provided-buffer ring), so a connection waiting for bytes holds no
	 * buffer. The completion hands that buffer over when res > 0; res
	 * -ENOBUFS means none was free and the caller receives into its own.
	 * later: nothing is expected yet, so the backend may wait for input
	 * before the first attempt (a hint: io_uring's POLL_FIRST).
	 */
	void (*recv)(struct worker *w, struct io_conn *c, enum side s,
		     void *buf, size_t len, bool later);
	void (*send)(struct worker *w, struct io_conn *c, enum side s,
		     const void *buf, size_t len);
	void (*connect)(struct worker *w, struct io_conn *c,
			const struct sockaddr *sa, socklen_t len);
	void (*shutdown_wr)(struct worker *w, struct io_conn *c, enum side s);
	/*
	 * Completes once socket s is readable (out false: IO_POLL_IN) or
	 * writable (out true: IO_POLL_OUT), res > 0, or with -errno. Bulk
	 * relays wait with it and then move bytes with splice(2) themselves:
	 * it takes the socket's receive (or send) slot for that time. The
	 * caller has just seen EAGAIN on the socket, unless yield: then it
	 * stopped early to let other connections run and the socket may be
	 * ready already (an edge-triggered backend must not wait for an edge).
	 */
	void (*poll)(struct worker *w, struct io_conn *c, enum side s, bool out,
		     bool yield);
	/*
	 * Ends every request c->pend[s] names on socket s; completes once,
	 * as IO_CANCEL.
	 */
	void (*cancel)(struct worker *w, struct io_conn *c, enum side s);
	/* Stops accepting on listener li; worker_accept_ended() follows. */
	void (*accept_stop)(struct worker *w, unsigned li);
	/* Submits what is queued, waits up to timeout_ms, runs completions. */
	void (*wait)(struct worker *w, unsigned timeout_ms);
	/*
	 * Hands the kernel what is queued, without waiting; nothing is run.
	 * The worker calls it before it gives up the CPU (worker_yield).
	 */
	void (*submit)(struct worker *w);
	/*
	 * Closes fd after every request queued before it has gone to the
	 * kernel; nothing completes. Only worker.c calls it, for a batch.
	 */
	void (*close)(struct worker *w, int fd);
};

extern const struct io_ops io_uring_ops;
extern const struct io_ops io_epoll_ops;

/*
 * Whether io_uring works here: sets up a ring as uring.c does and probes
 * every operation it needs. 0, or -errno (-ENOSYS for a missing operation
 * or feature) with a one-line reason in why.
 */
int uring_probe(char *why, size_t len);

/*
 * Connections a backend may have accepted, per listener, and not yet
 * handed over: descriptors open that no slot holds yet.
 */
#define IO_ACCEPTED_PENDING_MAX 32

/* ---- what a backend calls ---------------------------------------------- */

/* fd came with the client's address peer (len bytes), as accept gave it. */
void worker_accepted(struct worker *w, unsigned li, int fd,
		     const struct sockaddr *peer, socklen_t len);
void worker_accept_failed(struct worker *w, unsigned li, int err);
/*
 * A listener's accepting ended (stopped, or on an error): re-armed unless
 * draining, after a back-off when it failed.
 */
void worker_accept_ended(struct worker *w, unsigned li);

/*
 * The connection living in slot with generation gen; NULL when the slot
 * is free or lives another life (the completion is stale).
 */
struct io_conn *io_conn_at(struct worker *w, uint32_t slot, uint32_t gen);

/*
 * Where c's completions go in a loop turn, in passes:
 *   RANK_FIRST  at the peek (being read or answered, as every validator's
 *               connection is) for less than PEEK_YOUNG_MS since accept,
 *               or closing (its slot is what a new connection needs when
 *               a flood churns);
 *   RANK_PEEK   at the peek longer: slow clients, whose bytes a flood may
 *               bring by the thousand in one turn, after the young ones;
 *   RANK_LATER  connecting, relaying or lingering after an answer.
 * A connection's rank only grows, except into closing, whose completions
 * only count down to its release and may come in any order. So a backend
 * that delivers a turn's completions rank by rank still delivers every
 * connection's completions in an order it can use.
 */
enum conn_rank { RANK_FIRST, RANK_PEEK, RANK_LATER };
#define PEEK_YOUNG_MS 1000
enum conn_rank conn_rank(const struct worker *w, const struct io_conn *c);

/*
 * Delivers the completion of one of c's requests. buf: the pool buffer a
 * pooled receive brought (res > 0), else NULL. Returns whether c still has
 * requests in flight: when it has none, its sockets may be closed (and
 * their numbers reused) at any time.
 */
bool conn_complete(struct worker *w, struct io_conn *c, enum io_op op,
		   enum side s, int res, void *buf);

#endif
