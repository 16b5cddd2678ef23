"""Validators under floods: the validator alone, its own floor."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(195, "flood-none",
                    "no flood: the validator alone (its own floor)",
                    "ms", ANSWERING, flood_load(()), kind="flood")
