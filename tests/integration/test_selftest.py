#!/usr/bin/python3
"""
`acme-edge selftest` against `acme-edge run` on loopback: names sent with
--resolve to the gateway (every check passes), to an address where nothing
listens (connection refused), to a plain web server answering 404 (wrong
body, naming its Server header), to one redirecting to an odd port (a
redirect a CA will not follow); a tls-alpn-01 entry a client placed is
checked and left as it was; the probes are gone afterwards; --json parses.

The gateway listens on 127.0.0.1; the other servers on 127.0.0.3 and
127.0.0.4 on the same port numbers (the ports under test are passed with
--http-port and --https-port); nothing listens on 127.0.0.2.

Python standard library only. Environment: ACME_EDGE (the binary).
"""
import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (LoopbackGateway, b64url, env_path, free_port, keyauth,  # noqa: E402
                     main, new_token, outcome_ok, sanitizer_marks, serve_in_thread,
                     store_path)

ACME_EDGE = env_path("ACME_EDGE", "build/release/acme-edge")
BEARER = b64url(32)
OTHER_BEARER = b64url(32)
RUN_TIMEOUT = 120


# Where a redirect of each server's mode sends the validator.
LOCATIONS = {
    "odd-port": "http://redir.example.com:8080%s",
    "loop": "http://loop.example.com:80%s",          # same name: the same address
    "ftp": "ftp://files.example.com%s",
}


class Web(http.server.BaseHTTPRequestHandler):
    """A web server that is not acme-edge, in the server's mode: "404"
    for everything, a redirect (LOCATIONS), or "silent": a head that
    never ends."""
    server_version = "TestWeb/1.0"
    sys_version = ""

    def do_GET(self):
        mode = self.server.mode
        if mode in LOCATIONS:
            self.send_response(302)
            self.send_header("Location", LOCATIONS[mode] % self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "silent":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            self.server.stop.wait(30)
            return
        body = b"<h1>not found</h1>\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def web_server(host, port, mode):
    srv = http.server.ThreadingHTTPServer((host, port), Web)
    srv.daemon_threads = True
    srv.mode = mode
    srv.stop = threading.Event()
    serve_in_thread(srv)
    return srv


class SelftestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-selftest-")
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(BEARER + "\n")
        os.chmod(cls.token_file, 0o600)
        cls.gw = LoopbackGateway(
            cls.tmp, "gw", store_path("selftest"), ACME_EDGE,
            {"ops": (BEARER, "*.example.com example.com"),
             "certbot": (OTHER_BEARER, "*.example.com")},
            comment="written by tests/integration/test_selftest.py")
        cls.servers = []
        try:
            cls.gw.start()
            cls.gw.wait_ready()
            for host, mode in (("127.0.0.3", "404"), ("127.0.0.4", "odd-port"),
                               ("127.0.0.6", "loop"), ("127.0.0.7", "ftp"),
                               ("127.0.0.8", "silent")):
                cls.servers.append(web_server(host, cls.gw.http, mode))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop.set()
            s.shutdown()
            s.server_close()
        try:
            cls.gw.finish_clean()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.outputs = []

    def tearDown(self):
        if not outcome_ok(self):
            for out in self.outputs:
                print(out)
            print(self.gw.log()[-6000:])

    def selftest(self, *args, env=None, token_file=True):
        argv = [ACME_EDGE, "selftest", "-c", self.gw.conf,
                "--http-port", str(self.gw.http), "--https-port", str(self.gw.https)]
        if token_file:
            argv += ["--token-file", self.token_file]
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(argv + list(args), capture_output=True, timeout=RUN_TIMEOUT,
                           env=e, stdin=subprocess.DEVNULL)
        out, err = p.stdout.decode(), p.stderr.decode()
        self.outputs.append("$ %s\n%s%s(exit %d)" % (" ".join(argv[1:] + list(args)),
                                                     out, err, p.returncode))
        for m in sanitizer_marks(err):
            self.fail("sanitizer report from selftest: %s\n%s" % (m, err))
        return p.returncode, out, err

    def challenges(self, bearer=BEARER):
        st, _, body = self.gw.api("GET", "/v1/challenges")
        self.assertEqual(st, 200)
        return json.loads(body)["challenges"]

    def line(self, out, name, addr, kind):
        prefix = "%s %s %s: " % (name, addr, kind)
        found = [ln[len(prefix):] for ln in out.splitlines() if ln.startswith(prefix)]
        self.assertEqual(len(found), 1, "one line for %s in:\n%s" % (prefix, out))
        return found[0]

    def test_gateway_ok_json_and_probes_removed(self):
        before = self.challenges()
        rc, out, err = self.selftest("--resolve", "www.example.com:127.0.0.1",
                                     "--resolve", "example.com:%d:127.0.0.1" % self.gw.http,
                                     "--json", "www.example.com", "example.com")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["checks"], 4)
        self.assertEqual(doc["failed"], 0)
        kinds = sorted((r["name"], r["kind"]) for r in doc["results"])
        self.assertEqual(kinds, [("example.com", "http-01"), ("example.com", "tls-alpn-01"),
                                 ("www.example.com", "http-01"),
                                 ("www.example.com", "tls-alpn-01")])
        for r in doc["results"]:
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["address"], "127.0.0.1")
            # This node saw the request, from loopback, and answered it.
            self.assertIn("last_hit", r, out)
            self.assertEqual(r["last_hit"]["outcome"], "answered", r)
            self.assertTrue(r["last_hit"]["peer"].startswith("127.0.0.1"), r)
            self.assertIn("this node answered it", r["nodes"])
        self.assertEqual(self.challenges(), before)
        # The token never shows in what selftest prints.
        self.assertNotIn(BEARER, out + err)

    def test_failures_in_words(self):
        names = {"ok.example.com": "127.0.0.1", "refused.example.com": "127.0.0.2",
                 "web.example.com": "127.0.0.3", "redir.example.com": "127.0.0.4"}
        args = []
        for n, a in names.items():
            args += ["--resolve", "%s:%s" % (n, a)]
        rc, out, err = self.selftest(*args, "--kind", "http-01", *names)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(self.line(out, "ok.example.com", "127.0.0.1", "http-01")[:2], "ok")
        refused = self.line(out, "refused.example.com", "127.0.0.2", "http-01")
        self.assertTrue(refused.startswith("FAIL: "), refused)
        self.assertIn("127.0.0.2 port %d: connection refused" % self.gw.http, refused)
        web = self.line(out, "web.example.com", "127.0.0.3", "http-01")
        self.assertIn("answered 404", web)
        self.assertIn("something else", web)
        self.assertIn("Server: TestWeb/1.0", web)
        # The request went to another server: this node saw none.
        self.assertIn("this node saw no request", web)
        redir = self.line(out, "redir.example.com", "127.0.0.4", "http-01")
        self.assertIn("redirected where a CA will not follow", redir)
        self.assertIn("port 8080", redir)
        self.assertIn("selftest: 1 of 4 checks passed", out)
        self.assertEqual([c for c in self.challenges() if c["kind"] == "http-01"], [])

    def test_redirects_and_silence(self):
        names = {"loop.example.com": "127.0.0.6", "ftp.example.com": "127.0.0.7",
                 "slow.example.com": "127.0.0.8"}
        args = []
        for n, a in names.items():
            args += ["--resolve", "%s:%s" % (n, a)]
        t0 = time.monotonic()
        rc, out, err = self.selftest(*args, "--kind", "http-01", "--timeout", "1", *names)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("more than 10 redirects",
                      self.line(out, "loop.example.com", "127.0.0.6", "http-01"))
        ftp = self.line(out, "ftp.example.com", "127.0.0.7", "http-01")
        self.assertIn("redirected where a CA will not follow", ftp)
        self.assertIn("only http and https", ftp)
        self.assertIn("timeout waiting for the response",
                      self.line(out, "slow.example.com", "127.0.0.8", "http-01"))
        # --timeout 1: connects within 1 s, each exchange within 2 s.
        self.assertLess(time.monotonic() - t0, 30)

    def test_tls_entry_of_a_client_is_checked_not_replaced(self):
        ka = keyauth(new_token())
        st, _, body = self.gw.api("PUT", "/v1/tls-alpn-01/placed.example.com", ka)
        self.assertEqual(st, 201, body)
        placed = json.loads(body)
        try:
            rc, out, err = self.selftest("--resolve", "placed.example.com:127.0.0.1",
                                         "--kind", "tls-alpn-01", "--json",
                                         "placed.example.com")
            self.assertEqual(rc, 0, out + err)
            [r] = json.loads(out)["results"]
            self.assertTrue(r["ok"], r)
            self.assertEqual(r["probe"], "existing entry")
            [e] = [c for c in self.challenges() if c.get("name") == "placed.example.com"]
            self.assertEqual(e["version"], placed["version"])
            self.assertEqual(e["client"], "ops")
        finally:
            self.gw.api("DELETE", "/v1/tls-alpn-01/placed.example.com")

    def request(self, method, path, headers, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.api_port, timeout=10)
        try:
            c.request(method, path, body=body,
                      headers=dict(headers, Authorization="Bearer " + BEARER))
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def test_api_preconditions(self):
        """What selftest relies on so as never to overwrite nor remove a
        client's entry: If-None-Match: * on PUT, If-Match: version on
        DELETE."""
        path = "/v1/tls-alpn-01/cond.example.com"
        st, body = self.request("PUT", path, {"If-None-Match": "*"}, keyauth(new_token()))
        self.assertEqual(st, 201, body)
        version = json.loads(body)["version"]
        st, body = self.request("PUT", path, {"If-None-Match": "*"}, keyauth(new_token()))
        self.assertEqual((st, json.loads(body)["error"]), (412, "exists"))
        st, body = self.request("DELETE", path, {"If-Match": '"%d"' % (version + 1)})
        self.assertEqual((st, json.loads(body)["error"]), (412, "changed"))
        st, body = self.request("DELETE", path, {"If-Match": "junk"})
        self.assertEqual(st, 412)
        [e] = [c for c in self.challenges() if c.get("name") == "cond.example.com"]
        self.assertEqual(e["version"], version)
        st, _ = self.request("DELETE", path, {"If-Match": '"%d"' % version})
        self.assertEqual(st, 204)

    def test_tls_refused_and_wrong_server(self):
        rc, out, err = self.selftest("--resolve", "www.example.com:127.0.0.2",
                                     "--kind", "tls-alpn-01", "www.example.com")
        self.assertEqual(rc, 1)
        self.assertIn("connection refused",
                      self.line(out, "www.example.com", "127.0.0.2", "tls-alpn-01"))
        self.assertEqual(self.challenges(), [])

    def test_scope_and_token_errors(self):
        # A name outside the client's scope: the API's refusal, in words.
        rc, out, err = self.selftest("--resolve", "other.org:127.0.0.1",
                                     "--kind", "http-01", "other.org")
        self.assertEqual(rc, 1)
        self.assertIn("the API refused the probe: 403 identifier_not_allowed",
                      self.line(out, "other.org", "127.0.0.1", "http-01"))
        # No token: a set-up error; a wrong one too, without echoing it.
        rc, out, err = self.selftest("www.example.com", token_file=False,
                                     env={"ACME_EDGE_TOKEN": ""})
        self.assertEqual(rc, 2)
        self.assertIn("bearer token", err)
        wrong = b64url(32)
        rc, out, err = self.selftest("www.example.com", token_file=False,
                                     env={"ACME_EDGE_TOKEN": wrong})
        self.assertEqual(rc, 2)
        self.assertIn("does not know this bearer token", err)
        self.assertNotIn(wrong, out + err)

    def test_no_address(self):
        rc, out, err = self.selftest("--kind", "http-01", "--timeout", "3", "nx.invalid")
        self.assertEqual(rc, 1)
        self.assertIn("no address", self.line(out, "nx.invalid", "-", "http-01"))


class ClusterSelftestTest(unittest.TestCase):
    """Two nodes sharing a Redis: selftest run on node A for a name whose
    address is node B's proxy reports that B answered, from the hit
    records the cluster shares, and that A saw nothing."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-selftest-cl-")
        cls.redis_port = free_port()
        cls.redis = subprocess.Popen(
            ["redis-server", "--port", str(cls.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.nodes = []
        try:
            a = None
            for name, host in (("edge-a", "127.0.0.1"), ("edge-b", "127.0.0.5")):
                gw = LoopbackGateway(
                    cls.tmp, name, store_path("selftest-cl", name), ACME_EDGE,
                    {"ops": (BEARER, "*.example.com example.com")}, proxy_host=host,
                    extra={"cluster": {"redis": "127.0.0.1:%d" % cls.redis_port,
                                       "node": name, "ack": "all",
                                       "ack_timeout_ms": 3000}})
                if a:       # B on A's port numbers, on its own address
                    gw.http, gw.https = a.http, a.https
                gw.start()
                cls.nodes.append(gw)
                a = a or gw
            for gw in cls.nodes:
                gw.wait_ready()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        bad = []
        for gw in cls.nodes:
            rc, log = gw.finish()
            if rc != 0 or sanitizer_marks(log):
                bad.append("%s exited %r:\n%s" % (gw.name, rc, log))
        cls.redis.terminate()
        cls.redis.wait(10)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if bad:
            raise AssertionError("\n".join(bad))

    def test_other_node_answered(self):
        a = self.nodes[0]
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write(BEARER)
        p = subprocess.run([ACME_EDGE, "selftest", "-c", a.conf, "--token-file", token_file,
                            "--http-port", str(a.http), "--https-port", str(a.https),
                            "--resolve", "www.example.com:127.0.0.5", "--json",
                            "www.example.com"], capture_output=True, timeout=RUN_TIMEOUT)
        out = p.stdout.decode()
        if p.returncode != 0:
            print(out, p.stderr.decode(), a.log()[-3000:], self.nodes[1].log()[-3000:])
        self.assertEqual(p.returncode, 0)
        for r in json.loads(out)["results"]:
            self.assertTrue(r["ok"], r)
            self.assertTrue(r["nodes"].startswith("node edge-b answered it (request from "),
                            r["nodes"])
            self.assertNotIn("edge-a", r["nodes"])
            self.assertEqual([h["node"] for h in r["hits"]
                              if h["outcome"] == "answered"], ["edge-b"])
        # What the status page shows of the cluster: /v1/status.
        st, _, body = a.api("GET", "/v1/status")
        self.assertEqual(st, 200)
        cl = json.loads(body)["cluster"]
        self.assertEqual(cl["node"], "edge-a")
        self.assertEqual(sorted(cl["live"]), ["edge-a", "edge-b"])


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE")], tools=["redis-server"])
