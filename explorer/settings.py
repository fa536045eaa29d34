"""What determines a training run: `TrainConfig`, each field declared once with its help, check and command-line
group (`explorer.config.option`), so that the trainer, the checkpoint sidecar's schema, the command line and the
explorer's panel all read the same declaration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from explorer.config import from_options, integer, number, of_type, one_of, option, validate
from explorer.data import DATASETS
from explorer.models import size_option
from explorer.objectives import AEMMD, OBJECTIVES, objective_class
from explorer.priors import Prior, from_dict

PRECISIONS = ("fp32", "bf16")
MAX_BATCH = 2**12  # 8 x the paper's 512; the MMD's [2B, 2B] kernel matrices take GBs beyond: refused, not OOM-killed
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts

DATA, MODEL, OPTIMIZATION, SPEED, OUTPUT = ("data", "model and objective", "optimization",
                                            "speed (GPU fast path; also valid on the CPU)", "output")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and nothing about where it is written).

    Each field declares its help and check once (`explorer.config.option`); the command line's ``train`` flags
    are made from these declarations and from each objective's ``Config``.
    """

    dataset: str = option("shapes", f"dataset name: {', '.join(DATASETS)}", of_type(str), group=DATA)
    dataset_options: dict[str, Any] = option(
        factory=dict, help="dataset option, repeatable, e.g. size=32 or n=5000", check=of_type(dict), group=DATA,
        flag="--dataset-option", parse="key_value")
    objective: str = option(AEMMD.name, "training objective", one_of(OBJECTIVES), group=MODEL)
    objective_options: dict[str, Any] = option(factory=dict, help="the objective's options (its Config fields)",
                                               check=of_type(dict), parse="objective")
    prior: dict[str, Any] | None = option(
        None, "prior of an objective that takes one, in Prior.to_dict() form (default: N(0, I))", group=MODEL,
        parse="prior")
    latent_dim: int = size_option("latent_dim", group=MODEL)  # the model's sizes are declared in explorer.models
    depth: int | None = size_option("depth", group=MODEL)
    width: int = size_option("width", group=MODEL)
    steps: int = option(2000, "total optimizer steps", integer(), group=OPTIMIZATION)
    batch_size: int = option(512, "batch size (under torchrun: the global batch, split evenly over the processes)",
                             integer(1, MAX_BATCH), group=OPTIMIZATION)
    lr: float = option(5e-4, "Adam learning rate", number(strict=True), group=OPTIMIZATION)
    seed: int = option(0, "seed of initialization, batches and prior samples", integer(*SEED_RANGE),
                       group=OPTIMIZATION)
    checkpoint_every: int = option(500, "steps between checkpoints (0: at the end only)", integer(0), group=OUTPUT)
    snapshot_every: int = option(0, "steps between the small snapshot files Explorer.follow shows live (0: none)",
                                 integer(0), group=OUTPUT)
    device: str = option("cpu", "cpu, cuda, cuda:1 or auto (under torchrun, cuda is each process's own GPU)",
                         of_type(str), group=OPTIMIZATION)
    resident_bytes: int = option(512 * 2**20, "datasets up to this many bytes are held as one tensor on the device",
                                 integer(0), group=SPEED)
    precision: str = option("fp32", "bf16: autocast the networks to bfloat16 (losses stay float32)",
                            one_of(PRECISIONS), choices=PRECISIONS, group=SPEED)
    channels_last: bool = option(False, "NHWC memory layout for the conv layers", of_type(bool), group=SPEED)
    compile: bool = option(False, "torch.compile the encoder and decoder", of_type(bool), group=SPEED)

    def __post_init__(self) -> None:
        validate(self)
        if self.prior is not None:
            self._check_prior()

    def _check_prior(self) -> None:
        """The prior parses, has the latent size, and is given to an objective that takes one."""
        if not objective_class(self.objective).takes_prior:
            raise ValueError(f"TrainConfig: the {self.objective!r} objective takes no prior; drop the prior, or choose "
                             f"an objective that matches one (e.g. {AEMMD.name!r})")
        prior = from_dict(self.prior) if isinstance(self.prior, dict) else None
        if prior is None:
            raise ValueError(f"TrainConfig: prior must be a Prior.to_dict() dict or None, got {self.prior!r}")
        if prior.dim != self.latent_dim:
            raise ValueError(f"TrainConfig: the prior has {prior.dim} dimensions, latent_dim is {self.latent_dim}")

    def with_prior(self, prior: Prior | None) -> TrainConfig:
        """This config with ``prior`` (a live trainer's current one, say) as its prior, e.g. for the files a run
        writes: the saved config names the prior the weights were trained towards."""
        return dataclasses.replace(self, prior=None if prior is None else prior.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_options(cls, "TrainConfig", d)


