"""Validators under floods: every flood at once."""
from ..flood import MIXED, flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(250, "flood-mixed",
                    "every flood at once",
                    "ms", ANSWERING, flood_load(MIXED), kind="flood")
