"""Validators under floods: a background flood against one server's two
gateway ports (:80 and :443 of the same challenge gateway), and in the
foreground the validator, which makes new-connection http-01 GETs and
acme-tls/1 handshakes on schedule, as a CA does, and checks each answer.

The floods (bench/floodload.c, and wrk for bulk) run on the client CPU at
normal priority; the validator runs there too, under SCHED_FIFO, so that
what it measures is the server's delay and not the load generators'
competition for the client CPU."""
import os
import re
import select
import signal
import struct
import subprocess
import time

from .clients import measure
from .common import ACME_NAME, FLOOD_NAME, KA, PASS_NAME, TOKEN
from .proc import CLIENT_CPU, PROCS, retire

# Per flood part, at full size and in --quick (a smoke test of the same
# machinery, with the validator's answers checked).
SIZES = {
    "idle": {"conns": 15000, "procs": 4, "quick_conns": 1000, "quick_procs": 2},
    "slow": {"conns": 5000, "interval_ms": 3000, "quick_conns": 500},
    "newconn": {"conc": 512, "quick_conc": 64},
    "bulk": {"conns": 200, "quick_conns": 20},
    "garbage": {"conc": 256, "quick_conc": 32},
}
MIXED = ("idle", "slow", "newconn", "bulk", "garbage")
HELD = ("idle", "slow")     # connections opened first, then held
VALIDATOR_RATE = 20         # per second and kind
READY_WAIT = 90             # seconds for the held connections to be open


_awake = None


def keep_cpus_awake():
    """Holds /dev/cpu_dma_latency at 0 for the rest of the bench: an idle
    CPU then polls instead of halting. A halted virtual CPU takes up to
    milliseconds to wake, and that wake-up would be measured as the
    server's delay whenever its CPU had nothing to do. Where the file
    cannot be opened (not root, no such device) the figures are taken
    anyway and the results say so."""
    global _awake
    if _awake is None:
        try:
            _awake = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
            os.write(_awake, struct.pack("i", 0))
        except OSError:
            _awake = -1
    return _awake >= 0


def flood_secs(ctx):
    """How long the validator runs under each flood."""
    return 2 if ctx.quick else max(10, 2 * ctx.duration)


def size(ctx, part, key):
    s = SIZES[part]
    return s.get("quick_" + key, s[key]) if ctx.quick else s[key]


def commands(ctx, server, part):
    """The processes of one flood part: [(label, argv)]."""
    p80 = "%d/http" % ctx.ports.target("gw80", server)
    p443 = "%d/tls" % ctx.ports.target("gw443", server)
    # Outlives the validator; stopped by SIGTERM when it is done.
    d = str(flood_secs(ctx) + READY_WAIT + 30)
    fl = ctx.floodload
    if part == "idle":
        procs = size(ctx, part, "procs") if "procs" in SIZES[part] else 1
        per = size(ctx, part, "conns") // procs
        return [("idle", [fl, "hold", "-p", p80, "-p", p443, "-n", str(per), "-s", PASS_NAME,
                          "-d", d]) for _ in range(procs)]
    if part == "slow":
        return [("slow", [fl, "hold", "-p", p80, "-p", p443, "-n",
                          str(size(ctx, part, "conns")), "-s", PASS_NAME,
                          "-i", str(SIZES[part]["interval_ms"]), "-d", d])]
    if part == "newconn":
        return [("newconn", [fl, "churn", "-k", "hello", "-p", p443, "-s", FLOOD_NAME,
                             "-c", str(size(ctx, part, "conc")), "-d", d])]
    if part == "garbage":
        return [("garbage", [fl, "churn", "-k", "garbage", "-p", p80, "-p", p443,
                             "-c", str(size(ctx, part, "conc")), "-d", d])]
    if part == "bulk":
        n = size(ctx, part, "conns")
        # wrk prints its figures only when its time is up: it runs for the
        # validator's time and a little more, and is waited for.
        return [("bulk", ["wrk", "-t1", "-c%d" % n, "-d%ds" % (flood_secs(ctx) + 2),
                          "--timeout", "10s",
                          "-H", "Host: " + PASS_NAME,
                          "http://127.0.0.1:%d/1m" % ctx.ports.target("gw80", server)])]
    raise ValueError(part)


def start(label, argv):
    p = subprocess.Popen(["taskset", "-c", CLIENT_CPU] + argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    PROCS.append(p)
    p.label = label
    p.held = None
    return p


def wait_ready(procs):
    """Until every holder has said READY; False when one died first."""
    end = time.monotonic() + READY_WAIT
    waiting = [p for p in procs if p.label in HELD and p.held is None]
    while waiting and time.monotonic() < end:
        r, _, _ = select.select([p.stdout for p in waiting], [], [], 1.0)
        for p in list(waiting):
            if p.stdout in r:
                line = p.stdout.readline().decode(errors="replace")
                if line.startswith("READY"):
                    m = re.search(r"held=(\d+)", line)
                    p.held = int(m.group(1)) if m else 0
                    waiting.remove(p)
                elif not line:
                    return False
    return not waiting


def stop(procs):
    """SIGTERM (wrk ends by itself), then each flood's own figures:
    {label: [parsed RESULT lines]}."""
    for p in procs:
        if p.label == "bulk":
            continue
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    out = {}
    for p in procs:
        try:
            text, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            retire(p)
            text = b""
        if p in PROCS:
            PROCS.remove(p)
        out.setdefault(p.label, []).append(parse_flood(text.decode(errors="replace"), p.held))
    return out


def parse_flood(text, held):
    m = re.search(r"^RESULT (.*)$", text, re.M)
    if m:
        r = dict(kv.split("=", 1) for kv in m.group(1).split())
        r["ready_held"] = held
        return r
    m = re.search(r"(\d+) requests in ([\d.]+)s", text)
    if m:       # wrk: 1 MiB responses, so requests a second are MiB/s
        return {"mode": "wrk", "done": m.group(1), "secs": m.group(2),
                "rate": "%.1f" % (int(m.group(1)) / float(m.group(2)))}
    return {"mode": "none", "tail": text.strip()[-200:]}


def background_rate(parts):
    """Per part, what the flood kept up: connections held (idle, slow), new
    connections a second (newconn, garbage), MiB/s (bulk)."""
    rates = {}
    for label, rs in parts.items():
        if label in ("idle", "slow"):
            rates[label] = ("held", sum(int(r.get("ready_held") or 0) for r in rs),
                            sum(int(r.get("closed_by_server", 0)) for r in rs))
        elif label in ("newconn", "garbage"):
            rates[label] = ("per s", sum(float(r.get("rate", 0)) for r in rs),
                            sum(int(r.get("failed", 0)) + int(r.get("timeouts", 0))
                                for r in rs))
        elif label == "bulk":
            rates[label] = ("MiB/s", sum(float(r.get("rate", 0)) for r in rs), 0)
    return rates


_rt = None


def realtime():
    """The validator's command prefix: real-time priority where this
    machine grants it (root, no container policy against it), else none,
    and the results say so."""
    global _rt
    if _rt is None:
        ok = subprocess.run(["chrt", "-f", "50", "true"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode == 0
        _rt = ["chrt", "-f", "50"] if ok else []
    return _rt


def validator_cmd(ctx, server, secs=None):
    return realtime() + [ctx.floodload, "validate",
            "--http", str(ctx.ports.target("gw80", server)),
            "--https", str(ctx.ports.target("gw443", server)),
            "-s", ACME_NAME, "-T", TOKEN, "-K", KA, "-r", str(VALIDATOR_RATE),
            "-d", str(secs or flood_secs(ctx))]


def parse_validate(out, rc):
    m = re.search(r"^RESULT mode=validate (.*)$", out, re.M)
    if not m:
        return None
    r = dict(kv.split("=", 1) for kv in m.group(1).split())
    res = {"n": int(r["n"]), "fail": int(r["fail"]),
           "lat": {"50": float(r["p50"]), "99": float(r["p99"]), "max": float(r["max"])},
           "fails": {k[5:]: int(v) for k, v in r.items() if k.startswith("fail_")},
           "wait": {"50": float(r["wait_p50"]), "99": float(r["wait_p99"])},
           "own_cpu": {"50": float(r["cpu_p50"]), "99": float(r["cpu_p99"])}}
    for kind in ("http", "tls"):
        res[kind] = {"n": int(r[kind + "_n"]), "fail": int(r[kind + "_fail"]),
                     "50": float(r[kind + "_p50"]), "99": float(r[kind + "_p99"]),
                     "max": float(r[kind + "_max"]),
                     "wait": {"50": float(r[kind + "_wait_p50"]),
                              "99": float(r[kind + "_wait_p99"])},
                     "own_cpu": {"50": float(r[kind + "_cpu_p50"]),
                                 "99": float(r[kind + "_cpu_p99"])}}
    # The table's "rate" column: the validator's p99 in ms (lower is better).
    res["rate"] = res["lat"]["99"]
    return res


def flood_load(parts):
    """run(ctx, server) for a scenario whose background is `parts`."""
    def run(ctx, server):
        ctx.cpus_awake = keep_cpus_awake()
        procs = []
        res = None
        try:
            # The held connections first, all open before the rest starts.
            for part in sorted(parts, key=lambda x: x not in HELD):
                if part not in HELD and not wait_ready(procs):
                    break
                for label, argv in commands(ctx, server, part):
                    procs.append(start(label, argv))
            if wait_ready(procs):
                time.sleep(1.0)     # the churning floods at full pace
                cmd, keep = validator_cmd(ctx, server), None
                if ctx.trace:
                    cmd.append("--trace")
                    keep = os.path.join(ctx.trace, "%s-%s-w%d-run%d.txt" % (
                        ctx.current, server, ctx.workers, ctx.run_index + 1))
                res = measure(ctx, server, cmd, parse_validate, flood_secs(ctx) + 30, keep)
        finally:
            bg = stop(procs)
        if res is None:
            return {"error": "a flood did not start: %s" % bg}
        if "error" in res:
            return res
        res["bg"] = background_rate(bg)
        time.sleep(1.0)         # the server closes what the floods left
        return res
    return run
