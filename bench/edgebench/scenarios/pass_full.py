"""New TLS connections passed through :443 to the upstream, each a full
handshake with it."""
from ..clients import tls_load
from . import PASSING, Scenario

SCENARIO = Scenario(70, "pass-full", ":443 passthrough, full TLS handshake per connection",
                    "conn/s", PASSING, tls_load("pass", replay=False))
