"""The load generators (wrk, tlsload, curl, hold.py), what each prints
parsed, and one measured run of one of them against one server."""
import os
import re
import select
import signal
import subprocess
import sys
import time

from .common import ACME_NAME, BENCH, KA_SHA, PASS_NAME
from .proc import CLIENT_CPU, PROCS, SERVER_CPU, cpu_steal, retire, run_client, steal_pct
from .peers import AcmeEdge

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_wrk(out):
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        return None
    n = int(m.group(1))
    fail = 0
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m2:
        fail += sum(int(x) for x in m2.groups())
    m3 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m3:
        fail += int(m3.group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * UNITS[unit] * 1e6   # microseconds
    return {"n": n, "fail": fail, "lat": lat}


def wrk_parse(out, rc):
    res = parse_wrk(out)
    if res is None:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rate"] = float(m.group(1)) if m else 0.0
    return res


def tls_parse(out, rc):
    m = re.search(r"RESULT ok=(\d+) fail=(\d+) secs=([\d.]+) rate=([\d.]+)(.*)", out)
    if not m:
        return None
    return {"n": int(m.group(1)), "fail": int(m.group(2)), "rate": float(m.group(4)),
            "detail": m.group(5).strip()}


def curl_parse(out, rc):
    m = re.search(r"^(\d+) ([\d.]+) (\d+)$", out.strip(), re.M)
    if not m or m.group(3) != "200" or int(m.group(1)) != 1 << 30:
        return None
    n, t = int(m.group(1)), float(m.group(2))
    return {"n": n, "fail": 0, "rate": n / t}


def measure(ctx, server, cmd, parse, timeout, keep=None):
    """Runs one load generator against one server; the server's CPU time
    (utime+stime of all its processes and threads) is read around it.
    keep: a file for the generator's whole output."""
    srv = ctx.cpu_of[server]
    prof = None
    if ctx.perf and (server in ctx.perf_servers or "all" in ctx.perf_servers):
        prof = os.path.join(ctx.perf, "%s-%s-w%d.data" % (ctx.current, server, ctx.workers))
        pids = ",".join(str(p) for p in srv.pids)
        pp = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", ctx.perf_cg,
                               "-p", pids,
                               "-o", prof], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
        PROCS.append(pp)
        time.sleep(0.3)
    u0, k0 = srv.cpu_split()
    st0 = cpu_steal(SERVER_CPU)
    t0 = time.monotonic()
    r, err = run_client(cmd, timeout)
    wall = time.monotonic() - t0
    st1 = cpu_steal(SERVER_CPU)
    time.sleep(0.1)     # the server's teardown of the last connections
    u1, k1 = srv.cpu_split()
    if prof:
        pp.send_signal(signal.SIGINT)
        try:
            pp.wait(30)
        except subprocess.TimeoutExpired:
            pass
        retire(pp)
        txt = prof[:-5] + ".txt"
        with open(txt, "w") as f:
            subprocess.run(["perf", "report", "-i", prof, "--stdio", "--no-children",
                            "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.5"],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=120)
    if err:
        return {"error": err}
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if keep:
        with open(keep, "w") as f:
            f.write(out)
    res = parse(out, r.returncode)
    if res is None or res.get("n", 0) <= 0:
        return {"error": "no result (exit %d): %s" % (r.returncode, out.strip()[-300:])}
    res["cpu"] = (u1 - u0) + (k1 - k0)
    # A run the host stole from is an outlier for a reason: each result says.
    res["steal"] = steal_pct(st0, st1)
    res["usr"], res["sys"] = u1 - u0, k1 - k0
    res["wall"] = wall
    return res


def wrk_cmd(ctx, port, path, host, conns, close, latency=False):
    d = ctx.duration
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % d, "--timeout", "5s",
           "-H", "Host: " + host]
    if close:
        cmd += ["-H", "Connection: close"]
    if latency:
        cmd.append("--latency")
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    return cmd


# What the scenarios run: each returns run(ctx, server) -> one run's result.

def wrk_load(family, path, host, conns, close, latency=False):
    def run(ctx, server):
        port = ctx.ports.target(family, server)
        return measure(ctx, server, wrk_cmd(ctx, port, path, host, conns, close, latency),
                       wrk_parse, ctx.duration + 30)
    return run


def tls_load(family, replay):
    """tlsload: acme-tls/1 handshakes checked against the key authorization
    ("alpn"), or TLS to the upstream through the :443 peek ("pass")."""
    def run(ctx, server):
        port = ctx.ports.target(family, server)
        if family == "alpn":
            cmd = [ctx.tlsload, "-p", str(port), "-s", ACME_NAME, "-a", "acme-tls/1",
                   "-e", KA_SHA, "-x", "drain"]
        else:
            cmd = [ctx.tlsload, "-p", str(port), "-s", PASS_NAME, "-a", "http/1.1",
                   "-x", "close"]
        cmd += ["-d", str(ctx.duration)]
        cmd += ["-r", "-t", "8"] if replay else ["-t", "2"]
        return measure(ctx, server, cmd, tls_parse, ctx.duration + 30)
    return run


def curl_1g(ctx, server):
    """One 1 GiB transfer through the :80 relay."""
    port = ctx.ports.target("relay", server)
    cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", "120", "-H",
           "Host: " + PASS_NAME, "-w", "%{size_download} %{time_total} %{http_code}\n",
           "http://127.0.0.1:%d/1g" % port]
    return measure(ctx, server, cmd, curl_parse, 150)


def hold_load(mode):
    """RSS per connection: the server freshly started, N connections held
    idle by hold.py (relayed, or waiting in the :443 peek), RSS before and
    after."""
    def run(ctx, server):
        srv = ctx.cpu_of[server]
        srv.restart()
        if isinstance(srv, AcmeEdge):
            port = srv.http if mode == "relay" else srv.https
        else:
            port = ctx.ports.target("relay" if mode == "relay" else "pass", server)
        time.sleep(0.3)
        before = srv.rss()
        cmd = ["taskset", "-c", CLIENT_CPU, sys.executable, os.path.join(BENCH, "hold.py"),
               mode, str(port), str(ctx.mem_conns), PASS_NAME, "--timeout", "120"]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        PROCS.append(p)
        try:
            line = b""
            end = time.monotonic() + 150
            while time.monotonic() < end:
                r, _, _ = select.select([p.stdout], [], [], 1.0)
                if r:
                    line = p.stdout.readline()
                    break
                if p.poll() is not None:
                    break
            line = line.decode(errors="replace").strip()
            if not line.startswith("READY"):
                return {"error": "holder: " + (line or "no answer")}
            time.sleep(0.5)
            after = srv.rss()
        finally:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                pass
            retire(p)
        n = ctx.mem_conns
        return {"n": n, "fail": 0, "rate": (after - before) / n, "cpu": 0.0,
                "before": before, "after": after}
    return run
