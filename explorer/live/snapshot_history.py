"""A run's past snapshots for the history slider: bounded over any run length by thinning geometrically in steps,
so early training, where a run changes most, keeps its detail and a long run does not grow memory."""

from __future__ import annotations

import dataclasses

import numpy as np

from explorer.live.state import Snapshot

KEPT = 48  # snapshots kept per run
KEPT_CODES = 10_000  # codes kept per snapshot: those of the live probe, not the 100,000 shown at rest


class SnapshotHistory:
    """At most `KEPT` full snapshots of the current run, oldest first. When one too many is held, the one whose
    neighbours are closest in log(step) goes, so the kept steps tend to a geometric series; the first and the
    newest always stay. A later snapshot of a step already kept replaces it (e.g. the codes grown at rest)."""

    def __init__(self, capacity: int = KEPT) -> None:
        if capacity < 3:
            raise ValueError(f"SnapshotHistory: capacity must be >= 3, got {capacity}")
        self.capacity = capacity
        self.kept: list[Snapshot] = []

    def __len__(self) -> int:
        return len(self.kept)

    def add(self, snapshot: Snapshot) -> None:
        if snapshot.progress_only:
            return
        if self.kept and snapshot.run_id != self.kept[-1].run_id:
            self.kept.clear()
        slim = dataclasses.replace(snapshot, codes=snapshot.codes[:KEPT_CODES].copy(),
                                   prior_sample=snapshot.prior_sample[:KEPT_CODES].copy())
        if self.kept and self.kept[-1].step == snapshot.step:
            self.kept[-1] = slim
            return
        self.kept.append(slim)
        if len(self.kept) > self.capacity:
            logs = np.log1p([kept.step for kept in self.kept])
            del self.kept[1 + int(np.argmin(logs[2:] - logs[:-2]))]  # the one whose going leaves the least hole

    def over(self, live: Snapshot, index: int | None) -> Snapshot:
        """``live`` with the codes, prior sample, LPS and fit of kept snapshot ``index`` (None: ``live`` as it is),
        so the progress and losses stay live while the latent views show the past."""
        if index is None or not self.kept:
            return live
        past = self.at(index)
        return dataclasses.replace(
            live, codes=past.codes, prior_sample=past.prior_sample, lps=past.lps, lps_step=past.lps_step,
            lps_estimator=past.lps_estimator, fit=past.fit, codes_of=f"step {past.step:,}: {past.codes_of}",
            codes_version=-past.codes_version)

    def at(self, index: int) -> Snapshot:
        """Kept snapshot ``index``, the newest if there are fewer (call with some kept)."""
        return self.kept[min(index, len(self.kept) - 1)]
