"""LPS calibration on synthetic codes with known answers, and the warm-started estimator."""

import json
import time

import numpy as np
import pytest
import torch

from explorer.metrics import LPSEstimator, LPSResult, lps

METHODS = ("linear", "mlp", "lgbm")


def _mixture_codes(n: int, d: int, seed: int) -> np.ndarray:
    """A random nonlinear mixing of 3 Gaussian sources plus noise: every dimension partly predictable."""
    rng = np.random.default_rng(seed)
    sources = rng.standard_normal((n, 3))
    hidden = np.tanh(sources @ rng.standard_normal((3, 2 * d)))
    return np.sin(2.0 * hidden @ rng.standard_normal((2 * d, d)) / np.sqrt(2 * d)) + 0.2 * rng.standard_normal(
        (n, d)
    )


@pytest.mark.parametrize("d", [5, 12, 32])
@pytest.mark.parametrize("family", ["gaussian", "uniform"])
def test_independent_codes_score_zero(family, d):
    rng = np.random.default_rng(d)
    codes = rng.standard_normal((10_000, d)) if family == "gaussian" else rng.uniform(-1, 1, (10_000, d))
    for method in METHODS:
        result = lps(codes, method=method)
        assert abs(result.score) <= 0.02, (method, result.per_dim)
        assert result.per_dim.min() > -0.03, (method, result.per_dim)


def test_linear_mixture_gives_analytic_r2():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 2))
    cov = w @ w.T + np.diag(rng.uniform(0.3, 1.0, 6))
    analytic = 1.0 - 1.0 / (np.diag(cov) * np.diag(np.linalg.inv(cov)))  # R^2 of z_i on the others
    assert analytic.min() < 0.1 and analytic.max() > 0.6  # a spread of targets
    codes = rng.multivariate_normal(np.zeros(6), cov, size=40_000)
    for method in METHODS:
        result = lps(codes, method=method, n=40_000)
        np.testing.assert_allclose(result.per_dim, analytic, atol=0.03, err_msg=method)


def test_exactly_collinear_codes_score_one_with_every_method():
    codes = np.random.default_rng(2).standard_normal((5000, 4))
    codes[:, 3] = codes[:, :3].sum(axis=1)  # each dimension is a function of the other three
    for method in METHODS:
        result = lps(codes, method=method)
        assert result.per_dim.min() > 0.9, (method, result.per_dim)


def test_nonlinear_dependence_found_by_mlp_and_lgbm_missed_by_linear():
    rng = np.random.default_rng(1)
    z1 = rng.standard_normal(10_000)
    codes = np.column_stack([z1, z1**2 + 0.1 * rng.standard_normal(10_000), rng.standard_normal((10_000, 3))])
    for method in ("mlp", "lgbm"):
        per_dim = lps(codes, method=method).per_dim
        assert per_dim[1] > 0.9, (method, per_dim)
        assert np.all(np.abs(per_dim[2:]) < 0.02), (method, per_dim)  # the independent ones stay at 0
    assert abs(lps(codes, method="linear").per_dim[1]) < 0.05  # z1^2 is uncorrelated with z1


def test_lgbm_default_is_a_plain_lgbm_regressor_loop():
    """Where every dimension is predictable, the default is LGBMRegressor() fitted on the 80 %, scored on the 20 %."""
    from lightgbm import LGBMRegressor

    codes = _mixture_codes(5000, 6, seed=9)
    test, train = np.split(codes[np.random.default_rng(0).permutation(len(codes))], [1000])  # lps' split, seed 0
    plain = []
    for i in range(codes.shape[1]):
        others = np.arange(codes.shape[1]) != i
        model = LGBMRegressor(n_jobs=1, verbose=-1).fit(train[:, others], train[:, i])
        plain.append(model.score(test[:, others], test[:, i]))  # R^2
    assert min(plain) > 0.1  # predictable, so the constant predictor never replaces the booster
    np.testing.assert_allclose(lps(codes, method="lgbm").per_dim, plain, atol=0.02)


def test_result_records_settings_and_versions_and_serializes():
    codes = _mixture_codes(3000, 4, seed=2)
    result = lps(torch.as_tensor(codes, dtype=torch.float32), method="lgbm", n=2000, seed=3, num_leaves=7)
    assert isinstance(result, LPSResult) and result.method == "lgbm"
    assert result.per_dim.shape == (4,)
    assert result.score == pytest.approx(result.per_dim.mean())
    assert result.settings["n"] == 2000 and result.settings["seed"] == 3 and result.settings["num_leaves"] == 7
    assert result.settings["feature_fraction"] == 1.0  # resolved: d <= 17 uses every input in each tree
    assert {"lightgbm", "scikit-learn", "torch", "numpy"} <= set(result.versions)
    assert json.loads(json.dumps(result.to_dict()))["per_dim"] == pytest.approx(list(result.per_dim))


@pytest.mark.parametrize("method", ["mlp", "lgbm"])
def test_seeded_runs_repeat(method):
    codes = _mixture_codes(2000, 5, seed=4)
    first, second = lps(codes, method=method, seed=7), lps(codes, method=method, seed=7)
    np.testing.assert_array_equal(first.per_dim, second.per_dim)
    assert lps(codes, method=method, seed=8).score != first.score  # another split


def test_constant_dimension_is_nan_and_left_out_of_the_mean():
    codes = _mixture_codes(2000, 4, seed=5)
    codes[:, 2] = 3.0
    result = lps(codes, method="linear")
    assert np.isnan(result.per_dim[2])
    assert result.score == pytest.approx(np.nanmean(result.per_dim))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "svm"}, "method must be one of"),
        ({"method": "mlp", "num_leaves": 3}, "unknown option"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"n": 4}, "n must leave"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lps(_mixture_codes(100, 3, seed=6), **kwargs)


@pytest.mark.parametrize("codes", [np.zeros(10), np.full((10, 3), np.nan), np.zeros((10, 1))])
def test_bad_codes_raise(codes):
    with pytest.raises(ValueError, match="codes"):
        lps(codes, method="linear")


def test_estimator_first_call_is_the_full_fit_and_warm_updates_are_fast():
    codes = _mixture_codes(4000, 16, seed=7)
    estimator = LPSEstimator(n=4000)
    first = estimator.update(codes)
    np.testing.assert_allclose(first.per_dim, lps(codes, method="mlp", n=4000).per_dim, atol=1e-6)
    cpu = []
    for step in range(3):
        start = time.process_time()
        warm = estimator.update(codes + 0.05 * step)
        cpu.append(time.process_time() - start)
        assert warm.settings["warm"] and warm.settings["epochs"] == estimator.warm_epochs
    assert max(cpu) < 0.5, cpu  # d = 16, n = 4000: ~0.06 s of CPU measured
    assert abs(warm.score - first.score) < 0.02


def test_estimator_follows_codes_that_change():
    rng = np.random.default_rng(8)
    independent, dependent = rng.standard_normal((4000, 8)), _mixture_codes(4000, 8, seed=8)
    estimator = LPSEstimator(n=4000)
    assert abs(estimator.update(independent).score) < 0.02
    target = lps(dependent, method="mlp", n=4000).score
    for _ in range(10):
        result = estimator.update(dependent)
    assert target > 0.3 and abs(result.score - target) < 0.05
    with pytest.raises(ValueError, match="d=8"):
        estimator.update(dependent[:, :5])
