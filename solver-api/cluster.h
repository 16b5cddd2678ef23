/*
 * Cluster mode: the API's writes replicated through Redis to every node,
 * each node's API applying them to its own token store (docs/cluster.md).
 *
 * The proxy never sees any of this: it keeps reading its local store. Here
 * the API hands each write to cluster_put()/cluster_delete(), which return
 * at once; the done callback runs later on the API's event loop, once the
 * write is in Redis and applied by every live node (ack = all) or by a
 * majority (ack = quorum), or when ack_timeout_ms ran out. Writes from
 * other nodes reach the store only through the hooks the API passes in, so
 * the API's apply_put()/apply_delete() stay the one write path.
 */
#ifndef EDGE_CLUSTER_H
#define EDGE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/cfg.h"
#include "stats/pstats.h"
#include "store/store.h"

struct cluster;

/* How the cluster reaches the store: through the API's write path. */
struct cluster_hooks {
	void *arg;
	/* store_put's contract: 0 created, 1 replaced, -errno. */
	int (*apply_put)(void *arg, struct store_entry *e);
	/* 0, or -ENOENT. */
	int (*apply_delete)(void *arg, enum store_kind kind, const char *key,
			    size_t key_len);
	const struct store *store;	/* read only: lookups */
};

enum cluster_state {
	CLUSTER_SYNCING = 0,	/* connecting, or loading the full set */
	CLUSTER_READY = 1,
	CLUSTER_DEGRADED = 2,	/* Redis lost: serving what is held, no writes */
};

enum cluster_outcome {
	CLUSTER_ACKED = 0,	/* applied by enough live nodes */
	CLUSTER_TIMED_OUT = 1,	/* written, but not confirmed in time */
	CLUSTER_FAILED = 2,	/* not known to be written (Redis failed) */
	CLUSTER_STORE_FULL = 3,	/* written, but this node's store is full */
};

struct cluster_result {
	enum cluster_outcome outcome;
	int store_ret;			/* a put here: 0 created, 1 replaced */
	const struct store_entry *entry;	/* a put: as stored here */
	const char *detail;		/* one sentence for the client */
	const char *const *missing;	/* the nodes that did not confirm */
	size_t nmissing;
	unsigned acked, needed, live;
};

typedef void (*cluster_done_fn)(void *arg, const struct cluster_result *r);

/* Starts connecting; the node is SYNCING until it has loaded the set. */
int cluster_open(struct event_base *base, const struct cfg *cfg,
		 const struct cluster_hooks *hooks, struct cluster **out);

/* SIGHUP: ack and ack_timeout_ms change now; the rest only on restart. */
void cluster_reload(struct cluster *cl, const struct cfg *cfg);

/*
 * Stopping: leaves the live set at once (the others stop waiting for this
 * node), answers the writes still waiting (503), refuses new ones.
 */
void cluster_stop(struct cluster *cl);

/* cluster_stop() if not done yet, then frees everything. */
void cluster_close(struct cluster *cl);

/* The state, and when not READY, why (one sentence). */
enum cluster_state cluster_state(const struct cluster *cl, const char **cause);
const char *cluster_state_name(enum cluster_state st);

/*
 * Starts a replicated write. Returns 0 (done will be called exactly once,
 * later) or -1 when the write cannot start (not READY, too many writes in
 * flight): *why then says why and done is never called.
 */
int cluster_put(struct cluster *cl, const struct store_entry *e,
		cluster_done_fn done, void *arg, const char **why);
/* expires_ms: the deleted entry's expiry; its tombstone lives at least as long. */
int cluster_delete(struct cluster *cl, enum store_kind kind, const char *key,
		   size_t key_len, int64_t expires_ms, cluster_done_fn done,
		   void *arg, const char **why);

/* Appends the acmeedge_cluster_* metrics. */
void cluster_metrics(const struct cluster *cl, struct evbuffer *b);

/* {"node": .., "live": [..], "redis": .., "cause": ..} for /healthz. */
json_t *cluster_health_json(const struct cluster *cl);

/*
 * The last hit each node saw for this entry, as a JSON array of {"node",
 * "time", "peer", "outcome"}; local is this node's freshest record from
 * the proxy's statistics (or NULL). NULL when no node saw a hit.
 */
json_t *cluster_hits_json(const struct cluster *cl, uint8_t kind,
			  const char *key, size_t key_len,
			  const struct pstats_hit *local);

#endif
