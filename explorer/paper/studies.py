"""The settings of the paper's studies, each declared once.

Each study (`KLFailure`, `EngineeredPriors`, `Budget`) is a frozen dataclass whose fields are `explorer.config.option`
declarations: type, default, help and check. From them come

- the keyword parameters of the study's function (`takes` gives `explorer.paper.reproduce.kl_failure`,
  `explorer.paper.reproduce.engineered_priors` and `explorer.paper.budget.budget` their signatures),
- the flags of ``python -m explorer reproduce`` (`explorer.cli` adds one flag per setting name, with the help and
  each study's default), and
- the command line that gives a set of settings (`command`), which ``checkpoints/manifest.json`` records per
  shipped checkpoint.

A setting's ``parse`` metadata says how its flag reads and writes it: ``key_value`` (a repeatable ``KEY=VALUE``
flag for a dict), ``count`` (``--seeds S`` for the seeds 0..S-1) or ``names`` (one or more names); any other setting
is one value of its type.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from explorer.config import Check, from_options, integer, number, of_type, one_of, option, optional, validate
from explorer.mmd import KERNELS
from explorer.objectives import AEKLD, AEMMD, OBJECTIVES, VAE, BetaTCVAE, BetaVAE, FactorVAE, Objective

KL_FAILURE = tuple(cls.name for cls in (VAE, BetaVAE, AEMMD, AEKLD, Objective))  # the paper's Figure 1
KL_FAILURE_ALL = (*KL_FAILURE, BetaTCVAE.name, FactorVAE.name)  # and its Table 1
ENGINEERED_DATASETS = ("xy", "shapes")
COMMAND = "python -m explorer reproduce"


def _check_seeds(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """One or more seeds, as a tuple of ints."""
    check = integer(0)
    seeds = tuple(check(owner, name, seed) for seed in (value if isinstance(value, (Sequence, range)) else [value]))
    if not seeds:
        raise ValueError(f"{owner}: {name} must hold at least one seed, got {value!r}")
    return seeds


def _check_names(owner: str, name: str, value: Any) -> tuple[str, ...]:
    """One or more names (strings), as a tuple."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{owner}: {name} must be a non-empty sequence of names, got {value!r}")
    return tuple(of_type(str)(owner, name, item) for item in value)


def _check_mapping(owner: str, name: str, value: Any) -> dict[str, Any]:
    """A dict (None is the empty one), copied."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{owner}: {name} must be a mapping, got {value!r}")
    return dict(value)


# The settings the studies share: each declared here once, with the default a study gives it.


def _dataset(default: str | None, help: str = "dataset name", check: Check | None = None) -> Any:
    return option(default, help, check or of_type(str))


def _dataset_options() -> Any:
    return option(factory=dict, help="dataset option, repeatable, e.g. size=32", check=_check_mapping,
                  parse="key_value", flag="--dataset-option")


def _latent_dim(default: int) -> Any:
    return option(default, "latent size d of every model", integer())


def _steps(default: int) -> Any:
    return option(default, "optimizer steps of every model", integer())


def _seeds() -> Any:
    return option((0,), "seeds 0..S-1 per model", _check_seeds, parse="count")


def _batch_size() -> Any:
    return option(64, "batch size", integer())


def _lr(default: float) -> Any:
    return option(default, "Adam learning rate", number(strict=True))


def _lam(default: float) -> Any:
    return option(default, "penalty weight of the objectives whose weight is named lam", number())


def _kernel(default: str | None) -> Any:
    check = one_of(KERNELS) if default else optional(one_of(KERNELS))
    return option(default, "AE-MMD kernel (unset: the paper's RBF sum, which matches a Uniform prior only in mean "
                  "and variance)", check, choices=KERNELS)


def _marginal() -> Any:
    return option(0.0, "weight of AE-MMD's per-dimension MMD^2, which sees each dimension's shape (0: off)",
                  number())


def _objectives() -> Any:
    return option(KL_FAILURE, "objectives to train, any registered ones", _check_names, parse="names",
                  choices=OBJECTIVES)


def _eval_n() -> Any:
    return option(5000, "images the metrics are computed on", integer())


class Study:
    """What the study dataclasses share: their command name (``name``) and the checks of their settings."""

    name: ClassVar[str]

    def __post_init__(self) -> None:
        validate(self, self.name)

    @classmethod
    def of(cls, **given: Any) -> Any:
        """The study with the ``given`` settings (the rest at their defaults); an unknown one is an error."""
        return from_options(cls, cls.name, given)


@dataclasses.dataclass(frozen=True)
class KLFailure(Study):
    """train VAE, beta-VAE (beta 4), AE-MMD (Gaussian prior), AE-KLD and AE on the same data and budget."""

    name: ClassVar[str] = "kl-failure"
    dataset: str = _dataset("mnist-5k")
    dataset_options: dict[str, Any] = _dataset_options()  # noqa: RUF009 (a field with a factory)
    latent_dim: int = _latent_dim(12)
    steps: int = _steps(2000)
    seeds: tuple[int, ...] = _seeds()
    batch_size: int = _batch_size()
    lr: float = _lr(5e-4)
    lam: float = _lam(30.0)
    objectives: tuple[str, ...] = _objectives()
    eval_n: int = _eval_n()


@dataclasses.dataclass(frozen=True)
class EngineeredPriors(Study):
    """AE-MMD on xy with a Gaussian, Uniform and 2-GMM prior, and on shapes with a Gaussian prior, the dSprites
    hybrid prior and a copy of the hybrid run's codes."""

    name: ClassVar[str] = "engineered-priors"
    dataset: str | None = _dataset(None, f"{' or '.join(ENGINEERED_DATASETS)} alone (unset: both)",
                                  optional(one_of(ENGINEERED_DATASETS)))
    steps: int = _steps(2000)
    seeds: tuple[int, ...] = _seeds()
    batch_size: int = _batch_size()
    lr: float = _lr(5e-4)
    lam: float = _lam(2.0)
    # IMQ: with the RBF sum a Uniform prior on xy comes out Gaussian (DCI 0.08 against the Gaussian prior's 0.44
    # after 2,000 steps), as docs/method.md explains; IMQ's heavy tails see the square's edges (DCI 0.93)
    kernel: str = _kernel("imq")
    marginal: float = _marginal()
    copies: bool = option(True, "train a latent copy of each hybrid run (an Empirical prior of its codes) on shapes",
                          of_type(bool))
    eval_n: int = _eval_n()
    xy_options: dict[str, Any] = option(factory=dict, help="options of the xy dataset", check=_check_mapping, cli=False)
    shapes_options: dict[str, Any] = option(factory=dict, help="options of the shapes dataset (size 32 unless given)",
                                            check=_check_mapping, cli=False)


@dataclasses.dataclass(frozen=True)
class Budget(Study):
    """train every objective to doubling budgets of steps and measure each at each budget."""

    name: ClassVar[str] = "budget"
    dataset: str = _dataset("shapes")
    dataset_options: dict[str, Any] = _dataset_options()  # noqa: RUF009 (a field with a factory)
    latent_dim: int = _latent_dim(5)
    steps: int = _steps(16000)
    first: int = option(500, "the first number of steps measured, doubled up to --steps", integer())
    seeds: tuple[int, ...] = _seeds()
    batch_size: int = _batch_size()
    # 4x the paper's 5e-4, which is set for batch 512: at batch 64 on 32 px shapes, AE-MMD after 1,000 steps
    # reaches LPS-lgbm 0.51 and NMSE -11.6 dB with 2e-3, against 0.72 and -9.4 dB with 5e-4
    lr: float = _lr(2e-3)
    lam: float = _lam(2.0)
    kernel: str | None = _kernel(None)
    marginal: float = _marginal()
    objectives: tuple[str, ...] = _objectives()
    eval_n: int = _eval_n()


STUDIES: dict[str, type[Study]] = {cls.name: cls for cls in (KLFailure, EngineeredPriors, Budget)}


def settings(study: type[Study]) -> dict[str, dataclasses.Field]:
    """The study's settings that the command line takes, by name."""
    return {field.name: field for field in dataclasses.fields(study) if field.metadata.get("cli", True)}


def default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def flag_value(field: dataclasses.Field, value: Any) -> str:
    """``value`` as the flag's argument text (a dict: ``KEY=VALUE`` items; seeds 0..S-1: ``S``)."""
    parse = field.metadata.get("parse")
    if parse == "key_value":
        return " ".join(f"{key}={item}" for key, item in value.items())
    if parse == "count":
        if tuple(value) != tuple(range(len(value))):
            raise ValueError(f"{field.name} {value!r} is not 0..S-1, which is all --seeds S can give")
        return str(len(value))
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def from_flag(field: dataclasses.Field, value: Any) -> Any:
    """The setting the parsed flag gives (the inverse of `flag_value`)."""
    parse = field.metadata.get("parse")
    if parse == "key_value":
        return dict(value)
    if parse == "count":
        return tuple(range(value))
    return value


def command(study: type[Study], given: Mapping[str, Any]) -> str:
    """The ``python -m explorer reproduce`` command line that runs ``study`` with the ``given`` settings, one flag
    per setting in the order given (the rest are left to their defaults)."""
    study.of(**given)  # every setting is the study's and valid
    fields = settings(study)
    missing = sorted(set(given) - set(fields))
    if missing:
        raise ValueError(f"{study.name}: {missing} have no command-line flag")
    words = [COMMAND, study.name]
    for name, value in given.items():
        if fields[name].metadata.get("parse") == "key_value":
            words += [f"{flag(fields[name])} {key}={item}" for key, item in value.items()]
        elif isinstance(value, bool):  # a switch: --name or --no-name
            words.append(flag(fields[name]) if value else f"--no-{flag(fields[name])[2:]}")
        else:
            words.append(f"{flag(fields[name])} {flag_value(fields[name], value)}")
    return " ".join(words)


def takes(study: type[Study]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a study's function ``run(out, setting, callbacks=(), jobs=1)``: the function returned takes the
    study's settings as keyword arguments instead (its signature lists them, with their defaults), builds and checks
    ``study`` from them, and carries ``study`` as ``.study``."""

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def with_settings(out: Any, *, callbacks: Sequence[Any] = (), jobs: int = 1, **given: Any) -> Any:
            return run(out, study.of(**given), callbacks=callbacks, jobs=jobs)

        own = inspect.signature(run).parameters
        keyword = inspect.Parameter.KEYWORD_ONLY
        with_settings.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [own["out"].replace(),
             *(inspect.Parameter(f.name, keyword, default=default(f), annotation=f.type)
               for f in dataclasses.fields(study)),
             own["callbacks"].replace(kind=keyword), own["jobs"].replace(kind=keyword)],
            return_annotation=inspect.signature(run).return_annotation)
        with_settings.study = study  # type: ignore[attr-defined]
        return with_settings

    return decorate
