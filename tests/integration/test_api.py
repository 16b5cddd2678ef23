#!/usr/bin/python3
"""
Real-socket integration tests of the solver API (`acme-edge api`).

Every test starts its own `acme-edge api -c CONF` on a free loopback port,
with a config written to a temp dir and a store under /dev/shm unique to the
run, and stops it (by PID, SIGTERM) when the test ends, even on failure,
checking that it exited 0 with no sanitizer report; tearDown also checks
that the request counters in /metrics match exactly what the test sent. On
any failure the server's log is printed. ACME_EDGE_WRAPPER="valgrind ..."
runs every server under a wrapper; ACME_EDGE_LATENCY_PUTS sets the number
of PUTs timed (10000). The store is read from a
separate process, tests/tools/store_probe, exactly as the proxy maps it.

Python standard library only, plus the `openssl` CLI for certificates.
Environment: ACME_EDGE (the binary), STORE_PROBE (the probe).
"""
import base64
import collections
import http.client
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (ACME_OID, THUMB, M, Edge, RawConn, Resp, b64url,  # noqa: E402
                     conf_text, env_path, free_port, keyauth, main, make_cert, new_token,
                     openssl, outcome_ok, parse_metrics, sanitizer_marks, sha256_hex,
                     sni_of, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/e2/acme-edge")
STORE_PROBE = env_path("STORE_PROBE", "build/e2/tests/store_probe")


# ---- names and secrets ------------------------------------------------------

OTHER_THUMB = b64url(32)
PINNED_THUMB = b64url(32)
assert len(THUMB) == 43

# Every API client the tests use; bearer tokens are fresh for every run.
CLIENTS = {
    "admin": {"identifiers": "*"},
    "certbot": {"identifiers": "example.com *.example.com 192.0.2.0/24 "
                               "2001:db8::/32"},
    "other": {"identifiers": "other.org *.other.org"},
    "netlimited": {"identifiers": "*", "cidrs": "10.0.0.0/8"},
    "local": {"identifiers": "*", "cidrs": "127.0.0.0/8 ::1"},
    "pinned": {"identifiers": "pinned.example.net",
               "thumbprints": PINNED_THUMB},
}
BEARER = {name: b64url(32) for name in list(CLIENTS) + ["newbie"]}

API_DEFAULTS = {
    "default_ttl": "600s",
    "max_ttl": "1h",
    "max_body": "1024",
    "timeout": "1s",
    "max_connections": "64",
    "sweep_interval": "200ms",
}


def canonical(identifier):
    try:
        return str(ipaddress.ip_address(identifier.strip("[]")))
    except ValueError:
        return identifier.lower().rstrip(".")


def long_name(n):
    """A syntactically valid-looking DNS name of exactly n characters."""
    k = (n - 1) // 50
    name = ("a" * 49 + ".") * k + "z" * (n - 50 * k)
    assert len(name) == n
    return name


def route_of(method, path):
    """Which /metrics route label a request should count under."""
    p = path.split("?", 1)[0]
    if p == "/healthz":
        return "healthz"
    if p == "/metrics":
        return "metrics"
    if p == "/v1/challenges":
        return "list"
    if p == "/":
        return "status_page"
    if p == "/v1/status":
        return "status"
    for prefix, name in (("/v1/http-01/", "http01"),
                         ("/v1/tls-alpn-01/", "tlsalpn01")):
        if p.startswith(prefix):
            if method == "PUT":
                return "put_" + name
            if method == "DELETE":
                return "delete_" + name
            return "other"
    return "other"


# ---- helpers for sockets, the store probe and the server ---------------------

class Probe:
    """tests/tools/store_probe, one process, driven line by line."""

    def __init__(self, store_path):
        self.p = subprocess.Popen([STORE_PROBE, store_path], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""

    def cmd(self, line, timeout=5.0):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("store_probe: no answer to %r" % line)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                data = os.read(fd, 1 << 16)
                if not data:
                    raise AssertionError("store_probe exited: %s" %
                                         self.p.stderr.read().decode())
                self.buf += data
        out, self.buf = self.buf.split(b"\n", 1)
        return out.decode()

    def lookup(self, kind, key):
        """None on a miss, else a dict with version, ident, payload, cert."""
        ans = self.cmd("lookup %s %s" % (kind, key))
        if ans == "miss":
            return None
        parts = ans.split(" ", 5)
        if parts[0] != "hit" or len(parts) != 6:
            raise AssertionError("store_probe: unexpected answer %r" % ans)
        payload = parts[5].encode() if kind == "http-01" else bytes.fromhex(parts[5])
        e = {"version": int(parts[1]), "ident": None if parts[2] == "-" else parts[2],
             "payload_len": int(parts[3]), "cert_len": int(parts[4]),
             "payload": payload}
        assert len(payload) == e["payload_len"], ans
        e["cert"] = payload[:e["cert_len"]]
        e["key"] = payload[e["cert_len"]:]
        return e

    def count(self):
        return int(self.cmd("count"))

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            f.close()


class Server(Edge):
    """One `acme-edge api` process with its own config, log and store."""

    def __init__(self, tmpdir, name="api", capacity=8, api=None, clients=None,
                 store=None):
        super().__init__(tmpdir, name, store or store_path("it"))
        self.port = free_port()
        self.capacity = capacity
        self.api = dict(API_DEFAULTS, **(api or {}))
        self.clients = dict(clients or CLIENTS)
        self.write_config()

    def config_text(self):
        sections = [("store", {"path": self.store, "capacity": self.capacity}),
                    ("api", dict({"listen": "127.0.0.1:%d" % self.port}, **self.api)),
                    ("log", {"level": "info"})]
        sections += [("client " + name, dict({"token_sha256": sha256_hex(BEARER[name])}, **c))
                     for name, c in self.clients.items()]
        return conf_text(sections, "written by tests/integration/test_api.py")

    def start(self, wrapper=None):
        """wrapper: a command to run the binary under (valgrind ...); also
        taken from ACME_EDGE_WRAPPER for every server."""
        wrapper = wrapper or os.environ.get("ACME_EDGE_WRAPPER", "").split()
        self.spawn(list(wrapper) + [ACME_EDGE, "api", "-c", self.conf])


def config(**kw):
    """Per-test server settings: capacity=N and [api] keys."""
    def deco(fn):
        fn._server_cfg = kw
        return fn
    return deco


# ---- the tests ----------------------------------------------------------------

class ApiTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-it-")
        self.servers = []
        self.closers = []
        self.expected = collections.Counter()    # (route, code) -> count
        self.metrics_exact = True
        self._probe = None
        # runs even when setUp fails, after tearDown otherwise
        self.addCleanup(self._stop_everything)
        kw = dict(getattr(getattr(self, self._testMethodName), "_server_cfg", {}))
        capacity = kw.pop("capacity", 8)
        self.srv = self.start_server(capacity=capacity, api=kw)

    def tearDown(self):
        # Every (route, code) counter must match what the test sent.
        if outcome_ok(self) and self.metrics_exact and self.srv.alive():
            self.assert_metrics_match()

    def _stop_everything(self):
        problems = []
        for c in reversed(self.closers):
            try:
                c()
            except Exception:       # noqa: BLE001 - cleanup goes on
                pass
        if self._probe:
            self._probe.close()
        logs = []
        for s in self.servers:
            rc, log = s.finish()
            logs.append((s, log))
            if getattr(s, "expect_fail", False):
                continue
            if rc != 0:
                problems.append("%s exited with %r (want 0 after SIGTERM)" %
                                (s.name, rc))
            marks = sanitizer_marks(log)
            if marks:
                problems.append("%s log has %r" % (s.name, marks[0]))
        if problems or not outcome_ok(self):
            for s, log in logs:
                sys.stderr.write("\n----- %s log (%s, port %d) -----\n%s"
                                 "----- end of %s log -----\n" %
                                 (s.name, self.id(), s.port, log[-20000:], s.name))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    # -- server control --

    def start_server(self, name="api", capacity=8, api=None, clients=None,
                     store=None, wait=True, wrapper=None):
        s = Server(self.tmp, name=name, capacity=capacity, api=api,
                   clients=clients, store=store)
        self.servers.append(s)
        s.start(wrapper)
        if wait:
            self.wait_healthy(s)
        return s

    def wait_healthy(self, s, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not s.alive():
                self.fail("%s exited with %r before answering /healthz:\n%s" %
                          (s.name, s.proc.returncode, s.log()))
            try:
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=2)
                c.request("GET", "/healthz")
                r = c.getresponse()
                body = r.read()
                c.close()
                if s is self.servers[0]:
                    self.expected[("healthz", r.status)] += 1
                self.assertEqual(r.status, 200, body)
                self.assertEqual(json.loads(body), {"status": "ok"})
                return
            except (ConnectionRefusedError, ConnectionResetError):
                time.sleep(0.02)
        self.fail("%s did not answer /healthz within %.0fs:\n%s" %
                  (s.name, timeout, s.log()))

    @property
    def probe(self):
        if self._probe is None:
            self._probe = Probe(self.srv.store)
        return self._probe

    # -- requests --

    def request(self, method, path, body=None, client="admin", auth=None,
                headers=None, json_body=None, srv=None, count=True, timeout=10):
        """One request on a new connection. client=None: no Authorization."""
        srv = srv or self.srv
        h = {}
        if auth is not None:
            h["Authorization"] = auth
        elif client is not None:
            h["Authorization"] = "Bearer " + BEARER[client]
        if json_body is not None:
            body = json.dumps(json_body)
            h["Content-Type"] = "application/json"
        elif body is not None:
            h["Content-Type"] = "text/plain"
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if body is None and method in ("PUT", "POST"):
            body = b""
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            resp = Resp(r.status, r.reason,
                        {k.lower(): v for k, v in r.getheaders()}, data)
        except (OSError, http.client.HTTPException) as e:
            raise AssertionError("%s %s: %r (server alive: %s)" % (
                method, path[:100], e, srv.alive()))
        finally:
            c.close()
        if count and srv is self.srv:
            self.expected[(route_of(method, path), resp.status)] += 1
        return resp

    def put_http01(self, token, ka=None, client="admin", identifier=None, ttl=None,
                   as_json=False, **kw):
        ka = ka if ka is not None else keyauth(token)
        path = "/v1/http-01/" + token
        if as_json:
            body = {"key_authorization": ka}
            if identifier is not None:
                body["identifier"] = identifier
            if ttl is not None:
                body["ttl"] = ttl
            return self.request("PUT", path, json_body=body, client=client, **kw)
        q = {}
        if identifier is not None:
            q["identifier"] = identifier
        if ttl is not None:
            q["ttl"] = ttl
        if q:
            path += "?" + urllib.parse.urlencode(q)
        return self.request("PUT", path, body=ka, client=client, **kw)

    def put_tls(self, identifier, client="admin", ka=None, json_body=None, **kw):
        path = "/v1/tls-alpn-01/" + urllib.parse.quote(identifier, safe=":.[]")
        if json_body is not None:
            return self.request("PUT", path, json_body=json_body, client=client, **kw)
        return self.request("PUT", path, body=ka, client=client, **kw)

    def listing(self, client="admin"):
        r = self.request("GET", "/v1/challenges", client=client)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith(
            "application/json"), r.headers)
        return r.json()["challenges"]

    def snapshot(self):
        entries = sorted(self.listing(), key=lambda e: (e["kind"], e.get(
            "token", e.get("name", ""))))
        return entries, self.probe.count()

    def assert_json_error(self, r, word=None):
        self.assertTrue(r.headers.get("content-type", "").startswith(
            "application/json"), "error without a JSON Content-Type: %r %r" %
            (r, r.headers))
        try:
            j = r.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % r)
        self.assertIsInstance(j, dict, r)
        self.assertEqual(set(j), {"error", "detail"}, r)
        self.assertIsInstance(j["error"], str)
        self.assertIsInstance(j["detail"], str)
        self.assertTrue(j["detail"], r)
        if word is not None:
            self.assertEqual(j["error"], word, r)
        return j

    def expect_error(self, code, word, method, path, **kw):
        """Sends a request that must fail and change nothing in the store."""
        before = self.snapshot()
        r = self.request(method, path, **kw)
        self.assertEqual(r.status, code, "%s %s: want %d %s, got %r" % (
            method, path[:120], code, word, r))
        if method != "HEAD":
            self.assert_json_error(r, word)
        after = self.snapshot()
        self.assertEqual(before, after, "%s %s (%d %s) changed the store" % (
            method, path[:120], code, word))
        return r

    def metrics(self):
        r = self.request("GET", "/metrics", client=None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"),
                        r.headers)
        return parse_metrics(r.body.decode(), strict=True)

    def assert_metrics_match(self):
        m = self.metrics()
        got = collections.Counter()
        for (name, labels), v in m.items():
            if name == "acmeedge_api_requests_total":
                d = dict(labels)
                self.assertEqual(set(d), {"route", "code"})
                got[(d["route"], int(d["code"]))] = int(v)
        want = collections.Counter({k: v for k, v in self.expected.items() if v})
        self.assertEqual(dict(got), dict(want),
                         "acmeedge_api_requests_total does not match the "
                         "requests this test made")

    def gauge(self, m, name, **labels):
        return m[M(name, **labels)]

    # -- certificate checks with the openssl CLI --

    def check_cert(self, entry, identifier, digest_hex=None):
        """RFC 8737 checks on a stored tls-alpn-01 entry."""
        der, key = entry["cert"], entry["key"]
        self.assertGreater(len(der), 100)
        self.assertGreater(len(key), 30)
        text = openssl("x509", "-inform", "DER", "-noout", "-text", data=der).decode()
        # exactly one SAN extension holding exactly one name: the identifier
        self.assertEqual(text.count("X509v3 Subject Alternative Name"), 1, text)
        san = text.split("X509v3 Subject Alternative Name", 1)[1].splitlines()[1].strip()
        self.assertNotIn(",", san, "more than one SAN entry: %s" % san)
        try:
            ip = ipaddress.ip_address(identifier.strip("[]"))
            self.assertTrue(san.startswith("IP Address:"), san)
            self.assertEqual(ipaddress.ip_address(san[len("IP Address:"):]), ip)
        except ValueError:
            self.assertEqual(san, "DNS:" + canonical(identifier))
        # the acmeIdentifier extension: critical
        self.assertRegex(text, r"(1\.3\.6\.1\.5\.5\.7\.1\.31|acmeIdentifier)"
                               r"\s*:\s*critical", text)
        # ... and its value: OCTET STRING { OCTET STRING (32) digest }
        asn = openssl("asn1parse", "-inform", "DER", data=der).decode().splitlines()
        idx = [i for i, l in enumerate(asn)
               if "OBJECT" in l and (ACME_OID in l or "acmeIdentifier" in l)]
        self.assertEqual(len(idx), 1, "\n".join(asn))
        follow = asn[idx[0] + 1:idx[0] + 3]
        self.assertIn("BOOLEAN", follow[0], follow)
        self.assertRegex(follow[0], r":(255|1|TRUE)\s*$", follow)
        m = re.search(r"OCTET STRING\s+\[HEX DUMP\]:([0-9A-Fa-f]+)", follow[1])
        self.assertTrue(m, follow)
        value = m.group(1).lower()
        self.assertTrue(value.startswith("0420"), value)
        self.assertEqual(len(value), 4 + 64, value)
        if digest_hex is not None:
            self.assertEqual(value[4:], digest_hex.lower().replace(":", ""))
        # self-signed, and the stored key is the certificate's key
        subj = openssl("x509", "-inform", "DER", "-noout", "-subject", data=der)
        iss = openssl("x509", "-inform", "DER", "-noout", "-issuer", data=der)
        self.assertEqual(subj.split(b"=", 1)[1], iss.split(b"=", 1)[1])
        pub_cert = openssl("x509", "-inform", "DER", "-noout", "-pubkey", data=der)
        pub_key = openssl("pkey", "-inform", "DER", "-pubout", data=key)
        self.assertEqual(pub_cert, pub_key, "the stored key does not match the "
                                            "stored certificate")
        return value[4:]

    def make_cert(self, san, digest_hex=None, critical=True, name="c"):
        """A self-signed P-256 cert and key in PEM, made by `openssl req`."""
        ext = ["-addext", "subjectAltName=" + san]
        if digest_hex is not None:
            colon = ":".join(digest_hex[i:i + 2] for i in range(0, 64, 2))
            ext += ["-addext", "%s=%sDER:04:20:%s" % (
                ACME_OID, "critical," if critical else "", colon)]
        c = make_cert(self.tmp, "x", stem=name, extra=ext)
        with open(c["crt"]) as f1, open(c["key"]) as f2:
            return f1.read(), f2.read()

    # ==== routes and statuses ====================================================

    def test_create_replace_delete(self):
        tok = new_token()
        ka1, ka2 = keyauth(tok), keyauth(tok, OTHER_THUMB)
        r = self.put_http01(tok, ka1)
        self.assertEqual(r.status, 201, r)
        j = r.json()
        self.assertEqual(j["kind"], "http-01")
        self.assertEqual(j["token"], tok)
        self.assertEqual(j["client"], "admin")
        self.assertIsNone(j.get("identifier"))
        self.assertNotIn(ka1, r.body.decode())
        e1 = self.probe.lookup("http-01", tok)
        self.assertIsNotNone(e1)
        self.assertEqual(e1["payload"], ka1.encode())
        self.assertIsNone(e1["ident"])
        self.assertEqual(e1["version"], j["version"])

        r = self.put_http01(tok, ka2)
        self.assertEqual(r.status, 200, r)
        e2 = self.probe.lookup("http-01", tok)
        self.assertEqual(e2["payload"], ka2.encode())
        self.assertGreater(e2["version"], e1["version"])

        r = self.request("DELETE", "/v1/http-01/" + tok)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertIsNone(self.probe.lookup("http-01", tok))
        self.expect_error(404, "not_found", "DELETE", "/v1/http-01/" + tok)

        name = "a.example.com"
        r = self.put_tls(name, ka=keyauth(tok))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["name"], name)
        self.assertEqual(self.put_tls(name, ka=keyauth(tok)).status, 200)
        self.assertEqual(self.request("DELETE", "/v1/tls-alpn-01/" + name).status, 204)
        self.assertIsNone(self.probe.lookup("tls-alpn-01", name))
        self.expect_error(404, "not_found", "DELETE", "/v1/tls-alpn-01/" + name)
        self.assertEqual(self.probe.count(), 0)

    def test_healthz_and_unknown_routes(self):
        r = self.request("GET", "/healthz", client=None)
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        r = self.request("HEAD", "/healthz", client=None)
        self.assertEqual((r.status, r.body), (200, b""))
        # "/" is the status page (tests/integration/test_status_page.py).
        for path in ("/v1", "/v1/http-01", "/v1/tls-alpn-01", "/v2/http-01/x",
                     "/v1/dns-01/" + new_token(), "/healthz/", "/v1/challenges/x",
                     "/.well-known/acme-challenge/" + new_token()):
            for method in ("GET", "PUT", "DELETE"):
                self.expect_error(404, "no_such_route", method, path)

    def test_405_wrong_method(self):
        tok = new_token()
        cases = [
            ("GET", "/v1/http-01/" + tok, "PUT, DELETE"),
            ("HEAD", "/v1/http-01/" + tok, "PUT, DELETE"),
            ("GET", "/v1/tls-alpn-01/a.example.com", "PUT, DELETE"),
            ("DELETE", "/healthz", "GET, HEAD"),
            ("PUT", "/healthz", "GET, HEAD"),
            ("PUT", "/metrics", "GET"),
            ("DELETE", "/metrics", "GET"),
            ("PUT", "/v1/challenges", "GET"),
            ("DELETE", "/v1/challenges", "GET"),
        ]
        for method, path, allow in cases:
            r = self.expect_error(405, "method_not_allowed", method, path)
            self.assertEqual(r.headers.get("allow"), allow, (method, path))

    def test_405_methods_the_api_never_takes(self):
        # POST, PATCH, OPTIONS are wrong methods too: 405 with Allow and a
        # JSON body, like every other error (not a bare 501 from evhttp).
        tok = new_token()
        cases = [
            ("POST", "/v1/http-01/" + tok, "PUT, DELETE"),
            ("PATCH", "/v1/tls-alpn-01/a.example.com", "PUT, DELETE"),
            ("POST", "/v1/challenges", "GET"),
            ("OPTIONS", "/healthz", "GET, HEAD"),
        ]
        failures = []
        for method, path, allow in cases:
            before = self.snapshot()
            r = self.request(method, path, body=keyauth(tok) if method == "POST"
                             else None)
            self.assertEqual(before, self.snapshot())
            if r.status != 405 or r.headers.get("allow") != allow:
                failures.append("%s %s -> %d %r (Allow %r)" % (
                    method, path, r.status, r.body[:80], r.headers.get("allow")))
                continue
            self.assert_json_error(r, "method_not_allowed")
        if failures:
            self.metrics_exact = False
            self.fail("wrong method not answered 405+Allow+JSON: " +
                      "; ".join(failures))

    def test_401_unauthorized(self):
        tok = new_token()
        auths = [None, "Basic " + base64.b64encode(b"admin:x").decode(),
                 "Bearer", "Bearer " + b64url(32), "Token " + BEARER["admin"],
                 BEARER["admin"], "Bearer " + sha256_hex(BEARER["admin"])]
        targets = [("GET", "/v1/challenges", None),
                   ("PUT", "/v1/http-01/" + tok, keyauth(tok)),
                   ("DELETE", "/v1/http-01/" + tok, None),
                   ("PUT", "/v1/tls-alpn-01/a.example.com", keyauth(tok)),
                   ("DELETE", "/v1/tls-alpn-01/a.example.com", None)]
        for auth in auths:
            for method, path, body in targets:
                kw = {"client": None} if auth is None else {"auth": auth}
                r = self.expect_error(401, "unauthorized", method, path, body=body, **kw)
                self.assertTrue(r.headers.get("www-authenticate", "").startswith(
                    "Bearer"), r.headers)
        # the scheme is case-insensitive (RFC 7235)
        r = self.request("GET", "/v1/challenges", auth="bearer " + BEARER["admin"])
        self.assertEqual(r.status, 200, r)

    @config(capacity=64)
    def test_403_identifier_outside_patterns(self):
        for ident in ("www.other.org", "example.org", "evilexample.com",
                      "example.com.evil.org", "1.2.3.4", "198.51.100.1",
                      "2001:db9::1", "com"):
            tok = new_token()
            self.expect_error(403, "identifier_not_allowed", "PUT",
                              "/v1/http-01/%s?identifier=%s" % (tok, ident),
                              body=keyauth(tok), client="certbot")
            self.expect_error(403, "identifier_not_allowed", "PUT",
                              "/v1/http-01/" + tok, client="certbot",
                              json_body={"key_authorization": keyauth(tok),
                                         "identifier": ident})
            self.expect_error(403, "identifier_not_allowed", "PUT",
                              "/v1/tls-alpn-01/" + ident, body=keyauth(tok),
                              client="certbot")
        # inside: the base name, any depth below, IPs in its CIDRs
        for ident in ("example.com", "www.example.com", "a.b.example.com",
                      "WWW.EXAMPLE.COM.", "192.0.2.7", "2001:db8::7"):
            tok = new_token()
            r = self.put_http01(tok, client="certbot", identifier=ident)
            self.assertEqual(r.status, 201, (ident, r))
            self.assertEqual(r.json()["identifier"], canonical(ident))
            r = self.put_tls(ident, client="certbot", ka=keyauth(tok))
            self.assertIn(r.status, (200, 201), (ident, r))

    def test_403_source_cidr(self):
        tok = new_token()
        self.expect_error(403, "source_not_allowed", "GET", "/v1/challenges",
                          client="netlimited")
        self.expect_error(403, "source_not_allowed", "PUT", "/v1/http-01/" + tok,
                          body=keyauth(tok), client="netlimited")
        self.expect_error(403, "source_not_allowed", "PUT",
                          "/v1/tls-alpn-01/a.example.com", body=keyauth(tok),
                          client="netlimited")
        self.assertEqual(self.put_http01(tok, client="admin").status, 201)
        self.expect_error(403, "source_not_allowed", "DELETE", "/v1/http-01/" + tok,
                          client="netlimited")
        # a client allowed from loopback works
        self.assertEqual(self.request("GET", "/v1/challenges", client="local").status,
                         200)
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + tok,
                                      client="local").status, 204)

    def test_403_thumbprint_not_pinned(self):
        tok = new_token()
        name = "pinned.example.net"
        self.expect_error(403, "thumbprint_not_allowed", "PUT",
                          "/v1/http-01/%s?identifier=%s" % (tok, name),
                          body=keyauth(tok, THUMB), client="pinned")
        self.expect_error(403, "thumbprint_not_allowed", "PUT", "/v1/tls-alpn-01/" + name,
                          body=keyauth(tok, THUMB), client="pinned")
        # pinned clients must show the key authorization: no digest, no cert
        self.expect_error(403, "thumbprint_not_allowed", "PUT", "/v1/tls-alpn-01/" + name,
                          json_body={"digest": sha256_hex(keyauth(tok, PINNED_THUMB))},
                          client="pinned")
        r = self.put_http01(tok, keyauth(tok, PINNED_THUMB), client="pinned",
                            identifier=name)
        self.assertEqual(r.status, 201, r)
        r = self.put_tls(name, ka=keyauth(tok, PINNED_THUMB), client="pinned")
        self.assertEqual(r.status, 201, r)

    def test_403_not_owner(self):
        tb, ta, td = new_token(), new_token(), new_token()
        self.assertEqual(self.put_http01(tb, client="certbot",
                                         identifier="www.example.com").status, 201)
        # another client, with a name of its own: still not its entry
        self.expect_error(403, "not_owner", "PUT",
                          "/v1/http-01/%s?identifier=www.other.org" % tb,
                          body=keyauth(tb), client="other")
        self.expect_error(403, "not_owner", "DELETE", "/v1/http-01/" + tb,
                          client="other")
        # an unbound entry of an any-name client is off limits to scoped ones
        self.assertEqual(self.put_http01(ta, client="admin").status, 201)
        self.expect_error(403, "not_owner", "PUT",
                          "/v1/http-01/%s?identifier=www.example.com" % ta,
                          body=keyauth(ta), client="certbot")
        self.expect_error(403, "not_owner", "DELETE", "/v1/http-01/" + ta,
                          client="certbot")
        # tls-alpn-01 entries belong to whoever owns the name
        self.assertEqual(self.put_tls("www.example.com", client="certbot",
                                      ka=keyauth(tb)).status, 201)
        r = self.expect_error(403, None, "DELETE", "/v1/tls-alpn-01/www.example.com",
                              client="other")
        self.assertIn(r.json()["error"], ("not_owner", "identifier_not_allowed"), r)
        self.expect_error(403, "identifier_not_allowed", "PUT",
                          "/v1/tls-alpn-01/www.example.com", body=keyauth(tb),
                          client="other")
        # an entry bound to a name inside one's scope may be replaced/deleted
        self.assertEqual(self.put_http01(td, client="admin",
                                         identifier="api.example.com").status, 201)
        r = self.put_http01(td, client="certbot", identifier="api.example.com")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["client"], "certbot")
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + td,
                                      client="certbot").status, 204)
        # the any-name client may touch everything
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + tb).status, 204)
        self.assertEqual(self.request("DELETE", "/v1/tls-alpn-01/www.example.com"
                                      ).status, 204)

    def test_403_delete_outside_scope_reveals_nothing(self):
        # DELETE /v1/tls-alpn-01/{identifier} for a name outside the client's
        # patterns is refused the same way whether or not an entry exists,
        # so a client cannot probe which names others are validating.
        self.assertEqual(self.put_tls("present.example.com", client="certbot",
                                      ka=keyauth(new_token())).status, 201)
        present = self.expect_error(403, None, "DELETE",
                                    "/v1/tls-alpn-01/present.example.com",
                                    client="other")
        absent = self.request("DELETE", "/v1/tls-alpn-01/absent.example.com",
                              client="other")
        self.assertEqual((absent.status, absent.json()["error"]),
                         (present.status, present.json()["error"]),
                         "an absent name answers %r, a present one %r" % (absent, present))

    def test_400_bad_token(self):
        bad = ["a" * 15, "a" * 256, "abcdefghijklmnop=", "abcdefghijklmnop.q",
               "abcdefghijklmnop%2Bq", "abcdefghijklmnop%20q", "abcdefghij%C3%A9klmnop",
               "abcdefghijklmnop%2Fq", "abcdefghijklmnop~"]
        for tok in bad:
            self.expect_error(400, "bad_token", "PUT", "/v1/http-01/" + tok,
                              body=tok + "." + THUMB)
            self.expect_error(400, "bad_token", "DELETE", "/v1/http-01/" + tok)
        # the bounds themselves are fine
        for tok in ("A" * 16, "_-" + "b" * 253):
            r = self.put_http01(tok)
            self.assertEqual(r.status, 201, (tok, r))
            self.assertEqual(self.probe.lookup("http-01", tok)["payload"],
                             keyauth(tok).encode())

    def test_400_bad_key_authorization(self):
        tok, other = new_token(), new_token()
        path = "/v1/http-01/" + tok
        for body in ("garbage", tok, tok + ".", tok + "." + THUMB[:-1],
                     tok + "." + THUMB + "x", tok + "." + THUMB + ".x",
                     tok + ".." + THUMB[1:], "." + THUMB, tok + "." + "=" * 43,
                     tok + "\x00." + THUMB, "x" * 300, ""):
            self.expect_error(400, "bad_key_authorization", "PUT", path, body=body)
        # a key authorization for another token
        self.expect_error(400, "bad_key_authorization", "PUT", path,
                          body=keyauth(other))
        self.expect_error(400, "bad_key_authorization", "PUT", path,
                          json_body={"key_authorization": keyauth(other)})
        self.expect_error(400, "bad_key_authorization", "PUT", path,
                          json_body={"identifier": "a.example.com"})
        self.expect_error(400, "bad_key_authorization", "PUT",
                          "/v1/tls-alpn-01/a.example.com", body="garbage")
        self.expect_error(400, "bad_key_authorization", "PUT",
                          "/v1/tls-alpn-01/a.example.com",
                          json_body={"key_authorization": tok + "." + THUMB[:40]})
        # tls-alpn-01 fields on http-01
        self.expect_error(400, "bad_json", "PUT", path,
                          json_body={"key_authorization": keyauth(tok),
                                     "digest": sha256_hex(keyauth(tok))})
        # trailing white space (a shell's newline) is not part of it
        self.assertEqual(self.put_http01(tok, keyauth(tok) + "\r\n \n").status, 201)
        self.assertEqual(self.probe.lookup("http-01", tok)["payload"],
                         keyauth(tok).encode())

    def test_400_bad_identifier(self):
        tok = new_token()
        name253 = long_name(253)
        bad = ["*.example.com", "*", long_name(256), long_name(254), "exa_mple.com",
               "exa mple.com", "-a.example.com", "a..example.com", "1.2.3",
               "01.2.3.4", "256.1.1.1", "::ffff:1.2.3.4", "fe80::1%eth0", "a.0x7f",
               "example.com/x", "a" * 64 + ".com", "[1.2.3.4]"]
        for ident in bad:
            with self.subTest(identifier=ident[:40], where="query"):
                self.expect_error(400, "bad_identifier", "PUT", "/v1/http-01/%s?%s" % (
                    tok, urllib.parse.urlencode({"identifier": ident})),
                    body=keyauth(tok))
            with self.subTest(identifier=ident[:40], where="json"):
                self.expect_error(400, "bad_identifier", "PUT", "/v1/http-01/" + tok,
                                  json_body={"key_authorization": keyauth(tok),
                                             "identifier": ident})
            if "/" not in ident:
                q = urllib.parse.quote(ident, safe="")
                with self.subTest(identifier=ident[:40], where="tls path"):
                    self.expect_error(400, "bad_identifier", "PUT",
                                      "/v1/tls-alpn-01/" + q, body=keyauth(tok))
                    self.expect_error(400, "bad_identifier", "DELETE",
                                      "/v1/tls-alpn-01/" + q)
        self.expect_error(400, "bad_identifier", "PUT", "/v1/http-01/%s?identifier=" % tok,
                          body=keyauth(tok))
        # the body names another identifier than the path
        self.expect_error(400, "bad_identifier", "PUT", "/v1/tls-alpn-01/a.example.com",
                          json_body={"key_authorization": keyauth(tok),
                                     "identifier": "b.example.com"})
        # up to 253 characters is a valid name, for both kinds
        r = self.put_http01(tok, identifier=name253)
        self.assertEqual(r.status, 201, r)
        for n in (73, 74, 100, 253):
            name = long_name(n)
            with self.subTest(tls_alpn_01_name_length=n):
                r = self.put_tls(name, ka=keyauth(tok))
                self.assertEqual(r.status, 201, r)
                e = self.probe.lookup("tls-alpn-01", name)
                self.check_cert(e, name, sha256_hex(keyauth(tok)))
                r = self.request("DELETE", "/v1/tls-alpn-01/" + name)
                self.assertEqual(r.status, 204, r)

    def test_400_bad_json(self):
        tok = new_token()
        path = "/v1/http-01/" + tok
        ka = keyauth(tok)
        for body in ('{"key_authorization": ', '{"key_authorization": "%s",}' % ka,
                     '{"key_authorization": "%s", "foo": 1}' % ka,
                     '{"key_authorization": "%s", "Identifier": "a.example.com"}' % ka,
                     '{"key_authorization": "%s", "key_authorization": "%s"}' % (ka, ka),
                     '{"key_authorization": 5}', '{"key_authorization": ["%s"]}' % ka,
                     '{"key_authorization": "%s", "identifier": 7}' % ka,
                     '{"key_authorization": "%s"} trailing' % ka):
            self.expect_error(400, "bad_json", "PUT", path, body=body,
                              headers={"Content-Type": "application/json"})
            self.expect_error(400, "bad_json", "PUT", "/v1/tls-alpn-01/a.example.com",
                              body=body)
        self.expect_error(400, "bad_json", "PUT", "/v1/tls-alpn-01/a.example.com",
                          json_body={"digest": sha256_hex(ka), "extra": True})
        self.expect_error(400, "bad_body", "PUT", "/v1/tls-alpn-01/a.example.com",
                          json_body={})
        self.expect_error(400, "bad_body", "PUT", "/v1/tls-alpn-01/a.example.com",
                          json_body={"digest": sha256_hex(ka), "key_authorization": ka})
        self.expect_error(400, "bad_query", "PUT", path + "?foo=1", body=ka)
        # leading white space before the object is fine
        r = self.request("PUT", path, body='\n  {"key_authorization": "%s"}' % ka)
        self.assertEqual(r.status, 201, r)

    def test_400_bad_digest(self):
        ka = keyauth(new_token())
        d = sha256_hex(ka)
        path = "/v1/tls-alpn-01/a.example.com"
        for digest in ("zz" * 32, d[:-1], d + "0", d[:-2], "", ":" + d,
                       ":".join(d[i:i + 2] for i in range(0, 64, 2)) + ":",
                       d[:3] + ":" + d[3:], "0x" + d[2:], " " + d[1:]):
            self.expect_error(400, "bad_digest", "PUT", path, json_body={"digest": digest})

    def test_400_bad_ttl(self):
        tok = new_token()
        path = "/v1/http-01/" + tok
        ka = keyauth(tok)
        for ttl in (0, 3601, 86400, 1 << 40, "60", 1.5, True, -1, -3600):
            with self.subTest(json_ttl=ttl):
                self.expect_error(400, "bad_ttl", "PUT", path,
                                  json_body={"key_authorization": ka, "ttl": ttl})
            with self.subTest(json_ttl=ttl, kind="tls-alpn-01"):
                self.expect_error(400, "bad_ttl", "PUT", "/v1/tls-alpn-01/a.example.com",
                                  json_body={"key_authorization": ka, "ttl": ttl})
        for ttl in ("0", "3601", "-1", "abc", "1.5", "", "+5", "99999999999999999999"):
            with self.subTest(query_ttl=ttl):
                self.expect_error(400, "bad_ttl", "PUT", path + "?ttl=" + ttl, body=ka)
        # clean up whatever a failing case above stored
        self.request("DELETE", path)
        self.request("DELETE", "/v1/tls-alpn-01/a.example.com")
        # the bounds, and the default
        for ttl, want in ((1, 1), (3600, 3600), (None, 600)):
            r = self.put_http01(tok, ttl=ttl, as_json=True)
            self.assertIn(r.status, (200, 201), r)
            j = r.json()
            fmt = "%Y-%m-%dT%H:%M:%SZ"
            span = (time.mktime(time.strptime(j["expires"], fmt)) -
                    time.mktime(time.strptime(j["created"], fmt)))
            self.assertIn(span, (want, want + 1), j)

    def test_400_identifier_required(self):
        tok = new_token()
        self.expect_error(400, "identifier_required", "PUT", "/v1/http-01/" + tok,
                          body=keyauth(tok), client="certbot")
        self.expect_error(400, "identifier_required", "PUT", "/v1/http-01/" + tok,
                          json_body={"key_authorization": keyauth(tok, PINNED_THUMB)},
                          client="pinned")

    def test_413_body_too_large(self):
        tok = new_token()
        path = "/v1/http-01/" + tok
        for n in (1025, 2000, 4096):
            body = keyauth(tok) + " " * (n - len(keyauth(tok)))
            self.expect_error(413, "body_too_large", "PUT", path, body=body)
            self.expect_error(413, "body_too_large", "PUT",
                              "/v1/tls-alpn-01/a.example.com", body=body)
        # exactly max_body is fine
        r = self.put_http01(tok, keyauth(tok) + " " * (1024 - len(keyauth(tok))))
        self.assertEqual(r.status, 201, r)

    def test_413_far_over_the_limit_is_never_buffered(self):
        # Past 4 x max_body the body is refused before it is read: a 413,
        # the connection closed, nothing stored. libevent 2.1 gives no hook
        # to shape that reply (evhttp answers it itself, in HTML); bodies up
        # to 4 x max_body get the JSON 413 (test_413_body_too_large).
        self.metrics_exact = False      # evhttp's own replies are not counted
        tok = new_token()
        before = self.snapshot()
        c = RawConn(self.srv.port, timeout=5)
        self.closers.append(c.close)
        head = RawConn.build("PUT", "/v1/http-01/" + tok, {
            "Authorization": "Bearer " + BEARER["admin"]}, b"")
        head = head.replace(b"Content-Length: 0", b"Content-Length: 1000000")
        t0 = time.monotonic()
        c.send(head + b"x" * 8192)
        status, reason = c.read_status()
        r = c.read_rest(status, reason, "PUT")
        self.assertEqual(r.status, 413, r)
        self.assertLess(time.monotonic() - t0, 2.0, "the server read the whole body")
        self.assertEqual(before, self.snapshot())
        self.assertEqual(r.headers.get("connection", "").lower(), "close", r)

    def test_507_store_full(self):
        toks = [new_token() for _ in range(8)]
        for t in toks:
            self.assertEqual(self.put_http01(t).status, 201)
        extra = new_token()
        self.expect_error(507, "store_full", "PUT", "/v1/http-01/" + extra,
                          body=keyauth(extra))
        self.expect_error(507, "store_full", "PUT", "/v1/tls-alpn-01/a.example.com",
                          body=keyauth(extra))
        # a replace still works when full
        r = self.put_http01(toks[3], keyauth(toks[3], OTHER_THUMB))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.probe.lookup("http-01", toks[3])["payload"],
                         keyauth(toks[3], OTHER_THUMB).encode())
        # a delete makes room
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + toks[0]).status, 204)
        self.assertEqual(self.put_http01(extra).status, 201)
        self.expect_error(507, "store_full", "PUT", "/v1/http-01/" + toks[0],
                          body=keyauth(toks[0]))
        m = self.metrics()
        self.assertEqual(self.gauge(m, "acmeedge_store_used"), 8)
        self.assertEqual(self.gauge(m, "acmeedge_store_capacity"), 8)

    # ==== http-01 and tls-alpn-01 forms =========================================

    def test_http01_forms(self):
        cases = [
            # (client, how, identifier, expected ident in the store)
            ("admin", "text", None, None),
            ("admin", "query", "WWW.Example.COM.", "www.example.com"),
            ("certbot", "json", "www.example.com", "www.example.com"),
            ("certbot", "query", "example.com", "example.com"),
            ("admin", "query", "1.2.3.4", "1.2.3.4"),
            ("admin", "json", "[2001:DB8::1]", "2001:db8::1"),
            ("certbot", "query", "2001:db8:0:0::2", "2001:db8::2"),
            ("certbot", "json", "192.0.2.9", "192.0.2.9"),
        ]
        for client, how, ident, want in cases:
            tok = new_token()
            ka = keyauth(tok)
            if how == "text":
                r = self.request("PUT", "/v1/http-01/" + tok, body=ka + "\n",
                                 client=client)
            else:
                r = self.put_http01(tok, ka, client=client, identifier=ident, ttl=120,
                                    as_json=(how == "json"))
            self.assertEqual(r.status, 201, (client, how, ident, r))
            j = r.json()
            self.assertEqual(j.get("identifier"), want)
            self.assertEqual(j["client"], client)
            e = self.probe.lookup("http-01", tok)
            self.assertIsNotNone(e, (how, ident))
            self.assertEqual(e["payload"], ka.encode())
            self.assertEqual(e["ident"], want)
            self.assertEqual(e["cert_len"], 0)

    def test_tlsalpn01_by_key_authorization(self):
        for ident in ("www.example.com", "1.2.3.4", "2001:db8::1", "192.0.2.44"):
            for how in ("text", "json"):
                tok = new_token()
                ka = keyauth(tok)
                client = "certbot" if ident != "1.2.3.4" else "admin"
                if how == "text":
                    r = self.put_tls(ident, client=client, ka=ka)
                else:
                    r = self.put_tls(ident, client=client, json_body={
                        "key_authorization": ka, "ttl": 300, "identifier": ident})
                self.assertIn(r.status, (200, 201), (ident, how, r))
                j = r.json()
                self.assertEqual(j["kind"], "tls-alpn-01")
                self.assertEqual(j["name"], sni_of(ident))
                self.assertEqual(j["identifier"], canonical(ident))
                self.assertNotIn("key", j)
                e = self.probe.lookup("tls-alpn-01", sni_of(ident))
                self.assertIsNotNone(e, (ident, sni_of(ident)))
                self.assertEqual(e["ident"], canonical(ident))
                self.check_cert(e, ident, sha256_hex(ka))
        # the reverse-DNS form is the key, not the address
        self.assertIsNotNone(self.probe.lookup("tls-alpn-01", "4.3.2.1.in-addr.arpa"))
        self.assertIsNone(self.probe.lookup("tls-alpn-01", "1.2.3.4"))
        self.assertIsNotNone(self.probe.lookup(
            "tls-alpn-01", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1"
                           ".0.0.2.ip6.arpa"))
        # deleting by the identifier removes the reverse-form key
        self.assertEqual(self.request("DELETE", "/v1/tls-alpn-01/1.2.3.4").status, 204)
        self.assertIsNone(self.probe.lookup("tls-alpn-01", "4.3.2.1.in-addr.arpa"))
        self.assertEqual(self.request("DELETE", "/v1/tls-alpn-01/2001:db8:0::1",
                                      client="certbot").status, 204)

    def test_tlsalpn01_by_digest(self):
        for ident, form in (("a.example.com", "hex"), ("b.example.com", "HEX"),
                            ("c.example.com", "colon"), ("192.0.2.1", "colon"),
                            ("2001:db8::5", "hex")):
            ka = keyauth(new_token())
            d = sha256_hex(ka)
            sent = {"hex": d, "HEX": d.upper(),
                    "colon": ":".join(d[i:i + 2] for i in range(0, 64, 2))}[form]
            r = self.put_tls(ident, client="certbot", json_body={"digest": sent})
            self.assertEqual(r.status, 201, (ident, form, r))
            e = self.probe.lookup("tls-alpn-01", sni_of(ident))
            self.assertIsNotNone(e)
            self.check_cert(e, ident, d)

    @config(max_body="16384")
    def test_tlsalpn01_by_pem_certificate(self):
        for ident, san in (("pem.example.com", "DNS:pem.example.com"),
                           ("192.0.2.77", "IP:192.0.2.77"),
                           ("2001:db8::77", "IP:2001:db8::77")):
            d = sha256_hex(keyauth(new_token()))
            cert, key = self.make_cert(san, d)
            r = self.put_tls(ident, client="certbot",
                             json_body={"certificate": cert, "key": key})
            self.assertEqual(r.status, 201, (ident, r))
            e = self.probe.lookup("tls-alpn-01", sni_of(ident))
            self.assertIsNotNone(e)
            self.assertEqual(e["cert"], openssl("x509", "-outform", "DER",
                                                data=cert.encode()))
            self.check_cert(e, ident, d)
            self.assertNotIn("PRIVATE", r.body.decode())

        d = sha256_hex(keyauth(new_token()))
        good_cert, good_key = self.make_cert("DNS:bad.example.com", d, name="good")
        no_ext = self.make_cert("DNS:bad.example.com", None, name="noext")
        not_crit = self.make_cert("DNS:bad.example.com", d, critical=False, name="nc")
        wrong_san = self.make_cert("DNS:www.example.com", d, name="ws")
        two_sans = self.make_cert("DNS:bad.example.com,DNS:www.example.com", d,
                                  name="two")
        _, other_key = self.make_cert("DNS:bad.example.com", d, name="ok2")
        path = "/v1/tls-alpn-01/bad.example.com"
        for body in ({"certificate": no_ext[0], "key": no_ext[1]},
                     {"certificate": not_crit[0], "key": not_crit[1]},
                     {"certificate": wrong_san[0], "key": wrong_san[1]},
                     {"certificate": two_sans[0], "key": two_sans[1]},
                     {"certificate": good_cert, "key": other_key},
                     {"certificate": good_cert},
                     {"key": good_key},
                     {"certificate": good_cert + good_cert, "key": good_key},
                     {"certificate": "garbage", "key": good_key},
                     {"certificate": good_key, "key": good_key},
                     {"certificate": good_cert, "key": "garbage"}):
            self.expect_error(400, "bad_certificate", "PUT", path, json_body=body,
                              client="certbot")
        r = self.put_tls("bad.example.com", client="certbot",
                         json_body={"certificate": good_cert, "key": good_key})
        self.assertEqual(r.status, 201, r)

    # ==== listing ==================================================================

    def test_list_scope_and_no_private_keys(self):
        ta, tb, tc, td = (new_token() for _ in range(4))
        self.assertEqual(self.put_http01(ta, client="admin").status, 201)
        self.assertEqual(self.put_http01(tb, client="certbot",
                                         identifier="www.example.com").status, 201)
        self.assertEqual(self.put_http01(tc, client="other",
                                         identifier="www.other.org").status, 201)
        self.assertEqual(self.put_http01(td, client="admin",
                                         identifier="api.example.com").status, 201)
        self.assertEqual(self.put_tls("t.example.com", client="certbot",
                                      ka=keyauth(tb)).status, 201)
        self.assertEqual(self.put_tls("t.other.org", client="other",
                                      ka=keyauth(tc)).status, 201)

        def keys(lst):
            return sorted(e.get("token") or e.get("name") for e in lst)

        everything = self.listing("admin")
        self.assertEqual(keys(everything), sorted([ta, tb, tc, td, "t.example.com",
                                                   "t.other.org"]))
        self.assertEqual(keys(self.listing("certbot")),
                         sorted([tb, td, "t.example.com"]))
        self.assertEqual(keys(self.listing("other")), sorted([tc, "t.other.org"]))
        self.assertEqual(self.listing("pinned"), [])
        allowed = {"kind", "token", "name", "identifier", "client", "created",
                   "expires", "version", "last_answered", "answered", "answers"}
        for e in everything:
            self.assertLessEqual(set(e), allowed, e)
        r = self.request("GET", "/v1/challenges")
        text = r.body.decode()
        self.assertNotIn("PRIVATE", text)
        self.assertNotIn("BEGIN", text)
        for t in (ta, tb, tc, td):
            self.assertNotIn(keyauth(t), text)
            self.assertNotIn(THUMB, text)
        for name in ("t.example.com", "t.other.org"):
            p = self.probe.lookup("tls-alpn-01", name)
            for blob in (p["key"], p["cert"]):
                self.assertNotIn(base64.b64encode(blob[-24:]).decode()[:16], text)
                self.assertNotIn(blob[-16:].hex(), text)

    # ==== TTL and the sweep ==========================================================

    def test_ttl_expiry_and_sweep(self):
        tok, keep = new_token(), new_token()
        self.assertEqual(self.put_http01(keep).status, 201)
        t0 = time.monotonic()
        self.assertEqual(self.put_http01(tok, ttl=1).status, 201)
        self.assertEqual(self.put_tls("ttl.example.com", json_body={
            "key_authorization": keyauth(tok), "ttl": 1}).status, 201)
        self.assertIsNotNone(self.probe.lookup("http-01", tok))
        self.assertIsNotNone(self.probe.lookup("tls-alpn-01", "ttl.example.com"))
        m = self.metrics()
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="http-01"), 2)
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="tls-alpn-01"), 1)
        self.assertEqual(self.gauge(m, "acmeedge_store_used"), 3)
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        self.assertIsNone(self.probe.lookup("http-01", tok))
        self.assertIsNone(self.probe.lookup("tls-alpn-01", "ttl.example.com"))
        self.assertIsNotNone(self.probe.lookup("http-01", keep))
        self.assertEqual([e["token"] for e in self.listing()], [keep])
        self.assertEqual(self.probe.count(), 1)
        # the sweep (every 200 ms) frees the slots: the gauges go down
        deadline = time.monotonic() + 2.0
        while True:
            m = self.metrics()
            if self.gauge(m, "acmeedge_store_used") == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(self.gauge(m, "acmeedge_store_used"), 1)
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="http-01"), 1)
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="tls-alpn-01"), 0)
        self.assertIn("swept", self.srv.log())

    # ==== a reader sees the entry before the client hears 2xx ==========================

    def _raw(self, conn, method, path, body=b"", client="admin", on_status=None):
        req = RawConn.build(method, path, {"Authorization": "Bearer " + BEARER[client]},
                            body)
        conn.send(req)
        status, reason = conn.read_status()
        seen = on_status(status) if on_status else None
        resp = conn.read_rest(status, reason, method)
        self.expected[(route_of(method, path), status)] += 1
        return resp, seen

    def test_reader_sees_put_before_the_2xx(self):
        probe = self.probe
        conn = RawConn(self.srv.port)
        self.closers.append(conn.close)
        for i in range(200):
            tok = new_token()
            ka = keyauth(tok, b64url(32))
            r, seen = self._raw(conn, "PUT", "/v1/http-01/" + tok, ka,
                                on_status=lambda s, t=tok: probe.lookup("http-01", t))
            self.assertEqual(r.status, 201, (i, r))
            self.assertIsNotNone(seen, "round %d: the probe missed %s right after "
                                       "201" % (i, tok))
            self.assertEqual(seen["payload"], ka.encode(), i)
            r, seen = self._raw(conn, "DELETE", "/v1/http-01/" + tok,
                                on_status=lambda s, t=tok: probe.lookup("http-01", t))
            self.assertEqual(r.status, 204, (i, r))
            self.assertIsNone(seen, "round %d: the probe still saw %s right after "
                                    "204" % (i, tok))
        certs = []
        for i in range(20):
            ka = keyauth(new_token())
            name = "r%d.example.com" % i
            r, seen = self._raw(conn, "PUT", "/v1/tls-alpn-01/" + name, ka,
                                on_status=lambda s, n=name: probe.lookup("tls-alpn-01", n))
            self.assertEqual(r.status, 201, (i, r))
            self.assertIsNotNone(seen, "round %d: the probe missed %s right after "
                                       "201" % (i, name))
            certs.append((seen, name, ka))
            r, seen = self._raw(conn, "DELETE", "/v1/tls-alpn-01/" + name,
                                on_status=lambda s, n=name: probe.lookup("tls-alpn-01", n))
            self.assertEqual(r.status, 204, (i, r))
            self.assertIsNone(seen, i)
        # the certificates seen were complete ones (checked off the clock:
        # the connection's idle timeout is 1 s)
        for seen, name, ka in certs[:5]:
            self.assertEqual(self.check_cert(seen, name), sha256_hex(ka))

    # ==== /metrics =====================================================================

    def test_metrics(self):
        t1, t2 = new_token(), new_token()
        self.assertEqual(self.put_http01(t1).status, 201)
        self.assertEqual(self.put_http01(t2).status, 201)
        self.assertEqual(self.put_http01(t2).status, 200)
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + t2).status, 204)
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + t2).status, 404)
        self.assertEqual(self.put_tls("m.example.com", ka=keyauth(t1)).status, 201)
        self.assertEqual(self.request("GET", "/nowhere").status, 404)
        self.assertEqual(self.request("GET", "/v1/challenges", client=None).status, 401)
        self.assertEqual(self.request("GET", "/v1/challenges").status, 200)
        self.assertEqual(self.request("GET", "/healthz").status, 200)
        r = self.request("GET", "/metrics", client=None)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-type"), "text/plain; version=0.0.4")
        m = parse_metrics(r.body.decode(), strict=True)
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="http-01"), 1)
        self.assertEqual(self.gauge(m, "acmeedge_store_entries", kind="tls-alpn-01"), 1)
        self.assertEqual(self.gauge(m, "acmeedge_store_capacity"), 8)
        self.assertEqual(self.gauge(m, "acmeedge_store_used"), 2)
        self.assertEqual(self.gauge(m, "acmeedge_store_puts_total"), 4)
        self.assertGreaterEqual(self.gauge(m, "acmeedge_api_connections"), 1)
        req = {dict(k[1])["route"] + " " + dict(k[1])["code"]: v for k, v in m.items()
               if k[0] == "acmeedge_api_requests_total"}
        self.assertEqual(req, {"healthz 200": 2, "put_http01 201": 2,
                               "put_http01 200": 1, "delete_http01 204": 1,
                               "delete_http01 404": 1, "put_tlsalpn01 201": 1,
                               "other 404": 1, "list 401": 1, "list 200": 1,
                               "metrics 200": 1})

    def test_metrics_route_labels_of_malformed_paths(self):
        # A malformed challenge path counts under the route its method and
        # kind name, like every other request to that route.
        for method, path in (("PUT", "/v1/http-01/"), ("DELETE", "/v1/http-01/a/b"),
                             ("PUT", "/v1/http-01/abcdefghijklmnop%00q"),
                             ("DELETE", "/v1/tls-alpn-01/"),
                             ("PUT", "/v1/tls-alpn-01/a.example.com/x")):
            r = self.request(method, path, body=keyauth(new_token())
                             if method == "PUT" else None)
            self.assertEqual(r.status, 400, (method, path, r))
            self.assert_json_error(r, "bad_request")
        # tearDown compares every (route, code) counter with what was sent

    # ==== connections ==================================================================

    def _connect_idle(self, n):
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
            socks.append(s)
            self.closers.append(s.close)
        return socks

    def _wait_answer(self, conn, within):
        conn.sock.settimeout(within)
        try:
            status, reason = conn.read_status()
        except socket.timeout:
            return None
        return conn.read_rest(status, reason, "GET")

    @config(max_connections="4", timeout="10s")
    def test_connection_cap(self):
        idle = self._connect_idle(4)
        time.sleep(0.3)
        fifth = RawConn(self.srv.port, timeout=5)     # the kernel backlog takes it
        self.closers.append(fifth.close)
        fifth.send(RawConn.build("GET", "/healthz"))
        t0 = time.monotonic()
        r = self._wait_answer(fifth, 0.5)
        self.assertIsNone(r, "a 5th connection was served while 4 were open")
        idle[0].close()
        idle[1].close()
        r = self._wait_answer(fifth, 2.0)
        self.assertIsNotNone(r, "the 5th request got no answer within 2 s after two "
                                "idle connections closed")
        self.assertEqual(r.status, 200)
        self.expected[("healthz", 200)] += 1
        self.assertLess(time.monotonic() - t0, 3.0)
        fifth.close()
        idle[2].close()
        idle[3].close()
        # every connection is counted out again: the gauge comes back to just
        # the scraper, and the cap was hit at least once
        deadline = time.monotonic() + 3
        while True:
            m = self.metrics()
            if self.gauge(m, "acmeedge_api_connections") == 1 or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(self.gauge(m, "acmeedge_api_connections"), 1)
        self.assertGreaterEqual(self.gauge(m, "acmeedge_api_connection_cap_hits_total"),
                                1)
        # and the cap still works after many connections came and went
        for _ in range(50):
            self.assertEqual(self.request("GET", "/healthz", client=None).status, 200)
        socks = [RawConn(self.srv.port) for _ in range(4)]
        for s in socks:
            self.closers.append(s.close)
        for s in socks:
            r = s.request("GET", "/healthz")
            self.assertEqual(r.status, 200)
            self.expected[("healthz", 200)] += 1
        late = RawConn(self.srv.port, timeout=5)
        self.closers.append(late.close)
        late.send(RawConn.build("GET", "/healthz"))
        self.assertIsNone(self._wait_answer(late, 0.5))
        socks[0].close()
        r = self._wait_answer(late, 2.0)
        self.assertIsNotNone(r)
        self.expected[("healthz", 200)] += 1

    @config(max_connections="4", timeout="10s")
    def test_stop_while_at_the_connection_cap(self):
        # SIGTERM while the listeners are paused at the cap: evhttp_free()
        # frees the listeners first, then the open connections, whose close
        # callbacks must not re-enable the listeners already freed. libevent
        # is not instrumented, so ASan cannot see that; valgrind can, when
        # it is installed and the binary is not an ASan build.
        self.metrics_exact = False
        srv = self.srv
        with open(ACME_EDGE, "rb") as f:
            asan = b"__asan_init" in f.read()     # imported from libasan
        if shutil.which("valgrind") and not asan and \
                "ACME_EDGE_WRAPPER" not in os.environ:
            srv.finish()
            self.servers.remove(srv)
            srv = self.srv = self.start_server(
                capacity=8, api={"max_connections": "4", "timeout": "10s"},
                name="api-valgrind", wrapper=[
                    "valgrind", "-q", "--error-exitcode=99", "--leak-check=no",
                    "--trace-children=no"])
        else:
            sys.stderr.write("\n(valgrind unavailable or an ASan build: only the "
                             "exit status is checked)\n")
        self._connect_idle(4)
        time.sleep(0.5)
        late = RawConn(srv.port, timeout=5)
        self.closers.append(late.close)
        late.send(RawConn.build("GET", "/healthz"))
        self.assertIsNone(self._wait_answer(late, 0.5))
        rc = srv.stop(timeout=30)
        srv.expect_fail = True      # checked here, not again in the cleanup
        self.assertEqual(rc, 0, "exit status %r after SIGTERM at the cap (99: valgrind "
                                "found memory errors):\n%s" % (rc, srv.log()[-6000:]))

    def test_stalled_clients_are_disconnected(self):
        # timeout = 1s: a half request head, a half body, and a connection
        # that never says anything are all closed within a bounded time.
        cases = {
            "half head": b"PUT /v1/http-01/" + new_token().encode() +
                         b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer",
            "half body": RawConn.build("PUT", "/v1/http-01/" + new_token(), {
                "Authorization": "Bearer " + BEARER["admin"]}, b"").replace(
                b"Content-Length: 0", b"Content-Length: 100") + b"abc",
            "silent": b"",
            "half line": b"GET /hea",
        }
        conns = {}
        for name, data in cases.items():
            c = RawConn(self.srv.port, timeout=6)
            self.closers.append(c.close)
            if data:
                c.send(data)
            conns[name] = (c, time.monotonic())
        for name, (c, t0) in conns.items():
            got = b""
            try:
                while True:
                    d = c.sock.recv(4096)
                    if not d:
                        break
                    got += d
            except socket.timeout:
                self.fail("%s: still open after %.1fs (timeout = 1s)" % (
                    name, time.monotonic() - t0))
            except ConnectionResetError:
                pass
            took = time.monotonic() - t0
            self.assertLess(took, 4.0, name)
            self.assertGreater(took, 0.5, "%s: closed before the timeout" % name)
            if got:
                self.assertTrue(got.startswith(b"HTTP/1.1 408") or
                                got.startswith(b"HTTP/1.1 400"), (name, got[:200]))
        # the API still answers, and no connection is left counted
        deadline = time.monotonic() + 3
        while True:
            m = self.metrics()
            if self.gauge(m, "acmeedge_api_connections") == 1 or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(self.gauge(m, "acmeedge_api_connections"), 1)

    def test_keep_alive_idle_is_closed(self):
        c = RawConn(self.srv.port, timeout=6)
        self.closers.append(c.close)
        r = c.request("GET", "/healthz")
        self.expected[("healthz", 200)] += 1
        self.assertEqual(r.status, 200)
        t0 = time.monotonic()
        try:
            self.assertEqual(c.sock.recv(100), b"")
        except ConnectionResetError:
            pass
        self.assertLess(time.monotonic() - t0, 4.0)

    # ==== reload and the single writer ===================================================

    def test_sighup_reload(self):
        r = self.request("GET", "/v1/challenges", client="newbie")
        self.assertEqual(r.status, 401)
        tok = new_token()
        self.assertEqual(self.put_http01(tok).status, 201)
        # add a client
        self.srv.clients["newbie"] = {"identifiers": "new.example.com"}
        self.srv.write_config()
        os.kill(self.srv.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            r = self.request("GET", "/v1/challenges", client="newbie")
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 200, "the new client's token does not work after "
                                        "SIGHUP")
        t2 = new_token()
        r = self.put_http01(t2, client="newbie", identifier="new.example.com")
        self.assertEqual(r.status, 201, r)
        self.assertIsNotNone(self.probe.lookup("http-01", tok), "reload lost entries")
        # a broken config: the API keeps serving with the running one
        good = self.srv.config_text()
        self.srv.write_config(good + "[client broken\nnonsense here\n[bogus]\n")
        os.kill(self.srv.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "keeping the running config" not in self.srv.log() and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.srv.alive(), "the API died on a broken config")
        self.assertIn("keeping the running config", self.srv.log())
        self.assertEqual(self.request("GET", "/v1/challenges", client="newbie").status, 200)
        self.assertEqual(self.request("GET", "/healthz", client=None).status, 200)
        t3 = new_token()
        self.assertEqual(self.put_http01(t3, client="newbie",
                                         identifier="new.example.com").status, 201)
        # removing a client takes its token away
        del self.srv.clients["newbie"]
        self.srv.write_config()
        os.kill(self.srv.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            r = self.request("GET", "/v1/challenges", client="newbie")
            if r.status == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 401)

    def test_second_writer_refused(self):
        second = self.start_server(name="second", store=self.srv.store, wait=False)
        second.expect_fail = True
        try:
            rc = second.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("a second writer on the same store kept running:\n" + second.log())
        self.assertNotEqual(rc, 0)
        log = second.log()
        self.assertIn(self.srv.store, log, "the message does not name the store")
        self.assertTrue(self.srv.alive())
        tok = new_token()
        self.assertEqual(self.put_http01(tok).status, 201)
        self.assertIsNotNone(self.probe.lookup("http-01", tok))

    # ==== hardening: regressions ==========================================================

    def raw_exchange(self, data, method, route, timeout=10):
        """Sends raw request bytes on a new connection; returns the reply,
        counted under route."""
        c = RawConn(self.srv.port, timeout=timeout)
        self.closers.append(c.close)
        try:
            c.send(data)
            status, reason = c.read_status()
            r = c.read_rest(status, reason, method)
        except (OSError, EOFError) as e:
            raise AssertionError("%r: %r (server alive: %s)" % (
                data[:80], e, self.srv.alive()))
        finally:
            c.close()
        self.expected[(route, r.status)] += 1
        return r

    @staticmethod
    def raw_head(method, target, client=None, body=b"", ctype=None):
        lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        if client:
            lines.append(b"Authorization: Bearer " + BEARER[client].encode())
        if ctype:
            lines.append(b"Content-Type: " + ctype.encode())
        if body or method in ("PUT", "POST"):
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def test_request_text_that_is_not_utf8_never_kills_the_api(self):
        # Error details quote the request (path, identifier, query key,
        # JSON key, jansson's message); jansson refuses text that is not
        # UTF-8, and the API used to abort on that. Each of these once
        # killed it; now each gets its JSON error, with the bytes escaped.
        tok = new_token()
        ka = keyauth(tok).encode()
        cut = b"a" * 198 + "\u00e9".encode()       # %.200s cuts inside the e-acute
        long_key = ("\u00e9" * 300).encode()       # cut inside a character
        cases = [
            # (method, target, client, body, status, word, route, in detail)
            ("GET", b"/\xff", None, b"", 404, "no_such_route", "other", "\\xff"),
            ("GET", b"/\xc3", None, b"", 404, "no_such_route", "other", "\\xc3"),
            ("GET", b"/" + cut, None, b"", 404, "no_such_route", "other", "aaa"),
            ("DELETE", b"/v1/http-01/\xfe", None, b"", 401, "unauthorized",
             "delete_http01", None),
            ("DELETE", b"/v1/tls-alpn-01/%FF", "admin", b"", 400, "bad_identifier",
             "delete_tlsalpn01", "\\xff"),
            ("PUT", b"/v1/tls-alpn-01/" + b"a" * 259 + b"%C3%A9", "admin", ka, 400,
             "bad_identifier", "put_tlsalpn01", "aaa"),
            ("PUT", b"/v1/http-01/" + tok.encode() + b"?\xff=1", "admin", ka, 400,
             "bad_query", "put_http01", "\\xff"),
            ("PUT", b"/v1/http-01/" + tok.encode() + b"?identifier=%FF", "admin", ka,
             400, "bad_identifier", "put_http01", "\\xff"),
            ("PUT", b"/v1/http-01/" + tok.encode(), "admin",
             b'{"' + long_key + b'": 1}', 400, "bad_json", "put_http01", "\\xc3"),
            ("PUT", b"/v1/http-01/" + tok.encode(), "admin",
             b'{"key_authorization": \xff\xfe}', 400, "bad_json", "put_http01", None),
        ]
        before = self.snapshot()
        for method, target, client, body, status, word, route, shown in cases:
            with self.subTest(target=target[:40]):
                r = self.raw_exchange(self.raw_head(method, target, client, body),
                                      method, route)
                self.assertEqual(r.status, status, r)
                j = json.loads(r.body.decode("utf-8"))      # strict UTF-8
                self.assertEqual(set(j), {"error", "detail"}, r)
                self.assertEqual(j["error"], word, r)
                self.assertTrue(j["detail"].isascii(), r)
                if shown:
                    self.assertIn(shown, j["detail"], r)
        self.assertTrue(self.srv.alive(), "the API died")
        self.assertEqual(self.request("GET", "/healthz", client=None).status, 200)
        self.assertEqual(before, self.snapshot())

    def test_nul_in_a_query_value_is_refused(self):
        # "%00" in a query value used to end the value there, so
        # identifier=www.example.com%00.evil.org stored the token bound to
        # www.example.com; a value is now taken whole or refused.
        for q in ("identifier=www.example.com%00.evil.org",
                  "identifier=www.example.com&ttl=60%00junk"):
            tok = new_token()
            self.expect_error(400, "bad_query", "PUT",
                              "/v1/http-01/%s?%s" % (tok, q), body=keyauth(tok),
                              client="certbot")
            self.assertIsNone(self.probe.lookup("http-01", tok))

    def metrics_once_connections_close(self, within=3.0):
        """/metrics once every connection but the scraper's is counted out."""
        deadline = time.monotonic() + within
        m = self.metrics()
        while self.gauge(m, "acmeedge_api_connections") != 1 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            m = self.metrics()
        self.assertEqual(self.gauge(m, "acmeedge_api_connections"), 1)
        return m

    def _slow_client(self, source, out, key, limit=8.0):
        """Connects from source and sends a request head one byte every
        0.2 s, never finishing it; out[key] = seconds until the server
        closed the connection (None: still open after limit)."""
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5,
                                     source_address=(source, 0))
        self.closers.append(s.close)
        head = b"PUT /v1/http-01/" + new_token().encode() + b" HTTP/1.1\r\n" + \
            b"X-Pad: " + b"a" * 200
        t0 = time.monotonic()
        out[key] = None
        for i in range(int(limit / 0.2)):
            try:
                s.send(head[i % len(head):i % len(head) + 1])
                r, _, _ = select.select([s], [], [], 0.2)
                if r and not s.recv(4096):
                    out[key] = time.monotonic() - t0
                    return
            except OSError:
                out[key] = time.monotonic() - t0
                return

    def _answered_from(self, source, within):
        """GET /healthz from source; seconds until answered, or None."""
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=within,
                                     source_address=(source, 0))
        self.closers.append(s.close)
        t0 = time.monotonic()
        s.sendall(RawConn.build("GET", "/healthz"))
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except (socket.timeout, OSError):
            return None
        finally:
            s.close()
        if not got.startswith(b"HTTP/1.1 200"):
            return None
        self.expected[("healthz", 200)] += 1
        return time.monotonic() - t0

    @config(max_connections="4", timeout="10s", request_timeout="2s",
            max_connections_per_source="2")
    def test_slow_clients_are_cut_at_the_request_deadline(self):
        # Clients that send a byte now and then never trip the inactivity
        # timeout (10 s here): four of them used to hold a 4-connection
        # API for as long as they liked. Now a source holds at most 2
        # connections, and a request must arrive whole within 2 s.
        import threading
        took = {}
        threads = [threading.Thread(target=self._slow_client, args=(src, took, k))
                   for k, src in (("a1", "127.0.0.2"), ("a2", "127.0.0.2"))]
        for t in threads:
            t.start()
        time.sleep(0.3)
        # a third connection from the same source is closed at once
        third = socket.create_connection(("127.0.0.1", self.srv.port), timeout=3,
                                         source_address=("127.0.0.2", 0))
        self.closers.append(third.close)
        t0 = time.monotonic()
        try:
            self.assertEqual(third.recv(100), b"", "a 3rd connection from one "
                             "source was answered")
        except ConnectionResetError:
            pass
        self.assertLess(time.monotonic() - t0, 1.5, "a 3rd connection from one "
                        "source was kept open")
        third.close()
        # another source still gets answered at once: the cap is not full
        self.assertIsNotNone(self._answered_from("127.0.0.3", 1.0))
        # two more slow clients from a third source fill the cap; a fifth
        # source waits, and is answered once the first two hit the deadline
        more = [threading.Thread(target=self._slow_client, args=("127.0.0.4", took, k))
                for k in ("b1", "b2")]
        for t in more:
            t.start()
        time.sleep(0.3)
        waited = self._answered_from("127.0.0.5", 6.0)
        for t in threads + more:
            t.join()
        self.assertIsNotNone(waited, "a client of another source was never "
                             "answered while slow clients held the API")
        self.assertLess(waited, 3.5)
        for k, v in sorted(took.items()):
            self.assertIsNotNone(v, "%s: a slow client was never cut off" % k)
            self.assertGreater(v, 1.5, "%s: cut before request_timeout" % k)
            self.assertLess(v, 3.5, "%s: not cut at request_timeout" % k)
        m = self.metrics_once_connections_close()
        self.assertEqual(self.gauge(m, "acmeedge_api_connections_cut_total",
                                    reason="request_timeout"), 4)
        self.assertEqual(self.gauge(m, "acmeedge_api_connections_cut_total",
                                    reason="per_source"), 1)

    @config(capacity=800)
    def test_quota_one_client_cannot_fill_the_store(self):
        # One client used to be able to fill the store, and every other
        # client then got 507. The default quota is a quarter of the store
        # (200 of 800 here); past it a client is refused, the others not.
        toks = []
        for i in range(200):
            t = new_token()
            r = self.put_http01(t, client="certbot", identifier="q%d.example.com" % i)
            self.assertEqual(r.status, 201, (i, r))
            toks.append(t)
        extra = new_token()
        path = "/v1/http-01/%s?identifier=x.example.com" % extra
        r = self.expect_error(507, "quota_exceeded", "PUT", path, body=keyauth(extra),
                              client="certbot")
        self.assertIn("certbot", r.json()["detail"])
        self.assertIn("max_entries = 200", r.json()["detail"])
        # tls-alpn-01 entries count against the same quota
        self.expect_error(507, "quota_exceeded", "PUT", "/v1/tls-alpn-01/t.example.com",
                          body=keyauth(extra), client="certbot")
        # the other clients still have room
        self.assertEqual(self.put_http01(extra, client="other",
                                         identifier="www.other.org").status, 201)
        # replacing one's own entry adds none
        r = self.put_http01(toks[0], keyauth(toks[0], OTHER_THUMB), client="certbot",
                            identifier="q0.example.com")
        self.assertEqual(r.status, 200, r)
        # a delete makes room, for one
        self.assertEqual(self.request("DELETE", "/v1/http-01/" + toks[1],
                                      client="certbot").status, 204)
        t2, t3 = new_token(), new_token()
        self.assertEqual(self.put_http01(t2, client="certbot",
                                         identifier="y.example.com").status, 201)
        self.expect_error(507, "quota_exceeded", "PUT",
                          "/v1/http-01/%s?identifier=z.example.com" % t3,
                          body=keyauth(t3), client="certbot")
        # an entry another client takes over no longer counts for certbot
        self.assertEqual(self.put_http01(toks[2], client="admin",
                                         identifier="q2.example.com").status, 200)
        self.assertEqual(self.put_http01(t3, client="certbot",
                                         identifier="z.example.com").status, 201)
        # an explicit quota, taken on reload
        self.srv.clients["certbot"] = dict(CLIENTS["certbot"], max_entries="2")
        self.srv.write_config()
        os.kill(self.srv.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while self.srv.log().count("api: reloaded") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        t4 = new_token()
        r = self.expect_error(507, "quota_exceeded", "PUT",
                              "/v1/http-01/%s?identifier=w.example.com" % t4,
                              body=keyauth(t4), client="certbot")
        self.assertIn("max_entries = 2", r.json()["detail"])
        self.assertEqual(self.put_http01(t4, client="other",
                                         identifier="w.other.org").status, 201)

    def test_quota_counts_what_the_store_held_at_start(self):
        # A restarted API counts the entries already in the store.
        for i in range(3):
            t = new_token()
            self.assertEqual(self.put_http01(t, client="certbot",
                                             identifier="s%d.example.com" % i).status, 201)
        self.srv.stop()
        clients = dict(CLIENTS, certbot=dict(CLIENTS["certbot"], max_entries="3"))
        again = self.start_server(name="again", store=self.srv.store, clients=clients)
        t = new_token()
        r = self.request("PUT", "/v1/http-01/%s?identifier=s.example.com" % t,
                         body=keyauth(t), client="certbot", srv=again)
        self.assertEqual(r.status, 507, r)
        self.assertEqual(r.json()["error"], "quota_exceeded", r)
        r = self.request("PUT", "/v1/http-01/%s?identifier=s.other.org" % t,
                         body=keyauth(t), client="other", srv=again)
        self.assertEqual(r.status, 201, r)

    def test_400_reverse_zone_names_are_not_identifiers(self):
        # A name under in-addr.arpa or ip6.arpa is how a validator spells an
        # IP identifier in SNI, and the store key of its tls-alpn-01 entry.
        # Taken as a DNS identifier, it let a client allowed *.arpa hold the
        # key of 192.0.2.7 and lock its owner out (403 not_owner).
        clients = dict(CLIENTS, newbie={"identifiers": "*.arpa"})
        srv = self.start_server(name="arpa", clients=clients)
        tok = new_token()
        for name in ("7.2.0.192.in-addr.arpa", "7.2.0.192.IN-ADDR.ARPA.",
                     "in-addr.arpa", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                     "8.b.d.0.1.0.0.2.ip6.arpa", "x.ip6.arpa"):
            with self.subTest(name=name):
                for client in ("newbie", "local"):
                    r = self.request("PUT", "/v1/tls-alpn-01/" + name,
                                     body=keyauth(tok), client=client, srv=srv)
                    self.assertEqual(r.status, 400, (client, r))
                    self.assert_json_error(r, "bad_identifier")
                r = self.request("PUT", "/v1/http-01/%s?identifier=%s" % (tok, name),
                                 body=keyauth(tok), client="local", srv=srv)
                self.assertEqual(r.status, 400, r)
                self.assert_json_error(r, "bad_identifier")
                r = self.request("DELETE", "/v1/tls-alpn-01/" + name, client="local",
                                 srv=srv)
                self.assertEqual(r.status, 400, r)
                self.assert_json_error(r, "bad_identifier")
        # the owner of the address is not locked out
        r = self.request("PUT", "/v1/tls-alpn-01/192.0.2.7", body=keyauth(tok),
                         client="certbot", srv=srv)
        self.assertEqual(r.status, 201, r)
        # and names that only look alike are still names
        r = self.request("PUT", "/v1/tls-alpn-01/home.arpa", body=keyauth(tok),
                         client="newbie", srv=srv)
        self.assertEqual(r.status, 201, r)

    def make_cert_with(self, san, digest_hex, newkey, name):
        """A self-signed RFC 8737 cert and key in PEM with the key that
        `openssl req -newkey` args (a list) make."""
        c = os.path.join(self.tmp, name + ".crt")
        k = os.path.join(self.tmp, name + ".key")
        colon = ":".join(digest_hex[i:i + 2] for i in range(0, 64, 2))
        openssl("req", "-x509", *newkey, "-nodes", "-subj", "/CN=x", "-days", "2",
                "-keyout", k, "-out", c, "-addext", "subjectAltName=" + san,
                "-addext", "%s=critical,DER:04:20:%s" % (ACME_OID, colon))
        with open(c) as f1, open(k) as f2:
            return f1.read(), f2.read()

    @config(max_body="16384")
    def test_400_imported_key_types(self):
        # Any key type and size used to be stored, and the proxy signs
        # every acme-tls/1 handshake with it (RSA-8192: tens of ms each).
        # Now only what a validator needs: ECDSA P-256/P-384, Ed25519,
        # RSA 2048..4096.
        d = sha256_hex(keyauth(new_token()))
        name = "keys.example.com"
        path = "/v1/tls-alpn-01/" + name
        for label, newkey, ok, shown in (
                ("p384", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
                 True, None),
                ("ed25519", ["-newkey", "ed25519"], True, None),
                ("rsa2048", ["-newkey", "rsa:2048"], True, None),
                ("p521", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
                 False, "secp521r1"),
                ("k256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
                 False, "secp256k1"),
                ("rsa1024", ["-newkey", "rsa:1024"], False, "1024 bits"),
                ("ed448", ["-newkey", "ed448"], False, "ED448")):
            with self.subTest(key=label):
                cert, key = self.make_cert_with("DNS:" + name, d, newkey, label)
                body = {"certificate": cert, "key": key}
                if ok:
                    r = self.put_tls(name, client="certbot", json_body=body)
                    self.assertIn(r.status, (200, 201), r)
                    self.check_cert(self.probe.lookup("tls-alpn-01", name), name, d)
                    continue
                r = self.expect_error(400, "bad_certificate", "PUT", path,
                                      json_body=body, client="certbot")
                detail = r.json()["detail"]
                self.assertIn(shown, detail)
                self.assertIn("P-256", detail)

    def test_unauthenticated_errors_do_not_flood_the_log(self):
        # Every error was logged, so anyone could write the log full with
        # bad requests. Errors before a client is known are rate-limited;
        # a known client's errors are all logged.
        c = RawConn(self.srv.port)
        self.closers.append(c.close)
        for i in range(300):
            r = c.request("GET", "/nowhere/%d" % i)
            self.assertEqual(r.status, 404, r)
        self.expected[("other", 404)] += 300
        tok = new_token()
        for i in range(30):
            r = c.request("PUT", "/v1/http-01/%s?identifier=bad%%20name%d" % (tok, i),
                          {"Authorization": "Bearer " + BEARER["admin"]}, keyauth(tok))
            self.assertEqual(r.status, 400, r)
        self.expected[("put_http01", 400)] += 30
        log = self.srv.log()
        anon = len(re.findall(r"other /nowhere/\d+ from \S+: 404", log))
        self.assertGreater(anon, 0)
        self.assertLess(anon, 100, "%d of 300 unauthenticated errors logged" % anon)
        self.assertEqual(len(re.findall(r"client admin: 400 bad_identifier", log)), 30)

    # ==== PUT latency ========================================================================

    def test_put_latency(self):
        n = int(os.environ.get("ACME_EDGE_LATENCY_PUTS", "10000"))
        conn = RawConn(self.srv.port)
        self.closers.append(conn.close)
        auth = {"Authorization": "Bearer " + BEARER["admin"]}
        lat = []
        statuses = collections.Counter()
        deadline = time.monotonic() + 240
        for i in range(n):
            tok = "%s%08d" % (b64url(18), i)
            put = RawConn.build("PUT", "/v1/http-01/" + tok, auth, keyauth(tok))
            t0 = time.perf_counter_ns()
            conn.send(put)
            st, reason = conn.read_status()
            r = conn.read_rest(st, reason, "PUT")
            lat.append((time.perf_counter_ns() - t0) / 1000.0)
            statuses[("put_http01", r.status)] += 1
            r = conn.request("DELETE", "/v1/http-01/" + tok, auth)
            statuses[("delete_http01", r.status)] += 1
            if time.monotonic() > deadline:
                self.fail("latency run over 240 s after %d PUTs" % i)
        self.expected.update(statuses)
        self.assertEqual(statuses[("put_http01", 201)], n, statuses)
        self.assertEqual(statuses[("delete_http01", 204)], n, statuses)
        lat.sort()
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        sys.stderr.write("\nPUT latency over one keep-alive connection, %d PUTs: "
                         "p50 %.0f us, p99 %.0f us, max %.0f us\n" %
                         (n, p50, p99, lat[-1]))
        print("PUT latency: n=%d p50_us=%.0f p99_us=%.0f max_us=%.0f" %
              (n, p50, p99, lat[-1]))


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE"), (STORE_PROBE, "STORE_PROBE")], tools=("openssl",))
