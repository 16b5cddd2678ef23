/*
 * Cluster mode's write path: a write started here (cluster_put,
 * cluster_delete) goes to Redis through the write script, then waits until
 * enough of the nodes that were live when it started confirm it, or until
 * ack_timeout_ms. A write that started (cluster_put or cluster_delete
 * returned 0) is answered exactly once: write_finish() is the only way off
 * the pending list, and it calls done and frees the write.
 *
 * A write is acknowledged only once the script answered and this node
 * applied it itself (from the script's reply or from the channel, whichever
 * came first): the reply to the client shows the entry as stored here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/edge.h"
#include "solver-api/cluster_int.h"

#define PENDING_MAX 1024

struct cl_write {
	struct cl_write *next;
	struct cluster *cl;
	uint64_t id;
	cluster_done_fn done;
	void *arg;
	uint64_t started_us;
	struct event *timer;
	bool is_delete;
	bool script_done;
	bool applied_self;
	int store_ret;
	uint64_t version;
	unsigned nnodes, needed;
	uint64_t acked;			/* bit i: nodes[i] confirmed */
	uint64_t gone;			/* bit i: nodes[i] stopped cleanly meanwhile */
	char nodes[NODES_MAX][CLC_NODE_MAX + 1];
	uint8_t kind;
	uint8_t key_len;
	int64_t expires_ms;
	char key[STORE_KEY_MAX + 1];
	struct store_entry entry;	/* a put */
};

/* ---- writes: completion ----------------------------------------------- */

static struct cl_write *write_find(struct cluster *cl, uint64_t id)
{
	for (struct cl_write *w = cl->pending; w; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

static void write_finish(struct cl_write *w, enum cluster_outcome outcome,
			 const char *detail)
{
	struct cluster *cl = w->cl;
	const char *missing[NODES_MAX];
	struct cluster_result r = {0};
	unsigned acked = 0;

	for (struct cl_write **l = &cl->pending; *l; l = &(*l)->next) {
		if (*l == w) {
			*l = w->next;
			break;
		}
	}
	cl->npending--;
	for (unsigned i = 0; i < w->nnodes; i++) {
		if (w->acked & (1ull << i))
			acked++;
		else
			missing[r.nmissing++] = w->nodes[i];
	}
	if (outcome == CLUSTER_ACKED) {
		cl->m_acked++;
		cl_observe_ack(cl, (double)(clock_mono_us() - w->started_us) / 1e6);
		/* The reply shows the entry as this node's store holds it. */
		if (!w->is_delete)
			store_lookup(cl->hooks.store, w->entry.kind, w->entry.key,
				     w->entry.key_len, clock_wall_ms(), &w->entry);
	} else if (outcome == CLUSTER_TIMED_OUT) {
		cl->m_timed_out++;
	} else {
		cl->m_failed++;
	}
	r.outcome = outcome;
	r.store_ret = w->store_ret;
	r.entry = w->is_delete ? NULL : &w->entry;
	r.detail = detail;
	r.missing = missing;
	r.acked = acked;
	r.needed = w->needed;
	r.live = w->nnodes;
	if (w->timer)
		event_free(w->timer);
	w->done(w->arg, &r);
	free(w);
}

/* What a write needs: of the nodes it waits for, less those that left. */
static unsigned write_needed(const struct cl_write *w, enum cfg_ack ack)
{
	unsigned n = w->nnodes - (unsigned)__builtin_popcountll(w->gone);

	return ack == ACK_ALL ? n : n / 2 + 1;
}

static void write_check(struct cl_write *w)
{
	unsigned acked = 0;

	if (!w->script_done || !w->applied_self)
		return;
	for (unsigned i = 0; i < w->nnodes; i++)
		if (w->acked & ~w->gone & (1ull << i))
			acked++;
	if (acked >= w->needed)
		write_finish(w, CLUSTER_ACKED, "applied");
}

static void write_acked_by(struct cl_write *w, const char *node)
{
	for (unsigned i = 0; i < w->nnodes; i++) {
		if (strcmp(w->nodes[i], node) == 0) {
			w->acked |= 1ull << i;
			write_check(w);
			return;
		}
	}
}

static void write_applied(struct cl_write *w, int store_ret)
{
	w->applied_self = true;
	w->store_ret = store_ret;
	write_acked_by(w, w->cl->node);
}

/* This node's own write came back on the channel and is applied here. */
void cl_write_applied(struct cluster *cl, uint64_t id, int store_ret)
{
	struct cl_write *w = write_find(cl, id);

	if (w && !w->applied_self)
		write_applied(w, store_ret);
}

/* An ack for a write that no longer waits is dropped. */
void cl_write_acked(struct cluster *cl, uint64_t id, const char *node)
{
	struct cl_write *w = write_find(cl, id);

	if (w)
		write_acked_by(w, node);
}

/* A node that stopped cleanly (node_left): no write waits for it any more. */
void cl_writes_node_left(struct cluster *cl, const char *node)
{
	for (struct cl_write *w = cl->pending, *next; w; w = next) {
		next = w->next;
		for (unsigned i = 0; i < w->nnodes; i++) {
			if (strcmp(w->nodes[i], node) == 0 && !(w->acked & (1ull << i))) {
				w->gone |= 1ull << i;
				w->needed = write_needed(w, cl->ack);
				write_check(w);
				break;
			}
		}
	}
}

/* Writes whose script reply is lost may or may not be in Redis. */
void cl_writes_disconnected(struct cluster *cl)
{
	for (struct cl_write *w = cl->pending, *next; w; w = next) {
		next = w->next;
		if (!w->script_done)
			write_finish(w, CLUSTER_FAILED, "lost the connection to "
				     "Redis; the write may or may not be stored");
	}
}

void cl_writes_stop(struct cluster *cl)
{
	while (cl->pending)
		write_finish(cl->pending, CLUSTER_FAILED, "the node is stopping");
}

static void on_write_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cl_write *w = arg;

	(void)fd;
	(void)what;
	if (!w->script_done)
		write_finish(w, CLUSTER_FAILED, "Redis did not answer within "
			     "ack_timeout_ms; the write may or may not be stored");
	else if (!w->applied_self)
		write_finish(w, CLUSTER_STORE_FULL, "stored in the cluster, but "
			     "this node's token store refused it");
	else
		write_finish(w, CLUSTER_TIMED_OUT, "stored in the cluster, but not "
			     "every node confirmed it within ack_timeout_ms");
}

/* ---- starting a write ------------------------------------------------- */

int cl_send_write(struct cluster *cl, char mode, uint64_t version,
		  const char *hkey, int64_t expires, bool tomb,
		  size_t blen, redisCallbackFn *fn, void *priv)
{
	char ver[24], exp[24];
	const char *argv[11] = {"EVALSHA", cl->sha[SC_WRITE], "2", hkey, cl->k_ver,
				mode == 'w' ? "w" : "r", ver, exp,
				tomb ? "1" : "0", (const char *)cl->body,
				cl->ch_events};
	size_t lens[11];

	snprintf(ver, sizeof(ver), "%llu", (unsigned long long)version);
	snprintf(exp, sizeof(exp), "%lld", (long long)expires);
	for (int i = 0; i < 11; i++)
		lens[i] = i == 9 ? blen : strlen(argv[i]);
	return cl_cmd_send(cl, fn, priv, 11, argv, lens);
}

static struct cl_write *write_start(struct cluster *cl, cluster_done_fn done,
				    void *arg, const char **why)
{
	struct cl_write *w;

	if (cl->state != CLUSTER_READY || cl->stopping) {
		cl->m_refused++;
		*why = cl->stopping ? "the node is stopping" : cl->cause;
		return NULL;
	}
	if (cl->npending >= PENDING_MAX || cl->inflight >= INFLIGHT_MAX) {
		cl->m_refused++;
		*why = "too many writes are waiting for the cluster; retry";
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	BUG_ON(!w);
	w->cl = cl;
	w->id = cl->next_id++;
	w->done = done;
	w->arg = arg;
	w->started_us = clock_mono_us();
	/* Those live now must confirm; self always counts. */
	for (unsigned i = 0; i < cl->nlive; i++)
		strcpy(w->nodes[w->nnodes++], cl->live[i]);
	if (!cl_in_list(w->nodes, w->nnodes, cl->node) && w->nnodes < NODES_MAX)
		strcpy(w->nodes[w->nnodes++], cl->node);
	w->needed = write_needed(w, cl->ack);
	return w;
}

static void on_write_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = cl_reply_begin(ac, reply);
	redisReply *r = reply;
	struct cl_write *w;
	uint64_t id = (uint64_t)(uintptr_t)priv, v;
	struct clc_event ev = {0};
	char err[256];
	int ret;

	if (!cl || !(w = write_find(cl, id)))
		return;
	if (cl_is_error(r, err, sizeof(err))) {
		if (!strncmp(err, "READONLY", 8) || !strncmp(err, "NOSCRIPT", 8)) {
			write_finish(w, CLUSTER_FAILED, "Redis refused the write; "
				     "reconnecting");
			cl_drop(cl, "write refused: %s", err);
			return;
		}
		write_finish(w, CLUSTER_FAILED, "Redis refused the write");
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    !cl_reply_u64(r->element[1], &v)) {
		write_finish(w, CLUSTER_FAILED, "unexpected reply from Redis");
		return;
	}
	if (r->element[0]->integer != 1) {
		write_finish(w, CLUSTER_FAILED, "the entry expired before it was "
			     "written");
		return;
	}
	w->script_done = true;
	w->version = v;
	if (!w->applied_self) {
		ev.version = v;
		ev.op = w->is_delete ? CLC_DEL : CLC_PUT;
		ev.kind = w->kind;
		ev.key_len = w->key_len;
		memcpy(ev.key, w->key, (size_t)w->key_len + 1);
		snprintf(ev.origin, sizeof(ev.origin), "%s", cl->node);
		ev.write_id = w->id;
		ev.expires_ms = w->expires_ms;
		/* apply_put fills version and slot: apply a copy, keep ours. */
		if (!w->is_delete)
			memcpy(&cl->scratch, &w->entry, sizeof(cl->scratch));
		ret = cl_apply_event(cl, &ev, &cl->scratch);
		if (ret >= 0) {
			write_applied(w, ret);
			return;
		}
		if (ret == -ENOSPC) {
			write_finish(w, CLUSTER_STORE_FULL, "stored in the cluster, "
				     "but this node's token store is full");
			return;
		}
	}
	write_check(w);
}

static int write_send(struct cluster *cl, struct cl_write *w, size_t blen,
		      const char **why)
{
	char hkey[CFG_PREFIX_MAX + STORE_KEY_MAX + 8];

	cl_entry_key(cl, hkey, sizeof(hkey), 'e', w->kind, w->key);
	if (!blen || cl_send_write(cl, 'w', cl->max_version, hkey, w->expires_ms,
				   w->is_delete, blen, on_write_reply,
				   (void *)(uintptr_t)w->id) != 0) {
		free(w);
		cl->m_refused++;
		*why = "cannot send the write to Redis";
		return -1;
	}
	w->timer = evtimer_new(cl->base, on_write_timeout, w);
	BUG_ON(!w->timer);
	cl_arm(w->timer, cl->ack_timeout_ms);
	w->next = cl->pending;
	cl->pending = w;
	cl->npending++;
	return 0;
}

int cluster_put(struct cluster *cl, const struct store_entry *e,
		cluster_done_fn done, void *arg, const char **why)
{
	struct cl_write *w = write_start(cl, done, arg, why);

	if (!w)
		return -1;
	memcpy(&w->entry, e, offsetof(struct store_entry, payload) + e->payload_len);
	w->kind = e->kind;
	w->key_len = e->key_len;
	memcpy(w->key, e->key, (size_t)e->key_len + 1);
	w->expires_ms = e->expires_ms;
	return write_send(cl, w, clc_encode_put(cl->node, w->id, e, cl->body,
						sizeof(cl->body)), why);
}

int cluster_delete(struct cluster *cl, enum store_kind kind, const char *key,
		   size_t key_len, int64_t expires_ms, cluster_done_fn done,
		   void *arg, const char **why)
{
	struct cl_write *w = write_start(cl, done, arg, why);

	if (!w)
		return -1;
	w->is_delete = true;
	w->kind = (uint8_t)kind;
	w->key_len = (uint8_t)key_len;
	memcpy(w->key, key, key_len);
	w->key[key_len] = '\0';
	/* The tombstone outlives the entry, so no older write can revive it. */
	w->expires_ms = expires_ms + TOMB_MIN_MS;
	return write_send(cl, w, clc_encode_del(cl->node, w->id, (uint8_t)kind, key,
						key_len, w->expires_ms, cl->body,
						sizeof(cl->body)), why);
}
