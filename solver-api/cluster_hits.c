/*
 * Cluster mode's hit records: the last validation hit each node saw for an
 * entry, which the API shows beside it. Once per HIT_INTERVAL_MS a node
 * reads its proxy's statistics and writes, for each key hit since, one
 * record: its newest hit. Redis keeps one record per node in a hash beside
 * the entry's, expiring with it, and publishes it on the event channel, so
 * that every node holds every node's records.
 *
 * A key on hit_list (cand_listed) is kept by the key table until the timer
 * or a drop takes it off the list: the list holds pointers to keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/edge.h"
#include "common/priv.h"
#include "solver-api/cluster_int.h"

#define HIT_LOOKBACK_MS 5000
#define HITS_PER_KEY 16

/* node's record among k's, or NULL. */
static struct cl_hit *hit_find(const struct cl_key *k, const char *node)
{
	for (unsigned i = 0; i < k->nhits; i++)
		if (strcmp(k->hits[i].node, node) == 0)
			return &k->hits[i];
	return NULL;
}

void cl_hit_store(struct cl_key *k, const char *node, int64_t time_ms,
		  uint8_t outcome, const char *peer)
{
	struct cl_hit *h = hit_find(k, node);

	if (!h && !k->hits) {
		k->hits = calloc(HITS_PER_KEY, sizeof(*k->hits));
		BUG_ON(!k->hits);
	}
	if (!h && k->nhits < HITS_PER_KEY)
		h = &k->hits[k->nhits++];
	if (!h) {
		/* Full: the node with the oldest record makes room. */
		h = &k->hits[0];
		for (unsigned i = 1; i < k->nhits; i++)
			if (k->hits[i].time_ms < h->time_ms)
				h = &k->hits[i];
	} else if (h->node[0] && h->time_ms >= time_ms) {
		return;
	}
	snprintf(h->node, sizeof(h->node), "%s", node);
	snprintf(h->peer, sizeof(h->peer), "%s", peer);
	h->time_ms = time_ms;
	h->outcome = outcome;
}

static void collect_hit(const struct pstats_hit *h, void *arg)
{
	struct cluster *cl = arg;
	struct cl_key *k = cl_key_find(cl, h->kind, h->key, h->key_len);

	if (!k || k->deleted || h->time_ms <= k->hit_sent_time ||
	    h->time_ms <= k->cand.time_ms)
		return;
	if (!k->cand_listed) {
		if (cl->nhit_list >= HIT_WRITES_MAX)
			return;
		cl->hit_list[cl->nhit_list++] = k;
		k->cand_listed = true;
	}
	snprintf(k->cand.peer, sizeof(k->cand.peer), "%s", h->peer);
	k->cand.time_ms = h->time_ms;
	k->cand.outcome = h->outcome;
}

/*
 * Writes h, this node's record for k, to k's hit hash and the event
 * channel. fn gets the reply. Returns cl_cmd_send()'s answer, or -1 when
 * the record does not encode (a peer address too long cannot happen: the
 * proxy bounds it).
 */
int cl_hit_send(struct cluster *cl, const struct cl_key *k,
		const struct cl_hit *h, redisCallbackFn *fn)
{
	char hkey[CFG_PREFIX_MAX + STORE_KEY_MAX + 8], exp[24];
	char msg[CLC_VERSION_DIGITS + 2 + 600];
	const char *argv[8];
	size_t lens[8], n, blen;

	n = clc_version_prefix(0, msg, sizeof(msg));
	blen = clc_encode_hit(cl->node, k->kind, k->key, k->key_len, h->time_ms,
			      h->outcome, h->peer, (uint8_t *)msg + n,
			      sizeof(msg) - n);
	if (!blen)
		return -1;
	cl_entry_key(cl, hkey, sizeof(hkey), 'h', k->kind, k->key);
	snprintf(exp, sizeof(exp), "%lld", (long long)k->expires_ms);
	argv[0] = "EVALSHA";
	argv[1] = cl->sha[SC_HIT];
	argv[2] = "1";
	argv[3] = hkey;
	argv[4] = cl->node;
	argv[5] = msg;
	argv[6] = exp;
	argv[7] = cl->ch_events;
	for (int j = 0; j < 8; j++)
		lens[j] = strlen(argv[j]);
	lens[5] = n + blen;
	return cl_cmd_send(cl, fn, NULL, 8, argv, lens);
}

/* This node's own record among k's, or NULL. */
const struct cl_hit *cl_hit_own(const struct cluster *cl, const struct cl_key *k)
{
	return hit_find(k, cl->node);
}

void cl_on_hit_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	char path[CFG_PATH_MAX + 16], err[256];
	struct pstats *ps;
	int64_t now = clock_wall_ms();
	unsigned keep = 0;

	(void)fd;
	(void)what;
	if (cl->state != CLUSTER_READY)
		return;
	pstats_path(cl->store_path, path, sizeof(path));
	if (pstats_open(path, priv_uid(PRIV_PROXY), &ps, err, sizeof(err)) != 0)
		return;
	pstats_hits_since(ps, now - HIT_LOOKBACK_MS, collect_hit, cl);
	pstats_close(ps);
	for (unsigned i = 0; i < cl->nhit_list; i++) {
		struct cl_key *k = cl->hit_list[i];

		if (k->deleted) {
			k->cand_listed = false;
			continue;
		}
		/* Coalesced: one write per key per interval, the newest hit. */
		if (now - k->hit_sent_ms < HIT_INTERVAL_MS) {
			cl->hit_list[keep++] = k;
			continue;
		}
		k->cand_listed = false;
		cl_hit_store(k, cl->node, k->cand.time_ms, k->cand.outcome, k->cand.peer);
		k->hit_sent_ms = now;
		k->hit_sent_time = k->cand.time_ms;
		if (cl_hit_send(cl, k, &k->cand, cl_on_ignored) == 0)
			cl->m_hit_writes++;
	}
	cl->nhit_list = keep;
}

/* The candidates are collected again once the node is ready. */
void cl_hits_disconnected(struct cluster *cl)
{
	for (unsigned i = 0; i < cl->nhit_list; i++)
		cl->hit_list[i]->cand_listed = false;
	cl->nhit_list = 0;
}

static json_t *hit_json(const char *node, int64_t time_ms, const char *peer,
			uint8_t outcome)
{
	char when[32];
	time_t t = (time_t)(time_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:s, s:s, s:s}", "node", node, "time", when,
			 "peer", peer, "outcome", pstats_outcome_name(outcome));
}

json_t *cluster_hits_json(const struct cluster *cl, uint8_t kind,
			  const char *key, size_t key_len,
			  const struct pstats_hit *local)
{
	const struct cl_key *k = cl_key_find(cl, kind, key, key_len);
	json_t *arr = json_array();
	bool self_done = false;

	for (unsigned i = 0; k && i < k->nhits; i++) {
		const struct cl_hit *h = &k->hits[i];
		/* This node's own: the proxy's record is fresher than the coalesced one. */
		if (local && strcmp(h->node, cl->node) == 0) {
			self_done = true;
			if (local->time_ms > h->time_ms) {
				json_array_append_new(arr, hit_json(cl->node, local->time_ms,
								    local->peer,
								    local->outcome));
				continue;
			}
		}
		json_array_append_new(arr, hit_json(h->node, h->time_ms, h->peer,
						    h->outcome));
	}
	if (local && !self_done)
		json_array_append_new(arr, hit_json(cl->node, local->time_ms,
						    local->peer, local->outcome));
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}
