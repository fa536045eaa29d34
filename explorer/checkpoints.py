"""Checkpoints: safetensors for tensors, a JSON sidecar for everything else, written atomically.

A run folder holds
- ``checkpoint.json``: schema and version, step, the configs (train, model, objective, prior, dataset), metrics,
  library versions, and the names and SHA-256 of the tensor files below;
- ``weights-<step>.safetensors``: model weights (``model.*``) and objective weights (``objective.*``, e.g. the
  FactorVAE discriminator); all that `load` needs;
- ``state-<step>.safetensors`` (optional): optimizer moments and the random generator, for exact resume.

Tensor files are written under new names first and ``checkpoint.json`` is replaced last with ``os.replace``, so a
crash mid-write leaves the previous checkpoint intact; files the new sidecar no longer names are then removed.
Loading never executes code (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from explorer.data import Dataset
    from explorer.models import AutoEncoder
    from explorer.priors import Prior

SCHEMA = "explorer.checkpoint"
SCHEMA_VERSION = 1
META_FILE = "checkpoint.json"
TENSOR_FILE_KINDS = ("weights", "state")


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, foreign or does not fit its own description."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint's numbers."""
    import numpy
    import safetensors

    from explorer import __version__

    return {
        "explorer": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the file into place with one ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_checkpoint(
    run_dir: str | Path,
    meta: dict[str, Any],
    weights: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write one checkpoint of step ``meta["step"]`` into ``run_dir`` atomically; return the sidecar's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = int(meta["step"])
    files = {}
    for kind, tensors in (("weights", weights), ("state", state)):
        if tensors is None:
            continue
        name = f"{kind}-{step:08d}.safetensors"
        contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        _atomic_write(run_dir / name, lambda tmp, t=contiguous: save_file(t, tmp))
        files[kind] = {"name": name, "sha256": _sha256(run_dir / name)}
    sidecar = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        **meta,
        "files": files,
        "versions": library_versions(),
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True)
    meta_path = run_dir / META_FILE
    _atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text))
    keep = {entry["name"] for entry in files.values()}
    for kind in TENSOR_FILE_KINDS:
        for old in run_dir.glob(f"{kind}-*.safetensors"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    return meta_path


def read_meta(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read and validate the sidecar of a run folder (or of the ``checkpoint.json`` path itself)."""
    path = Path(path)
    meta_path = path / META_FILE if path.is_dir() else path
    if not meta_path.exists():
        raise CheckpointError(
            f"No checkpoint at {path}: expected a run folder containing {META_FILE} "
            "(written by `python -m explorer train --out FOLDER` or Trainer.save)."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path} is not valid JSON (truncated or corrupt?): {err}") from err
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{meta_path} is not an explorer checkpoint (schema {found!r}, expected {SCHEMA!r}).")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{meta_path} has schema version {version!r}; this explorer reads up to {SCHEMA_VERSION}. "
            "Upgrade explorer to open it."
        )
    for key in ("step", "model", "objective", "files"):
        if key not in meta:
            raise CheckpointError(f"{meta_path} lacks the field {key!r}: the file is incomplete.")
    return meta, meta_path.parent


def read_tensors(run_dir: Path, meta: dict[str, Any], kind: str) -> dict[str, torch.Tensor]:
    """Load the ``kind`` ("weights" or "state") tensor file the sidecar names, checking its SHA-256."""
    entry = meta["files"].get(kind)
    if entry is None:
        raise CheckpointError(f"{run_dir / META_FILE} names no {kind} file (saved without training state?).")
    path = run_dir / entry["name"]
    if not path.exists():
        raise CheckpointError(f"{path} is missing: {run_dir / META_FILE} refers to it.")
    if _sha256(path) != entry["sha256"]:
        raise CheckpointError(
            f"{path} does not match {META_FILE} (SHA-256 differs): the file is truncated, corrupt or from "
            "another checkpoint."
        )
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


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
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]
) -> None:
    """Inverse of `optimizer_to_tensors`."""
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = value
    restored = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    optimizer.load_state_dict({"state": slots, "param_groups": restored})


@dataclass
class TrainedModel:
    """A trained autoencoder opened from a checkpoint: ``encode``, ``decode``, ``config`` and friends."""

    model: AutoEncoder
    config: dict[str, Any]
    path: Path

    @property
    def step(self) -> int:
        return int(self.config["step"])

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    @property
    def metrics(self) -> dict[str, Any]:
        return self.config.get("metrics", {})

    @property
    def prior(self) -> Prior | None:
        """The prior the model was trained towards (None for objectives without one)."""
        from explorer.priors import from_dict

        spec = self.config.get("prior")
        return None if spec is None else from_dict(spec)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Codes (the encoder mean) of images ``x``: uint8 [n, C, H, W] or float in [0, 1]."""
        chunks = []
        for part in torch.split(x, batch_size):
            part = part.to(self._device())
            part = part.float() / 255 if part.dtype == torch.uint8 else part.float()
            chunks.append(self.model.encode(part).cpu())
        return torch.cat(chunks)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Images (float in [0, 1]) decoded from codes ``z`` [n, d]."""
        return torch.cat([self.model.decode(p.to(self._device()).float()).cpu() for p in torch.split(z, batch_size)])

    def load_dataset(self, **overrides: Any) -> Dataset:
        """The dataset this model was trained on (options may be overridden, e.g. ``root=``)."""
        from explorer.data import load_dataset

        spec = {**self.config["dataset"], **overrides}
        return load_dataset(**spec)


def load(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Open a trained model from a run folder (or its ``checkpoint.json``) for inspection, in eval mode."""
    from explorer.models import ModelConfig, build_model

    meta, run_dir = read_meta(path)
    try:
        model = build_model(ModelConfig.from_dict(meta["model"]))
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{run_dir / META_FILE}: invalid model description {meta['model']!r}: {err}") from err
    tensors = read_tensors(run_dir, meta, "weights")
    load_into(model, tensors, "model.", run_dir / meta["files"]["weights"]["name"])
    return TrainedModel(model=model.to(device).eval(), config=meta, path=run_dir)
