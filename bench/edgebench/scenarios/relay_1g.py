"""One long transfer through :80: the relay's bulk path (splicing) alone.

In full runs the first 1 GiB transfer after the earlier scenarios ran at a
quarter of the speed of later ones, whichever server came first (the same
binary did 1.5 GB/s as the first transfer of a run with relay-1g alone):
hence the warm-up transfer that is not counted.
"""
from ..clients import curl_1g
from . import RELAYING, Scenario

SCENARIO = Scenario(130, "relay-1g", ":80 relay, one 1 GiB transfer", "MB/s", RELAYING, curl_1g,
                    warmup=True)
