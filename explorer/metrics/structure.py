"""Structure of the aggregate posterior and reconstruction quality, on arrays of codes and images.

- `covariance` / `correlation`: of the codes over the dataset (unbiased, ddof = 1).
- `covariance_ratio` (docs/method.md, "Baselines and metrics"): trace of the code covariance / sum of the absolute
  off-diagonal entries, both triangles. Scale-free; infinite for an exactly diagonal covariance. Sampling noise
  bounds it for independent codes: E|cov_ij| = sqrt(2 / (pi n)) sigma_i sigma_j, so with unit variances the ratio
  is about sqrt(pi n / 2) / (d - 1) (2.0 at n = 10,000, d = 64): compare ratios at equal n and d only.
- `mmd_to_prior`: MMD^2 (explorer.mmd.mmd2, paper kernel and median bandwidth) between a seeded subsample of
  the codes and an equal-size seeded prior sample.
- `ks_to_prior`: per-dimension two-sample Kolmogorov-Smirnov statistic between each code marginal and the
  prior's marginal, the latter from a large seeded prior sample (its own error ~ 1 / sqrt(n_prior)).
- `nmse` / `nmse_db`: NMSE = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, the mean per feature (pixel) over
  the evaluated set: the fraction of the data's variance the reconstruction misses. A perfect reconstruction
  has NMSE 0 (-inf dB), predicting the mean image has NMSE 1 (0 dB). `NMSEAccumulator` sums over batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer.metrics.arrays import ArrayLike, float_rows

if TYPE_CHECKING:
    from explorer.priors import Prior




def covariance(codes: ArrayLike) -> np.ndarray:
    """Covariance matrix [d, d] of `codes` [n, d] (ddof = 1)."""
    return np.atleast_2d(np.cov(float_rows(codes, "codes", min_rows=2), rowvar=False))


def correlation(codes: ArrayLike) -> np.ndarray:
    """Correlation matrix [d, d] of `codes` [n, d]; rows and columns of constant dimensions are NaN."""
    cov = covariance(codes)
    std = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.outer(std, std)


def covariance_ratio(codes: ArrayLike) -> float:
    """Trace of the code covariance / sum of its absolute off-diagonal entries (see module docstring)."""
    return _compute_covariance_ratio(covariance(codes))


def _compute_covariance_ratio(cov: np.ndarray) -> float:
    off = np.abs(cov).sum() - np.abs(np.diag(cov)).sum()
    trace = float(np.trace(cov))
    return float("inf") if off == 0 else trace / float(off)


def mmd_to_prior(codes: ArrayLike, prior: Prior, n: int = 2000, seed: int = 0, kernel: str = "rbf",
                 estimator: str = "biased") -> float:
    """MMD^2 between min(n, len(codes)) codes (rows drawn with `seed`) and as many samples of `prior`."""
    from explorer.mmd import mmd2

    codes = float_rows(codes, "codes", min_rows=2)
    if codes.shape[1] != prior.dim:
        raise ValueError(f"mmd_to_prior: codes have d={codes.shape[1]}, prior has dim={prior.dim}")
    rows = np.random.default_rng(seed).permutation(len(codes))[: min(n, len(codes))]
    x = torch.as_tensor(codes[rows], dtype=torch.float32)
    y = prior.sample(len(x), generator=torch.Generator().manual_seed(seed))
    return float(mmd2(x, y, kernel=kernel, estimator=estimator))


def ks_to_prior(codes: ArrayLike, prior: Prior, n_prior: int = 100_000, seed: int = 0) -> np.ndarray:
    """Per-dimension KS statistic [d] between the code marginals and `n_prior` seeded prior samples."""
    from scipy.stats import ks_2samp

    codes = float_rows(codes, "codes", min_rows=2)
    if codes.shape[1] != prior.dim:
        raise ValueError(f"ks_to_prior: codes have d={codes.shape[1]}, prior has dim={prior.dim}")
    reference = prior.sample(n_prior, generator=torch.Generator().manual_seed(seed)).double().numpy()
    return np.array([ks_2samp(codes[:, i], reference[:, i]).statistic for i in range(codes.shape[1])])


def to_db(value: float) -> float:
    """10 log10(value); -inf for 0."""
    return float("-inf") if value == 0 else 10.0 * float(np.log10(value))


class NMSEAccumulator:
    """NMSE over batches: `update(x, x_hat)` per batch, then `value` (linear) and `db`.

    Sums are float64 per feature, so the mean image is that of all rows seen (no second pass).
    """

    def __init__(self) -> None:
        self.count = 0
        self.sse = 0.0
        self.sum: np.ndarray | None = None
        self.sum_sq: np.ndarray | None = None

    def update(self, x: ArrayLike, x_hat: ArrayLike) -> None:
        x, x_hat = (float_rows(a, name, owner="nmse", flatten=True) for a, name in ((x, "x"), (x_hat, "x_hat")))
        if x.shape != x_hat.shape:
            raise ValueError(f"nmse: x_hat must have the shape of x {x.shape}, got {x_hat.shape}")
        if self.sum is not None and x.shape[1] != self.sum.shape[0]:
            raise ValueError(f"nmse: x must have {self.sum.shape[0]} features per row, got {x.shape[1]}")
        self.sse += float(((x - x_hat) ** 2).sum())
        self.sum = x.sum(axis=0) + (0 if self.sum is None else self.sum)
        self.sum_sq = (x**2).sum(axis=0) + (0 if self.sum_sq is None else self.sum_sq)
        self.count += len(x)

    @property
    def value(self) -> float:
        if self.sum is None or self.sum_sq is None or self.count < 2:
            raise ValueError(f"nmse: needs >= 2 rows, got {self.count}")
        sst = float((self.sum_sq - self.sum**2 / self.count).sum())
        if sst <= 0:
            raise ValueError("nmse: x is constant over the rows, so NMSE is undefined")
        return self.sse / sst

    @property
    def db(self) -> float:
        return to_db(self.value)



def nmse(x: ArrayLike, x_hat: ArrayLike) -> float:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over rows of `x` [n, ...] (module docstring)."""
    acc = NMSEAccumulator()
    acc.update(x, x_hat)
    return acc.value


def nmse_db(x: ArrayLike, x_hat: ArrayLike) -> float:
    """NMSE in decibels, 10 log10(nmse); -inf for a perfect reconstruction."""
    return to_db(nmse(x, x_hat))
