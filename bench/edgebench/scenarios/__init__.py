"""The scenarios: one module each, found here without a list to edit.

A scenario module defines SCENARIO = Scenario(...). The runner takes them in
the order of `order` (memory first, so that those measure freshly started
servers); a module whose name starts with "_" is not one.
"""
import importlib
import pkgutil

from ..peers import acme_edges

# Who takes a turn beside the acme-edge instances, by what the scenario does:
ANSWERING = ("nginx", "haproxy")                      # answer challenges
PASSING = ANSWERING + ("direct",)                     # :443 passthrough
RELAYING = ANSWERING + ("haproxy-splice", "direct")   # :80 relay


class Scenario:
    """kind "rate": a throughput, in the throughput tables, the ratios and
    the chart; "latency": its own section only; "mem": RSS per connection,
    `column` and `short` naming it in the memory table. `warmup`: one
    uncounted run first in full runs, for a scenario whose first transfer is
    slow for reasons of the sequence, not of the server."""

    def __init__(self, order, id, title, unit, others, run, kind="rate", warmup=False,
                 column=None, short=None):
        self.order, self.id, self.title, self.unit = order, id, title, unit
        self.others, self.run, self.kind, self.warmup = others, run, kind, warmup
        self.column, self.short = column, short

    def servers(self, ctx):
        """Alternated in this order within each run."""
        return acme_edges(ctx) + list(self.others)


_found = None


def all_scenarios():
    global _found
    if _found is None:
        found = []
        for m in pkgutil.iter_modules(__path__):
            if not m.name.startswith("_"):
                found.append(importlib.import_module(__name__ + "." + m.name).SCENARIO)
        ids = [s.id for s in found]
        assert len(set(ids)) == len(ids), "two scenarios share an id: %s" % sorted(ids)
        _found = sorted(found, key=lambda s: (s.order, s.id))
    return _found


def of_kind(kind):
    return [s for s in all_scenarios() if s.kind == kind]


def compared():
    """The scenarios with a ratio per scenario (backend table, chart):
    throughputs, then memory."""
    return of_kind("rate") + of_kind("mem")
