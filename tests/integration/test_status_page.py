#!/usr/bin/python3
"""
The status page (GET / on the API) in a real browser: headless Chromium
driven by Selenium through /usr/bin/chromedriver, against `acme-edge run`
on loopback. The page takes the token from #token= and drops it from the
address bar, shows an entry after a PUT and its hit after a GET on the
proxy's port 80, never holds a key authorization in its DOM, and says so
when the token is wrong; the page comes with a strict Content-Security-
Policy, under which its own script and style run (the page would be blank
otherwise). Screenshots (desktop and phone widths) are saved under
$ARTIFACTS (build/<preset>/artifacts) and their paths printed.

Needs Debian's chromium, chromium-driver and python3-selenium
(deploy/install-deps.sh --test). Environment: ACME_EDGE, ARTIFACTS.
"""
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from harness import (LoopbackGateway, b64url, env_path, keyauth, main,  # noqa: E402
                     new_token, outcome_ok, store_path)

ACME_EDGE = env_path("ACME_EDGE", "build/release/acme-edge")
CHROMEDRIVER = "/usr/bin/chromedriver"
BEARER = b64url(32)
WAIT_S = 30.0


def artifacts_dir():
    d = os.environ.get("ARTIFACTS") or os.path.join(tempfile.gettempdir(),
                                                    "acme-edge-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class StatusPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        cls.tmp = tempfile.mkdtemp(prefix="acme-edge-page-")
        cls.gw = LoopbackGateway(
            cls.tmp, "gw", store_path("page"), ACME_EDGE,
            {"status-demo": (BEARER, "example.com *.example.com")},
            comment="written by tests/integration/test_status_page.py")
        cls.driver = None
        try:
            cls.gw.start()
            cls.gw.wait_ready()
            opts = webdriver.ChromeOptions()
            opts.binary_location = "/usr/bin/chromium"
            for a in ("--headless", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                      "--user-data-dir=" + os.path.join(cls.tmp, "profile"),
                      "--window-size=1280,860"):
                opts.add_argument(a)
            cls.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER),
                                          options=opts)
            cls.driver.set_page_load_timeout(WAIT_S)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            cls.driver.quit()
        try:
            cls.gw.finish_clean()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        if not outcome_ok(self):
            print(self.gw.log()[-4000:])
            try:
                print(self.driver.page_source[:4000])
            except Exception:   # the browser itself may be what failed
                pass

    def url(self, fragment=""):
        return "http://127.0.0.1:%d/%s" % (self.gw.api_port, fragment)

    def wait(self, what, cond):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        self.fail("the page never showed %s" % what)

    def text(self, element_id):
        from selenium.webdriver.common.by import By
        els = self.driver.find_elements(By.ID, element_id)
        return els[0].text if els and els[0].is_displayed() else ""

    def get_on_80(self, token):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.http, timeout=10)
        try:
            c.request("GET", "/.well-known/acme-challenge/" + token,
                      headers={"Host": "www.example.com"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def screenshot(self, name):
        path = os.path.join(artifacts_dir(), name)
        self.assertTrue(self.driver.save_screenshot(path))
        print("screenshot: %s" % path)

    def test_csp_header(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.api_port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/html"))
        csp = [d.strip() for d in r.getheader("Content-Security-Policy").split(";")]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertTrue(any(d.startswith("script-src 'sha256-") for d in csp), csp)
        self.assertTrue(any(d.startswith("style-src 'sha256-") for d in csp), csp)
        self.assertNotIn("unsafe-inline", " ".join(csp))
        # Self-contained: nothing loaded from anywhere else.
        for ref in ("src=", "href=", "@import", "url("):
            self.assertNotIn(ref, body)
        # The state behind the page is for clients only.
        st, _, _ = self.gw.api("GET", "/v1/status", auth=False)
        self.assertEqual(st, 401)

    def test_status_json(self):
        st, h, body = self.gw.api("GET", "/v1/status")
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("cache-control"), "no-store")
        s = json.loads(body)
        self.assertEqual(s["client"], "status-demo")
        self.assertRegex(s["version"], r"^\d+\.\d+\.\d+")
        p = s["proxy"]
        self.assertTrue(p["up"])
        self.assertIn(p["io_backend"], ("io_uring", "epoll"))
        self.assertEqual(p["workers"], 1)
        for kind in ("http-01", "tls-alpn-01"):
            self.assertEqual(sorted(p["challenges"][kind]), ["answered", "missed"])
        self.assertGreaterEqual(p["bytes_relayed"], 0)
        self.assertEqual(s["store"]["capacity"], 32)
        self.assertIsNone(s["cluster"])

    def test_page_shows_entries_and_hits(self):
        tok = new_token()
        ka = keyauth(tok)
        self.driver.get(self.url("#token=" + urllib.parse.quote(BEARER)))
        self.wait("the gateway state", lambda: "challenges answered" in self.text("gateway"))
        # The token left the address bar, and lives in the tab's storage only.
        self.assertNotIn("token=", self.driver.current_url)
        self.assertNotIn(BEARER, self.driver.current_url)
        self.assertEqual(self.driver.execute_script(
            "return sessionStorage.getItem('acme-edge-token')"), BEARER)
        self.assertEqual(self.text("client"), "status-demo")

        self.gw.put_http01(tok, ka, identifier="www.example.com")
        self.gw.put_tls("example.com", keyauth(new_token()))
        self.wait("the http-01 entry", lambda: tok in self.text("rows") and
                        "tls-alpn-01" in self.text("rows"))
        self.assertIn("no request yet", self.text("rows"))
        status, body = self.get_on_80(tok)
        self.assertEqual((status, body), (200, ka.encode()))
        self.wait("the hit", lambda: "answered this node: 127.0.0.1" in self.text("rows"))
        self.wait("the counter", lambda: "1\nchallenges answered" in self.text("gateway"))
        source = self.driver.page_source
        self.assertNotIn(ka, source)
        self.assertNotIn(ka.split(".")[1], source)
        self.screenshot("status-page.png")
        self.driver.set_window_size(390, 844)
        time.sleep(0.5)
        self.screenshot("status-page-phone.png")
        self.driver.set_window_size(1280, 860)
        st, _, _ = self.gw.api("DELETE", "/v1/http-01/" + tok)
        self.assertEqual(st, 204)
        self.gw.api("DELETE", "/v1/tls-alpn-01/example.com")
        self.wait("the entry gone", lambda: tok not in self.text("rows"))

    def test_wrong_token(self):
        self.driver.get(self.url("#token=" + b64url(32)))
        msg = self.wait("the error", lambda: self.text("error"))
        self.assertIn("Wrong token", msg)
        self.assertTrue(self.text("login"))
        self.assertIsNone(self.driver.execute_script(
            "return sessionStorage.getItem('acme-edge-token')"))
        self.screenshot("status-page-wrong-token.png")


if __name__ == "__main__":
    main(need=[(ACME_EDGE, "ACME_EDGE"), (CHROMEDRIVER, "the chromium-driver package")],
         tools=["chromium"])
