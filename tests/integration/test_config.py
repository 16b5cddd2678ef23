#!/usr/bin/python3
"""
`acme-edge check -c FILE` on configs written by the test: the shipped
example passes, a config with one of every mistake reports every one of them
as FILE:LINE with the right line number, and a clients file readable by
others is refused.

Python standard library only. Environment: ACME_EDGE (the binary).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import ROOT, env_path, main, sha256_hex  # noqa: E402
ACME_EDGE = env_path("ACME_EDGE", "build/e2/acme-edge")
SHIPPED = os.path.join(ROOT, "deploy", "acme-edge.conf")
TOKEN_HASH = sha256_hex("a bearer token")
TOKEN_HASH2 = sha256_hex("another bearer token")


class Conf:
    """Lines of a config, with the errors expected at each line."""

    def __init__(self):
        self.lines = []
        self.errors = []        # (line number, regex)

    def add(self, text, error=None):
        self.lines.append(text)
        if error:
            self.errors.append((len(self.lines), error))
        return len(self.lines)

    def expect(self, line, error):
        self.errors.append((line, error))

    def text(self):
        return "\n".join(self.lines) + "\n"


class ConfigCheckTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="acme-edge-cfg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def check(self, path):
        p = subprocess.run([ACME_EDGE, "check", "-c", path], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def assert_ok(self, path):
        rc, out, err = self.check(path)
        if rc != 0:
            with open(path) as f:
                self.fail("check failed (exit %d) on %s:\n%s%s\n--- config ---\n%s" % (
                    rc, path, out, err, f.read()))
        self.assertIn("ok", out)
        return out

    def errors_of(self, path, stderr):
        got = []
        for line in stderr.splitlines():
            m = re.match(r"^%s:(\d+): (.*)$" % re.escape(path), line)
            if m:
                got.append((int(m.group(1)), m.group(2)))
        return got

    # ---- configs that pass -----------------------------------------------------

    def test_shipped_example_passes(self):
        if not os.path.exists(SHIPPED):
            self.skipTest("%s does not exist yet" % SHIPPED)
        self.assert_ok(SHIPPED)

    def test_design_example_passes(self):
        # the documented keys, written the way operators write them: inline
        # comments after values, lists separated by spaces, IPv6 in brackets
        path = self.write("design.conf", """\
[store]
path = /dev/shm/acme-edge          ; the shared-memory file
capacity = 4096                    ; entries

[api]
listen = 127.0.0.1:8555            ; host:port, [v6]:port; several separated by spaces

[client certbot]                   ; one section per API client
token_sha256 = %s
identifiers = example.com *.example.com   ; `*` alone = any name
cidrs = 10.0.0.0/8                 ; optional

[proxy]
http = 0.0.0.0:80 [::]:80
https = 0.0.0.0:443 [::]:443
workers = auto

[route default]                    ; where non-challenge traffic goes
http = 127.0.0.1:8080              ; upstream servers for port-80 traffic
https = 127.0.0.1:8443             ; upstream servers for port-443 traffic
proxy_protocol = off               ; off | v1 | v2

[route app]
names = app.example.com *.app.example.com
https = 10.0.0.5:443 10.0.0.6:443
""" % TOKEN_HASH)
        out = self.assert_ok(path)
        self.assertIn("1 client", out)
        self.assertIn("2 routes", out)

    def test_lists_continue_on_indented_lines(self):
        path = self.write("cont.conf", """\
[client a]
token_sha256 = %s
identifiers = a.example.com
  *.a.example.com
  192.0.2.0/24
""" % TOKEN_HASH)
        self.assert_ok(path)

    # ---- one of every mistake ---------------------------------------------------

    def test_every_error_with_its_line(self):
        c = Conf()
        c.add("; a config with one of every mistake the checker must name")
        c.add("[store]")
        c.add("path = /dev/shm/acme-edge-check")
        c.add("capacity = 8")
        c.add("capacity = 16", r"capacity.*set twice")
        c.add("")
        api1 = c.add("[api]")
        c.add("listen = 127.0.0.1", r"listen.*127\.0\.0\.1.*not an address")
        c.add("colour = blue", r'unknown key "colour"')
        c.add("max_body = 1024")
        c.add("listen_backup = " + " ".join(["127.0.0.1:%d" % p for p in range(1000, 1040)]),
              r"line longer than")
        c.add("timeout = 10s")
        c.add("")
        c.add("[bogus]", r"unknown section \[bogus\]")
        c.add("whatever = 1")
        c.add("")
        c.add("[api]", r"section \[api\] appears twice \(first at line %d\)" % api1)
        c.add("listen = 127.0.0.1:1")
        c.add("")
        c.add("[proxy]")
        c.add("http = 0.0.0.0:80 999.1.1.1:80", r"http.*999\.1\.1\.1:80.*not an address")
        c.add("https = [::]:443")
        c.add("splice_pipes = 5000", r"splice_pipes.*5000")
        c.add("sched_slice_us = 50", r"sched_slice_us.*0 \(the kernel's own\) or 100\.\.100000.*50")
        c.add("defer_accept = 11m", r"defer_accept.*duration.*11m")
        c.add("")
        ca = c.add("[client a]")
        c.add("token_sha256 = " + "zz" * 32, r"token_sha256.*64 hex digits")
        c.expect(ca, r"\[client a\].*token_sha256 is required")   # and so it has none
        c.add("identifiers = a.example.com")
        c.add("")
        cb = c.add("[client b]")
        c.expect(cb, r"\[client b\].*identifiers is required")
        c.add("token_sha256 = " + TOKEN_HASH)
        c.add("cidrs = 10.0.0.1/8", r"cidrs.*10\.0\.0\.1/8.*not a CIDR")
        c.add("")
        c.add("[client c]")
        c.add("token_sha256 = " + TOKEN_HASH2)
        c.add("identifiers = c.example.com")
        c.add("thumbprints = short", r'thumbprints.*"short"')
        c.add("")
        c.add("[route default]")
        c.add("http = 127.0.0.1:8080")
        c.add("")
        rapp = c.add("[route app]")
        c.expect(rapp, r"\[route app\].*needs http or https upstreams")
        c.add("names = app.example.com")
        c.add("proxy_protocol = v3", r"proxy_protocol.*v3")
        c.add("")
        c.add("[route app]", r"section \[route app\] appears twice \(first at line %d\)"
              % rapp)
        c.add("http = 127.0.0.1:1")
        path = self.write("broken.conf", c.text())

        rc, out, err = self.check(path)
        self.assertEqual(rc, 1, "want exit 1, got %d:\n%s%s" % (rc, out, err))
        got = self.errors_of(path, err)
        report = "\n".join("%s:%d: %s" % (path, n, m) for n, m in got)
        numbered = "\n".join("%3d %s" % (i + 1, l[:100]) for i, l in
                             enumerate(c.lines))
        missing = []
        unmatched = list(got)
        for line, rx in c.errors:
            hit = next((g for g in unmatched if g[0] == line and re.search(rx, g[1])),
                       None)
            if hit:
                unmatched.remove(hit)
            else:
                missing.append("line %d: /%s/" % (line, rx))
        self.assertFalse(missing or unmatched,
                         "\nmissing errors: %s\nunexpected errors: %s\n"
                         "--- check printed ---\n%s\n--- the config ---\n%s" % (
                             missing, unmatched, err, numbered))
        self.assertIn("%s: %d errors" % (path, len(c.errors)), err)
        self.assertEqual(len(got), len(c.errors), report)

    def test_missing_file(self):
        path = os.path.join(self.tmp, "absent.conf")
        rc, out, err = self.check(path)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn(path, err)

    def test_key_outside_any_section(self):
        path = self.write("nosect.conf", "capacity = 8\n[store]\ncapacity = 8\n")
        rc, out, err = self.check(path)
        self.assertEqual(rc, 1, (out, err))
        self.assertEqual([n for n, _ in self.errors_of(path, err)], [1], err)

    def test_errors_across_keys_name_a_real_line(self):
        # Errors found after parsing (a rule between two keys, the clients
        # file's mode) still point at a line of the file: the key at fault,
        # never line 0.
        clients = self.write("cl.conf", "[client a]\ntoken_sha256 = %s\n"
                                        "identifiers = *\n" % TOKEN_HASH, mode=0o644)
        path = self.write("cross.conf", "[api]\ndefault_ttl = 2h\nmax_ttl = 1h\n"
                                        "clients_file = %s\n" % clients)
        rc, out, err = self.check(path)
        self.assertEqual(rc, 1, (out, err))
        got = self.errors_of(path, err)
        ttl = [n for n, m in got if "default_ttl" in m]
        mode = [n for n, m in got if "chmod 600" in m]
        self.assertEqual(len(ttl), 1, err)
        self.assertEqual(len(mode), 1, err)
        self.assertIn(ttl[0], (2, 3), "default_ttl > max_ttl reported at line %d:\n%s"
                      % (ttl[0], err))
        self.assertEqual(mode[0], 4, "the clients file's mode reported at line %d:\n%s"
                         % (mode[0], err))

    # ---- the clients file ---------------------------------------------------------

    def clients_setup(self, mode, clients_text=None):
        clients = self.write("clients.conf", clients_text or (
            "[client certbot]\ntoken_sha256 = %s\nidentifiers = example.com\n\n"
            "[client lego]\ntoken_sha256 = %s\nidentifiers = *\n" % (
                TOKEN_HASH, TOKEN_HASH2)), mode=mode)
        main = self.write("main.conf", "[store]\npath = /dev/shm/x\n\n[api]\n"
                                       "listen = 127.0.0.1:8555\n"
                                       "clients_file = %s\n" % clients, mode=0o644)
        return main, clients

    def test_clients_file_0600_accepted(self):
        main, _ = self.clients_setup(0o600)
        out = self.assert_ok(main)
        self.assertIn("2 clients", out)

    def test_clients_file_readable_by_others_refused(self):
        for mode in (0o644, 0o640, 0o604, 0o660):
            with self.subTest(mode=oct(mode)):
                main, clients = self.clients_setup(mode)
                rc, out, err = self.check(main)
                self.assertEqual(rc, 1, "mode %o: %s%s" % (mode, out, err))
                self.assertIn(clients, err)
                self.assertIn("%04o" % mode, err)
                self.assertIn("chmod 600", err)

    def test_clients_file_that_cannot_be_read_is_named_at_its_line(self):
        # Every error `check` prints is FILE:LINE, the clients file's too
        # when it cannot be opened: the line of the config that names it.
        for name, make in (("absent", None), ("a-directory", os.mkdir)):
            with self.subTest(name):
                clients = os.path.join(self.tmp, name)
                if make:
                    make(clients, 0o700)
                main = self.write("main.conf", "[store]\npath = /dev/shm/x\n\n[api]\n"
                                               "clients_file = %s\n" % clients)
                rc, out, err = self.check(main)
                self.assertEqual(rc, 1, (out, err))
                got = self.errors_of(main, err)
                self.assertEqual(len(got), len(err.splitlines()) - 1, err)
                self.assertIn(5, [n for n, m in got if m.startswith(clients + ": ")], err)

    def test_clients_file_holds_only_clients(self):
        main, clients = self.clients_setup(
            0o600, "[client a]\ntoken_sha256 = %s\nidentifiers = *\n\n[store]\n"
                   "capacity = 9\n" % TOKEN_HASH)
        rc, out, err = self.check(main)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("%s:5: " % clients, err)


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE")])
