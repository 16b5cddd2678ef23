/*
 * Cluster mode over Redis (docs/cluster.md has the whole design; the
 * invariants the code keeps are stated where they are kept).
 *
 * Two connections per node, both on the API's event base: "cmd" for
 * commands and "sub" for the subscription (a subscribed connection can
 * issue nothing else). Redis holds the authority: one hash per entry
 * (tombstones included), written by one Lua script that also assigns the
 * cluster-wide version and publishes the same bytes on the event channel,
 * all atomically. Every node applies an event only when its version is
 * newer than the one it holds for that key, so every node converges on the
 * highest version whatever order or duplicates it sees; pub/sub may lose
 * messages while a node is disconnected, which a full resync (subscribe
 * first, then scan) covers.
 *
 * Bounds: writes waiting for acks (PENDING_MAX), commands awaiting a reply
 * on "cmd" (INFLIGHT_MAX), keys remembered (keys_max, from the capacity),
 * live nodes (NODES_MAX), hit records per key (HITS_PER_KEY), hit writes
 * per interval (HIT_WRITES_MAX), scan batches (one batch in flight),
 * republishing (REPUBLISH_BATCH in flight), reconnect back-off
 * (BACKOFF_MAX_MS).
 *
 * One concern a file, sharing cluster_int.h: here the node's life (open,
 * reload, stop, close) and the table of keys; cluster_redis.c the
 * connections and the scripts; cluster_sync.c applying events, the
 * resync, heartbeats and the live set; cluster_write.c the writes started
 * here; cluster_hits.c hit records; cluster_metrics.c metrics and health.
 */
#include "solver-api/cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/edge.h"
#include "common/log.h"

void cl_arm(struct event *ev, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_add(ev, &tv);
}

const char *cluster_state_name(enum cluster_state st)
{
	switch (st) {
	case CLUSTER_READY: return "ok";
	case CLUSTER_DEGRADED: return "degraded";
	default: return "syncing";
	}
}

/* ---- keys ------------------------------------------------------------- */

static size_t key_hash(const struct cluster *cl, uint8_t kind, const char *key,
		       size_t len)
{
	uint64_t h = 1469598103934665603ull ^ kind;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
	return (size_t)(h & (cl->nbuckets - 1));
}

struct cl_key *cl_key_find(const struct cluster *cl, uint8_t kind,
			   const char *key, size_t len)
{
	struct cl_key *k = cl->buckets[key_hash(cl, kind, key, len)];

	for (; k; k = k->next)
		if (k->kind == kind && k->key_len == len && !memcmp(k->key, key, len))
			return k;
	return NULL;
}

static void key_free(struct cluster *cl, struct cl_key **link)
{
	struct cl_key *k = *link;

	*link = k->next;
	free(k->hits);
	free(k);
	cl->nkeys--;
}

/* Forgets keys whose entry or tombstone expired; returns how many. */
size_t cl_keys_sweep(struct cluster *cl, int64_t now)
{
	size_t n = 0;

	for (size_t b = 0; b < cl->nbuckets; b++) {
		struct cl_key **link = &cl->buckets[b];
		while (*link) {
			if ((*link)->expires_ms <= now && !(*link)->cand_listed) {
				key_free(cl, link);
				n++;
			} else {
				link = &(*link)->next;
			}
		}
	}
	return n;
}

/*
 * Room for one more key: expired ones go first; at the bound, the key
 * closest to its expiry (a tombstone, most likely) is forgotten. Losing a
 * tombstone early only matters if an older write for that key shows up
 * later, which a live entry's own TTL bounds anyway.
 */
static void keys_make_room(struct cluster *cl, int64_t now)
{
	struct cl_key **victim = NULL;

	if (cl->nkeys < cl->keys_max || cl_keys_sweep(cl, now) > 0)
		return;
	for (size_t b = 0; b < cl->nbuckets; b++)
		for (struct cl_key **l = &cl->buckets[b]; *l; l = &(*l)->next)
			if (!(*l)->cand_listed &&
			    (!victim || (*l)->expires_ms < (*victim)->expires_ms))
				victim = l;
	if (victim)
		key_free(cl, victim);
}

struct cl_key *cl_key_get(struct cluster *cl, uint8_t kind, const char *key,
			  size_t len, int64_t now)
{
	struct cl_key *k = cl_key_find(cl, kind, key, len);
	size_t b;

	if (k)
		return k;
	keys_make_room(cl, now);
	k = calloc(1, sizeof(*k) + len + 1);
	BUG_ON(!k);
	k->kind = kind;
	k->key_len = (uint8_t)len;
	memcpy(k->key, key, len);
	k->key[len] = '\0';
	b = key_hash(cl, kind, key, len);
	k->next = cl->buckets[b];
	cl->buckets[b] = k;
	cl->nkeys++;
	return k;
}

/* ---- the API's side --------------------------------------------------- */

int cluster_open(struct event_base *base, const struct cfg *cfg,
		 const struct cluster_hooks *hooks, struct cluster **out)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	uint8_t rnd[4];

	BUG_ON(!cl);
	cl->base = base;
	cl->hooks = *hooks;
	snprintf(cl->node, sizeof(cl->node), "%s", cfg->cluster.node);
	cl->redis = cfg->cluster.redis;
	memcpy(cl->sentinels, cfg->cluster.sentinels, sizeof(cl->sentinels));
	cl->nsentinels = cfg->cluster.nsentinels;
	snprintf(cl->master, sizeof(cl->master), "%s", cfg->cluster.master);
	snprintf(cl->user, sizeof(cl->user), "%s", cfg->cluster.user);
	memcpy(cl->password, cfg->cluster.password, sizeof(cl->password));
	snprintf(cl->sentinel_user, sizeof(cl->sentinel_user), "%s",
		 cfg->cluster.sentinel_user);
	memcpy(cl->sentinel_password, cfg->cluster.sentinel_password,
	       sizeof(cl->sentinel_password));
	snprintf(cl->store_path, sizeof(cl->store_path), "%s", cfg->store.path);
	snprintf(cl->prefix, sizeof(cl->prefix), "%s", cfg->cluster.prefix);
	cluster_reload(cl, cfg);
	snprintf(cl->k_ver, sizeof(cl->k_ver), "%sver", cl->prefix);
	snprintf(cl->k_nodes, sizeof(cl->k_nodes), "%snodes", cl->prefix);
	snprintf(cl->k_epoch, sizeof(cl->k_epoch), "%sepoch", cl->prefix);
	snprintf(cl->k_inst, sizeof(cl->k_inst), "%sinst:%s", cl->prefix, cl->node);
	snprintf(cl->ch_events, sizeof(cl->ch_events), "%sevents", cl->prefix);
	snprintf(cl->ch_acks, sizeof(cl->ch_acks), "%sack:%s", cl->prefix, cl->node);
	snprintf(cl->ch_members, sizeof(cl->ch_members), "%smembers", cl->prefix);
	/* MATCH takes a glob: the prefix's own glob characters are escaped. */
	size_t m = 0;
	for (const char *p = cl->prefix; *p; p++) {
		if (strchr("*?[]\\", *p))
			cl->scan_match[m++] = '\\';
		cl->scan_match[m++] = *p;
	}
	strcpy(cl->scan_match + m, "*");
	cl_scripts_hash(cl->sha);
	cl->keys_max = (size_t)cfg->store.capacity * 4 + 1024;
	for (cl->nbuckets = 1024; cl->nbuckets < cl->keys_max; cl->nbuckets *= 2)
		;
	cl->buckets = calloc(cl->nbuckets, sizeof(*cl->buckets));
	BUG_ON(!cl->buckets);
	/* Write ids start at random: a restarted node never takes a stale ack. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	uint8_t inst[8];
	if (RAND_bytes(inst, sizeof(inst)) != 1)
		memset(inst, 0, sizeof(inst));
	for (int i = 0; i < 8; i++)
		snprintf(cl->instance + 2 * i, 3, "%02x", inst[i]);
	cl->next_id = ((uint64_t)rnd[0] << 48 | (uint64_t)rnd[1] << 40 |
		       (uint64_t)rnd[2] << 32 | (uint64_t)rnd[3] << 24) + 1;
	cl->backoff_ms = BACKOFF_MIN_MS;
	cl->state = CLUSTER_SYNCING;
	snprintf(cl->cause, sizeof(cl->cause), "loading the cluster's entries "
		 "from Redis");
	cl->reconnect_ev = evtimer_new(base, cl_on_reconnect, cl);
	cl->connect_to_ev = evtimer_new(base, cl_on_connect_timeout, cl);
	cl->beat_ev = event_new(base, -1, EV_PERSIST, cl_on_beat_timer, cl);
	cl->hit_ev = event_new(base, -1, EV_PERSIST, cl_on_hit_timer, cl);
	BUG_ON(!cl->reconnect_ev || !cl->connect_to_ev || !cl->beat_ev || !cl->hit_ev);
	cl_arm(cl->beat_ev, HEARTBEAT_MS);
	cl_arm(cl->hit_ev, HIT_INTERVAL_MS);
	log_info("cluster: node %s, %s %s:%u, ack %s, ack_timeout_ms %u, "
		 "prefix \"%s\"%s%s", cl->node, cl->nsentinels ? "sentinel" : "redis",
		 cl->nsentinels ? cl->sentinels[0].host : cl->redis.host,
		 cl->nsentinels ? cl->sentinels[0].port : cl->redis.port,
		 cl->ack == ACK_ALL ? "all" : "quorum", cl->ack_timeout_ms,
		 cl->prefix, cl->password[0] ? ", with a password" : "",
		 cl->sentinel_password[0] ? ", sentinels with a password" : "");
	cl_connect(cl);
	*out = cl;
	return 0;
}

void cluster_reload(struct cluster *cl, const struct cfg *cfg)
{
	if (!cfg->cluster.enabled) {
		log_warn("cluster: leaving the cluster takes effect only on restart");
		return;
	}
	cl->ack = cfg->cluster.ack;
	cl->ack_timeout_ms = cfg->cluster.ack_timeout_ms;
	if (strcmp(cfg->cluster.node, cl->node) ||
	    strcmp(cfg->cluster.prefix, cl->prefix) ||
	    strcmp(cfg->cluster.redis.host, cl->redis.host) ||
	    cfg->cluster.redis.port != cl->redis.port)
		log_warn("cluster: node, prefix, redis and sentinel changes take "
			 "effect only on restart");
}

void cluster_stop(struct cluster *cl)
{
	if (cl->stopping)
		return;
	cl->stopping = true;
	/* A lookup's cancelled callback runs in the last loop turns. */
	event_del(cl->reconnect_ev);
	cl_dns_cancel(cl);
	cl_leave(cl);
	cl_writes_stop(cl);
}

void cluster_close(struct cluster *cl)
{
	if (!cl)
		return;
	cluster_stop(cl);
	cl_redis_free(cl);
	cl_dns_free(cl);
	event_free(cl->reconnect_ev);
	event_free(cl->connect_to_ev);
	event_free(cl->beat_ev);
	event_free(cl->hit_ev);
	for (size_t b = 0; b < cl->nbuckets; b++)
		while (cl->buckets[b])
			key_free(cl, &cl->buckets[b]);
	free(cl->buckets);
	explicit_bzero(cl->password, sizeof(cl->password));
	explicit_bzero(cl->sentinel_password, sizeof(cl->sentinel_password));
	free(cl);
}

enum cluster_state cluster_state(const struct cluster *cl, const char **cause)
{
	if (cause)
		*cause = cl->cause;
	return cl->state;
}
