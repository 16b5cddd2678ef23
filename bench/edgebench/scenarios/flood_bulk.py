"""Validators under floods: relayed connections moving 1 MiB responses back to back."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(230, "flood-bulk",
                    "200 relayed connections moving 1 MiB responses back to back on :80",
                    "ms", ANSWERING, flood_load(("bulk",)), kind="flood")
