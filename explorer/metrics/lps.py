"""Latent Predictability Score (LPS): how well each code dimension is predicted from the others.

For each dimension i a regressor predicts z_i from the other d - 1 dimensions on a train split; LPS is the
mean held-out R^2 (lower is better; about 0 means mutually unpredictable dimensions). Choices (docs/method.md,
"Latent Predictability Score"):

- n = min(n, len(codes)) rows drawn with `seed`; 80/20 train/test split from the same permutation; the
  last `val_fraction` of the train split is the validation part (`mlp`, `lgbm`), the rest the fit part.
- Every dimension is standardized with the mean and std of the train split (validation part included).
- R^2 = 1 - SSE / SST on the test split, SST around the test mean, not clipped. A dimension constant on the
  train split gets R^2 = NaN and is left out of the mean.
- Each predictor is compared on the validation part with the constant predictor (the train mean); if it is
  not better, the constant is used. So independent codes score about 0 instead of the negative R^2 of an
  over-fitted regressor (a plain `LGBMRegressor()`: about -0.04 at n = 10,000, -0.09 at 5,000).

Methods:
- `linear`: ordinary least squares per dimension.
- `mlp`: d one-hidden-layer ReLU networks (100 units, as scikit-learn's default) trained together as one
  batched torch model, each blind to its own target; Adam (lr 2e-3, minibatches of 256); per-dimension early
  stopping (patience 10 epochs, improvements under `tol` = 1e-4 of the variance do not count) keeping each
  predictor's best-validation weights; finished predictors leave the computation.
- `lgbm`: LightGBM, one booster per dimension, `n_jobs` single-threaded boosters at once. By default as a
  plain loop of `LGBMRegressor()` (the paper's LPS-lgbm names no other setting): its settings (100 rounds, 31
  leaves, learning rate 0.1, 255 bins) fitted on the whole train split, where 100 rounds fitted on the fit
  part beat the constant on the validation part. On the 15 shipped mnist-5k models it scores within 0.005 of
  that loop on the raw codes of the same 80/20 split (`python benchmarks/lps.py --real-lgbm`), at about 1.8x
  its CPU time. `LGBM_EARLY_STOPPED`, the setting of the shipped tables (`explorer.metrics.evaluate`): the
  booster fitted on the fit part only, early-stopped on the validation MSE (patience 10 rounds, `tol` 1e-4),
  127 bins, each tree seeing all inputs when d <= 17 and a random half of them above; about half the default's
  CPU time, and from 0.021 below to 0.008 above the plain loop on those models (it fits on 64 % of the rows).
The mlp's defaults were set against the reference loop in benchmarks/lps.py (scikit-learn's MLPRegressor with
early stopping), on synthetic codes and on the codes of the shipped checkpoints (n = 5,000): the mean R^2
agrees within 0.01, per dimension within the reference's own spread over its seeds (0.03 to 0.04). With a
tolerance of 1e-3 it stopped early on real codes and scored 0.02 to 0.03 low.
`LPSEstimator` keeps the batched MLP between calls for a fast warm-started estimate (the live view).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explorer.metrics.arrays import float_rows
from explorer.versions import library_versions

METHODS = ("lgbm", "mlp", "linear")
MLP_DEFAULTS: dict[str, Any] = {
    "hidden": 100, "lr": 2e-3, "batch_size": 256, "max_epochs": 200, "patience": 10, "tol": 1e-4,
    "weight_decay": 0.0,
}
LGBM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20, "max_bin": 255, "rounds": 100,
    "max_rounds": 1000, "patience": 10, "tol": 1e-4, "feature_fraction": 1.0,
}
LGBM_EARLY_STOPPED: dict[str, Any] = {"max_bin": 127, "rounds": None, "feature_fraction": None}  # module doc


@dataclass(frozen=True)
class LPSResult:
    """Per-dimension held-out R^2 (`per_dim`), their mean (`score`, the LPS) and how they were obtained."""

    per_dim: np.ndarray
    score: float
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"per_dim": [float(v) for v in self.per_dim], "score": self.score, "method": self.method,
                "settings": dict(self.settings), "versions": dict(self.versions)}


@dataclass
class _Split:
    train: np.ndarray  # standardized, float64 [n_train, d]; the validation part is the tail
    test: np.ndarray
    n_val: int
    constant: np.ndarray  # bool [d], dimensions with zero variance on the train split

    @property
    def fit(self) -> np.ndarray:
        return self.train[: len(self.train) - self.n_val]

    @property
    def val(self) -> np.ndarray:
        return self.train[len(self.train) - self.n_val:]


def lps(codes: torch.Tensor | np.ndarray, method: str = "lgbm", n: int = 10_000, test_fraction: float = 0.2,
        seed: int = 0, val_fraction: float = 0.2, n_jobs: int | None = None, **options: Any) -> LPSResult:
    """LPS of `codes` [N, d] with regressor `method` ("lgbm", "mlp" or "linear").

    `options` override the method's defaults (`MLP_DEFAULTS`, `LGBM_DEFAULTS`; `**LGBM_EARLY_STOPPED` gives the
    shipped tables' lgbm, module docstring; `rounds=None` uses the early-stopped booster). `n_jobs`: for `lgbm` the
    boosters fitted at once (default: the CPUs this process may use; each booster runs on one thread); for
    `mlp` torch's intra-op threads (default 1: when processes share few cores, torch's OpenMP threads spend their
    time waiting on each other, so more threads run slower; pass more on an idle many-core machine).
    """
    if method not in METHODS:
        raise ValueError(f"lps: method must be one of {METHODS}, got {method!r}")
    defaults = {"mlp": MLP_DEFAULTS, "lgbm": LGBM_DEFAULTS, "linear": {}}[method]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"lps: unknown option(s) {unknown} for method {method!r}; known: {sorted(defaults)}")
    params = {**defaults, **options}
    n_jobs = n_jobs or (available_cpus() if method == "lgbm" else 1)
    split = _split(codes, n, test_fraction, val_fraction if method != "linear" else 0.0, seed)
    if method == "linear":
        pred = _linear_predict(split)
    elif method == "mlp":
        pred = _mlp_predict(split, params, seed, n_jobs)
    else:
        if params["feature_fraction"] is None:  # each tree sees all of <= 16 inputs, else half of them
            params["feature_fraction"] = 1.0 if split.train.shape[1] <= 17 else 0.5
        pred = _lgbm_predict(split, params, seed, n_jobs)
    settings = {"n": len(split.train) + len(split.test), "test_fraction": test_fraction, "seed": seed,
                "val_fraction": val_fraction if method != "linear" else 0.0, "n_jobs": n_jobs, **params}
    return _result(split, pred, method, settings)


def available_cpus() -> int:
    """Number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1



def r2_per_dim(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Column-wise R^2 = 1 - SSE / SST (SST around the column mean of `y`), not clipped; NaN where SST = 0."""
    sse = ((y - pred) ** 2).sum(axis=0)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def _result(split: _Split, pred: np.ndarray, method: str, settings: dict[str, Any]) -> LPSResult:
    per_dim = r2_per_dim(split.test, pred)
    per_dim[split.constant] = np.nan
    score = float(np.nanmean(per_dim)) if np.isfinite(per_dim).any() else float("nan")
    return LPSResult(per_dim=per_dim, score=score, method=method, settings=settings, versions=library_versions())



def _split(codes: torch.Tensor | np.ndarray, n: int, test_fraction: float, val_fraction: float,
           seed: int) -> _Split:
    codes = float_rows(codes, "codes", owner="lps", min_columns=2, finite=True)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"lps: test_fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"lps: val_fraction must be in [0, 1), got {val_fraction}")
    n = min(int(n), len(codes))
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * (n - n_test))
    if n_test < 2 or n - n_test - n_val < 2 or (val_fraction > 0 and n_val < 2):
        raise ValueError(f"lps: n must leave >= 2 rows in each split, got n={n} (codes have {len(codes)} rows)")
    idx = np.random.default_rng(seed).permutation(len(codes))[:n]
    test, train = codes[idx[:n_test]], codes[idx[n_test:]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    std = np.where(constant, 1.0, std)
    return _Split(train=(train - mean) / std, test=(test - mean) / std, n_val=n_val, constant=constant)


# ---------------------------------------------------------------------------------------------- linear


def _linear_predict(split: _Split) -> np.ndarray:
    """OLS of every dimension on the others, by least squares (exact also when codes are collinear)."""
    x, d = split.train, split.train.shape[1]  # mean 0 after standardization, so no intercept
    pred = np.empty_like(split.test)
    for i in range(d):
        others = np.arange(d) != i
        coef, *_ = np.linalg.lstsq(x[:, others], x[:, i], rcond=None)
        pred[:, i] = split.test[:, others] @ coef
    return pred


# ---------------------------------------------------------------------------------------------- mlp


class _BatchedMLP(torch.nn.Module):
    """d one-hidden-layer regressors in one module; predictor i never sees input column i.

    The first layer of the predictors in use is one matrix [d_in, t * h] (entries from input i to predictor
    i masked to zero), so the forward pass is one GEMM; the output layer is a batched dot product. The output
    layer starts at zero: at epoch 0 every predictor is the constant train mean.
    """

    def __init__(self, dim: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / max(dim - 1, 1) ** 0.5
        self.w1 = torch.nn.Parameter((torch.rand(dim, dim, hidden, generator=generator) * 2 - 1) * bound)
        self.b1 = torch.nn.Parameter((torch.rand(dim, hidden, generator=generator) * 2 - 1) * bound)
        self.w2 = torch.nn.Parameter(torch.zeros(dim, hidden))
        self.b2 = torch.nn.Parameter(torch.zeros(dim))
        self.register_buffer("mask", (1.0 - torch.eye(dim))[:, :, None])

    def forward(self, x: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        """Predictions [n, len(dims)] of the predictors `dims` (int64) from `x` [n, d]."""
        d, t, h = x.shape[1], len(dims), self.w2.shape[1]
        w1 = (self.w1[:, dims] * self.mask[:, dims]).reshape(d, t * h)
        hid = torch.relu(x @ w1 + self.b1[dims].reshape(t * h))
        return (hid.reshape(len(x), t, h) * self.w2[dims]).sum(dim=2) + self.b2[dims]

    def copy_dims_from(self, other: _BatchedMLP, dims: torch.Tensor) -> None:
        """Copy the parameters of predictors `dims` (int64) from `other`."""
        with torch.no_grad():
            self.w1[:, dims] = other.w1[:, dims]
            for name in ("b1", "w2", "b2"):
                getattr(self, name)[dims] = getattr(other, name)[dims]


class _MLPTrainer:
    """Adam on a `_BatchedMLP`, per-dimension early stopping, best-validation weights kept in `best`.

    A predictor whose validation MSE (in units of the train variance) has not improved by more than `tol`
    for `patience` epochs is done and drops out of the forward pass, so an epoch gets cheaper as predictors
    finish.
    """

    def __init__(self, dim: int, params: dict[str, Any], seed: int) -> None:
        self.params = params
        self.generator = torch.Generator().manual_seed(seed)
        self.model = _BatchedMLP(dim, params["hidden"], self.generator)
        self.best = copy.deepcopy(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=params["lr"],
                                          weight_decay=params["weight_decay"])
        self.use_model = torch.zeros(dim, dtype=torch.bool)

    def train(self, fit: torch.Tensor, val: torch.Tensor, max_epochs: int, patience: int) -> int:
        """Train up to `max_epochs` epochs from the current weights (the first candidates); returns the epochs."""
        dim = fit.shape[1]
        active = torch.arange(dim)
        self.best.load_state_dict(self.model.state_dict())
        best_val = self._val_mse(val, active)
        stale = torch.zeros(dim, dtype=torch.long)
        batch = self.params["batch_size"]
        epoch = 0
        while epoch < max_epochs and len(active):
            epoch += 1
            perm = torch.randperm(len(fit), generator=self.generator)
            for start in range(0, len(fit), batch):
                x = fit[perm[start:start + batch]]
                loss = ((self.model(x, active) - x[:, active]) ** 2).mean(dim=0).sum()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            mse = self._val_mse(val, active)
            better = mse < best_val[active] - self.params["tol"]
            self.best.copy_dims_from(self.model, active[better])
            best_val[active[better]] = mse[better]
            stale[active] = torch.where(better, 0, stale[active] + 1)
            active = active[stale[active] < patience]
        self.use_model = best_val < (val**2).mean(dim=0)  # else the constant train mean (0) is better
        self.model.load_state_dict(self.best.state_dict())  # a warm restart continues from the best weights
        return epoch

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.use_model, self.best(x, torch.arange(x.shape[1])), torch.zeros(()))

    @torch.no_grad()
    def _val_mse(self, val: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        return ((self.model(val, dims) - val[:, dims]) ** 2).mean(dim=0)


def _mlp_predict(split: _Split, params: dict[str, Any], seed: int, n_jobs: int) -> np.ndarray:
    with _torch_threads(n_jobs):
        trainer = _MLPTrainer(split.train.shape[1], params, seed)
        fit, val, test = (torch.as_tensor(a, dtype=torch.float32) for a in (split.fit, split.val, split.test))
        trainer.train(fit, val, params["max_epochs"], params["patience"])
        return trainer.predict(test).double().numpy()


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads (a process-wide setting, restored after)."""
    previous = torch.get_num_threads()
    if previous != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if previous != n:
            torch.set_num_threads(previous)


class LPSEstimator:
    """Warm-started LPS-mlp for the live view: `update(codes)` continues the last call's predictors.

    The first call fits with early stopping; later calls run `warm_epochs` epochs from the kept weights
    (and Adam state), still keeping each predictor's best-validation weights. Pass codes of the same rows
    in the same order at every call: the split is drawn once from `seed`, so test rows stay held out.
    """

    def __init__(self, n: int = 4000, test_fraction: float = 0.2, val_fraction: float = 0.2, seed: int = 0,
                 warm_epochs: int = 3, n_jobs: int | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(MLP_DEFAULTS))
        if unknown:
            raise ValueError(f"LPSEstimator: unknown option(s) {unknown}; known: {sorted(MLP_DEFAULTS)}")
        self.params = {**MLP_DEFAULTS, **options}
        self.n, self.test_fraction, self.val_fraction, self.seed = n, test_fraction, val_fraction, seed
        self.warm_epochs = warm_epochs
        self.n_jobs = n_jobs or 1
        self._trainer: _MLPTrainer | None = None

    def update(self, codes: torch.Tensor | np.ndarray) -> LPSResult:
        """Per-dimension LPS of `codes` [N, d], refining the predictors kept from the previous call."""
        split = _split(codes, self.n, self.test_fraction, self.val_fraction, self.seed)
        dim = split.train.shape[1]
        with _torch_threads(self.n_jobs):
            if self._trainer is not None and self._trainer.model.w2.shape[0] != dim:
                raise ValueError(f"LPSEstimator: codes must keep d={self._trainer.model.w2.shape[0]}, got {dim}")
            warm = self._trainer is not None
            if not warm:
                self._trainer = _MLPTrainer(dim, self.params, self.seed)
            fit, val, test = (torch.as_tensor(a, dtype=torch.float32) for a in (split.fit, split.val, split.test))
            epochs = self.warm_epochs if warm else self.params["max_epochs"]
            ran = self._trainer.train(fit, val, epochs, self.params["patience"])
            pred = self._trainer.predict(test).double().numpy()
        settings = {"n": len(split.train) + len(split.test), "test_fraction": self.test_fraction,
                    "seed": self.seed, "val_fraction": self.val_fraction, "n_jobs": self.n_jobs,
                    "warm": warm, "epochs": ran, **self.params}
        return _result(split, pred, "mlp", settings)


# ---------------------------------------------------------------------------------------------- lgbm


def _lgbm_predict(split: _Split, params: dict[str, Any], seed: int, n_jobs: int) -> np.ndarray:
    """One LightGBM booster per dimension (early stopping on the validation part), `n_jobs` in parallel."""
    dim = split.train.shape[1]
    with ThreadPoolExecutor(max_workers=min(n_jobs, dim)) as pool:
        columns = list(pool.map(lambda i: _lgbm_one(split, i, params, seed), range(dim)))
    return np.stack(columns, axis=1)


def _lgbm_one(split: _Split, i: int, params: dict[str, Any], seed: int) -> np.ndarray:
    """Test-split predictions of dimension `i` from the others: a booster, or 0 (the train mean) where the booster
    is no better than it on the validation part."""
    booster_params = {
        "objective": "regression", "learning_rate": params["learning_rate"], "num_leaves": params["num_leaves"],
        "min_child_samples": params["min_child_samples"], "max_bin": params["max_bin"],
        "feature_fraction": params["feature_fraction"], "num_threads": 1,
        "seed": seed, "deterministic": True, "force_col_wise": True, "verbose": -1,
    }
    others = np.arange(split.train.shape[1]) != i
    fitted = _lgbm_early_stopped if params["rounds"] is None else _lgbm_refitted
    return fitted(split, i, others, booster_params, params)


def _lgbm_dataset(rows: np.ndarray, i: int, others: np.ndarray, max_bin: int, reference: Any = None) -> Any:
    import lightgbm as lgb

    return lgb.Dataset(rows[:, others], rows[:, i], params={"max_bin": max_bin, "verbose": -1}, reference=reference)


def _lgbm_early_stopped(split: _Split, i: int, others: np.ndarray, booster_params: dict[str, Any],
                        params: dict[str, Any]) -> np.ndarray:
    """The booster fitted on the fit part, early-stopped on the validation part."""
    import lightgbm as lgb

    fit_set = _lgbm_dataset(split.fit, i, others, params["max_bin"])
    val_set = _lgbm_dataset(split.val, i, others, params["max_bin"], reference=fit_set)
    booster = lgb.train(booster_params, fit_set, num_boost_round=params["max_rounds"], valid_sets=[val_set],
                        callbacks=[lgb.early_stopping(params["patience"], verbose=False, min_delta=params["tol"])])
    if booster.best_score["valid_0"]["l2"] >= np.mean(split.val[:, i] ** 2):  # the train mean (0) is as good
        return np.zeros(len(split.test))
    return booster.predict(split.test[:, others], num_iteration=booster.best_iteration)


def _lgbm_refitted(split: _Split, i: int, others: np.ndarray, booster_params: dict[str, Any],
                   params: dict[str, Any]) -> np.ndarray:
    """`rounds` rounds fitted on the whole train split, where that many fitted on the fit part beat the train mean
    on the validation part (the model chosen on held-out rows, then refitted on all of them)."""
    import lightgbm as lgb

    def booster(rows: np.ndarray) -> Any:
        data = _lgbm_dataset(rows, i, others, params["max_bin"])
        return lgb.train(booster_params, data, num_boost_round=params["rounds"])

    val_mse = np.mean((booster(split.fit).predict(split.val[:, others]) - split.val[:, i]) ** 2)
    if val_mse >= np.mean(split.val[:, i] ** 2):
        return np.zeros(len(split.test))
    return booster(split.train).predict(split.test[:, others])
