"""`MonitorCallback`: a PyTorch Lightning callback that reports each training batch to a `Monitor`.

    trainer = lightning.Trainer(callbacks=[MonitorCallback(monitor)])

The step is Lightning's ``global_step`` (optimizer steps); the terms are what ``training_step`` returned (its loss,
or each 0-d tensor of the dict it returned) and the metrics it logged with ``self.log``. Stop in the views sets
``trainer.should_stop``; the end of fitting (or its exception) ends the monitor's run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning
import torch

from explorer.events import StopTraining

if TYPE_CHECKING:
    from explorer.live.monitor import Monitor


def batch_terms(outputs: Any, logged: dict[str, Any]) -> dict[str, float]:
    """The scalar terms of a training step: its returned loss (or dict of 0-d tensors) and its logged metrics."""
    if isinstance(outputs, torch.Tensor):
        outputs = {"loss": outputs}
    found = {**(outputs if isinstance(outputs, dict) else {}), **logged}
    return {name: float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            for name, value in found.items()
            if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)}


class MonitorCallback(lightning.Callback):
    """Calls ``monitor.step`` after each training batch, on Lightning's thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def on_train_batch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        try:
            self.monitor.step(trainer.global_step, **batch_terms(outputs, trainer.callback_metrics))
        except StopTraining:
            trainer.should_stop = True

    def on_train_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        self.monitor.finish()

    def on_exception(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule,
                     exception: BaseException) -> None:
        self.monitor.finish(exception)
