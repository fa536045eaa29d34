"""Snapshot files: what a run trained elsewhere (the command line, torchrun) shows the explorer, every N steps.

`SnapshotWriter`, a trainer callback (rank 0 only), writes ``live-snapshot.safetensors`` into the run folder: the
model's weights, and in the file's metadata the step, the current prior, the run's config (None for a loop of the
user's own, see `explorer.live.monitor`) and the bounded loss history. The file is written to a temporary file and
moved into place with ``os.replace``: a reader sees the previous file or the new one, whole, never a torn one;
readers take no lock, so they never block the writer.
`read_snapshot` reads a file in one go (one ``read``), so a later replace cannot mix two generations.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from explorer.checkpoints import atomic_write
from explorer.history import BoundedHistory

if TYPE_CHECKING:
    from torch import nn

    from explorer.events import StepEvent
    from explorer.priors import Prior
    from explorer.training import Trainer

SNAPSHOT_FILE = "live-snapshot.safetensors"


@dataclass(frozen=True)
class LiveFile:
    """One snapshot file's content: the model's weights and the facts the writer recorded."""

    weights: dict[str, torch.Tensor]
    meta: dict[str, Any]  # step, total_steps, steps_per_s, terms, run_id, prior, train (TrainConfig dict or None),
    # history
    signature: tuple[int, int, int]  # (inode, size, mtime_ns): a changed file is a new snapshot


class SnapshotWriter:
    """Writes a snapshot file into ``folder`` every ``every`` steps and at the end of the run (a `Callback`)."""

    def __init__(self, folder: Path, every: int) -> None:
        self.folder, self.every = Path(folder), every
        self.history = BoundedHistory()
        self._event: StepEvent | None = None

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        self._event = event
        self.history.add(event.step, event.terms)
        if event.step % self.every == 0:
            self.write(trainer)

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """Checkpoints need nothing here."""

    def on_end(self, trainer: Trainer) -> None:
        if self._event is not None and self._event.step % self.every:
            self.write(trainer)

    def write(self, trainer: Trainer) -> Path:
        event = self._event
        return write_snapshot(self.folder, trainer.model, trainer.step, trainer.prior, trainer.run_id, event,
                              self.history, trainer.config.steps,
                              train=trainer.config.with_prior(trainer.prior).to_dict())


def write_snapshot(folder: Path, model: nn.Module, step: int, prior: Prior | None, run_id: str,
                   event: StepEvent | None, history: BoundedHistory, total_steps: int,
                   train: dict[str, Any] | None = None) -> Path:
    """Write ``folder``'s snapshot file (atomically): ``model``'s weights and the run's facts. ``train``: the
    `TrainConfig` that rebuilds the model (None for a model of the user's own, which the follower is given)."""
    meta = {"step": step, "total_steps": event.total_steps if event else total_steps,
            "steps_per_s": event.steps_per_s if event else 0.0, "terms": event.terms if event else {},
            "run_id": run_id, "prior": None if prior is None else prior.to_dict(), "train": train,
            "history": history.to_dict(), "written_at": time.time()}
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save_tensors(weights, metadata={"explorer": json.dumps(meta)})
    path = Path(folder) / SNAPSHOT_FILE
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def signature(folder: Path) -> tuple[int, int, int] | None:
    """What identifies the current snapshot file of ``folder`` (None: there is none)."""
    try:
        stat = (Path(folder) / SNAPSHOT_FILE).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def read_snapshot(folder: Path) -> LiveFile | None:
    """The snapshot file of ``folder``, read whole; None if there is none yet."""
    path = Path(folder) / SNAPSHOT_FILE
    try:
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
    except FileNotFoundError:
        return None
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["explorer"])
    return LiveFile(load_tensors(data), meta, (stat.st_ino, stat.st_size, stat.st_mtime_ns))
