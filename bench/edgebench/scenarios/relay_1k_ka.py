"""Small responses relayed on :80 over kept-alive connections."""
from ..clients import wrk_load
from ..common import PASS_NAME
from . import RELAYING, Scenario

SCENARIO = Scenario(90, "relay-1k-ka", ":80 relay 1 KiB, keep-alive, 64 connections", "req/s",
                    RELAYING, wrk_load("relay", "/1k", PASS_NAME, 64, close=False))
