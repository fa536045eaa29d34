"""What the owner of a run posts to the views: its `RunState` and `Snapshot`s, through a drop-oldest queue."""

from __future__ import annotations

import enum
import queue
import time
from dataclasses import dataclass, field

import numpy as np

from explorer.priors import Prior


class RunState(str, enum.Enum):
    """Where a run is; a snapshot's ``state`` is one of these (a str, so it compares with plain names)."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    FOLLOWING = "following"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows of one moment of training. Arrays are NumPy, safe to hand to another thread."""

    step: int
    total_steps: int  # 0: not known (a loop of the user's own that did not say, or ran past what it said)
    state: RunState
    terms: dict[str, float]
    steps_per_s: float  # over training time only: pauses do not count
    elapsed_s: float  # training time of this session, pauses excluded
    history_steps: np.ndarray  # [h] steps of the bounded loss history
    history: dict[str, np.ndarray]  # term -> [h]
    codes: np.ndarray  # [n, d] codes of the first n rows of the probe's order: the probe's, more at rest
    prior_sample: np.ndarray  # [n, d]
    lps: np.ndarray | None  # [d] held-out R^2 per dimension, None until first estimated
    lps_step: int  # the step the LPS was estimated at
    lps_estimator: str  # which estimator, on how many codes, e.g. "LPS-mlp on 5,000 codes of the dataset"
    lps_history_steps: np.ndarray  # [h] steps of the bounded LPS history of this run
    lps_history: np.ndarray  # [h]
    selected: int  # row of ``codes`` the traversals start from
    traversal_version: int  # changes when the traversals below were decoded anew
    traversals: np.ndarray  # uint8 [d, k, H, W, C]: row i varies z_i over the prior's quantiles
    traversal_values: np.ndarray  # [d, k] the z_i of each column
    original: np.ndarray  # uint8 [H, W, C] of the selected probe image
    reconstruction: np.ndarray  # uint8 [H, W, C]
    codes_version: int = 0  # changes when codes, prior sample and LPS were taken anew
    progress_only: bool = False  # only step, state, terms and loss history are new (codes as in the last full one)
    run_id: str = ""  # a new run is a new id (an explicit event, not a step that went backwards)
    message: str = ""
    message_is_error: bool = False
    prior: Prior | None = None  # what the run trains toward (None: its objective takes no prior)
    fit: np.ndarray | None = None  # [d] KS distance of each dimension's codes to the prior's marginal
    codes_of: str = ""  # what the codes are, e.g. "40,960 codes of the dataset (encoding 100,000…)"
    taken_at: float = field(default_factory=time.perf_counter)

    @property
    def lps_score(self) -> float | None:
        return None if self.lps is None or not np.isfinite(self.lps).any() else float(np.nanmean(self.lps))

    @property
    def seconds_left(self) -> float | None:
        """Training time to the last step at the measured rate; None unless running with a measured rate toward
        a known last step."""
        if self.state is not RunState.RUNNING or self.steps_per_s <= 0 or self.total_steps <= 0:
            return None
        return max(0, self.total_steps - self.step) / self.steps_per_s


class SnapshotQueue:
    """A bounded queue that keeps the newest snapshots: `put` drops the oldest instead of blocking, so a slow
    consumer never slows training."""

    def __init__(self, maxsize: int = 2) -> None:
        self._queue: queue.Queue[Snapshot] = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, snapshot: Snapshot) -> None:
        while True:
            try:
                self._queue.put_nowait(snapshot)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def latest(self, timeout: float | None = None) -> Snapshot | None:
        """The newest queued snapshot (older ones are discarded), waiting up to ``timeout`` s; None if none."""
        try:
            snapshot = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None
        while True:
            try:
                snapshot = self._queue.get_nowait()
            except queue.Empty:
                return snapshot
