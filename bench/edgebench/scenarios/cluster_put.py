"""Cluster mode: a PUT on one of three nodes (one Redis) until every node
answers it, both kinds (bench/edgebench/cluster.py). No peer has a cluster
mode, and neither the proxy's I/O backend nor its worker count plays a
part: acme-edge alone, at the first worker count only."""
from .. import cluster
from . import Scenario

NODES = 3


class ClusterScenario(Scenario):
    def servers(self, ctx):
        return ["acme-edge"] if ctx.workers == ctx.worker_counts[0] else []


def run(ctx, server):
    puts = 50 if ctx.quick else 1000
    # Ports base+40 onwards: clear of the servers' (bench/README.md).
    ports = iter(range(ctx.port_base + 40, ctx.port_base + 41 + 3 * NODES))
    try:
        lat = cluster.put_latency(ctx.exe, NODES, puts, ctx.work, lambda: next(ports))
    except (cluster.Failed, OSError) as e:
        return {"error": str(e)}
    s = cluster.summary(lat)
    took = sum(sum(v) for v in lat.values())
    return {"rate": 2 * puts / took, "n": 2 * puts, "cpu": 0, "fail": 0,
            "lat": {"50": s["http-01"]["50"] * 1000, "99": s["http-01"]["99"] * 1000},
            "cluster": s}


SCENARIO = ClusterScenario(150, "cluster-put",
                           "Cluster mode: from a PUT on one of 3 nodes to answered by all",
                           "PUT/s", (), run, kind="cluster")
