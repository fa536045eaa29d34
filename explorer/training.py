"""The training loop: seeded, resumable, emitting events; it never touches a widget.

`Trainer` trains any data (`explorer.data.as_dataset`) with the built-in model for its shape or the caller's own
(`explorer.models.as_model`), both checked before any training. It builds the model and objective
(`explorer.building`) and the optimizer from a `TrainConfig`, draws its
batches from `explorer.batches`, stops on divergence (`explorer.divergence`), reports every step to its callbacks,
writes checkpoints every ``checkpoint_every`` steps, and resumes from one with the same loss trajectory as an
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer import checkpoints, distributed, run_folder, snapshot_files
from explorer.batches import Batches
from explorer.building import build_run, check_model, model_facts
from explorer.data import Dataset, as_dataset, load_dataset
from explorer.divergence import DivergenceGuard, TrainingError
from explorer.events import Callback, StepEvent, StopTraining
from explorer.models import as_model
from explorer.objectives import OBJECTIVES, Objective, objective_class
from explorer.priors import Prior
from explorer.settings import TrainConfig

__all__ = ["Trainer", "TrainingError", "check_distributed", "claim", "resolve_data", "resolve_device"]


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


class _Step(nn.Module):
    """Model and objective as one module, so that DistributedDataParallel sees the whole forward. To the objective it
    is the model: its posterior is the model's (mu, logvar) for a Gaussian-encoder objective, else (encode(x), None),
    so a model of any kind needs only encode and decode; ``code_scale`` is the largest |code| of the last forward
    (a device scalar, no sync), for the divergence guard."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective
        self.code_scale: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.objective(self, x, generator)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        gaussian = self.objective.needs_gaussian_encoder
        mu, logvar = self.model.posterior(x) if gaussian else (self.model.encode(x), None)
        self.code_scale = mu.detach().abs().amax().float()
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


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
        data: Any = None,
        out: str | Path | None = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        run_id: str | None = None,
        *,
        model: Any = None,
        dataset: Any = None,
    ) -> None:
        """``data``: anything `explorer.data.as_dataset` takes (None: the registered dataset ``config`` names;
        ``dataset`` is its former name); data passed under an unregistered name becomes ``config.dataset``.
        ``model``: the caller's own model (see `explorer.models.as_model`; None: the built-in one for the data's
        shape). Data and model are checked on one batch before any training or any file is touched.
        ``run_id``: the id of the run this trainer continues (None: a new run, whose ``out`` must hold none)."""
        self.dataset, config = resolve_data(config, data, dataset)
        self.config = config
        self.out = Path(out) if out is not None else None
        self.callbacks = list(callbacks)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        check_distributed(config, self.world_size)
        self.device = resolve_device(config.device)
        self.run_id = run_id or uuid.uuid4().hex
        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.custom = None if model is None else getattr(model, "explorer_builder", {"builder": None, "args": {}})
        self.model, self.objective = build_run(config, self.dataset, None if model is None else as_model(model))
        check_model(self.model, self.dataset, config.latent_dim, self.objective.needs_gaussian_encoder)
        self._lock: run_folder.WriterLock | None = None
        if self.out is not None and distributed.is_main():
            self._lock = claim(self.out, run_id)
            weakref.finalize(self, self._lock.release)
        if self.out is not None and config.snapshot_every and distributed.is_main():
            self.callbacks.append(snapshot_files.SnapshotWriter(self.out, config.snapshot_every))
        self.guard = DivergenceGuard()
        self.model.to(self.device)
        self.objective.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.compile:  # in place, so that checkpoints keep their key names
            for part in (getattr(self.model, name, None) for name in ("encoder", "decoder")):
                if isinstance(part, nn.Module):
                    part.compile()
        self._step_module = _Step(self.model, self.objective)
        self._forward: nn.Module = self._step_module
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._forward = DistributedDataParallel(self._forward, device_ids=ids)
        self.optimizer = torch.optim.Adam(
            [{"params": list(self.model.parameters())}, *self.objective.param_groups()], lr=config.lr
        )
        self.batches = Batches(self.dataset, config.batch_size, self.device, config.resident_bytes,
                               config.channels_last)
        self._step_times: collections.deque[float] = collections.deque(maxlen=20)
        self._started = time.perf_counter()

    @property
    def resident(self) -> bool:
        """Whether the dataset is held on the device as one tensor, as stored (batches are then indexed there)."""
        return self.batches.resident is not None

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def total_steps(self) -> int:
        """The steps the config asks for (`run` may be given another total)."""
        return self.config.steps

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
        """This rank's part of the next training batch, model inputs (float) on the device."""
        return self.batches.next(self.generator)

    def train_step(self) -> dict[str, float]:
        """One optimizer step; raises `TrainingError` if the loss or gradient is not finite (weights untouched), or
        if the codes or the loss exploded (the last weights within bounds restored)."""
        self.model.train()
        generator_state = self.generator.get_state()
        x = self.batch()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            terms = self._forward(x, self.generator)
        # averaged over ranks: the global batch's terms, and the same decision to stop on every rank
        scale = self._step_module.code_scale
        scale = scale if scale is not None else x.new_zeros(())
        packed = torch.stack([*(value.detach().double() for value in terms.values()), scale.double()]).tolist()
        values = distributed.mean_over_ranks(dict(zip([*terms, " codes"], packed, strict=True)), self.device)
        self.guard.check_forward(self, values, values.pop(" codes"), x, generator_state)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=math.inf)
        self.guard.check_gradient(self, grad_norm, values, x)
        self.optimizer.step()
        self.step += 1
        return values

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
            "train": config.to_dict(),  # the one copy of the prior, the seed, the dataset's name and the model's sizes
            "data": self.dataset.facts(),
            "model": model_facts(self.model, self.custom, self.dataset, self.objective),
            "metrics": metrics or {},
            "optimizer_groups": groups,
        }
        return checkpoints.write_checkpoint(out, meta, weights, state)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        data: Any = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        steps: int | None = None,
        device: str | None = None,
        *,
        model: Any = None,
        plugins: Sequence[str] = (),
        dataset: Any = None,
    ) -> Trainer:
        """Rebuild a trainer from the checkpoint in ``run_dir``, ready to continue (``steps`` may extend it).

        ``data``: the run's data, required when it was passed in rather than registered (``dataset``: its former
        name). ``model``, ``plugins``: a caller's own model, or the modules that make its recorded builder
        resolvable (`explorer.checkpoints.model_for`). ``device``: where to continue; by default the run's own,
        except that a GPU run opens on the CPU of a machine without one (e.g. a run trained with torchrun on GPUs,
        opened in the explorer on a laptop).
        """
        meta, run_dir = checkpoints.read_meta(run_dir)
        with run_folder.acquire(run_dir) if distributed.is_main() else contextlib.nullcontext():
            if "state" not in meta["files"]:
                raise checkpoints.CheckpointError(
                    f"{run_dir / checkpoints.META_FILE} was saved without training state and cannot be resumed; "
                    "Trainer.from_weights starts a new run from its weights."
                )
            meta, run_dir, tensors = checkpoints.read_checkpoint(run_dir, ("weights", "state"))  # as now, locked
            trainer = _with_weights(cls, meta, run_dir, tensors["weights"], run_dir, callbacks, steps, device,
                                    data=data if data is not None else dataset, model=model, plugins=plugins)
        source = run_dir / meta["files"]["state"]["name"]
        checkpoints.optimizer_from_tensors(trainer.optimizer, tensors["state"], meta["optimizer_groups"], source)
        checkpoints.restore_generator(trainer.generator, tensors["state"], source)
        return trainer

    @classmethod
    def from_weights(
        cls,
        run_dir: str | Path,
        out: str | Path | None,
        data: Any = None,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        steps: int | None = None,
        device: str | None = None,
        *,
        model: Any = None,
        plugins: Sequence[str] = (),
        dataset: Any = None,
    ) -> Trainer:
        """A new run writing to ``out`` that starts from the trained weights in ``run_dir`` with a fresh optimizer
        (the step count continues): to train further a checkpoint shipped without its training state, or without
        touching its files. ``data``, ``model``, ``plugins`` and ``device`` as in `resume`."""
        meta, run_dir, tensors = checkpoints.read_checkpoint(run_dir)
        if out is not None and Path(out).resolve() == run_dir.resolve():
            raise ValueError(f"from_weights writes a new run: choose an out other than {run_dir}")
        return _with_weights(cls, {**meta, "run_id": None}, run_dir, tensors["weights"], out, callbacks, steps, device,
                             data=data if data is not None else dataset, model=model, plugins=plugins)


def _with_weights(
    cls: type[Trainer],
    meta: dict[str, Any],
    run_dir: Path,
    weights: dict[str, torch.Tensor],
    out: str | Path | None,
    callbacks: tuple[Callback, ...] | list[Callback],
    steps: int | None,
    device: str | None,
    *,
    data: Any,
    model: Any,
    plugins: Sequence[str],
) -> Trainer:
    """A trainer of the checkpointed run ``meta`` (`Trainer.resume`, `Trainer.from_weights`) with its weights."""
    where = run_dir / checkpoints.META_FILE
    data, model = _run_parts(meta, run_dir, data, model, plugins)
    config = TrainConfig.from_dict(meta["train"])
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    if device is None and config.device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"
    if device is not None:
        config = dataclasses.replace(config, device=device)
    try:
        trainer = cls(config, data, out=out, callbacks=callbacks, run_id=meta["run_id"], model=model)
    except (TypeError, KeyError, ValueError) as error:  # e.g. options the objective does not take
        raise checkpoints.CheckpointError(f"{where}: field 'train' describes a run that cannot be built here: "
                                          f"{error}") from error
    source = run_dir / meta["files"]["weights"]["name"]
    checkpoints.load_into(trainer.model, weights, "model.", source)
    checkpoints.load_into(trainer.objective, weights, "objective.", source)
    trainer.step = meta["step"]
    return trainer


def resolve_data(config: TrainConfig, data: Any, dataset: Any = None) -> tuple[Dataset, TrainConfig]:
    """A trainer's dataset (``data``, or its former name ``dataset``, else the registered one ``config`` names) and
    its config, whose dataset names data passed under an unregistered name."""
    if data is not None and dataset is not None:
        raise ValueError("Trainer: pass data= only (dataset= is its former name)")
    data = data if data is not None else dataset
    if data is None:
        return load_dataset(config.dataset, **config.dataset_options), config
    data = as_dataset(data, name=config.dataset)
    if not data.registered and config.dataset != data.name:
        config = dataclasses.replace(config, dataset=data.name, dataset_options={})
    return data, config


def _run_parts(meta: dict[str, Any], run_dir: Path, data: Any, model: Any, plugins: Sequence[str]) -> tuple[Any, Any]:
    """The data and the caller's model (None: the built-in one) a checkpointed run continues with, or a
    CheckpointError: data passed in must be passed again, and be the run's (shape and value range)."""
    where, facts = run_dir / checkpoints.META_FILE, meta["data"]
    if data is None and not facts["registered"]:
        raise checkpoints.CheckpointError(
            f"{where}: the run trained on data passed in ({facts['name']!r}, {facts['dtype']} {facts['shape']}), "
            "not a registered dataset; pass it again, e.g. Trainer.resume(run, data=my_data)")
    if data is not None:
        data = as_dataset(data, name=facts["name"])
        passed = {"shape": list(data.shape), "unit_range": data.unit_range}
        if passed != {key: facts[key] for key in passed}:
            raise checkpoints.CheckpointError(f"{where}: the data passed ({passed}) is not the run's ({facts}); pass "
                                              "the data the run trained on")
    if model is not None or meta["model"].get("custom") is not None:
        model = checkpoints.model_for(meta, run_dir, model, plugins)
    return data, model


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
