"""The live layer: the owner of a running training loop and what it posts to the views."""

from explorer.live.background import (
    HISTORY_POINTS,
    REST_LPS_CODES,
    TRAVERSAL_QUANTILES,
    BackgroundTrainer,
    Probe,
    RateLimiter,
    RunState,
    Snapshot,
    SnapshotQueue,
    rest_codes,
    traversal_grid,
    traversal_values,
)

__all__ = ["HISTORY_POINTS", "REST_LPS_CODES", "TRAVERSAL_QUANTILES", "BackgroundTrainer", "Probe", "RateLimiter",
           "RunState", "Snapshot", "SnapshotQueue", "rest_codes", "traversal_grid", "traversal_values"]
