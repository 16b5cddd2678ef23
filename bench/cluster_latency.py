#!/usr/bin/python3
"""
Cluster mode: how long from a PUT on one node until every node answers the
challenge, for 3 and for 10 nodes on loopback sharing one redis-server.

Each node is an `acme-edge run` (one proxy worker) with `ack = all`, so a
PUT returns only once every live node applied it: the PUT's own latency,
taken on the client, is the time to answered-everywhere. That it really is
answered everywhere is checked, untimed, after every PUT: an http-01 GET on
every node's :80, and for tls-alpn-01 an acme-tls/1 handshake on every
node's :443 (every 10th PUT; each handshake costs a core-millisecond).

    bench/cluster_latency.py [--puts 1000] [--nodes 3,10] [--acme-edge PATH]

Prints a Markdown table (p50, p99, max per node count and kind). Apart from
bench/edgebench: its scenarios compare one server against nginx and HAProxy
on the same load, and this has no peer to compare with.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
from ports import free_port  # noqa: E402

THUMB = "0123456789012345678901234567890123456789abc"
BEARER = "bench-cluster-token"


def wait(what, fn, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("%s: not within %ds" % (what, timeout))


def token(i, kind):
    return ("%s%06d" % (kind[0], i)).ljust(43, "x")


def http01(port, tok):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/.well-known/acme-challenge/" + tok,
                  headers={"Host": "bench.example"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def alpn_cert(port, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as t:
            return t.getpeercert(binary_form=True)


def run(acme_edge, nnodes, puts, work):
    redis_port = free_port()
    procs = []
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(redis)
    nodes = []
    try:
        for i in range(nnodes):
            n = {"name": "n%d" % i, "api": free_port(), "http": free_port(),
                 "https": free_port(), "store": "/dev/shm/acme-edge-bench-cl-%d-%d" % (
                     os.getpid(), i)}
            conf = os.path.join(work, n["name"] + ".conf")
            with open(conf, "w") as f:
                f.write("[store]\npath = %s\ncapacity = 4096\n[api]\nlisten = 127.0.0.1:%d\n"
                        "[client bench]\ntoken_sha256 = %s\nidentifiers = *\n"
                        "[proxy]\nhttp = 127.0.0.1:%d\nhttps = 127.0.0.1:%d\nworkers = 1\n"
                        "http_miss = 404\ntls_miss = reject\n[log]\nlevel = warn\n"
                        "[cluster]\nredis = 127.0.0.1:%d\nnode = %s\nack = all\n"
                        "prefix = bench%d:\n" % (
                            n["store"], n["api"], hashlib.sha256(BEARER.encode()).hexdigest(),
                            n["http"], n["https"], redis_port, n["name"], redis_port))
            n["log"] = open(os.path.join(work, n["name"] + ".log"), "wb")
            procs.append(subprocess.Popen([acme_edge, "run", "-c", conf],
                                          stdout=n["log"], stderr=subprocess.STDOUT))
            nodes.append(n)

        def live_everywhere():
            for n in nodes:
                c = http.client.HTTPConnection("127.0.0.1", n["api"], timeout=2)
                c.request("GET", "/healthz")
                r = c.getresponse()
                h = json.loads(r.read())
                c.close()
                if r.status != 200 or len(h["cluster"]["live"]) != nnodes:
                    return False
            return True
        wait("%d nodes ready and live" % nnodes, live_everywhere)

        api = http.client.HTTPConnection("127.0.0.1", nodes[0]["api"], timeout=10)
        auth = {"Authorization": "Bearer " + BEARER}
        out = {}
        for kind in ("http-01", "tls-alpn-01"):
            lat = []
            for i in range(puts):
                tok = token(i, kind)
                ka = "%s.%s" % (tok, THUMB)
                path = ("/v1/http-01/" + tok if kind == "http-01"
                        else "/v1/tls-alpn-01/b%d.bench.example" % i)
                t0 = time.perf_counter()
                api.request("PUT", path, body=ka, headers=auth)
                r = api.getresponse()
                body = r.read()
                lat.append(time.perf_counter() - t0)
                if r.status != 201:
                    raise SystemExit("PUT %s: %d %r" % (path, r.status, body))
                if kind == "http-01":
                    for n in nodes:
                        if http01(n["http"], tok) != (200, ka):
                            raise SystemExit("node %s does not answer %s" % (n["name"], tok))
                elif i % 10 == 0:
                    certs = {alpn_cert(n["https"], "b%d.bench.example" % i) for n in nodes}
                    if len(certs) != 1:
                        raise SystemExit("nodes present different certificates")
            out[kind] = lat
        api.close()
        return out
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        for n in nodes:
            n["log"].close()
            for suffix in ("", ".lock", ".proxy"):
                try:
                    os.unlink(n["store"] + suffix)
                except OSError:
                    pass


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--puts", type=int, default=1000)
    ap.add_argument("--nodes", default="3,10")
    ap.add_argument("--acme-edge", default=os.path.join(ROOT, "build/release/cmd/acme-edge"))
    args = ap.parse_args()
    for tool in ("redis-server",):
        if not shutil.which(tool):
            raise SystemExit("%s is needed (deploy/install-deps.sh --test)" % tool)
    work = tempfile.mkdtemp(prefix="acme-edge-bench-cluster-")
    rows = []
    try:
        for n in [int(x) for x in args.nodes.split(",")]:
            res = run(args.acme_edge, n, args.puts, work)
            for kind, lat in res.items():
                ms = [x * 1000 for x in lat]
                rows.append((n, kind, len(ms), statistics.median(ms), pct(ms, 99), max(ms)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| nodes | kind | PUTs | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, kind, cnt, p50, p99, mx in rows:
        print("| %d | %s | %d | %.2f | %.2f | %.2f |" % (n, kind, cnt, p50, p99, mx))


if __name__ == "__main__":
    main()
