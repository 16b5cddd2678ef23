"""From runs to verdicts: per-core figures, server ÷ peer ratios, the
targets acme-edge is held to, the epoll backend's requirement, and the
acme-tls/1 ceiling that `openssl speed` sets.

results maps (workers, scenario id, server) to the list of that server's
runs, in run order: run i of two servers were neighbours in time."""
import json
import re
import statistics
import subprocess

from .common import EPOLL, EPOLL_PAR, EPOLL_PAR_SCENARIOS, PEERS, say
from .proc import SERVER_CPU
from .scenarios import compared


def med(xs):
    return statistics.median(xs) if xs else None


def per_core(r):
    if r.get("error") or not r.get("cpu"):
        return None
    return r["n"] / r["cpu"]


def cpu_per_op(results, w, sid, server, unit):
    """Median (user, kernel) CPU µs per request, or per MB for MB/s."""
    runs = [r for r in results.get((w, sid, server), [])
            if not r.get("error") and r.get("n") and "usr" in r]
    if not runs:
        return None
    def ops(r):
        return r["n"] / 1e6 if unit == "MB/s" else r["n"]
    return (med([r["usr"] / ops(r) * 1e6 for r in runs]),
            med([r["sys"] / ops(r) * 1e6 for r in runs]))


def ratio_summary(results, w, sid, peer, kind, server="acme-edge"):
    """(median ratio, [per-run ratios]) of server ÷ peer: per core for a
    rate, bytes per connection for memory."""
    a = results.get((w, sid, server), [])
    b = results.get((w, sid, peer), [])
    if kind == "mem":
        ra = [x["rate"] for x in a if not x.get("error")]
        rb = [x["rate"] for x in b if not x.get("error")]
        if not ra or not rb or med(rb) <= 0:
            return None, []
        runs = [x / y for x, y in zip(ra, rb) if y > 0]
        return med(ra) / med(rb), runs
    pa = [per_core(x) for x in a]
    pb = [per_core(x) for x in b]
    pairs = [(x, y) for x, y in zip(pa, pb) if x and y]
    if not pairs:
        return None, []
    ma = med([x for x in pa if x])
    mb = med([y for y in pb if y])
    return ma / mb, [x / y for x, y in pairs]


def backend_rows(ctx, results, workers):
    """Per worker count and scenario, acme-edge-epoll ÷ acme-edge (epoll ÷
    io_uring), ÷ HAProxy and ÷ nginx. Each cell is None or (median ratio,
    [run-by-run ratios])."""
    rows = []
    if not ctx.epoll:
        return rows
    for w in workers:
        for s in compared():
            if not results.get((w, s.id, EPOLL)):
                continue
            cells = []
            for peer in ("acme-edge", "haproxy", "nginx"):
                r, runs = ratio_summary(results, w, s.id, peer, s.kind, server=EPOLL)
                cells.append((r, runs) if r is not None else None)
            rows.append((w, s.id, s.title, s.kind, cells))
    return rows


def epoll_verdicts(ctx, results, workers):
    """"The epoll backend must stay at least on par with HAProxy per core",
    on EPOLL_PAR_SCENARIOS; on par = epoll ÷ HAProxy ≥ EPOLL_PAR. The same
    rows as target_rows', with acme-edge-epoll as the numerator."""
    if not ctx.epoll:
        return []
    targets = [("epoll on par with HAProxy (≥ %.2f×): %s" % (EPOLL_PAR, sid), [sid],
                ["haproxy"], EPOLL_PAR, "rate") for sid in EPOLL_PAR_SCENARIOS]
    return target_rows(results, workers, targets, server=EPOLL)


TARGETS = [
    # (label, scenarios, peers it is compared with, needed ratio, kind)
    ("HTTP-01 keep-alive ≥ 1.5× better peer", ["http01-ka"], ["nginx", "haproxy"], 1.5, "rate"),
    ("HTTP-01 new connection ≥ 1.5× better peer", ["http01-close"], ["nginx", "haproxy"], 1.5,
     "rate"),
    (":443 passthrough new conns (replayed hello) ≥ 1.5× better peer", ["pass-replay"],
     ["nginx", "haproxy"], 1.5, "rate"),
    (":443 passthrough new conns (full handshake) ≥ 1.5× better peer", ["pass-full"],
     ["nginx", "haproxy"], 1.5, "rate"),
    (":80 passthrough new conns (1 KiB) ≥ 1.5× better peer", ["relay-1k-close"], PEERS, 1.5,
     "rate"),
    ("1 GiB relay ≥ 1.2× HAProxy with splice", ["relay-1g"], ["haproxy-splice"], 1.2, "rate"),
    ("added p99 latency ≤ better peer's", ["latency"], PEERS, None, "latency"),
    ("bytes per idle relayed conn ≤ ½ HAProxy's", ["mem-relay"], ["haproxy"], 0.5, "mem"),
    ("bytes per conn waiting in the peek ≤ ½ HAProxy's", ["mem-peek"], ["haproxy"], 0.5, "mem"),
    ("acme-tls/1 handshakes (replayed hello) ≥ 1.5× nginx", ["alpn-replay"], ["nginx"], 1.5,
     "rate"),
    ("acme-tls/1 handshakes (full, client-bound) ≥ 1.5× nginx", ["alpn-full"], ["nginx"], 1.5,
     "rate"),
]


def latency_stats(results, w, server):
    runs = [x for x in results.get((w, "latency", server), []) if not x.get("error")]
    p50 = [x["lat"].get("50") for x in runs if x.get("lat")]
    p99 = [x["lat"].get("99") for x in runs if x.get("lat")]
    return p50, p99


def added_latency(results, w, server, pct):
    """Per-run added latency (server − direct, µs); direct measured at w=first."""
    base_w = min(k[0] for k in results)
    d50, d99 = latency_stats(results, base_w, "direct")
    s50, s99 = latency_stats(results, w, server)
    d, s = (d50, s50) if pct == "50" else (d99, s99)
    if not d or not s:
        return []
    dm = med(d)
    return [x - dm for x in s]


def target_rows(results, workers, targets=TARGETS, server="acme-edge"):
    """Rows (label, workers, ratio, run-by-run range, verdict) of server
    against each target; latency targets are acme-edge's only."""
    rows = []
    for label, sids, peers, need, kind in targets:
        for w in workers:
            for sid in sids:
                if kind == "latency":
                    a = added_latency(results, w, "acme-edge", "99")
                    best = None
                    for p in peers:
                        b = added_latency(results, w, p, "99")
                        if b and (best is None or med(b) < best[1]):
                            best = (p, med(b))
                    if not a or best is None:
                        rows.append((label, w, "—", "—", "no data"))
                        continue
                    met = med(a) <= best[1]
                    rows.append((label, w, "%s: %.1f µs vs %s %.1f µs" % (
                        "acme-edge", med(a), best[0], best[1]),
                        "added p99 (min–max %.1f–%.1f µs)" % (min(a), max(a)),
                        "met" if met else "missed"))
                    continue
                best = None
                for p in peers:
                    r, runs = ratio_summary(results, w, sid, p, kind, server=server)
                    if r is None:
                        continue
                    # the better peer: the lowest ratio (rate) / highest (memory)
                    if best is None or (r < best[1] if kind == "rate" else r > best[1]):
                        best = (p, r, runs)
                if best is None:
                    rows.append((label, w, "—", "—", "no data"))
                    continue
                p, r, runs = best
                met = r >= need if kind == "rate" else r <= need
                rng = "%.2f–%.2f" % (min(runs), max(runs)) if runs else "—"
                rows.append((label, w, "%.2f× vs %s" % (r, p), rng,
                             "met" if met else "missed"))
    return rows


def openssl_speed(ctx):
    secs = 1 if ctx.quick else 3
    cmd = ["taskset", "-c", SERVER_CPU, "openssl", "speed", "-seconds", str(secs),
           "ecdsap256", "ecdhp256", "ecdhx25519"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=120).stdout
    res = {"cmd": " ".join(cmd[3:])}
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out)
    if m:
        res["sign"], res["verify"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"256 bits ecdh \(nistp256\)\s+\S+\s+([\d.]+)", out)
    if m:
        res["ecdhp256"] = float(m.group(1))
    m = re.search(r"253 bits ecdh \(X25519\)\s+\S+\s+([\d.]+)", out)
    if m:
        res["x25519"] = float(m.group(1))
    if "sign" in res and "x25519" in res:
        res["ceiling_x25519"] = 1 / (1 / res["sign"] + 1 / res["x25519"])
        # what a server really computes: its key share, the shared secret, a signature
        res["floor_x25519"] = 1 / (1 / res["sign"] + 2 / res["x25519"])
    if "sign" in res and "ecdhp256" in res:
        res["ceiling_p256"] = 1 / (1 / res["sign"] + 1 / res["ecdhp256"])
    say("== openssl speed on CPU %s: %s" % (SERVER_CPU, json.dumps(res)))
    return res
