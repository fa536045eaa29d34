"""`MonitorCallback`: a Hugging Face ``transformers.TrainerCallback`` that reports each step to a `Monitor`.

    trainer = transformers.Trainer(model, args, train_dataset=..., callbacks=[MonitorCallback(monitor)])

``on_log`` keeps the terms the trainer logs (``loss`` and anything else numeric, every ``logging_steps``);
``on_step_end`` calls ``monitor.step(state.global_step, ...)`` with the latest of them. Stop in the views sets
``control.should_training_stop``; the end of training ends the monitor's run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import transformers

from explorer.events import StopTraining

if TYPE_CHECKING:
    from explorer.live.monitor import Monitor

NOT_TERMS = ("epoch", "learning_rate", "grad_norm")  # what the trainer logs besides the loss terms


class MonitorCallback(transformers.TrainerCallback):
    """Calls ``monitor.step`` at the end of each optimizer step, on the trainer's thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.terms: dict[str, float] = {}

    def on_log(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
               control: transformers.TrainerControl, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.terms.update({name: float(value) for name, value in (logs or {}).items()
                           if isinstance(value, (int, float)) and name not in NOT_TERMS})

    def on_step_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                    control: transformers.TrainerControl, **kwargs: Any) -> None:
        try:
            self.monitor.step(state.global_step, **self.terms)
        except StopTraining:
            control.should_training_stop = True

    def on_train_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                     control: transformers.TrainerControl, **kwargs: Any) -> None:
        self.monitor.finish()
