#!/usr/bin/python3
"""
End to end, cluster mode: real certificates from Pebble validating against
three acme-edge nodes, the ACME clients pushing every challenge to ONE
node's API.

Starts, with ports chosen per run:
  - redis-server on 127.0.0.1 (no persistence),
  - three `acme-edge run` nodes A, B, C sharing it ([cluster], ack = all),
    each binding the validation ports on its own address: 127.0.0.2, .3
    and .4 (the same port numbers on each: Pebble's httpPort and tlsPort say
    where it connects), each API on its own 127.0.0.1 port,
  - pebble-challtestsrv as DNS only, every test name given one A record
    (its management API's add-a) pointing at one of the three nodes,
  - Pebble with real validation.
Then python3-acme orders one certificate for six names, two per node, one
http-01 and one tls-alpn-01 on each, and certbot (http-01, through
deploy/hooks/certbot-*.sh) one for two names on B and C: every challenge is
pushed to node A only, and every validation lands where DNS sends it. It
checks each order succeeds and its chain verifies against Pebble's root,
that each validation was answered by the node the name resolves to and by
no other (the proxies' logs), and that GET /v1/challenges on A shows the
hit records of B and C.

Reuses tests/e2e/run_e2e.py's process registry, certificate helpers and
python3-acme client. Environment: ACME_EDGE, ACME_EDGE_HOOKS, E2E_BUDGET
(seconds, default 240), E2E_KEEP=1 (keep the work dir).
"""
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import run_e2e as e2e  # noqa: E402
from harness import conf_text, read_log, remove_store, sha256_hex, store_path  # noqa: E402
from ports import free_port  # noqa: E402

BUDGET = float(os.environ.get("E2E_BUDGET", "240"))
NODES = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
log, check, Fail = e2e.log, e2e.check, e2e.Fail


def port_on_all(addrs):
    """A port that binds on every one of addrs (free_port checks 127.0.0.1)."""
    for _ in range(200):
        p = free_port()
        try:
            for a in addrs:
                with socket.socket() as s:
                    s.bind((a, p))
            return p
        except OSError:
            continue
    raise Fail("no port free on all of %s" % addrs)


def http_json(url, body=None, token=None, method=None, timeout=15):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
            return r.status, json.loads(data) if data.strip() else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def node_conf(name, api_port, http, https, redis_port, store, tokens):
    return conf_text([
        ("store", {"path": store, "capacity": "128"}),
        ("api", {"listen": "127.0.0.1:%d" % api_port, "default_ttl": "10m",
                 "timeout": "10s"}),
        ("client acme", {"token_sha256": sha256_hex(tokens["acme"]),
                         "identifiers": "*.cluster.test"}),
        ("client certbot", {"token_sha256": sha256_hex(tokens["certbot"]),
                            "identifiers": "*.cb.cluster.test"}),
        ("proxy", {"http": "%s:%d" % (NODES[name], http),
                   "https": "%s:%d" % (NODES[name], https), "workers": "1",
                   "http_miss": "404", "tls_miss": "reject"}),
        ("cluster", {"redis": "127.0.0.1:%d" % redis_port, "node": name,
                     "ack": "all", "ack_timeout_ms": "3000"}),
        ("log", {"level": "info"}),
    ], comment="node %s of the cluster end-to-end run" % name)


def answered_by(kind, name):
    """The nodes whose proxy logged answering this name."""
    pat = re.compile(r"proxy: %s answered: client [^,]*, identifier %s\b" % (
        re.escape(kind), re.escape(name)))
    return sorted(n for n in NODES if pat.search(read_log(os.path.join(
        e2e.WORK, "node-%s.log" % n))))


def main():
    for tool in ("pebble", "pebble-challtestsrv", "certbot", "redis-server", "setpriv"):
        check(shutil.which(tool), "%s is not installed (deploy/install-deps.sh --test)" % tool)
    check(os.access(e2e.ACME_EDGE, os.X_OK), "no acme-edge at %s (set ACME_EDGE)" % e2e.ACME_EDGE)
    e2e.acme_modules()
    work = tempfile.mkdtemp(prefix="acme-edge-cluster-e2e-")
    os.chmod(work, 0o700)
    e2e.WORK = work
    tokens = {"acme": e2e.b64url(32), "certbot": e2e.b64url(32)}
    dns_port, cts_mgmt, pebble_port, pebble_mgmt, redis_port = [free_port() for _ in range(5)]
    http = port_on_all(NODES.values())
    https = port_on_all(NODES.values())
    apis = {n: free_port() for n in NODES}
    stores = {n: store_path("cluster-e2e", n) for n in NODES}
    e2e.DIR_URL = "https://127.0.0.1:%d/dir" % pebble_port
    procs = e2e.PROCS
    results = []
    try:
        ca_key, e2e.CA_PEM = e2e.make_ca(work)
        pb_key, pb_pem = e2e.make_leaf(work, "pebble", ca_key, e2e.CA_PEM,
                                       "DNS:localhost,IP:127.0.0.1")
        redis = procs.spawn("redis-server", [
            "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", work],
            out=open(os.path.join(work, "redis.log"), "wb"))
        cts, pebble = e2e.start_pebble(dns_port, cts_mgmt, pebble_port, pebble_mgmt,
                                       pb_key, pb_pem, http, https,
                                       default_ipv4=NODES["a"])
        e2e.wait_port(redis_port, redis, "redis-server")
        gws = {}
        for n in NODES:
            conf = os.path.join(work, "node-%s.conf" % n)
            with open(conf, "w") as f:
                f.write(node_conf(n, apis[n], http, https, redis_port, stores[n], tokens))
            os.chmod(conf, 0o600)
            gws[n] = procs.spawn("node " + n, [e2e.ACME_EDGE, "run", "-c", conf],
                                 out=open(os.path.join(work, "node-%s.log" % n), "wb"))
        for n in NODES:
            e2e.wait_port(apis[n], gws[n], "node %s api" % n)
            deadline = time.monotonic() + 20
            while http_json("http://127.0.0.1:%d/healthz" % apis[n])[0] != 200:
                check(time.monotonic() < deadline, "node %s never ready" % n)
                time.sleep(0.1)
        e2e.wait_port(cts_mgmt, cts, "pebble-challtestsrv")
        e2e.PEBBLE_ROOT = e2e.pebble_root(pebble, pebble_port, pebble_mgmt, e2e.DIR_URL)
        log("up: redis %d, nodes %s on ports %d/%d, APIs %s, pebble %d" % (
            redis_port, NODES, http, https, apis, pebble_port))

        # DNS: each name to the node it is meant to reach.
        plan = [("n%d.cluster.test" % i, "abc"[i % 3], ("http-01", "tls-alpn-01")[i // 3])
                for i in range(6)]
        cb_names = [("cb1.cb.cluster.test", "b"), ("cb2.cb.cluster.test", "c")]
        for name, node in [(p[0], p[1]) for p in plan] + cb_names:
            st, body = http_json("http://127.0.0.1:%d/add-a" % cts_mgmt,
                                 {"host": name + ".", "addresses": [NODES[node]]})
            check(st == 200, "challtestsrv add-a %s: %s %s" % (name, st, body))

        # python3-acme: one order, six names; every push goes to A.
        t0 = time.monotonic()
        acct = e2e.AcmeAccount()
        orderr = acct.order([p[0] for p in plan])
        kinds = dict((p[0], p[2]) for p in plan)
        cbs = []
        for authzr in orderr.authorizations:
            name = authzr.body.identifier.value
            cb = acct.challenge(authzr, kinds[name])
            ka = cb.chall.key_authorization(acct.key)
            if kinds[name] == "http-01":
                path = "/v1/http-01/" + cb.chall.encode("token")
                body = {"key_authorization": ka, "identifier": name}
            else:
                path = "/v1/tls-alpn-01/" + name
                body = {"key_authorization": ka}
            st, reply = http_json("http://127.0.0.1:%d%s" % (apis["a"], path), body,
                                  tokens["acme"], "PUT")
            check(st == 201, "PUT %s on A: %s %s" % (path, st, reply))
            cbs.append(cb)
        for cb in cbs:
            acct.answer(cb)
        chain = acct.finalize(orderr).fullchain_pem.encode()
        detail = e2e.verify_chain("python3-acme", chain, [p[0] for p in plan])
        for name, node, kind in plan:
            got = answered_by(kind, name)
            check(got == [node], "%s %s: answered by %s, DNS sends it to %s" % (
                kind, name, got, node))
        results.append("python3-acme: 6 names, an http-01 and a tls-alpn-01 on each node, "
                       "all pushed to A, each validated on the node DNS names; %s (%.1fs)" % (
                           detail, time.monotonic() - t0))

        # Hit records of B and C, on A.
        deadline = time.monotonic() + 10
        while True:
            st, lst = http_json("http://127.0.0.1:%d/v1/challenges" % apis["a"],
                                token=tokens["acme"])
            seen = {}
            for e in lst["challenges"]:
                name = e.get("identifier")
                seen[name] = sorted(h["node"] for h in e.get("hits", [])
                                    if h["outcome"] == "answered")
            want = {name: [node] for name, node, _ in plan}
            if all(seen.get(k) == v for k, v in want.items()):
                break
            check(time.monotonic() < deadline, "hit records on A: %s, want %s" % (
                seen, want))
            time.sleep(0.2)
        results.append("GET /v1/challenges on A: each entry's hits name the node "
                       "that answered it (%s)" % ", ".join(
                           "%s:%s" % (k, v[0]) for k, v in sorted(want.items())))

        # certbot with the project's hooks, pointed at A only.
        t0 = time.monotonic()
        d = os.path.join(work, "certbot")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_EDGE")}
        empty = os.path.join(work, "hook-empty.conf")
        with open(empty, "w") as f:
            f.write("# settings come from the environment\n")
        os.chmod(empty, 0o600)
        env.update(REQUESTS_CA_BUNDLE=e2e.CA_PEM, HOME=work, ACME_EDGE_HOOK_CONFIG=empty,
                   ACME_EDGE_API="http://127.0.0.1:%d" % apis["a"],
                   ACME_EDGE_TOKEN=tokens["certbot"])
        argv = ["certbot", "certonly", "--manual", "--preferred-challenges", "http",
                "--manual-auth-hook", os.path.join(e2e.HOOKS, "certbot-auth.sh"),
                "--manual-cleanup-hook", os.path.join(e2e.HOOKS, "certbot-cleanup.sh"),
                "--server", e2e.DIR_URL, "--config-dir", d + "/config",
                "--work-dir", d + "/work", "--logs-dir", d + "/logs", "--agree-tos",
                "--register-unsafely-without-email", "--non-interactive",
                "--no-random-sleep-on-renew", "--cert-name", "cluster"]
        for name, _ in cb_names:
            argv += ["-d", name]
        rc, out = procs.run("certbot", argv, env=env, timeout=120)
        check(rc == 0, "certbot exited %d:\n%s" % (rc, out[-4000:]))
        with open(os.path.join(d, "config/live/cluster/fullchain.pem"), "rb") as f:
            detail = e2e.verify_chain("certbot", f.read(), [n for n, _ in cb_names])
        for name, node in cb_names:
            got = answered_by("http-01", name)
            check(got == [node], "certbot %s: answered by %s, not %s" % (name, got, node))
        # Its cleanup hook, sent to A, removed the entries on every node.
        for n in NODES:
            st, lst = http_json("http://127.0.0.1:%d/v1/challenges" % apis[n],
                                token=tokens["certbot"])
            check(st == 200 and not lst["challenges"],
                  "node %s still holds certbot entries: %s" % (n, lst))
        results.append("certbot + deploy/hooks at A: 2 names validated on B and C; %s; "
                       "cleanup removed them on all nodes (%.1fs)" % (
                           detail, time.monotonic() - t0))

        # Every node stops cleanly.
        for n in NODES:
            rc = procs.stop(gws[n], timeout=15)
            text = read_log(os.path.join(work, "node-%s.log" % n))
            marks = [m for m in e2e.SANITIZER_MARKS if m in text]
            check(rc == 0 and not marks, "node %s: exit %r, sanitizer %s" % (n, rc, marks))
        results.append("all three nodes stopped cleanly (exit 0, no sanitizer report)")
        ok = True
    except (Fail, AssertionError) as err:
        log("FAIL: %s" % err)
        ok = False
    except Exception:  # noqa: BLE001
        log("ABORTED:\n" + traceback.format_exc())
        ok = False
    finally:
        procs.stop_all()
        for s in stores.values():
            remove_store(s)
    print("\n==== cluster e2e summary ====")
    for r in results:
        print("PASS  " + r)
    if not ok:
        for name in ["node-a.log", "node-b.log", "node-c.log", "pebble.log"]:
            text = read_log(os.path.join(work, name))
            print("\n---- %s (last 60 lines) ----\n%s" % (name, "\n".join(
                text.splitlines()[-60:])))
    print("%d passed, %d failed" % (len(results), 0 if ok else 1))
    if ok and os.environ.get("E2E_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)
    else:
        log("work dir kept: %s" % work)
    return 0 if ok else 1


def on_alarm(signum, frame):
    raise Fail("time budget of %ds exhausted" % BUDGET)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, e2e.on_signal)
    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(BUDGET))
    try:
        rc = main()
    finally:
        signal.alarm(0)
        e2e.PROCS.stop_all()
    sys.exit(rc)
