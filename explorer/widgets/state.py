"""`LiveState`: the kernel side's one copy of what the views show, observed by them.

It holds the latest facts the engine posted (a `Snapshot`, whose loss and LPS histories the engine keeps bounded), a
bounded history of the run's earlier snapshots (the history slider shows one in the latent views while progress
stays live), and the user's selection, the one place the chosen probe image is kept (the engine is told of it, and a
snapshot's ``selected`` says which image its traversals were decoded from). Views subscribe to an aspect and derive
their pictures from the state: ``"facts"`` on every new snapshot (progress, loss curves), ``"codes"`` when codes,
prior sample and LPS are new (not on a progress-only snapshot), ``"traversals"`` only when the engine decoded them
anew (a new selection, prior or model), so an unchanged picture is never drawn again, and ``"selection"`` when the
user selects a probe image or clears the selection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from explorer.live import Snapshot
from explorer.live.snapshot_history import SnapshotHistory

ASPECTS = ("facts", "codes", "traversals", "selection")


class LiveState:
    """Latest snapshot and selection; `post` and `select` notify the observers of what changed (call with the
    app's lock). ``selected`` is the probe image the user chose, None when none is (the traversals start from
    image 0). Observers of ``"selection"`` are called with the selection, the others with the snapshot."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None  # what the views show: the newest, or its past on the history slider
        self.live: Snapshot | None = None  # the newest posted
        self.history = SnapshotHistory()
        self.rewound: int | None = None  # the kept snapshot the latent views show (None: the newest)
        self.selected: int | None = None
        self._observers: dict[str, list[Callable[[Any], None]]] = {aspect: [] for aspect in ASPECTS}

    def observe(self, callback: Callable[[Any], None], aspect: str = "facts") -> None:
        if aspect not in self._observers:
            raise ValueError(f"LiveState: aspect must be one of {ASPECTS}, got {aspect!r}")
        self._observers[aspect].append(callback)

    def post(self, snapshot: Snapshot) -> None:
        self.live = snapshot
        self.history.add(snapshot)
        self._show(snapshot)

    def rewind(self, index: int | None) -> None:
        """Show kept snapshot ``index`` of the history in the latent views (None: the newest again)."""
        self.rewound = index
        self._show_again()

    def adopt(self, past: SnapshotHistory) -> None:
        """Put the saved history of a reopened run before the steps kept, and show the slider's new range."""
        self.history.adopt(past)
        self._show_again()

    def _show_again(self) -> None:
        if self.live is not None:
            self._show(self.live)

    def _show(self, live: Snapshot) -> None:
        snapshot = self.history.over(live, self.rewound)
        previous, self.snapshot = self.snapshot, snapshot
        for callback in self._observers["facts"]:
            callback(snapshot)
        for aspect, version in (("codes", "codes_version"), ("traversals", "traversal_version")):
            if previous is None or (previous.run_id, getattr(previous, version)) != (snapshot.run_id,
                                                                                      getattr(snapshot, version)):
                for callback in self._observers[aspect]:
                    callback(snapshot)

    def select(self, index: int | None) -> None:
        """Choose probe image ``index`` (None: no choice)."""
        self.selected = index
        for callback in self._observers["selection"]:
            callback(index)
