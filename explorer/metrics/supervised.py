"""Supervised disentanglement metrics, for datasets with ground-truth factors.

Like google-research/disentanglement_lib, each metric is a pure, explicitly seeded function of arrays
(codes [n, d], factors [n, k]) around a `_compute_*` core. These scores move with small implementation
details, so the choices are stated here:

- Factors: a factor column with at most `MAX_DISCRETE_VALUES` distinct values is discrete, its values the
  classes (dSprites' factors are); any other column is continuous (e.g. XY positions, drawn U(0, 1)). MIG
  cuts continuous factors into `num_bins` equal-width bins; SAP and DCI score a continuous factor by
  regression and a discrete one by classification (`continuous_factors` overrides the rule for all factors).
- Codes are cut into `num_bins` = 20 equal-width bins per dimension for MIG (as disentanglement_lib).
- Train/test splits are random, drawn from `seed`, `test_fraction` of the rows held out.
- The paper's conventions (arXiv 2510.11953) are options beside ours: DCI with a random-forest regressor for
  every factor (`continuous_factors=True`; the probe the paper names) and SAP on raw codes
  (`standardize=False`; its zeros suggest it). `explorer.metrics.evaluate` reports ours.
- Mutual information is the plug-in estimate on the contingency table, in nats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from explorer.metrics.arrays import ArrayLike, float64, float_rows

MAX_DISCRETE_VALUES = 64


# ---------------------------------------------------------------------------------------------- inputs


def _pair(codes: ArrayLike, factors: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = (float_rows(x, name, min_rows=2, finite=True) for x, name in ((codes, "codes"),
                                                                                  (factors, "factors")))
    if len(codes) != len(factors):
        raise ValueError(f"codes and factors must have the same rows, got {len(codes)} and {len(factors)}")
    return codes, factors


def histogram_discretize(x: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column of `x` [n, c] cut into `num_bins` equal-width bins over its range -> int [n, c] in 0..bins-1."""
    out = np.zeros(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram_bin_edges(x[:, j], bins=num_bins)
        out[:, j] = np.clip(np.digitize(x[:, j], edges[1:-1]), 0, num_bins - 1)
    return out


def discretize_factors(factors: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Class indices [n, k]: discrete columns keep their values as classes, others are binned (module doc)."""
    out = np.zeros(factors.shape, dtype=np.int64)
    for j in range(factors.shape[1]):
        values, inverse = np.unique(factors[:, j], return_inverse=True)
        if len(values) <= MAX_DISCRETE_VALUES:
            out[:, j] = inverse.ravel()
        else:
            out[:, j] = histogram_discretize(factors[:, [j]], num_bins)[:, 0]
    return out


def _continuous(factors: np.ndarray, continuous_factors: bool | None) -> np.ndarray:
    """Bool [k]: which factors are scored by regression (see module docstring)."""
    if continuous_factors is not None:
        return np.full(factors.shape[1], bool(continuous_factors))
    return np.array([len(np.unique(f)) > MAX_DISCRETE_VALUES for f in factors.T], dtype=bool)


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_fraction * n))
    return perm[n_test:], perm[:n_test]


# ---------------------------------------------------------------------------------------------- MIG


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) between two int label vectors."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    a, b = a.ravel(), b.ravel()
    joint = np.bincount(a * (b.max() + 1) + b, minlength=(a.max() + 1) * (b.max() + 1)).astype(np.float64)
    joint = joint.reshape(a.max() + 1, b.max() + 1) / len(a)
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


def mutual_info_matrix(codes_discrete: np.ndarray, factors_discrete: np.ndarray) -> np.ndarray:
    """Mutual information [d, k] between each discretized code dimension and each factor."""
    return np.array([[mutual_info(codes_discrete[:, i], factors_discrete[:, j])
                      for j in range(factors_discrete.shape[1])] for i in range(codes_discrete.shape[1])])


def mig(codes: ArrayLike, factors: ArrayLike, num_bins: int = 20) -> float:
    """Mutual Information Gap (Chen et al. 2018), the standard normalized form, in [0, 1].

    For each factor: (largest - second largest MI with a code dimension) / entropy of the factor; the mean
    over factors (constant factors left out). Codes and continuous factors are cut into `num_bins` bins.
    The paper's MIG exceeds 1 in places, so it is not this one.
    """
    codes, factors = _pair(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError(f"mig: codes need d >= 2 for a gap, got d={codes.shape[1]}")
    return _compute_mig(histogram_discretize(codes, num_bins), discretize_factors(factors, num_bins))


def _compute_mig(codes_discrete: np.ndarray, factors_discrete: np.ndarray) -> float:
    mi = mutual_info_matrix(codes_discrete, factors_discrete)
    entropy = np.array([mutual_info(f, f) for f in factors_discrete.T])
    top = np.sort(mi, axis=0)[::-1]
    keep = entropy > 0
    if not keep.any():
        raise ValueError("mig: every factor is constant, so MIG is undefined")
    return float(np.mean((top[0, keep] - top[1, keep]) / entropy[keep]))


# ---------------------------------------------------------------------------------------------- SAP


def sap(codes: ArrayLike, factors: ArrayLike, continuous_factors: bool | None = None,
        test_fraction: float = 0.3, seed: int = 0, standardize: bool = True) -> float:
    """Separated Attribute Predictability (Kumar et al. 2018), as in disentanglement_lib, in [0, 1].

    Score matrix [d, k]: for a continuous factor j, the R^2 of a linear fit of it on code i alone (squared
    correlation, train split); for a discrete one, the test accuracy of a linear SVM (C = 0.01, balanced class
    weights) classifying it from code i alone (with many classes a 1-D linear SVM is weak, so perfect codes
    score well below 1). SAP is the mean over factors of the gap between the two best codes' scores.
    `continuous_factors`: None decides per factor (module docstring). `standardize` (ours): the SVM sees each
    code standardized on the train split, so SAP does not depend on the codes' scale. False: the raw codes, as
    disentanglement_lib and, it appears, the paper (SAP 0.000 for 6 of its 8 dSprites models, non-zero only
    where the codes are large). At C = 0.01 the weight a small code needs costs more than it gains, so with 3 or
    more classes every code of scale 0.001 predicts the same class and SAP is 0; at scale 1 or more it scores
    as standardized or higher. The R^2 of continuous factors is scale-free either way.
    """
    codes, factors = _pair(codes, factors)
    if codes.shape[1] < 2:
        raise ValueError(f"sap: codes need d >= 2 for a gap, got d={codes.shape[1]}")
    train, test = _split(len(codes), test_fraction, seed)
    continuous = _continuous(factors, continuous_factors)
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    scores[:, continuous] = _linear_r2_matrix(codes[train], factors[train][:, continuous])
    classes = discretize_factors(factors[:, ~continuous])
    scores[:, ~continuous] = _svm_accuracy_matrix(codes, classes, train, test, seed, standardize)
    return _compute_sap(scores)


def _compute_sap(scores: np.ndarray) -> float:
    top = np.sort(scores, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def _linear_r2_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    cov = np.cov(codes, factors, rowvar=False)
    d = codes.shape[1]
    var_c, var_f = np.diag(cov)[:d], np.diag(cov)[d:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = cov[:d, d:] ** 2 / np.outer(var_c, var_f)
    return np.nan_to_num(r2)  # a constant code or factor explains / is explained by nothing


def _svm_accuracy_matrix(codes: np.ndarray, classes: np.ndarray, train: np.ndarray, test: np.ndarray,
                         seed: int, standardize: bool) -> np.ndarray:
    from sklearn.svm import LinearSVC

    z = codes
    if standardize:
        mean, std = codes[train].mean(axis=0), codes[train].std(axis=0)
        z = (codes - mean) / np.where(std > 0, std, 1.0)
    scores = np.zeros((codes.shape[1], classes.shape[1]))
    for j in range(classes.shape[1]):
        y_train, y_test = classes[train, j], classes[test, j]
        if len(np.unique(y_train)) < 2:
            continue  # a constant factor: no code predicts it better than another
        for i in range(codes.shape[1]):
            svm = LinearSVC(C=0.01, class_weight="balanced", random_state=seed).fit(z[train, i:i + 1], y_train)
            scores[i, j] = np.mean(svm.predict(z[test, i:i + 1]) == y_test)
    return scores


# ---------------------------------------------------------------------------------------------- DCI


def dci(codes: ArrayLike, factors: ArrayLike, probe: str = "random_forest",
        continuous_factors: bool | None = None, test_fraction: float = 0.2, seed: int = 0,
        n_estimators: int = 50, n_jobs: int | None = None) -> dict[str, float]:
    """DCI disentanglement, completeness, informativeness (Eastwood & Williams 2018).

    One probe per factor predicts it from all codes: `random_forest` (the paper's probe; `n_estimators`
    trees, every split considering all codes, leaves of >= 5 rows) or `gradient_boosting`
    (disentanglement_lib's; sklearn defaults). A discrete factor is classified (score: test accuracy), a
    continuous one regressed (score: test R^2); `continuous_factors`: None decides per factor (module
    docstring; ours); True regresses every factor on its values, discrete ones included: the paper's
    convention, Eastwood & Williams' regressor variant (score: test R^2 = 1 - MSE / the factor's variance, so
    a code that orders a factor's classes scores where a classifier needs them separated). Informativeness
    is the mean score over factors. The importance matrix R [d, k] holds the
    probes' impurity-based feature importances. Disentanglement: sum_i w_i (1 - H_k(R_i. / sum R_i.)) with code weights
    w_i = sum R_i. / sum R; completeness: the same over factors with entropy base d (H_b: entropy in base b).
    Returns {"disentanglement", "completeness", "informativeness"}.
    """
    if probe not in ("random_forest", "gradient_boosting"):
        raise ValueError(f"dci: probe must be 'random_forest' or 'gradient_boosting', got {probe!r}")
    codes, factors = _pair(codes, factors)
    continuous = _continuous(factors, continuous_factors)
    targets = np.where(continuous, factors, discretize_factors(factors))
    train, test = _split(len(codes), test_fraction, seed)
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    informativeness = []
    for j in range(factors.shape[1]):
        model = _probe(probe, bool(continuous[j]), seed, n_estimators, n_jobs)
        model.fit(codes[train], targets[train, j])
        importance[:, j] = np.abs(model.feature_importances_)
        informativeness.append(model.score(codes[test], targets[test, j]))  # accuracy or R^2
    return {**_compute_dci(importance), "informativeness": float(np.mean(informativeness))}


def _probe(probe: str, regression: bool, seed: int, n_estimators: int, n_jobs: int | None) -> Any:
    if probe == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestRegressor if regression else RandomForestClassifier
        return forest(n_estimators=n_estimators, max_features=None, min_samples_leaf=5, random_state=seed,
                      n_jobs=n_jobs)
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    return (GradientBoostingRegressor if regression else GradientBoostingClassifier)(random_state=seed)


def _compute_dci(importance: np.ndarray) -> dict[str, float]:
    """Disentanglement and completeness of an importance matrix [d, k] (see `dci`)."""
    total = importance.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    d, k = importance.shape
    code_weight, factor_weight = importance.sum(axis=1) / total, importance.sum(axis=0) / total
    disentanglement = 1.0 - _entropy(importance, axis=1, base=k) if k > 1 else np.ones(d)
    completeness = 1.0 - _entropy(importance, axis=0, base=d) if d > 1 else np.ones(k)
    return {"disentanglement": float(code_weight @ disentanglement),
            "completeness": float(factor_weight @ completeness)}


def _entropy(weights: np.ndarray, axis: int, base: int) -> np.ndarray:
    """Entropy (log base `base`) of `weights` normalized along `axis`; 0-sum slices count as uniform."""
    sums = weights.sum(axis=axis, keepdims=True)
    p = np.where(sums > 0, weights / np.where(sums > 0, sums, 1.0), 1.0 / weights.shape[axis])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis) / np.log(base)


# ---------------------------------------------------------------------------------------------- FactorVAE


SampleFixed = Callable[[int, int, np.random.Generator], ArrayLike]


def factor_vae_score(sample_codes_with_fixed_factor: SampleFixed, num_factors: int, code_std: ArrayLike,
                     batch_size: int = 64, num_train: int = 800, num_eval: int = 400, seed: int = 0,
                     prune_std: float = 0.05) -> dict[str, float]:
    """FactorVAE score (Kim & Mnih 2018): accuracy of a majority-vote classifier from "the code dimension
    with the least normalized variance in a batch where one factor is fixed" to that factor.

    `sample_codes_with_fixed_factor(factor_index, batch_size, rng)` must return the codes [batch_size, d] of
    data whose factor `factor_index` holds one value (drawn by the callee from `rng`) and whose other
    factors vary as in the dataset. `code_std` [d] is the global std of each code dimension over the dataset.
    Each vote: factor drawn uniformly from `rng`, per-dimension variance of the batch (ddof 1) divided by
    code_std^2, argmin over the active dimensions (code_std > `prune_std` x its largest value, the
    collapsed-dimension pruning of the original paper). The classifier maps each dimension to the factor it
    most voted for (learned on `num_train` votes); returns {"train_accuracy", "eval_accuracy"} (eval on
    `num_eval` fresh votes) and "num_active_dims". disentanglement_lib uses 10,000 / 5,000 votes; the
    defaults are smaller (each vote encodes `batch_size` images): standard error <= 0.025 at 400 eval votes.
    """
    std = float64(code_std).ravel()
    if num_factors < 1:
        raise ValueError(f"factor_vae_score: num_factors must be >= 1, got {num_factors}")
    if batch_size < 2:
        raise ValueError(f"factor_vae_score: batch_size must be >= 2, got {batch_size}")
    active = np.flatnonzero(std > prune_std * std.max()) if std.size and std.max() > 0 else np.array([], int)
    if len(active) == 0:
        raise ValueError("factor_vae_score: code_std has no active dimension (all near 0)")
    rng = np.random.default_rng(seed)
    train = _factor_vae_votes(sample_codes_with_fixed_factor, num_factors, std, active, batch_size, num_train, rng)
    evals = _factor_vae_votes(sample_codes_with_fixed_factor, num_factors, std, active, batch_size, num_eval, rng)
    return {**_compute_factor_vae(train, evals, len(std), num_factors), "num_active_dims": float(len(active))}


def _factor_vae_votes(sample: SampleFixed, num_factors: int, std: np.ndarray, active: np.ndarray,
                      batch_size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` votes [count, 2]: (argmin dimension, fixed factor)."""
    votes = np.zeros((count, 2), dtype=np.int64)
    for v in range(count):
        factor = int(rng.integers(num_factors))
        codes = float_rows(sample(factor, batch_size, rng), "sample_codes_with_fixed_factor(...)", min_rows=2,
                           finite=True)
        if codes.shape != (batch_size, len(std)):
            raise ValueError(f"factor_vae_score: the sampler must return [{batch_size}, {len(std)}] codes, "
                             f"got {list(codes.shape)}")
        normalized = codes[:, active].var(axis=0, ddof=1) / std[active] ** 2
        votes[v] = active[np.argmin(normalized)], factor
    return votes


def _compute_factor_vae(train_votes: np.ndarray, eval_votes: np.ndarray, num_dims: int,
                        num_factors: int) -> dict[str, float]:
    """Majority-vote classifier accuracies from votes [m, 2] of (dimension, factor)."""
    counts = np.zeros((num_dims, num_factors), dtype=np.int64)
    np.add.at(counts, (train_votes[:, 0], train_votes[:, 1]), 1)
    classifier = counts.argmax(axis=1)
    return {"train_accuracy": float(counts.max(axis=1).sum() / len(train_votes)),
            "eval_accuracy": float(np.mean(classifier[eval_votes[:, 0]] == eval_votes[:, 1]))}
