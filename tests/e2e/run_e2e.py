#!/usr/bin/python3
"""
End to end: real certificates from a real ACME CA, through acme-edge, with
real ACME clients.

Starts, all on 127.0.0.1 ports chosen per run:
  - pebble-challtestsrv as DNS only (every name -> 127.0.0.1, no AAAA),
  - Pebble with real validation (PEBBLE_VA_NOSLEEP=1, PEBBLE_AUTHZREUSE=0,
    PEBBLE_WFE_NONCEREJECT=0, PEBBLE_VA_ALWAYS_VALID removed), its httpPort
    and tlsPort pointed at the gateway, its own listener on a throwaway CA
    and leaf made with openssl for this run,
  - a test upstream (HTTP and TLS, in this process),
  - `acme-edge run` on a generated config: one API client per ACME client,
    each scoped to its own names.
Then obtains certificates with certbot (http-01, through
deploy/hooks/certbot-*.sh), dehydrated (tls-alpn-01 and http-01, through
deploy/hooks/dehydrated.sh), lego (its own listeners behind the gateway's
miss forwarding: lego 4.9 cannot push to the API, see deploy/hooks/README.md)
and a concurrent burst driven by Debian's python3-acme; checks that orders
that must fail do fail (out of scope, wrong key authorization, deleted,
expired); and keeps ordinary HTTP and TLS traffic flowing through the
gateway to the upstream the whole time. Every issued chain is verified
against Pebble's root (management port, /roots/0) with `openssl verify`, and
its SANs against the names asked for.

Every process is started in its own session under `setpriv --pdeathsig`,
registered, and stopped by PID (then its process group by the same id) on
every path out, including SIGTERM/SIGINT and the global time budget.

Environment: ACME_EDGE (the binary; default build/e2e/acme-edge),
ACME_EDGE_HOOKS (default deploy/hooks), E2E_BUDGET (seconds, default 270),
E2E_SERIAL=1 (run the cases one after another instead of in parallel),
E2E_KEEP=1 (keep the temp dir and print its path).
Python standard library, plus /usr/bin/python3's python3-acme for the burst
and the negatives.
"""
import concurrent.futures
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import http.server
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (api_request, b64url, conf_text, env_path, free_port,  # noqa: E402
                     make_cert, openssl, read_log, remove_store, reply, sanitizer_marks,
                     serve_in_thread, sha256_hex, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/e2e/acme-edge")
HOOKS = env_path("ACME_EDGE_HOOKS", "deploy/hooks")
BUDGET = float(os.environ.get("E2E_BUDGET", "270"))
SERIAL = os.environ.get("E2E_SERIAL") == "1"
KEEP = os.environ.get("E2E_KEEP") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: AddressSanitizer",
                   "SUMMARY: UndefinedBehaviorSanitizer")
UPSTREAM_NAME = "www.upstream.test"
T0 = time.monotonic()


def log(msg):
    sys.stdout.write("[%6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stdout.flush()


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def wait_port(port, proc, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise Fail("%s exited with %r while starting" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise Fail("%s: nothing listens on 127.0.0.1:%d after %ds" % (what, port, timeout))


# ---- processes: every one registered, stopped by PID on every path ----------

class Procs:
    def __init__(self):
        self.lock = threading.Lock()
        self.live = {}          # pid -> (name, Popen)
        self.closing = False    # set by stop_all: no new process after it

    def spawn(self, name, argv, env=None, out=None, cwd=None, capture=False):
        """Own session (pgid == pid), SIGTERM when the spawning thread dies,
        registered before anyone can miss it; refused once stop_all began."""
        if capture:
            kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        else:
            kw = {"stdout": out or subprocess.DEVNULL,
                  "stderr": subprocess.STDOUT if out else subprocess.DEVNULL}
        with self.lock:
            if self.closing:
                raise Fail("%s: not started, the run is stopping" % name)
            p = subprocess.Popen(["setpriv", "--pdeathsig", "TERM", "--"] + list(argv),
                                 env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 start_new_session=True, **kw)
            self.live[p.pid] = (name, p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10.0):
        """sig to the PID, SIGKILL after timeout, then SIGKILL to whatever is
        left of its process group (same id). Returns the exit status."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        leftovers = False
        try:
            os.killpg(p.pid, 0)
            leftovers = True
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with self.lock:
            self.live.pop(p.pid, None)
        p.leftovers = leftovers
        return p.returncode

    def run(self, name, argv, env=None, timeout=120, cwd=None, logpath=None):
        """A client run to completion, bounded; returns (rc, output)."""
        logpath = logpath or os.path.join(WORK, "%s.log" % re.sub(r"\W", "_", name))
        with open(logpath, "wb") as out:
            p = self.spawn(name, argv, env=env, out=out, cwd=cwd)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop(p, signal.SIGKILL)
                with open(logpath, "rb") as f:
                    raise Fail("%s: no result after %ds (killed); output:\n%s" % (
                        name, timeout, f.read().decode(errors="replace")[-3000:]))
            self.stop(p)
        with open(logpath, "rb") as f:
            return p.returncode, f.read().decode(errors="replace")

    def run_capture(self, name, argv, env=None, timeout=60):
        """Like run(), stdout and stderr apart; returns (rc, out, err)."""
        p = self.spawn(name, argv, env=env, capture=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p, signal.SIGKILL)
            raise Fail("%s: no result after %ds (killed)" % (name, timeout))
        finally:
            self.stop(p)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop_all(self):
        with self.lock:
            self.closing = True
            items = list(self.live.values())
        for name, p in reversed(items):
            self.stop(p, timeout=5)


PROCS = Procs()
WORK = None


# ---- certificates -----------------------------------------------------------

def make_ca(d):
    ca = make_cert(d, "acme-edge e2e throwaway CA", stem="ca", extra=[
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return ca["key"], ca["crt"]


def make_leaf(d, stem, ca_key, ca_pem, sans):
    key, csr, pem = (os.path.join(d, stem + s) for s in (".key", ".csr", ".pem"))
    ext = os.path.join(d, stem + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % sans)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + stem)
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
            "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", ext)
    return key, pem


PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


def verify_chain(label, fullchain, names, extra_chain=None):
    """fullchain: PEM bytes, leaf first. Verifies it against Pebble's root
    and checks the leaf's SANs are exactly `names`."""
    if extra_chain:
        fullchain = fullchain + b"\n" + extra_chain
    blocks = PEM_RE.findall(fullchain)
    check(len(blocks) >= 2, "%s: want leaf + intermediate, got %d certificate(s)" % (
        label, len(blocks)))
    d = tempfile.mkdtemp(dir=WORK, prefix="verify-")
    leaf, inter = os.path.join(d, "leaf.pem"), os.path.join(d, "inter.pem")
    with open(leaf, "wb") as f:
        f.write(blocks[0])
    with open(inter, "wb") as f:
        f.write(b"".join(blocks[1:]))
    p = subprocess.run(["openssl", "verify", "-CAfile", PEBBLE_ROOT, "-untrusted", inter,
                        "-purpose", "sslserver", leaf], capture_output=True, timeout=30)
    check(p.returncode == 0 and b": OK" in p.stdout,
          "%s: openssl verify against Pebble's root failed: %s %s" % (
              label, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))
    text = openssl("x509", "-in", leaf, "-noout", "-ext", "subjectAltName").decode()
    got = sorted(re.findall(r"DNS:([^,\s]+)", text))
    check(got == sorted(names), "%s: SANs %s, asked for %s" % (label, got, sorted(names)))
    return "verified against Pebble root, SANs %s" % ",".join(got)


# ---- the solver API ---------------------------------------------------------

def api(method, path, token, body=None, ctype="text/plain", timeout=15):
    st, _, data = api_request(API_PORT, method, path, token, body, ctype, timeout)
    return st, data.decode(errors="replace")


# ---- test upstream (HTTP and TLS), in this process --------------------------

class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    scheme = "http"

    def setup(self):
        super().setup()
        self.connection.settimeout(10)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    webroot = None          # files under it are served for challenge paths

    def do_GET(self):
        if self.path.startswith("/.well-known/acme-challenge/"):
            # Like a web server with a webroot: what a client wrote there
            # (lego --http.webroot), else 404.
            token = self.path.rsplit("/", 1)[1]
            path = os.path.join(self.webroot or "/nonexistent",
                                ".well-known/acme-challenge", token)
            if re.fullmatch(r"[A-Za-z0-9_-]+", token) and os.path.isfile(path):
                with open(path, "rb") as f:
                    body, code = f.read(), 200
            else:
                body, code = b"the upstream holds no challenge\n", 404
        else:
            body, code = ("upstream-%s %s" % (self.scheme, self.path)).encode(), 200
        reply(self, code, body)

    def log_message(self, *a):
        pass


class TLSUpstreamHandler(UpstreamHandler):
    scheme = "https"


class QuietServer(http.server.ThreadingHTTPServer):
    tls_ctx = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_ctx is not None:
            sock = self.tls_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass        # forwarded acme-tls/1 probes and the like end abruptly


def start_upstreams(http_port, https_port, key, pem, webroot):
    UpstreamHandler.webroot = webroot
    hs = QuietServer(("127.0.0.1", http_port), UpstreamHandler)
    ts = QuietServer(("127.0.0.1", https_port), TLSUpstreamHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem, key)
    ctx.set_alpn_protocols(["http/1.1"])
    ts.tls_ctx = ctx
    for s in (hs, ts):
        serve_in_thread(s, poll_interval=0.2)
    return hs, ts


class Traffic(threading.Thread):
    """Ordinary HTTP and TLS traffic through the gateway to the upstream, in
    a loop, for as long as the cases run. TLS is checked end to end: the
    certificate seen is the upstream's own (the gateway does not terminate)."""

    def __init__(self, gw_http, gw_https, ca_pem, upstream_der):
        super().__init__(daemon=True)
        self.gw_http, self.gw_https = gw_http, gw_https
        self.ctx = ssl.create_default_context(cafile=ca_pem)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.upstream_der = upstream_der
        self.stop_ev = threading.Event()
        self.ok = {"http": 0, "https": 0}
        self.failures = []
        self.n = 0

    def one_http(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.gw_http, timeout=10)
        try:
            for i in range(2):      # two requests on one keep-alive connection
                p = "%s/%d" % (path, i)
                c.request("GET", p, headers={"Host": UPSTREAM_NAME})
                r = c.getresponse()
                body = r.read()
                check(r.status == 200 and body == ("upstream-http %s" % p).encode(),
                      "http %s: %d %r" % (p, r.status, body[:200]))
        finally:
            c.close()

    def one_https(self, path):
        raw = socket.create_connection(("127.0.0.1", self.gw_https), timeout=10)
        with self.ctx.wrap_socket(raw, server_hostname=UPSTREAM_NAME) as s:
            check(s.getpeercert(binary_form=True) == self.upstream_der,
                  "https: the certificate seen is not the upstream's")
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
                path, UPSTREAM_NAME)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            check(data.startswith(b"HTTP/1.1 200") and
                  data.endswith(("upstream-https %s" % path).encode()),
                  "https %s: %r" % (path, data[:300]))

    def run(self):
        while not self.stop_ev.is_set():
            self.n += 1
            for kind, fn in (("http", self.one_http), ("https", self.one_https)):
                try:
                    fn("/traffic/%s/%d" % (kind, self.n))
                    self.ok[kind] += 1
                except Exception as e:  # noqa: BLE001 - every failure counts
                    self.failures.append("%s #%d at %.1fs: %r" % (
                        kind, self.n, time.monotonic() - T0, e))
            self.stop_ev.wait(0.05)


# ---- results ----------------------------------------------------------------

RESULTS = []
RESULTS_LOCK = threading.Lock()


def record(client, kind, status, detail, seconds):
    with RESULTS_LOCK:
        RESULTS.append((client, kind, status, detail, seconds))
    log("%-4s %s / %s (%.1fs): %s" % (status, client, kind, seconds, detail))


def case(client, kind):
    """Decorator: runs the case, records PASS/FAIL/SKIP with its time."""
    def wrap(fn):
        def run():
            t = time.monotonic()
            try:
                detail = fn()
                if isinstance(detail, tuple) and detail[0] == "SKIP":
                    record(client, kind, "SKIP", detail[1], time.monotonic() - t)
                else:
                    record(client, kind, "PASS", detail or "", time.monotonic() - t)
            except (Fail, AssertionError) as e:     # AssertionError: a harness check
                record(client, kind, "FAIL", str(e), time.monotonic() - t)
            except Exception:  # noqa: BLE001
                record(client, kind, "FAIL", traceback.format_exc(), time.monotonic() - t)
        run.__name__ = fn.__name__
        return run
    return wrap


def client_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
                        "SSL_CERT_DIR", "LEGO_CA_CERTIFICATES", "ACME_EDGE_TOKEN",
                        "ACME_EDGE_API", "ACME_EDGE_HOOK_CONFIG", "ACME_EDGE_TTL",
                        "ACME_EDGE_CURL_OPTS", "http_proxy", "https_proxy",
                        "HTTP_PROXY", "HTTPS_PROXY", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    env["HOME"] = WORK
    # Hooks must never read a real /etc/acme-edge/hook.conf on the test host:
    # an empty one (mode 0600) unless the case names its own.
    env["ACME_EDGE_HOOK_CONFIG"] = EMPTY_HOOK_CONF
    env.update(extra or {})
    return env


# ---- the cases --------------------------------------------------------------

def gw_log():
    return read_log(os.path.join(WORK, "acme-edge.log"))


def check_answered(kind, names):
    text = gw_log()
    missing = [n for n in names
               if not re.search(r"proxy: %s answered: client 127\.0\.0\.1[^,]*, identifier %s\b"
                                % (re.escape(kind), re.escape(n)), text)]
    check(not missing, "the gateway log has no '%s answered' line for %s" % (kind, missing))


@case("certbot", "http-01 (2 names, one certificate)")
def case_certbot():
    names = ["a.certbot.test", "b.certbot.test"]
    d = os.path.join(WORK, "certbot")
    env = client_env({"REQUESTS_CA_BUNDLE": CA_PEM, "ACME_EDGE_API": API_URL,
                      "ACME_EDGE_TOKEN": TOKENS["certbot"]})
    argv = ["certbot", "certonly", "--manual", "--preferred-challenges", "http",
            "--manual-auth-hook", os.path.join(HOOKS, "certbot-auth.sh"),
            "--manual-cleanup-hook", os.path.join(HOOKS, "certbot-cleanup.sh"),
            "--server", DIR_URL, "--config-dir", d + "/config", "--work-dir", d + "/work",
            "--logs-dir", d + "/logs", "--agree-tos", "--register-unsafely-without-email",
            "--non-interactive", "--no-random-sleep-on-renew", "--cert-name", "e2e"]
    for n in names:
        argv += ["-d", n]
    rc, out = PROCS.run("certbot", argv, env=env, timeout=120)
    check(rc == 0, "certbot exited %d:\n%s" % (rc, out[-4000:]))
    check("error output" not in out,
          "certbot reports hook stderr output:\n%s" % out[-3000:])
    with open(os.path.join(d, "config/live/e2e/fullchain.pem"), "rb") as f:
        detail = verify_chain("certbot", f.read(), names)
    check_answered("http-01", names)
    # The cleanup hook removed both entries.
    st, body = api("GET", "/v1/challenges", TOKENS["certbot"])
    left = [c for c in json.loads(body)["challenges"] if c.get("identifier") in names]
    check(st == 200 and not left, "entries left after certbot's cleanup hook: %s" % left)
    return detail + "; cleanup hook removed the entries"


def dehydrated_conf(name, challengetype, hook_chain):
    d = os.path.join(WORK, "dehydrated")
    os.makedirs(os.path.join(d, "wellknown"), exist_ok=True)
    path = os.path.join(d, "config-" + name)
    with open(path, "w") as f:
        f.write('CA="%s"\nCHALLENGETYPE="%s"\nHOOK="%s"\nHOOK_CHAIN="%s"\n'
                'BASEDIR="%s"\nWELLKNOWN="%s/wellknown"\nCURL_OPTS="--cacert %s"\n'
                'KEY_ALGO=prime256v1\nCONTACT_EMAIL=\n' % (
                    DIR_URL, challengetype, os.path.join(HOOKS, "dehydrated.sh"),
                    hook_chain, d, d, CA_PEM))
    return d, path


DEHYDRATED_REGISTERED = threading.Lock()
DEHYDRATED_STATE = {"registered": False}


def dehydrated_env():
    # The token comes from a hook config file (mode 0600) for this client.
    return client_env({"ACME_EDGE_HOOK_CONFIG": HOOK_CONF_DEHYDRATED})


def dehydrated_run(challengetype, names, hook_chain):
    d, conf = dehydrated_conf(challengetype, challengetype, hook_chain)
    with DEHYDRATED_REGISTERED:     # one dehydrated at a time (its lock file)
        if not DEHYDRATED_STATE["registered"]:
            rc, out = PROCS.run("dehydrated-register",
                                ["dehydrated", "--register", "--accept-terms", "-f", conf],
                                env=dehydrated_env(), timeout=60)
            check(rc == 0, "dehydrated --register exited %d:\n%s" % (rc, out[-3000:]))
            DEHYDRATED_STATE["registered"] = True
        argv = ["dehydrated", "--cron", "--force", "-f", conf]
        for n in names:
            argv += ["-d", n]
        rc, out = PROCS.run("dehydrated-" + challengetype, argv,
                            env=dehydrated_env(), timeout=120)
    check(rc == 0 and "Done!" in out, "dehydrated (%s) exited %d:\n%s" % (
        challengetype, rc, out[-4000:]))
    with open(os.path.join(d, "certs", names[0], "fullchain.pem"), "rb") as f:
        detail = verify_chain("dehydrated " + challengetype, f.read(), names)
    check_answered(challengetype, names)
    return detail + " (HOOK_CHAIN=%s)" % hook_chain


@case("dehydrated", "tls-alpn-01 (2 names)")
def case_dehydrated_alpn():
    return dehydrated_run("tls-alpn-01", ["alpn1.dehydrated.test", "alpn2.dehydrated.test"],
                          "no")


@case("dehydrated", "http-01 (2 names)")
def case_dehydrated_http():
    return dehydrated_run("http-01", ["http1.dehydrated.test", "http2.dehydrated.test"],
                          "yes")


def lego_run(kind, name, flags, how=None):
    d = os.path.join(WORK, "lego-" + name)     # one account dir per run: lego
                                                # runs in parallel here
    env = client_env({"LEGO_CA_CERTIFICATES": CA_PEM})
    argv = ["lego", "--server", DIR_URL, "--accept-tos", "--email", "e2e@lego.example.org",
            "--path", d, "--domains", name] + flags + ["run"]
    rc, out = PROCS.run("lego-" + name, argv, env=env, timeout=120)
    check(rc == 0, "lego (%s) exited %d:\n%s" % (kind, rc, out[-4000:]))
    with open(os.path.join(d, "certificates", name + ".crt"), "rb") as f:
        detail = verify_chain("lego " + kind, f.read(), [name])
    # Not through the API: the gateway had no entry and forwarded the CA's
    # request to lego's own listener by the [route lego] names.
    text = gw_log()
    check(re.search(r"proxy: %s answered: [^\n]*identifier %s\b" % (
        re.escape(kind), re.escape(name)), text) is None,
        "the gateway itself answered for %s, but no entry was pushed" % name)
    return detail + "; " + (how or "lego's own listener reached through the gateway's "
                                    "miss forwarding ([route lego]), not through the API")


@case("lego", "http-01 (lego --http behind [route lego])")
def case_lego_http():
    return lego_run("http-01", "l1.lego.test", ["--http", "--http.port",
                                                "127.0.0.1:%d" % LEGO_HTTP])


@case("lego", "tls-alpn-01 (lego --tls behind [route lego])")
def case_lego_tls():
    return lego_run("tls-alpn-01", "l2.lego.test", ["--tls", "--tls.port",
                                                    "127.0.0.1:%d" % LEGO_TLS])


@case("lego", "http-01 (lego --http.webroot on the upstream)")
def case_lego_webroot():
    return lego_run("http-01", "l3.webroot.test", ["--http", "--http.webroot", WEBROOT],
                    how="lego wrote the upstream's webroot, the gateway forwarded the "
                        "CA's request there (http_miss = forward), not through the API")


@case("lego", "through the solver API")
def case_lego_api():
    return ("SKIP", "lego 4.9 cannot push to the API: no http-01/tls-alpn-01 hook (exec "
                    "is dns-01 only, memcached not compiled in), and a webroot watched by a "
                    "pushing script races the CA; see deploy/hooks/README.md")


# ---- python3-acme: the burst and the negatives ------------------------------

def acme_modules():
    from acme import challenges, client, crypto_util, errors, messages  # noqa: F401
    import josepy
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    return challenges, client, crypto_util, errors, messages, josepy, serialization, ec, rsa


class AcmeAccount:
    def __init__(self):
        (self.challenges, client, self.crypto_util, self.errors, self.messages,
         jose, self.ser, self.ec, rsa) = acme_modules()
        self.key = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537,
                                                            key_size=2048))
        net = client.ClientNetwork(self.key, user_agent="acme-edge-e2e",
                                   verify_ssl=CA_PEM, timeout=30)
        directory = client.ClientV2.get_directory(DIR_URL, net)
        self.acme = client.ClientV2(directory, net=net)
        self.acme.new_account(self.messages.NewRegistration.from_data(
            terms_of_service_agreed=True))
        self.thumbprint = jose.b64encode(self.key.thumbprint()).decode()

    def order(self, names):
        pkey = self.ec.generate_private_key(self.ec.SECP256R1()).private_bytes(
            self.ser.Encoding.PEM, self.ser.PrivateFormat.PKCS8, self.ser.NoEncryption())
        return self.acme.new_order(self.crypto_util.make_csr(pkey, names))

    def challenge(self, authzr, kind):
        cls = {"http-01": self.challenges.HTTP01,
               "tls-alpn-01": self.challenges.TLSALPN01}[kind]
        for cb in authzr.body.challenges:
            if isinstance(cb.chall, cls):
                return cb
        raise Fail("Pebble offered no %s for %s" % (kind, authzr.body.identifier.value))

    def answer(self, cb):
        self.acme.answer_challenge(cb, cb.chall.response(self.key))

    def settle(self, authzr, timeout=40):
        """Polls an authorization until it leaves pending/processing."""
        end = time.monotonic() + timeout
        while True:
            authzr, _ = self.acme.poll(authzr)
            st = authzr.body.status.name
            if st not in ("pending", "processing"):
                return authzr
            if time.monotonic() > end:
                raise Fail("authorization for %s still %s after %ds" % (
                    authzr.body.identifier.value, st, timeout))
            time.sleep(0.25)

    def finalize(self, orderr, timeout=90):
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        return self.acme.poll_and_finalize(orderr, deadline)


BURST_CLIENTS = 6
BURST_PER_CLIENT = 10           # 60 names; 2 orders of 5 per client


@case("python3-acme burst", "http-01 + tls-alpn-01 mixed, 60 names, 6 API clients")
def case_burst():
    t_start = time.monotonic()
    # One ACME account and one API client per burst client, in parallel.
    with concurrent.futures.ThreadPoolExecutor(BURST_CLIENTS) as ex:
        accounts = list(ex.map(lambda _: AcmeAccount(), range(BURST_CLIENTS)))

    plan = []                   # (client index, [names]) per order
    for c in range(BURST_CLIENTS):
        names = ["n%d.b%d.burst.test" % (i, c) for i in range(BURST_PER_CLIENT)]
        plan += [(c, names[:5]), (c, names[5:])]

    def new_order(item):
        c, names = item
        return accounts[c].order(names)

    with concurrent.futures.ThreadPoolExecutor(len(plan)) as ex:
        orders = list(ex.map(new_order, plan))

    # Every challenge of every order, kinds alternating, and how to push it.
    pushes = []
    k = 0
    for (c, names), orderr in zip(plan, orders):
        for authzr in orderr.authorizations:
            name = authzr.body.identifier.value
            kind = ("http-01", "tls-alpn-01")[k % 2]
            form = k % 3            # vary the body form
            k += 1
            cb = accounts[c].challenge(authzr, kind)
            ka = cb.chall.key_authorization(accounts[c].key)
            if kind == "http-01":
                token = cb.chall.encode("token")
                if form == 0:
                    req = ("PUT", "/v1/http-01/%s?identifier=%s" % (token, name), ka)
                else:
                    req = ("PUT", "/v1/http-01/" + token,
                           {"key_authorization": ka, "identifier": name, "ttl": 300})
            else:
                if form == 0:
                    req = ("PUT", "/v1/tls-alpn-01/" + name, ka)
                elif form == 1:
                    req = ("PUT", "/v1/tls-alpn-01/" + name,
                           {"digest": sha256_hex(ka), "ttl": 300})
                else:
                    req = ("PUT", "/v1/tls-alpn-01/" + name,
                           {"key_authorization": ka, "ttl": 300})
            pushes.append((c, name, kind, cb, req))
    check(len(pushes) >= 50, "only %d challenges in the burst" % len(pushes))

    # All pushed at once: one thread per push, released together.
    gate = threading.Barrier(len(pushes))

    def push(p):
        c, name, kind, cb, (method, path, body) = p
        gate.wait(30)
        return api(method, path, TOKENS["burst%d" % c], body)

    t_push = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(pushes)) as ex:
        answers = list(ex.map(push, pushes))
    push_s = time.monotonic() - t_push
    bad = [(p[1], p[2], st, body) for p, (st, body) in zip(pushes, answers) if st != 201]
    check(not bad, "burst pushes refused: %s" % bad[:5])

    # Tell the CA, each client for its own challenges, all clients at once.
    def answer_all(c):
        for p in pushes:
            if p[0] == c:
                accounts[c].answer(p[3])

    with concurrent.futures.ThreadPoolExecutor(BURST_CLIENTS) as ex:
        list(ex.map(answer_all, range(BURST_CLIENTS)))

    def finish(i):
        c, names = plan[i]
        try:
            return accounts[c].finalize(orders[i]).fullchain_pem.encode()
        except Exception as e:  # noqa: BLE001
            # Which authorization failed and why, from the CA.
            why = []
            for a in orders[i].authorizations:
                a2, _ = accounts[c].acme.poll(a)
                for cb in a2.body.challenges:
                    if cb.error:
                        why.append("%s %s: %s" % (a2.body.identifier.value,
                                                  cb.chall.typ, cb.error))
            raise Fail("order %s failed: %r %s" % (names, e, why))

    with concurrent.futures.ThreadPoolExecutor(len(plan)) as ex:
        chains = list(ex.map(finish, range(len(plan))))
    for (c, names), chain in zip(plan, chains):
        verify_chain("burst %s" % names[0], chain, names)
    check_answered("http-01", [p[1] for p in pushes if p[2] == "http-01"])
    check_answered("tls-alpn-01", [p[1] for p in pushes if p[2] == "tls-alpn-01"])
    return ("%d orders valid, %d names (%d http-01, %d tls-alpn-01), all %d pushes "
            "at once took %.2fs, whole burst %.1fs; every chain verified" % (
                len(plan), len(pushes), sum(p[2] == "http-01" for p in pushes),
                sum(p[2] == "tls-alpn-01" for p in pushes), len(pushes), push_s,
                time.monotonic() - t_start))


def hook(script, args, env, timeout=60):
    """Runs a hook script by hand; returns (rc, stdout, stderr)."""
    return PROCS.run_capture("hook " + script, [os.path.join(HOOKS, script)] + list(args),
                             env=env, timeout=timeout)


def expect_invalid(acct, authzr, cb, want_error=None):
    acct.answer(cb)
    a = acct.settle(authzr)
    st = a.body.status.name
    check(st == "invalid", "the CA says %s for %s; want invalid" % (
        st, a.body.identifier.value))
    errs = [str(c.error) for c in a.body.challenges if c.error]
    if want_error:
        check(any(want_error in e for e in errs),
              "CA error %s does not mention %r" % (errs, want_error))
    return (errs[0] if errs else "no error detail").replace("\n", " ")[:160]


def neg_setup(kind, name):
    acct = AcmeAccount()
    orderr = acct.order([name])
    authzr = orderr.authorizations[0]
    cb = acct.challenge(authzr, kind)
    return acct, authzr, cb, cb.chall.key_authorization(acct.key), cb.chall.encode("token")


@case("negative", "out of scope, http-01 via certbot-auth.sh: API 403, CA invalid")
def case_neg_scope_http():
    name = "x.outside.test"
    acct, authzr, cb, ka, token = neg_setup("http-01", name)
    env = client_env({"ACME_EDGE_API": API_URL, "ACME_EDGE_TOKEN": TOKENS["certbot"],
                      "CERTBOT_DOMAIN": name, "CERTBOT_TOKEN": token,
                      "CERTBOT_VALIDATION": ka})
    rc, out, err = hook("certbot-auth.sh", [], env)
    check(rc != 0, "certbot-auth.sh exited 0 for a name outside its client's scope")
    check("HTTP 403" in err and '"detail"' in err,
          "certbot-auth.sh did not show the API's 403 JSON error: %r" % err)
    check(TOKENS["certbot"] not in err + out, "certbot-auth.sh printed the token")
    st, body = api("PUT", "/v1/http-01/%s?identifier=%s" % (token, name),
                   TOKENS["certbot"], ka)
    check(st == 403, "API answered %d to an out-of-scope PUT: %s" % (st, body))
    why = expect_invalid(acct, authzr, cb)
    return "hook exit %d: %s; CA: invalid (%s)" % (rc, err.strip()[:200], why)


@case("negative", "out of scope, tls-alpn-01 via dehydrated.sh: API 403, CA invalid")
def case_neg_scope_alpn():
    name = "y.outside.test"
    acct, authzr, cb, ka, token = neg_setup("tls-alpn-01", name)
    digest = sha256_hex(ka)
    colon = ":".join(digest[i:i + 2] for i in range(0, 64, 2))
    rc, out, err = hook("dehydrated.sh", ["deploy_challenge", name, token, colon],
                        client_env({"ACME_EDGE_HOOK_CONFIG": HOOK_CONF_DEHYDRATED,
                                    "CHALLENGETYPE": "tls-alpn-01"}))
    check(rc != 0, "dehydrated.sh exited 0 for a name outside its client's scope")
    check("HTTP 403" in err and '"detail"' in err,
          "dehydrated.sh did not show the API's 403 JSON error: %r" % err)
    check(TOKENS["dehydrated"] not in err + out, "dehydrated.sh printed the token")
    why = expect_invalid(acct, authzr, cb)
    return "hook exit %d: %s; CA: invalid (%s)" % (rc, err.strip()[:200], why)


def wrong_ka(ka):
    token, _ = ka.split(".", 1)
    return token + "." + b64url(32)


@case("negative", "wrong key authorization, http-01: CA rejects")
def case_neg_wrong_http():
    name = "wrong-http.neg.test"
    acct, authzr, cb, ka, token = neg_setup("http-01", name)
    st, body = api("PUT", "/v1/http-01/" + token, TOKENS["neg"],
                   {"key_authorization": wrong_ka(ka), "identifier": name})
    check(st == 201, "PUT of a well-formed (wrong) key authorization: %d %s" % (st, body))
    why = expect_invalid(acct, authzr, cb)
    # The troubleshooting record: the CA reached us and we answered.
    st, body = api("GET", "/v1/challenges", TOKENS["neg"])
    hits = [c.get("last_hit") for c in json.loads(body)["challenges"] if c.get("token") == token]
    check(hits and hits[0] and hits[0].get("outcome") == "answered" and
          hits[0].get("peer", "").startswith("127.0.0.1"),
          "GET /v1/challenges has no answered last_hit from 127.0.0.1: %s" % hits)
    api("DELETE", "/v1/http-01/" + token, TOKENS["neg"])
    return "CA: invalid (%s); last_hit %s" % (why, json.dumps(hits[0]))


@case("negative", "wrong key authorization, tls-alpn-01 digest: CA rejects")
def case_neg_wrong_alpn():
    name = "wrong-alpn.neg.test"
    acct, authzr, cb, ka, token = neg_setup("tls-alpn-01", name)
    st, body = api("PUT", "/v1/tls-alpn-01/" + name, TOKENS["neg"],
                   {"digest": sha256_hex(wrong_ka(ka))})
    check(st == 201, "PUT of a wrong digest: %d %s" % (st, body))
    why = expect_invalid(acct, authzr, cb)
    api("DELETE", "/v1/tls-alpn-01/" + name, TOKENS["neg"])
    return "CA: invalid (%s)" % why


@case("negative", "deleted challenge, http-01: not answered")
def case_neg_deleted_http():
    name = "deleted-http.neg.test"
    acct, authzr, cb, ka, token = neg_setup("http-01", name)
    path = "/v1/http-01/%s?identifier=%s" % (token, name)
    st, body = api("PUT", path, TOKENS["neg"], ka)
    check(st == 201, "PUT: %d %s" % (st, body))
    st, body = api("DELETE", "/v1/http-01/" + token, TOKENS["neg"])
    check(st == 204, "DELETE: %d %s" % (st, body))
    why = expect_invalid(acct, authzr, cb)
    # Miss lines are rate-limited per worker (20, then 5/s): accept a
    # suppression note in place of the line.
    text = gw_log()
    seen = re.search(r"proxy: http-01 missed: client 127\.0\.0\.1[^\n]*key %s" % re.escape(token),
                     text)
    check(seen or "similar lines suppressed" in text,
          "no 'http-01 missed' log line for the deleted token")
    return "CA: invalid (%s); gateway logged 'missed'" % why


@case("negative", "deleted challenge, tls-alpn-01: not answered")
def case_neg_deleted_alpn():
    name = "deleted-alpn.neg.test"
    acct, authzr, cb, ka, token = neg_setup("tls-alpn-01", name)
    st, body = api("PUT", "/v1/tls-alpn-01/" + name, TOKENS["neg"], ka)
    check(st == 201, "PUT: %d %s" % (st, body))
    st, body = api("DELETE", "/v1/tls-alpn-01/" + name, TOKENS["neg"])
    check(st == 204, "DELETE: %d %s" % (st, body))
    return "CA: invalid (%s)" % expect_invalid(acct, authzr, cb)


@case("negative", "expired challenge (ttl=1), http-01: not answered")
def case_neg_expired_http():
    name = "expired-http.neg.test"
    acct, authzr, cb, ka, token = neg_setup("http-01", name)
    st, body = api("PUT", "/v1/http-01/" + token, TOKENS["neg"],
                   {"key_authorization": ka, "identifier": name, "ttl": 1})
    check(st == 201, "PUT ttl=1: %d %s" % (st, body))
    time.sleep(2.2)
    return "CA: invalid (%s)" % expect_invalid(acct, authzr, cb)


@case("negative", "expired challenge (ttl=1), tls-alpn-01: not answered")
def case_neg_expired_alpn():
    name = "expired-alpn.neg.test"
    acct, authzr, cb, ka, token = neg_setup("tls-alpn-01", name)
    st, body = api("PUT", "/v1/tls-alpn-01/" + name, TOKENS["neg"],
                   {"key_authorization": ka, "ttl": 1})
    check(st == 201, "PUT ttl=1: %d %s" % (st, body))
    time.sleep(2.2)
    return "CA: invalid (%s)" % expect_invalid(acct, authzr, cb)


@case("hooks", "config file, errors, silence, token never printed")
def case_hooks():
    notes = []
    kt, kv = "T" * 43, "T" * 43 + "." + "U" * 43
    base = {"CERTBOT_DOMAIN": "h.certbot.test", "CERTBOT_TOKEN": kt,
            "CERTBOT_VALIDATION": kv, "ACME_EDGE_API": API_URL}
    # 1. A world-readable config file is refused, naming the file, not the token.
    conf = os.path.join(WORK, "hook-world.conf")
    with open(conf, "w") as f:
        f.write("ACME_EDGE_TOKEN=%s\n" % TOKENS["certbot"])
    os.chmod(conf, 0o644)
    rc, out, err = hook("certbot-auth.sh", [], client_env(dict(base, ACME_EDGE_HOOK_CONFIG=conf)))
    check(rc != 0 and "world-readable" in err and TOKENS["certbot"] not in out + err,
          "world-readable config: rc %d, %r" % (rc, err))
    # 2. The same file at 0600 works, silently, and the cleanup hook too.
    os.chmod(conf, 0o600)
    env = client_env(dict(base, ACME_EDGE_HOOK_CONFIG=conf))
    rc, out, err = hook("certbot-auth.sh", [], env)
    check(rc == 0 and out == "" and err == "", "0600 config: rc %d out %r err %r" % (rc, out, err))
    rc, out, err = hook("certbot-cleanup.sh", [], env)
    check(rc == 0 and out == "" and err == "", "cleanup: rc %d out %r err %r" % (rc, out, err))
    rc, out, err = hook("certbot-cleanup.sh", [], env)
    check(rc == 0 and err == "", "cleanup of an absent entry: rc %d err %r" % (rc, err))
    notes.append("0644 config refused, 0600 config used; success silent")
    # 3. A wrong token: 401 with the API's JSON on stderr, the token not shown.
    bad = "wrong" + b64url(20)
    rc, out, err = hook("certbot-auth.sh", [], client_env(dict(base, ACME_EDGE_TOKEN=bad)))
    check(rc != 0 and "HTTP 401" in err and '"error"' in err and bad not in out + err,
          "wrong token: rc %d %r" % (rc, err))
    notes.append("401: " + err.strip()[:120])
    # 4. An explicitly named config that does not exist is an error.
    rc, out, err = hook("certbot-auth.sh", [], client_env(dict(
        base, ACME_EDGE_TOKEN=TOKENS["certbot"],
        ACME_EDGE_HOOK_CONFIG=os.path.join(WORK, "no-such.conf"))))
    check(rc != 0 and "does not exist" in err, "missing config: rc %d %r" % (rc, err))
    # 4b. No token at all.
    rc, out, err = hook("certbot-auth.sh", [], client_env(base))
    check(rc != 0 and "no token" in err, "no token: rc %d %r" % (rc, err))
    # 5. Bad input is caught by the API with its detail.
    rc, out, err = hook("certbot-auth.sh", [], client_env(dict(
        base, ACME_EDGE_TOKEN=TOKENS["certbot"], CERTBOT_VALIDATION="not-a-keyauth")))
    check(rc != 0 and "HTTP 400" in err, "bad key authorization: rc %d %r" % (rc, err))
    # 6. dehydrated: other events exit 0 with no output; bad arity is loud.
    for ev in (["startup_hook"], ["deploy_cert", "a", "b", "c", "d", "e", "f"],
               ["generate_csr", "a", "b", "c"],
               ["this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_"
                "unknown_hooks_in_your_script"], ["invalid_challenge", "a", "b"],
               ["exit_hook"], []):
        rc, out, err = hook("dehydrated.sh", ev, client_env())
        check(rc == 0 and out == "" and err == "", "dehydrated.sh %s: rc %d %r %r" % (
            ev[:1], rc, out, err))
    rc, out, err = hook("dehydrated.sh", ["deploy_challenge", "a.dehydrated.test", kt],
                        client_env({"ACME_EDGE_HOOK_CONFIG": HOOK_CONF_DEHYDRATED}))
    check(rc != 0 and "triples" in err, "dehydrated.sh bad arity: rc %d %r" % (rc, err))
    rc, out, err = hook("dehydrated.sh", ["deploy_challenge", "a.dehydrated.test", kt, "Zm9v"],
                        client_env({"ACME_EDGE_HOOK_CONFIG": HOOK_CONF_DEHYDRATED,
                                    "CHALLENGETYPE": "dns-01"}))
    check(rc != 0 and "dns-01" in err, "dehydrated.sh dns-01: rc %d %r" % (rc, err))
    notes.append("dehydrated: other events silent exit 0, dns-01 refused")
    # 7. The API unreachable: curl's error, non-zero.
    closed = free_port()
    rc, out, err = hook("certbot-cleanup.sh", [], client_env(dict(
        base, ACME_EDGE_TOKEN=TOKENS["certbot"], ACME_EDGE_API="http://127.0.0.1:%d" % closed)))
    check(rc != 0 and "curl failed" in err, "API down: rc %d %r" % (rc, err))
    notes.append("API down: " + err.strip()[-80:])
    return "; ".join(notes)


# ---- setup and the run ------------------------------------------------------

def start_pebble(dns_port, cts_mgmt, port, mgmt, key, pem, http_port, tls_port,
                 default_ipv4="127.0.0.1"):
    """pebble-challtestsrv as DNS only (loopback, every name ->
    default_ipv4 unless told otherwise, no AAAA) and Pebble validating for
    real against http_port and tls_port, its listener on key/pem. Returns
    both processes."""
    cts_log = open(os.path.join(WORK, "challtestsrv.log"), "wb")
    cts = PROCS.spawn("pebble-challtestsrv", [
        "pebble-challtestsrv", "-dns01", "127.0.0.1:%d" % dns_port, "-http01", "",
        "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:%d" % cts_mgmt,
        "-defaultIPv4", default_ipv4, "-defaultIPv6", ""], out=cts_log)
    pcfg = os.path.join(WORK, "pebble.json")
    with open(pcfg, "w") as f:
        json.dump({"pebble": {
            "listenAddress": "127.0.0.1:%d" % port,
            "managementListenAddress": "127.0.0.1:%d" % mgmt,
            "certificate": pem, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f)
    penv = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
    penv.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_AUTHZREUSE="0", PEBBLE_WFE_NONCEREJECT="0")
    pebble_log = open(os.path.join(WORK, "pebble.log"), "wb")
    pebble = PROCS.spawn("pebble", ["pebble", "-config", pcfg, "-dnsserver",
                                    "127.0.0.1:%d" % dns_port], env=penv, out=pebble_log)
    return cts, pebble


def pebble_root(pebble, port, mgmt, dir_url):
    """Waits for Pebble's directory and fetches its issuing root (CA_PEM
    trusts its listener); returns the root's path. Fails if the VA is off."""
    wait_port(port, pebble, "pebble")
    wait_port(mgmt, pebble, "pebble management")
    ctx = ssl.create_default_context(cafile=CA_PEM)
    path = os.path.join(WORK, "pebble-root.pem")
    for attempt in range(50):
        try:
            with urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % mgmt,
                                        context=ctx, timeout=5) as r:
                root = r.read()
            with urllib.request.urlopen(dir_url, context=ctx, timeout=5) as r:
                json.loads(r.read())
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise Fail("Pebble does not serve its directory and root")
    with open(path, "wb") as f:
        f.write(root)
    with open(os.path.join(WORK, "pebble.log"), "rb") as f:
        check(b"Disabling VA" not in f.read(), "Pebble runs with the VA disabled")
    return path


def write_gateway_conf(path):
    clients = {
        "certbot": "*.certbot.test",
        "dehydrated": "*.dehydrated.test",
        "neg": "*.neg.test",
    }
    for c in range(BURST_CLIENTS):
        clients["burst%d" % c] = "*.b%d.burst.test" % c
    sections = [("store", {"path": STORE_PATH, "capacity": 512}),
                ("api", {"listen": "127.0.0.1:%d" % API_PORT, "default_ttl": "10m",
                         "max_ttl": "1h", "timeout": "10s", "sweep_interval": "1s"})]
    for name, idents in clients.items():
        TOKENS[name] = b64url(32)
        sections.append(("client " + name, {"token_sha256": sha256_hex(TOKENS[name]),
                                            "identifiers": idents,
                                            "cidrs": "127.0.0.0/8"}))
    sections += [
        ("proxy", {"http": "127.0.0.1:%d" % GW_HTTP, "https": "127.0.0.1:%d" % GW_HTTPS,
                   "workers": 2, "http_miss": "forward", "tls_miss": "forward",
                   "peek_timeout": "10s", "connect_timeout": "5s", "idle_timeout": "30s",
                   "grace": "2s"}),
        ("route default", {"http": "127.0.0.1:%d" % UP_HTTP,
                           "https": "127.0.0.1:%d" % UP_HTTPS, "proxy_protocol": "off"}),
        # lego cannot push: its own listeners sit behind the gateway.
        ("route lego", {"names": "*.lego.test", "http": "127.0.0.1:%d" % LEGO_HTTP,
                        "https": "127.0.0.1:%d" % LEGO_TLS}),
        ("log", {"level": "info"})]
    with open(path, "w") as f:
        f.write(conf_text(sections))
    os.chmod(path, 0o600)


def main():
    global WORK, CA_PEM, PEBBLE_ROOT, DIR_URL, API_URL, API_PORT, GW_HTTP, GW_HTTPS
    global UP_HTTP, UP_HTTPS, LEGO_HTTP, LEGO_TLS, STORE_PATH, TOKENS, HOOK_CONF_DEHYDRATED
    global EMPTY_HOOK_CONF, WEBROOT
    for tool in ("pebble", "pebble-challtestsrv", "certbot", "dehydrated", "lego", "curl",
                 "openssl", "setpriv"):
        check(shutil.which(tool), "%s is not installed (deploy/install-deps.sh --test)" % tool)
    check(os.access(ACME_EDGE, os.X_OK), "no acme-edge binary at %s (set ACME_EDGE)" % ACME_EDGE)
    try:
        acme_modules()      # python3-acme present, or fail now
    except ImportError as e:
        raise Fail("python3-acme is missing for /usr/bin/python3 (%s): "
                   "deploy/install-deps.sh --test" % e)

    WORK = tempfile.mkdtemp(prefix="acme-edge-e2e-")
    os.chmod(WORK, 0o700)
    TOKENS = {}
    (DNS_PORT, CTS_MGMT, PEBBLE_PORT, PEBBLE_MGMT, API_PORT, GW_HTTP, GW_HTTPS,
     UP_HTTP, UP_HTTPS, LEGO_HTTP, LEGO_TLS) = [free_port() for _ in range(11)]
    STORE_PATH = store_path("e2e")
    API_URL = "http://127.0.0.1:%d" % API_PORT
    DIR_URL = "https://127.0.0.1:%d/dir" % PEBBLE_PORT
    upstreams = ()
    traffic = None
    ok = False
    try:
        # Throwaway CA; leaves for Pebble's listener and the upstream.
        ca_key, CA_PEM = make_ca(WORK)
        pb_key, pb_pem = make_leaf(WORK, "pebble", ca_key, CA_PEM,
                                   "DNS:localhost,IP:127.0.0.1")
        up_key, up_pem = make_leaf(WORK, "upstream", ca_key, CA_PEM, "DNS:" + UPSTREAM_NAME)
        WEBROOT = os.path.join(WORK, "upstream-webroot")
        os.makedirs(WEBROOT)
        upstreams = start_upstreams(UP_HTTP, UP_HTTPS, up_key, up_pem, WEBROOT)
        with open(up_pem, "rb") as f:
            up_der = ssl.PEM_cert_to_DER_cert(f.read().decode())

        cts, pebble = start_pebble(DNS_PORT, CTS_MGMT, PEBBLE_PORT, PEBBLE_MGMT, pb_key,
                                   pb_pem, GW_HTTP, GW_HTTPS)

        # The gateway.
        conf = os.path.join(WORK, "acme-edge.conf")
        write_gateway_conf(conf)
        EMPTY_HOOK_CONF = os.path.join(WORK, "hook-empty.conf")
        with open(EMPTY_HOOK_CONF, "w") as f:
            f.write("# nothing: settings come from the environment\n")
        os.chmod(EMPTY_HOOK_CONF, 0o600)
        HOOK_CONF_DEHYDRATED = os.path.join(WORK, "hook-dehydrated.conf")
        with open(HOOK_CONF_DEHYDRATED, "w") as f:
            f.write("# acme-edge hook config for dehydrated\nACME_EDGE_API=\"%s\"\n"
                    "ACME_EDGE_TOKEN='%s'\nACME_EDGE_TTL=600\n" % (API_URL, TOKENS["dehydrated"]))
        os.chmod(HOOK_CONF_DEHYDRATED, 0o600)
        check_out = subprocess.run([ACME_EDGE, "check", "-c", conf], capture_output=True,
                                   timeout=30)
        check(check_out.returncode == 0, "acme-edge check: %s" % (
            check_out.stdout + check_out.stderr).decode(errors="replace"))
        gw_out = open(os.path.join(WORK, "acme-edge.log"), "wb")
        gw = PROCS.spawn("acme-edge", [ACME_EDGE, "run", "-c", conf], out=gw_out)

        wait_port(CTS_MGMT, cts, "pebble-challtestsrv")
        wait_port(API_PORT, gw, "acme-edge api")
        wait_port(GW_HTTP, gw, "acme-edge proxy (http)")
        wait_port(GW_HTTPS, gw, "acme-edge proxy (https)")
        PEBBLE_ROOT = pebble_root(pebble, PEBBLE_PORT, PEBBLE_MGMT, DIR_URL)
        log("up: pebble %s, gateway http %d https %d, api %d, upstream %d/%d, work %s" % (
            DIR_URL, GW_HTTP, GW_HTTPS, API_PORT, UP_HTTP, UP_HTTPS, WORK))

        traffic = Traffic(GW_HTTP, GW_HTTPS, CA_PEM, up_der)
        traffic.start()

        # The cases. Each group is sequential inside; groups run in parallel.
        groups = [
            [case_certbot],
            [case_dehydrated_alpn, case_dehydrated_http],
            [case_lego_http], [case_lego_tls], [case_lego_webroot, case_lego_api],
            [case_burst],
            [case_neg_scope_http, case_neg_wrong_http, case_neg_deleted_http,
             case_neg_expired_http],
            [case_neg_scope_alpn, case_neg_wrong_alpn, case_neg_deleted_alpn,
             case_neg_expired_alpn],
            [case_hooks],
        ]
        if SERIAL:
            for g in groups:
                for fn in g:
                    fn()
        else:
            threads = [threading.Thread(target=lambda g=g: [fn() for fn in g], daemon=True)
                       for g in groups]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        # Traffic: a last stretch after the cases, then the count.
        time.sleep(0.5)
        traffic.stop_ev.set()
        traffic.join(30)
        t_ok = traffic.ok["http"] + traffic.ok["https"]
        if traffic.failures or not traffic.ok["http"] or not traffic.ok["https"]:
            record("traffic", "HTTP + TLS relay to the upstream", "FAIL",
                   "%d ok (%s), %d failures: %s" % (t_ok, traffic.ok, len(traffic.failures),
                                                    traffic.failures[:5]), 0)
        else:
            record("traffic", "HTTP + TLS relay to the upstream", "PASS",
                   "%d http (2 requests each, keep-alive) and %d TLS connections, 0 failures;"
                   " TLS unterminated (upstream's own certificate seen)" % (
                       traffic.ok["http"], traffic.ok["https"]), 0)

        # The gateway stops cleanly, with nothing left behind.
        rc = PROCS.stop(gw, timeout=15)
        text = gw_log()
        marks = sanitizer_marks(text, SANITIZER_MARKS)
        if rc != 0 or marks or gw.leftovers:
            record("acme-edge", "clean stop on SIGTERM", "FAIL",
                   "exit %r, sanitizer marks %s, processes left in its group: %s" % (
                       rc, marks, gw.leftovers), 0)
        else:
            record("acme-edge", "clean stop on SIGTERM", "PASS", "exit 0, no sanitizer report", 0)
        ok = all(r[2] != "FAIL" for r in RESULTS)
    except (Fail, AssertionError) as e:     # AssertionError: a harness check
        log("SETUP FAILED: %s" % e)
    except BaseException:
        log("ABORTED:\n" + traceback.format_exc())
    finally:
        if traffic is not None:
            traffic.stop_ev.set()
        PROCS.stop_all()
        for s in upstreams:
            s.shutdown()
            s.server_close()
        remove_store(STORE_PATH)
    summary(ok)
    if not ok:
        dump_logs()
    if KEEP or not ok:
        log("work dir kept: %s" % WORK)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0 if ok else 1


def summary(ok):
    print("\n==== e2e summary ====")
    order = ["certbot", "dehydrated", "lego", "python3-acme burst", "negative", "hooks",
             "traffic", "acme-edge"]
    rows = sorted(RESULTS, key=lambda r: (order.index(r[0]) if r[0] in order else 99, r[1]))
    for client, kind, status, detail, secs in rows:
        print("%-4s  %-20s %-68s %6.1fs" % (status, client, kind, secs))
        if status != "PASS" or os.environ.get("E2E_VERBOSE"):
            for line in detail.splitlines()[:40]:
                print("        " + line)
    print("wall time: %.1fs; %s" % (time.monotonic() - T0, "PASS" if ok else "FAIL"))
    sys.stdout.flush()


def dump_logs():
    if not WORK:
        return
    for name in ("acme-edge.log", "pebble.log"):
        path = os.path.join(WORK, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read().decode(errors="replace")
            print("\n---- %s (last 150 lines) ----" % name)
            print("\n".join(data.splitlines()[-150:]))


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def run(main_fn, budget):
    """Runs main_fn within budget seconds, every process stopped on every
    way out (a signal, the budget); exits with its status."""
    def on_alarm(signum, frame):
        raise Fail("time budget of %ds exhausted" % budget)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(budget))
    try:
        rc = main_fn()
    except Fail as e:
        log("CANNOT RUN: %s" % e)
        rc = 1
    finally:
        signal.alarm(0)
        PROCS.stop_all()
    sys.exit(rc)


if __name__ == "__main__":
    run(main, BUDGET)
