"""acme-tls/1 with the server doing all its handshake work and the client
almost none: a captured ClientHello replayed."""
from ..clients import tls_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(60, "alpn-replay", "acme-tls/1 replayed ClientHello, server flight read",
                    "hs/s", ANSWERING, tls_load("alpn", replay=True))
