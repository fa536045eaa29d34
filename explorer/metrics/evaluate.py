"""Evaluate a trained model on its dataset: one report of reconstruction, LPS, structure and, where the dataset
has ground-truth factors, the supervised disentanglement metrics."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from explorer.metrics import structure, supervised
from explorer.metrics.lps import LGBM_EARLY_STOPPED, lps
from explorer.versions import library_versions

if TYPE_CHECKING:
    from explorer.checkpoints import TrainedModel
    from explorer.data import Dataset

ENCODE_BATCH = 1024
# the LPS estimators of a report, as the shipped tables, manifest and budget curves were measured
LPS_OPTIONS: dict[str, dict[str, Any]] = {"lgbm": LGBM_EARLY_STOPPED, "mlp": {}}


def check_sample(n: int, seed: int) -> None:
    """Refuse a sample size that is not a positive integer and a seed torch cannot take, before any work."""
    from explorer.settings import SEED_RANGE

    if type(n) is not int or n < 1:
        raise ValueError(f"n (images to encode) must be a positive integer, got {n!r}")
    if type(seed) is not int or not SEED_RANGE[0] <= seed < SEED_RANGE[1]:
        raise ValueError(f"seed must be an integer from -2**63 to 2**64 - 1, got {seed!r}")


def encode_dataset(
    trained: TrainedModel, dataset: Dataset, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, structure.NMSEAccumulator]:
    """Codes of min(n, len) images drawn with ``seed``, their row indices, and the reconstruction NMSE."""
    check_sample(n, seed)
    rows = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[: min(n, len(dataset))]
    rows = rows.sort().values
    codes, accumulator = [], structure.NMSEAccumulator()
    for part in torch.split(rows, ENCODE_BATCH):
        x = dataset.inputs(part)
        z = trained.encode(x)
        accumulator.update(x, trained.decode(z))
        codes.append(z.numpy())
    return np.concatenate(codes), rows.numpy(), accumulator


def evaluate(trained: TrainedModel, dataset: Dataset, n: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """A JSON-ready report: ``metrics`` (scalars), ``per_dim`` (lists over latent dimensions) and settings."""
    start = time.perf_counter()
    report = evaluate_codes(trained, dataset, *encode_dataset(trained, dataset, n, seed), seed=seed)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def evaluate_codes(
    trained: TrainedModel,
    dataset: Dataset,
    codes: np.ndarray,
    rows: np.ndarray,
    accumulator: structure.NMSEAccumulator,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate` of codes already encoded with `encode_dataset` (``seconds``: the metrics' time only)."""
    from explorer.priors import Gaussian

    start = time.perf_counter()
    prior = trained.prior or Gaussian(codes.shape[1])
    by_method = {method: lps(codes, method=method, seed=seed, **options) for method, options in LPS_OPTIONS.items()}
    metrics: dict[str, float] = {
        "nmse": accumulator.value,
        "nmse_db": accumulator.db,
        **{f"lps_{method}": result.score for method, result in by_method.items()},
        "covariance_ratio": structure.covariance_ratio(codes),
        "mmd_to_prior": structure.mmd_to_prior(codes, prior, seed=seed),
    }
    ks = structure.ks_to_prior(codes, prior, seed=seed)
    metrics["ks_max"] = float(ks.max())
    per_dim = {
        **{f"lps_{method}": [float(v) for v in result.per_dim] for method, result in by_method.items()},
        "ks": [float(v) for v in ks],
        "std": [float(v) for v in codes.std(axis=0)],
    }
    if dataset.factors is not None:
        metrics.update(supervised_metrics(codes, dataset.factors[rows], seed))
    return {
        "run": trained.path.name,
        "step": trained.step,
        "dataset": dataset.to_dict(),
        "n": len(codes),
        "seed": seed,
        "prior": prior.to_dict() if trained.prior is not None else "standard normal (no trained prior)",
        "metrics": metrics,
        "per_dim": per_dim,
        "versions": library_versions(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def supervised_metrics(codes: np.ndarray, factors: np.ndarray, seed: int) -> dict[str, float]:
    """MIG, SAP and DCI of codes against the ground-truth factors of the same rows."""
    scores = {"mig": supervised.mig(codes, factors), "sap": supervised.sap(codes, factors, seed=seed)}
    d, c, i = (supervised.dci(codes, factors, seed=seed)[key] for key in ("disentanglement", "completeness",
                                                                            "informativeness"))
    scores.update({"dci_disentanglement": d, "dci_completeness": c, "dci_informativeness": i})
    return {k: float(v) for k, v in scores.items()}


LABELS = {
    "nmse": "NMSE (linear)",
    "nmse_db": "NMSE (dB)",
    "lps_lgbm": "LPS-lgbm",
    "lps_mlp": "LPS-mlp",
    "covariance_ratio": "Covariance Ratio",
    "mmd_to_prior": "MMD^2 to prior",
    "ks_max": "max KS to prior marginal",
    "mig": "MIG",
    "sap": "SAP",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
}


def format_report(report: dict[str, Any]) -> str:
    """The report as an aligned text table."""
    lines = [f"{report['run']} at step {report['step']}: {report['n']:,} images of {report['dataset']['name']}"]
    for key, value in report["metrics"].items():
        shown = f"{value:.4f}" if math.isfinite(value) else str(value)
        lines.append(f"  {LABELS.get(key, key):<26} {shown:>10}")
    lps_dims = ", ".join(f"{v:.2f}" for v in report["per_dim"]["lps_lgbm"])
    lines.append(f"  {'LPS-lgbm per dimension':<26} [{lps_dims}]")
    return "\n".join(lines)
