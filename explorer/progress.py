"""A tqdm progress bar as a training callback."""

from __future__ import annotations

from tqdm.auto import tqdm

from explorer.events import Callback, StepEvent
from explorer.training import Trainer


class ProgressBar(Callback):
    """Shows steps, steps/s, time left and the current loss terms."""

    def __init__(self, **tqdm_options: object) -> None:
        self.options = tqdm_options
        self.bar: tqdm | None = None

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        if self.bar is None:
            self.bar = tqdm(total=event.total_steps, initial=event.step - 1, unit="step", **self.options)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in event.terms.items()}, refresh=False)

    def on_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
