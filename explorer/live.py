"""Training in a background thread, observed through snapshots: the engine side of the live explorer.

`BackgroundTrainer` runs `Trainer.run` in one daemon thread and, every few tenths of a second, takes a
`Snapshot` under ``no_grad``: the codes of a fixed probe set, a prior sample of equal size, the loss history, a
warm-started per-dimension LPS and decoded traversals. Snapshots go to a bounded queue that drops the oldest, so
a slow consumer never slows training. The thread never touches a widget; widgets never touch the loop.

Commands from other threads (pause, resume, stop, save) are flags or closures the training thread runs between
two steps, so the model, optimizer and checkpoints are only ever touched by one thread at a time.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.metrics import LPSEstimator
from explorer.models import AutoEncoder
from explorer.priors import Prior, standard_normal
from explorer.training import Callback, StepEvent, StopTraining, Trainer

TRAVERSAL_QUANTILES = np.linspace(0.05, 0.95, 7)
HISTORY_POINTS = 400  # loss history sent per snapshot (decimated)


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows of one moment of training. Arrays are NumPy, safe to hand to another thread."""

    step: int
    total_steps: int
    state: str
    terms: dict[str, float]
    steps_per_s: float
    elapsed_s: float
    history_steps: np.ndarray  # [h] steps of the (decimated) loss history
    history: dict[str, np.ndarray]  # term -> [h]
    codes: np.ndarray  # [n, d] codes of the probe images
    prior_sample: np.ndarray  # [n, d]
    lps: np.ndarray | None  # [d] held-out R^2 per dimension, None until first estimated
    lps_step: int  # the step the LPS was estimated at
    selected: int  # probe index the traversals start from
    traversals: np.ndarray  # uint8 [d, k, H, W, C]: row i varies z_i over the prior's quantiles
    traversal_values: np.ndarray  # [d, k] the z_i of each column
    original: np.ndarray  # uint8 [H, W, C] of the selected probe image
    reconstruction: np.ndarray  # uint8 [H, W, C]
    message: str = ""
    message_is_error: bool = False
    taken_at: float = field(default_factory=time.perf_counter)

    @property
    def lps_score(self) -> float | None:
        return None if self.lps is None else float(np.mean(self.lps))


def to_hwc_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images [..., C, H, W] in [0, 1] as uint8 [..., H, W, C]."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


@torch.no_grad()
def traversal_grid(model: AutoEncoder, code: torch.Tensor, values: np.ndarray) -> np.ndarray:
    """Decode ``code`` [d] with z_i replaced by each of ``values[i]`` [d, k]: uint8 [d, k, H, W, C]."""
    d, k = values.shape
    grid = code.detach().reshape(1, 1, d).repeat(d, k, 1)
    for i in range(d):
        grid[i, :, i] = torch.as_tensor(values[i], dtype=grid.dtype)
    images = to_hwc_uint8(model.decode(grid.reshape(d * k, d).to(next(model.parameters()).device)))
    return images.reshape(d, k, *images.shape[1:])


def traversal_values(prior_sample: np.ndarray) -> np.ndarray:
    """Columns of the traversals: each dimension's prior quantiles `TRAVERSAL_QUANTILES`, [d, k]."""
    return np.quantile(prior_sample, TRAVERSAL_QUANTILES, axis=0).T


class SnapshotQueue:
    """A bounded queue that keeps the newest snapshots: `put` drops the oldest instead of blocking."""

    def __init__(self, maxsize: int = 2) -> None:
        self._queue: queue.Queue[Snapshot] = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, snapshot: Snapshot) -> None:
        while True:
            try:
                self._queue.put_nowait(snapshot)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def latest(self, timeout: float | None = None) -> Snapshot | None:
        """The newest queued snapshot (older ones are discarded), waiting up to ``timeout`` s; None if none."""
        try:
            snapshot = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None
        while True:
            try:
                snapshot = self._queue.get_nowait()
            except queue.Empty:
                return snapshot


class Probe:
    """A fixed set of dataset images the live view follows: codes, reconstructions and traversals.

    `refresh` re-encodes ``part`` of the rows per call, round robin (all of them at the first call), so that a
    snapshot's cost stays small while training runs: a code is at most ``1 / part`` snapshots old.
    """

    def __init__(self, trainer: Trainer, size: int = 512, seed: int = 0, part: float = 0.25) -> None:
        dataset = trainer.dataset
        size = min(size, len(dataset))
        self.index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
        self.images = dataset.images(self.index)  # uint8, kept on the CPU
        self.labels = None if dataset.labels is None else np.asarray(dataset.labels)[self.index.numpy()]
        self.factors = None if dataset.factors is None else np.asarray(dataset.factors)[self.index.numpy()]
        self.factor_names = dataset.factor_names
        self.chunk = max(1, round(size * part))
        self._codes: torch.Tensor | None = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def encode(self, model: AutoEncoder, rows: slice = slice(None)) -> torch.Tensor:
        device = next(model.parameters()).device
        return model.encode(self.images[rows].to(device).float().div_(255)).cpu()

    def refresh(self, model: AutoEncoder, everything: bool = False) -> torch.Tensor:
        """The probe's codes [n, d], with the next chunk of rows (or all of them) encoded by ``model`` now."""
        if self._codes is None or everything:
            self._codes, self._next = self.encode(model), 0
            return self._codes.clone()
        rows = slice(self._next, min(self._next + self.chunk, len(self)))
        self._codes[rows] = self.encode(model, rows)
        self._next = rows.stop % len(self)
        return self._codes.clone()


class BackgroundTrainer(Callback):
    """Runs a `Trainer` in a daemon thread with pause / resume / stop, publishing `Snapshot`s to `snapshots`.

    Snapshots are taken at most every ``snapshot_interval`` s and the LPS estimate refreshed at most every
    ``lps_interval`` s; each interval stretches, as measured, so that each spends at most ``budget`` of the
    training time. Errors in the thread (a NaN loss included) stop it with the last good weights, set
    `state` to ``"failed"`` and `error` to the message, and are re-raised by `join`.
    """

    def __init__(
        self,
        trainer: Trainer,
        probe_size: int = 512,
        snapshot_interval: float = 0.3,
        budget: float = 0.05,
        lps_interval: float = 2.0,
        queue_size: int = 2,
    ) -> None:
        self.trainer = trainer
        self.probe = Probe(trainer, probe_size)
        self.snapshots = SnapshotQueue(queue_size)
        self.snapshot_interval, self.budget, self.lps_interval = snapshot_interval, budget, lps_interval
        self.selected = 0
        self.snapshot_seconds = 0.0  # time spent taking snapshots, LPS included (the live view's cost)
        self.state = "idle"
        self.error: BaseException | None = None
        self.message, self.message_is_error = "", False
        self._lps = LPSEstimator(n=len(self.probe), seed=0)
        self._lps_value: np.ndarray | None = None
        self._lps_step, self._lps_at, self._lps_cost = 0, -np.inf, 0.0
        self._history_steps: list[int] = []
        self._history: dict[str, list[float]] = {}
        self._last_event: StepEvent | None = None
        self._snapshot_at, self._snapshot_cost = -np.inf, 0.0
        self._thread: threading.Thread | None = None
        self._resume = threading.Event()
        self._resume.set()
        self._stop = threading.Event()
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        trainer.callbacks.append(self)

    # ------------------------------------------------------------------ controls (any thread)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, steps: int | None = None) -> None:
        """Train in the background until ``steps`` in total (default the config's). A second start is refused."""
        if self.running:
            raise RuntimeError("Training is already running; pause, resume or stop it instead of starting again.")
        total = self.trainer.config.steps if steps is None else steps
        if self.trainer.step >= total:
            raise RuntimeError(f"Training already reached step {self.trainer.step} of {total}; raise the step count.")
        self.error, self.message, self.message_is_error = None, "", False
        self._stop.clear()
        self._resume.set()
        self.state = "running"
        self._thread = threading.Thread(target=self._run, args=(total,), name="explorer-trainer", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        if self.running and self.state == "running":
            self._resume.clear()
            self.state = "paused"

    def resume(self) -> None:
        if self.running and self.state == "paused":
            self.state = "running"
            self._resume.set()

    def stop(self, timeout: float | None = None) -> None:
        """End training after the current step (a checkpoint is written if the trainer has a folder)."""
        self._stop.set()
        self._resume.set()
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise the error that stopped it, if any."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def save(self, out: str | Path | None = None) -> concurrent.futures.Future[Path]:
        """Write a checkpoint between two steps (or now, if no thread runs); the future holds its path.

        The outcome also goes to the live view as the next snapshot's message."""

        def save() -> Path:
            try:
                path = self.trainer.save(out)
            except (OSError, ValueError) as error:
                self.message, self.message_is_error = f"Could not save the checkpoint: {error}", True
                raise
            else:
                self.message, self.message_is_error = f"Checkpoint of step {self.trainer.step} saved in {path}", False
                return path
            finally:
                self._publish()

        return self._between_steps(save)

    def set_prior(self, prior: Prior) -> None:
        """Swap the prior: the next training step samples from it (one reference assignment)."""
        self.trainer.prior = prior
        self.publish()

    def select(self, index: int) -> None:
        """Start the traversals from probe image ``index``; shown at the next snapshot."""
        if not 0 <= index < len(self.probe):
            raise ValueError(f"probe index must be in [0, {len(self.probe)}), got {index}")
        self.selected = index
        self.publish()

    def publish(self) -> concurrent.futures.Future[Snapshot]:
        """Take a snapshot now (between steps if training) and queue it."""
        return self._between_steps(self._publish)

    # ------------------------------------------------------------------ the training thread

    def _between_steps(self, command: Callable[[], Any]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(command())
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

        if self.running:
            self._commands.put(run)
        else:
            run()
        return future

    def _run(self, total: int) -> None:
        try:
            self.trainer.run(total)
            self.state = "stopped" if self._stop.is_set() else "finished"
        except BaseException as error:  # the thread must report, never die silently
            self.error, self.state = error, "failed"
            self.message, self.message_is_error = str(error), True
        finally:
            self._run_commands()
            try:
                self._publish(complete=True)
            except Exception as error:  # a failed snapshot must not hide how training ended
                self.error, self.state = self.error or error, "failed"
                self.message, self.message_is_error = self.message or str(error), True

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        self._last_event = event
        self._history_steps.append(event.step)
        for name, value in event.terms.items():
            self._history.setdefault(name, []).append(value)
        self._run_commands()
        while not self._resume.wait(0.05):
            self._run_commands()
        if self._stop.is_set():
            raise StopTraining
        now = time.perf_counter()
        interval = max(self.snapshot_interval, self._snapshot_cost / self.budget)
        if now - self._snapshot_at >= interval:
            self._publish()

    def _run_commands(self) -> None:
        while True:
            try:
                self._commands.get_nowait()()
            except queue.Empty:
                return

    def _publish(self, complete: bool = False) -> Snapshot:
        started = time.perf_counter()
        snapshot = self.take_snapshot(complete)
        self.snapshots.put(snapshot)
        self._snapshot_at = time.perf_counter()
        self.snapshot_seconds += self._snapshot_at - started
        self._snapshot_cost = self._snapshot_at - started - (self._lps_cost if self._lps_at >= started else 0.0)
        return snapshot

    def take_snapshot(self, complete: bool = False) -> Snapshot:
        """The current state as a `Snapshot` (call between steps: it reads the model).

        While training runs, only part of the probe is re-encoded (see `Probe.refresh`) unless ``complete``."""
        trainer, model = self.trainer, self.trainer.model
        prior = trainer.prior or standard_normal(trainer.config.latent_dim)
        codes = self.probe.refresh(model, everything=complete or not self.running)
        generator = torch.Generator().manual_seed(trainer.step)
        prior_sample = prior.sample(len(codes), generator).numpy()
        now = time.perf_counter()
        lps_interval = max(self.lps_interval, self._lps_cost / self.budget)
        if self._lps_value is None or (now - self._lps_at >= lps_interval and self._lps_step != trainer.step):
            self._lps_value = self._lps.update(codes).per_dim
            self._lps_step, self._lps_at = trainer.step, time.perf_counter()
            self._lps_cost = self._lps_at - now
        values = traversal_values(prior_sample)
        selected = min(self.selected, len(codes) - 1)
        traversals = traversal_grid(model, codes[selected], values)
        with torch.no_grad():
            original = self.probe.images[selected : selected + 1].float() / 255
            reconstruction = model.decode(codes[selected : selected + 1].to(next(model.parameters()).device))
        event = self._last_event
        steps, history = self._decimated_history()
        return Snapshot(
            step=trainer.step,
            total_steps=event.total_steps if event else trainer.config.steps,
            state=self.state,
            terms=dict(event.terms) if event else {},
            steps_per_s=event.steps_per_s if event else 0.0,
            elapsed_s=event.elapsed_s if event else 0.0,
            history_steps=steps,
            history=history,
            codes=codes.numpy(),
            prior_sample=prior_sample,
            lps=self._lps_value,
            lps_step=self._lps_step,
            selected=selected,
            traversals=traversals,
            traversal_values=values,
            original=to_hwc_uint8(original)[0],
            reconstruction=to_hwc_uint8(reconstruction)[0],
            message=self.message,
            message_is_error=self.message_is_error,
        )

    def _decimated_history(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = len(self._history_steps)
        pick = np.unique(np.linspace(0, n - 1, min(n, HISTORY_POINTS)).astype(int)) if n else np.zeros(0, int)
        steps = np.asarray(self._history_steps[:n])[pick]
        return steps, {name: np.asarray(values[:n])[pick] for name, values in self._history.items()}
