"""What a proxy adds to one request's latency: compared with direct."""
from ..clients import wrk_load
from ..common import PASS_NAME
from . import RELAYING, Scenario

SCENARIO = Scenario(140, "latency", "latency of a 1 KiB request, 1 connection, keep-alive",
                    "req/s", RELAYING,
                    wrk_load("relay", "/1k", PASS_NAME, 1, close=False, latency=True),
                    kind="latency")
