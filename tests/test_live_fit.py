"""The live marginal fit: each dimension's KS distance to the prior, against SciPy and known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from explorer.live.fit import REFERENCE, MarginalFit, ks_distance
from explorer.priors import Gaussian, Uniform


def test_the_ks_distance_is_scipys_two_sample_statistic_ties_included():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = np.sort(rng.normal(size=37).round(1)), np.sort(rng.uniform(-2, 2, size=51).round(1))
        assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_the_fit_of_codes_is_against_a_sorted_prior_sample_taken_once_per_prior():
    fit = MarginalFit()
    prior = Uniform(2, -np.sqrt(3), np.sqrt(3))
    codes = np.column_stack([prior.sample(4000, torch.Generator().manual_seed(5)).numpy()[:, 0],
                             np.full(4000, 100.0)])  # z0 from the prior, z1 nowhere near it
    distances = fit.of(codes, prior)
    reference = prior.sample(REFERENCE, torch.Generator().manual_seed(0)).double().numpy()
    assert distances == pytest.approx([ks_2samp(codes[:, 0], reference[:, 0]).statistic, 1.0])
    assert distances[0] < 0.04  # the prior's own shape: as close as two samples get
    gaussian = fit.of(np.random.default_rng(0).standard_normal((20000, 2)), prior)
    assert gaussian == pytest.approx([0.0572, 0.0572], abs=0.01)  # sup |Phi(x) - U(x)|, equal variances
    assert fit.of(codes, Gaussian(2))[1] == 1.0
