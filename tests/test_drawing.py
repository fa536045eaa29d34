"""The kernel density drawn where a prior has none in closed form (`explorer.drawing.sample_density`), against the
kernel summed over every sample."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.drawing import sample_density

RNG = np.random.default_rng(0)


def summed_kernels(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    h = (samples.std() or 1.0) * len(samples) ** (-1 / 5)
    u = (grid[:, None] - samples[None, :]) / h
    return np.exp(-0.5 * u**2).sum(1) / (len(samples) * h * np.sqrt(2 * np.pi))


@pytest.mark.parametrize("samples", [RNG.standard_normal(20_000), RNG.uniform(-1, 1, 20_000),
                                     RNG.choice([-10.0, 10.0], 20_000) + RNG.standard_normal(20_000),
                                     RNG.standard_cauchy(5_000), RNG.standard_normal(50), np.array([0.3]),
                                     np.full(100, 2.0), np.zeros(3)],
                         ids=["gaussian", "uniform", "two modes", "cauchy", "50 samples", "one", "constant", "3 zeros"])
def test_the_binned_density_is_the_summed_kernels_within_a_thousandth_of_its_peak(samples):
    grid = np.linspace(np.percentile(samples, 0.5) - 1, np.percentile(samples, 99.5) + 1, 200)
    exact = summed_kernels(samples, grid)
    assert np.abs(sample_density(samples, grid) - exact).max() <= 1e-3 * exact.max()
