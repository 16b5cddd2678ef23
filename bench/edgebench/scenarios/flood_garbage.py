"""Validators under floods: invalid ClientHellos, oversized heads and bad PROXY headers."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(240, "flood-garbage",
                    "garbage at full rate: invalid ClientHellos, oversized heads, bad PROXY headers",
                    "ms", ANSWERING, flood_load(("garbage",)), kind="flood")
