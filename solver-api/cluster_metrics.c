/*
 * Cluster mode as an operator sees it: the acmeedge_cluster_* metrics and
 * this node's part of /healthz. Nothing here changes the cluster's state
 * but the latency histogram, which the write path feeds.
 */
#include <event2/buffer.h>
#include <jansson.h>

#include "solver-api/cluster_int.h"

static const double lat_bounds[LAT_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5,
};

/* Each bucket counts every write at or under its bound: cumulative already. */
void cl_observe_ack(struct cluster *cl, double seconds)
{
	cl->m_lat_count++;
	cl->m_lat_sum += seconds;
	for (int i = 0; i < LAT_BUCKETS; i++)
		if (seconds <= lat_bounds[i])
			cl->m_lat_bucket[i]++;
}

void cluster_metrics(const struct cluster *cl, struct evbuffer *b)
{
	static const char *const states[3] = {"syncing", "ready", "degraded"};
	uint64_t cum = 0;

	evbuffer_add_printf(b,
		"# HELP acmeedge_cluster_info This node's name and ack mode.\n"
		"# TYPE acmeedge_cluster_info gauge\n"
		"acmeedge_cluster_info{node=\"%s\",ack=\"%s\"} 1\n"
		"# HELP acmeedge_cluster_redis_up Whether this node is connected "
		"to Redis and subscribed.\n"
		"# TYPE acmeedge_cluster_redis_up gauge\nacmeedge_cluster_redis_up %d\n"
		"# HELP acmeedge_cluster_state 1 for the state this node is in.\n"
		"# TYPE acmeedge_cluster_state gauge\n",
		cl->node, cl->ack == ACK_ALL ? "all" : "quorum", cl->redis_up);
	for (int i = 0; i < 3; i++)
		evbuffer_add_printf(b, "acmeedge_cluster_state{state=\"%s\"} %d\n",
				    states[i], (int)cl->state == i);
	evbuffer_add_printf(b,
		"# HELP acmeedge_cluster_nodes_live Nodes with a fresh heartbeat, "
		"this one included.\n# TYPE acmeedge_cluster_nodes_live gauge\n"
		"acmeedge_cluster_nodes_live %u\n"
		"# HELP acmeedge_cluster_writes_total Replicated writes started "
		"here, by result.\n# TYPE acmeedge_cluster_writes_total counter\n"
		"acmeedge_cluster_writes_total{result=\"acknowledged\"} %llu\n"
		"acmeedge_cluster_writes_total{result=\"timed_out\"} %llu\n"
		"acmeedge_cluster_writes_total{result=\"failed\"} %llu\n"
		"acmeedge_cluster_writes_total{result=\"refused\"} %llu\n"
		"# HELP acmeedge_cluster_resyncs_total Full loads of the entry set "
		"from Redis (start and every reconnect).\n"
		"# TYPE acmeedge_cluster_resyncs_total counter\n"
		"acmeedge_cluster_resyncs_total %llu\n"
		"# HELP acmeedge_cluster_reconnects_total Reconnection attempts.\n"
		"# TYPE acmeedge_cluster_reconnects_total counter\n"
		"acmeedge_cluster_reconnects_total %llu\n"
		"# HELP acmeedge_cluster_events_applied_total Versions applied to "
		"this node's store.\n"
		"# TYPE acmeedge_cluster_events_applied_total counter\n"
		"acmeedge_cluster_events_applied_total %llu\n"
		"# HELP acmeedge_cluster_messages_malformed_total Messages from "
		"Redis that did not decode.\n"
		"# TYPE acmeedge_cluster_messages_malformed_total counter\n"
		"acmeedge_cluster_messages_malformed_total %llu\n"
		"# HELP acmeedge_cluster_republished_total Entries re-published "
		"after Redis lost its data.\n"
		"# TYPE acmeedge_cluster_republished_total counter\n"
		"acmeedge_cluster_republished_total %llu\n"
		"# HELP acmeedge_cluster_hit_writes_total Hit records written to "
		"Redis (coalesced).\n"
		"# TYPE acmeedge_cluster_hit_writes_total counter\n"
		"acmeedge_cluster_hit_writes_total %llu\n"
		"# HELP acmeedge_cluster_ack_seconds From a write's start to its "
		"acknowledgement by enough nodes.\n"
		"# TYPE acmeedge_cluster_ack_seconds histogram\n",
		cl->nlive, (unsigned long long)cl->m_acked,
		(unsigned long long)cl->m_timed_out, (unsigned long long)cl->m_failed,
		(unsigned long long)cl->m_refused, (unsigned long long)cl->m_resyncs,
		(unsigned long long)cl->m_reconnects,
		(unsigned long long)cl->m_applied, (unsigned long long)cl->m_bad,
		(unsigned long long)cl->m_republished,
		(unsigned long long)cl->m_hit_writes);
	for (int i = 0; i < LAT_BUCKETS; i++) {
		cum = cl->m_lat_bucket[i];
		evbuffer_add_printf(b, "acmeedge_cluster_ack_seconds_bucket{le=\"%g\"} "
				    "%llu\n", lat_bounds[i], (unsigned long long)cum);
	}
	evbuffer_add_printf(b,
		"acmeedge_cluster_ack_seconds_bucket{le=\"+Inf\"} %llu\n"
		"acmeedge_cluster_ack_seconds_sum %.6f\n"
		"acmeedge_cluster_ack_seconds_count %llu\n",
		(unsigned long long)cl->m_lat_count, cl->m_lat_sum,
		(unsigned long long)cl->m_lat_count);
}

json_t *cluster_health_json(const struct cluster *cl)
{
	json_t *live = json_array();

	for (unsigned i = 0; i < cl->nlive; i++)
		json_array_append_new(live, json_string(cl->live[i]));
	return json_pack("{s:s, s:o, s:s, s:s?}", "node", cl->node, "live", live,
			 "redis", cl->redis_up ? "up" : "down", "cause",
			 cl->state == CLUSTER_READY ? NULL : cl->cause);
}
