#!/usr/bin/python3
"""
The I/O backend choice, with io_uring made unavailable for real.

tests/tools/no_uring (NO_URING) installs a seccomp filter that answers
io_uring_setup (and io_uring_enter, io_uring_register) with ENOSYS or EPERM,
as Docker's and containerd's default profiles do, then execs acme-edge.
Under it, `io_backend = auto` must fall back to epoll with one log line
naming the cause, export acmeedge_io_backend_info{backend="epoll"}, and
serve both challenge kinds and both relays; `io_backend = io_uring` must
refuse to start with one line naming the cause. Without the filter, auto
must choose io_uring (where the kernel allows it).

Every test starts `acme-edge run -c CONF` (or `acme-edge proxy`) in its own
session on free loopback ports, with a store under /dev/shm unique to the
run, and kills what it started in tearDown (SIGTERM, then SIGKILL to the
session). Upstreams are threads of this process: an HTTP server and a TLS
server with a throw-away certificate.

Python standard library only, plus the `openssl` and `curl` CLIs.
Environment: ACME_EDGE (the binary), NO_URING (the seccomp helper).
"""
import http.server
import json
import os
import re
import resource
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
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (ROOT, Gateway, b64url, client_ctx, conf_text, env_path,  # noqa: E402
                     free_port, kernel_release, keyauth, main, make_cert, new_token,
                     outcome_ok, recv_until, reply, sanitizer_marks, serve_in_thread,
                     sha256_hex, store_path)
ACME_EDGE = env_path("ACME_EDGE", "build/ep/acme-edge")
NO_URING = env_path("NO_URING", "build/ep/tests/no_uring")
SECCOMP_PROFILE = os.environ.get("SECCOMP_PROFILE")
PROFILE_JSON = os.path.join(ROOT, "deploy", "seccomp-io_uring.json")
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
URING_CALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")
# A response large enough that the relay turns bulk and splices.
BULK = 8 * 1024 * 1024
BULK_BODY = (bytes(range(256)) * (BULK // 256))[:BULK]
BEARER = b64url(32)
START_TIMEOUT = 20.0


def uring_disabled_sysctl():
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return -1


def expected_cause(err):
    """The cause uring.c's explain() gives for a filter answering err."""
    disabled = uring_disabled_sysctl()
    if err == "ENOSYS":
        return ("io_uring_setup: ENOSYS: the kernel lacks io_uring or a "
                "seccomp filter blocks it")
    if disabled > 0:
        return "io_uring_setup: EPERM: kernel.io_uring_disabled = %d" % disabled
    return ("io_uring_setup: EPERM: blocked by a seccomp filter or an LSM "
            "(kernel.io_uring_disabled = %d)" % disabled)


# ---- upstreams ---------------------------------------------------------------

class _HTTPUpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if self.path == "/bulk":
            reply(self, 200, BULK_BODY, ctype=None)
            return
        reply(self, 200, ("upstream saw %s %s" % (self.path, self.headers.get("Host"))).encode())

    def log_message(self, *args):
        pass


class TLSUpstream:
    """A TLS server that answers every line with 'tls upstream: LINE'."""

    def __init__(self, port, certfile, keyfile):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as t:
                buf = recv_until(t, b"\n")
                if b"\n" in buf:
                    t.sendall(b"tls upstream: " + buf.split(b"\n", 1)[0] + b"\n")
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(timeout=5)


# ---- the gateway ---------------------------------------------------------------

class BackendGateway(Gateway):
    """One acme-edge process (run or proxy), in its own session."""

    ready_timeout = START_TIMEOUT

    def __init__(self, tmpdir, backend, upstream_http, upstream_https, name="edge"):
        super().__init__(tmpdir, name, BEARER, store_path("it"))
        self.write_config(conf_text([
            ("store", {"path": self.store, "capacity": 16}),
            ("api", {"listen": "127.0.0.1:%d" % self.api_port,
                     "default_ttl": "10m", "max_ttl": "1h"}),
            ("client admin", {"token_sha256": sha256_hex(BEARER), "identifiers": "*"}),
            ("proxy", {"http": "127.0.0.1:%d" % self.http,
                       "https": "127.0.0.1:%d" % self.https,
                       "workers": 1, "io_backend": backend, "peek_timeout": "5s",
                       "connect_timeout": "3s", "grace": "2s"}),
            ("route default", {"http": "127.0.0.1:%d" % upstream_http,
                               "https": "127.0.0.1:%d" % upstream_https}),
            ("log", {"level": "info"})], "written by tests/integration/test_backend.py"))

    def start(self, cmd="run", no_uring=None, wrapper=None):
        argv = [ACME_EDGE, cmd, "-c", self.conf]
        env = {}
        if no_uring:
            argv = [NO_URING, no_uring] + argv
        if wrapper:
            argv = list(wrapper) + argv
            # LeakSanitizer stops the world with ptrace, which a seccomp
            # profile rightly refuses; the rest of ASan keeps working.
            env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=0"
        self.spawn(argv, env, new_session=True)

    def wait_exit(self, timeout=START_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("acme-edge still running after %.0fs:\n%s" %
                                 (timeout, self.log()))


class BackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("openssl", "curl"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s not installed" % tool)
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-backend-")
        up = make_cert(cls.tmp, "upstream.test", stem="up", days=1)
        cls.cert, cls.key = up["crt"], up["key"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.gateways = []
        self.up_http_port, self.up_tls_port = free_port(), free_port()
        self.up_http = http.server.ThreadingHTTPServer(("127.0.0.1", self.up_http_port),
                                                       _HTTPUpstreamHandler)
        serve_in_thread(self.up_http)
        self.up_tls = TLSUpstream(self.up_tls_port, self.cert, self.key)

    def tearDown(self):
        failed = not outcome_ok(self)
        for g in self.gateways:
            rc, log = g.finish()
            if failed:
                print("\n---- %s ----\n%s" % (g.log_path, log))
            self.assertEqual(sanitizer_marks(log), [], "sanitizer report in %s" % g.log_path)
            # A test skipped before starting its gateway has no exit status.
            if getattr(g, "expect_clean_exit", False) and g.proc is not None:
                self.assertEqual(rc, 0, "acme-edge exit status:\n" + log)
        self.up_http.shutdown()
        self.up_http.server_close()
        self.up_tls.close()

    def gateway(self, backend, name="edge"):
        g = BackendGateway(self.tmp, backend, self.up_http_port, self.up_tls_port,
                           name="%s-%s" % (self._testMethodName, name))
        self.gateways.append(g)
        return g

    # ---- what a working gateway does ----

    def check_serves(self, g, splice=True):
        # http-01, with curl, twice on one keep-alive connection.
        tok = new_token()
        ka = keyauth(tok)
        self.assertIn(g.api("PUT", "/v1/http-01/" + tok, ka)[0], (200, 201))
        url = "http://127.0.0.1:%d/.well-known/acme-challenge/%s" % (g.http, tok)
        p = subprocess.run(["curl", "-sS", "--max-time", "10", url, url],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), ka + ka)

        # acme-tls/1: the handshake selects acme-tls/1 for the stored name.
        name = "acme-%s.example.com" % uuid.uuid4().hex[:8]
        self.assertIn(g.api("PUT", "/v1/tls-alpn-01/" + name, ka)[0], (200, 201))
        p = subprocess.run(["openssl", "s_client", "-connect",
                            "127.0.0.1:%d" % g.https, "-alpn", "acme-tls/1",
                            "-servername", name],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertIn("ALPN protocol: acme-tls/1", out,
                      out + p.stderr.decode(errors="replace"))

        # HTTP relay to the upstream chosen by Host.
        p = subprocess.run(["curl", "-sS", "--max-time", "10", "-H",
                            "Host: app.example.com",
                            "http://127.0.0.1:%d/some/page" % g.http],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), "upstream saw /some/page app.example.com")

        # A bulk response: spliced, unless splice is refused (then copied).
        p = subprocess.run(["curl", "-sS", "--max-time", "30", "-H",
                            "Host: app.example.com",
                            "http://127.0.0.1:%d/bulk" % g.http],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_hex(p.stdout), sha256_hex(BULK_BODY))
        m = re.search(r"^acmeedge_proxy_spliced_bytes_total (\d+)", g.metrics_text(), re.M)
        self.assertIsNotNone(m, "no acmeedge_proxy_spliced_bytes_total")
        if splice:
            self.assertGreater(int(m.group(1)), 0, "the bulk response was not spliced")
        else:
            self.assertEqual(int(m.group(1)), 0)

        # TLS passthrough to the upstream chosen by SNI, end to end encrypted.
        with socket.create_connection(("127.0.0.1", g.https), timeout=10) as s:
            with client_ctx().wrap_socket(s, server_hostname="app.example.com") as t:
                t.sendall(b"hello through the gateway\n")
                buf = recv_until(t, b"\n")
                cert = t.getpeercert(binary_form=True)
        self.assertEqual(buf, b"tls upstream: hello through the gateway\n")
        with open(self.cert) as f:
            self.assertEqual(cert, ssl.PEM_cert_to_DER_cert(f.read()))

        # No trusted_proxies here, so the client's address is asked of the
        # kernel only when a challenge is logged: it must still be there.
        want = ["proxy: http-01 answered: client 127.0.0.1:",
                "proxy: tls-alpn-01 answered: client 127.0.0.1:"]
        deadline = time.monotonic() + 5
        while not all(w in g.log() for w in want) and time.monotonic() < deadline:
            time.sleep(0.1)
        for w in want:
            self.assertIn(w, g.log())

    def backend_lines(self, log):
        return [l for l in log.splitlines() if "proxy: io backend" in l]

    def check_fallback(self, err):
        g = self.gateway("auto")
        g.expect_clean_exit = True
        g.start(no_uring=err)
        g.wait_ready()
        lines = self.backend_lines(g.log())
        self.assertEqual(len(lines), 1, g.log())
        self.assertTrue(lines[0].endswith(
            "proxy: io backend epoll (io_uring unavailable: %s)" % expected_cause(err)),
            lines[0])
        self.assertIn("proxy: ready: 1 worker on epoll", g.log())
        self.assertIn('acmeedge_io_backend_info{backend="epoll"} 1', g.metrics_text())
        self.check_serves(g)

    def check_forced_refused(self, err):
        g = self.gateway("io_uring")
        g.start(cmd="proxy", no_uring=err)
        rc = g.wait_exit()
        self.assertNotEqual(rc, 0, g.log())
        log = g.log()
        cause = [l for l in log.splitlines() if expected_cause(err) in l]
        self.assertEqual(len(cause), 1, log)
        self.assertIn("io_backend = io_uring", cause[0])
        self.assertNotIn("io backend epoll", log)
        self.assertNotIn("proxy: ready", log)

    # ---- the tests ----

    def test_auto_falls_back_on_enosys(self):
        self.check_fallback("ENOSYS")

    def test_auto_falls_back_on_eperm(self):
        self.check_fallback("EPERM")

    def test_forced_io_uring_refuses_on_enosys(self):
        self.check_forced_refused("ENOSYS")

    def test_forced_io_uring_refuses_on_eperm(self):
        self.check_forced_refused("EPERM")

    def test_auto_without_filter_takes_io_uring(self):
        if uring_disabled_sysctl() > 0:
            self.skipTest("kernel.io_uring_disabled is set on this machine")
        g = self.gateway("auto")
        g.expect_clean_exit = True
        g.start()
        g.wait_ready()
        lines = self.backend_lines(g.log())
        self.assertEqual(len(lines), 1, g.log())
        self.assertTrue(lines[0].endswith("proxy: io backend io_uring"), lines[0])
        self.assertIn('acmeedge_io_backend_info{backend="io_uring"} 1', g.metrics_text())
        self.check_serves(g)

    def test_epoll_configured(self):
        g = self.gateway("epoll")
        g.expect_clean_exit = True
        g.start()
        g.wait_ready()
        lines = self.backend_lines(g.log())
        self.assertEqual(len(lines), 1, g.log())
        self.assertTrue(lines[0].endswith("proxy: io backend epoll (io_backend = epoll)"),
                        lines[0])
        self.assertIn('acmeedge_io_backend_info{backend="epoll"} 1', g.metrics_text())
        self.check_serves(g)


    # ---- descriptors ----

    def proxy_cpu_s(self, pid):
        """User and system CPU seconds the process has used so far."""
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def flood_cpu(self, g, pid, n, what):
        """n idle connections at once; the proxy's share of a core while
        they stay, then none left open."""
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", g.http))
                socks.append(s)
            time.sleep(0.5)
            t0, c0 = time.monotonic(), self.proxy_cpu_s(pid)
            time.sleep(2.0)
            share = (self.proxy_cpu_s(pid) - c0) / (time.monotonic() - t0)
        finally:
            for s in socks:
                s.close()
        self.assertLess(share, 0.25, "%s: the proxy used %.0f %% of a core while "
                        "%d connections waited" % (what, 100 * share, n))

    def challenge_answered(self, g, tok, ka, what, within=10.0):
        url = "http://127.0.0.1:%d/.well-known/acme-challenge/%s" % (g.http, tok)
        deadline = time.monotonic() + within
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    self.assertEqual(r.read().decode(), ka, what)
                    return
            except OSError as e:
                if time.monotonic() > deadline:
                    self.fail("%s: no challenge answered within %.0f s: %r" %
                              (what, within, e))
            time.sleep(0.1)

    def fd_table_size(self, pid):
        """Entries of the process's descriptor table (it only grows)."""
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"^FDSize:\s+(\d+)$", f.read(), re.M).group(1))

    def check_descriptor_budget(self, backend):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < min(hard, 4096):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        g = self.gateway(backend)
        g.expect_clean_exit = True
        g.start(wrapper=["prlimit", "--nofile=600:600", "--"])
        g.wait_ready()
        pid = int(re.search(r"run: started proxy \(pid (\d+)\)", g.log()).group(1))
        tok = new_token()
        ka = keyauth(tok)
        self.assertIn(g.api("PUT", "/v1/http-01/" + tok, ka)[0], (200, 201))
        # max_connections (8192 by default) is sized to the 600 descriptors
        # at start, so the cap makes room before accept runs out of them.
        self.assertRegex(g.log(), r"proxy: max_connections 8192 needs \d+ descriptors "
                                  r"per worker .*: max_connections \d+ per worker")
        # The descriptor table is grown to the budget before any worker
        # runs: growing it later would stop the accepting worker for an
        # RCU grace period at each doubling.
        self.assertGreaterEqual(self.fd_table_size(pid), 600)
        self.flood_cpu(g, pid, 1000, "descriptors budgeted")
        self.challenge_answered(g, tok, ka, "descriptors budgeted")
        # Descriptors taken away under it: accept fails and must back off.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (64, 64))
        self.flood_cpu(g, pid, 300, "out of descriptors")
        self.challenge_answered(g, tok, ka, "out of descriptors")

    def test_descriptor_budget_io_uring(self):
        if uring_disabled_sysctl() > 0:
            self.skipTest("kernel.io_uring_disabled is set on this machine")
        self.check_descriptor_budget("io_uring")

    def test_descriptor_budget_epoll(self):
        self.check_descriptor_budget("epoll")

    # ---- deploy/: the container's seccomp profile and runtime packages ----

    def profile_wrapper(self, without_uring, without=()):
        if not SECCOMP_PROFILE:
            self.skipTest("seccomp_profile not built (libseccomp-dev missing)")
        with open(PROFILE_JSON) as f:
            prof = json.load(f)
        # Without io_uring: what Docker's default profile does since Engine 25.
        drop = set(without) | (set(URING_CALLS) if without_uring else set())
        for rule in prof["syscalls"]:
            rule["names"] = [n for n in rule["names"] if n not in drop]
        path = os.path.join(self.tmp, "profile-%s.json" % self._testMethodName)
        with open(path, "w") as f:
            json.dump(prof, f)
        return [SECCOMP_PROFILE, path]

    def test_seccomp_profile_runs_io_uring(self):
        if uring_disabled_sysctl() > 0:
            self.skipTest("kernel.io_uring_disabled is set on this machine")
        g = self.gateway("auto")
        g.expect_clean_exit = True
        g.start(wrapper=self.profile_wrapper(without_uring=False))
        g.wait_ready()
        lines = self.backend_lines(g.log())
        self.assertEqual(len(lines), 1, g.log())
        self.assertTrue(lines[0].endswith("proxy: io backend io_uring"), lines[0])
        self.check_serves(g)
        # The profile lets the workers ask for their time slice.
        self.assertIn("workers run with a 100 us scheduler slice"
                      if kernel_release() >= (6, 12)
                      else "sched_slice_us = 100 not applied: this kernel", g.log())
        # A reload under the profile too; tearDown checks the clean stop.
        os.kill(g.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        self.check_serves(g)

    def test_profile_without_io_uring_falls_back(self):
        g = self.gateway("auto")
        g.expect_clean_exit = True
        g.start(wrapper=self.profile_wrapper(without_uring=True))
        g.wait_ready()
        lines = self.backend_lines(g.log())
        self.assertEqual(len(lines), 1, g.log())
        self.assertTrue(lines[0].endswith(
            "proxy: io backend epoll (io_uring unavailable: %s)" %
            expected_cause("EPERM")), lines[0])
        self.check_serves(g)

    def test_profile_without_splice_copies(self):
        g = self.gateway("auto")
        g.expect_clean_exit = True
        g.start(wrapper=self.profile_wrapper(without_uring=False, without=["splice"]))
        g.wait_ready()
        self.check_serves(g, splice=False)
        self.assertIn("proxy: splice: Operation not permitted: bulk relays copy", g.log())

    def test_dockerfile_ships_every_runtime_library(self):
        """The slim stage must install the package of every library the
        binary loads (or a package that depends on it)."""
        with open(DOCKERFILE) as f:
            text = f.read().replace("\\\n", " ")
        stages = text.split("FROM ")
        m = re.search(r"apt-get install -y --no-install-recommends\s+([^&]+)",
                      stages[-1])
        self.assertTrue(m, "no apt-get install in the last stage")
        listed = set(m.group(1).split())
        provided = set(listed) | {"libc6", "libgcc-s1"}
        for pkg in listed:
            p = subprocess.run(["apt-cache", "depends", "--recurse",
                                "--no-recommends", "--no-suggests",
                                "--no-conflicts", "--no-breaks", "--no-replaces",
                                "--no-enhances", pkg],
                               capture_output=True, text=True, timeout=60)
            for line in p.stdout.splitlines():
                line = line.strip()
                if line.startswith("Depends:") or line.startswith("PreDepends:"):
                    provided.add(line.split(":", 1)[1].strip().strip("<>"))
        out = subprocess.run(["ldd", ACME_EDGE], capture_output=True, text=True,
                             timeout=30).stdout
        libs = [l.split("=>")[1].split("(")[0].strip() for l in out.splitlines()
                if "=>" in l and "/" in l]
        self.assertTrue(libs, out)
        for lib in libs:
            real = os.path.realpath(lib)
            owner = None
            for cand in (real, "/usr" + real, real.replace("/usr", "", 1)):
                p = subprocess.run(["dpkg", "-S", cand], capture_output=True,
                                   text=True, timeout=30)
                if p.returncode == 0:
                    owner = p.stdout.split(":")[0]
                    break
            if owner is None or owner.startswith(("libasan", "libubsan")):
                continue    # a sanitizer build's runtime: never shipped
            self.assertIn(owner, provided,
                          "%s (from %s) is not installed by deploy/Dockerfile" %
                          (lib, owner))


if __name__ == "__main__":
    main()
