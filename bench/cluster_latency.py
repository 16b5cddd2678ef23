#!/usr/bin/python3
"""
Cluster mode, alone and for any node counts: how long from a PUT on one
node until every node answers the challenge (bench/edgebench/cluster.py
says how it is measured). `bench/run` measures 3 nodes as its cluster-put
scenario; this runs the same measure for 3 and 10 nodes by default.

    bench/cluster_latency.py [--puts 1000] [--nodes 3,10] [--acme-edge PATH]

Prints a Markdown table: p50, p99 and max per node count and kind.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
from edgebench import cluster  # noqa: E402
from ports import free_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--puts", type=int, default=1000)
    ap.add_argument("--nodes", default="3,10")
    ap.add_argument("--acme-edge", default=os.path.join(ROOT, "build/release/acme-edge"))
    args = ap.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is needed (deploy/install-deps.sh --test)")
    work = tempfile.mkdtemp(prefix="acme-edge-bench-cluster-")
    rows = []
    try:
        for n in [int(x) for x in args.nodes.split(",")]:
            try:
                lat = cluster.put_latency(args.acme_edge, n, args.puts, work, free_port)
            except cluster.Failed as e:
                raise SystemExit("%d nodes: %s" % (n, e))
            for kind, s in cluster.summary(lat).items():
                rows.append((n, kind, s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| nodes | kind | PUTs | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, kind, s in rows:
        print("| %d | %s | %d | %.2f | %.2f | %.2f |" % (n, kind, s["n"], s["50"], s["99"],
                                                       s["max"]))


if __name__ == "__main__":
    main()
