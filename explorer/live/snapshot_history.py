"""A run's past snapshots for the history slider: bounded over any run length by thinning geometrically in steps,
so early training, where a run changes most, keeps its detail and a long run does not grow memory. Saved beside a
checkpoint (`SnapshotHistory.save`), it comes back when the run is opened again."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from explorer.live.state import Snapshot

KEPT = 48  # snapshots kept per run
KEPT_CODES = 10_000  # codes kept per snapshot: those of the live probe, not the 100,000 shown at rest
SAVED_CODES = 2_000  # codes per snapshot in a saved history (float16): about 2 MB for 48 snapshots of d = 5
HISTORY_FILE = "history.safetensors"
_RECORD = ("step", "lps_step", "lps_estimator", "codes_of", "codes_version")  # the scalars saved of each


@dataclasses.dataclass(frozen=True)
class Kept:
    """What the history keeps of a snapshot: what the latent views, marginals and LPS show of it."""

    step: int
    codes: np.ndarray
    prior_sample: np.ndarray
    lps: np.ndarray | None
    lps_step: int
    lps_estimator: str
    fit: np.ndarray | None
    codes_of: str
    codes_version: int

    @classmethod
    def of(cls, snapshot: Snapshot) -> Kept:
        return cls(snapshot.step, snapshot.codes[:KEPT_CODES].copy(), snapshot.prior_sample[:KEPT_CODES].copy(),
                   snapshot.lps, snapshot.lps_step, snapshot.lps_estimator, snapshot.fit, snapshot.codes_of,
                   snapshot.codes_version)


class SnapshotHistory:
    """At most `KEPT` snapshots of the current run, oldest first. When one too many is held, the one whose
    neighbours are closest in log(step) goes, so the kept steps tend to a geometric series; the first and the
    newest always stay. A later snapshot of a step already kept replaces it (e.g. the codes grown at rest), and a
    snapshot of another run starts the history anew."""

    def __init__(self, capacity: int = KEPT) -> None:
        if capacity < 3:
            raise ValueError(f"SnapshotHistory: capacity must be >= 3, got {capacity}")
        self.capacity = capacity
        self.kept: list[Kept] = []
        self.run_id: str | None = None

    def __len__(self) -> int:
        return len(self.kept)

    def add(self, snapshot: Snapshot) -> None:
        if snapshot.progress_only:
            return
        if self.run_id is not None and snapshot.run_id != self.run_id:
            self.kept.clear()
        self.run_id = snapshot.run_id
        while self.kept and self.kept[-1].step >= snapshot.step:  # later codes of a step, or a reopened run's past
            self.kept.pop()
        self.kept.append(Kept.of(snapshot))
        self._thin()

    def adopt(self, past: SnapshotHistory) -> None:
        """Put the steps of ``past`` (this run's history as saved before it was reopened) before those kept."""
        first = self.kept[0].step if self.kept else None
        self.kept = [kept for kept in past.kept if first is None or kept.step < first] + self.kept
        self._thin()

    def _thin(self) -> None:
        while len(self.kept) > self.capacity:
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

    def at(self, index: int) -> Kept:
        """Kept snapshot ``index``, the newest if there are fewer (call with some kept)."""
        return self.kept[min(index, len(self.kept) - 1)]

    def save(self, folder: Path) -> Path:
        """Write the history into ``folder`` as `HISTORY_FILE` (the first `SAVED_CODES` codes of each snapshot, as
        float16), replacing any earlier one at once (a new file moved into place); returns its path."""
        tensors, records = {}, []
        for i, kept in enumerate(self.kept):
            tensors[f"{i}.codes"] = kept.codes[:SAVED_CODES].astype(np.float16)
            tensors[f"{i}.prior_sample"] = kept.prior_sample[:SAVED_CODES].astype(np.float16)
            for name in ("lps", "fit"):
                if getattr(kept, name) is not None:
                    tensors[f"{i}.{name}"] = np.asarray(getattr(kept, name), np.float32)
            records.append({name: getattr(kept, name) for name in _RECORD})
        path = Path(folder) / HISTORY_FILE
        partial = path.with_name(f"{HISTORY_FILE}.{os.getpid()}.tmp")
        save_file(tensors, partial, metadata={"kept": json.dumps(records)})
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, folder: Path) -> SnapshotHistory:
        """The history saved in ``folder`` (empty if there is none), for `adopt` by the run opened from it; a file
        that is not a saved history raises ValueError saying so."""
        history = cls()
        path = Path(folder) / HISTORY_FILE
        if not path.exists():
            return history
        try:
            with safe_open(path, "np") as file:
                records = json.loads(file.metadata()["kept"])
                tensors = {key: file.get_tensor(key) for key in file.keys()}
            history.kept = [Kept(codes=tensors[f"{i}.codes"].astype(np.float32),
                                 prior_sample=tensors[f"{i}.prior_sample"].astype(np.float32),
                                 lps=tensors.get(f"{i}.lps"), fit=tensors.get(f"{i}.fit"), **record)
                            for i, record in enumerate(records)]
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a history explorer saved ({error}); move it away to open the run "
                             "without its earlier steps") from None
        return history
