"""What the training loop tells the code that watches it: a `StepEvent` per step, delivered to `Callback`s on the
training thread; a callback ends a run early by raising `StopTraining`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.training import Trainer


@dataclass(frozen=True)
class StepEvent:
    """What one training step reports: loss terms as floats and the recent throughput."""

    step: int
    total_steps: int
    terms: dict[str, float]
    steps_per_s: float
    elapsed_s: float


class Callback:
    """Receives the trainer's events; override what you need. Runs on the training thread."""

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        """After each optimizer step."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was written."""

    def on_end(self, trainer: Trainer) -> None:
        """When `Trainer.run` returns, normally or not."""


class StopTraining(Exception):
    """Raised by a callback's ``on_step`` to end `Trainer.run` early; the final checkpoint is still written."""


