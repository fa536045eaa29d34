"""Checkpoints: safetensors for tensors, a JSON sidecar for everything else, written atomically.

A run folder holds
- ``checkpoint.json``: the sidecar (`Sidecar`, schema version 4): run id, step, the training config (which holds
  the prior, the seed, the dataset's name, the objective and its options and the model's sizes, once each), the
  data (name, shape, dtype, value range, whether its name is registered), what fixes the model besides (the
  input shape, whether its encoder is Gaussian, its output; for a caller's own model the builder that makes it
  again), metrics, library versions, and the names and SHA-256 of the tensor files below;
- ``weights-<step>-<sha>.safetensors``: model weights (``model.*``) and objective weights (``objective.*``, e.g. the
  FactorVAE discriminator); all that `load` needs;
- ``state-<step>-<sha>.safetensors`` (optional): optimizer moments and the random generator, for exact resume.

Writing: tensor files go under new, content-addressed names first and ``checkpoint.json`` is replaced last with
``os.replace``, so a crash mid-write leaves the previous checkpoint intact. The files of the previous generation
stay until the next save, so a reader that has just read the old sidecar still finds its files; older ones,
orphans of failed saves and ``.tmp`` leftovers are removed. A save that fails removes what it wrote.
Reading never executes code (no pickle), validates every sidecar field (one `CheckpointError` naming the file and
the field), loads tensors into memory (never a mapping of a file a writer may replace), checks them finite, and
retries when the sidecar changed under it. Older sidecars are read and converted: version 1 (the prior three
times, the seed twice, the dataset in two shapes), version 2 (the model's sizes also in ``model``, and an
``objective`` entry repeating ``train``'s objective with its resolved options, which nothing read) and version 3
(no ``data`` entry: its data is always a registered uint8 dataset, its model a built-in one with a sigmoid).
Loading never imports code: a caller's model is built by its recorded builder only from a module already
imported (or named with ``plugins``), or passed in (``load(run, model=...)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save_file

from explorer.models import BUILDER
from explorer.run_folder import remove_stale_tmp
from explorer.versions import library_versions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import nn

    from explorer.data import Dataset
    from explorer.models import ModelConfig
    from explorer.priors import Prior

SCHEMA = "explorer.checkpoint"
SCHEMA_VERSION = 4
META_FILE = "checkpoint.json"
TENSOR_FILE_KINDS = ("weights", "state")
READ_ATTEMPTS = 5  # a reader re-reads a sidecar that changed while it opened the tensor files
TENSOR_NAME = r"^(weights|state)-[0-9]{8,}(-[0-9a-f]{12})?\.safetensors$"  # v1 names have no hash part


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, foreign or does not fit its own description."""


# ----------------------------------------------------------------------------------------------- the sidecar

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class TensorFile(_Strict):
    name: Annotated[str, Field(pattern=TENSOR_NAME)]  # a plain file name: never a path out of the folder
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Files(_Strict):
    weights: TensorFile
    state: TensorFile | None = None


class OptimizerGroup(_Strict):
    """An Adam parameter group; options torch adds over its versions are kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow")
    params: list[Annotated[int, Field(ge=0)]]
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)]
    eps: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)]


_Shape = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=3)]


class Builder(_Strict):
    """How a caller's own model is built again: ``builder`` "package.module:function" called with ``args`` (None: it
    was saved without one, and loads only with the model passed in)."""

    builder: Annotated[str, Field(pattern=BUILDER)] | None
    args: dict[str, Any] = {}


class ModelFacts(_Strict):
    """What fixes the model besides ``train``'s sizes (`explorer.models.FACTS`); ``custom``: a caller's own model."""

    shape: _Shape
    gaussian: bool
    output: Literal["sigmoid", "linear"]
    custom: Builder | None = None


class DataFacts(_Strict):
    """The data a run trained on (`explorer.data.Dataset.facts`); only a ``registered`` name is loaded by name."""

    name: Annotated[str, Field(min_length=1)]
    shape: _Shape
    dtype: Literal["uint8", "float16", "bfloat16", "float32", "float64"]
    unit_range: bool
    registered: bool


class Sidecar(_Strict):
    """``checkpoint.json``, version 4. ``train`` is a `TrainConfig`, and with ``model`` it describes a
    `ModelConfig` (`ModelConfig.for_run`) unless the model is the caller's own, each checked by building it."""

    schema_: Literal["explorer.checkpoint"] = Field(alias="schema")
    schema_version: Literal[4]
    run_id: Annotated[str, Field(min_length=1)]
    step: Annotated[int, Field(ge=0)]
    train: dict[str, Any]
    data: DataFacts
    model: ModelFacts
    metrics: dict[str, Any] = {}
    optimizer_groups: list[OptimizerGroup] | None = None
    files: Files
    versions: dict[str, str] = {}

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        from explorer.settings import TrainConfig

        _built(TrainConfig.from_dict, value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Sidecar:
        from explorer.data import check_dataset

        if self.data.registered:
            try:
                _built(lambda d: check_dataset(d["dataset"], **d["dataset_options"]), self.train)
            except ValueError as error:
                raise ValueError(f"field 'train': {error}") from None
        try:
            if self.model.custom is None:
                model_config(self.train, self.model.model_dump())
        except (TypeError, ValueError, KeyError) as error:
            detail = " ".join(str(error).split())
            raise ValueError(f"field 'model' with train's sizes describes no model: {detail}") from None
        if self.files.state is not None and self.optimizer_groups is None:
            raise ValueError("files.state is given without optimizer_groups")
        return self


def _dump(sidecar: Sidecar) -> dict[str, Any]:
    """The sidecar as JSON-ready data; ``files`` lists only the files there are, ``model`` names ``custom`` only
    for a caller's own model."""
    data = sidecar.model_dump(mode="json", by_alias=True)
    data["files"] = {kind: entry for kind, entry in data["files"].items() if entry is not None}
    data["model"] = {key: value for key, value in data["model"].items() if key != "custom" or value is not None}
    return data


def _built(build: Any, value: dict[str, Any]) -> None:
    """Build a config from ``value`` to check it; its errors become ValueErrors (what pydantic reports)."""
    try:
        build(value)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(" ".join(str(error).split())) from None


def model_config(train: dict[str, Any], model: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` a sidecar's ``train`` (the sizes) and ``model`` (the facts) describe."""
    from explorer.models import ModelConfig

    return ModelConfig.for_run(train, model["shape"], model["gaussian"], model["output"])


def _upgrade(raw: dict[str, Any], version: int) -> dict[str, Any]:
    """A version 1, 2 or 3 sidecar in version 4's shape.

    From version 1: the top-level prior, seed and dataset copies (all also in ``train``) are dropped and the run
    id derives from the weights' hash. From versions 1 and 2: the ``objective`` entry (``train`` names the
    objective and its options) and ``model``'s copies of ``train``'s sizes are dropped. From versions 1 to 3: the
    image shape becomes ``model.shape`` with a sigmoid output, and ``data`` describes the registered uint8 dataset
    ``train`` names."""
    out = {k: v for k, v in raw.items() if k not in ("prior", "seed", "dataset", "objective")}
    out["schema_version"] = SCHEMA_VERSION
    model, train = out.get("model"), out.get("train")
    if isinstance(model, dict):
        out["model"] = {"shape": model.get("image_shape"), "gaussian": model.get("gaussian"), "output": "sigmoid"}
        if isinstance(train, dict):
            out.setdefault("data", {"name": train.get("dataset"), "shape": model.get("image_shape"), "dtype": "uint8",
                                    "unit_range": True, "registered": True})
    if version == 1:
        try:
            out.setdefault("run_id", "v1-" + str(raw["files"]["weights"]["sha256"])[:16])
        except (KeyError, TypeError, IndexError):
            out.setdefault("run_id", "v1")
    return out


def _field_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"field {'.'.join(str(p) for p in item['loc'])!r}: {message}" if item["loc"] else message)
    more = len(error.errors()) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate_sidecar(raw: Any, source: Path) -> Sidecar:
    """``raw`` (a parsed ``checkpoint.json``, version 1 to 4) as a `Sidecar`, or a CheckpointError naming the
    file and the field."""
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{source} is not an explorer checkpoint (schema {found!r}, expected {SCHEMA!r}).")
    version = raw.get("schema_version")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{source}: field 'schema_version' must be an integer from 1 to {SCHEMA_VERSION}, "
                              f"got {version!r}.")
    if version > SCHEMA_VERSION:
        raise CheckpointError(f"{source} has schema version {version}; this explorer reads up to "
                              f"{SCHEMA_VERSION}. Upgrade explorer to open it.")
    try:
        return Sidecar.model_validate(_upgrade(raw, version) if version < SCHEMA_VERSION else raw)
    except ValidationError as error:
        raise CheckpointError(f"{source} is malformed: {_field_errors(error)}.") from None


# ----------------------------------------------------------------------------------------------- files



def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the file into place with one ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_tensors(tensors: dict[str, torch.Tensor], tmp: str) -> None:
    try:
        save_file(tensors, tmp)
    except SafetensorError as error:  # e.g. "No space left on device": an I/O failure like any other
        raise OSError(f"could not write {tmp}: {error}") from error


def _referenced(run_dir: Path) -> set[str]:
    """The tensor file names the sidecar now in ``run_dir`` refers to (none if there is no readable one)."""
    try:
        files = json.loads((run_dir / META_FILE).read_text())["files"]
        return {entry["name"] for entry in files.values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def write_checkpoint(
    run_dir: str | Path,
    meta: dict[str, Any],
    weights: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write one checkpoint of step ``meta["step"]`` into ``run_dir`` atomically; return the sidecar's path.

    The caller is the folder's one writer (see `explorer.run_folder`). On failure, the files this call wrote are
    removed and the previous checkpoint stays as it was."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(run_dir)
    previous = _referenced(run_dir)
    step = int(meta["step"])
    files, written = {}, []
    try:
        for kind, tensors in (("weights", weights), ("state", state)):
            if tensors is None:
                continue
            contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
            fd, tmp = tempfile.mkstemp(prefix=f".{kind}-", suffix=".tmp", dir=run_dir)
            os.close(fd)
            try:
                _save_tensors(contiguous, tmp)
                sha = _sha256(Path(tmp))
                target = run_dir / f"{kind}-{step:08d}-{sha[:12]}.safetensors"
                if not target.exists():  # same name, same content: already there
                    os.replace(tmp, target)
                    written.append(target)
            finally:
                Path(tmp).unlink(missing_ok=True)
            files[kind] = {"name": target.name, "sha256": sha}
        raw = {**meta, "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "files": files,
               "versions": library_versions()}
        try:
            sidecar = Sidecar.model_validate(raw)
        except ValidationError as error:
            raise ValueError(f"write_checkpoint: invalid checkpoint description: {_field_errors(error)}") from None
        text = json.dumps(_dump(sidecar), indent=2, sort_keys=True)
        atomic_write(run_dir / META_FILE, lambda tmp: Path(tmp).write_text(text))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    keep = previous | {entry["name"] for entry in files.values()}
    for kind in TENSOR_FILE_KINDS:
        for old in run_dir.glob(f"{kind}-*.safetensors"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    return run_dir / META_FILE


def _read_sidecar(path: Path) -> tuple[dict[str, Any], Path, bytes]:
    meta_path = path / META_FILE if path.is_dir() else path
    try:
        text = meta_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"No checkpoint at {path}: expected a run folder containing {META_FILE} "
            "(written by `python -m explorer train --out FOLDER` or Trainer.save)."
        ) from None
    except OSError as error:
        raise CheckpointError(f"{meta_path} cannot be read: {error.strerror or error}") from error
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path} is not valid JSON (truncated or corrupt?): {err}") from err
    sidecar = validate_sidecar(raw, meta_path)
    return _dump(sidecar), meta_path.parent, text


def read_meta(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read and validate the sidecar of a run folder (or of the ``checkpoint.json`` path itself), in version 4's
    shape whatever version the file has."""
    meta, run_dir, _ = _read_sidecar(Path(path))
    return meta, run_dir


def read_tensors(run_dir: Path, meta: dict[str, Any], kind: str) -> dict[str, torch.Tensor]:
    """Load the ``kind`` ("weights" or "state") tensor file the sidecar names into memory, checking its SHA-256
    and that every float tensor is finite."""
    entry = meta["files"].get(kind)
    if entry is None:
        raise CheckpointError(f"{run_dir / META_FILE} names no {kind} file (saved without training state?).")
    path = run_dir / entry["name"]
    try:
        data = path.read_bytes()  # one read: what is hashed is what is loaded, and nothing stays mapped
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: {run_dir / META_FILE} refers to it.") from None
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error.strerror or error}") from error
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(
            f"{path} does not match {META_FILE} (SHA-256 differs): the file is truncated, corrupt or from "
            "another checkpoint."
        )
    try:
        tensors = tensors_from_bytes(data)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or inf values (saved from a diverged run?).")
    return tensors


def read_checkpoint(
    path: str | Path, kinds: tuple[str, ...] = ("weights",)
) -> tuple[dict[str, Any], Path, dict[str, dict[str, torch.Tensor]]]:
    """The sidecar and the tensor files of ``kinds``, consistent with each other even while a writer saves:
    when a tensor file cannot be read and the sidecar has changed meanwhile, read both again."""
    path = Path(path)
    for attempt in range(READ_ATTEMPTS):
        meta, run_dir, text = _read_sidecar(path)
        try:
            return meta, run_dir, {kind: read_tensors(run_dir, meta, kind) for kind in kinds}
        except CheckpointError:
            try:
                changed = (run_dir / META_FILE).read_bytes() != text
            except OSError:
                changed = True
            if attempt == READ_ATTEMPTS - 1 or not changed:
                raise
    raise AssertionError("unreachable")


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Path) -> None:
    """Load the ``prefix``-ed tensors into ``module`` strictly, with one clear error when they do not fit."""
    own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(
            f"{source}: the weights do not fit the {type(module).__name__} described in {META_FILE}: {detail}"
        ) from err


def prefixed(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's state dict with every key prefixed."""
    return {prefix + k: v for k, v in module.state_dict().items()}


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Split an optimizer's state into safetensors-ready tensors and JSON-ready parameter groups."""
    state = optimizer.state_dict()
    tensors = {
        f"optimizer.{index}.{key}": torch.as_tensor(value)
        for index, slots in state["state"].items()
        for key, value in slots.items()
    }
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict], source: Path | None = None
) -> None:
    """Inverse of `optimizer_to_tensors`; state that does not fit ``optimizer``'s parameters is a CheckpointError
    (checked here, not at the first step)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            if not index.isdigit() or int(index) >= len(params):
                raise CheckpointError(f"{source}: optimizer state {name!r} names no parameter of this model "
                                      f"({len(params)} parameters).")
            shape = params[int(index)].shape
            if value.ndim and value.shape != shape:
                raise CheckpointError(f"{source}: optimizer state {name!r} has shape {list(value.shape)}, its "
                                      f"parameter {list(shape)}: the state is from another architecture.")
            slots.setdefault(int(index), {})[key] = value
    tuned = {"params", "lr", "betas", "eps", "weight_decay"}  # numbers the schema checks; the rest is structure
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"{source}: {len(groups)} optimizer groups saved, this model has "
                              f"{len(optimizer.param_groups)}.")
    for index, (saved, own) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        for key in sorted((set(saved) | set(own)) - tuned):
            if saved.get(key) != own.get(key):
                raise CheckpointError(f"{source}: optimizer_groups.{index}.{key} is {saved.get(key)!r}; this "
                                      f"optimizer uses {own.get(key)!r}.")
    restored = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": restored})
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{source}: the optimizer state does not fit this model: {error}") from error


def restore_generator(generator: torch.Generator, tensors: dict[str, torch.Tensor], source: Path | None) -> None:
    """Set ``generator`` to the saved state, or raise a CheckpointError saying why it cannot be."""
    state = tensors.get("generator")
    if state is None:
        raise CheckpointError(f"{source} holds no 'generator' state: the run cannot continue exactly.")
    try:
        generator.set_state(state)
    except (RuntimeError, TypeError) as error:
        raise CheckpointError(f"{source}: the saved 'generator' state is invalid: {error}") from error


@dataclass
class TrainedModel:
    """A trained autoencoder opened from a checkpoint: ``encode``, ``decode``, ``config`` and friends."""

    model: nn.Module
    config: dict[str, Any]
    path: Path

    @property
    def step(self) -> int:
        return int(self.config["step"])

    @property
    def latent_dim(self) -> int:
        return int(self.config["train"]["latent_dim"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.config.get("metrics", {})

    @property
    def prior(self) -> Prior | None:
        """The prior the model was trained towards (None for objectives without one)."""
        from explorer.priors import from_dict

        spec = self.config["train"]["prior"]
        return None if spec is None else from_dict(spec)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Codes (the encoder mean) of inputs ``x`` [n, *shape] as stored (uint8 pixels or floats, `as_inputs`)."""
        from explorer.data import as_inputs

        return torch.cat([self.model.encode(as_inputs(part.to(self._device()))).cpu()
                          for part in torch.split(x, batch_size)])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Inputs (float; in [0, 1] for data in [0, 1]) decoded from codes ``z`` [n, d]."""
        return torch.cat([self.model.decode(p.to(self._device()).float()).cpu() for p in torch.split(z, batch_size)])

    def load_dataset(self, **overrides: Any) -> Dataset:
        """The dataset this model was trained on (options may be overridden, e.g. ``root=``); a CheckpointError for
        data that was passed in rather than registered by name."""
        from explorer.data import load_dataset

        data, train = self.config["data"], self.config["train"]
        if not data["registered"]:
            raise CheckpointError(f"{self.path / META_FILE}: the model was trained on data passed in "
                                  f"({data['name']!r}, {data['dtype']} {data['shape']}), not a registered dataset; "
                                  "pass that data yourself, e.g. evaluate(trained, as_dataset(my_data))")
        return load_dataset(train["dataset"], **{**train["dataset_options"], **overrides})


def model_for(meta: dict[str, Any], run_dir: Path, model: nn.Module | None = None,
              plugins: Sequence[str] = ()) -> nn.Module:
    """The module a checkpoint's weights go into: ``model`` if given, else the built-in model the sidecar describes,
    else a caller's model rebuilt by its recorded builder from a module already imported (``plugins`` names modules
    to import first); a CheckpointError naming the builder and how to make it resolvable otherwise."""
    import importlib

    from explorer.models import as_model, build_model, resolve_builder

    if model is not None:
        return as_model(model)
    custom = meta["model"].get("custom")
    if custom is None:
        return build_model(model_config(meta["train"], meta["model"]))
    for plugin in plugins:
        try:
            importlib.import_module(plugin)
        except ImportError as error:
            raise CheckpointError(f"plugin {plugin!r} cannot be imported: {error}") from error
    where = run_dir / META_FILE
    if custom["builder"] is None:
        raise CheckpointError(f"{where}: the run trained a model of your own saved without a builder; pass the model "
                              "to load its weights into: explorer.load(run, model=my_model)")
    try:
        return resolve_builder(custom["builder"], custom["args"])
    except (LookupError, TypeError, ValueError) as error:
        raise CheckpointError(f"{where}: cannot build the model: {error}") from error


def load(path: str | Path, device: str | torch.device = "cpu", model: nn.Module | None = None,
         plugins: Sequence[str] = ()) -> TrainedModel:
    """Open a trained model from a run folder (or its ``checkpoint.json``) for inspection, in eval mode; a caller's
    own model is rebuilt as `model_for` says (``model``: the module to load the weights into)."""
    meta, run_dir, tensors = read_checkpoint(path)
    module = model_for(meta, run_dir, model, plugins)
    load_into(module, tensors["weights"], "model.", run_dir / meta["files"]["weights"]["name"])
    return TrainedModel(model=module.to(device).eval(), config=meta, path=run_dir)
