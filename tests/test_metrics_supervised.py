"""Supervised disentanglement metrics on constructed codes: aligned, rotated, pure noise."""

import numpy as np
import pytest

from explorer.metrics import dci, factor_vae_score, mig, sap
from explorer.metrics.supervised import (
    _compute_dci,
    _compute_factor_vae,
    _compute_mig,
    _compute_sap,
    discretize_factors,
    histogram_discretize,
    mutual_info,
)

N = 3000
ROTATION = np.linalg.qr(np.random.default_rng(10).standard_normal((3, 3)))[0]  # a random orthogonal matrix


def _factors(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "continuous":  # like XY: i.i.d. U(0, 1)
        return rng.uniform(0, 1, (N, 3))
    return rng.integers(0, 4, (N, 3)).astype(np.float64)  # like dSprites: a few values per factor


def _codes(factors: np.ndarray, case: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    centered = (factors - factors.mean(axis=0)) / factors.std(axis=0)
    if case == "aligned":  # up to order, scale and a small noise
        return 2.0 * centered[:, [2, 0, 1]] + 1e-4 * rng.standard_normal(factors.shape)
    if case == "rotated":
        return centered @ ROTATION
    return rng.standard_normal(factors.shape)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_mig_aligned_near_one_rotated_lower_noise_near_zero(kind):
    factors = _factors(kind)
    aligned, rotated, noise = (mig(_codes(factors, case), factors) for case in ("aligned", "rotated", "noise"))
    assert aligned > 0.95
    assert rotated < aligned - 0.3
    assert abs(noise) < 0.02


def test_sap_continuous_aligned_near_one_rotated_lower_noise_near_zero():
    factors = _factors("continuous")
    aligned, rotated, noise = (sap(_codes(factors, case), factors) for case in ("aligned", "rotated", "noise"))
    assert aligned > 0.98
    assert rotated < aligned - 0.3
    assert abs(noise) < 0.02


def test_sap_discrete_reaches_its_maximum_one_minus_chance():
    factors = np.random.default_rng(2).integers(0, 2, (N, 3)).astype(np.float64)  # binary factors
    # a 1-D linear SVM classifies a binary factor perfectly from its code; other codes are at chance (0.5)
    assert sap(_codes(factors, "aligned"), factors) == pytest.approx(0.5, abs=0.04)
    assert sap(_codes(factors, "rotated"), factors) < 0.4
    assert abs(sap(_codes(factors, "noise"), factors)) < 0.03


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_dci_aligned_near_one_rotated_lower_noise_near_zero(kind):
    factors = _factors(kind)
    aligned, rotated, noise = (dci(_codes(factors, case), factors) for case in ("aligned", "rotated", "noise"))
    assert aligned["disentanglement"] > 0.95 and aligned["completeness"] > 0.95
    assert aligned["informativeness"] > 0.95
    assert rotated["disentanglement"] < aligned["disentanglement"] - 0.3
    assert rotated["informativeness"] > 0.9  # a rotation keeps the information
    assert noise["disentanglement"] < 0.05
    chance = 0.0 if kind == "continuous" else 0.25  # R^2 or the accuracy of guessing one of 4 classes
    assert noise["informativeness"] == pytest.approx(chance, abs=0.1)


def test_dci_gradient_boosting_probe_agrees_on_aligned_codes():
    factors = _factors("discrete")[:600]
    scores = dci(_codes(factors, "aligned")[:600], factors, probe="gradient_boosting")
    assert scores["disentanglement"] > 0.9 and scores["informativeness"] > 0.95


def test_compute_cores_on_known_matrices():
    assert _compute_dci(np.eye(3)) == {"disentanglement": 1.0, "completeness": 1.0}
    assert _compute_dci(np.ones((3, 3))) == pytest.approx({"disentanglement": 0.0, "completeness": 0.0})
    # one code explains every factor: fully complete, not disentangled
    assert _compute_dci(np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx(
        {"disentanglement": 0.0, "completeness": 1.0}
    )
    assert _compute_sap(np.array([[0.9, 0.1], [0.2, 0.7]])) == pytest.approx(((0.9 - 0.2) + (0.7 - 0.1)) / 2)
    labels = np.repeat(np.arange(4), 25)
    assert mutual_info(labels, labels) == pytest.approx(np.log(4))
    assert _compute_mig(np.column_stack([labels, np.zeros(100, int)]), labels[:, None]) == pytest.approx(1.0)


def test_discretization_rules():
    x = np.column_stack([np.linspace(0, 1, 1000), np.tile([3.0, 7.0], 500)])
    binned = histogram_discretize(x, 20)
    assert binned.min() == 0 and binned.max() == 19 and np.all(np.bincount(binned[:, 0]) == 50)
    classes = discretize_factors(x)
    assert np.array_equal(classes[:, 1], np.tile([0, 1], 500))  # few values: kept as classes
    assert classes[:, 0].max() == 19  # many values: 20 bins


def _fixed_factor_sampler(mix: np.ndarray | None, noise_dims: int = 0):
    """Codes of a synthetic model: factors U(0, 1)^3 (one held fixed), mixed by `mix` (None: pure noise)."""

    def sample(factor_index, batch_size, rng):
        factors = rng.uniform(0, 1, (batch_size, 3))
        factors[:, factor_index] = rng.uniform(0, 1)
        codes = rng.standard_normal((batch_size, 3)) if mix is None else factors @ mix
        return np.column_stack([codes, rng.standard_normal((batch_size, noise_dims))])

    return sample


def test_factor_vae_aligned_perfect_rotated_lower_noise_at_chance():
    std = np.sqrt(1 / 12) * np.ones(4)  # U(0, 1) std; the noise dimension's is 1
    std[3] = 1.0
    aligned = factor_vae_score(_fixed_factor_sampler(np.eye(3)[[1, 2, 0]], noise_dims=1), 3, std)
    assert aligned["train_accuracy"] == 1.0 and aligned["eval_accuracy"] == 1.0
    assert aligned["num_active_dims"] == 4
    # factors 0 and 1 rotated by 45 degrees: fixing either leaves dims 0 and 1 equally quiet, so the
    # majority vote gets factor 2 right and about half of the others: accuracy about 2/3
    mix = np.array([[1.0, 1, 0], [1, -1, 0], [0, 0, 1]])
    rotated = factor_vae_score(_fixed_factor_sampler(mix), 3, np.sqrt(np.array([2, 2, 1]) / 12))
    assert rotated["eval_accuracy"] == pytest.approx(2 / 3, abs=0.1)
    noise = factor_vae_score(_fixed_factor_sampler(None), 3, np.ones(3), num_eval=800)
    assert noise["eval_accuracy"] == pytest.approx(1 / 3, abs=0.08)
    collapsed = factor_vae_score(_fixed_factor_sampler(np.eye(3)), 3, np.array([0.3, 0.3, 1e-3]))
    assert collapsed["num_active_dims"] == 2


def test_compute_factor_vae_on_known_votes():
    votes = np.array([[0, 1], [0, 1], [0, 0], [1, 0]])
    out = _compute_factor_vae(votes, np.array([[0, 1], [1, 1]]), num_dims=2, num_factors=2)
    assert out == {"train_accuracy": 0.75, "eval_accuracy": 0.5}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mig(np.zeros((10, 2)), np.zeros((9, 1))), "same rows"),
        (lambda: mig(np.zeros((10, 1)), np.zeros((10, 1))), "d >= 2"),
        (lambda: dci(np.zeros((10, 2)), np.zeros((10, 1)), probe="lasso"), "probe"),
        (lambda: sap(np.full((10, 2), np.nan), np.zeros((10, 1))), "finite"),
        (lambda: factor_vae_score(_fixed_factor_sampler(np.eye(3)), 3, np.zeros(3)), "active"),
        (lambda: factor_vae_score(_fixed_factor_sampler(np.eye(3)), 3, np.ones(4), num_train=2), r"\[64, 4\]"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_dci_paper_convention_regresses_discrete_factors():
    factors = _factors("discrete")  # 4 classes per factor, as dSprites' factors are classes
    exact = dci(factors[:, [2, 0, 1]], factors, continuous_factors=True)  # each factor is one code
    assert exact == pytest.approx({"disentanglement": 1.0, "completeness": 1.0, "informativeness": 1.0})
    noise = _codes(factors, "noise")
    assert -0.2 < dci(noise, factors, continuous_factors=True)["informativeness"] < 0.01  # R^2: 0 at best
    assert dci(noise, factors)["informativeness"] == pytest.approx(0.25, abs=0.05)  # ours: chance accuracy


def test_sap_on_raw_codes_depends_on_their_scale():
    factors = _factors("discrete")
    codes = _codes(factors, "aligned")  # per factor one code classifies it perfectly, the others at chance 1/4
    for scale in (1e-3, 1.0, 100.0):
        assert sap(scale * codes, factors) == pytest.approx(0.75, abs=0.02)
    assert sap(100.0 * codes, factors, standardize=False) == pytest.approx(0.75, abs=0.02)
    # too small for the SVM's weight at C = 0.01: every code predicts the same class, so no gap
    assert sap(1e-3 * codes, factors, standardize=False) == pytest.approx(0.0, abs=0.01)
