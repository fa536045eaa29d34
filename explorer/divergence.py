"""Stopping a run that diverges with one message that says where, what, and what to try.

A loss or gradient that is not finite stops the run with the weights untouched. Codes beyond `CODE_LIMIT` or a
loss `LOSS_GROWTH` times its first value mean the weights of the step that produced them are already bad: the run
goes back to a copy of the training state at the last step within bounds, kept at the cost of one pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from explorer.training import Trainer

CODE_LIMIT = 1e6  # |code| beyond this means the encoder diverges (codes of a fitted prior are O(1) to O(100))
LOSS_GROWTH = 1e3  # a loss this many times its first value has exploded


class TrainingError(RuntimeError):
    """Training stopped because it diverged: the loss, its gradient or the codes stopped being finite or exploded."""


class DivergenceGuard:
    """Watches a trainer's steps: `check_forward` before the backward pass (given the largest |code| of the step's
    forward), `check_gradient` after it; each raises `TrainingError` when the run diverges. It holds no reference to
    the trainer, whose collection frees its run folder."""

    def __init__(self) -> None:
        self._first_loss: float | None = None
        self._kept_step: int | None = None
        self._kept: list[torch.Tensor] = []
        self._kept_generator: torch.Tensor | None = None

    def check_forward(self, trainer: Trainer, values: dict[str, float], code_scale: float, x: torch.Tensor,
                      generator_state: torch.Tensor) -> None:
        """Before the step's update: raise if the loss is not finite or the codes or the loss exploded; else keep
        the training state (with ``generator_state``, the generator before the step) as the last good one."""
        if not math.isfinite(values["loss"]):
            self._stop(trainer, f"the loss is {values['loss']}", values, x)
        if not code_scale <= CODE_LIMIT:
            self._stop(trainer, f"the codes reached |z| = {code_scale:.3g} (limit {CODE_LIMIT:g})", values, x,
                       back=True)
        if self._first_loss is None:
            self._first_loss = values["loss"]
        elif self._first_loss > 0 and values["loss"] > LOSS_GROWTH * self._first_loss:
            self._stop(trainer, f"the loss rose to {values['loss']:.4g}, over {LOSS_GROWTH:g} times its first value "
                       f"{self._first_loss:.4g}", values, x, back=True)
        self._keep(trainer, generator_state)

    def check_gradient(self, trainer: Trainer, grad_norm: torch.Tensor, values: dict[str, float],
                       x: torch.Tensor) -> None:
        if not torch.isfinite(grad_norm):
            self._stop(trainer, f"the gradient norm is {float(grad_norm)}", values, x)

    @staticmethod
    def _state_tensors(trainer: Trainer) -> list[torch.Tensor]:
        """The tensors a step changes: weights (model and objective) and optimizer moments, in a fixed order."""
        optimizer = [v for slots in trainer.optimizer.state.values() for v in slots.values() if torch.is_tensor(v)]
        return [*trainer.model.state_dict().values(), *trainer.objective.state_dict().values(), *optimizer]

    def _keep(self, trainer: Trainer, generator_state: torch.Tensor) -> None:
        tensors = self._state_tensors(trainer)
        if [t.shape for t in tensors] != [t.shape for t in self._kept]:  # the first step adds optimizer moments
            self._kept = [t.detach().clone() for t in tensors]
        else:
            for mine, t in zip(self._kept, tensors, strict=True):
                mine.copy_(t)
        self._kept_step, self._kept_generator = trainer.step, generator_state

    def _restore(self, trainer: Trainer) -> bool:
        """Put the kept state back; False if none is kept. Kept before the first optimizer step, the state has no
        moments: the optimizer starts afresh, as it did then."""
        if self._kept_step is None:
            return False
        tensors = self._state_tensors(trainer)
        if len(self._kept) < len(tensors):
            trainer.optimizer.state.clear()
            tensors = self._state_tensors(trainer)
        for t, mine in zip(tensors, self._kept, strict=True):
            t.copy_(mine)
        trainer.generator.set_state(self._kept_generator)
        trainer.step = self._kept_step
        return True

    def _stop(self, trainer: Trainer, what: str, values: dict[str, float], x: torch.Tensor,
              back: bool = False) -> None:
        """Raise TrainingError; ``back``: the current weights are bad, restore the last good ones first."""
        trainer.optimizer.zero_grad(set_to_none=True)
        restored = back and self._restore(trainer)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if not bool(torch.isfinite(x).all()):
            advice = "The batch holds NaN or inf pixel values: fix the data (the learning rate is not the cause)."
        else:
            advice = f"Try a lower learning rate (now {trainer.config.lr:g}) or penalty weight."
        at = f"step {trainer.step + 1}" if not restored else f"step {self._kept_step + 2}"
        kept = ", the last within bounds, are restored" if restored else " are kept"
        raise TrainingError(f"Training stopped at {at}: {what} ({shown}). The weights of step {trainer.step}{kept}. "
                            f"{advice}")
