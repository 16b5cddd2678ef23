"""bench/run's flags, the preparations, the run, its files and its exit
status: 0 when every scenario produced a measurement for every server, 1
when one could not run at all. Timings are never asserted."""
import argparse
import datetime
import os
import shutil
import signal
import socket
import tempfile
import time

from . import common
from .accounting import backend_rows
from .chart import chart
from .flood_report import flood_chart, verdicts as flood_verdicts, wrong_answers as \
    flood_wrong_answers
from .common import BENCH, TOP, die, say
from .peers import Ports
from .prepare import (acme_edge_exe, build, compile_clients, install, make_certs, make_www,
                      raise_somaxconn, shield_server_cpu)
from .proc import CLIENT_CPU, cpu_steal, port_free, sh, stop_all
from .report import backends_text, measured, report, update_readme
from .runner import Ctx, run_all


def parse_args(description):
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="every scenario once, briefly (a smoke test for CI)")
    ap.add_argument("--runs", type=int, help="runs per scenario and server (default 5)")
    ap.add_argument("--duration", type=int, help="seconds per run (default 5; quick 1)")
    ap.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    ap.add_argument("--mem-conns", type=int, help="idle connections held (default 9000)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE",
                                                                         "27100")))
    ap.add_argument("--io-backend", default="auto",
                    help="io_backend of the instance \"acme-edge\" (auto: io_uring where "
                         "the kernel allows it); \"acme-edge-epoll\" always runs epoll")
    ap.add_argument("--no-epoll", action="store_true",
                    help="skip the second instance, acme-edge-epoll (quicker local runs; "
                         "no I/O backends section)")
    ap.add_argument("--only", action="append", help="regex of scenario ids to run")
    ap.add_argument("--out", help="results folder (default bench/results; quick: "
                                  "build/bench)")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--perf", metavar="DIR", help="perf record the servers of --perf-servers "
                    "during their runs; DIR/<scenario>-<server>-w<N>.txt get the top symbols")
    ap.add_argument("--perf-servers", default="acme-edge",
                    help="servers --perf records, comma-separated, or all (acme-edge)")
    ap.add_argument("--perf-callgraph", default="fp", help="perf's --call-graph: fp or dwarf")
    ap.add_argument("--trace", metavar="DIR", help="the flood validator's every check "
                    "(start, kind, latency, result) into DIR/<scenario>-<server>-w<N>-run<K>.txt, "
                    "to line slow checks up with the server's own logs or a perf record")
    return ap.parse_args()


def make_ctx(a):
    """The run's context from its flags; creates the output and work
    folders. Returns (ctx, the output folder)."""
    ctx = Ctx()
    ctx.quick = a.quick
    ctx.runs = a.runs or (1 if a.quick else 5)
    ctx.duration = a.duration or (1 if a.quick else 5)
    ctx.worker_counts = [int(x) for x in a.workers.split(",")]
    ctx.mem_conns = a.mem_conns or (2000 if a.quick else 9000)
    ctx.port_base = a.port_base
    ctx.ports = Ports(a.port_base)
    ctx.io_backend = a.io_backend
    ctx.epoll = not a.no_epoll
    ctx.backends = {}       # instance -> {workers: backend it really ran}
    ctx.only = a.only
    ctx.perf = os.path.abspath(a.perf) if a.perf else None
    ctx.trace = os.path.abspath(a.trace) if a.trace else None
    if ctx.trace:
        os.makedirs(ctx.trace, exist_ok=True)
    ctx.perf_servers = a.perf_servers.split(",")
    ctx.perf_cg = a.perf_callgraph
    if ctx.perf:
        os.makedirs(ctx.perf, exist_ok=True)
    ctx.date = datetime.date.today().isoformat()
    ctx.host = socket.gethostname().split(".")[0]
    # Everything started is bounded by timeout(1) to this many seconds.
    ctx.limit = 600 if a.quick else 7200
    out = a.out or (os.path.join(TOP, "build", "bench") if a.quick
                    else os.path.join(BENCH, "results"))
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.join(TOP, "build"), exist_ok=True)
    ctx.work = tempfile.mkdtemp(prefix="bench-work-", dir=os.path.join(TOP, "build"))
    os.makedirs(os.path.join(ctx.work, "tmp"), exist_ok=True)
    # One store per acme-edge instance: each proxy keeps its counters in
    # "<store path>.proxy", which two proxies must not share.
    ctx.store = "/dev/shm/acme-edge-bench-%d" % a.port_base
    ctx.store_epoll = ctx.store + "-epoll"
    return ctx, out


def clean_stores(ctx):
    for store in (ctx.store, ctx.store_epoll):
        for path in (store, store + ".proxy", store + ".lock"):
            if os.path.exists(path):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def on_signal(sig, frame):
    raise SystemExit("bench/run: stopped by signal %d" % sig)


def prepare(ctx, a):
    """Everything before the first server starts."""
    if os.cpu_count() < 2:
        die("needs 2 CPUs: one for the servers, one for the load generators")
    if not a.no_install:
        install()
    ctx.exe = acme_edge_exe() if a.no_build else build()
    ctx.tlsload, ctx.floodload = compile_clients(ctx.work)
    # The server's CPU is the server's alone from here: the bench itself and
    # what it starts without a CPU of its own (API calls, perf) keep to the
    # clients' (the build above used both).
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    # The tree the binary was built from (it may change during a long run).
    ctx.commit = sh("git -C %s describe --always --dirty 2>/dev/null" % TOP)
    busy = [p for p in ctx.ports.all() if not port_free(p)]
    if busy:
        die("ports in use: %s (another bench? --port-base moves them)" % busy)
    load = ctx.load_start = os.getloadavg()[0]
    ctx.steal_start = cpu_steal()
    say("== bench/run%s: %d run(s) × %d s, workers %s, load average %.2f, work %s" % (
        " --quick" if a.quick else "", ctx.runs, ctx.duration, a.workers, load, ctx.work))
    if load > 0.5 and not a.quick:
        say("   warning: the machine is not quiet (load %.2f): figures will be noisy" % load)
    raise_somaxconn(ctx)
    shield_server_cpu(ctx)
    make_certs(ctx.work)
    make_www(ctx.work)
    clean_stores(ctx)


def finish(ctx, a, out, results, speed, errors, t0):
    """The results files and the summary; True when nothing failed to run."""
    wall = time.monotonic() - t0
    stem = "%s-%s%s" % (ctx.date, ctx.host, "-quick" if a.quick else "")
    md = os.path.join(out, stem + ".md")
    png = chart(ctx, results, os.path.join(out, stem + ".png"))
    fpng = flood_chart(ctx, results, os.path.join(out, stem + "-floods.png"))
    trows, erows = report(ctx, results, speed, errors, md, png, wall, fpng)
    say("== results: %s%s%s" % (md, (" and " + png) if png else "",
                                 (" and " + fpng) if fpng else ""))
    for row in flood_verdicts(results, ctx.worker_counts):
        say("   %-15s w%d %-15s validator p99 %6.1f ms, better peer %s: %s%s%s" % (
            row[0], row[1], row[2], row[3], "%.1f ms" % row[4] if row[4] else "—", row[7],
            "; waited %.1f / %.1f ms" % (row[8], row[9])
            if row[8] is not None and row[9] is not None else "",
            "; own CPU %.1f ms" % row[10] if row[10] is not None else ""))
    for row in measured(trows + erows):
        say("   %-62s w%d %-22s %-12s %s" % row)
    for w, sid, _, kind, cells in backend_rows(ctx, results, ctx.worker_counts):
        say("   w%d %-15s epoll ÷ %s / haproxy / nginx%s: %s" % (
            w, sid, backends_text(ctx, "acme-edge"), " (bytes)" if kind == "mem" else "",
            " / ".join("%.2f" % c[0] if c else "—" for c in cells)))
    if not a.quick and not a.out and not a.only:
        update_readme(ctx, os.path.basename(md), trows, erows)
    # A scenario that never produced a figure for a server: failure.
    missing = []
    for (w, sid, s), runs in sorted(results.items()):
        if not any(not r.get("error") for r in runs):
            missing.append("workers=%d %s %s" % (w, sid, s))
    if missing:
        say("bench/run: could not run: " + "; ".join(missing))
    wrong = flood_wrong_answers(results)
    if wrong:
        say("bench/run: validators got wrong answers or none: " + "; ".join(wrong))
    say("== done in %.0f s" % (time.monotonic() - t0))
    return not missing and not wrong


def main(description):
    a = parse_args(description)
    ctx, out = make_ctx(a)
    common.open_log(os.path.join(ctx.work, "bench.log"))
    t0 = time.monotonic()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    ok = False
    try:
        prepare(ctx, a)
        results, speed, errors = run_all(ctx)
        stop_all()
        ok = finish(ctx, a, out, results, speed, errors, t0)
    finally:
        stop_all()
        clean_stores(ctx)
        common.close_log()
        if ok and not a.keep:
            shutil.rmtree(ctx.work, ignore_errors=True)
        elif not ok:
            print("bench/run: logs and configs kept in " + ctx.work, flush=True)
    return 0 if ok else 1
