#!/usr/bin/python3
"""
What `acme-edge run` must hold against the machine it runs on: its
shared-memory files (the token store and the proxy statistics file) and
what other processes of the same machine may do to them, and how the
supervisor restarts its children.

Every test starts `acme-edge run -c CONF` in its own session on free
loopback ports, with a config written to a temporary directory and a store
under a directory of /dev/shm unique to the test, and kills what it started
when it ends (SIGTERM, then SIGKILL to the session). The tests run as root,
as CI runs them.

Python standard library only. Environment: ACME_EDGE (the binary).
"""
import base64
import contextlib
import glob
import hashlib
import http.client
import json
import mmap
import os
import pwd
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
from ports import free_port  # noqa: E402
ACME_EDGE = os.environ.get("ACME_EDGE") or os.path.join(ROOT, "build/release/acme-edge")
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
SANITIZED = "libasan" in subprocess.run(["ldd", ACME_EDGE], capture_output=True,
                                        text=True).stdout
RUN_ID = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
START_TIMEOUT = 20.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "BUG at ", "SUMMARY: ")
THUMB = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()

# The proxy statistics file's header (stats/pstats.c, struct pstats_hdr).
PSTATS_NWORKERS_OFF = 16


def b64token(n=32):
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Gateway:
    """One `acme-edge run`, in its own session, with its own config and log."""

    def __init__(self, tmpdir, name="edge", store=None, clients=None, extra=None,
                 make_dir=True):
        """store: a path of the test's choosing; by default the store goes in
        a directory of its own, made by the test (or, without make_dir, left
        for acme-edge to make)."""
        self.tmpdir = tmpdir
        self.name = name
        self.api_port, self.http_port, self.https_port = (free_port() for _ in range(3))
        self.upstream_port = free_port()      # nothing listens: challenges only
        self.own_dir = None
        if store is None:
            self.own_dir = "/dev/shm/acme-edge-local-%s-%s" % (RUN_ID, uuid.uuid4().hex[:8])
            if make_dir:
                os.mkdir(self.own_dir, 0o750)
            store = os.path.join(self.own_dir, "store")
        self.store = store
        self.clients = clients if clients is not None else {"admin": b64token()}
        self.extra = extra or {}
        self.conf = os.path.join(tmpdir, name + ".conf")
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self.logf = None
        self.write_config()

    def config_text(self, clients=None):
        clients = self.clients if clients is None else clients
        sections = {
            "store": {"path": self.store, "capacity": "16"},
            "api": {"listen": "127.0.0.1:%d" % self.api_port,
                    "default_ttl": "10m", "max_ttl": "1h"},
            "proxy": {"http": "127.0.0.1:%d" % self.http_port,
                      "https": "127.0.0.1:%d" % self.https_port,
                      "workers": "1", "peek_timeout": "5s",
                      "connect_timeout": "3s", "grace": "1s"},
            "route default": {"http": "127.0.0.1:%d" % self.upstream_port},
            "log": {"level": "info"},
        }
        for name, token in clients.items():
            sections["client %s" % name] = {"token_sha256": sha256_hex(token),
                                            "identifiers": "*"}
        for sect, keys in self.extra.items():
            sections.setdefault(sect, {}).update(keys)
        out = ["; written by tests/integration/test_local.py"]
        for sect, keys in sections.items():
            out += ["", "[%s]" % sect] + ["%s = %s" % kv for kv in keys.items()]
        return "\n".join(out) + "\n"

    def write_config(self, text=None):
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text() if text is None else text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.conf)

    def start(self, wrapper=(), user=None):
        """wrapper: a command to run acme-edge under; user: a uid to run it as
        (with that uid as its group and no other)."""
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        creds = {} if user is None else {"user": user, "group": user,
                                           "extra_groups": []}
        self.proc = subprocess.Popen(list(wrapper) + [ACME_EDGE, "run", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, **creds)

    def healthy(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" %
                                        self.api_port, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("acme-edge exited with %s:\n%s" %
                                     (self.proc.returncode, self.log()))
            if "proxy: ready:" in self.log() and self.healthy():
                return
            time.sleep(0.05)
        raise AssertionError("acme-edge not ready after %.0fs:\n%s" %
                             (timeout, self.log()))

    def wait_log(self, pattern, timeout=START_TIMEOUT, count=1):
        """Waits until pattern (a regex) matches count times in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.log())
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.05)
        raise AssertionError("no %r in the log after %.0fs:\n%s" %
                             (pattern, timeout, self.log()))

    def child_pid(self, part, nth=1):
        """The pid of the nth start of part ("api", "proxy") the log reports."""
        return int(self.wait_log(r"run: started %s \(pid (\d+)\)" % part,
                                 count=nth))

    def stop(self, timeout=10.0):
        """SIGTERM to run, then SIGKILL to what is left of its session;
        returns run's exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = "hung on SIGTERM, killed"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.logf.close()
        self.proc = self.logf = None
        return rc

    def log(self):
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")
        return ""

    def remove_store(self):
        """The test's directory, or the store's files in a shared one."""
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)
            return
        d, base = os.path.split(self.store)
        for f in glob.glob(os.path.join(d, glob.escape(base) + "*")):
            with contextlib.suppress(OSError):
                os.unlink(f)

    # ---- the API and the proxy ----

    def api(self, method, path, body=None, client="admin"):
        """(status, parsed JSON or None) of one API call."""
        headers = {}
        if client:
            headers["Authorization"] = "Bearer " + self.clients[client]
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path),
                                     data=body.encode() if body is not None else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def put_http01(self, token, client="admin"):
        """Stores a challenge for token; returns (status, key authorization)."""
        ka = "%s.%s" % (token, THUMB)
        status, _ = self.api("PUT", "/v1/http-01/%s" % token, ka, client=client)
        return status, ka

    def fetch_http01(self, token):
        """(status, body) of the proxy's answer on port 80's stand-in."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            c.request("GET", "/.well-known/acme-challenge/%s" % token,
                      headers={"Host": "www.example.com"})
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.api_port,
                                    timeout=10) as r:
            return r.read().decode()


API_USER, PROXY_USER = "acme-edge-test-api", "acme-edge-test-proxy"


def system_user(name):
    """The passwd entry of a system user, made (with its own group) when
    absent; left in place, as deploy/quickstart.sh leaves its users."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


def proc_ids(pid):
    """Uid, Gid, Groups, CapEff, CapPrm, NoNewPrivs of /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups", "NoNewPrivs"):
                out[key] = [int(v) for v in value.split()]
            elif key in ("CapEff", "CapPrm"):
                out[key] = [int(value, 16)]
    return out


class LocalTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-local-")
        os.chmod(self.tmp, 0o755)
        self.gateways = []
        self.addCleanup(self._stop_everything)

    def _stop_everything(self):
        problems = []
        for g in self.gateways:
            rc = g.stop()
            log = g.log()
            g.remove_store()
            for mark in SANITIZER_MARKS:
                if mark in log:
                    problems.append("%s log has %r" % (g.name, mark))
                    break
            # None: stopped by the test already, which checked the status
            if rc is not None and rc != 0 and not getattr(g, "expect_fail", False):
                problems.append("%s exited with %r (want 0 after SIGTERM)" % (g.name, rc))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems and self._outcome_ok():
            self.fail("; ".join(problems) + "\n" + "\n".join(g.log() for g in self.gateways))

    def _outcome_ok(self):
        outcome = getattr(self, "_outcome", None)
        errors = getattr(outcome, "errors", None)
        if errors is None:
            result = getattr(outcome, "result", None)
            errors = (getattr(result, "errors", []) + getattr(result, "failures", [])
                      if result else [])
        return not any(e[1] for e in errors if e and len(e) > 1)

    def gateway(self, **kw):
        g = Gateway(self.tmp, **kw)
        self.gateways.append(g)
        return g

    def started(self, **kw):
        g = self.gateway(**kw)
        g.start()
        g.wait_ready()
        return g

    # ---- the supervisor restarts children on the current config -----------

    def kill_api(self, g, nth):
        """kill -9 the API child `run` started nth, and wait for the next."""
        os.kill(g.child_pid("api", nth), signal.SIGKILL)
        g.child_pid("api", nth + 1)
        deadline = time.monotonic() + START_TIMEOUT
        while not g.healthy():
            self.assertLess(time.monotonic(), deadline, "the API did not come back:\n" + g.log())
            time.sleep(0.05)

    def test_restarted_api_keeps_a_revoked_client_revoked(self):
        g = self.started(clients={"admin": b64token(), "revoked": b64token()})
        self.assertEqual(g.put_http01(b64token(), client="revoked")[0], 201)
        # revoke it: the file without the client, then SIGHUP
        g.write_config(g.config_text(clients={"admin": g.clients["admin"]}))
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r"api: reloaded")
        self.assertEqual(g.put_http01(b64token(), client="revoked")[0], 401)
        # a crash of the API must not bring the client back
        self.kill_api(g, 1)
        self.assertEqual(g.put_http01(b64token(), client="revoked")[0], 401)
        self.assertEqual(g.put_http01(b64token())[0], 201)
        # a file that no longer loads: the last config that did, and why
        g.write_config(g.config_text(clients={"admin": g.clients["admin"]}) +
                       "[api]\nlisten = nowhere\n")
        self.kill_api(g, 2)
        self.assertRegex(g.log(), r"run: reload of %s failed" % re.escape(g.conf))
        self.assertIn("run: starting api on the last config of %s that loaded" % g.conf,
                      g.log())
        self.assertEqual(g.put_http01(b64token(), client="revoked")[0], 401)
        token = b64token()
        status, ka = g.put_http01(token)
        self.assertEqual(status, 201)
        self.assertEqual(g.fetch_http01(token), (200, ka))

    # ---- the supervisor itself ----------------------------------------------

    @unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
    @unittest.skipIf(SANITIZED, "valgrind cannot run a sanitizer build")
    def test_supervisor_reads_nothing_uninitialised(self):
        """The master waits for signals 100 ms at a time; a wait that timed
        out took no signal, and nothing of it may be read."""
        vg_log = os.path.join(self.tmp, "valgrind.log")
        g = self.gateway(extra={"proxy": {"io_backend": "epoll"}})
        g.start(wrapper=["valgrind", "--child-silent-after-fork=yes",
                         "--log-file=" + vg_log])
        g.wait_ready(timeout=60)
        time.sleep(1.0)                 # ten timed-out waits at least
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r"api: reloaded", timeout=30)
        self.assertEqual(g.stop(timeout=30), 0, g.log())
        with open(vg_log) as f:
            report = f.read()
        self.assertIn("ERROR SUMMARY: 0 errors", report, report)

    # ---- the container image ------------------------------------------------

    def shipped_to_etc(self):
        """The files deploy/Dockerfile copies into the image's /etc/acme-edge."""
        with open(DOCKERFILE) as f:
            lines = f.read().replace("\\\n", " ").splitlines()
        out = []
        for line in lines:
            words = line.split()
            if words[:1] == ["COPY"] and not words[1].startswith("--") and \
                    words[-1].startswith("/etc/acme-edge"):
                out += [os.path.join(ROOT, w) for w in words[1:-1]]
        return out

    def test_container_ships_no_token(self):
        shipped = self.shipped_to_etc()
        self.assertTrue(shipped, "deploy/Dockerfile ships no config")
        for path in shipped:
            with open(path) as f:
                live = [l for l in f if re.match(r"\s*token_sha256\s*=", l)]
            self.assertEqual(live, [], "%s ships a token" % path)
        # the image's config refuses to start until a clients file is mounted
        conf = os.path.join(ROOT, "deploy", "acme-edge.container.conf")
        self.assertIn(conf, shipped)
        with open(conf) as f:
            text = f.read()
        clients = re.search(r"(?m)^clients_file\s*=\s*(\S+)", text).group(1)
        if not os.path.exists(clients):
            p = subprocess.run([ACME_EDGE, "check", "-c", conf], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(p.returncode, 1)
            self.assertIn("%s: No such file or directory" % clients, p.stderr)
        # the API listens where a published port reaches it, and the docs
        # publish it on the host's loopback only
        self.assertRegex(text, r"(?m)^listen\s*=\s*0\.0\.0\.0:8555\s*$")
        with open(DOCKERFILE) as f:
            self.assertIn("-p 127.0.0.1:8555:8555", f.read())

    def test_container_config_runs_as_the_container_user(self):
        """The image's config, run as the image's user (65534) with a clients
        file of the operator's: it starts, makes its store directory in
        /dev/shm, and answers a challenge."""
        with open(os.path.join(ROOT, "deploy", "acme-edge.container.conf")) as f:
            text = f.read()
        g = self.gateway(make_dir=False)
        clients = os.path.join(self.tmp, "clients.conf")
        with open(clients, "w") as f:
            f.write("[client admin]\ntoken_sha256 = %s\nidentifiers = *\n" %
                    sha256_hex(g.clients["admin"]))
        os.chmod(clients, 0o600)
        os.chown(clients, 65534, 65534)
        # only what the host cannot give a test: ports, the files' places
        for key, value in (("path", g.store), ("clients_file", clients),
                           ("listen", "0.0.0.0:%d" % g.api_port),
                           ("http", "0.0.0.0:%d" % g.http_port),
                           ("https", "0.0.0.0:%d" % g.https_port),
                           ("workers", "1")):
            text, n = re.subn(r"(?m)^%s\s*=.*$" % key, "%s = %s" % (key, value), text)
            self.assertEqual(n, 1, key)
        g.write_config(text)
        g.start(user=65534)
        g.wait_ready()
        self.assert_file(os.path.dirname(g.store), 65534, 65534, 0o750)
        token = b64token()
        status, ka = g.put_http01(token)
        self.assertEqual(status, 201)
        self.assertEqual(g.fetch_http01(token), (200, ka))

    def assert_file(self, path, uid, gid, mode):
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))),
                         (uid, gid, oct(mode)), path)

    # ---- privilege separation: the API and the proxy as two users --------

    def test_api_and_proxy_run_as_their_own_users(self):
        api, proxy = system_user(API_USER), system_user(PROXY_USER)
        clients = os.path.join(self.tmp, "clients.conf")
        admin = b64token()
        with open(clients, "w") as f:
            f.write("[client admin]\ntoken_sha256 = %s\nidentifiers = *\n" %
                    sha256_hex(admin))
        os.chmod(clients, 0o600)
        os.chown(clients, api.pw_uid, api.pw_gid)
        g = self.started(make_dir=False, clients={}, extra={
            "api": {"user": API_USER, "clients_file": clients},
            "proxy": {"user": PROXY_USER}})
        g.clients = {"admin": admin}
        api_pid, proxy_pid = g.child_pid("api"), g.child_pid("proxy")

        # who runs: root only in the master, which holds no socket nor store
        self.assertEqual(proc_ids(g.proc.pid)["Uid"], [0, 0, 0, 0])
        for pid, pw in ((api_pid, api), (proxy_pid, proxy)):
            ids = proc_ids(pid)
            self.assertEqual(ids["Uid"], [pw.pw_uid] * 4, pw.pw_name)
            self.assertEqual(ids["Gid"], [pw.pw_gid] * 4, pw.pw_name)
            self.assertEqual(ids["Groups"], [pw.pw_gid], pw.pw_name)   # nothing of root's
            self.assertEqual(ids["CapEff"], [0], pw.pw_name)
            self.assertEqual(ids["CapPrm"], [0], pw.pw_name)
            self.assertEqual(ids["NoNewPrivs"], [1], pw.pw_name)
        ps = subprocess.run(["ps", "-o", "user=", "-p", "%d,%d" % (api_pid, proxy_pid)],
                            capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(sorted(ps), sorted([api.pw_name, proxy.pw_name]))

        # the files: the store the API's, readable by the proxy's group only;
        # the statistics the proxy's, readable by the API's group only
        self.assert_file(os.path.dirname(g.store), 0, api.pw_gid, 0o750)
        self.assert_file(g.store, api.pw_uid, proxy.pw_gid, 0o640)
        self.assert_file(g.store + ".proxy", proxy.pw_uid, api.pw_gid, 0o640)
        # the proxy maps the store read-only, and its user cannot write it
        with open("/proc/%d/maps" % proxy_pid) as f:
            maps = [l.split() for l in f if l.rstrip().endswith(" " + g.store)]
        self.assertTrue(maps, "the proxy does not map the store")
        self.assertTrue(all(m[1] == "r--s" for m in maps), maps)
        def as_proxy_user(flag, extra_groups):
            return subprocess.run(
                ["/usr/bin/python3", "-c",
                 "import os, sys; os.open(sys.argv[1], os.%s)" % flag, g.store],
                user=proxy.pw_uid, group=proxy.pw_gid, extra_groups=extra_groups,
                capture_output=True, text=True)
        self.assertIn("PermissionError", as_proxy_user("O_RDWR", []).stderr)
        # even let through the directory, only reading is allowed
        self.assertEqual(as_proxy_user("O_RDONLY", [api.pw_gid]).returncode, 0)
        self.assertIn("PermissionError", as_proxy_user("O_RDWR", [api.pw_gid]).stderr)

        # and it all still works: a challenge end to end, the API reading
        # the proxy's statistics, a reload in both, a restarted API
        token = b64token()
        status, ka = g.put_http01(token)
        self.assertEqual(status, 201)
        self.assertEqual(g.fetch_http01(token), (200, ka))
        self.assertIn("acmeedge_proxy_workers 1", g.metrics())
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r"api: reloaded .*: 1 client")
        g.wait_log(r"proxy: reloaded")
        self.assertNotIn("failed", g.log())
        self.kill_api(g, 1)
        self.assertEqual(proc_ids(g.child_pid("api", 2))["Uid"], [api.pw_uid] * 4)
        self.assertEqual(g.fetch_http01(token), (200, ka))
        self.assertEqual(g.put_http01(b64token())[0], 201)

    def test_users_need_root(self):
        """Not root, acme-edge cannot become the users named: it says so."""
        system_user(API_USER)
        g = self.gateway(extra={"api": {"user": API_USER}})
        os.chown(g.own_dir, 65534, 65534)
        p = subprocess.run([ACME_EDGE, "api", "-c", g.conf], user=65534, group=65534,
                           extra_groups=[], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("[api] user = %s: acme-edge runs as uid 65534" % API_USER, p.stderr)
        self.assertIn("not as root", p.stderr)

    def test_user_keys_are_checked(self):
        g = self.gateway(extra={"api": {"user": "-rf", "group": "acme-edge"},
                                "proxy": {"group": "acme-edge"}})
        p = subprocess.run([ACME_EDGE, "check", "-c", g.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(p.returncode, 1)
        lines = {}
        with open(g.conf) as f:
            for n, line in enumerate(f, 1):
                lines.setdefault(line.strip(), n)
        self.assertIn('%s:%d: user: expected a user or group name' %
                      (g.conf, lines["user = -rf"]), p.stderr)
        self.assertIn("[proxy] group needs [proxy] user", p.stderr)
        self.assertNotIn("[api] group needs", p.stderr)

    def test_unknown_user(self):
        g = self.gateway(extra={"proxy": {"user": "acme-edge-no-such-user"}})
        p = subprocess.run([ACME_EDGE, "run", "-c", g.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(p.returncode, 1)
        self.assertIn("[proxy] user = acme-edge-no-such-user: no such user", p.stderr)
        # `check` only warns: the users may be made after the config
        p = subprocess.run([ACME_EDGE, "check", "-c", g.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("warning: [proxy] user = acme-edge-no-such-user", p.stderr)

    # ---- the shared files: who may have written them ----------------------

    def run_part(self, g, part, timeout=10.0):
        """Runs `acme-edge PART -c CONF` alone; (exit status, output), or
        (None, output) when it was still running after timeout."""
        p = subprocess.Popen([ACME_EDGE, part, "-c", g.conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=timeout)
            return p.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            return None, out.decode(errors="replace")

    def made_and_stopped(self, **kw):
        """A gateway that ran once, so its store and statistics file exist."""
        g = self.started(**kw)
        self.assertEqual(g.stop(), 0)
        return g

    def assert_refused(self, g, part, path, cause):
        rc, out = self.run_part(g, part)
        self.assertIsNotNone(rc, "%s kept running on %s (%s):\n%s" % (part, path, cause, out))
        self.assertNotEqual(rc, 0, out)
        line = next((l for l in out.splitlines() if path in l and "refused" in l), None)
        self.assertIsNotNone(line, "%s: no line naming %s and refusing it:\n%s" %
                             (part, path, out))
        self.assertIn(cause, line)

    def test_store_planted_in_dev_shm_is_refused(self):
        """A store another user created (or may write, or that is a symlink)
        before the API starts: the API and the proxy refuse it by name."""
        store = "/dev/shm/acme-edge-local-%s-%s" % (RUN_ID, uuid.uuid4().hex[:8])
        g = self.made_and_stopped(store=store)
        real = store + "-real"
        cases = [
            ("another owner", lambda: os.chown(store, 65534, 65534), "belongs to uid 65534"),
            ("mode 0666", lambda: os.chmod(store, 0o666), "mode 0666"),
            ("symlink", lambda: (os.rename(store, real), os.symlink(real, store)),
             "symbolic link"),
        ]
        self.addCleanup(lambda: os.path.lexists(real) and os.unlink(real))
        for what, plant, cause in cases:
            with self.subTest(what):
                plant()
                self.assert_refused(g, "api", store, cause)
                self.assert_refused(g, "proxy", store, cause)
                if os.path.islink(store):
                    os.unlink(store)
                    os.rename(real, store)
                os.chown(store, 0, 0)
                os.chmod(store, 0o640)
        # and once put back, both take it again
        g.start()
        g.wait_ready()

    def test_store_directory_others_may_write_is_refused(self):
        d = tempfile.mkdtemp(prefix="acme-edge-local-", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, d, True)
        g = self.made_and_stopped(store=os.path.join(d, "store"))
        os.chmod(d, 0o777)
        self.assert_refused(g, "api", g.store, "not sticky")
        os.chmod(d, 0o755)
        os.chown(d, 65534, 65534)
        self.assert_refused(g, "api", g.store, "belongs to uid 65534")

    def test_statistics_file_planted_is_not_read(self):
        """The API shows the proxy's counters only from a statistics file the
        proxy's user wrote and nobody else may write."""
        g = self.made_and_stopped()
        stats = g.store + ".proxy"
        self.assertTrue(os.path.isfile(stats))
        p = subprocess.Popen([ACME_EDGE, "api", "-c", g.conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        deadline = time.monotonic() + START_TIMEOUT
        while not g.healthy():
            self.assertLess(time.monotonic(), deadline, "the API did not start")
            time.sleep(0.05)
        self.assertIn("acmeedge_proxy_workers 1", g.metrics())    # the control
        for what, plant in (("another owner", lambda: os.chown(stats, 65534, 65534)),
                            ("mode 0646", lambda: os.chmod(stats, 0o646))):
            with self.subTest(what):
                plant()
                m = g.metrics()
                self.assertIn("acmeedge_proxy_up 0", m)
                self.assertNotIn("acmeedge_proxy_workers", m)
                os.chown(stats, 0, 0)
                os.chmod(stats, 0o640)

    def test_statistics_temporary_file_never_follows_a_symlink(self):
        """Symlinks planted under every name the proxy's temporary statistics
        file could have had with a pid in it: none is followed."""
        store = "/dev/shm/acme-edge-local-%s-%s" % (RUN_ID, uuid.uuid4().hex[:8])
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("untouched\n")
        with open("/proc/sys/kernel/ns_last_pid") as f:
            last = int(f.read())
        for pid in range(last + 1, last + 400):
            os.symlink(victim, "%s.proxy.new.%d" % (store, pid))
        g = self.started(store=store)
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), b"untouched\n", "a planted symlink was followed")
        st = os.lstat(g.store + ".proxy")
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)

    # ---- readers take what they validated once, never the live header -----

    def test_api_survives_a_rewritten_statistics_header(self):
        """The proxy statistics file's nworkers changing under the API, which
        maps the file per request, must not send it past the mapping."""
        g = self.started()
        token = b64token()
        self.assertEqual(g.put_http01(token)[0], 201)
        self.assertEqual(g.fetch_http01(token)[0], 200)
        api_pid = g.child_pid("api")
        stats = g.store + ".proxy"
        stop = threading.Event()

        def scribble():
            with open(stats, "r+b") as f:
                m = mmap.mmap(f.fileno(), 0)
                try:
                    while not stop.is_set():
                        for n in (256, 1):
                            struct.pack_into("<I", m, PSTATS_NWORKERS_OFF, n)
                finally:
                    struct.pack_into("<I", m, PSTATS_NWORKERS_OFF, 1)
                    m.close()

        t = threading.Thread(target=scribble, daemon=True)
        t.start()
        try:
            for i in range(300):
                try:
                    g.metrics()
                    g.api("GET", "/v1/challenges")
                except OSError:
                    break
        finally:
            stop.set()
            t.join(timeout=10)
        self.assertNotRegex(g.log(), r"run: api \(pid \d+\) killed by signal",
                            "the API crashed while the header changed")
        self.assertTrue(g.healthy())
        self.assertEqual(g.child_pid("api"), api_pid)
        self.assertIn("acmeedge_proxy_workers 1", g.metrics())


if __name__ == "__main__":
    unittest.main(verbosity=2)
