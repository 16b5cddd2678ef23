#!/usr/bin/python3
"""
The Debian package and the install layout, as an operator meets them.

From a scratch Release build of this source tree (prefix /usr, no tests):
`cmake --install` into a staging DESTDIR lays out the files and keeps a
config that is already there; `cpack -G DEB` builds
acme-edge_<version>_<arch>.deb, whose `dpkg-deb --contents` holds the
layout and which `lintian` passes without errors; then, on this machine,
`dpkg -i`, `acme-edge version` and `acme-edge check` from the installed
files, `systemd-analyze verify` of the installed unit (when the tool is
there), `dpkg -r` keeps the edited config (a conffile), a reinstall keeps
it too, and `dpkg -P` removes everything.

It installs a package system-wide, so it runs only as root, and only where
no acme-edge is installed or configured (exit 77, a skip, otherwise); it
purges what it installed and removes service users the package created,
whatever happens. Environment: EDGE_SOURCE (the source tree).
"""
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("EDGE_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
SKIP = 77
CONF = "/etc/acme-edge/acme-edge.conf"
UNIT = "/lib/systemd/system/acme-edge.service"
LAYOUT = [
    "./usr/bin/acme-edge",
    "./etc/acme-edge/acme-edge.conf",
    "./lib/systemd/system/acme-edge.service",
    "./usr/share/acme-edge/hooks/certbot-auth.sh",
    "./usr/share/acme-edge/hooks/certbot-cleanup.sh",
    "./usr/share/acme-edge/hooks/dehydrated.sh",
    "./usr/share/acme-edge/hooks/acme-edge-hook.lib.sh",
    "./usr/share/acme-edge/hooks/README.md",
    "./usr/share/doc/acme-edge/README.md",
    "./usr/share/doc/acme-edge/copyright",
    "./usr/share/doc/acme-edge/changelog.gz",
    "./usr/share/doc/acme-edge/docs/ARCHITECTURE.md",
    "./usr/share/man/man1/acme-edge.1.gz",
]
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")


def run(argv, check=True, timeout=600, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=kw.pop("env", ENV), stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(argv), p.returncode,
                                                    p.stdout, p.stderr))
    return p


def installed():
    p = run(["dpkg-query", "-W", "-f=${Status}", "acme-edge"], check=False)
    return p.returncode == 0 and "installed" in p.stdout


def why_not():
    """Why this machine is not one to install on, or None."""
    if os.geteuid() != 0:
        return "not root: dpkg -i needs it"
    for tool in ("dpkg", "dpkg-deb", "cpack", "lintian"):
        if not shutil.which(tool):
            return "%s is missing (deploy/install-deps.sh --test)" % tool
    if installed() or os.path.exists("/etc/acme-edge") or os.path.exists("/usr/bin/acme-edge"):
        return "acme-edge is installed or configured here; the test would touch it"
    return None


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-deb-")
        cls.build = os.path.join(cls.tmp, "build")
        cls.users = {p.pw_name for p in pwd.getpwall()}
        cls.groups = {g.gr_name for g in grp.getgrall()}
        run(["cmake", "-S", SRC, "-B", cls.build, "-G", "Ninja",
             "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_TESTING=OFF",
             "-DCMAKE_INSTALL_PREFIX=/usr"])
        run(["cmake", "--build", cls.build, "-j2"], timeout=1200)
        run(["cpack", "-G", "DEB", "--config", os.path.join(cls.build, "CPackConfig.cmake"),
             "-B", os.path.join(cls.tmp, "out")], cwd=cls.build)
        debs = [f for f in os.listdir(os.path.join(cls.tmp, "out")) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.tmp, "out", debs[0])
        print("package: %s" % debs[0])

    @classmethod
    def tearDownClass(cls):
        try:
            if installed():
                run(["dpkg", "-P", "acme-edge"], check=False)
            # Service users and groups the package made (it keeps them on
            # purge, as Debian does): this machine is left as it was.
            for u in sorted({p.pw_name for p in pwd.getpwall()} - cls.users):
                run(["deluser", "--system", "--quiet", u], check=False)
            for g in sorted({g.gr_name for g in grp.getgrall()} - cls.groups):
                run(["delgroup", "--system", "--quiet", g], check=False)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_install_layout_keeps_config(self):
        stage = os.path.join(self.tmp, "stage")
        env = dict(ENV, DESTDIR=stage)
        run(["cmake", "--install", self.build], env=env)
        for path in LAYOUT:
            self.assertTrue(os.path.exists(os.path.join(stage, path)), path)
        with open(os.path.join(stage, "lib/systemd/system/acme-edge.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/acme-edge run -c /etc/acme-edge/acme-edge.conf", unit)
        self.assertNotIn("/usr/local", unit)
        conf = os.path.join(stage, "etc/acme-edge/acme-edge.conf")
        with open(conf, "a") as f:
            f.write("; edited by the operator\n")
        out = run(["cmake", "--install", self.build], env=env).stdout
        with open(conf) as f:
            self.assertIn("; edited by the operator", f.read())
        self.assertIn("Kept (exists)", out)

    def test_2_contents_and_lintian(self):
        listing = run(["dpkg-deb", "--contents", self.deb]).stdout
        print(listing)
        paths = {line.split()[-1] for line in listing.splitlines() if line.strip()}
        for path in LAYOUT:
            self.assertIn(path, paths)
        self.assertFalse([p for p in paths if p.startswith("./usr/local")], paths)
        info = run(["dpkg-deb", "--info", self.deb]).stdout
        for dep in ("libssl3", "libevent-2.1-7", "libjansson4", "libinih1", "liburing2"):
            self.assertIn(dep, info)
        ctrl = os.path.join(self.tmp, "ctrl")
        run(["dpkg-deb", "--control", self.deb, ctrl])
        with open(os.path.join(ctrl, "conffiles")) as f:
            self.assertEqual(f.read().split(), [CONF])
        p = run(["lintian", "--fail-on", "error", self.deb], check=False)
        print("lintian:\n" + p.stdout + p.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("\nE: ", "\n" + p.stdout)

    def test_3_install_use_remove_purge(self):
        run(["dpkg", "-i", self.deb])
        self.assertTrue(installed())
        v = run(["/usr/bin/acme-edge", "version"]).stdout
        self.assertIn("acme-edge ", v)
        # The users the config runs the parts as exist (postinst made them).
        with open(CONF) as f:
            users = re.findall(r"^user\s*=\s*(\S+)", f.read(), re.M)
        for u in users:
            pwd.getpwnam(u)
        out = run(["/usr/bin/acme-edge", "check", "-c", CONF]).stdout
        self.assertIn(": ok", out)
        self.assertTrue(os.path.isfile(UNIT))
        # Installed, not started: no config of the operator's yet.
        if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
            p = run(["systemctl", "is-enabled", "acme-edge"], check=False)
            self.assertNotEqual(p.stdout.strip(), "enabled")
        if shutil.which("systemd-analyze"):
            p = run(["systemd-analyze", "verify", UNIT], check=False)
            print("systemd-analyze verify: exit %d %s%s" % (p.returncode, p.stdout, p.stderr))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        else:
            print("systemd-analyze is not installed here: the unit was not verified")

        with open(CONF, "a") as f:
            f.write("; edited by the operator\n")
        run(["dpkg", "-r", "acme-edge"])
        self.assertFalse(os.path.exists("/usr/bin/acme-edge"))
        self.assertFalse(os.path.exists(UNIT))
        with open(CONF) as f:
            self.assertIn("; edited by the operator", f.read())
        # Installed again over the kept config: it stays the operator's.
        run(["dpkg", "-i", "--force-confold", self.deb])
        with open(CONF) as f:
            self.assertIn("; edited by the operator", f.read())
        run(["dpkg", "-P", "acme-edge"])
        self.assertFalse(installed())
        self.assertFalse(os.path.exists("/etc/acme-edge"))


if __name__ == "__main__":
    reason = why_not()
    if reason:
        print("package.deb skipped: " + reason)
        sys.exit(SKIP)
    unittest.main(verbosity=2)
