#!/usr/bin/python3
"""
Cluster mode (README, "Clusters"): three `acme-edge run` nodes on loopback,
each with its own ports and store, sharing one real redis-server (started
here on a free port, no persistence).

Each test starts a fresh Redis and three nodes A, B, C and checks, over
real sockets: a PUT on one node is answered at once by the others' proxies
(http-01 on :80, acme-tls/1 handshakes on :443 presenting the same DER
certificate), a DELETE is gone everywhere, a restarted node is not ready
until it resynced, Redis restarted or flushed is survived, a node cut off
from Redis degrades and refuses writes while `ack = all` answers 504 naming
it and `ack = quorum` succeeds, concurrent PUT/DELETE of one key converge,
and hit records of one node show on another. Node B reaches Redis through a
TCP relay in this process that the tests can cut, which is how a node loses
Redis while the others keep it. NameTest names Redis and the sentinels by
host name, each node in a mount namespace with the test's own hosts file and
resolver (a socket of the test that never answers, or says no such name).

Every node is stopped by PID on every path out and must exit 0 without a
sanitizer report. Environment: ACME_EDGE (the binary). Needs redis-server
(deploy/install-deps.sh --test).
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from harness import recv_all  # noqa: E402
from harness import (Gateway, client_ctx, conf_text, env_path, free_port,  # noqa: E402
                     keyauth, main, new_token, outcome_ok,
                     sanitizer_marks, sha256_hex, store_path, M)

ACME_EDGE = env_path("ACME_EDGE", "build/release/acme-edge")
BEARER = "cluster-test-token-" + new_token()
REST = "cluster-rest-token-" + new_token()    # [client rest]: the REST responder's
ACK_TIMEOUT_MS = 1000


def until(what, fn, timeout=10.0, step=0.05):
    """fn() until it returns something true; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("%s: not within %.1fs (last: %r)" % (what, timeout, last))


# ---- Redis and a relay to it that can be cut -------------------------------

class Redis:
    def __init__(self, tmpdir, password=None):
        self.port = free_port()
        self.password = password
        self.dir = tmpdir
        self.log_path = os.path.join(tmpdir, "redis-%d.log" % self.port)
        self.proc = None

    def start(self):
        # --dir: a replica's full sync still writes an RDB file; not in the tree.
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--dbfilename", "redis-%d.rdb" % self.port]
        if self.password:
            argv += ["--requirepass", self.password]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT)
        until("redis-server up", lambda: self.ping(), 10)

    def cli(self, *args):
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        p = subprocess.run(argv + list(args), capture_output=True, timeout=10)
        return p.stdout.decode(errors="replace").strip()

    def ping(self):
        try:
            return self.cli("PING") == "PONG"
        except (OSError, subprocess.TimeoutExpired):
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Relay:
    """A TCP relay to Redis: cut() closes every connection and refuses new
    ones (closes them at once) until mend()."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.lock = threading.Lock()
        self.socks = []
        self.is_cut = False
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.is_cut or self.stopping:
                    c.close()
                    continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        a.close()

    def cut(self):
        with self.lock:
            self.is_cut = True
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def mend(self):
        with self.lock:
            self.is_cut = False

    def close(self):
        self.stopping = True
        self.cut()
        self.lsock.close()


# ---- a node ----------------------------------------------------------------

class Node(Gateway):
    def __init__(self, tmpdir, name, redis_port, ack="all", extra=None):
        super().__init__(tmpdir, name, BEARER, store_path("cluster", name))
        self.redis_port = redis_port
        self.ack = ack
        self.extra = extra or {}

    def config_text(self):
        cluster = {"redis": "127.0.0.1:%d" % self.redis_port, "node": self.name,
                   "ack": self.ack, "ack_timeout_ms": str(ACK_TIMEOUT_MS),
                   "prefix": "t%d:" % self.redis_port}
        cluster.update(self.extra)
        if "sentinel" in cluster:
            del cluster["redis"]
        return conf_text([
            ("store", {"path": self.store, "capacity": "256"}),
            ("api", {"listen": "127.0.0.1:%d" % self.api_port, "timeout": "5s",
                     "sweep_interval": "200ms"}),
            ("client admin", {"token_sha256": sha256_hex(BEARER), "identifiers": "*"}),
            ("client rest", {"token_sha256": sha256_hex(REST),
                             "identifiers": "rest.example.com", "cidrs": "127.0.0.1/32",
                             "rest_responder": "yes"}),
            ("proxy", {"http": "127.0.0.1:%d" % self.http,
                       "https": "127.0.0.1:%d" % self.https, "workers": "1",
                       "http_miss": "404", "tls_miss": "reject",
                       "peek_timeout": "2s", "grace": "1s"}),
            ("log", {"level": "info"}),
            ("cluster", cluster),
        ])

    def start(self, wait=True):
        self.write_config()
        self.spawn([ACME_EDGE, "run", "-c", self.conf])
        if wait:
            self.wait_ready()

    def api_pid(self):
        pids = [int(line.rsplit("pid ", 1)[1].rstrip(")"))
                for line in self.log().splitlines() if "run: started api (pid" in line]
        return pids[-1]

    def health(self):
        try:
            st, _, body = self.api("GET", "/healthz", auth=False, timeout=3)
        except OSError:
            return None, None
        return st, json.loads(body)

    def http01(self, token, host="www.example.com"):
        """(status, body) of the proxy's answer for a token."""
        s = socket.create_connection(("127.0.0.1", self.http), timeout=5)
        try:
            s.sendall(("GET /.well-known/acme-challenge/%s HTTP/1.1\r\nHost: %s\r\n"
                       "Connection: close\r\n\r\n" % (token, host)).encode())
            data = recv_all(s)
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")

    def alpn_cert(self, name):
        """The DER certificate presented for an acme-tls/1 handshake, or None
        when the proxy refuses it."""
        ctx = client_ctx(alpn=["acme-tls/1"])
        try:
            with socket.create_connection(("127.0.0.1", self.https), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as t:
                    if t.selected_alpn_protocol() != "acme-tls/1":
                        return None
                    return t.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError):
            return None

    def rest(self, method, token, ka=None):
        """A REST responder's PUT or DELETE of a challenge URL on this
        node's port 80: (status, body)."""
        req = ("%s /.well-known/acme-challenge/%s HTTP/1.1\r\nHost: rest.example.com\r\n"
               "Authorization: Bearer %s\r\nConnection: close\r\n" % (method, token, REST))
        if ka is not None:
            req += "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(ka), ka)
        else:
            req += "\r\n"
        s = socket.create_connection(("127.0.0.1", self.http), timeout=10)
        try:
            s.sendall(req.encode())
            data = recv_all(s)
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")

    def put(self, kind, name, ka, **q):
        path = "/v1/%s/%s" % (kind, name)
        if q:
            path += "?" + "&".join("%s=%s" % kv for kv in q.items())
        st, _, body = self.api("PUT", path, ka)
        return st, (json.loads(body) if body else None)

    def delete(self, kind, name):
        st, _, body = self.api("DELETE", "/v1/%s/%s" % (kind, name))
        return st, (json.loads(body) if body else None)

    def challenges(self):
        st, _, body = self.api("GET", "/v1/challenges")
        assert st == 200, (st, body)
        return json.loads(body)["challenges"]


def start_sentinel(conf):
    """A redis-sentinel on conf, its output in conf.log."""
    binary = shutil.which("redis-sentinel")
    argv = [binary, conf] if binary else ["redis-server", conf, "--sentinel"]
    with open(conf + ".log", "ab") as logf:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT)


def finish_nodes(test, nodes):
    """Stops each node; what went wrong (an exit not 0, a sanitizer
    report), with the node's log tail printed when anything did."""
    ok = outcome_ok(test)
    problems = []
    for n in nodes:
        rc, log = n.finish()
        if rc != 0 or sanitizer_marks(log):
            problems.append("%s: exit %r" % (n.name, rc))
        if not ok or problems:
            sys.stderr.write("\n---- node %s log (tail) ----\n%s\n" % (
                n.name, "\n".join(log.splitlines()[-40:])))
    return problems


class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-cluster-")
        self.redis = Redis(self.tmp)
        self.redis.start()
        self.relay = Relay(self.redis.port)
        self.nodes = {}
        self.stopped = []
        self.addCleanup(self.cleanup)
        for name in ("a", "b", "c"):
            port = self.relay.port if name == "b" else self.redis.port
            self.nodes[name] = Node(self.tmp, name, port)
            self.nodes[name].redis_port = port
        # Same prefix for every node: the relay's port must not change it.
        for n in self.nodes.values():
            n.extra["prefix"] = "t%d:" % self.redis.port
            n.start(wait=False)
        for n in self.nodes.values():
            n.wait_ready()
        until("three nodes live", lambda: all(
            len(n.health()[1]["cluster"]["live"]) == 3 for n in self.nodes.values()))

    def cleanup(self):
        ok = outcome_ok(self)
        problems = []
        for n in self.nodes.values():
            try:
                os.kill(n.api_pid(), signal.SIGCONT)
            except (ProcessLookupError, IndexError):
                pass
            rc, log = n.finish()
            marks = sanitizer_marks(log)
            if (rc != 0 and n.name not in self.stopped) or marks:
                problems.append("%s: exit %r, sanitizer %s" % (n.name, rc, marks))
            if not ok or problems:
                sys.stderr.write("\n---- node %s log (tail) ----\n%s\n" % (
                    n.name, "\n".join(log.splitlines()[-60:])))
        self.relay.close()
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    # -- helpers --

    @property
    def a(self):
        return self.nodes["a"]

    @property
    def b(self):
        return self.nodes["b"]

    @property
    def c(self):
        return self.nodes["c"]

    def assert_answers(self, nodes, token, ka):
        for n in nodes:
            self.assertEqual(n.http01(token), (200, ka), "node %s" % n.name)

    def assert_misses(self, nodes, token):
        for n in nodes:
            self.assertEqual(n.http01(token)[0], 404, "node %s" % n.name)

    def metric(self, node, name, **labels):
        return node.metrics().get(M(name, **labels))

    # -- the tests --

    def test_put_on_one_answered_by_all(self):
        tok = new_token()
        st, body = self.a.put("http-01", tok, keyauth(tok), identifier="www.example.com")
        self.assertEqual(st, 201, body)
        # At once: the PUT returned only after B and C applied it.
        self.assert_answers([self.b, self.c, self.a], tok, keyauth(tok))

        st, body = self.a.put("tls-alpn-01", "alpn.example.com", keyauth(new_token()))
        self.assertEqual(st, 201, body)
        certs = {n.name: n.alpn_cert("alpn.example.com") for n in (self.b, self.c, self.a)}
        self.assertIsNotNone(certs["a"])
        self.assertEqual(certs["a"], certs["b"], "B presents another certificate")
        self.assertEqual(certs["a"], certs["c"], "C presents another certificate")
        # Replacing is 200 and seen everywhere too.
        st, body = self.b.put("http-01", tok, keyauth(tok, "x" * 43),
                              identifier="www.example.com")
        self.assertEqual(st, 200, body)
        self.assert_answers([self.a, self.c], tok, keyauth(tok, "x" * 43))
        m = self.a.metrics()
        self.assertEqual(m[M("acmeedge_cluster_writes_total", result="acknowledged")], 2)
        self.assertEqual(m[M("acmeedge_cluster_nodes_live")], 3)
        self.assertEqual(m[M("acmeedge_cluster_redis_up")], 1)
        self.assertEqual(m[M("acmeedge_cluster_ack_seconds_count")], 2)

    def test_rest_responder_writes_reach_every_node(self):
        """A PUT on one node's port 80 (a REST responder's) is a cluster
        write like the API's: answered by every node once it returns, and a
        DELETE on another node removes it everywhere."""
        tok = new_token()
        st, body = self.a.rest("PUT", tok, keyauth(tok))
        self.assertEqual(st, 201, body)
        for n in (self.b, self.c, self.a):
            self.assertEqual(n.http01(tok, host="rest.example.com"), (200, keyauth(tok)),
                             "node %s" % n.name)
        self.assertEqual(self.a.metrics()[M("acmeedge_cluster_writes_total",
                                            result="acknowledged")], 1)
        st, body = self.c.rest("DELETE", tok)
        self.assertEqual(st, 204, body)
        for n in (self.a, self.b, self.c):
            self.assertEqual(n.http01(tok, host="rest.example.com")[0], 404,
                             "node %s" % n.name)

    def test_delete_on_one_gone_everywhere(self):
        tok = new_token()
        self.assertEqual(self.a.put("http-01", tok, keyauth(tok))[0], 201)
        self.assertEqual(self.a.put("tls-alpn-01", "gone.example.com",
                                    keyauth(tok))[0], 201)
        self.assertEqual(self.c.delete("http-01", tok)[0], 204)
        self.assertEqual(self.c.delete("tls-alpn-01", "gone.example.com")[0], 204)
        self.assert_misses([self.a, self.b, self.c], tok)
        for n in (self.a, self.b, self.c):
            self.assertIsNone(n.alpn_cert("gone.example.com"), n.name)
        # Deleted everywhere, so a second delete anywhere is a 404.
        self.assertEqual(self.b.delete("http-01", tok)[0], 404)

    def test_ownership_holds_across_nodes(self):
        """A replicated entry carries its owner: a client scoped elsewhere
        may not replace it through another node."""
        other = "other-" + new_token()
        for n in self.nodes.values():
            n.write_config(n.config_text() + "\n[client other]\ntoken_sha256 = %s\n"
                           "identifiers = *.other.test\n" % sha256_hex(other))
            os.kill(n.proc.pid, signal.SIGHUP)
        for n in self.nodes.values():
            until("reloaded", lambda n=n: "api: reloaded" in n.log())
        tok = new_token()
        self.assertEqual(self.a.put("tls-alpn-01", "x.other.test", keyauth(tok))[0], 201)
        self.assertEqual(self.a.put("http-01", tok, keyauth(tok),
                                    identifier="www.example.com")[0], 201)
        from harness import api_request
        st, _, body = api_request(self.b.api_port, "DELETE", "/v1/http-01/" + tok, other)
        self.assertEqual(st, 403, body)
        st, _, body = api_request(self.c.api_port, "PUT", "/v1/http-01/%s?identifier="
                                  "www.example.com" % tok, other, keyauth(tok))
        self.assertEqual(st, 403, body)
        # In its scope, it may: the owner is "admin", the name is its.
        st, _, body = api_request(self.c.api_port, "DELETE",
                                  "/v1/tls-alpn-01/x.other.test", other)
        self.assertEqual(st, 204, body)
        # And the listing shows the owner everywhere.
        for n in self.nodes.values():
            [e] = [e for e in n.challenges() if e.get("token") == tok]
            self.assertEqual(e["client"], "admin")

    def test_restarted_node_resyncs_before_ready(self):
        keep, gone, new = new_token(), new_token(), new_token()
        for t in (keep, gone):
            self.assertEqual(self.a.put("http-01", t, keyauth(t))[0], 201)
        # B stops: it says so, the others drop it from their live sets at
        # once (not after its heartbeat went stale), so writes go on.
        self.assertEqual(self.b.stop(), 0)
        self.stopped.append("b")
        until("B gone from A's live set",
              lambda: "b" not in self.a.health()[1]["cluster"]["live"], 1.0)
        self.assertIn("node b left: it stopped", self.a.log())
        self.assertEqual(self.a.put("http-01", new, keyauth(new))[0], 201)
        self.assertEqual(self.c.delete("http-01", gone)[0], 204)
        # B comes back while Redis is out of its reach: not ready.
        self.relay.cut()
        self.b.start(wait=False)
        until("B's API up", lambda: self.b.health()[0] is not None)
        time.sleep(0.8)
        st, h = self.b.health()
        self.assertEqual((st, h["status"]), (503, "syncing"), h)
        t = new_token()
        st, body = self.b.put("http-01", t, keyauth(t))
        self.assertEqual((st, body["error"]), (503, "cluster_unavailable"), body)
        # Redis reachable: it loads the set, then says ready.
        self.relay.mend()
        until("B ready", lambda: self.b.health()[0] == 200, 15)
        self.assert_answers([self.b], keep, keyauth(keep))
        self.assert_answers([self.b], new, keyauth(new))
        self.assert_misses([self.b], gone)
        self.assertGreaterEqual(self.metric(self.b, "acmeedge_cluster_resyncs_total"), 1)
        # A crash of B's API (SIGKILL): the supervisor restarts it and it
        # resyncs; a write made meanwhile reaches it.
        old = self.b.api_pid()
        os.kill(old, signal.SIGKILL)
        later = new_token()
        st, body = self.a.put("http-01", later, keyauth(later))
        self.assertIn(st, (201, 504), body)
        until("B's API restarted", lambda: self.b.api_pid() != old)
        until("B ready again", lambda: self.b.health()[0] == 200, 15)
        self.assert_answers([self.b], later, keyauth(later))
        self.assert_answers([self.b], keep, keyauth(keep))
        self.stopped.remove("b")

    def test_redis_flushed_and_restarted(self):
        ta, tb = new_token(), new_token()
        self.assertEqual(self.a.put("http-01", ta, keyauth(ta))[0], 201)
        self.assertEqual(self.b.put("http-01", tb, keyauth(tb))[0], 201)
        self.assertEqual(self.c.put("tls-alpn-01", "f.example.com", keyauth(ta))[0], 201)
        prefix = "t%d:" % self.redis.port
        # B answers A's token: B's hit record reaches Redis.
        self.assertEqual(self.b.http01(ta), (200, keyauth(ta)))
        until("B's hit in Redis", lambda: self.redis.cli("KEYS", prefix + "h:*").split(), 8)
        [hkey] = self.redis.cli("KEYS", prefix + "h:*").split()
        self.assertEqual(self.redis.cli("HKEYS", hkey).split(), ["b"])
        self.assertEqual(self.redis.cli("FLUSHALL"), "OK")
        # Every node noticed, and re-published what it wrote, hit records too.
        until("entries re-published", lambda: len(
            self.redis.cli("KEYS", prefix + "e:*").split()) == 3, 10)
        until("B's hit re-published",
              lambda: self.redis.cli("HKEYS", hkey).split() == ["b"], 10)
        self.assertGreater(int(self.redis.cli("PTTL", hkey)), 0)
        self.assert_answers([self.a, self.b, self.c], ta, keyauth(ta))
        self.assert_answers([self.a, self.b, self.c], tb, keyauth(tb))
        # Redis restarted without persistence: degraded, then back.
        self.redis.stop()
        until("A degraded", lambda: self.a.health()[1]["status"] == "degraded")
        st, h = self.a.health()
        self.assertEqual(st, 503)
        self.assertIn("Redis", h["cluster"]["cause"])
        t = new_token()
        st, body = self.a.put("http-01", t, keyauth(t))
        self.assertEqual((st, body["error"]), (503, "cluster_unavailable"), body)
        # Still answering what it holds.
        self.assert_answers([self.a, self.b, self.c], ta, keyauth(ta))
        self.redis.start()
        for n in self.nodes.values():
            until("%s ready" % n.name, lambda n=n: n.health()[0] == 200, 15)
        until("entries re-published", lambda: len(
            self.redis.cli("KEYS", prefix + "e:*").split()) == 3, 10)
        tc = new_token()
        self.assertEqual(self.c.put("http-01", tc, keyauth(tc))[0], 201)
        for t in (ta, tb, tc):
            self.assert_answers([self.a, self.b, self.c], t, keyauth(t))
        for n in (self.a, self.b, self.c):
            self.assertIsNotNone(n.alpn_cert("f.example.com"), n.name)
        # A write after the restart supersedes what was re-published.
        self.assertEqual(self.b.delete("http-01", ta)[0], 204)
        self.assert_misses([self.a, self.b, self.c], ta)

    def test_redis_frozen(self):
        """Redis alive to the kernel but answering nothing (SIGSTOP): a
        write fails within ack_timeout_ms instead of hanging, the nodes
        degrade when heartbeats go unanswered, and recover after."""
        held = new_token()
        self.assertEqual(self.a.put("http-01", held, keyauth(held))[0], 201)
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            t = new_token()
            t0 = time.monotonic()
            st, body = self.a.put("http-01", t, keyauth(t))
            self.assertLess(time.monotonic() - t0, ACK_TIMEOUT_MS / 1000 + 1)
            self.assertEqual((st, body["error"]), (503, "cluster_unavailable"), body)
            for n in self.nodes.values():
                until("%s degraded" % n.name,
                      lambda n=n: n.health()[1]["status"] == "degraded", 10)
            self.assert_answers(self.nodes.values(), held, keyauth(held))
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        for n in self.nodes.values():
            until("%s ready" % n.name, lambda n=n: n.health()[0] == 200, 20)
        t = new_token()
        self.assertEqual(self.b.put("http-01", t, keyauth(t))[0], 201)
        self.assert_answers(self.nodes.values(), t, keyauth(t))

    def test_node_cut_off_all_times_out_quorum_succeeds(self):
        # B's API process frozen: alive to the kernel, silent to Redis.
        pid = self.b.api_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            tok = new_token()
            t0 = time.monotonic()
            st, body = self.a.put("http-01", tok, keyauth(tok))
            took = time.monotonic() - t0
            self.assertEqual(st, 504, body)
            self.assertEqual(body["error"], "ack_timeout")
            self.assertEqual(body["nodes"], ["b"])
            self.assertGreaterEqual(took, ACK_TIMEOUT_MS / 1000 - 0.05)
            # The entry stays written: A and C answer it; a retry is idempotent.
            self.assert_answers([self.a, self.c], tok, keyauth(tok))
            # C switches to quorum (SIGHUP): 2 of 3 suffice.
            self.c.ack = "quorum"
            self.c.write_config()
            os.kill(self.c.proc.pid, signal.SIGHUP)
            until("C reloaded", lambda: "api: reloaded" in self.c.log())
            tok2 = new_token()
            st, body = self.c.put("http-01", tok2, keyauth(tok2))
            self.assertEqual(st, 201, body)
            self.assertEqual(self.metric(self.a, "acmeedge_cluster_writes_total",
                                         result="timed_out"), 1)
        finally:
            os.kill(pid, signal.SIGCONT)
        # B catches up on what it missed.
        until("B answers", lambda: self.b.http01(tok2)[0] == 200)
        self.assert_answers([self.b], tok, keyauth(tok))

    def test_node_losing_redis_degrades(self):
        held = new_token()
        self.assertEqual(self.a.put("http-01", held, keyauth(held))[0], 201)
        self.relay.cut()
        until("B degraded", lambda: self.b.health()[1]["status"] == "degraded")
        st, h = self.b.health()
        self.assertEqual(st, 503)
        self.assertTrue(h["cluster"]["cause"], h)
        t = new_token()
        st, body = self.b.put("http-01", t, keyauth(t))
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"], "cluster_unavailable")
        self.assertIn("Redis", body["detail"])
        m = self.b.metrics()
        self.assertEqual(m[M("acmeedge_cluster_redis_up")], 0)
        self.assertEqual(m[M("acmeedge_cluster_state", state="degraded")], 1)
        # B keeps answering what it holds.
        self.assert_answers([self.b], held, keyauth(held))
        # Once B left the live set, A's writes no longer wait for it.
        until("B left", lambda: "b" not in self.a.health()[1]["cluster"]["live"])
        missed = new_token()
        self.assertEqual(self.a.put("http-01", missed, keyauth(missed))[0], 201)
        self.assertEqual(self.a.delete("http-01", held)[0], 204)
        self.assertIn("node b left", self.a.log())
        # Back: it resyncs what it missed.
        self.relay.mend()
        until("B ready", lambda: self.b.health()[0] == 200, 15)
        self.assert_answers([self.b], missed, keyauth(missed))
        self.assert_misses([self.b], held)
        until("B rejoined", lambda: "node b joined" in self.a.log())

    def test_concurrent_put_delete_converge(self):
        results = []
        for i in range(12):
            tok = new_token()
            self.assertEqual(self.a.put("http-01", tok, keyauth(tok))[0], 201)
            out = {}
            ka2 = keyauth(tok, "y" * 43)
            ths = [threading.Thread(target=lambda: out.__setitem__(
                       "put", self.a.put("http-01", tok, ka2)[0])),
                   threading.Thread(target=lambda: out.__setitem__(
                       "del", self.c.delete("http-01", tok)[0]))]
            if i % 2:
                ths.reverse()
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            self.assertIn(out["put"], (200, 201))
            self.assertIn(out["del"], (204, 404))

            def agreed():
                seen = {n.name: n.http01(tok) for n in self.nodes.values()}
                return seen if len(set(seen.values())) == 1 else None
            seen = until("nodes agree on %s" % tok, agreed, 5)
            results.append(seen["a"][0])
            # And with Redis, the authority.
            raw = self.redis.cli("HGET", "t%d:e:1:%s" % (self.redis.port, tok), "m")
            self.assertEqual(seen["a"][0] == 200, "P" in raw[raw.index(":"):][:3], raw[:40])
        sys.stderr.write("converged: %d present, %d deleted\n" % (
            results.count(200), results.count(404)))

    def test_hits_cluster_wide(self):
        tok = new_token()
        self.assertEqual(self.a.put("http-01", tok, keyauth(tok),
                                    identifier="www.example.com")[0], 201)
        self.assertEqual(self.b.http01(tok), (200, keyauth(tok)))
        self.assertEqual(self.c.http01(tok, host="wrong.example.com")[0], 404)

        def hits():
            [e] = [e for e in self.a.challenges() if e.get("token") == tok]
            h = {x["node"]: x for x in e.get("hits", [])}
            return h if "b" in h and "c" in h else None
        h = until("hits of B and C seen on A", hits, 8)
        self.assertEqual(h["b"]["outcome"], "answered")
        self.assertTrue(h["b"]["peer"].startswith("127.0.0.1:"))
        self.assertEqual(h["c"]["outcome"], "missed")
        self.assertNotIn("a", h)
        # A flood of misses for names nobody holds writes nothing to Redis,
        # and a flood of hits on one key is coalesced.
        before = self.metric(self.b, "acmeedge_cluster_hit_writes_total")
        t0 = time.monotonic()
        for _ in range(100):
            self.b.http01(new_token())
            self.b.http01(tok)
        time.sleep(2.5)
        after = self.metric(self.b, "acmeedge_cluster_hit_writes_total")
        # One write per second at most, for the one key that exists.
        self.assertLessEqual(after - before, time.monotonic() - t0 + 2,
                             "hit writes not coalesced")

    def test_two_nodes_one_name_reported(self):
        twin = Node(self.tmp, "twin", self.redis.port, extra={
            "node": "a", "prefix": "t%d:" % self.redis.port})
        self.nodes["twin"] = twin
        twin.start(wait=False)
        until("the shared name reported", lambda: any(
            "another node also calls itself a" in n.log()
            for n in (self.a, twin)), 10)

    def test_password_and_config_errors(self):
        # A Redis with a password, read from an owner-only file.
        red = Redis(self.tmp, password="s3cret-" + new_token())
        red.start()
        self.addCleanup(red.stop)
        # The ACL of deploy/cluster/README.md: enough for a node, no more.
        user_pw = "acl-" + new_token()
        self.assertEqual(red.cli("ACL", "SETUSER", "acme-edge", "on", ">" + user_pw,
                                 "resetkeys", "~acme-edge:*", "resetchannels",
                                 "&acme-edge:*", "-@all", "+@read", "+@write",
                                 "-@dangerous", "+evalsha", "+script|load", "+publish",
                                 "+subscribe", "+role", "+time"), "OK")
        pw = os.path.join(self.tmp, "redis.pw")
        with open(pw, "w") as f:
            f.write(user_pw + "\n")
        os.chmod(pw, 0o600)
        n = Node(self.tmp, "pw", red.port, extra={"user": "acme-edge", "password_file": pw,
                                                  "prefix": "acme-edge:"})
        self.nodes["pw"] = n
        n.start()
        tok = new_token()
        self.assertEqual(n.put("http-01", tok, keyauth(tok))[0], 201)
        # A wrong password: never ready, the cause says why, the secret is
        # never logged.
        bad = Node(self.tmp, "bad", red.port, extra={"password": "wrong-" + new_token()})
        self.nodes["bad"] = bad
        bad.start(wait=False)
        until("refusal logged", lambda: "refused AUTH" in bad.log())
        st, h = bad.health()
        self.assertEqual((st, h["status"]), (503, "syncing"))
        self.assertNotIn(bad.extra["password"], bad.log())
        self.assertNotIn(user_pw, n.log())
        # `acme-edge check`: every mistake, FILE:LINE each.
        os.chmod(pw, 0o644)
        conf = os.path.join(self.tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write("[cluster]\nredis = 127.0.0.1\nack = some\nack_timeout_ms = 5\n"
                    "password_file = %s\nuser = u\nprefix = a b\nsentinel_user = su\n" % pw)
        p = subprocess.run([ACME_EDGE, "check", "-c", conf], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        for want in ("redis: \"127.0.0.1\" is not host:port", "ack: expected all | quorum",
                     "ack_timeout_ms: expected a whole number", "node is required",
                     "password file is accessible by group or others",
                     "prefix: expected",
                     "sentinel_user needs sentinel_password or sentinel_password_file",
                     "sentinel_user and sentinel_password go with sentinel"):
            self.assertIn(want, p.stderr)
        self.assertNotIn(user_pw, p.stderr)


class ShippedConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-cluster-conf-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_shipped_cluster_configs_check(self):
        """deploy/cluster/edge-*.conf pass `acme-edge check` once the files
        they name exist (here: the same files under a temp dir)."""
        deploy = os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "cluster")
        clients = os.path.join(self.tmp, "clients.conf")
        with open(clients, "w") as f:
            f.write("[client certbot]\ntoken_sha256 = %s\nidentifiers = *.example.com\n"
                    % sha256_hex("t"))
        os.chmod(clients, 0o600)
        pw = os.path.join(self.tmp, "redis.password")
        with open(pw, "w") as f:
            f.write("secret\n")
        os.chmod(pw, 0o600)
        for i in (1, 2, 3):
            with open(os.path.join(deploy, "edge-%d.conf" % i)) as f:
                text = f.read()
            self.assertIn("node = edge-%d" % i, text)
            conf = os.path.join(self.tmp, "edge-%d.conf" % i)
            with open(conf, "w") as f:
                f.write(text.replace("/etc/acme-edge/clients.conf", clients)
                        .replace("/etc/acme-edge/redis.password", pw))
            p = subprocess.run([ACME_EDGE, "check", "-c", conf], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


SENTINEL_PASSWORD = "sentinel-" + new_token()


class SentinelTest(unittest.TestCase):
    """`sentinel =` with real redis-sentinel processes: a master, a replica,
    three sentinels that want a password; two nodes find the master through
    them, and after the master dies and the sentinels promote the replica,
    the nodes reconnect to it, resync, and take writes again."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-sentinel-")
        self.procs = []
        self.nodes = []
        self.addCleanup(self.cleanup)
        self.master = Redis(self.tmp)
        self.master.start()
        self.replica = Redis(self.tmp)
        self.replica.start()
        self.assertEqual(self.replica.cli("REPLICAOF", "127.0.0.1",
                                          str(self.master.port)), "OK")
        self.sentinel_ports = []
        for i in range(3):
            port = free_port()
            conf = os.path.join(self.tmp, "sentinel-%d.conf" % port)
            with open(conf, "w") as f:
                # requirepass for clients, sentinel-pass for each other.
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "requirepass %s\nsentinel sentinel-pass %s\n"
                        "sentinel monitor acme 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds acme 1000\n"
                        "sentinel failover-timeout acme 4000\n" % (
                            port, self.tmp, SENTINEL_PASSWORD, SENTINEL_PASSWORD,
                            self.master.port))
            self.procs.append(start_sentinel(conf))
            self.sentinel_ports.append(port)
        until("replica in sync", lambda: "master_link_status:up" in
              self.replica.cli("INFO", "replication"), 15)

    def cleanup(self):
        problems = finish_nodes(self, self.nodes)
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.master.stop()
        self.replica.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    def test_failover(self):
        sentinels = " ".join("127.0.0.1:%d" % p for p in self.sentinel_ports)
        # The first sentinel named is down: the nodes go on to the next.
        sentinels = "127.0.0.1:%d " % free_port() + sentinels
        for name in ("s1", "s2"):
            n = Node(self.tmp, name, 0, extra={"sentinel": sentinels, "master": "acme",
                                               "prefix": "s:",
                                               "sentinel_password": SENTINEL_PASSWORD})
            self.nodes.append(n)
            n.start(wait=False)
        for n in self.nodes:
            n.wait_ready()
        s1, s2 = self.nodes
        tok = new_token()
        self.assertEqual(s1.put("http-01", tok, keyauth(tok))[0], 201)
        self.assertEqual(s2.http01(tok), (200, keyauth(tok)))
        until("written entry replicated", lambda: self.replica.cli(
            "EXISTS", "s:e:1:" + tok) == "1")
        # The master dies; the sentinels promote the replica.
        self.master.stop()
        until("replica promoted", lambda: "role:master" in
              self.replica.cli("INFO", "replication"), 30)
        for n in self.nodes:
            until("%s ready on the new master, both live" % n.name,
                  lambda n=n: n.health()[0] == 200 and len(
                      n.health()[1]["cluster"]["live"]) == 2, 30)
        tok2 = new_token()
        st, body = s2.put("http-01", tok2, keyauth(tok2))
        self.assertEqual(st, 201, body)
        self.assertEqual(s1.http01(tok2), (200, keyauth(tok2)))
        self.assertEqual(s1.http01(tok), (200, keyauth(tok)))
        self.assertEqual(self.replica.cli("EXISTS", "s:e:1:" + tok2), "1")
        self.assertIn("127.0.0.1:%d" % self.replica.port, s1.log())
        self.assertIn("sentinels with a password", s1.log())
        self.assertNotIn(SENTINEL_PASSWORD, s1.log())

    def test_wrong_sentinel_password(self):
        """Sentinels refusing the node's password: it never finds a master,
        says which sentinel refused and why, and logs no secret."""
        wrong = "wrong-" + new_token()
        n = Node(self.tmp, "s3", 0, extra={
            "sentinel": " ".join("127.0.0.1:%d" % p for p in self.sentinel_ports),
            "master": "acme", "prefix": "s:", "sentinel_password": wrong})
        self.nodes.append(n)
        n.start(wait=False)
        until("each sentinel's refusal logged", lambda: all(
            "sentinel 127.0.0.1:%d refused AUTH" % p in n.log()
            for p in self.sentinel_ports), 15)
        self.assertIn("no sentinel knows master acme", n.log())
        st, body = n.health()
        self.assertNotEqual(st, 200, body)
        self.assertNotIn(wrong, n.log())


class NameTest(unittest.TestCase):
    """Redis and sentinels named by host name. Each node runs in a mount
    namespace of its own whose /etc/hosts and /etc/resolv.conf are the
    test's: names resolve through the hosts file, and every other name's
    query goes to a UDP socket of this test on 127.0.0.1:53, which says
    "no such name" for names under missing.invalid and never answers the
    rest. While such a lookup hangs, the node's API must go on answering:
    the lookup may not block its event loop."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-names-")
        self.nodes = []
        self.addCleanup(self.cleanup)
        if os.geteuid() != 0:
            self.skipTest("needs root for a mount namespace and port 53")
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("no mount namespaces here: %s" % probe.stderr.decode().strip())
        self.dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.dns.bind(("127.0.0.1", 53))
        except OSError as e:
            self.dns.close()
            self.skipTest("127.0.0.1:53 is taken: %s" % e)
        self.dns.settimeout(0.1)
        self.queried = []
        self.dns_stop = threading.Event()
        self.dns_thread = threading.Thread(target=self.resolver, daemon=True)
        self.dns_thread.start()
        self.redis = Redis(self.tmp)
        self.redis.start()
        self.hosts = os.path.join(self.tmp, "hosts")
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost redis.test\n")
        self.resolv = os.path.join(self.tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")

    def cleanup(self):
        problems = finish_nodes(self, self.nodes)
        if getattr(self, "redis", None):
            self.redis.stop()
        if getattr(self, "dns_thread", None):
            self.dns_stop.set()
            self.dns_thread.join()
        if getattr(self, "dns", None):
            self.dns.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    def resolver(self):
        """Names under missing.invalid: NXDOMAIN at once; others: silence."""
        while not self.dns_stop.is_set():
            try:
                q, peer = self.dns.recvfrom(512)
            except socket.timeout:
                continue
            labels, i = [], 12
            while i < len(q) and q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
                i += 1 + q[i]
            name = ".".join(labels).lower()  # case may be randomised
            self.queried.append(name)
            if name.endswith("missing.invalid"):
                # Same id and question; response, recursion, NXDOMAIN.
                self.dns.sendto(q[:2] + b"\x81\x83\x00\x01" + b"\x00" * 6 +
                                q[12:i + 5], peer)

    def node(self, name, **extra):
        n = Node(self.tmp, name, self.redis.port, extra=dict(extra, prefix="n:"))
        n.write_config()
        script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf'
                  ' && shift 2 && exec "$@"')
        n.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                 "sh", self.hosts, self.resolv, ACME_EDGE, "run", "-c", n.conf])
        self.nodes.append(n)
        return n

    def test_redis_by_name(self):
        n = self.node("a", redis="redis.test:%d" % self.redis.port)
        n.wait_ready()
        t = new_token()
        self.assertEqual(n.put("http-01", t, keyauth(t))[0], 201)
        self.assertEqual(n.http01(t), (200, keyauth(t)))
        self.assertEqual(self.redis.cli("EXISTS", "n:e:1:" + t), "1")

    def test_name_with_a_dead_address(self):
        """A name with two addresses, Redis listening on one: whichever the
        resolver gives first, the node gets through, trying the other after
        a failed attempt."""
        with open(self.hosts, "a") as f:
            f.write("127.0.0.2 two.test\n127.0.0.1 two.test\n"
                    "127.0.0.1 one.test\n127.0.0.2 one.test\n")
        for name in ("two", "one"):
            n = self.node(name, redis="%s.test:%d" % (name, self.redis.port))
            n.wait_ready(15)
            t = new_token()
            self.assertEqual(n.put("http-01", t, keyauth(t))[0], 201)
        self.assertTrue(any("at 127.0.0.2: Connection refused" in n.log()
                            for n in self.nodes), "127.0.0.2 never tried")

    def test_lookup_never_answered_does_not_stall_the_api(self):
        n = self.node("b", redis="stuck.test:%d" % self.redis.port)
        until("API up", lambda: n.health()[0] is not None, 10)
        until("the lookup sent", lambda: "stuck.test" in self.queried)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            st, body = n.health()
            self.assertLess(time.monotonic() - t0, 0.5, "API stalled by a lookup")
            self.assertEqual((st, body["status"]), (503, "syncing"), body)
            time.sleep(0.2)
        self.assertIn("stuck.test:%d did not answer" % self.redis.port,
                      n.health()[1]["cluster"]["cause"])

    def test_sentinel_by_name_and_name_not_found(self):
        """A sentinel whose name is not found is passed over, named in the
        log; the next one, by name, leads to the master."""
        sport = free_port()
        conf = os.path.join(self.tmp, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor acme 127.0.0.1 %d 1\n" % (
                        sport, self.tmp, self.redis.port))
        sent = start_sentinel(conf)
        self.addCleanup(lambda: (sent.terminate(), sent.wait(10)))
        with open(self.hosts, "a") as f:
            f.write("127.0.0.1 sentinel.test\n")
        n = self.node("c", sentinel="stuck.test:%d missing.invalid:%d sentinel.test:%d" % (
            sport, sport, sport), master="acme")
        # stuck.test is never answered: passed over after the connect
        # timeout; missing.invalid does not exist: passed over at once.
        n.wait_ready(15)
        log = n.log()
        self.assertIn("sentinel stuck.test:%d did not answer within" % sport, log)
        self.assertIn("sentinel missing.invalid:%d: cannot resolve" % sport, log)
        t = new_token()
        self.assertEqual(n.put("http-01", t, keyauth(t))[0], 201)
        self.assertEqual(self.redis.cli("EXISTS", "n:e:1:" + t), "1")


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE")], tools=["redis-server", "redis-cli", "openssl"])
