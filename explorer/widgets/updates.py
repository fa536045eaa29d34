"""The views' side of the live loop: the newest snapshot of the current run, applied to the views in a thread of
their own (or when `ViewUpdates.refresh` is called).

Each drawing is timed: the time goes back to the run's owner (`LiveRun.drawn`), so the live view's 5 % budget counts
it, and ``latencies`` keeps how old each snapshot was once drawn. A run's first drawing builds its figures, a one-off
that is not reported. A view that fails to draw shows its error, and the updates go on."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from explorer.live import Snapshot
from explorer.live.run import LiveRun


class ViewUpdates:
    """Applies ``current()``'s snapshots with ``apply`` (which says whether it showed the snapshot); ``on_error``
    hears of a drawing that failed."""

    def __init__(self, current: Callable[[], LiveRun], apply: Callable[[Snapshot], bool],
                 on_error: Callable[[Exception], None]) -> None:
        self.current, self.apply, self.on_error = current, apply, on_error
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self.seconds = 0.0  # time the views spent drawing snapshots
        self._drawn_run = ""
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Apply each snapshot as it arrives, in a thread (the owner's `RateLimiter` paces them)."""
        self._thread = threading.Thread(target=self._loop, daemon=True, name="explorer-consumer")
        self._thread.start()

    def refresh(self, timeout: float | None = None) -> Snapshot | None:
        """Apply the newest queued snapshot, waiting up to ``timeout`` s for one; returns it (None if none)."""
        snapshot = self.current().snapshots.latest(timeout)
        if snapshot is not None:
            started = time.perf_counter()
            if self.apply(snapshot):
                now = time.perf_counter()
                self.seconds += now - started
                self.latencies.append(now - snapshot.taken_at)
        return snapshot

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._closed.is_set():
            drawn = self.seconds
            try:
                snapshot = self.refresh(timeout=0.5)
            except Exception as error:  # a view that fails to draw must not end the live updates
                self.on_error(error)
                continue
            if snapshot is None:
                continue
            if snapshot.run_id == self._drawn_run:
                self.current().drawn(snapshot, self.seconds - drawn)
            self._drawn_run = snapshot.run_id
