"""Each dimension's marginal fit, live: the KS distance between the codes' marginal and the prior's.

The LPS says whether a dimension is predictable from the others; this says whether it has the prior's shape, which
the joint MMD can miss (see `explorer.mmd.marginal_mmd2`). The prior's side is a seeded sample of ``REFERENCE``
points per dimension, sorted once per prior, so a snapshot pays one sort of its codes and two searches.
"""

from __future__ import annotations

import numpy as np
import torch

from explorer.priors import Prior

REFERENCE = 10_000  # prior samples: the KS statistic of two samples is noisy at about 1/sqrt of the smaller one


class MarginalFit:
    """`of(codes, prior)`: the [d] KS distance of each column of ``codes`` to the prior's marginal."""

    def __init__(self, reference: int = REFERENCE) -> None:
        self.reference = reference
        self._prior: Prior | None = None
        self._sorted = np.empty((0, 0))

    def of(self, codes: np.ndarray, prior: Prior) -> np.ndarray:
        if prior != self._prior:
            sample = prior.sample(self.reference, torch.Generator().manual_seed(0)).double().numpy()
            self._prior, self._sorted = prior, np.sort(sample, axis=0)
        return np.array([ks_distance(np.sort(column), reference)
                         for column, reference in zip(codes.T, self._sorted.T, strict=True)])


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of the sorted samples ``a`` and ``b``: the largest gap between their
    empirical CDFs, which is reached at one of their points."""
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(b, points, side="right") / len(b)
    return float(np.abs(gap).max())
