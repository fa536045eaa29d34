"""`LiveState`: the kernel side's one copy of what the views show, observed by them.

It holds the latest facts the engine posted (a `Snapshot`, whose loss and LPS histories the engine keeps bounded)
and the user's selection. Views subscribe to an aspect and derive their pictures from the snapshot: ``"facts"``
on every new snapshot (progress, loss curves), ``"codes"`` when codes, prior sample and LPS are new (not on a
progress-only snapshot), ``"traversals"`` only when the engine decoded them anew (a new selection, prior or
model), so an unchanged picture is never drawn again.
"""

from __future__ import annotations

from collections.abc import Callable

from explorer.live import Snapshot

ASPECTS = ("facts", "codes", "traversals")


class LiveState:
    """Latest snapshot and selection; `post` notifies the observers of what changed (call with the app's lock)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.selected = 0
        self._observers: dict[str, list[Callable[[Snapshot], None]]] = {aspect: [] for aspect in ASPECTS}

    def observe(self, callback: Callable[[Snapshot], None], aspect: str = "facts") -> None:
        if aspect not in self._observers:
            raise ValueError(f"LiveState: aspect must be one of {ASPECTS}, got {aspect!r}")
        self._observers[aspect].append(callback)

    def post(self, snapshot: Snapshot) -> None:
        previous, self.snapshot = self.snapshot, snapshot
        self.selected = snapshot.selected
        for callback in self._observers["facts"]:
            callback(snapshot)
        for aspect, version in (("codes", "codes_version"), ("traversals", "traversal_version")):
            if previous is None or (previous.run_id, getattr(previous, version)) != (snapshot.run_id,
                                                                                      getattr(snapshot, version)):
                for callback in self._observers[aspect]:
                    callback(snapshot)
