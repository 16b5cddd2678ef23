"""Memory held per connection still waiting in the :443 peek for its SNI."""
from ..clients import hold_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(20, "mem-peek",
                    "RSS per connection waiting in the :443 peek (lower is better)",
                    "bytes", ANSWERING, hold_load("peek"), kind="mem",
                    column="per connection waiting in the :443 peek, bytes", short="peek")
