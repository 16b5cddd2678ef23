"""What the Python test suites share: tests/integration/test_*.py and
tests/e2e/run_e2e.py.

It lives in tests/tools, beside ports.py, rather than in tests/integration:
the end-to-end run uses it too, and tests/integration then holds nothing
but suites, each found by CMake as integration/test_*.py. A suite puts this
folder on sys.path and imports what it needs.

Python standard library only, plus the `openssl` CLI for openssl() and
make_cert().
"""
import base64
import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

from ports import free_port  # noqa: F401 - the suites take it from here

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_ID = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
ACME_OID = "1.3.6.1.5.5.7.1.31"     # id-pe-acmeIdentifier (RFC 8737)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "BUG at ", "SUMMARY: ")


def env_path(var, default):
    """A program the suite runs: $var, else default under the source tree."""
    return os.environ.get(var) or os.path.join(ROOT, default)


def main(need=(), tools=()):
    """Runs the calling script's tests once what they need is there.
    need: (path, variable) of each executable; tools: CLIs on PATH."""
    for path, var in need:
        if not os.access(path, os.X_OK):
            sys.exit("%s: %s is not an executable; set %s" % (sys.argv[0], path, var))
    for tool in tools:
        if not shutil.which(tool):
            sys.exit("the %s CLI is needed" % tool)
    unittest.main(verbosity=2)


# ---- names and secrets ------------------------------------------------------

def kernel_release():
    """The running kernel's (major, minor), e.g. (6, 12)."""
    return tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])


def b64url(nbytes):
    return base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode()


def new_token():
    """An http-01 token as a CA issues it: 32 base64url characters."""
    return b64url(24)


THUMB = b64url(32)              # 43 characters, an ACME account thumbprint


def keyauth(token, thumb=None):
    return "%s.%s" % (token, thumb or THUMB)


def sha256_hex(s):
    if isinstance(s, str):
        s = s.encode()
    return hashlib.sha256(s).hexdigest()


def sni_of(identifier):
    """The store key of a tls-alpn-01 entry: the name, or its reverse form."""
    try:
        ip = ipaddress.ip_address(identifier.strip("[]"))
    except ValueError:
        return identifier.lower().rstrip(".")
    return ip.reverse_pointer


# ---- tools ------------------------------------------------------------------

def openssl(*args, data=None, timeout=30, check=True):
    p = subprocess.run(["openssl"] + list(args), input=data, capture_output=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (
            " ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def make_cert(dirpath, cn, stem=None, days=2, extra=()):
    """A self-signed P-256 certificate and key in dirpath/STEM.crt and .key
    (STEM defaults to cn), with `openssl req` arguments extra added; also
    the SHA-256 of its DER, as a TLS client sees it."""
    stem = stem or cn
    crt = os.path.join(dirpath, stem + ".crt")
    key = os.path.join(dirpath, stem + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=" + cn, "-days", str(days), "-keyout", key,
            "-out", crt, *extra)
    with open(crt) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return {"crt": crt, "key": key, "fp": hashlib.sha256(der).hexdigest()}


_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"'


def parse_metrics(text, strict=False):
    """Prometheus text format -> {(name, ((label, value), ...)): float}.
    strict: the format's own rules hold too (every comment a HELP or TYPE
    line, every sample typed and there once, values spelled as numbers)."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            if not strict:
                continue
            m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % _METRIC, line)
            if not m:
                raise AssertionError("malformed metrics comment: %r" % line)
            if m.group(1) == "TYPE":
                types[m.group(2)] = m.group(3)
            continue
        if strict:
            m = re.match(r'^(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? '
                         r'(-?[0-9.eE+]+|NaN|[+-]Inf)$' % _METRIC, line)
        else:
            m = re.match(r"^(%s)(\{[^}]*\})? (\S+)$" % _METRIC, line)
        if not m:
            raise AssertionError("malformed metrics line: %r" % line)
        key = (m.group(1), tuple(sorted(re.findall(_LABEL, m.group(2) or ""))))
        if strict:
            if key in samples:
                raise AssertionError("sample appears twice: %r" % line)
            if m.group(1) not in types:
                raise AssertionError("sample without a # TYPE line: %r" % line)
        samples[key] = float(m.group(3))
    return samples


def M(name, **labels):
    """The key of one sample in what parse_metrics() returns."""
    return (name, tuple(sorted(labels.items())))


# ---- logs, stores, test outcomes --------------------------------------------

def read_log(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def sanitizer_marks(text, marks=SANITIZER_MARKS):
    """The marks of a sanitizer report found in a log."""
    return [m for m in marks if m in text]


def store_path(kind, name=None):
    """A store under /dev/shm no other run or suite uses."""
    return "/dev/shm/acme-edge-%s-%s-%s" % (kind, RUN_ID, name or uuid.uuid4().hex[:8])


def remove_store(path):
    """The store and the files named after it: the writer's .lock, the
    proxy's .proxy statistics, a .new.* left by an interrupted rewrite."""
    d, base = os.path.split(path)
    for f in os.listdir(d):
        if f == base or f.startswith(base + "."):
            try:
                os.unlink(os.path.join(d, f))
            except OSError:
                pass


def result_failures(case):
    """How many failures and errors the run's result holds so far."""
    r = getattr(getattr(case, "_outcome", None), "result", None)
    return len(getattr(r, "failures", ())) + len(getattr(r, "errors", ()))


def outcome_ok(case, failures_before=None):
    """Whether the running test has not failed, asked from tearDown.
    failures_before: result_failures() at setUp, for a stricter answer."""
    outcome = getattr(case, "_outcome", None)
    if outcome is None:
        return True
    errors = getattr(outcome, "errors", None)       # Python <= 3.10
    if errors is not None:
        return not any(exc for _, exc in errors)
    # 3.11+: failures reach the result before tearDown
    return getattr(outcome, "success", True) and (
        failures_before is None or result_failures(case) == failures_before)


# ---- sockets and HTTP -------------------------------------------------------

def connect(port, host="127.0.0.1", timeout=10.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((host, port))
    return s


def recv_all(sock, limit=1 << 26, reset_ends=False):
    """Everything until EOF (at most limit bytes). A reset raises, unless
    reset_ends: then it counts as the end and what came before is
    returned as is."""
    out = b""
    while len(out) < limit:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            if not reset_ends:
                raise
            break
        if not d:
            break
        out += d
    return out


def recv_until(sock, end):
    """What sock sends until end has come, or until EOF (end is then
    missing from what is returned)."""
    buf = b""
    while end not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf


def client_ctx(alpn=None, version=None):
    """A TLS client that takes any certificate (the tests compare it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class Resp:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # lowercase name -> value
        self.body = body

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:400])


class RawConn:
    """One keep-alive HTTP/1.1 connection driven by hand, Content-Length
    framed; buf holds what was received and not yet read."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = connect(port, host, timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the peer; %d bytes unread" % len(self.buf))
        self.buf += data

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_status(self):
        line = self.read_line()
        m = re.match(rb"^HTTP/1\.[01] (\d{3}) ?(.*)$", line)
        if not m:
            raise AssertionError("bad status line %r" % line)
        return int(m.group(1)), m.group(2).decode("latin-1")

    def read_rest(self, status, reason, method):
        """The headers and body of a response whose status line was read."""
        headers = {}
        while True:
            line = self.read_line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        n = 0 if (method == "HEAD" or status in (204, 304)) else int(
            headers.get("content-length", "0"))
        if "transfer-encoding" in headers:
            raise AssertionError("unexpected Transfer-Encoding: %r" % headers)
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return Resp(status, reason, headers, body)

    def response(self, method="GET"):
        """The next response: (status, headers, body)."""
        r = self.read_rest(*self.read_status(), method)
        return r.status, r.headers, r.body

    @staticmethod
    def build(method, path, headers=None, body=b""):
        if isinstance(body, str):
            body = body.encode()
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if body or method in ("PUT", "POST"):
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def request(self, method, path, headers=None, body=b""):
        self.send(self.build(method, path, headers, body))
        return self.read_rest(*self.read_status(), method)


def api_request(port, method, path, token=None, body=None, ctype="text/plain",
                timeout=10):
    """One request to the solver API on a new connection: (status, headers
    with lowercase names, body). token: the bearer, None for none; a dict
    or list body is sent as JSON."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        if isinstance(body, (dict, list)):
            body, ctype = json.dumps(body), "application/json"
        h["Content-Type"] = ctype
        if isinstance(body, str):
            body = body.encode()
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


# ---- upstreams --------------------------------------------------------------

def reply(handler, code, body, ctype="text/plain"):
    """A whole response from an http.server handler; ctype None: no Content-Type."""
    handler.send_response(code)
    if ctype:
        handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def serve_in_thread(server, poll_interval=0.1):
    t = threading.Thread(target=server.serve_forever,
                         kwargs={"poll_interval": poll_interval}, daemon=True)
    t.start()
    return t


# ---- acme-edge processes ---------------------------------------------------

def conf_text(sections, comment=None):
    """A config file: sections are (header, {key: value}) in order."""
    out = ["; " + comment] if comment else []
    for header, keys in sections:
        out.append("[%s]" % header)
        out += ["%s = %s" % kv for kv in keys.items()]
        out.append("")
    return "\n".join(out)


class Edge:
    """One acme-edge process with its own config file, log and store. A
    subclass gives config_text() and starts the process with spawn()."""

    def __init__(self, tmpdir, name, store):
        self.tmpdir = tmpdir
        self.name = name
        self.store = store
        self.conf = os.path.join(tmpdir, name + ".conf")
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self.logf = None
        self.rc = None
        self.session = False

    def config_text(self):
        raise NotImplementedError

    def write_config(self, text=None):
        # Replaced whole, so that a reload never reads half a file.
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(text if text is not None else self.config_text())
        os.replace(tmp, self.conf)

    def spawn(self, argv, env=None, new_session=False):
        """new_session: the process leads its own session, all of which
        stop() kills once the process is gone."""
        self.logf = open(self.log_path, "ab")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        e.update(env or {})
        self.session = new_session
        self.rc = None
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=e,
                                     start_new_session=new_session)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return read_log(self.log_path)

    def kill(self):
        """SIGTERM went unheeded."""
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, timeout=10.0):
        """SIGTERM by PID, kill() after timeout; the exit status, or why
        there is none."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait()
                self.rc = "hung on SIGTERM, killed"
        if self.rc is None:
            self.rc = self.proc.returncode
        if self.session:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.logf:
            self.logf.close()
            self.logf = None
        return self.rc

    def finish(self):
        """stop(), then the store removed: (exit status, the whole log)."""
        rc = self.stop()
        log = self.log()
        remove_store(self.store)
        return rc, log

    def finish_clean(self):
        """finish(), failing unless the exit was 0 with no sanitizer report."""
        rc, log = self.finish()
        marks = sanitizer_marks(log)
        if rc != 0 or marks:
            raise AssertionError("acme-edge exited %r %s:\n%s" % (rc, marks, log))


class Gateway(Edge):
    """`acme-edge run` (the API and the proxy), reached on loopback ports:
    api_port, http, https; one API client, whose bearer token is given."""

    ready_timeout = 30.0

    def __init__(self, tmpdir, name, bearer, store):
        super().__init__(tmpdir, name, store)
        self.bearer = bearer
        self.api_port = free_port()
        self.http = free_port()
        self.https = free_port()

    def wait_ready(self, timeout=None):
        """Until the proxy logged that it is ready and /healthz answers."""
        timeout = timeout or self.ready_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError("acme-edge exited with %r at start:\n%s" %
                                     (self.proc.returncode, self.log()))
            if "proxy: ready:" in self.log():
                try:
                    st, _, _ = self.api("GET", "/healthz", auth=False)
                    if st == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("acme-edge not ready within %.0fs:\n%s" % (timeout, self.log()))

    def api(self, method, path, body=None, auth=True, ctype="text/plain", timeout=10):
        return api_request(self.api_port, method, path, self.bearer if auth else None,
                           body, ctype, timeout)

    def put_http01(self, token, ka=None, identifier=None):
        path = "/v1/http-01/" + token
        if identifier is not None:
            path += "?" + urllib.parse.urlencode({"identifier": identifier})
        st, _, body = self.api("PUT", path, ka if ka is not None else keyauth(token))
        if st not in (200, 201):
            raise AssertionError("PUT %s: %d %r" % (path, st, body))

    def put_tls(self, identifier, ka):
        path = "/v1/tls-alpn-01/" + urllib.parse.quote(identifier, safe=":.[]")
        st, _, body = self.api("PUT", path, ka)
        if st not in (200, 201):
            raise AssertionError("PUT %s: %d %r" % (path, st, body))

    def metrics_text(self):
        st, _, body = self.api("GET", "/metrics", auth=False)
        if st != 200:
            raise AssertionError("GET /metrics: %d %r" % (st, body))
        return body.decode()

    def metrics(self):
        return parse_metrics(self.metrics_text())


class LoopbackGateway(Gateway):
    """`acme-edge run` on free loopback ports, one worker, with the API
    clients given ({name: (bearer token, identifiers)}; the first one's
    token is self.bearer). Nothing listens upstream: what is not a
    challenge fails there. acme_edge: the binary; proxy_host: the address
    the proxy listens on (the API stays on 127.0.0.1); extra: more
    sections, {section: {key: value}}."""

    def __init__(self, tmpdir, name, store, acme_edge, clients, comment=None,
                 proxy_host="127.0.0.1", extra=None):
        super().__init__(tmpdir, name, next(iter(clients.values()))[0], store)
        self.acme_edge = acme_edge
        self.clients = clients
        self.comment = comment
        self.proxy_host = proxy_host
        self.extra = extra or {}

    def config_text(self):
        sections = [
            ("store", {"path": self.store, "capacity": 32}),
            ("api", {"listen": "127.0.0.1:%d" % self.api_port,
                     "default_ttl": "10m", "max_ttl": "1h"}),
            ("proxy", {"http": "%s:%d" % (self.proxy_host, self.http),
                       "https": "%s:%d" % (self.proxy_host, self.https),
                       "workers": 1, "peek_timeout": "5s",
                       "connect_timeout": "2s", "grace": "1s"}),
            ("route default", {"http": "127.0.0.1:9", "https": "127.0.0.1:9"}),
        ]
        sections += list(self.extra.items())
        for cname, (bearer, identifiers) in self.clients.items():
            sections.append(("client " + cname, {"token_sha256": sha256_hex(bearer),
                                                 "identifiers": identifiers}))
        sections.append(("log", {"level": "info"}))
        return conf_text(sections, comment=self.comment)

    def start(self):
        self.write_config()
        self.spawn([self.acme_edge, "run", "-c", self.conf], new_session=True)
