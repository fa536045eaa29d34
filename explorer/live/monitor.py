"""`Monitor`: the live views for a training loop of your own, in the spirit of TensorBoard's ``SummaryWriter``.

    monitor = Monitor(model, data, prior=prior, loss=mmd_prior)   # model.encode / .decode; data: a tensor, array...
    explorer.Explorer.watch(monitor)                              # the Explorer's views, in a notebook
    for step in range(1, steps + 1):
        ...                                                        # your forward, backward, optimizer step
        monitor.step(step, loss=loss, recon=recon, mmd=mmd)        # floats or 0-d tensors

The loop's thread owns the run (see `explorer.live.owner`): the views' commands (a prior edited in the Prior tab,
a selection, pause) run inside `Monitor.step`, between two of your steps; Pause blocks `step` until Resume; Stop
makes the next `step` raise `explorer.events.StopTraining` (catch it to end your loop: the integrations do). The
monitor encodes its probe in eval mode without gradients and restores the model's mode, within ``budget`` (5 %) of
the loop's time. When the loop runs in a notebook's foreground, `step` also lets the front end's events (slider
moves, button clicks) reach the kernel (`explorer.live.kernel_events`), paced within the same budget.

A run ends with `Monitor.finish` (or the end of a ``with monitor:`` block, which shows an exception that ends the
loop as the run's failure, its message in the views); a `step` after it goes on with the run. Steps must not go
backwards: `new_run` starts a run whose steps count from anywhere. Under torchrun only rank 0 watches (every other
rank's `step` does nothing); with ``out`` it writes the snapshot files `explorer.Explorer.follow` reads every
``snapshot_every`` steps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn

from explorer import distributed, snapshot_files
from explorer.data import as_dataset
from explorer.events import StepEvent, StopTraining
from explorer.history import BoundedHistory
from explorer.live.kernel_events import kernel_events
from explorer.live.pacing import RateLimiter, StepClock
from explorer.live.probe import evaluating
from explorer.live.rest_codes import REST_CODES
from explorer.live.run import SteeredRun
from explorer.live.snapshots import HISTORY_POINTS, Pacing
from explorer.live.state import RunState
from explorer.priors import Prior, standard_normal

UI_SHARE = 0.1  # of the budget: handling the front end's events when the loop holds the kernel's main thread
UI_INTERVAL = 0.1  # s between two such polls at most as often


class LoopRun:
    """The `LiveSource` of a loop of the user's own: its model and data (anything `explorer.data.as_dataset` takes,
    checked here), the prior its codes are matched to, and the step the loop reported. Assigning ``prior`` also
    swaps the prior of ``loss`` (an `MMDPrior`), if given."""

    def __init__(self, model: nn.Module, dataset: Any, prior: Prior | None, total_steps: int = 0,
                 loss: nn.Module | None = None, run_id: str | None = None) -> None:
        self.model, self.total_steps, self.loss = model, total_steps, loss
        self.dataset = as_dataset(dataset)
        self.step = 0
        self.run_id = run_id or uuid.uuid4().hex
        if prior is None:
            prior = getattr(loss, "prior", None)
        if prior is None:
            prior = standard_normal(self.code_size())
        self._prior = prior
        self.prior = prior

    def code_size(self) -> int:
        """The model's latent size: the width of one image's code."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            return int(self.model.encode(self.dataset.inputs(torch.tensor([0])).to(device)).shape[1])

    @property
    def latent_dim(self) -> int:
        return self._prior.dim

    @property
    def prior(self) -> Prior:
        return self._prior

    @prior.setter
    def prior(self, prior: Prior) -> None:
        if prior.dim != self._prior.dim:
            raise ValueError(f"prior dim must equal the latent size {self._prior.dim}, got {prior.dim}")
        self._prior = prior
        if self.loss is not None:
            self.loss.prior = prior


class Monitor(SteeredRun):
    """Watches a loop of the user's own that calls `step` once per step (see the module docstring).

    ``model``: has ``encode(x)`` and ``decode(z)``; ``data``: its data, anything `explorer.data.as_dataset` takes
    (a tensor, an array, a torch ``Dataset``);
    ``prior``: what its codes should match (default ``loss``'s prior, else N(0, I)); ``loss``: an `MMDPrior`
    the monitor hands the prior edited in the views; ``total_steps``: the loop's length if known (progress, time
    left); ``out`` and ``snapshot_every``: the folder and cadence of the snapshot files (rank 0; see
    `explorer.snapshot_files`); ``rest_lps_codes``: codes of the notebooks' LPS shown once the loop ends (0: none);
    ``rest_codes``: codes shown while the loop is paused or ended (the probe's ``probe_size`` while it trains).
    """

    def __init__(self, model: nn.Module, data: Any, prior: Prior | None = None, *, loss: nn.Module | None = None,
                 probe_size: int = 512, total_steps: int = 0, budget: float = 0.05, snapshot_interval: float = 0.3,
                 out: str | Path | None = None, snapshot_every: int = 0, rest_lps_codes: int = 0,
                 rest_codes: int = REST_CODES) -> None:
        self.clock = StepClock()
        self.main = distributed.is_main()
        source = LoopRun(model, data, prior, total_steps, loss)
        pacing = Pacing(snapshot_interval=snapshot_interval, budget=(1 - UI_SHARE) * budget)
        super().__init__(source, probe_size if self.main else 1, pacing, 2, rest_lps_codes, self.clock,
                         rest_codes if self.main else 0)
        self.ui_limiter = RateLimiter(UI_INTERVAL, UI_SHARE * budget)
        self.out, self.snapshot_every = (Path(out) if out is not None else None), snapshot_every
        if self.out is not None and self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.file_history = BoundedHistory()
        self._poll_ui: Callable[[], None] | None = None

    @property
    def model(self) -> nn.Module:
        return self.source.model

    @property
    def prior(self) -> Prior:
        """The prior the loop should match now: the one edited in the views once they edit it."""
        return self.source.prior

    @prior.setter
    def prior(self, prior: Prior) -> None:
        self.source.prior = prior

    @property
    def stop_requested(self) -> bool:
        """Stop was pressed in the views: the next `step` raises `StopTraining` (a loop may also read this)."""
        return self.owner.stop_requested

    def step(self, step: int, loss: float | torch.Tensor | None = None, **terms: float | torch.Tensor) -> None:
        """Report step ``step`` (its loss and other terms, floats or 0-d tensors); then run the views' commands and
        take a snapshot if one is due. Blocks while paused; raises `StopTraining` once Stop was pressed, and
        ValueError if ``step`` goes backwards (see `new_run`)."""
        if not self.main:
            return
        values = {name: float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
                  for name, value in {"loss": loss, **terms}.items() if value is not None}
        source, owner = self.source, self.owner
        if step < source.step:
            raise ValueError(f"Monitor.step: step {step} after step {source.step}; steps must not go backwards. A new "
                             "run that counts from the start: call monitor.new_run() first.")
        if not owner.owned:
            self._begin()
        self.clock.step_done()
        source.step = step
        total = source.total_steps if source.total_steps >= step else 0  # 0: the loop's length is not known
        event = StepEvent(step, total, values, self.clock.steps_per_s, self.clock.elapsed_s)
        self.maker.step_done(event)
        if self.out is not None and self.snapshot_every and step % self.snapshot_every == 0:
            self.write_snapshot(event)
        self._between_steps()
        if owner.stop_requested:
            self.finish()
            raise StopTraining
        self.maker.paced(self.clock.resume())  # a pause is not training time

    def new_run(self) -> None:
        """End the current run and show a new one (a new id, its own histories), whose steps count from anywhere."""
        self.finish()
        source = self.source
        source.run_id, source.step = uuid.uuid4().hex, 0
        self.maker.loss_history = BoundedHistory(HISTORY_POINTS)
        self.maker.lps.history = BoundedHistory(HISTORY_POINTS)
        self.file_history = BoundedHistory()

    def finish(self, error: BaseException | None = None) -> None:
        """The loop ended (with ``error``, which the views then show as the run's failure); the views' commands
        run at once from here on. Does nothing if no loop is being watched."""
        if self.owner.owned:
            self.owner.end(error, lambda: self.maker.publish(complete=True), failure="The training loop failed: ")
            if self.out is not None and self.main and self.maker.last_event is not None:
                self.write_snapshot(self.maker.last_event)

    def write_snapshot(self, event: StepEvent) -> Path:
        """Write the snapshot file of ``event``'s step into ``out`` (rank 0), for `explorer.Explorer.follow`."""
        self.file_history.add(event.step, event.terms)
        source = self.source
        return snapshot_files.write_snapshot(self.out, source.model, source.step, source.prior, source.run_id,
                                             event, self.file_history, source.total_steps)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.finish(None if isinstance(error, StopTraining) else error)

    def _begin(self) -> None:
        self.owner.adopt(RunState.RUNNING, busy="Another thread's loop reports to this monitor; one loop at a time.")
        self._poll_ui = kernel_events()
        self.maker.snapshot_limiter.reset()  # the views show the first steps at once
        self.clock.start()

    def _between_steps(self) -> None:
        """The views' commands, the front end's events (a foreground loop in a kernel), and the pause."""
        owner = self.owner
        self._ui_events()
        owner.run_commands()
        while owner.state is RunState.PAUSED and not owner.stop_requested:
            self._ui_events(paused=True)
            owner.run_commands(wait=0.05)

    def _ui_events(self, paused: bool = False) -> None:
        if self._poll_ui is None or not (paused or self.ui_limiter.due()):
            return
        started = time.perf_counter()
        self._poll_ui()
        if not paused:
            self.ui_limiter.record(time.perf_counter() - started)

