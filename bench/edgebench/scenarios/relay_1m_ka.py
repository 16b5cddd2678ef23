"""Bulk responses relayed on :80 over kept-alive connections."""
from ..clients import wrk_load
from ..common import PASS_NAME
from . import RELAYING, Scenario

SCENARIO = Scenario(110, "relay-1m-ka", ":80 relay 1 MiB, keep-alive, 64 connections", "req/s",
                    RELAYING, wrk_load("relay", "/1m", PASS_NAME, 64, close=False))
