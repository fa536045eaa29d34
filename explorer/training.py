"""The training loop: seeded, resumable, emitting events; it never touches a widget.

`Trainer` builds the model, objective and optimizer from a `TrainConfig`, keeps a dataset that fits as one uint8
tensor on the device and indexes batches from it (no DataLoader), reports every step to its callbacks, writes
checkpoints every ``checkpoint_every`` steps, and resumes from one with the same loss trajectory as an
uninterrupted run: every random draw of a step comes from one generator whose state is saved with the weights.

Under ``torchrun`` (see `explorer.distributed`) the same Trainer runs on every rank inside DistributedDataParallel:
``batch_size`` is the global batch, each rank takes its slice of the same global batch indices, batch-level
penalties see the codes of every rank, and only rank 0 writes checkpoints. N ranks train like one process.

GPU fast path (also valid on the CPU, where the tests exercise it): the dataset resident on the device as uint8
and indexed there, ``precision="bf16"`` (autocast of the networks; losses in float32), ``channels_last`` and
``compile`` (``torch.compile`` of the encoder and decoder, in place, so checkpoints keep their key names).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer import checkpoints, distributed, run_folder, snapshot_files
from explorer.data import Dataset, load_dataset
from explorer.events import Callback, StepEvent, StopTraining
from explorer.models import ModelConfig, build_model
from explorer.objectives import OBJECTIVES, Objective, objective_class
from explorer.priors import Gaussian, Prior, from_dict
from explorer.settings import TrainConfig

RESIDENT_CHUNK = 4096
CODE_LIMIT = 1e6  # |code| beyond this means the encoder diverges (codes of a fitted prior are O(1) to O(100))
LOSS_GROWTH = 1e3  # a loss this many times its first value has exploded


class TrainingError(RuntimeError):
    """Training stopped because it diverged: the loss, its gradient or the codes stopped being finite or exploded."""


def resolve_device(name: str) -> torch.device:
    """The device of ``name`` (cpu, cuda, cuda:N, mps or auto), or a ValueError saying why this machine has none.

    Under torchrun a bare ``cuda`` (or ``auto`` with a GPU) is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this machine has no usable CUDA GPU; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        if device.index is None and distributed.is_active():
            return torch.device("cuda", distributed.local_rank())
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine; use cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: explorer trains on cpu, cuda or mps")
    return device


class _CodeScale:
    """Forward hook on the encoder: the largest |output| of the last forward (a device scalar, no sync)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.value = output.detach().abs().amax().float()


class _LastGood:
    """A copy of the training state (weights, optimizer moments, generator) at the last step whose codes and loss
    were within bounds: an exploding run goes back to it. Copied into kept buffers, at the cost of one pass."""

    def __init__(self) -> None:
        self.step: int | None = None
        self._tensors: list[torch.Tensor] = []
        self._generator: torch.Tensor | None = None

    def keep(self, step: int, generator_state: torch.Tensor, tensors: list[torch.Tensor]) -> None:
        if [t.shape for t in tensors] != [t.shape for t in self._tensors]:  # the first step adds optimizer moments
            self._tensors = [t.detach().clone() for t in tensors]
        else:
            for mine, t in zip(self._tensors, tensors, strict=True):
                mine.copy_(t)
        self.step, self._generator = step, generator_state

    def restore(self, trainer: Trainer) -> bool:
        """Put the kept state back into ``trainer``; False if none is kept. Kept before the first optimizer step,
        the state has no moments: the optimizer starts afresh, as it did then."""
        if self.step is None:
            return False
        tensors = trainer._state_tensors()
        if len(self._tensors) < len(tensors):
            trainer.optimizer.state.clear()
            tensors = trainer._state_tensors()
        for t, mine in zip(tensors, self._tensors, strict=True):
            t.copy_(mine)
        trainer.generator.set_state(self._generator)
        trainer.step = self.step
        return True


class _Step(nn.Module):
    """Model and objective as one module, so that DistributedDataParallel sees the whole forward."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.objective(self.model, x, generator)


def check_distributed(config: TrainConfig, world_size: int) -> None:
    """Raise ValueError if ``config`` cannot train on ``world_size`` ranks exactly like one process."""
    if world_size == 1:
        return
    if config.batch_size % world_size:
        raise ValueError(
            f"batch_size {config.batch_size} (the global batch) must be divisible by the number of processes "
            f"{world_size}; each process takes batch_size / {world_size} samples"
        )
    if not objective_class(config.objective).supports_distributed:
        supported = sorted(name for name, c in OBJECTIVES.items() if c.supports_distributed)
        raise ValueError(
            f"the {config.objective!r} objective cannot train on several processes (its penalty couples the "
            f"samples of a batch in a way the ranks do not share); use one process, or one of {supported}"
        )


class Trainer:
    """Seeded, resumable training of one autoencoder with one objective."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset | None = None,
        out: str | Path | None = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        run_id: str | None = None,
    ) -> None:
        """``run_id``: the id of the run this trainer continues (None: a new run, whose ``out`` must hold none)."""
        self.config = config
        self.out = Path(out) if out is not None else None
        self.callbacks = list(callbacks)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        check_distributed(config, self.world_size)
        self.device = resolve_device(config.device)
        self.run_id = run_id or uuid.uuid4().hex
        self._lock: run_folder.WriterLock | None = None
        if self.out is not None and distributed.is_main():
            self._lock = claim(self.out, run_id)
            weakref.finalize(self, self._lock.release)
        if self.out is not None and config.snapshot_every and distributed.is_main():
            self.callbacks.append(snapshot_files.SnapshotWriter(self.out, config.snapshot_every))
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset, **config.dataset_options)
        self.step = 0
        self._first_loss: float | None = None
        self._last_good = _LastGood()
        self.generator = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.objective = self._build_objective()
            self.model = build_model(ModelConfig.for_run(config, self.dataset.image_shape,
                                                          gaussian=self.objective.needs_gaussian_encoder))
        means = self._channel_means()
        if not bool(torch.isfinite(means).all()):
            raise ValueError(f"the dataset {self.dataset.name!r} has NaN or inf pixel values (found among the images "
                             "sampled for the channel means); fix the data before training")
        self.model.init_output_bias(means)
        self._code_scale = _CodeScale()
        self.model.encoder.register_forward_hook(self._code_scale)
        self.model.to(self.device)
        self.objective.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.compile:
            self.model.encoder.compile()
            self.model.decoder.compile()
        self._forward: nn.Module = _Step(self.model, self.objective)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._forward = DistributedDataParallel(self._forward, device_ids=ids)
        self.optimizer = torch.optim.Adam(
            [{"params": list(self.model.parameters())}, *self.objective.param_groups()], lr=config.lr
        )
        self._images = self._resident_images()
        self._step_times: collections.deque[float] = collections.deque(maxlen=20)
        self._started = time.perf_counter()

    def _build_objective(self) -> Objective:
        """The configured objective, given the run's facts it declares (prior, latent size, dataset size)."""
        cls, spec = objective_class(self.config.objective), self.config.prior
        options = dict(self.config.objective_options)
        facts = {"latent_dim": lambda: self.config.latent_dim, "dataset_size": lambda: len(self.dataset)}
        for name in cls.facts():
            if name not in options and name in facts:
                options[name] = facts[name]()
        if cls.takes_prior:
            options["prior"] = Gaussian(self.config.latent_dim) if spec is None else from_dict(spec)
        return cls(**options)

    def _channel_means(self, n: int = 2048) -> torch.Tensor:
        """Mean intensity per channel, in [0, 1], of n images drawn with a fixed seed (not the run's generator)."""
        index = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(0))[:n]
        return self.dataset.images(index).float().mean(dim=(0, 2, 3)) / 255

    def _resident_images(self) -> torch.Tensor | None:
        """The whole dataset as one uint8 tensor on the device, if it is small enough; else None."""
        if self.dataset.nbytes > self.config.resident_bytes:
            return None
        index = torch.arange(len(self.dataset))
        parts = [self.dataset.images(chunk) for chunk in torch.split(index, RESIDENT_CHUNK)]
        return torch.cat(parts).to(self.device)

    @property
    def resident(self) -> bool:
        """Whether the dataset is held on the device as one uint8 tensor (batches are then indexed there)."""
        return self._images is not None

    @property
    def prior(self) -> Prior | None:
        """The prior the objective matches; assigning one takes effect at the next step."""
        return self.objective.prior if self.objective.takes_prior else None

    @prior.setter
    def prior(self, prior: Prior) -> None:
        if not self.objective.takes_prior:
            raise ValueError(f"the {self.config.objective!r} objective has no prior to replace")
        if prior.dim != self.config.latent_dim:
            raise ValueError(f"prior dim must equal the latent size {self.config.latent_dim}, got {prior.dim}")
        self.objective.prior = prior

    def batch(self) -> torch.Tensor:
        """This rank's part of the next training batch, float in [0, 1] on the device.

        The global batch's indices are drawn with the trainer's generator (the same on every rank); rank r takes
        the r-th of ``world_size`` equal slices, so the ranks together see what one process would.
        """
        index = torch.randint(len(self.dataset), (self.config.batch_size,), generator=self.generator)
        local = self.config.batch_size // self.world_size
        index = index[self.rank * local : (self.rank + 1) * local]
        if self._images is not None:
            images = self._images[index.to(self.device, non_blocking=True)]
        else:
            images = self.dataset.images(index).to(self.device)
        x = images.float().div_(255)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def train_step(self) -> dict[str, float]:
        """One optimizer step; raises `TrainingError` if the loss or gradient is not finite (weights untouched), or
        if the codes or the loss exploded (the last weights within bounds restored)."""
        self.model.train()
        generator_state = self.generator.get_state()
        x = self.batch()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            terms = self._forward(x, self.generator)
        # averaged over ranks: the global batch's terms, and the same decision to stop on every rank
        scale = self._code_scale.value if self._code_scale.value is not None else x.new_zeros(())
        packed = torch.stack([*(value.detach().double() for value in terms.values()), scale.double()]).tolist()
        values = distributed.mean_over_ranks(dict(zip([*terms, " codes"], packed, strict=True)), self.device)
        code_scale = values.pop(" codes")
        if not math.isfinite(values["loss"]):
            self._diverged(f"the loss is {values['loss']}", values, x)
        # the weights of this step gave exploded codes or loss: they are bad, go back to the last good ones
        if not code_scale <= CODE_LIMIT:
            self._diverged(f"the codes reached |z| = {code_scale:.3g} (limit {CODE_LIMIT:g})", values, x, back=True)
        if self._first_loss is None:
            self._first_loss = values["loss"]
        elif self._first_loss > 0 and values["loss"] > LOSS_GROWTH * self._first_loss:
            self._diverged(f"the loss rose to {values['loss']:.4g}, over {LOSS_GROWTH:g} times its first value "
                           f"{self._first_loss:.4g}", values, x, back=True)
        self._last_good.keep(self.step, generator_state, self._state_tensors())
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=math.inf)
        if not torch.isfinite(grad_norm):
            self._diverged(f"the gradient norm is {float(grad_norm)}", values, x)
        self.optimizer.step()
        self.step += 1
        return values

    def _state_tensors(self) -> list[torch.Tensor]:
        """The tensors a step changes: weights (model and objective) and optimizer moments, in a fixed order."""
        optimizer = [v for slots in self.optimizer.state.values() for v in slots.values() if torch.is_tensor(v)]
        return [*self.model.state_dict().values(), *self.objective.state_dict().values(), *optimizer]

    def _diverged(self, what: str, values: dict[str, float], x: torch.Tensor, back: bool = False) -> None:
        """Raise TrainingError; ``back``: the current weights are bad, restore the last good ones first."""
        self.optimizer.zero_grad(set_to_none=True)
        restored = back and self._last_good.restore(self)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if not bool(torch.isfinite(x).all()):
            advice = "The batch holds NaN or inf pixel values: fix the data (the learning rate is not the cause)."
        else:
            advice = f"Try a lower learning rate (now {self.config.lr:g}) or penalty weight."
        at = f"step {self.step + 1}" if not restored else f"step {self._last_good.step + 2}"
        kept = ", the last within bounds, are restored" if restored else " are kept"
        raise TrainingError(f"Training stopped at {at}: {what} ({shown}). The weights of step {self.step}{kept}. "
                            f"{advice}")

    def run(self, steps: int | None = None) -> None:
        """Train until ``steps`` (default ``config.steps``) steps are done in total; checkpoint into ``out``."""
        total = self.config.steps if steps is None else steps
        every = self.config.checkpoint_every
        try:
            try:
                while self.step < total:
                    values = self.train_step()
                    now = time.perf_counter()
                    self._step_times.append(now)
                    event = StepEvent(self.step, total, values, self._steps_per_s(), now - self._started)
                    if self.out is not None and every and self.step % every == 0 and distributed.is_main():
                        self.save()
                    for callback in self.callbacks:
                        callback.on_step(self, event)
            except StopTraining:
                pass
            if self.out is not None and not (every and self.step % every == 0) and distributed.is_main():
                self.save()
        finally:
            for callback in self.callbacks:
                callback.on_end(self)

    def _steps_per_s(self) -> float:
        times = self._step_times
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def save(self, out: str | Path | None = None, metrics: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint (weights, optimizer and generator state) of the current step.

        Under torchrun call it on rank 0 only (`run` does): every rank holds the same weights and state.
        """
        out = out if out is not None else self.out
        if out is None:
            raise ValueError("Trainer.save needs a folder: pass out= here or to Trainer(...)")
        with claim(out, self.run_id) as held:  # this trainer's own folder: already held (counted)
            path = self._write(held.folder, metrics)
        for callback in self.callbacks:
            callback.on_checkpoint(self, path)
        return path

    def close(self) -> None:
        """Give back the run folder's writer lock (also done when the trainer is garbage-collected)."""
        if self._lock is not None:
            self._lock.release()

    def _write(self, out: Path, metrics: dict[str, Any] | None) -> Path:
        weights = {**checkpoints.prefixed(self.model, "model."), **checkpoints.prefixed(self.objective, "objective.")}
        optimizer_tensors, groups = checkpoints.optimizer_to_tensors(self.optimizer)
        state = {**optimizer_tensors, "generator": self.generator.get_state()}
        config = self.config.with_prior(self.prior)
        meta = {
            "run_id": self.run_id,
            "step": self.step,
            "train": config.to_dict(),  # the one copy of the prior, the seed, the dataset and the model's sizes
            "model": self.model.config.facts(),
            "metrics": metrics or {},
            "optimizer_groups": groups,
        }
        return checkpoints.write_checkpoint(out, meta, weights, state)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        dataset: Dataset | None = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        steps: int | None = None,
        device: str | None = None,
    ) -> Trainer:
        """Rebuild a trainer from the checkpoint in ``run_dir``, ready to continue (``steps`` may extend it).

        ``device``: where to continue; by default the run's own, except that a GPU run opens on the CPU of a
        machine without one (e.g. a run trained with torchrun on GPUs, opened in the explorer on a laptop).
        """
        meta, run_dir = checkpoints.read_meta(run_dir)
        with run_folder.acquire(run_dir) if distributed.is_main() else contextlib.nullcontext():
            if "state" not in meta["files"]:
                raise checkpoints.CheckpointError(
                    f"{run_dir / checkpoints.META_FILE} was saved without training state and cannot be resumed; "
                    "Trainer.from_weights starts a new run from its weights."
                )
            meta, run_dir, tensors = checkpoints.read_checkpoint(run_dir, ("weights", "state"))  # as now, locked
            trainer = cls._with_weights(meta, run_dir, tensors["weights"], run_dir, dataset, callbacks, steps, device)
        source = run_dir / meta["files"]["state"]["name"]
        checkpoints.optimizer_from_tensors(trainer.optimizer, tensors["state"], meta["optimizer_groups"], source)
        checkpoints.restore_generator(trainer.generator, tensors["state"], source)
        return trainer

    @classmethod
    def from_weights(
        cls,
        run_dir: str | Path,
        out: str | Path | None,
        dataset: Dataset | None = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        steps: int | None = None,
        device: str | None = None,
    ) -> Trainer:
        """A new run writing to ``out`` that starts from the trained weights in ``run_dir`` with a fresh optimizer
        (the step count continues): to train further a checkpoint shipped without its training state, or without
        touching its files. ``device`` as in `resume`."""
        meta, run_dir, tensors = checkpoints.read_checkpoint(run_dir)
        if out is not None and Path(out).resolve() == run_dir.resolve():
            raise ValueError(f"from_weights writes a new run: choose an out other than {run_dir}")
        return cls._with_weights({**meta, "run_id": None}, run_dir, tensors["weights"], out, dataset, callbacks,
                                 steps, device)

    @classmethod
    def _with_weights(
        cls,
        meta: dict[str, Any],
        run_dir: Path,
        weights: dict[str, torch.Tensor],
        out: str | Path | None,
        dataset: Dataset | None,
        callbacks: tuple[Callback, ...] | list[Callback],
        steps: int | None,
        device: str | None,
    ) -> Trainer:
        config = TrainConfig.from_dict(meta["train"])
        if steps is not None:
            config = dataclasses.replace(config, steps=steps)
        if device is None and config.device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        if device is not None:
            config = dataclasses.replace(config, device=device)
        try:
            trainer = cls(config, dataset=dataset, out=out, callbacks=callbacks, run_id=meta["run_id"])
        except (TypeError, KeyError, ValueError) as error:  # e.g. options the objective does not take
            where = run_dir / checkpoints.META_FILE
            raise checkpoints.CheckpointError(f"{where}: field 'train' describes a run that cannot be built here: "
                                              f"{error}") from error
        source = run_dir / meta["files"]["weights"]["name"]
        checkpoints.load_into(trainer.model, weights, "model.", source)
        checkpoints.load_into(trainer.objective, weights, "objective.", source)
        trainer.step = meta["step"]
        return trainer


def claim(out: str | Path, run_id: str | None) -> run_folder.WriterLock:
    """Hold ``out``'s writer lock for the run ``run_id``: a folder holding another run (any run, for a new one
    whose ``run_id`` is None) is refused, with a free folder name offered."""
    held = run_folder.acquire(out)
    path = held.folder / checkpoints.META_FILE
    if not path.exists():
        return held
    try:
        meta, _ = checkpoints.read_meta(held.folder)
        found, what = meta["run_id"], f"run {meta['run_id']} at step {meta['step']}"
    except checkpoints.CheckpointError as error:
        found, what = None, f"a checkpoint that cannot be read ({error})"
    if run_id is None or found != run_id:
        held.release()
        hint = "resume it (--resume, Trainer.resume), or " if run_id is None and found is not None else ""
        raise run_folder.RunFolderError(f"{Path(out)} already holds another run ({what}); {hint}choose another "
                                        f"folder, e.g. {run_folder.free_name(Path(out))}")
    return held
