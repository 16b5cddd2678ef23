/*
 * Proxy statistics in shared memory: the proxy process creates the file
 * (beside the token store, "<store path>.proxy") and its workers count into
 * it; the API maps it read-only to export /metrics and to tell, per
 * challenge, when it was last answered and to whom.
 *
 * Each worker owns one block and is its only writer, so counters are
 * relaxed atomic adds without contention; readers sum the blocks. Hit
 * records sit in a per-worker ring, each record under its own sequence
 * counter like the store's slots, so a reader never sees a torn record.
 *
 * The file belongs to the proxy's user, mode 0640, group the API's; the
 * API reads it only when that still holds (common/shmfile.h), and takes
 * the header's values once, at open: the proxy may rewrite them after.
 */
#ifndef EDGE_PSTATS_H
#define EDGE_PSTATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/shmfile.h"

#define PSTATS_LAYOUT_VERSION 4
#define PSTATS_WORKERS_MAX 256
#define PSTATS_HITS 128		/* hit records kept per worker */
#define PSTATS_KEY_MAX 255
#define PSTATS_PEER_MAX 63

/*
 * Every counter, with how /metrics names it: "metric|labels". Keep the
 * order: the numbering is the shared-memory layout (bump the layout
 * version when changing it).
 */
#define PSTATS_COUNTERS(X)                                                        \
	X(ACCEPTED_HTTP, "acmeedge_proxy_accepted_total|port=\"http\"")           \
	X(ACCEPTED_HTTPS, "acmeedge_proxy_accepted_total|port=\"https\"")         \
	X(ACTIVE, "acmeedge_proxy_connections_active|")                           \
	X(HTTP01_ANSWERED, "acmeedge_proxy_challenges_total|kind=\"http-01\",result=\"answered\"") \
	X(HTTP01_MISSED, "acmeedge_proxy_challenges_total|kind=\"http-01\",result=\"missed\"")     \
	X(TLSALPN01_ANSWERED, "acmeedge_proxy_challenges_total|kind=\"tls-alpn-01\",result=\"answered\"") \
	X(TLSALPN01_MISSED, "acmeedge_proxy_challenges_total|kind=\"tls-alpn-01\",result=\"missed\"")     \
	X(HANDSHAKE_OK, "acmeedge_proxy_tls_handshakes_total|result=\"ok\"")      \
	X(HANDSHAKE_FAILED, "acmeedge_proxy_tls_handshakes_total|result=\"failed\"") \
	X(RELAYED_HTTP, "acmeedge_proxy_relayed_total|port=\"http\"")             \
	X(RELAYED_HTTPS, "acmeedge_proxy_relayed_total|port=\"https\"")           \
	X(BYTES_TO_UPSTREAM, "acmeedge_proxy_bytes_total|direction=\"to_upstream\"") \
	X(BYTES_TO_CLIENT, "acmeedge_proxy_bytes_total|direction=\"to_client\"")  \
	X(CLOSE_BAD_REQUEST, "acmeedge_proxy_refused_total|reason=\"bad_request\"") \
	X(CLOSE_HEAD_TOO_LARGE, "acmeedge_proxy_refused_total|reason=\"head_too_large\"") \
	X(CLOSE_BAD_HELLO, "acmeedge_proxy_refused_total|reason=\"bad_hello\"")   \
	X(CLOSE_HELLO_TOO_LARGE, "acmeedge_proxy_refused_total|reason=\"hello_too_large\"") \
	X(CLOSE_PEEK_TIMEOUT, "acmeedge_proxy_refused_total|reason=\"peek_timeout\"") \
	X(CLOSE_PROXY_UNTRUSTED, "acmeedge_proxy_refused_total|reason=\"proxy_header_untrusted\"") \
	X(CLOSE_PROXY_BAD, "acmeedge_proxy_refused_total|reason=\"proxy_header_bad\"") \
	X(CLOSE_NO_ROUTE, "acmeedge_proxy_refused_total|reason=\"no_route\"")     \
	X(CLOSE_TLS_REJECT, "acmeedge_proxy_refused_total|reason=\"acme_tls_rejected\"") \
	X(CLOSE_EVICTED, "acmeedge_proxy_refused_total|reason=\"evicted_at_cap\"") \
	X(CLOSE_OVER_CAP, "acmeedge_proxy_refused_total|reason=\"over_cap\"")     \
	X(CLOSE_IDLE_TIMEOUT, "acmeedge_proxy_closed_total|reason=\"idle_timeout\"") \
	X(CLOSE_RESET, "acmeedge_proxy_closed_total|reason=\"reset\"")            \
	X(CLOSE_DRAIN, "acmeedge_proxy_closed_total|reason=\"shutdown\"")         \
	X(UPSTREAM_CONNECT_FAILED, "acmeedge_proxy_upstream_errors_total|reason=\"connect_failed\"") \
	X(UPSTREAM_CONNECT_TIMEOUT, "acmeedge_proxy_upstream_errors_total|reason=\"connect_timeout\"") \
	X(UPSTREAM_UNREACHABLE, "acmeedge_proxy_upstream_errors_total|reason=\"all_servers_failed\"") \
	X(STALE_CQE, "acmeedge_proxy_stale_completions_total|")                   \
	X(RELAY_BUFFERS, "acmeedge_proxy_relay_buffers_held|")                   \
	X(RELAY_PIPES, "acmeedge_proxy_relay_pipes_held|")                       \
	X(BYTES_SPLICED, "acmeedge_proxy_spliced_bytes_total|")                  \
	X(HTTP01_STATELESS, "acmeedge_proxy_challenges_total|kind=\"http-01\",result=\"stateless\"") \
	X(REST_HANDED_OFF, "acmeedge_proxy_rest_requests_total|result=\"handed_off\"") \
	X(REST_REFUSED, "acmeedge_proxy_rest_requests_total|result=\"refused\"")

enum pstat {
#define PSTAT_ENUM(id, name) PS_##id,
	PSTATS_COUNTERS(PSTAT_ENUM)
#undef PSTAT_ENUM
	PS_COUNT
};

enum pstats_outcome {
	HIT_ANSWERED = 1,
	HIT_MISSED = 2,		/* no entry, or Host not the bound name */
	HIT_FAILED = 3,		/* an entry, but the handshake failed */
	HIT_STATELESS = 4,	/* no entry; answered by a [stateless] rule */
};

struct pstats_hit {
	_Atomic uint32_t seq;
	uint8_t kind;			/* enum store_kind */
	uint8_t outcome;		/* enum pstats_outcome */
	uint8_t key_len;
	uint8_t peer_len;
	int64_t time_ms;		/* wall clock */
	char key[PSTATS_KEY_MAX + 1];
	char peer[PSTATS_PEER_MAX + 1];
};

struct pstats_worker {
	_Atomic uint64_t c[PS_COUNT];
	_Atomic uint64_t hit_next;	/* total records written */
	struct pstats_hit hits[PSTATS_HITS];
} __attribute__((aligned(64)));

struct pstats;

/*
 * The proxy: creates the file (replacing the previous proxy's), owned by
 * own.uid and readable by own.gid, in a directory nobody else may write
 * (common/shmfile.h). Returns 0 or -errno with a message in err.
 */
int pstats_create(const char *path, unsigned nworkers, const char *backend,
		  struct shm_owner own, struct pstats **out, char *err,
		  size_t errlen);

/*
 * The API: maps it read-only, once it is sure writer (the user the proxy
 * runs as) wrote it and nobody else could (-EPERM). -ENOENT when no proxy
 * has created it.
 */
int pstats_open(const char *path, uid_t writer, struct pstats **out,
		char *err, size_t errlen);

void pstats_close(struct pstats *ps);

/* "<store path>.proxy" into buf. */
void pstats_path(const char *store_path, char *buf, size_t cap);

struct pstats_worker *pstats_worker(struct pstats *ps, unsigned i);

static inline void pstats_add(struct pstats_worker *w, enum pstat s, uint64_t n)
{
	atomic_fetch_add_explicit(&w->c[s], n, memory_order_relaxed);
}

static inline void pstats_sub(struct pstats_worker *w, enum pstat s, uint64_t n)
{
	atomic_fetch_sub_explicit(&w->c[s], n, memory_order_relaxed);
}

/* Records that a challenge was asked for (a worker, its own block only). */
void pstats_hit(struct pstats_worker *w, uint8_t kind, const char *key,
		size_t key_len, const struct sockaddr *peer,
		enum pstats_outcome outcome, int64_t now_ms);

/* Readers. */
unsigned pstats_nworkers(const struct pstats *ps);
const char *pstats_backend(const struct pstats *ps);
int64_t pstats_started_ms(const struct pstats *ps);
uint64_t pstats_sum(const struct pstats *ps, enum pstat s);
const char *pstats_metric(enum pstat s);	/* "metric|labels" */

/* The newest consistent hit record for kind+key; false when none. */
bool pstats_last_hit(const struct pstats *ps, uint8_t kind, const char *key,
		     size_t key_len, struct pstats_hit *out);

/*
 * Calls fn with every consistent hit record whose time is at or after
 * since_ms, in no particular order: O(workers x PSTATS_HITS), whatever the
 * number of entries. The cluster uses it to publish this node's hits.
 */
void pstats_hits_since(const struct pstats *ps, int64_t since_ms,
		       void (*fn)(const struct pstats_hit *h, void *arg),
		       void *arg);

const char *pstats_outcome_name(uint8_t outcome);

#endif
