"""Cluster mode: from a PUT on one node until every node answers the
challenge, N `acme-edge run` nodes (one proxy worker each) sharing one
redis-server on loopback, `ack = all`.

With `ack = all` a PUT returns only once every live node applied it, so the
PUT's own latency, taken on the client, is the time to answered
everywhere. That it really is answered everywhere is checked, untimed,
after every PUT: an http-01 GET on every node's :80, and for tls-alpn-01 an
acme-tls/1 handshake on every node's :443 (every 10th PUT: each handshake
costs a core-millisecond), all nodes presenting one certificate."""
import hashlib
import http.client
import json
import os
import socket
import ssl
import statistics
import subprocess
import time

THUMB = "0123456789012345678901234567890123456789abc"
BEARER = "bench-cluster-token"
KINDS = ("http-01", "tls-alpn-01")


class Failed(Exception):
    pass


def _wait(what, fn, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise Failed("%s: not within %ds" % (what, timeout))


def _http01(port, tok):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/.well-known/acme-challenge/" + tok,
                  headers={"Host": "bench.example"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def _alpn_cert(port, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as t:
            return t.getpeercert(binary_form=True)


def _conf(n, redis_port):
    return ("[store]\npath = %s\ncapacity = 4096\n[api]\nlisten = 127.0.0.1:%d\n"
            "[client bench]\ntoken_sha256 = %s\nidentifiers = *\n"
            "[proxy]\nhttp = 127.0.0.1:%d\nhttps = 127.0.0.1:%d\nworkers = 1\n"
            "http_miss = 404\ntls_miss = reject\n[log]\nlevel = warn\n"
            "[cluster]\nredis = 127.0.0.1:%d\nnode = %s\nack = all\nprefix = bench%d:\n" % (
                n["store"], n["api"], hashlib.sha256(BEARER.encode()).hexdigest(),
                n["http"], n["https"], redis_port, n["name"], redis_port))


def put_latency(exe, nnodes, puts, work, port):
    """{kind: [seconds per PUT]}; port() hands out a free loopback port."""
    redis_port = port()
    procs = [subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", work],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    nodes = []
    try:
        for i in range(nnodes):
            n = {"name": "n%d" % i, "api": port(), "http": port(), "https": port(),
                 "store": "/dev/shm/acme-edge-bench-cl-%d-%d" % (os.getpid(), i)}
            conf = os.path.join(work, "cluster-%s.conf" % n["name"])
            with open(conf, "w") as f:
                f.write(_conf(n, redis_port))
            n["log"] = open(os.path.join(work, "cluster-%s.log" % n["name"]), "wb")
            procs.append(subprocess.Popen([exe, "run", "-c", conf], stdout=n["log"],
                                          stderr=subprocess.STDOUT))
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
        _wait("%d nodes ready and live" % nnodes, live_everywhere)

        api = http.client.HTTPConnection("127.0.0.1", nodes[0]["api"], timeout=10)
        auth = {"Authorization": "Bearer " + BEARER}
        out = {}
        for kind in KINDS:
            lat = []
            for i in range(puts):
                tok = ("%s%06d" % (kind[0], i)).ljust(43, "x")
                ka = "%s.%s" % (tok, THUMB)
                name = "b%d.bench.example" % i
                path = "/v1/http-01/" + tok if kind == "http-01" else "/v1/tls-alpn-01/" + name
                t0 = time.perf_counter()
                api.request("PUT", path, body=ka, headers=auth)
                r = api.getresponse()
                body = r.read()
                lat.append(time.perf_counter() - t0)
                if r.status != 201:
                    raise Failed("PUT %s: %d %r" % (path, r.status, body[:200]))
                if kind == "http-01":
                    for n in nodes:
                        if _http01(n["http"], tok) != (200, ka):
                            raise Failed("node %s does not answer %s" % (n["name"], tok))
                elif i % 10 == 0:
                    if len({_alpn_cert(n["https"], name) for n in nodes}) != 1:
                        raise Failed("the nodes present different certificates")
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


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def summary(lat):
    """{kind: {"n", "50", "99", "max"}} in milliseconds."""
    out = {}
    for kind, xs in lat.items():
        ms = [x * 1000 for x in xs]
        out[kind] = {"n": len(ms), "50": statistics.median(ms), "99": _pct(ms, 99),
                     "max": max(ms)}
    return out
