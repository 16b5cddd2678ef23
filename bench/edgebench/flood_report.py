"""The results of the flood scenarios: their section of the results file,
their verdicts, and their chart (validator p99 per scenario and server)."""
import os
import shutil

from .accounting import med
from .chart import HISTOGRAM, gnuplot
from .common import EPOLL
from .flood import SIZES, VALIDATOR_RATE, flood_secs, realtime
from .scenarios import of_kind

# What acme-edge is held to under every flood.
P99_MAX_MS = 10.0
PEER_RATIO = 0.25       # acme-edge's p99 ≤ this × the better peer's ...
PEER_FLOOR_MS = 5.0     # ... where either peer's p99 exceeds this
PEERS = ("nginx", "haproxy")
ACME_EDGES = ("acme-edge", EPOLL)


def somaxconn_note(ctx):
    """What the listen queues got: the kernel caps them at somaxconn."""
    now, was = getattr(ctx, "somaxconn", (None, None))
    if now is None:
        return "unknown here"
    if now != was:
        return "raised to {:,} for the run, {:,} before and after".format(now, was)
    if now < 65535:
        return "{:,} here, **which caps them**".format(now)
    return "{:,}".format(now)


def runs_of(results, w, sid, server):
    return [r for r in results.get((w, sid, server), []) if not r.get("error")]


def stat(runs, key, of="lat"):
    """Median over the runs of one validator figure (ms), with min and max:
    its latency (of="lat"), the part of it spent waiting (of="wait") or the
    validator's own CPU time (of="own_cpu")."""
    xs = [r[of][key] for r in runs if of in r]
    return (med(xs), min(xs), max(xs)) if xs else None


def fmt_ms(s):
    if s is None:
        return "—"
    m, lo, hi = s
    if lo == hi:
        return "%.1f" % m
    return "%.1f (%.1f–%.1f)" % (m, lo, hi)


def background(runs):
    """What the flood kept up, median over the runs, one phrase per part."""
    if not runs or not runs[0].get("bg"):
        return "—"
    out = []
    for part in sorted(runs[0]["bg"]):
        unit = runs[0]["bg"][part][0]
        v = med([r["bg"][part][1] for r in runs if part in r.get("bg", {})])
        if unit == "held":
            out.append("%s %s held" % (part, "{:,.0f}".format(v)))
        elif unit == "per s":
            out.append("%s {:,.0f}/s".format(v) % part)
        else:
            out.append("%s %.0f MiB/s" % (part, v))
    return "; ".join(out)


# A validator's check that got an answer, and a wrong one.
WRONG = ("status", "body", "handshake", "alpn", "ident")


def wrong_answers(results):
    """What fails a bench run whatever its timings: any validator check
    acme-edge did not pass, and any wrong answer from any server (a peer
    may run out of connections and time out under a flood; it must not
    answer wrongly)."""
    out = []
    for (w, sid, s), runs in sorted(results.items()):
        for r in runs:
            if r.get("error") or "fails" not in r:
                continue
            bad = {k: v for k, v in r["fails"].items()
                   if s in ACME_EDGES or k in WRONG}
            if bad:
                out.append("workers=%d %s %s: %s" % (w, sid, s, bad))
    return out


def median_p99(results, w, sid, server, of):
    """The median over the runs of one p99 (stat's `of`), or None: "wait",
    the server's checks with the validator's own CPU time taken out of
    each; "own_cpu", that CPU time, under which no run's p99 can fall
    whatever the server does, since a check takes at least that long."""
    s = stat(runs_of(results, w, sid, server), "99", of)
    return s[0] if s else None


def ms_or_dash(x):
    return "—" if x is None else "%.1f" % x


def calm_floor(results, w):
    """The lowest p99 any server reached with no flood (median over its
    runs), or None: the validator alone, nothing else on either CPU. A
    flood only adds work on both, so no server's p99 under one is expected
    to come under it."""
    calm = [s[0] for s in (stat(runs_of(results, w, "flood-none", x), "99")
                           for x in ACME_EDGES + PEERS) if s]
    return min(calm) if calm else None


def verdicts(results, workers):
    """Rows (scenario, workers, instance, p99, better peer's p99, ratio,
    failures, verdict, waited p99, the better peer's waited p99, the
    validator's own CPU p99 in the instance's runs) for each acme-edge
    instance; the verdict is on the p99s themselves. Where the ratio is
    missed and its bound lies under that CPU p99, the verdict says so: no
    answer from the server could have met it in those runs. Where it is
    missed and its bound lies under every server's p99 with no flood
    (calm_floor), it says so: no server answered that fast even with
    nothing else to do. Where it is missed while the instance's waited p99
    is no higher than in any of its runs with no flood, the verdict says
    that too: the flood delayed nothing, and the validator's own time under
    the flood is the rest."""
    rows = []
    floors = {w: calm_floor(results, w) for w in workers}
    for sc in of_kind("flood"):
        if sc.id == "flood-none":
            continue
        for w in workers:
            floor = floors[w]
            # (p99, peer), the better peer first.
            peers = sorted((s[0], p) for p in PEERS
                           for s in [stat(runs_of(results, w, sc.id, p), "99")] if s)
            best = peers[0][0] if peers else None
            best_waited = median_p99(results, w, sc.id, peers[0][1], "wait") if peers else None
            for ae in ACME_EDGES:
                runs = runs_of(results, w, sc.id, ae)
                s = stat(runs, "99")
                if not s:
                    continue
                fails = sum(r["fail"] for r in runs)
                ratio = s[0] / best if best else None
                ok = fails == 0 and s[0] <= P99_MAX_MS
                cpu = median_p99(results, w, sc.id, ae, "own_cpu")
                ratio_due = best is not None and peers[-1][0] > PEER_FLOOR_MS
                waited = median_p99(results, w, sc.id, ae, "wait")
                if ratio_due and ratio > PEER_RATIO:
                    calm = stat(runs_of(results, w, "flood-none", ae), "99", "wait")
                    if ok and cpu is not None and cpu > PEER_RATIO * best:
                        verdict = "not met, under the validator's own CPU"
                    elif ok and floor is not None and floor > PEER_RATIO * best:
                        verdict = "not met, under every server's p99 with no flood"
                    elif ok and calm and waited is not None and waited <= calm[2]:
                        verdict = "not met, waited as with no flood"
                    else:
                        verdict = "not met"
                else:
                    verdict = "met" if ok else "not met"
                rows.append((sc.id, w, ae, s[0], best, ratio, fails, verdict,
                             waited, best_waited, cpu))
    return rows


def floor_share(results, workers):
    """How much of the no-flood p99 is the validator's own CPU time, as a
    phrase over every server's flood-none runs."""
    runs = [r for w in workers for s in ACME_EDGES + PEERS
            for r in runs_of(results, w, "flood-none", s) if "wait" in r]
    if not runs:
        return "no figure"
    lo, hi = (f(r["lat"]["99"] - r["wait"]["99"] for r in runs) for f in (min, max))
    return "%.1f ms" % lo if "%.1f" % lo == "%.1f" % hi else "%.1f–%.1f ms" % (lo, hi)


def flood_section(ctx, results, workers, png):
    scs = of_kind("flood")
    if not any(runs_of(results, w, sc.id, s) for sc in scs for w in workers
               for s in ACME_EDGES + PEERS):
        return []
    L = ["## Validators under floods", ""]
    L.append(
        "Each server is set up as the same challenge gateway on two ports: port 80 "
        "answers http-01 and relays the rest, port 443 answers acme-tls/1 (nginx and "
        "HAProxy through a local TLS listener chosen by ALPN) and passes the rest "
        "through by name; acme-edge runs its default limits. Every gateway listener "
        "asks for a listen queue of 65,535 (net.core.somaxconn %s) and defers a "
        "connection until it sends: acme-edge's `defer_accept` (15 s by default), "
        "HAProxy's `defer-accept` and nginx's `deferred` (a fixed second each; "
        "nginx's stream module, on :443, has no such option in Debian 12's 1.22). "
        "While a flood runs from "
        "the client CPU, a validator makes %d http-01 GETs and %d acme-tls/1 handshakes "
        "a second for %d s, each on a new connection as a CA does, started on schedule "
        "whatever the earlier ones are doing, each answer checked (the key authorization; "
        "ALPN and the acmeIdentifier), with 10 s allowed. Latency runs from `socket()` "
        "to the checked answer. The validator runs at real-time priority%s so that the "
        "floods' competition for the client CPU is not measured, and idle CPUs are kept "
        "from halting (`/dev/cpu_dma_latency` = 0%s), so that no server is charged "
        "with a virtual CPU's wake-up. `flood-none` is the validator alone: its floor, "
        "mostly the client's own TLS handshake." % (
            somaxconn_note(ctx), VALIDATOR_RATE, VALIDATOR_RATE, flood_secs(ctx),
            "" if realtime() else " (**refused here: figures include the client's "
            "scheduling**)",
            "" if getattr(ctx, "cpus_awake", True) else "; **not possible here**"))
    L.append("")
    L.append("The floods: idle %s connections that never send (%d processes); slow %s "
             "connections sending a byte every %.0f s; newconn %d concurrent new :443 "
             "passthrough connections to an upstream that answers and closes; bulk %d "
             "relayed connections fetching 1 MiB back to back; garbage %d concurrent "
             "connections sending invalid ClientHellos, oversized heads and bad PROXY "
             "headers; mixed, all at once. Each server's listeners, routes and timeouts: "
             "bench/edgebench/peers/." % (
                 "{:,}".format(SIZES["idle"]["conns"]), SIZES["idle"]["procs"],
                 "{:,}".format(SIZES["slow"]["conns"]), SIZES["slow"]["interval_ms"] / 1000,
                 SIZES["newconn"]["conc"], SIZES["bulk"]["conns"], SIZES["garbage"]["conc"]))
    L.append("")
    for w in workers:
        L.append("### workers=%d" % w)
        L.append("")
        L.append("| flood | server | validator p50 ms | p99 ms | max ms | failed | "
                 "http-01 p99 | acme-tls/1 p99 | waited p99 | the flood kept up | steal % |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for sc in scs:
            for s in ACME_EDGES + PEERS:
                runs = runs_of(results, w, sc.id, s)
                if not runs:
                    continue
                L.append("| %s | %s | %s | %s | %.1f | %d of %d | %.1f | %.1f | %s | %s | %s |" % (
                    sc.id, s, fmt_ms(stat(runs, "50")), fmt_ms(stat(runs, "99")),
                    max(r["lat"]["max"] for r in runs), sum(r["fail"] for r in runs),
                    sum(r["n"] for r in runs), med([r["http"]["99"] for r in runs]),
                    med([r["tls"]["99"] for r in runs]), fmt_ms(stat(runs, "99", "wait")),
                    background(runs),
                    " / ".join("%.1f" % r.get("steal", 0) for r in runs)))
        L.append("")
    L.append("*steal %*: the share of the server CPU's time that the virtual machine's "
             "host took for other work during each run's validator window, run by run: "
             "a run with a few percent is the usual outlier.")
    L.append("")
    L.append("Held to: no failure, p99 ≤ %.0f ms, and p99 ≤ %.0f %% of the better peer's "
             "wherever a peer's exceeds %.0f ms." % (P99_MAX_MS, PEER_RATIO * 100,
                                                   PEER_FLOOR_MS))
    L.append("")
    L.append("| flood | workers | instance | p99 ms | better peer's p99 ms | ratio | "
             "failed | verdict | validator's own CPU p99 ms | "
             "waited p99 ms: instance / better peer | ratio |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for sid, w, ae, p99, best, ratio, fails, v, wt, best_wt, cpu in verdicts(results, workers):
        L.append("| %s | %d | %s | %.1f | %s | %s | %d | %s | %s | %s / %s | %s |" % (
            sid, w, ae, p99, "%.1f" % best if best else "—",
            "%.2f" % ratio if ratio else "—", fails, v, ms_or_dash(cpu),
            ms_or_dash(wt), ms_or_dash(best_wt),
            "%.2f" % (wt / best_wt) if wt is not None and best_wt else "—"))
    L.append("")
    L.append("*Validator's own CPU*: the p99 of the CPU time the validator's thread ran "
             "for each check in this instance's runs. Every check takes at least its own "
             "CPU time, so a run's p99 is never under that run's CPU p99 whatever the "
             "server does; where %.0f %% of the better peer's p99 lies under it, no answer "
             "could have met the ratio in those runs, and the verdict says so. The figure "
             "grows under a flood because the flood's clients share the validator's CPU, "
             "its caches and its network receive work. *Under every server's p99 with "
             "no flood*: that bound lies under the lowest p99 any server reached with the "
             "validator alone (%s): none answered that fast even with nothing else to do. "
             "*Waited as with no flood*: the "
             "ratio is missed, but the instance's waited p99 (below) is no higher than in "
             "its runs with no flood: the flood added no wait for the server, and what "
             "the validator's own work took under the flood makes the difference." % (
                 PEER_RATIO * 100, ", ".join(
                     "workers=%d %s ms" % (w, ms_or_dash(calm_floor(results, w)))
                     for w in workers)))
    L.append("")
    L.append("*Waited*: each check's latency less the CPU time the validator's own "
             "thread ran for it (its TLS or HTTP client work and its system calls), "
             "which leaves the time it waited for the server and for the kernel to "
             "carry the packets; the p99 of that over the run's checks. It takes out "
             "the validator's own floor, which every server shares (with no flood, the "
             "p99 less the waited p99 is %s here). The verdict is on the p99s themselves." % (
                 floor_share(results, workers)))
    L.append("")
    if png:
        L += ["![validator p99 under floods](%s)" % os.path.basename(png), ""]
    return L


def flood_chart(ctx, results, png_path):
    """Validator p99 per flood and server, log scale, a panel per worker count."""
    scs = [sc for sc in of_kind("flood")]
    servers = [s for s in ACME_EDGES + PEERS
               if any(runs_of(results, w, sc.id, s) for w in ctx.worker_counts for sc in scs)]
    if not shutil.which("gnuplot") or not servers:
        return None
    data = os.path.join(ctx.work, "floods.dat")
    with open(data, "w") as f:
        for w in ctx.worker_counts:
            f.write("# workers=%d\n" % w)
            for sc in scs:
                vals = []
                for s in servers:
                    st = stat(runs_of(results, w, sc.id, s), "99")
                    vals.append("%.3f" % st[0] if st else "-")
                f.write('"%s" %s\n' % (sc.id[len("flood-"):], " ".join(vals)))
            f.write("\n\n")
    gp = os.path.join(ctx.work, "floods.gp")
    n = len(ctx.worker_counts)
    with open(gp, "w") as f:
        f.write(HISTOGRAM % (380 * n, png_path))
        f.write("""set logscale y
set yrange [1:*]
set ytics (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
set ylabel "validator p99, ms (log scale)"
set multiplot layout %d,1 title "Validator p99 under each flood (lower is better; the dashed line is %.0f ms)"
""" % (n, P99_MAX_MS))
        for i, w in enumerate(ctx.worker_counts):
            f.write('set title "workers=%d%s"\n' % (
                w, " (both workers on one core)" if w > 1 else ""))
            cols = ", ".join('"%s" index %d using %d%s title "%s"' % (
                data if j == 0 else "", i, j + 2, ":xtic(1)" if j == 0 else "", s)
                for j, s in enumerate(servers))
            f.write("plot %s, %.0f with lines lc rgb \"black\" dt 2 notitle\n" % (
                cols, P99_MAX_MS))
        f.write("unset multiplot\n")
    return gnuplot(gp, png_path)
