"""Validators under floods: new :443 passthrough connections as fast as they can be made."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(220, "flood-newconn",
                    "new :443 passthrough connections, 512 at a time, as fast as they go",
                    "ms", ANSWERING, flood_load(("newconn",)), kind="flood")
