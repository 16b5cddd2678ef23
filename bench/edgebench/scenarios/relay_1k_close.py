"""Small responses relayed on :80, a new connection (and upstream
connection) per request."""
from ..clients import wrk_load
from ..common import PASS_NAME
from . import RELAYING, Scenario

SCENARIO = Scenario(100, "relay-1k-close", ":80 relay 1 KiB, new connection per request",
                    "req/s", RELAYING, wrk_load("relay", "/1k", PASS_NAME, 64, close=True))
