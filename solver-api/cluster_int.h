/*
 * What the files of cluster mode share, and nothing else includes: the
 * state of a node (struct cluster), what it knows of each key, and the
 * calls from one concern into another. The design is at the top of
 * cluster.c; the public interface is cluster.h.
 *
 * Everything here runs on the API's event loop, one callback at a time:
 * no field is guarded by a lock.
 */
#ifndef EDGE_CLUSTER_INT_H
#define EDGE_CLUSTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common/cfg.h"
#include "solver-api/cluster.h"
#include "solver-api/cluster_codec.h"
#include "stats/pstats.h"
#include "store/store.h"

#define HEARTBEAT_MS 500
#define NODES_MAX 64			/* a write's bit masks of nodes are 64 bits */
#define INFLIGHT_MAX 4096
#define BACKOFF_MIN_MS 100
#define HIT_INTERVAL_MS 1000		/* at most one hit write per key per node per interval */
#define HIT_WRITES_MAX 256
#define TOMB_MIN_MS 60000		/* a tombstone outlives even an entry about to expire */
#define LAT_BUCKETS 14

/* The Lua scripts (cluster_redis.c), by their index in cluster.sha. */
enum script_id { SC_WRITE, SC_BEAT, SC_HIT, SC_COUNT };

struct cl_hit {
	char node[CLC_NODE_MAX + 1];
	char peer[CLC_PEER_MAX + 1];
	int64_t time_ms;
	uint8_t outcome;
};

/* What this node knows of one key: the version it holds, tombstones too. */
struct cl_key {
	struct cl_key *next;
	uint64_t version;
	int64_t expires_ms;		/* the entry's, or the tombstone's */
	int64_t hit_sent_ms;		/* when this node last wrote its hit */
	int64_t hit_sent_time;		/* the time of the hit it wrote */
	struct cl_hit cand;		/* this node's newest unsent hit */
	struct cl_hit *hits;		/* per node, at most HITS_PER_KEY */
	uint8_t nhits;
	uint8_t kind;
	uint8_t key_len;
	bool deleted;
	bool mine;			/* written through this node: it republishes it */
	bool cand_listed;		/* on hit_list: kept while there */
	char key[];			/* key_len + 1 bytes, NUL-terminated */
};

struct cl_write;	/* a write waiting for its acks: cluster_write.c's own */

struct cluster {
	struct event_base *base;
	struct cluster_hooks hooks;
	/* [cluster] as loaded; ack and ack_timeout_ms follow reloads. */
	char node[CFG_NAME_MAX + 1];
	struct cfg_hostport redis;
	struct cfg_hostport sentinels[CFG_SENTINELS_MAX];
	size_t nsentinels;
	char master[CFG_NAME_MAX + 1];
	char user[CFG_NAME_MAX + 1];
	char password[CFG_SECRET_MAX + 1];
	char sentinel_user[CFG_NAME_MAX + 1];
	char sentinel_password[CFG_SECRET_MAX + 1];
	enum cfg_ack ack;
	uint32_t ack_timeout_ms;
	char store_path[CFG_PATH_MAX + 1];
	/* Redis names */
	char prefix[CFG_PREFIX_MAX + 1];
	char k_inst[CFG_PREFIX_MAX + CLC_NODE_MAX + 8];
	char instance[17];		/* this process, among nodes of one name */
	unsigned beats_up;		/* heartbeats answered since connecting */
	char k_ver[CFG_PREFIX_MAX + 8], k_nodes[CFG_PREFIX_MAX + 8],
	     k_epoch[CFG_PREFIX_MAX + 8], ch_events[CFG_PREFIX_MAX + 8],
	     ch_acks[CFG_PREFIX_MAX + CLC_NODE_MAX + 8], ch_members[CFG_PREFIX_MAX + 8],
	     scan_match[2 * CFG_PREFIX_MAX + 4];
	char sha[SC_COUNT][41];
	/* connection */
	redisAsyncContext *cmd, *sub, *sentinel;
	size_t sentinel_next;
	bool asking_sentinel;		/* target is a sentinel: its timeout skips it */
	/* host names: resolved on the loop (cluster_redis.c, resolve()) */
	struct evdns_base *dns;
	struct evdns_getaddrinfo_request *dns_req;
	void (*dns_then)(struct cluster *cl, const char *addr, const char *err);
	unsigned dns_pick;		/* which of the answer's addresses to use */
	unsigned master_fails;		/* connects to the master failed in a row */
	struct cfg_hostport target;	/* the master in use */
	enum cluster_state state;
	char cause[256];
	bool redis_up;			/* both connections up and authenticated */
	bool subscribed;
	bool ever_ready;
	bool stopping;
	bool drop_logged;		/* once per outage, not once per retry */
	unsigned inflight;
	unsigned hb_outstanding;
	uint32_t backoff_ms;
	struct event *reconnect_ev, *connect_to_ev, *beat_ev, *hit_ev;
	uint64_t sync_started_ms;
	unsigned sync_outstanding;
	bool scan_done;
	char scan_cursor[32];
	unsigned synced;
	/* membership */
	char epoch[64];
	char live[NODES_MAX][CLC_NODE_MAX + 1];
	unsigned nlive;
	bool live_known;
	/* keys */
	struct cl_key **buckets;
	size_t nbuckets, nkeys, keys_max;
	uint64_t max_version;
	unsigned beats;
	/* republishing after Redis lost its data */
	bool republishing;
	size_t repub_bucket;
	uint64_t repub_count;		/* this round */
	unsigned repub_inflight;
	/* writes */
	struct cl_write *pending;
	unsigned npending;
	uint64_t next_id;
	/* hits */
	struct cl_key *hit_list[HIT_WRITES_MAX];
	unsigned nhit_list;
	/* scratch: one at a time, the loop is single-threaded */
	uint8_t body[CLC_BODY_MAX];
	struct store_entry scratch;
	/* metrics */
	uint64_t m_acked, m_timed_out, m_failed, m_refused, m_resyncs,
		 m_applied, m_bad, m_republished, m_hit_writes, m_reconnects,
		 m_lat_count, m_lat_bucket[LAT_BUCKETS];
	double m_lat_sum;
};

/* ---- cluster.c: the timers, the table of keys ------------------------- */

void cl_arm(struct event *ev, uint32_t ms);
struct cl_key *cl_key_find(const struct cluster *cl, uint8_t kind,
			   const char *key, size_t len);
/* Found or made; making one may forget the key closest to its expiry. */
struct cl_key *cl_key_get(struct cluster *cl, uint8_t kind, const char *key,
			  size_t len, int64_t now);
size_t cl_keys_sweep(struct cluster *cl, int64_t now);

/* ---- cluster_redis.c: the transport ----------------------------------- */

void cl_scripts_hash(char sha[SC_COUNT][41]);
/* Connects (through the sentinels, if any); the subscription then syncs. */
void cl_connect(struct cluster *cl);
/*
 * Drops the connections, fails the writes whose fate is unknown, and
 * reconnects after a back-off. Callable from a reply callback: the
 * dropped contexts' own callbacks then find no cluster (ac->data NULL).
 */
void cl_drop(struct cluster *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cl_redis_free(struct cluster *cl);
void cl_dns_cancel(struct cluster *cl);
void cl_dns_free(struct cluster *cl);
void cl_on_reconnect(evutil_socket_t fd, short what, void *arg);
void cl_on_connect_timeout(evutil_socket_t fd, short what, void *arg);
void cl_entry_key(const struct cluster *cl, char *buf, size_t cap, char type,
		  uint8_t kind, const char *key);
struct cluster *cl_reply_begin(redisAsyncContext *ac, void *reply);
void cl_on_ignored(redisAsyncContext *ac, void *reply, void *priv);
int cl_cmd_send(struct cluster *cl, redisCallbackFn *fn, void *priv, int argc,
		const char **argv, const size_t *lens);
bool cl_is_error(const redisReply *r, char *buf, size_t cap);
bool cl_reply_u64(const redisReply *r, uint64_t *out);

/* ---- cluster_write.c: the writes this node starts --------------------- */

/* The write script's call; body is cl->body, blen bytes of it. */
int cl_send_write(struct cluster *cl, char mode, uint64_t version,
		  const char *hkey, int64_t expires, bool tomb, size_t blen,
		  redisCallbackFn *fn, void *priv);
void cl_write_applied(struct cluster *cl, uint64_t id, int store_ret);
void cl_write_acked(struct cluster *cl, uint64_t id, const char *node);
void cl_writes_node_left(struct cluster *cl, const char *node);
void cl_writes_disconnected(struct cluster *cl);
void cl_writes_stop(struct cluster *cl);

/* ---- cluster_sync.c: applying events, the resync, membership ---------- */

int cl_apply_event(struct cluster *cl, const struct clc_event *ev,
		   struct store_entry *e);
bool cl_in_list(char (*list)[CLC_NODE_MAX + 1], unsigned n, const char *s);
void cl_on_sub(redisAsyncContext *ac, void *reply, void *priv);
void cl_on_beat_timer(evutil_socket_t fd, short what, void *arg);
void cl_leave(struct cluster *cl);

/* ---- cluster_hits.c: hit records -------------------------------------- */

void cl_hit_store(struct cl_key *k, const char *node, int64_t time_ms,
		  uint8_t outcome, const char *peer);
int cl_hit_send(struct cluster *cl, const struct cl_key *k,
		const struct cl_hit *h, redisCallbackFn *fn);
const struct cl_hit *cl_hit_own(const struct cluster *cl, const struct cl_key *k);
void cl_on_hit_timer(evutil_socket_t fd, short what, void *arg);
void cl_hits_disconnected(struct cluster *cl);

/* ---- cluster_metrics.c ------------------------------------------------ */

void cl_observe_ack(struct cluster *cl, double seconds);

#endif
