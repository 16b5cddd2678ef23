"""Memory held per idle connection that the :80 relay has connected upstream."""
from ..clients import hold_load
from . import ANSWERING, Scenario

SCENARIO = Scenario(10, "mem-relay", "RSS per idle relayed connection (lower is better)",
                    "bytes", ANSWERING, hold_load("relay"), kind="mem",
                    column="per idle relayed connection, bytes", short="relayed")
