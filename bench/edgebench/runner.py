"""The run itself: per worker count, every server started, checked, then
each scenario's runs alternated between the servers (A B C A B C …), so
that run i of each server are neighbours in time."""
import re
import urllib.request

from .accounting import openssl_speed, per_core
from .common import ACME_NAME, CHAL_PATH, KA, PASS_NAME, die, say
from .peers import AcmeEdge, Haproxy, Nginx, Upstream, acme_edges
from .flood import parse_validate, validator_cmd
from .proc import SERVER_CPU, run_client
from .scenarios import ANSWERING, RELAYING, all_scenarios


class Ctx:
    """Everything a run knows: its flags, paths, ports and the servers."""


def run_all(ctx):
    results = {}    # (workers, scenario, server) -> [run dicts]
    errors = []
    ups = Upstream(ctx)
    ups.start()
    ctx.upstream = ups
    speed = openssl_speed(ctx)
    for workers in ctx.worker_counts:
        ctx.workers = workers
        aes = [AcmeEdge(ctx, name) for name in acme_edges(ctx)]
        ng, ha = Nginx(ctx), Haproxy(ctx)
        say("== workers=%d: starting %s, nginx, haproxy (pinned to CPU %s)"
            % (workers, ", ".join(acme_edges(ctx)), SERVER_CPU))
        for ae in aes:
            ae.start()
        ng.start()
        ha.start()
        ctx.cpu_of = {"nginx": ng, "haproxy": ha, "haproxy-splice": ha, "direct": ups}
        for ae in aes:
            ctx.cpu_of[ae.name] = ae
            b = ae.backend()
            ctx.backends.setdefault(ae.name, {})[workers] = b
            say("   %s: io_backend = %s, running %s" % (ae.name, ae.io_backend, b))
        smoke(ctx)
        for sc in all_scenarios():
            if ctx.only and not any(re.search(o, sc.id) for o in ctx.only):
                continue
            if sc.kind == "flood" and aes[0].profile != "gateway":
                # The floods meet acme-edge as a production edge runs it:
                # its default limits and timeouts (the scenarios are last).
                for ae in aes:
                    ae.profile = "gateway"
                    ae.stop()
                    ae.start()
                smoke_gateways(ctx)
            servers = sc.servers(ctx)
            if workers != ctx.worker_counts[0] and "direct" in servers:
                servers = [s for s in servers if s != "direct"]   # no workers there
            ctx.current = sc.id
            if sc.warmup and not ctx.quick:
                say("  w%d %-15s warm-up through %s (not counted)" % (workers, sc.id, servers[0]))
                sc.run(ctx, servers[0])
            for run in range(ctx.runs):
                ctx.run_index = run
                for server in servers:      # alternated: A B C A B C ...
                    r = sc.run(ctx, server)
                    results.setdefault((workers, sc.id, server), []).append(r)
                    note(workers, sc, run, server, r, errors)
        for ae in aes:
            ae.stop_all()
        ng.stop()
        ha.stop()
    ups.stop()
    return results, speed, errors


def note(workers, sc, run, server, r, errors):
    sid = sc.id
    if r.get("error"):
        errors.append("workers=%d %s %s: %s" % (workers, sid, server, r["error"]))
        say("  w%d %-15s %-15s run %d: ERROR %s" % (workers, sid, server, run + 1, r["error"]))
        return
    pc = per_core(r)
    if sc.kind == "flood":
        bg = "; ".join("%s %.0f %s%s" % (k, v[1], v[0], (" (%d lost)" % v[2]) if v[2] else "")
                       for k, v in sorted(r["bg"].items()))
        say("  w%d %-15s %-15s run %d: validator p50 %.2f p99 %.2f max %.2f ms (http-01 "
            "%.2f/%.2f, tls-alpn-01 %.2f/%.2f), waited p50 %.2f p99 %.2f, own CPU p99 %.2f, "
            "fail %d%s; %s; steal %.1f %%" % (
                workers, sid, server, run + 1, r["lat"]["50"], r["lat"]["99"],
                r["lat"]["max"], r["http"]["50"], r["http"]["99"], r["tls"]["50"],
                r["tls"]["99"], r["wait"]["50"], r["wait"]["99"], r["own_cpu"]["99"],
                r["fail"],
                (" " + str(r["fails"])) if r["fails"] else "", bg, r.get("steal", 0)))
        return
    if sc.kind == "mem":
        say("  w%d %-15s %-15s run %d: %.0f bytes/conn (RSS %.1f -> %.1f MiB)" % (
            workers, sid, server, run + 1, r["rate"], r["before"] / 2**20, r["after"] / 2**20))
        return
    extra = ""
    if r.get("lat"):
        extra = " p50 %.0fus p99 %.0fus" % (r["lat"].get("50", 0), r["lat"].get("99", 0))
    say("  w%d %-15s %-15s run %d: %12.1f/s  cpu %.2fs  %s/cpu-s  fail %d%s" % (
        workers, sid, server, run + 1, r["rate"], r["cpu"],
        "%.0f" % pc if pc else "—", r["fail"], extra))


def smoke_gateways(ctx):
    """Each server's two gateway ports answer the validator's checks."""
    for server in acme_edges(ctx) + list(ANSWERING):
        r, err = run_client(validator_cmd(ctx, server, secs=0.2), 30)
        res = parse_validate(r.stdout.decode(errors="replace"), r.returncode) if r else None
        if err or not res or res["fail"] or not res["n"]:
            die("%s does not pass the validator's checks on its gateway ports: %s" % (
                server, err or (r.stdout.decode(errors="replace").strip()[-300:])))


def smoke(ctx):
    """Every server answers the challenge and relays before it is timed."""
    p = ctx.ports
    for server in acme_edges(ctx) + list(ANSWERING):
        port = p.target("http01", server)
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, CHAL_PATH),
                                     headers={"Host": ACME_NAME})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read().decode()
        if body.strip() != KA:
            die("%s answers the http-01 challenge with %r" % (server, body[:100]))
    for server in acme_edges(ctx) + list(RELAYING):
        port = p.target("relay", server)
        req = urllib.request.Request("http://127.0.0.1:%d/1k" % port,
                                     headers={"Host": PASS_NAME})
        with urllib.request.urlopen(req, timeout=5) as r:
            if len(r.read()) != 1024:
                die("%s does not relay /1k" % server)
