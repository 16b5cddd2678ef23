/*
 * A proxy worker: one thread, one I/O backend instance, its own listeners
 * (SO_REUSEPORT) and its own connections. Workers share nothing mutable
 * but the live config pointer (read-only snapshots, see proxy.c) and the
 * read-only token store mapping.
 *
 * The I/O seam: the connection state machine (conn.c) is written once
 * against struct io_ops, a completion-style interface: every operation it
 * starts ends in exactly one call to conn_complete() (or worker_accepted()
 * for accepts), with a result in the cqe->res convention (bytes, 0, or
 * -errno). A backend is io_uring (uring.c) or readiness-based epoll; both
 * must honour that contract, including for cancelled operations, which
 * complete with -ECANCELED.
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
#include "stats/pstats.h"
#include "store/store.h"

struct worker;
struct conn;
struct acme_tls;
struct acme_tls_ctx;

enum io_op {
	IO_ACCEPT = 1,
	IO_RECV = 2,
	IO_SEND = 3,
	IO_CONNECT = 4,
	IO_SHUTDOWN = 5,
	IO_CANCEL = 6,
	IO_TICK = 7,
	IO_POLL_IN = 8,		/* readiness for splice(2), see io_ops.poll */
	IO_POLL_OUT = 9,
};

enum side {
	SIDE_CLIENT = 0,
	SIDE_UPSTREAM = 1,
};

struct io_ops {
	const char *name;
	/* Sets up the backend for w; -errno and a one-line reason on failure. */
	int (*init)(struct worker *w, char *err, size_t errlen);
	void (*fini)(struct worker *w);
	/* Arms accepting on listener li until disarmed or an error. */
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
	void (*recv)(struct worker *w, struct conn *c, enum side s, void *buf,
		     size_t len, bool later);
	void (*send)(struct worker *w, struct conn *c, enum side s,
		     const void *buf, size_t len);
	void (*connect)(struct worker *w, struct conn *c,
			const struct sockaddr *sa, socklen_t len);
	void (*shutdown_wr)(struct worker *w, struct conn *c, enum side s);
	/*
	 * Completes once socket s is readable (out false: IO_POLL_IN) or
	 * writable (out true: IO_POLL_OUT), res > 0, or with -errno. Bulk
	 * relays wait with it and then move bytes with splice(2) themselves:
	 * it takes the socket's receive (or send) slot for that time. The
	 * caller has just seen EAGAIN on the socket, unless yield: then it
	 * stopped early to let other connections run and the socket may be
	 * ready already (an edge-triggered backend must not wait for an edge).
	 */
	void (*poll)(struct worker *w, struct conn *c, enum side s, bool out,
		     bool yield);
	/* Ends every operation in flight on one socket; completes once. */
	void (*cancel)(struct worker *w, struct conn *c, enum side s);
	/* Stops accepting on listener li; worker_accept_ended() follows. */
	void (*accept_stop)(struct worker *w, unsigned li);
	/* Submits what is queued, waits up to timeout_ms, runs completions. */
	void (*wait)(struct worker *w, unsigned timeout_ms);
};

extern const struct io_ops io_uring_ops;
extern const struct io_ops io_epoll_ops;

/*
 * Whether io_uring works here: sets up a ring as uring.c does and probes
 * every operation it needs. 0, or -errno (-ENOSYS for a missing operation
 * or feature) with a one-line reason in why.
 */
int uring_probe(char *why, size_t len);

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

/* A splice pipe and the bytes it holds at most (F_SETPIPE_SZ may refuse). */
struct splice_pipe {
	int fd[2];		/* read end, write end; -1 when none */
	uint32_t cap;
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

struct conn {
	uint32_t slot;
	uint32_t gen;		/* bumped on every reuse of the slot */
	uint8_t state;		/* enum conn_state */
	uint8_t listener;	/* index into the worker's listeners */
	bool https;
	bool trusted;		/* peer may send a PROXY header */
	bool proxy_done;	/* PROXY header consumed (or none expected) */
	bool keep_alive;	/* answer keeps the connection for more requests */
	bool said_all;		/* the client has no more bytes to send us */
	bool recv_busy[2];	/* one receive per socket at most */
	bool send_busy[2];	/* one send per socket at most */
	bool connect_busy;	/* a connect to an upstream in flight */
	bool recv_poll[2];	/* the receive slot holds a poll for input */
	bool send_poll[2];	/* the send slot holds a poll for output */
	bool nonblock;		/* both sockets O_NONBLOCK (splice needs it) */
	uint16_t inflight;	/* operations started, not yet completed */
	int fd[2];		/* client, upstream; -1 when none */
	struct sockaddr_storage peer;	/* the client (from PROXY when trusted) */
	struct sockaddr_storage local;	/* where the client connected to */

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

	/* Timer list membership: deadlines in a list are in arm order. */
	uint8_t tlist;
	uint64_t deadline_ms;
	struct conn *tprev, *tnext;
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
	struct sockaddr_storage addr;
};

struct timer_head {
	struct conn *head, *tail;
};

struct worker {
	unsigned id;
	pthread_t thread;
	const struct io_ops *io;
	void *io_priv;			/* the backend's state */
	struct proxy *px;
	struct live_cfg *lc;		/* this worker's current snapshot */
	struct pstats_worker *stats;
	struct acme_tls_ctx *tls_ctx;

	struct listener *listeners;
	unsigned nlisteners;
	bool accepting;

	struct conn *conns;		/* slab: max_connections + reserve */
	uint32_t nconns_cap;
	uint32_t reserve;		/* slots kept for eviction at the cap */
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t active;

	struct timer_head timers[TL_COUNT];
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
	atomic_bool stop;
	pthread_mutex_t start_mu;	/* workers report their ring setup */
	pthread_cond_t start_cv;
	unsigned started;
	unsigned start_failed;
};

/* Completion entry points, called by backends. */
void worker_accepted(struct worker *w, unsigned li, int fd);
void worker_accept_failed(struct worker *w, unsigned li, int err);
/* A listener's accept ended (multishot stopped); re-arms unless draining. */
void worker_accept_ended(struct worker *w, unsigned li);
void worker_tick(struct worker *w);
void worker_drain(struct worker *w, bool force);
/* buf: the pool buffer a pooled receive brought (res > 0), else NULL. */
void conn_complete(struct worker *w, struct conn *c, enum io_op op,
		   enum side s, int res, void *buf);

/* A relay buffer: the most recently freed one, else a new one. */
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
