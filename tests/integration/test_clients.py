#!/usr/bin/python3
"""
The gateway as ACME clients that do not use the solver API's own routes
see it: [stateless NAME] rules (acme.sh --stateless) answered by the proxy
from the account thumbprint alone; the REST responder on port 80 (what
simple-acme's REST validation speaks: PUT and DELETE of the challenge URL
with a bearer token), handed by the proxy to the API's REST listener with a
PROXY v2 header, with its whole refusal matrix; and the checks `acme-edge
check` makes of the new sections and keys.

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
import concurrent.futures
import http.client
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
# The two users the API and the proxy run as, made as test_local.py makes them.
from test_local import API_USER, PROXY_USER, system_user  # noqa: E402
from harness import recv_all  # noqa: E402
from harness import (M, Gateway, RawConn, b64url, conf_text, env_path, free_port,  # noqa: E402
                     keyauth, main, new_token, reply, sanitizer_marks, serve_in_thread,
                     sha256_hex, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/release/acme-edge")
IO_BACKEND = os.environ.get("PROXY_IO_BACKEND") or None
CH = "acmeedge_proxy_challenges_total"
CHALLENGE = "/.well-known/acme-challenge/"
ADMIN = b64url(32)
THUMB_A = b64url(32)
THUMB_B = b64url(32)
THUMB_C = b64url(32)
REST = b64url(32)              # bearer of [client rest]: rest_responder = yes
REST_OTHER = b64url(32)        # [client other]: rest_responder, other names
NOREST = b64url(32)            # [client norest]: the same names, no rest_responder
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


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
        self.clients = collections.OrderedDict()
        self.api_extra = {}
        self.proxy_extra = {}

    def config_text(self):
        sections = [
            ("store", {"path": self.store, "capacity": 64}),
            ("api", dict({"listen": "127.0.0.1:%d" % self.api_port, "timeout": "10s",
                          "sweep_interval": "1s"}, **self.api_extra)),
            ("client admin", {"token_sha256": sha256_hex(ADMIN), "identifiers": "*"})]
        sections += [("client " + n, keys) for n, keys in self.clients.items()]
        sections += [
            ("proxy", {"http": "127.0.0.1:%d" % self.http,
                       "https": "127.0.0.1:%d" % self.https, "workers": 2,
                       "io_backend": IO_BACKEND or "auto", "http_miss": "forward",
                       "peek_timeout": "10s", "grace": "2s", **self.proxy_extra}),
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


# ---- the REST responder ----------------------------------------------------------------

def rest(port, method, token, host, bearer=REST, body=None, src="127.0.0.1", headers=(),
         path=None, chunked=False):
    """One request as simple-acme's REST plugin sends it (bearer, Accept:
    application/json, the key authorization as text/plain; charset=utf-8)
    to the gateway's port 80 with Host set, from source address src:
    (status, lowercase headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(src, 0))
    try:
        c.putrequest(method, path or CHALLENGE + token, skip_host=True,
                     skip_accept_encoding=True)
        c.putheader("Host", host)
        if bearer is not None:
            c.putheader("Authorization", "Bearer " + bearer)
        c.putheader("Accept", "application/json")
        for k, v in headers:
            c.putheader(k, v)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            c.putheader("Content-Type", "text/plain; charset=utf-8")
            if chunked:
                c.putheader("Transfer-Encoding", "chunked")
                c.endheaders()
                c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            else:
                c.putheader("Content-Length", str(len(body)))
                c.endheaders(body)
        else:
            c.endheaders()
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class RestTest(ClientsCase):
    NAME = "rest"

    @classmethod
    def configure(cls, gw):
        gw.clients["rest"] = {"token_sha256": sha256_hex(REST),
                              "identifiers": "rest.test *.rest.test",
                              "cidrs": "127.0.0.1/32 ::1/128", "rest_responder": "yes"}
        gw.clients["other"] = {"token_sha256": sha256_hex(REST_OTHER),
                               "identifiers": "*.other.test", "cidrs": "127.0.0.0/8",
                               "rest_responder": "yes"}
        gw.clients["norest"] = {"token_sha256": sha256_hex(NOREST),
                                "identifiers": "*.rest.test", "cidrs": "127.0.0.0/8"}

    def stored(self):
        st, _, body = self.gw.api("GET", "/v1/challenges")
        self.assertEqual(st, 200)
        return {c["token"]: c for c in json.loads(body)["challenges"] if c["kind"] == "http-01"}

    def test_put_answer_replace_delete(self):
        """The reference responder's cycle: PUT 201 (bound to Host, the
        client's default TTL), answered to the CA, PUT again 201, DELETE 204,
        DELETE again 404; no PUT or DELETE ever reaches the upstream."""
        t = new_token()
        ka = keyauth(t)
        st, h, body = rest(self.gw.http, "PUT", t, "www.rest.test", body=ka)
        self.assertEqual(st, 201, body)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(h.get("connection"), "close")
        e = self.stored()[t]
        self.assertEqual((e["identifier"], e["client"]), ("www.rest.test", "rest"))
        r = http_get(self.gw.http, t, "www.rest.test")
        self.assertEqual((r.status, r.body), (200, ka.encode()))
        r = http_get(self.gw.http, t, "other.rest.test")
        self.assertEqual(r.body, b"upstream", "bound to its Host: another Host misses")
        ka2 = keyauth(t, THUMB_C)
        st, _, body = rest(self.gw.http, "PUT", t, "WWW.rest.test:80", body=ka2)
        self.assertEqual(st, 201, "a replace is 201 too: %r" % body)
        r = http_get(self.gw.http, t, "www.rest.test")
        self.assertEqual(r.body, ka2.encode())
        st, _, body = rest(self.gw.http, "DELETE", t, "www.rest.test")
        self.assertEqual(st, 204, body)
        self.assertNotIn(t, self.stored())
        st, _, body = rest(self.gw.http, "DELETE", t, "www.rest.test")
        self.assertEqual(st, 404, body)
        r = http_get(self.gw.http, t, "www.rest.test")
        self.assertEqual(r.body, b"upstream")
        seen = self.upstream.take()
        self.assertEqual([m for m, _, _, _ in seen], ["GET", "GET"], seen)
        log = self.gw.log()
        self.assertRegex(log, r"proxy: REST PUT handed to the API: client 127\.0\.0\.1:\d+ "
                              r"\(rest\), identifier www\.rest\.test, key %s" % re.escape(t))
        self.assertRegex(log, r"api: client rest put http-01 token for www\.rest\.test "
                              r"\(expires in 3600s\)")

    def test_refusals(self):
        """Every refusal with its status; none stores anything, none reaches
        the upstream."""
        t = new_token()
        ka = keyauth(t)
        big = "x" * 501
        before = self.stored()
        cases = [
            ("no bearer", dict(bearer=None, body=ka), 401, "unauthorized"),
            ("unknown token", dict(bearer=b64url(32), body=ka), 401, "unauthorized"),
            ("two Authorization fields",
             dict(body=ka, headers=[("Authorization", "Bearer " + REST)]), 401, "unauthorized"),
            ("not Bearer", dict(bearer=None, body=ka,
                                headers=[("Authorization", "Basic cmVzdDpyZXN0")]),
             401, "unauthorized"),
            ("client without rest_responder", dict(bearer=NOREST, body=ka), 403,
             "rest_not_enabled"),
            ("outside its cidrs", dict(body=ka, src="127.0.0.2"), 403, "source_not_allowed"),
            ("Host outside its scope", dict(body=ka, host="www.elsewhere.test"), 403,
             "identifier_not_allowed"),
            ("another client's names", dict(body=ka, host="a.other.test"), 403,
             "identifier_not_allowed"),
            ("body over 500 bytes", dict(body=big), 400, "bad_body"),
            ("empty body", dict(body=""), 400, "bad_body"),
            ("no body", dict(), 400, "bad_body"),
            ("chunked body", dict(body=ka, chunked=True), 400, "bad_body"),
            ("not token.thumbprint", dict(body="hello"), 400, "bad_key_authorization"),
            ("another token's key authorization", dict(body=keyauth(new_token())), 400,
             "bad_key_authorization"),
            ("the key authorization with a newline", dict(body=ka + "\n"), 400,
             "bad_key_authorization"),
            ("JSON body", dict(body=json.dumps({"key_authorization": ka})), 400,
             "bad_key_authorization"),
            ("a token too short", dict(token="short", body="short." + THUMB_A), 400,
             "bad_token"),
            ("Host an IP literal outside its scope", dict(body=ka, host="192.0.2.1"), 403,
             "identifier_not_allowed"),
        ]
        got = []
        for name, kw, want, word in cases:
            kw = dict(kw)
            method = kw.pop("method", "PUT")
            st, h, body = rest(self.gw.http, method, kw.pop("token", t),
                               kw.pop("host", "www.rest.test"), **kw)
            got.append(st)
            self.assertEqual(st, want, "%s: %d %r" % (name, st, body))
            self.assertEqual(json.loads(body)["error"], word, name)
            if st == 401:
                self.assertIn("Bearer", h.get("www-authenticate", ""), name)
        sys.stderr.write("\n[matrix] %s\n" % ", ".join(
            "%s: %d" % (c[0], s) for c, s in zip(cases, got)))
        self.assertEqual(self.stored(), before, "a refusal stored something")
        # DELETEs: out of scope, unknown, another Host's, not enabled.
        st, _, _ = rest(self.gw.http, "PUT", t, "a.rest.test", body=ka)
        self.assertEqual(st, 201)
        for name, kw, want in [
                ("DELETE without bearer", dict(bearer=None), 401),
                ("DELETE without rest_responder", dict(bearer=NOREST), 403),
                ("DELETE outside cidrs", dict(src="127.0.0.3"), 403),
                ("DELETE outside scope", dict(host="x.other.test"), 403),
                ("DELETE under another Host", dict(host="b.rest.test"), 404),
                ("DELETE of another client's names", dict(bearer=REST_OTHER,
                                                          host="a.other.test"), 404),
                ("DELETE with a large body", dict(body="y" * 501), 400)]:
            st, _, body = rest(self.gw.http, "DELETE", t, kw.pop("host", "a.rest.test"), **kw)
            self.assertEqual(st, want, "%s: %r" % (name, body))
        self.assertIn(t, self.stored(), "a refused DELETE removed the entry")
        st, _, _ = rest(self.gw.http, "DELETE", t, "a.rest.test")
        self.assertEqual(st, 204)
        self.assertEqual(self.upstream.take(), [], "a PUT or DELETE reached the upstream")

    def test_other_clients_entry(self):
        """A REST PUT may not replace another client's challenge: the API's
        ownership rule, the same as on /v1/."""
        t = new_token()
        self.gw.put_http01(t, keyauth(t), identifier="www.elsewhere.test")
        st, _, body = rest(self.gw.http, "PUT", t, "www.rest.test", body=keyauth(t))
        self.assertEqual(st, 403, body)
        self.assertEqual(json.loads(body)["error"], "not_owner")
        self.assertEqual(self.stored()[t]["identifier"], "www.elsewhere.test")
        self.gw.api("DELETE", "/v1/http-01/" + t)

    def test_parallel_puts_then_deletes(self):
        """As simple-acme does for an order: every PUT at once, each on its
        own connection, then every DELETE at once."""
        names = ["n%d.rest.test" % i for i in range(12)]
        tokens = {n: new_token() for n in names}
        with concurrent.futures.ThreadPoolExecutor(len(names)) as ex:
            puts = list(ex.map(lambda n: rest(self.gw.http, "PUT", tokens[n], n,
                                              body=keyauth(tokens[n]))[0], names))
        self.assertEqual(puts, [201] * len(names))
        for n in names:
            r = http_get(self.gw.http, tokens[n], n)
            self.assertEqual(r.body, keyauth(tokens[n]).encode())
        with concurrent.futures.ThreadPoolExecutor(len(names)) as ex:
            dels = list(ex.map(lambda n: rest(self.gw.http, "DELETE", tokens[n], n)[0], names))
        self.assertEqual(dels, [204] * len(names))
        stored = self.stored()
        self.assertFalse([t for t in tokens.values() if t in stored])
        self.assertEqual(self.upstream.take(), [])

    def test_metrics(self):
        m0 = self.gw.metrics()
        t = new_token()
        rest(self.gw.http, "PUT", t, "m.rest.test", body=keyauth(t))
        rest(self.gw.http, "PUT", t, "m.rest.test", bearer=None, body=keyauth(t))
        rest(self.gw.http, "DELETE", t, "m.rest.test")
        m = self.gw.metrics()

        def d(k):
            return m.get(k, 0) - m0.get(k, 0)
        self.assertEqual(d(M("acmeedge_proxy_rest_requests_total", result="handed_off")), 2)
        self.assertEqual(d(M("acmeedge_proxy_rest_requests_total", result="refused")), 1)
        routes = {k: v - m0.get(k, 0) for k, v in m.items()
                  if k[0] == "acmeedge_api_requests_total" and "rest" in str(k)}
        self.assertEqual(sorted((dict(k[1])["route"], dict(k[1])["code"], int(v))
                                for k, v in routes.items() if v),
                         [("rest_delete", "204", 1), ("rest_put", "201", 1)])


class RestUsersTest(ClientsCase):
    """Started as root with [api] user and [proxy] user: the API makes its
    REST listener before it drops root, the API's user's and the proxy's
    group's, and the proxy, running as its own user, hands requests to it."""
    NAME = "rest-users"

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root, to run the API and the proxy as two users")
        super().setUpClass()

    @classmethod
    def configure(cls, gw):
        cls.api_pw, cls.proxy_pw = system_user(API_USER), system_user(PROXY_USER)
        gw.api_extra["user"] = API_USER
        gw.proxy_extra["user"] = PROXY_USER
        gw.clients["rest"] = {"token_sha256": sha256_hex(REST),
                              "identifiers": "*.rest.test", "cidrs": "127.0.0.1/32",
                              "rest_responder": "yes"}

    def test_rest_across_two_users(self):
        st = os.stat(self.gw.store + ".rest")
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777),
                         (self.api_pw.pw_uid, self.proxy_pw.pw_gid, 0o660))
        t = new_token()
        st, _, body = rest(self.gw.http, "PUT", t, "u.rest.test", body=keyauth(t))
        self.assertEqual(st, 201, body)
        r = http_get(self.gw.http, t, "u.rest.test")
        self.assertEqual(r.body, keyauth(t).encode())
        st, _, body = rest(self.gw.http, "DELETE", t, "u.rest.test")
        self.assertEqual(st, 204, body)
        self.assertEqual(self.upstream.take(), [])


class RestListenerTest(ClientsCase):
    """The API's REST listener itself: it takes a PROXY v2 header naming the
    client and nothing else, and judges by the address in it; the API's
    own listener never takes one."""
    NAME = "rest-listener"

    @classmethod
    def configure(cls, gw):
        gw.clients["rest"] = {"token_sha256": sha256_hex(REST),
                              "identifiers": "*.rest.test", "cidrs": "192.0.2.0/24",
                              "rest_responder": "yes"}

    def socket_path(self):
        return self.gw.store + ".rest"

    def direct(self, head):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(self.socket_path())
        try:
            s.sendall(head)
            return recv_all(s)
        finally:
            s.close()

    @staticmethod
    def v2(src, dst=("127.0.0.1", 80), local=False):
        ver_cmd = 0x20 if local else 0x21
        addrs = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + \
            src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big")
        return V2_SIG + bytes([ver_cmd, 0x11]) + len(addrs).to_bytes(2, "big") + addrs

    def put(self, token):
        ka = keyauth(token)
        return ("PUT %s%s HTTP/1.1\r\nHost: a.rest.test\r\nAuthorization: Bearer %s\r\n"
                "Content-Length: %d\r\n\r\n%s" % (CHALLENGE, token, REST, len(ka), ka)).encode()

    def test_socket_mode(self):
        st = os.stat(self.socket_path())
        self.assertEqual(st.st_mode & 0o777, 0o660)
        self.assertEqual(st.st_uid, os.geteuid())

    def test_judged_by_the_header(self):
        t = new_token()
        out = self.direct(self.v2(("192.0.2.9", 4000)) + self.put(t))
        self.assertTrue(out.startswith(b"HTTP/1.1 201"), out)
        out = self.direct(self.v2(("198.51.100.9", 4000)) + self.put(new_token()))
        self.assertTrue(out.startswith(b"HTTP/1.1 403"), out)
        self.assertIn(b"source_not_allowed", out)
        # Cut anywhere, the header still comes off whole.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(self.socket_path())
        data = self.v2(("192.0.2.10", 4000)) + self.put(new_token())
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
            time.sleep(0.005)
        out = s.recv(65536)
        s.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 201"), out)

    def test_no_header_no_answer(self):
        """Without a v2 header naming a client (none, v1, LOCAL, garbage), the
        connection is closed with nothing read or answered."""
        for head in (b"", b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 80\r\n",
                     self.v2(("192.0.2.9", 4000), local=True), b"GARBAGE\r\n\r\n"):
            self.assertEqual(self.direct(head + self.put(new_token())), b"", head)
        self.assertIn("without a PROXY v2 header naming the client", self.gw.log())

    def test_api_listener_takes_no_header(self):
        c = RawConn(self.gw.api_port)
        try:
            c.send(self.v2(("192.0.2.9", 4000)) + b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            try:
                st, _ = c.read_status()
            except (EOFError, AssertionError):
                st = None
            self.assertNotEqual(st, 200)
        finally:
            c.close()


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

    def test_rest_responder_keys(self):
        text = conf_text([
            ("store", {"path": "/dev/shm/acme-edge-check-" + b64url(6)}),
            ("client ok", {"token_sha256": sha256_hex("a"), "identifiers": "*.a.test",
                           "cidrs": "10.0.0.0/8", "rest_responder": "yes"}),
            ("client off", {"token_sha256": sha256_hex("b"), "identifiers": "*.b.test",
                            "rest_responder": "no"})])
        rc, errs, out = self.check(text)
        self.assertEqual((rc, errs), (0, []), out)
        lines = [
            "[client nocidrs]",                                 # 1
            "token_sha256 = " + sha256_hex("c"),                # 2
            "identifiers = *.c.test",                           # 3
            "rest_responder = yes",                             # 4
            "[client maybe]",                                   # 5
            "token_sha256 = " + sha256_hex("d"),                # 6
            "identifiers = *.d.test",                           # 7
            "cidrs = 10.0.0.0/8",                               # 8
            "rest_responder = maybe",                           # 9
            "[api]",                                            # 10
            "rest_listen = relative/path",                      # 11
        ]
        rc, errs, out = self.check("\n".join(lines) + "\n")
        self.assertEqual(rc, 1, out)
        self.assertEqual([n for n, _ in sorted(errs)], [1, 9, 11], out)
        msgs = dict(errs)
        self.assertRegex(msgs[1], r"\[client nocidrs\]: rest_responder needs cidrs")
        self.assertRegex(msgs[9], r"rest_responder: expected yes \| no")
        self.assertRegex(msgs[11], r"rest_listen: expected the absolute path of a Unix socket")
        # A store path too long for a socket beside it: say so, unless
        # rest_listen names one, or no client uses the REST responder.
        long_store = "/dev/shm/" + "s" * 100
        client = ("client r", {"token_sha256": sha256_hex("e"), "identifiers": "*.e.test",
                               "cidrs": "10.0.0.0/8", "rest_responder": "yes"})
        rc, errs, out = self.check(conf_text([("store", {"path": long_store}), client]))
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"too long for a Unix socket: set \[api\] rest_listen")
        rc, errs, out = self.check(conf_text([
            ("store", {"path": long_store}), ("api", {"rest_listen": "/run/acme-edge.rest"}),
            client]))
        self.assertEqual((rc, errs), (0, []), out)
        rc, errs, out = self.check(conf_text([("store", {"path": long_store})]))
        self.assertEqual((rc, errs), (0, []), out)
        rc, errs, out = self.check(conf_text([("api", {"rest_listen": "/" + "r" * 120})]))
        self.assertEqual(rc, 1, out)

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
