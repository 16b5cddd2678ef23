"""Validators under floods: connections that connect and never send, on both ports."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(200, "flood-idle",
                    "15,000 idle connections (never send), half on :80, half on :443",
                    "ms", ANSWERING, flood_load(("idle",)), kind="flood")
