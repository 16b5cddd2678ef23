"""New connections through the :443 peek with replayed ClientHellos: the
passthrough without the client's handshake cost."""
from ..clients import tls_load
from . import PASSING, Scenario

SCENARIO = Scenario(80, "pass-replay", ":443 passthrough, replayed ClientHello per connection",
                    "conn/s", PASSING, tls_load("pass", replay=True))
