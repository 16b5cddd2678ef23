/*
 * A proxy worker: one thread, one I/O backend instance, its own listeners
 * (SO_REUSEPORT) and its own connections. Workers share nothing mutable
 * but the live config pointer (read-only snapshots, see proxy.c) and the
 * read-only token store mapping.
 */
#ifndef EDGE_WORKER_H
#define EDGE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "common/cfg.h"
#include "common/edge.h"
#include "proxy/io.h"
#include "stats/pstats.h"
#include "store/store.h"

struct conn;
struct acme_tls_ctx;

enum timer_list {
	TL_NONE = 0,
	TL_PEEK,
	TL_CONNECT,
	TL_IDLE,
	TL_LINGER,
	TL_COUNT,
};

/* Bytes of a relay buffer: one receive's worth, one direction's backlog. */
#define RELAY_BUF 65536
/* Free relay buffers a worker keeps rather than giving back. */
#define POOL_KEEP 64
/* Bytes a splice pipe is asked to hold (F_SETPIPE_SZ); empty pipes kept. */
#define PIPE_BYTES (256 * 1024)
#define PIPE_KEEP 16
/* Released descriptors a worker holds before closing them (worker_close_fd). */
#define CLOSE_BATCH 64

/* A splice pipe and the bytes it holds at most (F_SETPIPE_SZ may refuse). */
struct splice_pipe {
	int fd[2];		/* read end, write end; -1 when none */
	uint32_t cap;
};

/*
 * A config snapshot shared by the workers, freed when the last reference
 * (workers' current pointers and connections choosing an upstream) goes.
 */
struct live_cfg {
	struct cfg *cfg;
	_Atomic uint32_t refs;
};

struct listener {
	int fd;
	bool https;
	bool armed;		/* accepting, or its accept not yet ended */
	bool paused;		/* ended on an error: re-armed at retry_at_ms */
	uint64_t retry_at_ms;
	struct sockaddr_storage addr;
};

/* A list of connections linked through one struct conn_link of each (conn.h). */
struct conn_list {
	struct conn *head, *tail;
};

struct worker {
	unsigned id;
	pthread_t thread;
	const struct io_ops *io;
	void *io_priv;			/* the backend's state */
	struct proxy *px;
	struct live_cfg *lc;		/* this worker's current snapshot */
	uint32_t slice_us;		/* sched_slice_us last applied */
	uint64_t yielded_us;		/* clock_mono_us() of the last yield */
	struct pstats_worker *stats;
	struct acme_tls_ctx *tls_ctx;

	struct listener *listeners;
	unsigned nlisteners;
	bool accepting;

	/* The slab: the descriptor room, and the reserve again closing (evict.h). */
	struct conn *conns;
	uint32_t nconns_cap;
	uint32_t max_conns;		/* relays at most */
	uint32_t reserve;		/* beside them, for connections at the peek */
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t active;		/* slots taken, closing ones included */
	uint32_t at_peek;		/* PEEK, ANSWER, ACME_TLS, LINGER */
	uint32_t relaying;		/* CONNECTING, RELAY */
	/* What the cap did since its last log line (evict.c). */
	uint32_t cap_evicted[2];	/* at the peek, relays */
	uint32_t cap_refused[2];	/* no free slot, no relay idle */
	uint64_t cap_logged_ms;

	/*
	 * Connections whose peek decided on something other than answering a
	 * challenge, waiting for it to be carried out, first in first out
	 * (linked through conn.later; one closing leaves the list).
	 */
	struct conn_list later;
	/* Bulk relays waiting for the next turn's splicing (relay.h). */
	struct conn_list splice_wait;
	uint64_t turn_spliced;		/* bytes spliced in this loop turn */
	bool splice_resuming;		/* relay_run_waiting() is running */

	struct conn_list timers[TL_COUNT];
	uint64_t now_ms;		/* monotonic, refreshed each loop turn */
	uint64_t stop_deadline_ms;	/* when draining: force-close after */
	bool draining;

	/* Free relay buffers, most recently used last (still in cache). */
	void *pool[POOL_KEEP];
	uint32_t npool;
	/* Empty splice pipes, and how many this worker has open in all. */
	struct splice_pipe pipes[PIPE_KEEP];
	uint32_t npipes;
	uint32_t pipes_open;
	bool no_splice;			/* splice(2) refused here: copy always */

	/* Released, closed before the next wait (worker_close_fd). */
	int closing[CLOSE_BATCH];
	uint32_t nclosing;

	uint8_t hello_scratch[16384];	/* ClientHello reassembly */
	struct store_entry entry;	/* lookups copy here */
};

/* The whole proxy process. */
struct proxy {
	const char *cfg_path;
	struct store *store;
	struct pstats *stats;
	_Atomic(struct live_cfg *) live;
	struct worker *workers;
	unsigned nworkers;
	uint32_t max_conns;		/* per worker: max_connections, budgeted */
	atomic_bool stop;
	pthread_mutex_t start_mu;	/* workers report their ring setup */
	pthread_cond_t start_cv;
	unsigned started;
	unsigned start_failed;
};

/* A relay buffer: the most recently freed one, else a new one. */
/*
 * A recognised challenge is answered in the loop turn that brought its
 * last byte. What else a peek decides (a relay to set up, an error to
 * answer, a miss, a refusal) is queued here and carried out after the
 * turn's completions, DEFER_BUDGET a turn, oldest first: so however many
 * connections a flood brings in one turn, a validator's answer is queued
 * to the kernel before any of their upstream connects, and a turn stays
 * short enough for the next validator's bytes to be read soon.
 */
#define DEFER_BUDGET 16
struct conn;
void worker_defer(struct worker *w, struct conn *c);
/* c leaves the queue (it closes, or its turn came). */
void worker_undefer(struct worker *w, struct conn *c);
/* Carries out up to DEFER_BUDGET queued decisions; whether some remain. */
bool worker_run_deferred(struct worker *w);

/*
 * A connection's socket, closed once the turn's answers have gone out. A
 * close of a loopback or LAN connection runs the TCP teardown (FIN, and
 * the peer's receive of it) in place; under a flood of short connections
 * (invalid ClientHellos, oversized heads) a turn may release many, and
 * closed on the spot they put that kernel work ahead of a validator's
 * answer queued later in the same turn. They are closed just before the
 * next wait, after what the turn queued (io_uring: close requests behind
 * the turn's sends, submitted by that wait). CLOSE_BATCH at most are held
 * (they are in the descriptor budget): one more closes those at once,
 * still after what was queued.
 */
void worker_close_fd(struct worker *w, int fd);

/* Descriptors the worker's connections may hold (evict.h). */
static inline uint32_t worker_fd_room(const struct worker *w)
{
	return 2 * w->max_conns + w->reserve;
}

static inline void *bufpool_get(struct worker *w)
{
	void *b = w->npool ? w->pool[--w->npool] : malloc(RELAY_BUF);

	BUG_ON(!b);
	return b;
}

static inline void bufpool_put(struct worker *w, void *b)
{
	if (!b)
		return;
	if (w->npool < POOL_KEEP)
		w->pool[w->npool++] = b;
	else
		free(b);
}

/* Runs a worker until the proxy stops and its connections have drained. */
void *worker_main(void *arg);

struct live_cfg *live_cfg_get(struct proxy *px);
void live_cfg_put(struct live_cfg *lc);

#endif
