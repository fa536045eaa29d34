"""Training in a background thread, observed through snapshots: the engine side of the live explorer.

Threading model. One thread owns the model at a time. While a run trains, that is the training thread of
`BackgroundTrainer` (or, for `Follower`, the thread that reads a run's snapshot files); with no such thread, it is
the caller, holding the engine's lock. The owner only *posts facts*: a `Snapshot` (step, a `RunState`, loss
terms, codes of a fixed probe set, a prior sample, the LPS, bounded histories) goes to a drop-oldest queue, so a
slow consumer never slows training, and nothing here touches a widget. Every command from another thread (pause,
resume, swap the prior, select a probe image, save, publish) is a closure queued to the owner and run *between two
steps*; its outcome comes back as a future and as the next snapshot. `stop` alone is a flag: it is a request the
loop reads between steps. The run's state is written only by the owner, so it never races.

What a snapshot costs is paced by `RateLimiter`s (one class for every cadence): snapshots every few tenths of a
second, the warm-started LPS every few seconds and decoded traversals when the selection or the prior changes and
otherwise every few seconds, each interval stretched so that it spends at most its share of the training time (the
views' drawing of a snapshot counts as part of its cost). At rest (not training) the LPS is the notebooks'
estimator (`explorer.metrics.lps.lps`, method ``mlp``) on `REST_LPS_CODES` codes of the dataset, encoded and fitted
in a worker thread with a copy of the model, so the owner is never held up.
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import dataclasses
import enum
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.data import Dataset
from explorer.events import Callback, StepEvent, StopTraining
from explorer.history import BoundedHistory
from explorer.metrics import LPSEstimator
from explorer.metrics.lps import lps
from explorer.models import AutoEncoder
from explorer.priors import Prior, standard_normal
from explorer.training import Trainer

TRAVERSAL_QUANTILES = np.linspace(0.05, 0.95, 7)
HISTORY_POINTS = 400  # points of the loss and LPS histories (bounded: thinned as the run grows)
REST_LPS_CODES = 5000  # codes of the at-rest LPS: as many as the notebooks' LPS-mlp (explorer.paper.shipped.EVAL_N)
RATE_WINDOW = 50  # steps over which steps/s is measured


class RunState(str, enum.Enum):
    """Where a run is; a snapshot's ``state`` is one of these (a str, so it compares with plain names)."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    FOLLOWING = "following"

    def __str__(self) -> str:
        return self.value


class RateLimiter:
    """Allows an action at most every ``interval`` s, the interval stretched to ``cost / budget`` so that the action
    spends at most ``budget`` of the time; ``cost`` is what the last action took (see `record`)."""

    def __init__(self, interval: float, budget: float = 1.0) -> None:
        self.interval, self.budget = interval, budget
        self.last, self.cost = -math.inf, 0.0

    @property
    def period(self) -> float:
        return max(self.interval, self.cost / self.budget)

    def due(self, now: float | None = None) -> bool:
        return self.wait_s(now) <= 0

    def wait_s(self, now: float | None = None) -> float:
        """Seconds until the next action is allowed (<= 0: now)."""
        now = time.perf_counter() if now is None else now
        return self.last + self.period - now

    def reset(self) -> None:
        """Allow the next action now (its cost so far still stretches the interval after it)."""
        self.last = -math.inf

    def record(self, cost: float, at: float | None = None) -> None:
        """An action that took ``cost`` s ended ``at`` (default now)."""
        self.last, self.cost = time.perf_counter() if at is None else at, cost


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows of one moment of training. Arrays are NumPy, safe to hand to another thread."""

    step: int
    total_steps: int
    state: RunState
    terms: dict[str, float]
    steps_per_s: float  # over training time only: pauses do not count
    elapsed_s: float  # training time of this session, pauses excluded
    history_steps: np.ndarray  # [h] steps of the bounded loss history
    history: dict[str, np.ndarray]  # term -> [h]
    codes: np.ndarray  # [n, d] codes of the probe images
    prior_sample: np.ndarray  # [n, d]
    lps: np.ndarray | None  # [d] held-out R^2 per dimension, None until first estimated
    lps_step: int  # the step the LPS was estimated at
    lps_estimator: str  # which estimator, on how many codes, e.g. "LPS-mlp on 5,000 codes of the dataset"
    lps_history_steps: np.ndarray  # [h] steps of the bounded LPS history of this run
    lps_history: np.ndarray  # [h]
    selected: int  # probe index the traversals start from
    traversal_version: int  # changes when the traversals below were decoded anew
    traversals: np.ndarray  # uint8 [d, k, H, W, C]: row i varies z_i over the prior's quantiles
    traversal_values: np.ndarray  # [d, k] the z_i of each column
    original: np.ndarray  # uint8 [H, W, C] of the selected probe image
    reconstruction: np.ndarray  # uint8 [H, W, C]
    codes_version: int = 0  # changes when codes, prior sample and LPS were taken anew
    progress_only: bool = False  # only step, state, terms and loss history are new (codes as in the last full one)
    run_id: str = ""  # a new run is a new id (an explicit event, not a step that went backwards)
    message: str = ""
    message_is_error: bool = False
    taken_at: float = field(default_factory=time.perf_counter)

    @property
    def lps_score(self) -> float | None:
        return None if self.lps is None or not np.isfinite(self.lps).any() else float(np.nanmean(self.lps))

    @property
    def seconds_left(self) -> float | None:
        """Training time to the last step at the measured rate; None unless running with a measured rate."""
        if self.state is not RunState.RUNNING or self.steps_per_s <= 0:
            return None
        return max(0, self.total_steps - self.step) / self.steps_per_s


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

    Snapshots are taken at most every ``snapshot_interval`` s, the warm-started LPS refreshed at most every
    ``lps_interval`` s and the traversals decoded at most every ``traversal_interval`` s while training (at once
    when the selection or the prior changes); between two of them, progress-only snapshots (step, state, loss terms
    and history; the rest as before) at most every ``progress_interval`` s keep the counter live. Together they
    spend at most ``budget`` of the training time (snapshots 45 %, progress 20 %, the LPS 25 %, traversals 10 %):
    the consumer reports what drawing a snapshot took with `drawn`, since drawing competes with training for the
    CPU. Errors in the thread (a NaN loss included) stop it with the last good weights, make the state ``failed``
    and `error` the exception, and are re-raised by `join`. ``rest_lps_codes``: codes of the at-rest LPS (0: none).
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
    ) -> None:
        self.trainer = trainer
        self.probe = Probe(trainer, probe_size)
        self.snapshots = SnapshotQueue(queue_size)
        self.snapshot_limiter = RateLimiter(snapshot_interval, 0.45 * budget)
        self.progress_limiter = RateLimiter(progress_interval, 0.2 * budget)
        self.lps_limiter = RateLimiter(lps_interval, 0.25 * budget)
        self.traversal_limiter = RateLimiter(traversal_interval, 0.1 * budget)
        self._drawing = {True: 0.0, False: 0.0}  # what the views took to draw the last full / progress snapshot
        self._full: Snapshot | None = None
        self._codes_version = 0
        self.rest_lps_codes = rest_lps_codes
        self.selected = 0
        self.snapshot_seconds = 0.0  # time spent taking snapshots, LPS included (the live view's cost)
        self.error: BaseException | None = None
        self.message, self.message_is_error = "", False
        self.loss_history = BoundedHistory(HISTORY_POINTS)
        self.lps_history = BoundedHistory(HISTORY_POINTS)
        self._state = RunState.IDLE
        self._lps = LPSEstimator(n=len(self.probe), seed=0)
        self._lps_value: np.ndarray | None = None
        self._lps_step, self._lps_estimator = 0, ""
        self._rest: dict[tuple[str, int], concurrent.futures.Future] = {}
        self._warm: tuple[int, concurrent.futures.Future] | None = None  # (step, the warm estimate under way)
        self._rest_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-lps")
        self._traversal: tuple[tuple[int, int, int], np.ndarray, np.ndarray] | None = None
        self._traversal_version = 0
        self._last_event: StepEvent | None = None
        self._step_seconds: collections.deque[float] = collections.deque(maxlen=RATE_WINDOW)
        self._training_s, self._mark = 0.0, 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()  # held by a caller acting on the trainer while no thread owns it
        self._owned = False  # a thread owns the trainer: commands are queued to it
        self._stop = threading.Event()
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue()
        trainer.callbacks.append(self)

    # ------------------------------------------------------------------ controls (any thread)

    @property
    def state(self) -> RunState:
        return self._state

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, steps: int | None = None) -> None:
        """Train in the background until ``steps`` in total (default the config's). A second start is refused."""
        with self._lock:
            if self._owned:
                raise RuntimeError("Training is already running; pause, resume or stop it instead of starting again.")
            total = self.trainer.config.steps if steps is None else steps
            if self.trainer.step >= total:
                raise RuntimeError(f"Training already reached step {self.trainer.step} of {total}; raise the step "
                                   "count.")
            self.error, self.message, self.message_is_error = None, "", False
            self._stop.clear()
            self._state, self._owned = RunState.RUNNING, True
            self.snapshot_limiter.reset()  # the views show the first steps at once
            self._thread = threading.Thread(target=self._run, args=(total,), name="explorer-trainer", daemon=True)
            self._thread.start()

    def pause(self) -> concurrent.futures.Future[None]:
        """Hold training after the current step; the next snapshot (at once) says ``paused``."""
        return self._between_steps(lambda: self._set_state(RunState.PAUSED, RunState.RUNNING))

    def resume(self) -> concurrent.futures.Future[None]:
        return self._between_steps(lambda: self._set_state(RunState.RUNNING, RunState.PAUSED))

    def stop(self, timeout: float | None = None) -> None:
        """End training after the current step (a checkpoint is written if the trainer has a folder)."""
        self._stop.set()
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise the error that stopped it, if any."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop training and the at-rest LPS worker."""
        self.stop(timeout=10)
        self._rest_pool.shutdown(wait=False, cancel_futures=True)

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

    def set_prior(self, prior: Prior) -> concurrent.futures.Future[Snapshot]:
        """Swap the prior between two steps: the next training step samples from it."""

        def swap() -> Snapshot:
            self.trainer.prior = prior
            return self._publish()

        return self._between_steps(swap)

    def select(self, index: int) -> concurrent.futures.Future[Snapshot]:
        """Start the traversals from probe image ``index`` (decoded between two steps, shown at once)."""
        if not 0 <= index < len(self.probe):
            raise ValueError(f"probe index must be in [0, {len(self.probe)}), got {index}")

        def select() -> Snapshot:
            self.selected = index
            return self._publish()

        return self._between_steps(select)

    def publish(self) -> concurrent.futures.Future[Snapshot]:
        """Take a snapshot now (between steps if training) and queue it."""
        return self._between_steps(self._publish)

    # ------------------------------------------------------------------ the owner of the trainer

    def _set_state(self, new: RunState, only_from: RunState) -> None:
        if self._state is only_from:
            self._state = new
            if self._full is not None:
                self.snapshots.put(self._progress())  # the new state shows at once; the full picture follows
            self._publish()

    def _between_steps(self, command: Callable[[], Any]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(command())
            except BaseException as error:  # handed to the caller through the future
                future.set_exception(error)

        with self._lock:
            if self._owned:
                self._commands.put(run)
                return future
            run()
        return future

    def _run(self, total: int) -> None:
        self._mark = time.perf_counter()
        self._step_seconds.clear()
        try:
            self.trainer.run(total)
            self._state = RunState.STOPPED if self._stop.is_set() else RunState.FINISHED
        except BaseException as error:  # the thread must report, never die silently
            self.error, self._state = error, RunState.FAILED
            self.message, self.message_is_error = str(error), True
        finally:
            with self._lock:  # from here on callers act themselves: give up ownership with no command left behind
                self._owned = False
                self._run_commands()
                try:
                    self._publish(complete=True)
                except Exception as error:  # a failed snapshot must not hide how training ended
                    self.error, self._state = self.error or error, RunState.FAILED
                    self.message, self.message_is_error = self.message or str(error), True

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        now = time.perf_counter()
        self._step_seconds.append(now - self._mark)
        self._training_s += now - self._mark
        self._last_event = event
        self.loss_history.add(event.step, event.terms)
        self._run_commands()
        while self._state is RunState.PAUSED and not self._stop.is_set():
            self._run_commands(wait=0.05)
        if self._stop.is_set():
            raise StopTraining
        self._mark = time.perf_counter()  # a pause is not training time
        if self.snapshot_limiter.due(self._mark):
            self._publish()
        elif self.progress_limiter.due(self._mark) and self._full is not None:
            started = time.perf_counter()
            self.snapshots.put(self._progress())
            now = time.perf_counter()
            self.snapshot_seconds += now - started
            self.progress_limiter.record(now - started + self._drawing[False], now)

    def drawn(self, snapshot: Snapshot, seconds: float) -> None:
        """The views took ``seconds`` to draw ``snapshot``: the cadence of its kind accounts for it (any thread)."""
        self._drawing[not snapshot.progress_only] = seconds

    def _progress(self) -> Snapshot:
        """The last full snapshot with the step, state, loss terms and history of now (cheap: no model pass)."""
        event = self._last_event
        steps, history = self.loss_history.arrays()
        return dataclasses.replace(
            self._full, step=self.trainer.step, total_steps=event.total_steps, state=self._state,
            terms=dict(event.terms), steps_per_s=self._steps_per_s(), elapsed_s=self._training_s,
            history_steps=steps, history=history, message=self.message, message_is_error=self.message_is_error,
            progress_only=True, taken_at=time.perf_counter())

    def _run_commands(self, wait: float = 0.0) -> None:
        try:
            command = self._commands.get(timeout=wait) if wait else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            command()
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _steps_per_s(self) -> float:
        seconds = sum(self._step_seconds)
        return len(self._step_seconds) / seconds if seconds > 0 else 0.0

    def _publish(self, complete: bool = False) -> Snapshot:
        started = time.perf_counter()
        traversal_before = self.traversal_limiter.last
        snapshot = self._full = self.take_snapshot(complete)
        self.snapshots.put(snapshot)
        now = time.perf_counter()
        self.snapshot_seconds += now - started
        # the snapshot's own cost, without the traversal decoding it may have included (the LPS runs in the worker)
        others = self.traversal_limiter.cost if self.traversal_limiter.last != traversal_before else 0.0
        self.snapshot_limiter.record(max(0.0, now - started - others) + self._drawing[True], now)
        self.progress_limiter.record(self.progress_limiter.cost, now)
        return snapshot

    @property
    def _advancing(self) -> bool:
        """The model changes from one snapshot to the next (training, or following a run)."""
        return self._owned and self._state in (RunState.RUNNING, RunState.FOLLOWING)

    def take_snapshot(self, complete: bool = False) -> Snapshot:
        """The current state as a `Snapshot` (call as the trainer's owner: it reads the model).

        While training runs, only part of the probe is re-encoded (see `Probe.refresh`) unless ``complete``."""
        trainer, model = self.trainer, self.trainer.model
        self._codes_version += 1
        prior = trainer.prior or standard_normal(trainer.config.latent_dim)
        codes = self.probe.refresh(model, everything=complete or not self._advancing)
        generator = torch.Generator().manual_seed(trainer.step)
        prior_sample = prior.sample(len(codes), generator).numpy()
        self._estimate_lps(codes)
        selected = min(self.selected, len(codes) - 1)
        values, traversals = self._traversals(model, codes, selected, prior, prior_sample)
        with torch.no_grad():
            original = self.probe.images[selected : selected + 1].float() / 255
            reconstruction = model.decode(codes[selected : selected + 1].to(next(model.parameters()).device))
        event = self._last_event
        steps, history = self.loss_history.arrays()
        lps_steps, lps_history = self.lps_history.arrays()
        return Snapshot(
            step=trainer.step,
            total_steps=event.total_steps if event else trainer.config.steps,
            state=self._state,
            terms=dict(event.terms) if event else {},
            steps_per_s=self._steps_per_s(),
            elapsed_s=self._training_s,
            history_steps=steps,
            history=history,
            codes=codes.numpy(),
            prior_sample=prior_sample,
            lps=self._lps_value,
            lps_step=self._lps_step,
            lps_estimator=self._lps_estimator,
            lps_history_steps=lps_steps,
            lps_history=lps_history.get("lps", np.zeros(0)),
            selected=selected,
            codes_version=self._codes_version,
            traversal_version=self._traversal_version,
            traversals=traversals,
            traversal_values=values,
            original=to_hwc_uint8(original)[0],
            reconstruction=to_hwc_uint8(reconstruction)[0],
            run_id=trainer.run_id,
            message=self.message,
            message_is_error=self.message_is_error,
        )

    def _traversals(self, model: AutoEncoder, codes: torch.Tensor, selected: int, prior: Prior,
                    prior_sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded anew when the selection or the prior changed, at rest, or (training) when the limiter allows."""
        key = (selected, id(prior), self.trainer.step)
        kept = self._traversal
        changed = kept is None or kept[0][:2] != key[:2]
        if changed or (kept[0] != key and (not self._advancing or self.traversal_limiter.due())):
            started = time.perf_counter()
            values = traversal_values(prior_sample)
            self._traversal = (key, values, traversal_grid(model, codes[selected], values))
            self._traversal_version += 1
            self.traversal_limiter.record(time.perf_counter() - started)
        return self._traversal[1], self._traversal[2]

    def _estimate_lps(self, codes: torch.Tensor) -> None:
        """The warm-started LPS on the probe codes while training; the notebooks' LPS-mlp on more codes at rest."""
        step = self.trainer.step
        if codes.shape[1] < 2:
            self._lps_estimator = "LPS needs at least 2 dimensions"
            return
        if not self._advancing and self.rest_lps_codes:
            self._rest_lps(step)
            return
        self._show_rest()
        warm = self._warm
        if warm is not None and warm[1].done():
            self._warm = None
            if warm[1].exception() is None:
                self._record_lps(warm[0], warm[1].result(),
                                 f"warm-started LPS-mlp on the {len(codes):,} probe codes (training)")
        if self._warm is None and self._lps_step != step and self.lps_limiter.due():
            self._warm = (step, self._rest_pool.submit(self._warm_lps, codes.numpy()))

    def _warm_lps(self, codes: np.ndarray) -> np.ndarray:
        """The warm-started estimate, in the worker: the training thread never waits for a fit."""
        started = time.perf_counter()
        per_dim = self._lps.update(codes).per_dim
        self.lps_limiter.record(time.perf_counter() - started)
        return per_dim

    def _record_lps(self, step: int, per_dim: np.ndarray, estimator: str) -> None:
        self._lps_value, self._lps_step, self._lps_estimator = per_dim, step, estimator
        if np.isfinite(per_dim).any():
            self.lps_history.add(step, {"lps": float(np.nanmean(per_dim))})

    def _rest_lps(self, step: int) -> None:
        """Start (once per step of a run) the notebooks' estimator on `rest_lps_codes` codes in the worker; show
        its result once it is there (the worker's completion publishes a snapshot)."""
        key = (self.trainer.run_id, step)
        future = self._rest.get(key)
        if future is None:
            n = min(self.rest_lps_codes, len(self.trainer.dataset))
            model = copy.deepcopy(self.trainer.model)  # the worker encodes with its own copy, off the owner's path
            future = self._rest_pool.submit(lambda: lps(rest_codes(model, self.trainer.dataset, n), "mlp", seed=0))
            self._rest = {key: future}
            future.add_done_callback(lambda _: self.publish())
            self._lps_estimator = f"LPS-mlp on {n:,} codes of the dataset: computing"
        else:
            self._show_rest()

    def _show_rest(self) -> None:
        """Show the at-rest estimate once it is done (also when training has started since)."""
        if not self._rest or not self._lps_estimator.endswith("computing"):
            return
        ((_, step), future), = self._rest.items()
        if not future.done():
            return
        error = future.exception()
        if error is not None:
            self._lps_estimator = f"LPS could not be estimated: {error}"
            return
        result = future.result()
        self._record_lps(step, result.per_dim,
                         f"LPS-mlp on {result.settings['n']:,} codes of the dataset (as the notebooks)")


@torch.no_grad()
def rest_codes(model: AutoEncoder, dataset: Dataset, n: int) -> torch.Tensor:
    """Codes of min(n, len) dataset images drawn with seed 0: the rows `explorer.metrics.evaluate` encodes."""
    rows = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: min(n, len(dataset))]
    device = next(model.parameters()).device
    parts = [model.encode(dataset.images(part).to(device).float() / 255).cpu()
             for part in torch.split(rows.sort().values, 1024)]
    return torch.cat(parts)

