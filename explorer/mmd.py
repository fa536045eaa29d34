"""Maximum mean discrepancy (MMD^2) between two samples, the penalty of AE-MMD (docs/method.md, "The objective").

One [n+m, n+m] squared-distance matrix of the combined set Z u Z' serves both the bandwidth and every kernel
scale. The bandwidth sigma_base is the median heuristic: the median Euclidean distance over all pairs of
distinct rows of Z u Z' (self-pairs excluded), recomputed on every call and detached from the gradient.

Kernels (summed over ``scales``; s = scale * sigma_base):
- ``"rbf"`` (the paper's): k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2)).
- ``"imq"`` (inverse multiquadric): k(a, b) = sum_s C_s / (C_s + ||a - b||^2) with
  C_s = s^2 = (scale * sigma_base)^2. For codes matching N(0, I_d) the median squared distance is about 2d, so
  C_s is about 2 d scale^2: the choice C = 2 d sigma^2 of Tolstikhin et al. (WAE, 2018), here adapting to the
  scale of the data.

Estimators: ``"biased"`` (V-statistic, the paper's default; exactly 0 for identical samples, never negative)
and ``"unbiased"`` (U-statistic, the paper's eq. 4; diagonal kernel terms dropped, can be negative).
The median of an even number of pairs is the lower of the two middle values (``torch.median``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

KERNELS = ("rbf", "imq")
ESTIMATORS = ("biased", "unbiased")


def _check_samples(x: Tensor, y: Tensor) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            raise ValueError(
                f"mmd: {name} must be a 2-D tensor [n, d], got shape {getattr(t, 'shape', type(t))}"
            )
        if t.shape[0] < 2:
            raise ValueError(f"mmd: {name} needs at least 2 rows, got {t.shape[0]}")
        if not torch.isfinite(t).all():
            raise ValueError(f"mmd: {name} contains NaN or infinite values")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"mmd: x and y must have the same dimension, got x d={x.shape[1]} and y d={y.shape[1]}"
        )


def _squared_distances(z: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances of the rows of z, clamped at 0 (centred first for accuracy)."""
    z = z - z.mean(dim=0, keepdim=True).detach()
    sq = (z * z).sum(dim=1)
    return torch.addmm(sq[None, :], z, z.T, alpha=-2.0).add_(sq[:, None]).clamp_min_(0.0)


@lru_cache(maxsize=8)
def _upper_flat_index(n: int, device: torch.device) -> Tensor:
    rows, cols = torch.triu_indices(n, n, offset=1, device=device)
    return rows * n + cols


def _median_squared(d2: Tensor) -> Tensor:
    """Median of the off-diagonal upper triangle of a square squared-distance matrix (detached)."""
    index = _upper_flat_index(d2.shape[0], d2.device)
    return d2.detach().reshape(-1).take(index).median()


def median_bandwidth(x: Tensor, y: Tensor) -> Tensor:
    """Median Euclidean distance over all pairs of distinct rows of x u y (detached scalar)."""
    _check_samples(x, y)
    return _median_squared(_squared_distances(torch.cat([x, y]))).sqrt()


def _block_sums(
    d2: Tensor, sigma2: Tensor, n: int, kernel: str, scales: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """[2, 2] sums of the kernel matrix over the (x, x), (x, y), (y, y) blocks and [2] sums of its diagonal.

    Block sums are u^T K v with u, v the 0/1 block indicators: two matrix-vector products per scale.
    """
    u_x = torch.zeros(d2.shape[0], dtype=d2.dtype, device=d2.device)
    u_x[:n] = 1.0
    u_y = 1.0 - u_x
    sums = d2.new_zeros(2, 2)
    diagonal = d2.new_zeros(2)
    for scale in scales:
        s2 = sigma2 * float(scale) ** 2
        k = torch.exp(d2 * (-0.5 / s2)) if kernel == "rbf" else s2 / (d2 + s2)
        k_x, k_y = k @ u_x, k @ u_y  # two matrix-vector products: the only reads of k
        sums = sums + torch.stack([torch.stack([u_x @ k_x, u_x @ k_y]), torch.stack([u_y @ k_x, u_y @ k_y])])
        kd = k.diagonal()
        diagonal = diagonal + torch.stack([u_x @ kd, u_y @ kd])
    return sums, diagonal


def mmd2(
    x: Tensor,
    y: Tensor,
    kernel: str = "rbf",
    estimator: str = "biased",
    scales: Sequence[float] = (0.5, 1.0, 2.0),
) -> Tensor:
    """Squared MMD between samples x [n, d] and y [m, d] (scalar, differentiable in x and y).

    The bandwidth is the detached median heuristic over x u y; kernels and estimators: module docstring.
    """
    if kernel not in KERNELS:
        raise ValueError(f"mmd: kernel must be one of {KERNELS}, got {kernel!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"mmd: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if len(scales) == 0 or any(float(s) <= 0 for s in scales):
        raise ValueError(f"mmd: scales must be a non-empty sequence of positive numbers, got {tuple(scales)}")
    _check_samples(x, y)
    d2 = _squared_distances(torch.cat([x, y.to(x.dtype)]))
    sigma2 = _median_squared(d2).clamp_min(1e-12)  # all-identical rows: avoid 0/0
    n, m = x.shape[0], y.shape[0]
    sums, diagonal = _block_sums(d2, sigma2, n, kernel, scales)
    if estimator == "biased":
        return sums[0, 0] / n**2 + sums[1, 1] / m**2 - 2.0 * sums[0, 1] / (n * m)
    exx = (sums[0, 0] - diagonal[0]) / (n * (n - 1))
    eyy = (sums[1, 1] - diagonal[1]) / (m * (m - 1))
    return exx + eyy - 2.0 * sums[0, 1] / (n * m)
