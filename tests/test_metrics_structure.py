"""Structure of the aggregate posterior and reconstruction NMSE, against closed forms."""

import numpy as np
import pytest
import torch

from explorer.metrics import (
    NMSEAccumulator,
    correlation,
    covariance,
    covariance_ratio,
    ks_to_prior,
    mmd_to_prior,
    nmse,
    nmse_db,
    to_db,
)
from explorer.metrics.structure import _compute_covariance_ratio
from explorer.priors import Gaussian, Uniform


def _equicorrelated(d: int, rho: float) -> np.ndarray:
    return (1 - rho) * np.eye(d) + rho * np.ones((d, d))


@pytest.mark.parametrize(("d", "rho"), [(4, 0.5), (8, -0.1), (12, 0.05)])
def test_covariance_ratio_closed_form(d, rho):
    # trace d, off-diagonal sum d (d - 1) |rho|
    assert _compute_covariance_ratio(_equicorrelated(d, rho)) == pytest.approx(1 / ((d - 1) * abs(rho)))
    assert _compute_covariance_ratio(3.0 * _equicorrelated(d, rho)) == pytest.approx(1 / ((d - 1) * abs(rho)))
    assert _compute_covariance_ratio(np.diag(np.arange(1.0, d + 1))) == float("inf")


def test_covariance_ratio_of_samples_large_when_independent_small_when_correlated():
    rng = np.random.default_rng(0)
    n, d = 20_000, 4
    independent = rng.standard_normal((n, d)) * np.array([1.0, 2.0, 0.5, 3.0])
    correlated = rng.multivariate_normal(np.zeros(d), _equicorrelated(d, 0.5), size=n)
    # independent: noise floor about sqrt(pi n / 2) / (d - 1) = 59 for unit variances
    assert covariance_ratio(independent) > 20
    assert covariance_ratio(correlated) == pytest.approx(2 / 3, rel=0.05)


def test_covariance_and_correlation_match_numpy():
    codes = torch.randn(500, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 2.0, 3.0])
    np.testing.assert_allclose(covariance(codes), np.cov(codes.double().numpy(), rowvar=False))
    corr = correlation(codes)
    np.testing.assert_allclose(corr, np.corrcoef(codes.double().numpy(), rowvar=False), atol=1e-12)
    np.testing.assert_allclose(np.diag(corr), 1.0)


def test_nmse_perfect_mean_and_known_noise():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (400, 3, 8, 8))
    assert nmse(x, x) == 0.0 and nmse_db(x, x) == float("-inf")
    mean = np.broadcast_to(x.mean(axis=0), x.shape)
    assert nmse(x, mean) == pytest.approx(1.0) and nmse_db(x, mean) == pytest.approx(0.0, abs=1e-9)
    noisy = x + rng.normal(0, 0.1, x.shape)  # NMSE = 0.01 / var(U(0, 1)) = 0.12
    assert nmse(x, noisy) == pytest.approx(0.12, rel=0.05)
    assert nmse_db(torch.as_tensor(x), torch.as_tensor(noisy)) == pytest.approx(to_db(nmse(x, noisy)))


def test_nmse_accumulated_over_batches_equals_one_pass():
    rng = np.random.default_rng(3)
    x, x_hat = rng.uniform(0, 1, (300, 10)) + 5.0, rng.uniform(0, 1, (300, 10)) + 5.0
    acc = NMSEAccumulator()
    for start in range(0, 300, 64):
        acc.update(x[start:start + 64], x_hat[start:start + 64])
    assert acc.value == pytest.approx(nmse(x, x_hat), rel=1e-9)
    assert acc.db == pytest.approx(to_db(acc.value))


@pytest.mark.parametrize(
    ("x", "x_hat", "match"),
    [(np.ones((4, 3)), np.ones((4, 3)), "constant"), (np.ones((4, 3)), np.ones((4, 2)), "shape"),
     (np.ones(4), np.ones(4), "rows")],
)
def test_nmse_bad_input_raises(x, x_hat, match):
    with pytest.raises(ValueError, match=match):
        nmse(x, x_hat)


def test_ks_small_for_prior_samples_large_for_another_distribution():
    prior = Gaussian(3)
    samples = prior.sample(5000, generator=torch.Generator().manual_seed(4))
    ks = ks_to_prior(samples, prior, seed=5)
    assert ks.shape == (3,) and ks.max() < 0.03  # 95% band of a 5000-sample KS: 0.019
    uniform = Uniform(3, low=-np.sqrt(3), high=np.sqrt(3)).sample(5000, generator=torch.Generator().manual_seed(6))
    assert ks_to_prior(uniform, prior).min() > 0.04  # same mean and variance, other shape
    with pytest.raises(ValueError, match="dim=3"):
        ks_to_prior(samples[:, :2], prior)


def test_mmd_to_prior_small_for_prior_samples_and_seeded():
    prior = Gaussian(4)
    samples = prior.sample(3000, generator=torch.Generator().manual_seed(7))
    near = mmd_to_prior(samples, prior, n=1000, seed=1)
    assert near == mmd_to_prior(samples, prior, n=1000, seed=1)
    assert near < 0.01
    assert mmd_to_prior(samples + 1.0, prior, n=1000, seed=1) > 10 * near
    with pytest.raises(ValueError, match="dim=4"):
        mmd_to_prior(samples[:, :3], prior)
