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
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer import checkpoints, distributed
from explorer.config import from_options, integer, number, one_of, option, optional, validate
from explorer.data import DATASETS, Dataset, load_dataset
from explorer.models import ModelConfig, build_model
from explorer.objectives import AEMMD, OBJECTIVES, Objective, objective_class
from explorer.priors import Gaussian, Prior, from_dict

RESIDENT_CHUNK = 4096
PRECISIONS = ("fp32", "bf16")


DATA, MODEL, OPTIMIZATION, SPEED, OUTPUT = ("data", "model and objective", "optimization",
                                            "speed (GPU fast path; also valid on the CPU)", "output")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and nothing about where it is written).

    Each field declares its help and check once (`explorer.config.option`); the command line's ``train`` flags
    are made from these declarations and from each objective's ``Config``.
    """

    dataset: str = option("shapes", f"dataset name: {', '.join(DATASETS)}", group=DATA)
    dataset_options: dict[str, Any] = option(
        factory=dict, help="dataset option, repeatable, e.g. size=32 or n=5000", group=DATA,
        flag="--dataset-option", parse="key_value")
    objective: str = option(AEMMD.name, "training objective", one_of(OBJECTIVES), group=MODEL)
    objective_options: dict[str, Any] = option(factory=dict, help="the objective's options (its Config fields)",
                                               parse="objective")
    prior: dict[str, Any] | None = option(
        None, "prior of an objective that takes one, in Prior.to_dict() form (default: N(0, I))", group=MODEL,
        parse="prior")
    latent_dim: int = option(5, "latent size d", integer(), group=MODEL)
    depth: int | None = option(None, "stride-2 conv layers (default: 4 at 32x32, 6 at 64x64)", optional(integer()),
                               group=MODEL)
    width: int = option(32, "channels of the first conv layer", integer(), group=MODEL)
    steps: int = option(2000, "total optimizer steps", integer(), group=OPTIMIZATION)
    batch_size: int = option(512, "batch size (under torchrun: the global batch, split evenly over the processes)",
                             integer(), group=OPTIMIZATION)
    lr: float = option(5e-4, "Adam learning rate", number(strict=True), group=OPTIMIZATION)
    seed: int = option(0, "seed of initialization, batches and prior samples", group=OPTIMIZATION)
    checkpoint_every: int = option(500, "steps between checkpoints (0: at the end only)", integer(0), group=OUTPUT)
    device: str = option("cpu", "cpu, cuda, cuda:1 or auto (under torchrun, cuda is each process's own GPU)",
                         group=OPTIMIZATION)
    resident_bytes: int = option(512 * 2**20, "datasets up to this many bytes are held as one tensor on the device",
                                 integer(0), group=SPEED)
    precision: str = option("fp32", "bf16: autocast the networks to bfloat16 (losses stay float32)",
                            one_of(PRECISIONS), choices=PRECISIONS, group=SPEED)
    channels_last: bool = option(False, "NHWC memory layout for the conv layers", group=SPEED)
    compile: bool = option(False, "torch.compile the encoder and decoder", group=SPEED)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_options(cls, "TrainConfig", d)


@dataclass(frozen=True)
class StepEvent:
    """What one training step reports: loss terms as floats and the recent throughput."""

    step: int
    total_steps: int
    terms: dict[str, float]
    steps_per_s: float
    elapsed_s: float


class Callback:
    """Receives the trainer's events; override what you need. Runs on the training thread."""

    def on_step(self, trainer: Trainer, event: StepEvent) -> None:
        """After each optimizer step."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was written."""

    def on_end(self, trainer: Trainer) -> None:
        """When `Trainer.run` returns, normally or not."""


class TrainingError(RuntimeError):
    """Training stopped because the loss or its gradient stopped being finite."""


class StopTraining(Exception):
    """Raised by a callback's ``on_step`` to end `Trainer.run` early; the final checkpoint is still written."""


def _resolve_device(name: str) -> torch.device:
    """The device of ``name``; under torchrun a bare ``cuda`` (or ``auto`` with a GPU) is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and distributed.is_active():
        return torch.device("cuda", distributed.local_rank())
    return torch.device(name)


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
    ) -> None:
        self.config = config
        self.out = Path(out) if out is not None else None
        self.callbacks = list(callbacks)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        check_distributed(config, self.world_size)
        self.device = _resolve_device(config.device)
        self.dataset = dataset if dataset is not None else load_dataset(config.dataset, **config.dataset_options)
        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.objective = self._build_objective()
            self.model = build_model(
                ModelConfig(
                    image_shape=tuple(self.dataset.image_shape),
                    latent_dim=config.latent_dim,
                    depth=config.depth,
                    width=config.width,
                    gaussian=self.objective.needs_gaussian_encoder,
                )
            )
        self.model.init_output_bias(self._channel_means())
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
        """One optimizer step; raises `TrainingError` (weights untouched) if the loss or gradient is not finite."""
        self.model.train()
        x = self.batch()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            terms = self._forward(x, self.generator)
        # averaged over ranks: the global batch's terms, and the same decision to stop on every rank
        packed = torch.stack([value.detach().double() for value in terms.values()]).tolist()  # one device sync
        values = distributed.mean_over_ranks(dict(zip(terms, packed, strict=True)), self.device)
        if not math.isfinite(values["loss"]):
            self._diverged(f"the loss is {values['loss']}", values)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=math.inf)
        if not torch.isfinite(grad_norm):
            self._diverged(f"the gradient norm is {float(grad_norm)}", values)
        self.optimizer.step()
        self.step += 1
        return values

    def _diverged(self, what: str, values: dict[str, float]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise TrainingError(
            f"Training stopped at step {self.step + 1}: {what} ({shown}). The weights of step {self.step} are "
            "kept. Try a lower learning rate or penalty weight."
        )

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
        out = Path(out) if out is not None else self.out
        if out is None:
            raise ValueError("Trainer.save needs a folder: pass out= here or to Trainer(...)")
        weights = {**checkpoints.prefixed(self.model, "model."), **checkpoints.prefixed(self.objective, "objective.")}
        optimizer_tensors, groups = checkpoints.optimizer_to_tensors(self.optimizer)
        state = {**optimizer_tensors, "generator": self.generator.get_state()}
        prior = self.prior
        config = dataclasses.replace(self.config, prior=prior.to_dict() if prior is not None else None)
        meta = {
            "step": self.step,
            "train": config.to_dict(),
            "model": self.model.config.to_dict(),
            "objective": self.objective.to_dict(),
            "prior": config.prior,
            "dataset": self.dataset.to_dict(),
            "seed": config.seed,
            "metrics": metrics or {},
            "optimizer_groups": groups,
        }
        path = checkpoints.write_checkpoint(out, meta, weights, state)
        for callback in self.callbacks:
            callback.on_checkpoint(self, path)
        return path

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
        if "train" not in meta or "state" not in meta["files"]:
            raise checkpoints.CheckpointError(
                f"{run_dir / checkpoints.META_FILE} was saved without training state and cannot be resumed; "
                "Trainer.from_weights starts a new run from its weights."
            )
        trainer = cls._with_weights(meta, run_dir, run_dir, dataset, callbacks, steps, device)
        state = checkpoints.read_tensors(run_dir, meta, "state")
        checkpoints.optimizer_from_tensors(trainer.optimizer, state, meta["optimizer_groups"])
        trainer.generator.set_state(state["generator"])
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
        meta, run_dir = checkpoints.read_meta(run_dir)
        if "train" not in meta:
            raise checkpoints.CheckpointError(f"{run_dir / checkpoints.META_FILE} has no training settings")
        if out is not None and Path(out).resolve() == run_dir.resolve():
            raise ValueError(f"from_weights writes a new run: choose an out other than {run_dir}")
        return cls._with_weights(meta, run_dir, out, dataset, callbacks, steps, device)

    @classmethod
    def _with_weights(
        cls,
        meta: dict[str, Any],
        run_dir: Path,
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
        trainer = cls(config, dataset=dataset, out=out, callbacks=callbacks)
        weights = checkpoints.read_tensors(run_dir, meta, "weights")
        source = run_dir / meta["files"]["weights"]["name"]
        checkpoints.load_into(trainer.model, weights, "model.", source)
        checkpoints.load_into(trainer.objective, weights, "objective.", source)
        trainer.step = int(meta["step"])
        return trainer
