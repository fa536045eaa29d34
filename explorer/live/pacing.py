"""How often the live layer may act, and how fast the run goes: one `RateLimiter` for every cadence (snapshots,
progress, LPS, traversals), and the training clock that steps/s and the elapsed time come from."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

RATE_WINDOW = 50  # steps over which steps/s is measured


class RateLimiter:
    """Allows an action at most every ``interval`` s, the interval stretched to ``cost / budget`` so that the action
    spends at most ``budget`` of the time; ``cost`` is what the last action took (see `record`)."""

    def __init__(self, interval: float, budget: float = 1.0) -> None:
        self.interval, self.budget = interval, budget
        self.last, self.cost = -math.inf, 0.0

    @property
    def period(self) -> float:
        return max(self.interval, self.cost / self.budget)

    def due(self, now: float | None = None) -> bool:
        return self.wait_s(now) <= 0

    def wait_s(self, now: float | None = None) -> float:
        """Seconds until the next action is allowed (<= 0: now)."""
        now = time.perf_counter() if now is None else now
        return self.last + self.period - now

    def reset(self) -> None:
        """Allow the next action now (its cost so far still stretches the interval after it)."""
        self.last = -math.inf

    def record(self, cost: float, at: float | None = None) -> None:
        """An action that took ``cost`` s ended ``at`` (default now)."""
        self.last, self.cost = time.perf_counter() if at is None else at, cost


class StepClock:
    """Training time of this session and steps/s over the last `RATE_WINDOW` steps; what happens between two
    steps (commands, a pause) is not training time."""

    def __init__(self) -> None:
        self.elapsed_s = 0.0
        self._window: collections.deque[float] = collections.deque(maxlen=RATE_WINDOW)
        self._mark = 0.0

    def start(self) -> None:
        """A run (re)starts: the rate is measured anew."""
        self._window.clear()
        self._mark = time.perf_counter()

    def step_done(self) -> None:
        """A step ended now: it took the time since `start` or the last `resume`."""
        seconds = time.perf_counter() - self._mark
        self._window.append(seconds)
        self.elapsed_s += seconds

    def resume(self) -> float:
        """Training goes on from now; returns now."""
        self._mark = time.perf_counter()
        return self._mark

    @property
    def steps_per_s(self) -> float:
        seconds = sum(self._window)
        return len(self._window) / seconds if seconds > 0 else 0.0


@dataclass
class ReportedClock:
    """The rate and time another process reported (a followed run's snapshot file)."""

    steps_per_s: float = 0.0
    elapsed_s: float = 0.0
