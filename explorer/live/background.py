"""`BackgroundTrainer`: a `Trainer` run in a daemon thread with pause / resume / stop, its facts posted as
`Snapshot`s for the live views, its commands (prior swaps, saves, selections) run between two steps.

See `explorer.live.owner` for the threading model and `explorer.live.snapshots` for what a snapshot costs."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from explorer.events import Callback, StepEvent, StopTraining
from explorer.live.lps import REST_LPS_CODES
from explorer.live.pacing import StepClock
from explorer.live.rest_codes import REST_CODES
from explorer.live.run import SteeredRun
from explorer.live.snapshots import Pacing
from explorer.live.state import RunState
from explorer.training import Trainer


class BackgroundTrainer(SteeredRun, Callback):
    """Runs ``trainer`` in a thread, publishing `Snapshot`s to ``snapshots``.

    The live view spends at most ``budget`` of the training time (see `explorer.live.snapshots.Pacing` for the
    cadences). Errors in the thread (a NaN loss included) stop it with the last good weights, make the state
    ``failed`` and `error` the exception, and are re-raised by `join`. ``rest_lps_codes``: codes of the at-rest LPS
    (0: none); ``rest_codes``: codes shown at rest (the probe's ``probe_size`` while training).
    """

    def __init__(
        self,
        trainer: Trainer,
        probe_size: int = 512,
        snapshot_interval: float = 0.3,
        budget: float = 0.05,
        lps_interval: float = 2.0,
        traversal_interval: float = 2.0,
        progress_interval: float = 0.25,
        queue_size: int = 2,
        rest_lps_codes: int = REST_LPS_CODES,
        rest_codes: int = REST_CODES,
    ) -> None:
        self.clock = StepClock()
        pacing = Pacing(snapshot_interval, budget, lps_interval, traversal_interval, progress_interval)
        super().__init__(trainer, probe_size, pacing, queue_size, rest_lps_codes, self.clock, rest_codes)
        self.trainer = trainer
        trainer.callbacks.append(self)

    def start(self, steps: int | None = None) -> None:
        """Train in the background until ``steps`` in total (default the config's). A second start is refused."""
        total = self.trainer.config.steps if steps is None else steps

        def check() -> None:
            if self.trainer.step >= total:
                raise RuntimeError(f"Training already reached step {self.trainer.step} of {total}; raise the step "
                                   "count.")
            self.maker.snapshot_limiter.reset()  # the views show the first steps at once

        def train() -> None:
            self.clock.start()
            self.trainer.run(total)

        self.owner.start(train, RunState.RUNNING, "explorer-trainer", check=check,
                         busy="Training is already running; pause, resume or stop it instead of starting again.",
                         on_end=lambda: self.maker.publish(complete=True))

    def save(self, out: str | Path | None = None) -> concurrent.futures.Future[Path]:
        """Write a checkpoint between two steps (or now, if no thread runs); the future holds its path.

        The outcome also goes to the live view as the next snapshot's message."""

        def save() -> Path:
            try:
                path = self.trainer.save(out)
            except (OSError, ValueError) as error:
                self.owner.say(f"Could not save the checkpoint: {error}", True)
                raise
            else:
                self.owner.say(f"Checkpoint of step {self.trainer.step} saved in {path}")
                return path
            finally:
                self.maker.publish()

        return self.owner.between_steps(save)

    def close(self) -> None:
        """Stop the thread and the LPS worker, and give back the trainer's run folder."""
        super().close()
        self.trainer.close()

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        self.clock.step_done()
        self.maker.step_done(event)
        owner = self.owner
        owner.run_commands()
        while owner.state is RunState.PAUSED and not owner.stop_requested:
            owner.run_commands(wait=0.05)
        if owner.stop_requested:
            raise StopTraining
        self.maker.paced(self.clock.resume())  # a pause is not training time
