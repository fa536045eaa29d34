"""A bounded history of a run's scalars (loss terms, LPS): the whole run at a resolution that halves as it grows.

Every value is recorded; when `capacity` points are held, every other one is dropped and from then on only every
second (then fourth, ...) value is kept. Memory stays bounded over any run length, the first and the newest points
are always there, and the points stay evenly spaced in steps, which is what a loss curve needs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class BoundedHistory:
    """Steps and named values of at most ``capacity`` evenly thinned points (plus the newest one)."""

    def __init__(self, capacity: int = 400) -> None:
        if capacity < 2:
            raise ValueError(f"BoundedHistory: capacity must be >= 2, got {capacity}")
        self.capacity = capacity
        self._stride, self._seen = 1, 0
        self._steps: list[int] = []
        self._values: dict[str, list[float]] = {}
        self._newest: tuple[int, dict[str, float]] | None = None

    def __len__(self) -> int:
        return len(self._steps) + (self._newest is not None)

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` of ``step`` (the newest point always shows; older ones are thinned)."""
        if self._seen % self._stride == 0:
            self._steps.append(step)
            for name, value in values.items():
                self._values.setdefault(name, [float("nan")] * (len(self._steps) - 1)).append(float(value))
            for column in self._values.values():
                if len(column) < len(self._steps):
                    column.append(float("nan"))
            self._newest = None
            if len(self._steps) >= self.capacity:
                self._steps = self._steps[::2]
                self._values = {name: column[::2] for name, column in self._values.items()}
                self._stride *= 2
        else:
            self._newest = (step, dict(values))
        self._seen += 1

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(steps [h], name -> values [h]) as new arrays, safe to hand to another thread."""
        steps = list(self._steps)
        values = {name: list(column) for name, column in self._values.items()}
        if self._newest is not None:
            step, newest = self._newest
            steps.append(step)
            for name, column in values.items():
                column.append(float(newest.get(name, float("nan"))))
        return np.asarray(steps, dtype=np.int64), {name: np.asarray(c, dtype=np.float64) for name, c in values.items()}

    @classmethod
    def from_dict(cls, d: dict[str, list], capacity: int = 400) -> BoundedHistory:
        """The history `to_dict` wrote (its points kept as they are)."""
        steps = d.get("step", [])
        history = cls(max(capacity, len(steps) + 1))
        for k, step in enumerate(steps):
            history.add(step, {name: column[k] for name, column in d.items() if name != "step"})
        return history

    def to_dict(self) -> dict[str, list]:
        """JSON-ready form (for snapshot files)."""
        steps, values = self.arrays()
        return {"step": steps.tolist(), **{name: column.tolist() for name, column in values.items()}}
