"""The HTTP-01 answer on kept-alive connections: the challenge alone."""
from ..clients import wrk_load
from ..common import ACME_NAME, CHAL_PATH
from . import ANSWERING, Scenario

SCENARIO = Scenario(30, "http01-ka", "HTTP-01 answer, keep-alive, 64 connections", "req/s",
                    ANSWERING, wrk_load("http01", CHAL_PATH, ACME_NAME, 64, close=False))
