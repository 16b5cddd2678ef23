"""acme-tls/1 as a validator sees it: every handshake complete and its
certificate checked; the client's own handshake cost bounds the rate."""
from ..clients import tls_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(50, "alpn-full", "acme-tls/1 full handshake, checked, then close", "hs/s",
                    ANSWERING, tls_load("alpn", replay=False))
