"""The results file (markdown, one section per question it answers) and the
table of the latest full run in bench/README.md."""
import os
import platform
import shlex
import statistics
import sys

from .accounting import (added_latency, backend_rows, cpu_per_op, epoll_verdicts, latency_stats,
                         med, per_core, ratio_summary, target_rows)
from .common import (ACME_NAME, BENCH, CHAL_PATH, EPOLL, EPOLL_PAR, EPOLL_PAR_SCENARIOS, KA,
                     KA_SHA, PASS_NAME, PEERS, SERVERS)
from .flood_report import flood_section
from .proc import CLIENT_CPU, SERVER_CPU, cpu_steal, sh
from .scenarios import of_kind

TARGETS_HEAD = ["| target | workers | acme-edge ÷ better peer, per core | run-by-run min–max "
                "| verdict |", "| --- | --- | --- | --- | --- |"]
EPOLL_HEAD = ["| requirement | workers | epoll ÷ HAProxy, per core | run-by-run min–max "
              "| verdict |", "| --- | --- | --- | --- | --- |"]


def verdict_lines(rows):
    """Rows of target_rows as the lines of a markdown table."""
    return ["| %s | %d | %s | %s | %s |" % r for r in rows]


def measured(rows):
    """The verdict rows this run has figures for: a partial run (`--only`)
    leaves the others out of the file rather than listing them empty."""
    return [r for r in rows if r[-1] != "no data"]


def with_rows(L):
    """A section's lines, or none when its first table has no row."""
    for i, line in enumerate(L):
        if line.startswith("| ---"):
            return L if i + 1 < len(L) and L[i + 1].startswith("|") else []
    return L


def fmt(x, unit=""):
    if x is None:
        return "—"
    if unit == "MB/s":
        return "{:,.0f}".format(x / 1e6)
    if abs(x) >= 100:
        return "{:,.0f}".format(x)
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_range(xs, unit=""):
    if not xs:
        return "—"
    if len(xs) == 1:
        return fmt(xs[0], unit)
    return "%s (%s–%s)" % (fmt(med(xs), unit), fmt(min(xs), unit), fmt(max(xs), unit))



def versions(ctx):
    v = {}
    v["acme-edge"] = sh("%s version | head -1" % ctx.exe)
    v["nginx"] = sh("nginx -v 2>&1")
    v["haproxy"] = sh("haproxy -v | head -1")
    v["openssl"] = sh("openssl version")
    v["wrk"] = sh("wrk --version 2>&1 | head -1")
    v["curl"] = sh("curl --version | head -1")
    v["kernel"] = platform.release()
    v["debian"] = sh("cat /etc/debian_version")
    v["cpu"] = sh("lscpu | sed -n 's/^Model name: *//p' | head -1")
    v["cores"] = str(os.cpu_count())
    v["memory"] = sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'")
    v["commit"] = ctx.commit
    return v



def backends_text(ctx, name):
    """What the instance really ran, per worker count when it differed."""
    seen = ctx.backends.get(name, {})
    if not seen:
        return "not run"
    if len(set(seen.values())) == 1:
        return next(iter(seen.values()))
    return ", ".join("workers=%d: %s" % (w, b) for w, b in sorted(seen.items()))


def report(ctx, results, speed, errors, md_path, png_path, wall, flood_png=None):
    """Writes the results file; returns the verdict rows (targets, epoll)."""
    workers = ctx.worker_counts
    v = versions(ctx)
    trows = target_rows(results, workers)
    erows = epoll_verdicts(ctx, results, workers)
    L = head_section(ctx, v, wall)
    if measured(trows):
        L += ["## Targets", ""] + TARGETS_HEAD + verdict_lines(measured(trows)) + [""]
    L += backends_section(ctx, results, workers, erows)
    for w in workers:
        L += with_rows(throughput_section(ctx, results, w))
    L += with_rows(latency_section(results, workers))
    L += cluster_section(results, workers)
    L += flood_section(ctx, results, workers, flood_png)
    L += with_rows(memory_section(ctx, results, workers))
    L += with_rows(bounds_section(ctx, results))
    L += speed_section(speed)
    L += commands_section(ctx)
    if errors:
        L += ["## Errors", ""] + ["- " + e for e in errors] + [""]
    if png_path:
        L += ["![ratios](%s)" % os.path.basename(png_path), ""]
    with open(md_path, "w") as f:
        f.write("\n".join(L))
    return trows, erows


def head_section(ctx, v, wall):
    """The title, the machine and how everything was measured."""
    L = []
    L.append("# acme-edge vs nginx and HAProxy — %s on %s" % (ctx.date, ctx.host))
    L.append("")
    L.append("Produced by `%s` in %.0f s.%s" % (
        " ".join(["bench/run"] + [shlex.quote(x) for x in sys.argv[1:]]), wall,
        " **Quick run: one short run per scenario, a smoke test, not a measurement.**"
        if ctx.quick else ""))
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| what | value |")
    L.append("| --- | --- |")
    for k in ("cpu", "cores", "memory", "kernel", "debian", "acme-edge", "commit", "nginx",
              "haproxy", "openssl", "wrk", "curl"):
        L.append("| %s | %s |" % (k, v[k]))
    L.append("| acme-edge io backend | %s (`io_backend = %s`) |" % (
        backends_text(ctx, "acme-edge"), ctx.io_backend))
    L.append("| acme-edge-epoll io backend | %s |" % (
        "%s (`io_backend = epoll`)" % backends_text(ctx, EPOLL) if ctx.epoll
        else "not run (`--no-epoll`)"))
    L.append("| load average | %.2f at the start, %.2f at the end (1 min; other work on the "
             "machine shows in the raw rates, much less in the per-core ones) |" % (
                 ctx.load_start, os.getloadavg()[0]))
    (s0, t0), (s1, t1) = ctx.steal_start, cpu_steal()
    L.append("| host steal | %.1f %% of the CPUs' time during the run (`/proc/stat`: "
             "what a virtual machine's host took for other work; it comes in bursts, "
             "and the runs it hits are the outliers) |" % (100.0 * (s1 - s0) / max(t1 - t0, 1)))
    L.append("| runs × duration | %d × %d s per scenario and server, alternated "
             "(A B C A B C …); memory: %d connections |" % (ctx.runs, ctx.duration,
                                                           ctx.mem_conns))
    L.append("")
    L.append("How it was measured: every server under test (acme-edge's proxy processes, "
             "nginx's master and workers, HAProxy's process) is pinned to CPU %s; the load "
             "generators (wrk, curl, tlsload, hold.py), the upstream nginx behind the "
             "proxies and acme-edge's APIs are pinned to CPU %s. %s%s**The machine has %s "
             "cores, so the workers=2 runs put both workers on one core**: they measure "
             "the cost of running two workers, not a speed-up. *Per core* is the "
             "requests (or bytes) served divided by the server's own CPU time "
             "(utime+stime from /proc/<pid>/stat, summed over its processes and threads) "
             "during the run: the load generator sharing the machine does not distort it. "
             "Ratios are acme-edge ÷ peer on that per-core figure: the ratio of the medians, "
             "with the min–max of the run-by-run ratios. Medians with (min–max) over the "
             "runs. `direct` is the load generator talking to the upstream itself: the "
             "ceiling of raw rate (its CPU is the upstream's, so no per-core figure)."
             % (SERVER_CPU, CLIENT_CPU, shield_text(ctx),
                "acme-edge runs twice, `acme-edge` (`io_backend = %s`) and `acme-edge-epoll` "
                "(`io_backend = epoll`), each with its own listeners, API and store; both take "
                "their turn in every scenario like the other servers. " % ctx.io_backend
                if ctx.epoll else "acme-edge runs once (`--no-epoll`), `io_backend = %s`. "
                % ctx.io_backend, v["cores"]))
    L.append("")
    return L


def shield_text(ctx):
    """What was moved off the server CPU for the run (prepare.shield_server_cpu)."""
    threads, irqs, wq = getattr(ctx, "shield", (0, 0, False))
    return ("Nothing else runs on CPU %s during the run where the bench could move it: "
            "%d threads of other processes, %d interrupts%s went to CPU %s, and got "
            "their CPUs back afterwards (the server CPU's own kernel threads stay). "
            % (SERVER_CPU, threads, irqs,
               " and the kernel's unbound work queues" if wq else "", CLIENT_CPU))


def backends_section(ctx, results, workers, erows):
    """The markdown of "## I/O backends"."""
    L = ["## I/O backends", ""]
    if not ctx.epoll:
        L += ["Not measured: this run had `--no-epoll` (acme-edge-epoll did not run).", ""]
        return L
    rows = backend_rows(ctx, results, workers)
    if not measured(erows) and not rows:
        return []
    main = backends_text(ctx, "acme-edge")
    ep = backends_text(ctx, EPOLL)
    L.append("Both backends side by side in the same run, alternated; the requirement is "
             "that *the epoll backend stay at least on par with HAProxy per core*. "
             "`acme-edge` ran `io_backend = %s` (%s), `acme-edge-epoll` ran "
             "`io_backend = epoll` (%s); each took its turn in every scenario with the "
             "peers (acme-edge, acme-edge-epoll, nginx, haproxy, …). **On par** is taken "
             "as epoll ÷ HAProxy ≥ %.2f per core (the ratio of the medians), judged on "
             "%s. Ratios are per core, the ratio of the medians, with the min–max of the "
             "run-by-run ratios (run *i* with run *i*: neighbours in time)."
             % (ctx.io_backend, main, ep, EPOLL_PAR,
                " and ".join("`%s`" % s for s in EPOLL_PAR_SCENARIOS)))
    if main == ep:
        L.append("")
        L.append("**Both instances ran %s** (`--io-backend %s`%s): the epoll ÷ io_uring "
                 "column compares %s with itself, so it only shows run-to-run noise."
                 % (main, ctx.io_backend,
                    "" if ctx.io_backend == "epoll" else ", io_uring unavailable", main))
    L.append("")
    if measured(erows):
        L += EPOLL_HEAD + verdict_lines(measured(erows)) + [""]

    def cell(c):
        if c is None:
            return "—"
        r, runs = c
        if not runs:
            return "%.2f×" % r
        return "%.2f× (%.2f–%.2f)" % (r, min(runs), max(runs))
    L.append("| workers | scenario | acme-edge-epoll ÷ acme-edge (epoll ÷ %s) | "
             "epoll ÷ HAProxy | epoll ÷ nginx |" % main)
    L.append("| --- | --- | --- | --- | --- |")
    for w, sid, title, kind, cells in rows:
        L.append("| %d | `%s` %s | %s |" % (w, sid, title, " | ".join(cell(c) for c in cells)))
    L.append("")
    L.append("Throughput rows: per core (requests, handshakes, connections or bytes per "
             "CPU-second), higher is better for epoll. Memory rows (`mem-`): RSS bytes per "
             "connection, epoll's ÷ the other's, lower is better for epoll. Each instance's "
             "own figures are in the tables below.")
    L.append("")
    return L


def throughput_section(ctx, results, w):
    L = ["## Throughput, workers=%d" % w, ""]
    L.append("| scenario | server | raw rate | per core (per CPU-second) | server CPU "
             "(cores busy) | failures | acme-edge ÷ this, per core |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for sc in of_kind("rate"):
        servers = sc.servers(ctx)
        for s in servers:
            runs = results.get((w, sc.id, s))
            if not runs:
                continue
            ok = [r for r in runs if not r.get("error")]
            rates = [r["rate"] for r in ok]
            pcs = [per_core(r) for r in ok if per_core(r)]
            busy = [r["cpu"] / r["wall"] for r in ok if r.get("wall")]
            fails = sum(r["fail"] for r in ok)
            errs = len(runs) - len(ok)
            if s == "direct":
                pcs, busy = [], []
            ratio = "—"
            if s in PEERS:
                r, rr = ratio_summary(results, w, sc.id, s, "rate")
                if r is not None:
                    ratio = "%.2f× (%.2f–%.2f)" % (r, min(rr), max(rr))
            L.append("| %s | %s | %s %s | %s | %s | %d%s | %s |" % (
                sc.title if s == servers[0] else "", s, fmt_range(rates, sc.unit), sc.unit,
                fmt_range(pcs, sc.unit), fmt_range(busy), fails,
                (" (%d runs failed)" % errs) if errs else "", ratio))
    L.append("")
    L.append("Units: hs/s = handshakes per second; MB/s = 10⁶ bytes per second (and "
             "per core: 10⁶ bytes per CPU-second).")
    L.append("")
    return L


def latency_section(results, workers):
    L = ["## Added latency (1 KiB through :80, one keep-alive connection)", ""]
    L.append("| workers | server | p50 µs | p99 µs | added p50 µs | added p99 µs |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for w in workers:
        for s in SERVERS:
            p50, p99 = latency_stats(results, w, s)
            if not p50:
                continue
            a50 = added_latency(results, w, s, "50") if s != "direct" else []
            a99 = added_latency(results, w, s, "99") if s != "direct" else []
            L.append("| %d | %s | %s | %s | %s | %s |" % (
                w, s, fmt_range(p50), fmt_range(p99), fmt_range(a50), fmt_range(a99)))
    L.append("")
    return L


def cluster_section(results, workers):
    """The cluster scenarios: per kind, the median over runs of each run's
    p50 and p99 (ms), and the worst max."""
    L = []
    for sc in of_kind("cluster"):
        runs = [r for w in workers for r in results.get((w, sc.id, "acme-edge"), [])
                if r.get("cluster")]
        if not runs:
            continue
        L += ["## %s" % sc.title, ""]
        L.append("Each run: 1 redis-server and 3 `acme-edge run` nodes on loopback, "
                 "`ack = all`, PUTs one after another on one node's API; a PUT returns "
                 "once every node applied it (checked on every node's proxy).")
        L.append("")
        L.append("| kind | PUTs per run | runs | p50 ms | p99 ms | max ms |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        for kind in sorted(runs[0]["cluster"]):
            ks = [r["cluster"][kind] for r in runs]
            L.append("| %s | %d | %d | %.2f | %.2f | %.2f |" % (
                kind, ks[0]["n"], len(ks), statistics.median(k["50"] for k in ks),
                statistics.median(k["99"] for k in ks), max(k["max"] for k in ks)))
        L.append("")
    return L


def memory_section(ctx, results, workers):
    """One column per memory scenario, in the runner's order."""
    mems = of_kind("mem")
    servers = []
    for m in mems:
        servers += [s for s in m.servers(ctx) if s not in servers]
    L = ["## Memory: RSS per connection (%d connections held idle)" % ctx.mem_conns, ""]
    L.append("| workers | server | %s | acme-edge ÷ this (%s) |" % (
        " | ".join(m.column for m in mems), " / ".join(m.short for m in mems)))
    L.append("| --- " * (len(mems) + 3) + "|")
    for w in workers:
        for s in servers:
            cols = [[r["rate"] for r in results.get((w, m.id, s), []) if not r.get("error")]
                    for m in mems]
            if not any(cols):
                continue
            ratios = [ratio_summary(results, w, m.id, s, "mem")[0] for m in mems]
            ratio = "—" if s not in PEERS else " / ".join(
                "%.2f" % r if r is not None else "—" for r in ratios)
            L.append("| %d | %s | %s | %s |" % (
                w, s, " | ".join(fmt_range(c) for c in cols), ratio))
    L.append("")
    L.append("RSS is the sum of VmRSS over the server's processes (nginx: master and "
             "workers), read before the connections are opened (server freshly started) "
             "and once all are idle; relayed connections have each fetched /1k through "
             "the proxy first, so each holds an upstream connection too; peek "
             "connections have sent the first 65 bytes of a real ClientHello.")
    L.append("")
    return L


def bounds_section(ctx, results):
    """Where each server's CPU goes, and what that leaves for a ratio: the
    kernel work of a request (TCP, TLS records through sockets, wakeups) is
    the same for every server on one kernel, so acme-edge ÷ peer per core
    can at most reach peer total ÷ acme-edge kernel time, even if acme-edge
    spent nothing in user space."""
    w = ctx.worker_counts[0]
    L = ["## What bounds the ratios (workers=%d)" % w, "",
         "CPU time per request (per MB for MB/s scenarios) split into user space and "
         "kernel (utime and stime from /proc), medians over the runs. *Ceiling* is the "
         "better peer's total ÷ acme-edge's kernel time alone: the per-core ratio acme-edge "
         "would reach if its own code cost nothing. Where the ceiling is below a target, "
         "the target cannot be met by user-space work; only fewer or cheaper system calls "
         "and kernel paths move it.", "",
         "| scenario | server | user µs | kernel µs | kernel share | per-core ratio now "
         "(÷ better peer) | ceiling |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
    for sc in of_kind("rate"):
        sid, unit, servers = sc.id, sc.unit, sc.servers(ctx)
        ae = cpu_per_op(results, w, sid, "acme-edge", unit)
        if not ae:
            continue
        peers = [p for p in servers if p in PEERS]
        best = None
        for p in peers:
            c = cpu_per_op(results, w, sid, p, unit)
            if c and (best is None or sum(c) < sum(best[1])):
                best = (p, c)
        for s in servers:
            if s == "direct":
                continue
            c = cpu_per_op(results, w, sid, s, unit)
            if not c:
                continue
            now = ceil = ""
            if s == "acme-edge" and best:
                now = "%.2f× (%s)" % (sum(best[1]) / sum(ae), best[0])
                ceil = "%.2f×" % (sum(best[1]) / ae[1]) if ae[1] > 0 else "—"
            L.append("| %s | %s | %.2f | %.2f | %.0f %% | %s | %s |" % (
                sid if s == servers[0] else "", s, c[0], c[1],
                100 * c[1] / sum(c) if sum(c) else 0, now, ceil))
    L.append("")
    return L


def speed_section(speed):
    L = ["## acme-tls/1 ceiling: `openssl speed` on the server CPU", ""]
    if speed.get("sign"):
        L.append("`%s`: ECDSA P-256 sign %.0f/s, verify %.0f/s; ECDH P-256 %.0f/s; X25519 "
                 "%.0f/s. One signature plus one key exchange per handshake: **%.0f "
                 "handshakes/s per core** with X25519 (what the clients here offer), %.0f "
                 "with P-256. A server also generates its ephemeral key share (one more "
                 "X25519 operation): %.0f handshakes/s per core for the arithmetic alone. "
                 "Compare with the *per core* figures of `alpn-replay` above: the rest is "
                 "OpenSSL's per-handshake machinery and the kernel." % (
                     speed["cmd"], speed["sign"], speed["verify"], speed.get("ecdhp256", 0),
                     speed.get("x25519", 0), speed.get("ceiling_x25519", 0),
                     speed.get("ceiling_p256", 0), speed.get("floor_x25519", 0)))
    else:
        L.append("openssl speed gave no figures.")
    L.append("")
    return L


def commands_section(ctx):
    """The client commands and the servers' configurations, for reproducing."""
    L = ["## Commands", ""]
    L.append("Ports from %d (`--port-base`); `PORT` is the server's listener for the "
             "scenario; every client is run under `taskset -c %s`." % (ctx.port_base,
                                                                       CLIENT_CPU))
    L.append("")
    L.append("```")
    L.append("# HTTP-01 keep-alive / new connection (key authorization of %d bytes)" % len(KA))
    L.append("wrk -t1 -c64 -d%ds --timeout 5s -H 'Host: %s' http://127.0.0.1:PORT%s"
             % (ctx.duration, ACME_NAME, CHAL_PATH))
    L.append("wrk -t1 -c64 -d%ds --timeout 5s -H 'Host: %s' -H 'Connection: close' "
             "http://127.0.0.1:PORT%s" % (ctx.duration, ACME_NAME, CHAL_PATH))
    L.append("# acme-tls/1: full handshakes checked (ALPN, acmeIdentifier), then replayed hellos")
    L.append("tlsload -p PORT -s %s -a acme-tls/1 -e %s -x drain -d %d -t 2"
             % (ACME_NAME, KA_SHA, ctx.duration))
    L.append("tlsload -p PORT -s %s -a acme-tls/1 -e %s -x drain -d %d -r -t 8"
             % (ACME_NAME, KA_SHA, ctx.duration))
    L.append("# :443 passthrough to the upstream nginx (TLS, ECDSA P-256)")
    L.append("tlsload -p PORT -s %s -a http/1.1 -x close -d %d -t 2" % (PASS_NAME, ctx.duration))
    L.append("tlsload -p PORT -s %s -a http/1.1 -x close -d %d -r -t 8"
             % (PASS_NAME, ctx.duration))
    L.append("# :80 relay (1k, 1m; keep-alive, then with -H 'Connection: close')")
    L.append("wrk -t1 -c64 -d%ds --timeout 5s -H 'Host: %s' http://127.0.0.1:PORT/1k"
             % (ctx.duration, PASS_NAME))
    L.append("curl -s -o /dev/null -H 'Host: %s' -w '%%{size_download} %%{time_total}' "
             "http://127.0.0.1:PORT/1g" % PASS_NAME)
    L.append("# latency")
    L.append("wrk -t1 -c1 -d%ds --latency -H 'Host: %s' http://127.0.0.1:PORT/1k"
             % (ctx.duration, PASS_NAME))
    L.append("# memory")
    L.append("hold.py relay PORT %d %s ; hold.py peek PORT %d %s"
             % (ctx.mem_conns, PASS_NAME, ctx.mem_conns, PASS_NAME))
    L.append("```")
    L.append("")
    L.append("Server configurations (generated by bench/run): acme-edge `workers = N`, "
             "`max_connections = 20000`, `peek_timeout = 300s`, `[log] level = warn`, "
             "`io_backend = %s`%s; nginx "
             "`worker_processes N`, `reuseport`, `access_log off`, stream module for "
             "acme-tls/1 (`ssl_alpn acme-tls/1; return \"\"`), `ssl_preread` and relay; "
             "HAProxy `nbthread N`, no logging, `http-request return` for HTTP-01, `bind "
             "... ssl alpn acme-tls/1` with `tcp-request session reject`, `req.ssl_sni` "
             "and `mode tcp` relay with and without `option splice-request/"
             "splice-response`. No server issues session tickets or caches sessions. "
             "Upstream: nginx, 1 worker, sendfile, on CPU %s." % (
                 ctx.io_backend,
                 " (acme-edge: proxy ports %d–%d, API %d, store `%s`) and `io_backend = "
                 "epoll` (acme-edge-epoll: proxy ports %d–%d, API %d, store `%s`)" % (
                     ctx.ports.ae_http, ctx.ports.ae_https, ctx.ports.ae_api, ctx.store,
                     ctx.ports.ep_http, ctx.ports.ep_https, ctx.ports.ep_api,
                     ctx.store_epoll) if ctx.epoll else "",
                 CLIENT_CPU))
    L.append("")
    return L


def update_readme(ctx, md_name, trows, erows=()):
    """Replaces the README's table between its two markers, if it has them."""
    readme = os.path.join(BENCH, "README.md")
    try:
        with open(readme) as f:
            text = f.read()
    except OSError:
        return
    b, e = "<!-- latest:begin -->", "<!-- latest:end -->"
    if b not in text or e not in text:
        return
    lines = ["Measured on %s (%s), %s: full table in [results/%s](results/%s)." % (
        ctx.host, versions(ctx)["cpu"], ctx.date, md_name, md_name), ""]
    lines += TARGETS_HEAD + verdict_lines(trows)
    if erows:
        lines += ["", "I/O backends: the epoll backend on par with HAProxy per core "
                  "(epoll ÷ HAProxy ≥ %.2f); epoll ÷ io_uring per scenario in the results "
                  "file." % EPOLL_PAR, ""]
        lines += EPOLL_HEAD + verdict_lines(erows)
    new = text[:text.index(b) + len(b)] + "\n" + "\n".join(lines) + "\n" + text[text.index(e):]
    with open(readme, "w") as f:
        f.write(new)
