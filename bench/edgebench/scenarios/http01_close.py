"""The HTTP-01 answer with a TCP connection per request, as validators do."""
from ..clients import wrk_load
from ..common import ACME_NAME, CHAL_PATH
from . import ANSWERING, Scenario

SCENARIO = Scenario(40, "http01-close", "HTTP-01 answer, new connection per request", "req/s",
                    ANSWERING, wrk_load("http01", CHAL_PATH, ACME_NAME, 64, close=True))
