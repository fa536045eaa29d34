"""The live layer: the owner of a running training loop (ours in a thread, or another process's through its
snapshot files) and the `Snapshot`s it posts to the views. See docs/architecture.md for its parts."""

from explorer.live.background import BackgroundTrainer
from explorer.live.follow import Follower
from explorer.live.lps import REST_LPS_CODES
from explorer.live.pacing import RateLimiter
from explorer.live.probe import Probe, rest_codes
from explorer.live.rest_codes import REST_CODES
from explorer.live.snapshots import HISTORY_POINTS
from explorer.live.state import RunState, Snapshot, SnapshotQueue
from explorer.live.traversals import TRAVERSAL_QUANTILES, traversal_grid, traversal_values

__all__ = ["HISTORY_POINTS", "REST_CODES", "REST_LPS_CODES", "TRAVERSAL_QUANTILES", "BackgroundTrainer", "Follower",
           "Probe", "RateLimiter", "RunState", "Snapshot", "SnapshotQueue", "rest_codes", "traversal_grid",
           "traversal_values"]
