#!/usr/bin/python3
"""
The gateway as the ACME clients that push nothing through the solver API
see it: [stateless NAME] rules (acme.sh --stateless) answered by the proxy
from the account thumbprint alone, and the checks `acme-edge check` makes
of them.

Each class starts its own `acme-edge run` on free loopback ports, with a
recording upstream behind [route default] (a thread of this process that
answers every request and keeps what it got), and stops it with SIGTERM at
the end of the class, checking the exit status and that the log holds no
sanitizer report.

Python standard library only. Environment: ACME_EDGE (the binary);
PROXY_IO_BACKEND (optional: written as io_backend in [proxy]; unset means
io_backend = auto), so that ctest runs the suite on both backends.
"""
import collections
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (M, Gateway, RawConn, b64url, conf_text, env_path, free_port,  # noqa: E402
                     keyauth, main, new_token, reply, sanitizer_marks, serve_in_thread,
                     sha256_hex, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/release/cmd/acme-edge")
IO_BACKEND = os.environ.get("PROXY_IO_BACKEND") or None
CH = "acmeedge_proxy_challenges_total"
CHALLENGE = "/.well-known/acme-challenge/"
ADMIN = b64url(32)
THUMB_A = b64url(32)
THUMB_B = b64url(32)
THUMB_C = b64url(32)


# ---- the recording upstream ------------------------------------------------------

class Recorder(http.server.ThreadingHTTPServer):
    """Answers every request 200 "upstream" and records (method, path, Host,
    body) of each, so a test can say what reached the servers behind."""
    daemon_threads = True

    def __init__(self, port):
        self.seen = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), RecorderHandler)

    def take(self):
        with self.lock:
            seen, self.seen = self.seen, []
        return seen

    def handle_error(self, request, client_address):
        pass


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.headers.get("Host"), body))
        reply(self, 200, b"upstream")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = handle_one

    def log_message(self, *a):
        pass


# ---- the gateway -------------------------------------------------------------------

class ClientsGateway(Gateway):
    """`acme-edge run` with an admin API client, a recording upstream behind
    [route default], and the [stateless] sections the class asks for."""

    def __init__(self, tmpdir, name, upstream_port):
        super().__init__(tmpdir, name, ADMIN, store_path("cl", name))
        self.upstream_port = upstream_port
        self.stateless = collections.OrderedDict()

    def config_text(self):
        sections = [
            ("store", {"path": self.store, "capacity": 64}),
            ("api", {"listen": "127.0.0.1:%d" % self.api_port, "timeout": "10s",
                     "sweep_interval": "1s"}),
            ("client admin", {"token_sha256": sha256_hex(ADMIN), "identifiers": "*"}),
            ("proxy", {"http": "127.0.0.1:%d" % self.http,
                       "https": "127.0.0.1:%d" % self.https, "workers": 2,
                       "io_backend": IO_BACKEND or "auto", "http_miss": "forward",
                       "peek_timeout": "10s", "grace": "2s"}),
            ("route default", {"http": "127.0.0.1:%d" % self.upstream_port})]
        sections += [("stateless " + n, keys) for n, keys in self.stateless.items()]
        sections.append(("log", {"level": "info"}))
        return conf_text(sections, "written by tests/integration/test_clients.py")

    def start(self):
        pre = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
        self.write_config()
        self.spawn(pre + [ACME_EDGE, "run", "-c", self.conf])

    def reload(self, timeout=20.0):
        """Rewrites the config and SIGHUPs the master; returns once the
        proxy logged the reload and its workers had a loop turn."""
        self.write_config()
        n = self.log().count("proxy: reloaded")
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if "reload of" in log[-4000:] and "failed" in log[-4000:]:
                raise AssertionError("reload failed:\n%s" % log[-4000:])
            if log.count("proxy: reloaded") > n:
                time.sleep(0.5)     # workers switch at their next loop turn
                return
            time.sleep(0.02)
        raise AssertionError("no reload logged within %.0fs:\n%s" % (timeout, log[-4000:]))


def http_get(port, token, host, method="GET", path=None):
    """One challenge request on its own connection: a harness Resp."""
    c = RawConn(port)
    try:
        c.send(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
            method, path or CHALLENGE + token, host)).encode())
        return c.read_rest(*c.read_status(), method)
    finally:
        c.close()


class ClientsCase(unittest.TestCase):
    NAME = "clients"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-cl-")
        cls.upstream = Recorder(free_port())
        serve_in_thread(cls.upstream)
        cls.gw = ClientsGateway(cls.tmp, cls.NAME, cls.upstream.server_address[1])
        cls.configure(cls.gw)
        try:
            cls.gw.start()
            cls.gw.wait_ready()
        except BaseException:
            cls._finish()
            raise

    @classmethod
    def configure(cls, gw):
        pass

    @classmethod
    def tearDownClass(cls):
        cls._finish()

    @classmethod
    def _finish(cls):
        rc, log = cls.gw.finish()
        cls.upstream.shutdown()
        cls.upstream.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        marks = sanitizer_marks(log)
        if rc not in (0, None) or marks:
            sys.stderr.write("\n----- %s gateway log (tail) -----\n%s\n" % (
                cls.__name__, log[-20000:]))
            raise AssertionError("%s: exit %r, sanitizer marks %r" % (cls.__name__, rc, marks))

    def setUp(self):
        self.upstream.take()

    def metric(self, key):
        return self.gw.metrics().get(key, 0)


# ---- [stateless NAME] --------------------------------------------------------------

class StatelessTest(ClientsCase):
    NAME = "stateless"

    @classmethod
    def configure(cls, gw):
        gw.stateless["a"] = {"thumbprint": THUMB_A, "identifiers": "*.st.test"}
        gw.stateless["b"] = {"thumbprint": THUMB_B,
                             "identifiers": "exact.test 192.0.2.7 *.b.st.test"}

    def assert_stateless(self, r, token, thumb, method="GET"):
        body = ("%s.%s" % (token, thumb)).encode()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "application/octet-stream")
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        self.assertEqual(r.headers.get("server"), "acme-edge")
        self.assertEqual(int(r.headers.get("content-length")), len(body))
        self.assertEqual(r.body, b"" if method == "HEAD" else body)

    def test_in_scope_random_tokens(self):
        """Any valid token under a covered Host: <token>.<thumbprint>, with the
        headers of a stored answer, on GET and HEAD, on one keep-alive
        connection too; the upstream sees none of it."""
        before = self.metric(M(CH, kind="http-01", result="stateless"))
        answered = self.metric(M(CH, kind="http-01", result="answered"))
        tokens = [new_token() for _ in range(20)] + [b64url(12), b64url(150)[:255]]
        for i, t in enumerate(tokens):
            host = ("www.st.test", "WWW.St.Test:80", "a.b.st.test", "exact.test",
                    "192.0.2.7")[i % 5]
            # a.b.st.test is under both sections' names: the first one wins.
            thumb = THUMB_B if host in ("exact.test", "192.0.2.7") else THUMB_A
            self.assert_stateless(http_get(self.gw.http, t, host), t, thumb)
        t = new_token()
        self.assert_stateless(http_get(self.gw.http, t, "x.st.test", "HEAD"), t, THUMB_A, "HEAD")
        c = RawConn(self.gw.http)
        try:
            for _ in range(3):
                t = new_token()
                c.send(("GET %s%s HTTP/1.1\r\nHost: ka.st.test\r\n\r\n" % (
                    CHALLENGE, t)).encode())
                self.assert_stateless(c.read_rest(*c.read_status(), "GET"), t, THUMB_A)
        finally:
            c.close()
        n = len(tokens) + 4
        self.assertEqual(self.upstream.take(), [])
        self.assertEqual(self.metric(M(CH, kind="http-01", result="stateless")) - before, n)
        self.assertEqual(self.metric(M(CH, kind="http-01", result="answered")), answered,
                         "a stateless answer is not counted as a stored one")
        log = self.gw.log()
        self.assertRegex(log, r"proxy: http-01 answered: client 127\.0\.0\.1:\d+, identifier "
                              r"ka\.st\.test, key %s, stateless \[stateless a\]" % re.escape(t))

    def test_out_of_scope_is_a_miss(self):
        """Hosts no rule covers, and tokens a CA would not issue, get the miss
        policy (http_miss = forward here): the upstream answers."""
        t = new_token()
        cases = [(t, "st.test"), (t, "other.test"), (t, "evilst.test"), (t, "192.0.2.8"),
                 ("short", "www.st.test"), ("a" * 256, "www.st.test"),
                 ("bad.token.value.abcdef", "www.st.test")]
        for tok, host in cases:
            r = http_get(self.gw.http, tok, host)
            self.assertEqual((r.status, r.body), (200, b"upstream"), (tok, host, r))
        seen = self.upstream.take()
        self.assertEqual([(m, p, h) for m, p, h, _ in seen],
                         [("GET", CHALLENGE + tok, host) for tok, host in cases])
        # Not the challenge path, or not GET/HEAD: relayed as ever.
        r = http_get(self.gw.http, None, "www.st.test", path="/" + t)
        self.assertEqual(r.body, b"upstream")
        r = http_get(self.gw.http, t, "www.st.test", path=CHALLENGE + t + "/x")
        self.assertEqual(r.body, b"upstream")
        self.assertEqual(len(self.upstream.take()), 2)

    def test_stored_entry_wins(self):
        """An entry pushed for the token answers instead of the rule; an entry
        bound to another name makes the token a miss, not a stateless answer."""
        t = new_token()
        ka = keyauth(t, THUMB_C)
        self.gw.put_http01(t, ka, identifier="www.st.test")
        r = http_get(self.gw.http, t, "www.st.test")
        self.assertEqual((r.status, r.body), (200, ka.encode()))
        r = http_get(self.gw.http, t, "other.st.test")
        self.assertEqual(r.body, b"upstream", "bound elsewhere: a miss, forwarded")
        self.assertEqual(len(self.upstream.take()), 1)
        st, _, _ = self.gw.api("DELETE", "/v1/http-01/" + t)
        self.assertEqual(st, 204)
        self.assert_stateless(http_get(self.gw.http, t, "www.st.test"), t, THUMB_A)


class StatelessReloadTest(ClientsCase):
    NAME = "stateless-reload"

    def test_reload_adds_and_removes_a_rule(self):
        t = new_token()
        r = http_get(self.gw.http, t, "www.reload.test")
        self.assertEqual(r.body, b"upstream", "no rule yet")
        self.gw.stateless["r"] = {"thumbprint": THUMB_C, "identifiers": "*.reload.test"}
        self.gw.reload()
        r = http_get(self.gw.http, t, "www.reload.test")
        self.assertEqual((r.status, r.body), (200, ("%s.%s" % (t, THUMB_C)).encode()))
        self.gw.stateless["r"]["thumbprint"] = THUMB_A
        self.gw.reload()
        r = http_get(self.gw.http, t, "www.reload.test")
        self.assertEqual(r.body, ("%s.%s" % (t, THUMB_A)).encode(), "a new thumbprint")
        del self.gw.stateless["r"]
        self.gw.reload()
        r = http_get(self.gw.http, t, "www.reload.test")
        self.assertEqual(r.body, b"upstream", "rule removed")
        self.assertEqual(len(self.upstream.take()), 2)


# ---- acme-edge check -----------------------------------------------------------------

class CheckTest(unittest.TestCase):
    """`acme-edge check` on the new sections and keys: every mistake as
    FILE:LINE, the good forms accepted."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-cl-check-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def check(self, text, name="c.conf", mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        p = subprocess.run([ACME_EDGE, "check", "-c", path], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        errors = re.findall(r"^%s:(\d+): (.*)$" % re.escape(path), p.stderr, re.M)
        return p.returncode, [(int(n), m) for n, m in errors], p.stdout + p.stderr

    def base(self):
        return conf_text([("client admin", {"token_sha256": sha256_hex(ADMIN),
                                             "identifiers": "*"})])

    def test_good_stateless(self):
        rc, errs, out = self.check(self.base() + conf_text([
            ("stateless one", {"thumbprint": THUMB_A, "identifiers": "example.com *.example.com"}),
            ("stateless any", {"thumbprint": "-_" + "A" * 41, "identifiers": "*"}),
            ("stateless ip", {"thumbprint": THUMB_B, "identifiers": "192.0.2.1 2001:db8::/32"})]))
        self.assertEqual((rc, errs), (0, []), out)

    def test_stateless_mistakes(self):
        lines = [
            "[stateless short]",                                    # 1
            "thumbprint = " + "A" * 42,                             # 2
            "identifiers = example.com",                            # 3
            "[stateless long]",                                     # 4
            "thumbprint = " + "A" * 44,                             # 5
            "identifiers = example.com",                            # 6
            "[stateless charset]",                                  # 7
            "thumbprint = " + "A" * 42 + "=",                       # 8
            "identifiers = example.com",                            # 9
            "[stateless nothumb]",                                  # 10
            "identifiers = example.com",                            # 11
            "[stateless noidents]",                                 # 12
            "thumbprint = " + THUMB_A,                              # 13
            "[stateless badpattern]",                               # 14
            "thumbprint = " + THUMB_A,                              # 15
            "identifiers = example.com *.*.example.com",            # 16
            "[stateless]",                                          # 17
            "[stateless twice]",                                    # 18
            "thumbprint = " + THUMB_A,                              # 19
            "thumbprint = " + THUMB_B,                              # 20
            "identifiers = a.example",                              # 21
            "unknown = 1",                                          # 22
        ]
        rc, errs, out = self.check("\n".join(lines) + "\n")
        self.assertEqual(rc, 1, out)
        want = [(2, r"thumbprint: .* is not an ACME account thumbprint"),
                (5, r"thumbprint: .* is not an ACME account thumbprint"),
                (8, r"thumbprint: .* is not an ACME account thumbprint"),
                (10, r"\[stateless nothumb\]: thumbprint is required"),
                (12, r"\[stateless noidents\]: identifiers is required"),
                (16, r"identifiers: \"\*\.\*\.example\.com\" is not a name pattern"),
                (17, r"expected \[stateless NAME\]"),
                (20, r"thumbprint: set twice"),
                (22, r"unknown key \"unknown\" in \[stateless twice\]")]
        got = sorted(errs)
        self.assertEqual(len(got), len(want), out)
        for (line, msg), (wline, wre) in zip(got, want):
            self.assertEqual(line, wline, out)
            self.assertRegex(msg, wre)

    def test_stateless_not_in_clients_file(self):
        clients = os.path.join(self.tmp, "clients.conf")
        with open(clients, "w") as f:
            f.write(conf_text([("stateless x", {"thumbprint": THUMB_A, "identifiers": "*"})]))
        os.chmod(clients, 0o600)
        rc, _, out = self.check(conf_text([("api", {"clients_file": clients})]))
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"clients\.conf:1: \[stateless x\]: a clients file holds only "
                              r"\[client NAME\] sections")


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE")], tools=["openssl"])
