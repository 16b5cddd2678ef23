"""Bulk responses relayed on :80, a new connection per request."""
from ..clients import wrk_load
from ..common import PASS_NAME
from . import RELAYING, Scenario

SCENARIO = Scenario(120, "relay-1m-close", ":80 relay 1 MiB, new connection per request",
                    "req/s", RELAYING, wrk_load("relay", "/1m", PASS_NAME, 64, close=True))
