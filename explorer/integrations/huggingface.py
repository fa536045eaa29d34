"""`MonitorCallback`: a Hugging Face ``transformers.TrainerCallback`` that reports each step to a `Monitor`.

    trainer = transformers.Trainer(model, args, train_dataset=..., callbacks=[MonitorCallback(monitor)])

Each optimizer step is reported once, with the latest terms the trainer logged (``loss`` and anything else
numeric, every ``logging_steps``): by ``on_log`` on a step that logs (the trainer logs after ``on_step_end``), else
by ``on_step_end``. Stop in the views sets ``control.should_training_stop``; the end of training ends the
monitor's run.
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
        self.reported = -1

    def on_log(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
               control: transformers.TrainerControl, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.terms.update({name: float(value) for name, value in (logs or {}).items()
                           if isinstance(value, (int, float)) and name not in NOT_TERMS})
        self._report(state.global_step, control)

    def on_step_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                    control: transformers.TrainerControl, **kwargs: Any) -> None:
        if not control.should_log:  # else on_log comes next, with this step's terms
            self._report(state.global_step, control)

    def _report(self, step: int, control: transformers.TrainerControl) -> None:
        if step <= self.reported:  # logs after the last step (the run's summary, evaluations) are not steps
            return
        self.reported = step
        try:
            self.monitor.step(step, **self.terms)
        except StopTraining:
            control.should_training_stop = True

    def on_train_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                     control: transformers.TrainerControl, **kwargs: Any) -> None:
        self.monitor.finish()
