/*
 * Cluster mode's replication: how this node comes to hold what Redis holds,
 * and which nodes it counts as live.
 *
 * Events reach cl_apply_event() from three places (the replies to this
 * node's own writes, the event channel, the resync scan); it applies only a
 * version newer than the one held for the key, so neither the order nor
 * duplicates matter. The resync subscribes first and scans after, so that
 * nothing published meanwhile is missed; the node is ready once the scan is
 * done and every entry it listed is loaded. The heartbeat keeps the live
 * set that new writes wait for, and tells by the epoch when Redis lost its
 * data, which starts republishing the entries written through this node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/cluster_int.h"

#define LIVE_MS (3 * HEARTBEAT_MS)	/* live: a heartbeat fresher than this */
#define HB_STALL_BEATS 6		/* a heartbeat unanswered this long: Redis is stuck */
#define SCAN_COUNT "256"
#define REPUBLISH_BATCH 128

static void republish_step(struct cluster *cl);
static void scan_next(struct cluster *cl);

/* ---- applying events -------------------------------------------------- */

/*
 * The ordering rule, for every event from any source (our own script's
 * reply, the channel, the resync scan): apply only a version newer than
 * the one held for the key, tombstones included. Returns 0 when the key
 * now holds this version or a newer one, or the store's -errno.
 */
int cl_apply_event(struct cluster *cl, const struct clc_event *ev,
		   struct store_entry *e)
{
	int64_t now = clock_wall_ms();
	struct cl_key *k = cl_key_find(cl, ev->kind, ev->key, ev->key_len);
	bool tomb = ev->op == CLC_DEL || ev->expires_ms <= now;
	int ret = 0;

	if (k && k->version >= ev->version)
		return 0;
	if (!tomb) {
		ret = cl->hooks.apply_put(cl->hooks.arg, e);
		if (ret < 0)
			return ret;
	} else {
		cl->hooks.apply_delete(cl->hooks.arg, ev->kind, ev->key, ev->key_len);
	}
	k = cl_key_get(cl, ev->kind, ev->key, ev->key_len, now);
	k->version = ev->version;
	k->deleted = tomb;
	k->mine = strcmp(ev->origin, cl->node) == 0;
	k->expires_ms = tomb && ev->expires_ms < now + TOMB_MIN_MS
				? now + TOMB_MIN_MS : ev->expires_ms;
	if (tomb) {
		FREE_NULL(k->hits);
		k->nhits = 0;
	}
	if (ev->version > cl->max_version)
		cl->max_version = ev->version;
	cl->m_applied++;
	return ret;
}

static void ack_send(struct cluster *cl, const struct clc_event *ev)
{
	char ch[sizeof(cl->ch_acks)], msg[CLC_ACK_MAX + 1];
	const char *argv[3] = {"PUBLISH", ch, msg};
	size_t lens[3];

	snprintf(ch, sizeof(ch), "%sack:%s", cl->prefix, ev->origin);
	lens[0] = 7;
	lens[1] = strlen(ch);
	lens[2] = clc_ack_encode(ev->write_id, cl->node, msg, sizeof(msg));
	if (lens[2] == 0)
		return;
	/* Fire and forget: the reply only counts down inflight. */
	cl_cmd_send(cl, cl_on_ignored, NULL, 3, argv, lens);
}

/* One message from the event channel, a hash, or a hit hash. */
static void handle_message(struct cluster *cl, const char *data, size_t len,
			   bool live)
{
	static struct log_limit lim;
	struct clc_event ev;
	struct cl_key *k;
	int ret;

	if (clc_decode((const uint8_t *)data, len, &ev, &cl->scratch) != 0) {
		cl->m_bad++;
		log_ratelimited(&lim, LOG_LVL_WARN, "cluster: ignored a malformed "
				"message of %zu bytes from Redis", len);
		return;
	}
	if (ev.op == CLC_HIT) {
		k = cl_key_find(cl, ev.kind, ev.key, ev.key_len);
		if (k && !k->deleted)
			cl_hit_store(k, ev.origin, ev.hit_ms, ev.outcome, ev.peer);
		return;
	}
	ret = cl_apply_event(cl, &ev, &cl->scratch);
	if (ret < 0) {
		log_ratelimited(&lim, LOG_LVL_ERR, "cluster: cannot apply %s %s "
				"from %s: %s", ev.op == CLC_PUT ? "put" : "delete",
				ev.key, ev.origin, strerror(-ret));
		return;
	}
	if (ev.write_id == 0)
		return;
	/*
	 * Acked from the resync scan too: a node that restarts while a write
	 * waits for it gets that write from the scan, never from the channel.
	 * An ack nobody waits for any more is dropped by its origin.
	 */
	if (!live && strcmp(ev.origin, cl->node) == 0)
		return;
	if (strcmp(ev.origin, cl->node) == 0) {
		cl_write_applied(cl, ev.write_id, ret);
		return;
	}
	ack_send(cl, &ev);
}

/* ---- membership and heartbeats ---------------------------------------- */

bool cl_in_list(char (*list)[CLC_NODE_MAX + 1], unsigned n, const char *s)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static void update_live(struct cluster *cl, const redisReply *arr)
{
	char next[NODES_MAX][CLC_NODE_MAX + 1];
	unsigned n = 0;

	for (size_t i = 0; i < arr->elements && n < NODES_MAX; i++) {
		const redisReply *e = arr->element[i];
		if (e->type != REDIS_REPLY_STRING || !clc_node_valid(e->str, e->len))
			continue;
		memcpy(next[n], e->str, e->len);
		next[n++][e->len] = '\0';
	}
	for (unsigned i = 0; cl->live_known && i < n; i++)
		if (!cl_in_list(cl->live, cl->nlive, next[i]))
			log_info("cluster: node %s joined (%u live)", next[i], n);
	for (unsigned i = 0; cl->live_known && i < cl->nlive; i++)
		if (!cl_in_list(next, n, cl->live[i]))
			log_warn("cluster: node %s left: no heartbeat for %d ms "
				 "(%u live)", cl->live[i], LIVE_MS, n);
	if (!cl->live_known)
		log_info("cluster: %u node%s live", n, n == 1 ? "" : "s");
	memcpy(cl->live, next, sizeof(next[0]) * n);
	cl->nlive = n;
	cl->live_known = true;
}

/*
 * A node that became ready says so: writes started from now on wait for
 * it, without waiting for this node's next heartbeat to see it.
 */
static void node_joined(struct cluster *cl, const char *node)
{
	if (!cl->live_known || cl_in_list(cl->live, cl->nlive, node) ||
	    cl->nlive >= NODES_MAX)
		return;
	strcpy(cl->live[cl->nlive++], node);
	log_info("cluster: node %s joined (%u live)", node, cl->nlive);
}

/*
 * A node that stopped cleanly said so: it leaves the live set now, and no
 * write waits for it any more (one that dies without a word is waited for
 * until ack_timeout_ms: the writer cannot tell a dead node from a slow one).
 */
static void node_left(struct cluster *cl, const char *node)
{
	unsigned j = 0;

	if (strcmp(node, cl->node) == 0)
		return;
	for (unsigned i = 0; i < cl->nlive; i++)
		if (strcmp(cl->live[i], node) != 0)
			memmove(cl->live[j++], cl->live[i], sizeof(cl->live[0]));
	if (j != cl->nlive)
		log_info("cluster: node %s left: it stopped (%u live)", node, j);
	cl->nlive = j;
	cl_writes_node_left(cl, node);
}

static void on_beat(redisAsyncContext *ac, void *reply, void *priv)
{
	static struct log_limit dup_lim;
	struct cluster *cl = cl_reply_begin(ac, reply);
	redisReply *r = reply;
	char err[256];

	(void)priv;
	if (!cl)
		return;
	cl->hb_outstanding = 0;
	if (cl_is_error(r, err, sizeof(err))) {
		cl_drop(cl, "heartbeat refused: %s", err);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[0]->len >= sizeof(cl->epoch) ||
	    r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[2]->type != REDIS_REPLY_STRING) {
		cl_drop(cl, "heartbeat: unexpected reply");
		return;
	}
	/*
	 * Another process beat under our name since our last beat: two nodes
	 * share a name (acks and the live set would mix them up). Not on the
	 * first beat after connecting: that may be our own predecessor.
	 */
	if (r->element[2]->len && cl->beats_up > 0 &&
	    (r->element[2]->len != strlen(cl->instance) ||
	     memcmp(r->element[2]->str, cl->instance, r->element[2]->len)))
		log_ratelimited(&dup_lim, LOG_LVL_ERR, "cluster: another node also "
				"calls itself %s: give every node its own [cluster] "
				"node name", cl->node);
	cl->beats_up++;
	if (cl->epoch[0] && (strlen(cl->epoch) != r->element[0]->len ||
			     memcmp(cl->epoch, r->element[0]->str, r->element[0]->len))) {
		/*
		 * The live set was lost with the rest: the others re-register
		 * within a beat. Until then, keep the nodes known, so that
		 * writes still wait for them and no one is logged as leaving.
		 */
		cl->live_known = false;
		cl->repub_count = 0;
		log_warn("cluster: Redis lost its data (restarted without "
			 "persistence, or flushed): re-publishing the entries "
			 "written through this node");
		cl->republishing = true;
		cl->repub_bucket = 0;
		republish_step(cl);
	} else {
		update_live(cl, r->element[1]);
	}
	memcpy(cl->epoch, r->element[0]->str, r->element[0]->len);
	cl->epoch[r->element[0]->len] = '\0';
	if (cl->state == CLUSTER_SYNCING && !cl->scan_done &&
	    cl->sync_outstanding == 0 && !cl->scan_cursor[0]) {
		strcpy(cl->scan_cursor, "0");
		scan_next(cl);
	}
}

static void beat(struct cluster *cl)
{
	char live[16], floor[24], proposal[33];
	uint8_t rnd[16];
	const char *argv[12];
	size_t lens[12];

	if (!cl->subscribed)
		return;
	if (cl->hb_outstanding) {
		if (++cl->hb_outstanding > HB_STALL_BEATS)
			cl_drop(cl, "Redis has not answered a heartbeat for %d ms",
				HB_STALL_BEATS * HEARTBEAT_MS);
		return;
	}
	snprintf(live, sizeof(live), "%d", LIVE_MS);
	snprintf(floor, sizeof(floor), "%llu", (unsigned long long)cl->max_version);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	for (int i = 0; i < 16; i++)
		snprintf(proposal + 2 * i, 3, "%02x", rnd[i]);
	argv[0] = "EVALSHA";
	argv[1] = cl->sha[SC_BEAT];
	argv[2] = "4";
	argv[3] = cl->k_nodes;
	argv[4] = cl->k_epoch;
	argv[5] = cl->k_ver;
	argv[6] = cl->k_inst;
	argv[7] = cl->node;
	argv[8] = live;
	argv[9] = floor;
	argv[10] = proposal;
	argv[11] = cl->instance;
	for (int i = 0; i < 12; i++)
		lens[i] = strlen(argv[i]);
	if (cl_cmd_send(cl, on_beat, NULL, 12, argv, lens) == 0)
		cl->hb_outstanding = 1;
}

void cl_on_beat_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;

	(void)fd;
	(void)what;
	beat(cl);
	if (++cl->beats % 20 == 0)
		cl_keys_sweep(cl, clock_wall_ms());
}

/* Leaves the live set now, so that no write waits for a node that stopped. */
void cl_leave(struct cluster *cl)
{
	struct timeval tv = {0, 300 * 1000};
	redisContext *c;
	redisReply *r;

	if (!cl->redis_up)
		return;
	c = redisConnectWithTimeout(cl->target.host, cl->target.port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return;
	}
	redisSetTimeout(c, tv);
	if (cl->password[0]) {
		r = cl->user[0] ? redisCommand(c, "AUTH %s %s", cl->user, cl->password)
				: redisCommand(c, "AUTH %s", cl->password);
		freeReplyObject(r);
	}
	r = redisCommand(c, "ZREM %s %s", cl->k_nodes, cl->node);
	freeReplyObject(r);
	r = redisCommand(c, "PUBLISH %s -%s", cl->ch_members, cl->node);
	freeReplyObject(r);
	redisFree(c);
}

/* ---- the full resync: subscribed first, then every key scanned -------- */

static void announce(struct cluster *cl)
{
	char msg[CLC_NODE_MAX + 2];
	const char *argv[3] = {"PUBLISH", cl->ch_members, msg};
	size_t lens[3];

	snprintf(msg, sizeof(msg), "+%s", cl->node);
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	cl_cmd_send(cl, cl_on_ignored, NULL, 3, argv, lens);
}

static void sync_maybe_done(struct cluster *cl)
{
	if (cl->state != CLUSTER_SYNCING || !cl->scan_done || cl->sync_outstanding)
		return;
	cl->state = CLUSTER_READY;
	cl->cause[0] = '\0';
	cl->backoff_ms = BACKOFF_MIN_MS;
	cl->m_resyncs++;
	log_info("cluster: node %s ready: %u entr%s loaded from Redis %s:%u in "
		 "%llu ms, %u node%s live", cl->node, cl->synced,
		 cl->synced == 1 ? "y" : "ies", cl->target.host, cl->target.port,
		 (unsigned long long)(clock_mono_ms() - cl->sync_started_ms),
		 cl->nlive, cl->nlive == 1 ? "" : "s");
	cl->ever_ready = true;
	cl->drop_logged = false;
	announce(cl);
	/* A re-publishing cut short by the connection starts over. */
	if (cl->republishing) {
		cl->repub_bucket = 0;
		republish_step(cl);
	}
}

static void on_sync_entry(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = cl_reply_begin(ac, reply);
	redisReply *r = reply;

	(void)priv;
	if (!cl)
		return;
	cl->sync_outstanding--;
	if (r->type == REDIS_REPLY_STRING) {
		handle_message(cl, r->str, r->len, false);
		cl->synced++;
	} else if (r->type == REDIS_REPLY_ARRAY) {
		/* A hit hash: node, message, node, message... */
		for (size_t i = 1; i < r->elements; i += 2)
			if (r->element[i]->type == REDIS_REPLY_STRING)
				handle_message(cl, r->element[i]->str,
					       r->element[i]->len, false);
	}
	if (cl->sync_outstanding == 0) {
		if (!cl->scan_done)
			scan_next(cl);
		sync_maybe_done(cl);
	}
}

static void on_scan(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = cl_reply_begin(ac, reply);
	redisReply *r = reply;
	size_t plen;
	char err[256];

	(void)priv;
	if (!cl)
		return;
	if (cl_is_error(r, err, sizeof(err)) || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[0]->len >= sizeof(cl->scan_cursor) ||
	    r->element[1]->type != REDIS_REPLY_ARRAY) {
		cl_drop(cl, "SCAN failed: %s", r->type == REDIS_REPLY_ERROR ? err
			: "unexpected reply");
		return;
	}
	memcpy(cl->scan_cursor, r->element[0]->str, r->element[0]->len);
	cl->scan_cursor[r->element[0]->len] = '\0';
	cl->scan_done = strcmp(cl->scan_cursor, "0") == 0;
	plen = strlen(cl->prefix);
	for (size_t i = 0; i < r->element[1]->elements; i++) {
		const redisReply *k = r->element[1]->element[i];
		const char *argv[3];
		size_t lens[3];

		if (k->type != REDIS_REPLY_STRING || k->len < plen + 2)
			continue;
		if (k->str[plen] == 'e' && k->str[plen + 1] == ':') {
			argv[0] = "HGET";
			argv[2] = "m";
		} else if (k->str[plen] == 'h' && k->str[plen + 1] == ':') {
			argv[0] = "HGETALL";
		} else {
			continue;
		}
		argv[1] = k->str;
		lens[0] = strlen(argv[0]);
		lens[1] = k->len;
		lens[2] = 1;
		if (cl_cmd_send(cl, on_sync_entry, NULL, argv[0][1] == 'G' ? 3 : 2,
				argv, lens) == 0)
			cl->sync_outstanding++;
	}
	if (cl->sync_outstanding == 0) {
		if (!cl->scan_done)
			scan_next(cl);
		sync_maybe_done(cl);
	}
}

static void scan_next(struct cluster *cl)
{
	const char *argv[6] = {"SCAN", cl->scan_cursor, "MATCH", cl->scan_match,
			       "COUNT", SCAN_COUNT};
	size_t lens[6];

	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	if (cl_cmd_send(cl, on_scan, NULL, 6, argv, lens) != 0)
		cl_drop(cl, "cannot send SCAN");
}

/* ---- republishing what this node wrote, after Redis lost it ----------- */

static void on_republished(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = cl_reply_begin(ac, reply);

	(void)priv;
	if (!cl)
		return;
	if (cl->repub_inflight)
		cl->repub_inflight--;
	if (cl->repub_inflight == 0)
		republish_step(cl);
}

static void republish_step(struct cluster *cl)
{
	int64_t now = clock_wall_ms();
	char hkey[CFG_PREFIX_MAX + STORE_KEY_MAX + 8];

	while (cl->republishing && cl->repub_bucket < cl->nbuckets &&
	       cl->repub_inflight < REPUBLISH_BATCH) {
		for (struct cl_key *k = cl->buckets[cl->repub_bucket]; k; k = k->next) {
			const struct cl_hit *h;
			size_t blen;

			if (k->expires_ms <= now)
				continue;
			/*
			 * Every node's own hit record goes back too, whoever
			 * wrote the entry: a node that resyncs later must
			 * see the same records as the others hold.
			 */
			if (!k->deleted && (h = cl_hit_own(cl, k)) &&
			    cl_hit_send(cl, k, h, on_republished) == 0) {
				cl->repub_inflight++;
				cl->m_hit_writes++;
			}
			if (!k->mine)
				continue;
			if (k->deleted) {
				blen = clc_encode_del(cl->node, 0, k->kind, k->key,
						      k->key_len, k->expires_ms,
						      cl->body, sizeof(cl->body));
			} else if (store_lookup(cl->hooks.store, k->kind, k->key,
						k->key_len, now, &cl->scratch) == 0) {
				blen = clc_encode_put(cl->node, 0, &cl->scratch,
						      cl->body, sizeof(cl->body));
			} else {
				continue;
			}
			cl_entry_key(cl, hkey, sizeof(hkey), 'e', k->kind, k->key);
			if (blen && cl_send_write(cl, 'r', k->version, hkey,
						  k->expires_ms, k->deleted, blen,
						  on_republished, NULL) == 0) {
				cl->repub_inflight++;
				cl->repub_count++;
				cl->m_republished++;
			}
		}
		cl->repub_bucket++;
	}
	if (cl->repub_bucket >= cl->nbuckets && cl->republishing &&
	    cl->repub_inflight == 0) {
		cl->republishing = false;
		log_info("cluster: re-published %llu entr%s written through "
			 "this node", (unsigned long long)cl->repub_count,
			 cl->repub_count == 1 ? "y" : "ies");
	}
}

/* ---- the subscription ------------------------------------------------- */

void cl_on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ac->data;
	redisReply *r = reply;
	const redisReply *type, *ch, *payload;

	(void)priv;
	if (!cl || !r)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		char err[256];
		if (cl_is_error(r, err, sizeof(err)))
			cl_drop(cl, "SUBSCRIBE refused: %s", err);
		return;
	}
	type = r->element[0];
	ch = r->element[1];
	payload = r->element[2];
	if (type->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
		return;
	if (type->len == 9 && memcmp(type->str, "subscribe", 9) == 0) {
		if (payload->type == REDIS_REPLY_INTEGER && payload->integer == 3 &&
		    !cl->subscribed) {
			/* Nothing published from now on is missed: scan after the beat. */
			cl->subscribed = true;
			cl->master_fails = 0;
			cl->redis_up = true;
			cl->state = CLUSTER_SYNCING;
			snprintf(cl->cause, sizeof(cl->cause), "loading the "
				 "cluster's entries from Redis");
			event_del(cl->connect_to_ev);
			beat(cl);
		}
		return;
	}
	if (type->len != 7 || memcmp(type->str, "message", 7) != 0 ||
	    payload->type != REDIS_REPLY_STRING)
		return;
	if (ch->len == strlen(cl->ch_events) &&
	    memcmp(ch->str, cl->ch_events, ch->len) == 0) {
		handle_message(cl, payload->str, payload->len, true);
	} else if (ch->len == strlen(cl->ch_acks) &&
		   memcmp(ch->str, cl->ch_acks, ch->len) == 0) {
		char node[CLC_NODE_MAX + 1];
		uint64_t id;

		if (clc_ack_decode(payload->str, payload->len, &id, node) != 0) {
			cl->m_bad++;
			return;
		}
		cl_write_acked(cl, id, node);
	} else if (ch->len == strlen(cl->ch_members) &&
		   memcmp(ch->str, cl->ch_members, ch->len) == 0 &&
		   payload->len > 1 && (payload->str[0] == '+' || payload->str[0] == '-') &&
		   clc_node_valid(payload->str + 1, payload->len - 1)) {
		char node[CLC_NODE_MAX + 1];

		memcpy(node, payload->str + 1, payload->len - 1);
		node[payload->len - 1] = '\0';
		if (payload->str[0] == '+')
			node_joined(cl, node);
		else
			node_left(cl, node);
	}
}
