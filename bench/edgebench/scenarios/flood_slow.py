"""Validators under floods: connections that send their ClientHello or request head a byte at a time."""
from ..flood import flood_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(210, "flood-slow",
                    "5,000 slow connections (a byte every 3 s), half on :80, half on :443",
                    "ms", ANSWERING, flood_load(("slow",)), kind="flood")
