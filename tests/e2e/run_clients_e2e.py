#!/usr/bin/python3
"""
End to end, for the ACME clients that do not push through the solver API's
/v1/ routes: real certificates from Pebble (real validation) through
`acme-edge run`.

  - acme.sh (kept outside this repository, at ../shared/clients/acme.sh/
    acme.sh from the repository's root; every acme.sh case is a SKIP with
    the reason when it is absent), three ways:
      --stateless  with its account thumbprint in a [stateless] section
                   added by a SIGHUP reload once the account exists;
      --webroot    on a real web server (python3 -m http.server serving the
                   webroot) behind a [route], reached through the gateway's
                   forwarding of challenges it holds nothing for;
      --alpn       acme.sh's own TLS listener behind a [route], acme-tls/1
                   misses forwarded (tls_miss = forward).
  - the REST responder: a client that speaks exactly as simple-acme's REST
    validation does (every PUT of an order at once, Authorization: Bearer,
    Accept: application/json, the key authorization as text/plain;
    charset=utf-8, to http://<identifier>/.well-known/acme-challenge/<token>
    on the gateway's port 80; then every DELETE, no body) gets one
    certificate for several names, with python3-acme on the ACME side; and
    a wrong token, a source address outside the client's cidrs, a Host
    outside its scope, an oversized body and a body that is not
    <token>.<thumbprint> are refused with their status and store nothing;
    a PUT or DELETE from a client without rest_responder (or without a
    token) never reaches an upstream, which records every request it gets.

Pebble, the throwaway CA, the process handling and the ACME account code
are run_e2e.py's, imported. Environment: ACME_EDGE (the binary),
ACME_SH (default ../shared/clients/acme.sh/acme.sh from the repository
root), E2E_BUDGET (seconds, default 420), E2E_KEEP=1 (keep the temp dir).
"""
import concurrent.futures
import glob
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
import run_e2e as base  # noqa: E402
from harness import (ROOT, api_request, b64url, conf_text, free_port, read_log,  # noqa: E402
                     remove_store, reply, sanitizer_marks, serve_in_thread, sha256_hex,
                     store_path)
from run_e2e import PROCS, Fail, case, check, log  # noqa: E402

ACME_SH = os.environ.get("ACME_SH") or os.path.join(ROOT, "..", "shared", "clients",
                                                    "acme.sh", "acme.sh")
BUDGET = float(os.environ.get("E2E_BUDGET", "420"))
CHALLENGE = "/.well-known/acme-challenge/"
TOKENS = {"admin": b64url(32), "rest": b64url(32), "norest": b64url(32)}
G = {}          # ports, paths and processes of the run


# ---- facts about what was issued ---------------------------------------------------

def cert_facts(fullchain):
    """The leaf's subject, SANs and serial, as the report gives them."""
    leaf = base.PEM_RE.findall(fullchain)[0]
    text = base.openssl("x509", "-noout", "-subject", "-serial", "-ext", "subjectAltName",
                        data=leaf).decode()
    subject = re.search(r"subject=\s*(.*)", text).group(1).strip() or "(empty)"
    serial = re.search(r"serial=(\w+)", text).group(1)
    sans = ",".join(re.findall(r"DNS:([^,\s]+)", text))
    return "subject %s, SANs %s, serial %s" % (subject, sans, serial)


def issued(label, fullchain, names):
    return "%s; %s" % (base.verify_chain(label, fullchain, names), cert_facts(fullchain))


# ---- the upstreams -------------------------------------------------------------------

class Recorder(http.server.ThreadingHTTPServer):
    """[route default]'s upstream: answers everything, records every request."""
    daemon_threads = True

    def __init__(self, port):
        self.seen = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), RecorderHandler)

    def handle_error(self, request, client_address):
        pass


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def any_method(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.headers.get("Host")))
        reply(self, 200, b"upstream")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = any_method

    def log_message(self, *a):
        pass


def push_methods_seen():
    with G["recorder"].lock:
        return [s for s in G["recorder"].seen if s[0] in ("PUT", "DELETE")]


# ---- the gateway ---------------------------------------------------------------------

def gateway_conf(stateless=None):
    sections = [
        ("store", {"path": G["store"], "capacity": 256}),
        ("api", {"listen": "127.0.0.1:%d" % G["api"], "default_ttl": "10m",
                 "max_ttl": "1h", "timeout": "10s", "sweep_interval": "1s"}),
        ("client admin", {"token_sha256": sha256_hex(TOKENS["admin"]), "identifiers": "*",
                          "cidrs": "127.0.0.0/8"}),
        # simple-acme's REST validation, from this host only.
        ("client simple-acme", {"token_sha256": sha256_hex(TOKENS["rest"]),
                                "identifiers": "*.rest.clients.test",
                                "cidrs": "127.0.0.1/32", "rest_responder": "yes"}),
        ("client norest", {"token_sha256": sha256_hex(TOKENS["norest"]),
                           "identifiers": "*.rest.clients.test", "cidrs": "127.0.0.0/8"}),
        ("proxy", {"http": "127.0.0.1:%d" % G["http"], "https": "127.0.0.1:%d" % G["https"],
                   "workers": 2, "http_miss": "forward", "tls_miss": "forward",
                   "peek_timeout": "10s", "connect_timeout": "5s", "grace": "2s"}),
        ("route default", {"http": "127.0.0.1:%d" % G["recorder_port"]}),
        # acme.sh --webroot: a real web server holds the challenge files.
        ("route webroot", {"names": "*.webroot.clients.test",
                           "http": "127.0.0.1:%d" % G["webroot_port"]}),
        # acme.sh --alpn: its own TLS listener answers acme-tls/1.
        ("route alpn", {"names": "*.alpn.clients.test",
                        "https": "127.0.0.1:%d" % G["alpn_port"]})]
    if stateless:
        sections.append(("stateless acme-sh", {"thumbprint": stateless,
                                               "identifiers": "*.stateless.clients.test"}))
    sections.append(("log", {"level": "info"}))
    return conf_text(sections, "written by tests/e2e/run_clients_e2e.py")


def write_conf(stateless=None):
    tmp = G["conf"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(gateway_conf(stateless))
    os.chmod(tmp, 0o600)
    os.replace(tmp, G["conf"])
    p = subprocess.run([base.ACME_EDGE, "check", "-c", G["conf"]], capture_output=True,
                       timeout=30)
    check(p.returncode == 0, "acme-edge check: %s" % (p.stdout + p.stderr).decode(
        errors="replace"))


def gw_log():
    return read_log(G["gw_log"])


def reload_gateway():
    """SIGHUP to `acme-edge run`; returns once the proxy reloaded."""
    n = gw_log().count("proxy: reloaded")
    os.kill(G["gw"].pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = gw_log()
        check("reload of" not in text[-3000:] or "failed" not in text[-3000:],
              "reload failed: %s" % text[-3000:])
        if text.count("proxy: reloaded") > n:
            time.sleep(0.5)         # workers switch at their next loop turn
            return
        time.sleep(0.05)
    raise Fail("the proxy did not reload within 30s")


def stored_tokens():
    st, _, body = api_request(G["api"], "GET", "/v1/challenges", TOKENS["admin"])
    check(st == 200, "GET /v1/challenges: %d" % st)
    return {c["token"]: c for c in json.loads(body)["challenges"] if c["kind"] == "http-01"}


# ---- acme.sh ---------------------------------------------------------------------------

ACME_SH_LOCK = threading.Lock()


def acme_sh(args, timeout=180):
    """One acme.sh run (bash, its own home and config), against Pebble."""
    home = os.path.join(base.WORK, "acme.sh")
    os.makedirs(home, exist_ok=True)
    env = {"HOME": home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    argv = ["bash", ACME_SH, "--home", home, "--config-home", home + "/config",
            "--cert-home", home + "/certs", "--server", base.DIR_URL,
            "--ca-bundle", base.CA_PEM, "--log", home + "/acme.sh.log",
            "--log-level", "2"] + list(args)
    with ACME_SH_LOCK:
        return PROCS.run("acme.sh " + args[0], argv, env=env, timeout=timeout)


def acme_sh_missing():
    if not os.path.isfile(ACME_SH):
        return ("SKIP", "acme.sh is not at %s (kept outside the repository; set ACME_SH)"
                % os.path.normpath(ACME_SH))
    if not shutil.which("socat"):
        return ("SKIP", "socat is not installed (deploy/install-deps.sh --test)")
    return None


def acme_sh_issue(names, mode_args, label):
    argv = ["--issue", "--force", "--keylength", "ec-256"]
    for n in names:
        argv += ["-d", n]
    rc, out = acme_sh(argv + mode_args)
    check(rc == 0, "acme.sh %s exited %d:\n%s" % (label, rc, out[-4000:]))
    paths = glob.glob(os.path.join(base.WORK, "acme.sh", "certs", names[0] + "*",
                                   "fullchain.cer"))
    check(paths, "acme.sh %s: no fullchain.cer for %s" % (label, names[0]))
    with open(paths[0], "rb") as f:
        return issued("acme.sh " + label, f.read(), names)


def account_thumbprint():
    rc, out = acme_sh(["--register-account"])
    check(rc == 0, "acme.sh --register-account exited %d:\n%s" % (rc, out[-3000:]))
    m = re.search(r"ACCOUNT_THUMBPRINT='([A-Za-z0-9_-]{43})'", out)
    check(m, "no ACCOUNT_THUMBPRINT in acme.sh's output:\n%s" % out[-3000:])
    return m.group(1)


@case("acme.sh", "http-01 --stateless, thumbprint in a [stateless] section (SIGHUP)")
def case_acme_sh_stateless():
    skip = acme_sh_missing()
    if skip:
        return skip
    thumb = account_thumbprint()
    write_conf(stateless=thumb)
    reload_gateway()
    names = ["a.stateless.clients.test", "b.stateless.clients.test"]
    detail = acme_sh_issue(names, ["--stateless"], "--stateless")
    text = gw_log()
    for n in names:
        check(re.search(r"proxy: http-01 answered: [^\n]*identifier %s, key [^\n]*stateless "
                        r"\[stateless acme-sh\]" % re.escape(n), text),
              "no stateless answer logged for %s" % n)
    return detail + "; answered by [stateless acme-sh] (thumbprint %s...)" % thumb[:8]


@case("acme.sh", "http-01 --webroot on the upstream (python3 http.server)")
def case_acme_sh_webroot():
    skip = acme_sh_missing()
    if skip:
        return skip
    names = ["w1.webroot.clients.test"]
    detail = acme_sh_issue(names, ["-w", G["webroot"]], "--webroot")
    text = gw_log()
    check(re.search(r"proxy: http-01 missed: [^\n]*identifier w1\.webroot\.clients\.test"
                    r"[^\n]*forwarded", text) or "similar lines suppressed" in text,
          "the gateway did not forward the CA's request to the webroot's server")
    return detail + "; served by the upstream's web server through http_miss = forward"


@case("acme.sh", "tls-alpn-01 --alpn, its listener behind [route alpn]")
def case_acme_sh_alpn():
    skip = acme_sh_missing()
    if skip:
        return skip
    names = ["t1.alpn.clients.test"]
    detail = acme_sh_issue(names, ["--alpn", "--tlsport", str(G["alpn_port"]),
                                   "--listen-v4"], "--alpn")
    check(not re.search(r"proxy: tls-alpn-01 answered: [^\n]*t1\.alpn", gw_log()),
          "the gateway answered acme-tls/1 itself, with nothing pushed")
    return detail + "; acme.sh's openssl s_server reached through tls_miss = forward"


# ---- the REST responder -------------------------------------------------------------

def rest_request(method, identifier, token, bearer, body=None, src="127.0.0.1"):
    """What simple-acme's REST plugin sends, to the gateway's port 80 with
    the identifier as Host (the hosts-file way of reaching the gateway)."""
    c = http.client.HTTPConnection("127.0.0.1", G["http"], timeout=30,
                                   source_address=(src, 0))
    try:
        c.putrequest(method, CHALLENGE + token, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", identifier)
        if bearer is not None:
            c.putheader("Authorization", "Bearer " + bearer)
        c.putheader("Accept", "application/json")
        if body is not None:
            data = body.encode()
            c.putheader("Content-Type", "text/plain; charset=utf-8")
            c.putheader("Content-Length", str(len(data)))
            c.endheaders(data)
        else:
            c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def one_challenge(name):
    """A new account's order for name: (account, order, challenge, token,
    key authorization) of its http-01 challenge."""
    acct = base.AcmeAccount()
    orderr = acct.order([name])
    cb = acct.challenge(orderr.authorizations[0], "http-01")
    return acct, orderr, cb, cb.chall.encode("token"), cb.chall.key_authorization(acct.key)


@case("simple-acme REST", "http-01 through the REST responder (3 names, one order)")
def case_rest():
    acct = base.AcmeAccount()
    names = ["r%d.rest.clients.test" % i for i in range(3)]
    orderr = acct.order(names)
    chall = []
    for authzr in orderr.authorizations:
        cb = acct.challenge(authzr, "http-01")
        chall.append((authzr.body.identifier.value, cb, cb.chall.encode("token"),
                      cb.chall.key_authorization(acct.key)))
    with concurrent.futures.ThreadPoolExecutor(len(chall)) as ex:
        puts = list(ex.map(lambda c: rest_request("PUT", c[0], c[2], TOKENS["rest"], c[3]),
                           chall))
    check([p[0] for p in puts] == [201] * len(chall), "PUTs: %s" % puts)
    stored = stored_tokens()
    for name, _, token, _ in chall:
        e = stored.get(token)
        check(e and e["identifier"] == name and e["client"] == "simple-acme",
              "PUT for %s stored %r" % (name, e))
    for _, cb, _, _ in chall:
        acct.answer(cb)
    chain = acct.finalize(orderr).fullchain_pem.encode()
    with concurrent.futures.ThreadPoolExecutor(len(chall)) as ex:
        dels = list(ex.map(lambda c: rest_request("DELETE", c[0], c[2], TOKENS["rest"]),
                           chall))
    check([d[0] for d in dels] == [204] * len(chall), "DELETEs: %s" % dels)
    stored = stored_tokens()
    check(not [c for c in chall if c[2] in stored], "entries left after the DELETEs")
    text = gw_log()
    for name, _, token, _ in chall:
        check(re.search(r"proxy: http-01 answered: [^\n]*identifier %s, key %s" % (
            re.escape(name), re.escape(token)), text), "no answer logged for %s" % name)
    check(push_methods_seen() == [], "a PUT or DELETE reached an upstream: %s" %
          push_methods_seen())
    return issued("REST", chain, names) + "; PUT 201 x3 in parallel, DELETE 204 x3"


@case("simple-acme REST", "refusals: status, nothing stored, nothing relayed")
def case_rest_refusals():
    name = "neg.rest.clients.test"
    acct, orderr, cb, token, ka = one_challenge(name)
    before = stored_tokens()
    matrix = [
        ("wrong token", dict(bearer=b64url(32), body=ka), 401),
        ("no token", dict(bearer=None, body=ka), 401),
        ("source 127.0.0.2, outside cidrs", dict(bearer=TOKENS["rest"], body=ka,
                                                 src="127.0.0.2"), 403),
        ("Host outside scope", dict(bearer=TOKENS["rest"], body=ka,
                                    identifier="www.elsewhere.test"), 403),
        ("body over 500 bytes", dict(bearer=TOKENS["rest"], body="x" * 501), 400),
        ("body not <token>.<thumbprint>", dict(bearer=TOKENS["rest"], body="not-a-keyauth"),
         400),
        ("client without rest_responder", dict(bearer=TOKENS["norest"], body=ka), 403),
    ]
    got = []
    for what, kw, want in matrix:
        st, body = rest_request("PUT", kw.pop("identifier", name), token, kw.pop("bearer"),
                                **kw)
        got.append("%s %d" % (what, st))
        check(st == want, "%s: %d %r, want %d" % (what, st, body[:200], want))
    for what, bearer, want in [("DELETE without rest_responder", TOKENS["norest"], 403),
                               ("DELETE without a token", None, 401)]:
        st, body = rest_request("DELETE", name, token, bearer)
        got.append("%s %d" % (what, st))
        check(st == want, "%s: %d %r" % (what, st, body[:200]))
    check(stored_tokens() == before, "a refused request stored something")
    check(push_methods_seen() == [], "a PUT or DELETE reached an upstream: %s" %
          push_methods_seen())
    # The CA asks; the gateway has nothing: the order fails.
    why = base.expect_invalid(acct, orderr.authorizations[0], cb)
    return "; ".join(got) + "; nothing stored, upstream saw no PUT/DELETE; CA: invalid (%s)" % (
        why[:80])


def rest_hook(args, token):
    """deploy/hooks/rest-responder.sh, run by hand: (rc, stdout, stderr)."""
    conf = os.path.join(base.WORK, "hook-empty.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write("# settings come from the environment\n")
        os.chmod(conf, 0o600)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": base.WORK,
           "ACME_EDGE_HOOK_CONFIG": conf, "ACME_EDGE_TOKEN": token,
           "ACME_EDGE_GATEWAY_ADDR": "127.0.0.1", "ACME_EDGE_GATEWAY_PORT": str(G["http"])}
    return PROCS.run_capture("rest-responder.sh", [os.path.join(
        base.HOOKS, "rest-responder.sh")] + list(args), env=env)


@case("simple-acme REST", "deploy/hooks/rest-responder.sh as a per-challenge hook")
def case_rest_hook():
    name = "hook.rest.clients.test"
    acct, orderr, cb, token, ka = one_challenge(name)
    bad = b64url(32)
    rc, out, err = rest_hook(["put", name, token, ka], bad)
    check(rc != 0 and "HTTP 401" in err and bad not in out + err,
          "a wrong token: rc %d %r" % (rc, err))
    rc, out, err = rest_hook(["put", name, token, ka], TOKENS["rest"])
    check(rc == 0 and out == "" and err == "", "put: rc %d %r %r" % (rc, out, err))
    acct.answer(cb)
    chain = acct.finalize(orderr).fullchain_pem.encode()
    rc, out, err = rest_hook(["delete", name, token], TOKENS["rest"])
    check(rc == 0 and err == "", "delete: rc %d %r" % (rc, err))
    rc, out, err = rest_hook(["delete", name, token], TOKENS["rest"])
    check(rc == 0 and err == "", "delete of what is gone: rc %d %r" % (rc, err))
    check(token not in stored_tokens(), "the entry outlived the DELETE")
    return issued("rest-responder.sh", chain, [name]) + "; 401 for a wrong token, silent " \
        "success, a second DELETE succeeds"


# ---- the run -------------------------------------------------------------------------

def main():
    for tool in ("pebble", "pebble-challtestsrv", "openssl", "setpriv", "curl"):
        check(shutil.which(tool), "%s is not installed (deploy/install-deps.sh --test)" % tool)
    check(os.access(base.ACME_EDGE, os.X_OK), "no acme-edge binary at %s (set ACME_EDGE)" %
          base.ACME_EDGE)
    try:
        base.acme_modules()
    except ImportError as e:
        raise Fail("python3-acme is missing for /usr/bin/python3 (%s)" % e)
    base.WORK = tempfile.mkdtemp(prefix="acme-edge-e2e-clients-")
    os.chmod(base.WORK, 0o700)
    ports = [free_port() for _ in range(10)]
    (dns, cts_mgmt, pebble_port, pebble_mgmt, G["api"], G["http"], G["https"],
     G["recorder_port"], G["webroot_port"], G["alpn_port"]) = ports
    G["store"] = store_path("e2e-clients")
    G["conf"] = os.path.join(base.WORK, "acme-edge.conf")
    G["gw_log"] = os.path.join(base.WORK, "acme-edge.log")
    G["webroot"] = os.path.join(base.WORK, "webroot")
    os.makedirs(G["webroot"])
    base.DIR_URL = "https://127.0.0.1:%d/dir" % pebble_port
    ok = False
    recorder = None
    try:
        ca_key, base.CA_PEM = base.make_ca(base.WORK)
        pb_key, pb_pem = base.make_leaf(base.WORK, "pebble", ca_key, base.CA_PEM,
                                        "DNS:localhost,IP:127.0.0.1")
        recorder = G["recorder"] = Recorder(G["recorder_port"])
        serve_in_thread(recorder)
        # acme.sh --webroot's web server: a real one, serving the webroot.
        web = PROCS.spawn("webroot http.server", [
            "/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
            "--directory", G["webroot"], str(G["webroot_port"])],
            out=open(os.path.join(base.WORK, "webroot-server.log"), "wb"))
        cts, pebble = base.start_pebble(dns, cts_mgmt, pebble_port, pebble_mgmt, pb_key,
                                        pb_pem, G["http"], G["https"])
        write_conf()
        G["gw"] = gw = PROCS.spawn("acme-edge", [base.ACME_EDGE, "run", "-c", G["conf"]],
                                   out=open(G["gw_log"], "wb"))
        base.wait_port(cts_mgmt, cts, "pebble-challtestsrv")
        base.wait_port(G["webroot_port"], web, "the webroot's http.server")
        base.wait_port(G["api"], gw, "acme-edge api")
        base.wait_port(G["http"], gw, "acme-edge proxy (http)")
        base.PEBBLE_ROOT = base.pebble_root(pebble, pebble_port, pebble_mgmt, base.DIR_URL)
        log("up: pebble %s, gateway http %d https %d, api %d, work %s" % (
            base.DIR_URL, G["http"], G["https"], G["api"], base.WORK))

        # acme.sh's cases share one account and run in turn; the REST ones
        # beside them.
        groups = [[case_acme_sh_stateless, case_acme_sh_webroot, case_acme_sh_alpn],
                  [case_rest, case_rest_refusals, case_rest_hook]]
        threads = [threading.Thread(target=lambda g=g: [fn() for fn in g], daemon=True)
                   for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        rc = PROCS.stop(gw, timeout=15)
        marks = sanitizer_marks(gw_log(), base.SANITIZER_MARKS)
        base.record("acme-edge", "clean stop on SIGTERM",
                    "FAIL" if rc != 0 or marks or gw.leftovers else "PASS",
                    "exit %r, sanitizer marks %s" % (rc, marks), 0)
        ok = all(r[2] != "FAIL" for r in base.RESULTS)
    except (Fail, AssertionError) as e:
        log("SETUP FAILED: %s" % e)
    except BaseException:
        log("ABORTED:\n" + traceback.format_exc())
    finally:
        PROCS.stop_all()
        if recorder is not None:
            recorder.shutdown()
            recorder.server_close()
        remove_store(G["store"])
    os.environ.setdefault("E2E_VERBOSE", "1")   # the certificates' facts too
    base.summary(ok)
    if not ok:
        base.dump_logs()
        path = os.path.join(base.WORK, "acme.sh", "acme.sh.log")
        if os.path.exists(path):
            print("\n---- acme.sh.log (last 80 lines) ----")
            print("\n".join(read_log(path).splitlines()[-80:]))
    if base.KEEP or not ok:
        log("work dir kept: %s" % base.WORK)
    else:
        shutil.rmtree(base.WORK, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    base.run(main, BUDGET)
