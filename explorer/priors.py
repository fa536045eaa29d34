"""Programmable latent priors: the target distributions an AE-MMD run matches (docs/method.md, "Priors").

Every prior draws float32 codes ``[n, dim]`` on the CPU from an optional ``torch.Generator``, serializes
to a JSON-able dict (``to_dict`` / ``from_dict``, an exact round trip: parameters are kept as float64 and
written as Python floats) and gives its density where it has a closed form (``log_prob``, ``marginal_pdf``).

Families: ``Gaussian``, ``Uniform``, ``Laplace``, ``GaussianMixture`` (per-dimension or joint), ``Empirical``
(resampled codes), ``SketchedPoints`` / ``SketchedDensity`` (drawn priors, built with
``Sketched.from_points`` and ``Sketched.from_density``) and ``Product`` (the paper's hybrid prior: blocks of
dimensions, each with its own prior).
Invalid parameters raise ``ValueError`` naming the parameter and the bad value, e.g.
"Uniform: low must be < high, got low=2.0, high=1.0 (dimension 0)".

A family declares its per-dimension parameters once, as `Param`s in ``params`` (name, default, the editor's range
and scale, constraint): `Factorized` families (independent dimensions; Gaussian, Uniform, Laplace) get their
validation, ``to_dict`` / ``from_dict`` and constructor from it, and the prior editor and the command line's
``--prior`` help list them from it. A subclass that sets ``family`` is registered (`families`, `from_dict`).
"""

from __future__ import annotations

import math
import operator
import reprlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.distributions import Laplace as _TorchLaplace
from torch.distributions import MultivariateNormal, Normal

from explorer.config import integer
from explorer.registry import Registry

__all__ = [
    "Empirical",
    "Factorized",
    "Gaussian",
    "GaussianMixture",
    "Laplace",
    "Param",
    "Prior",
    "Product",
    "Sketched",
    "SketchedDensity",
    "SketchedPoints",
    "Uniform",
    "dsprites_hybrid",
    "families",
    "from_dict",
    "standard_normal",
]

_F64 = torch.float64  # parameters and density arithmetic; random draws are float32 (the output precision)
# |parameter| bound: float32 samples of the prior, and the squared distances MMD takes between them (a few hundred
# times a scale squared, summed over dimensions), stay finite: float32 ends at 3.4e38
_MAGNITUDE_LIMIT = 1e15
_NORMALIZED_TOL = 1e-12  # weights / densities this close to a total of 1 are kept as given (exact round trip)
_FAMILIES: Registry[type[Prior]] = Registry("prior family")  # family name -> class, filled by defining one
_REPR = reprlib.Repr()
_REPR.maxlist = 6
_REPR.maxlevel = 4


# ----------------------------------------------------------------------------------------------- validation


def _shown(value: float) -> str:
    """``value`` as typed: 12 significant digits, so float noise (1.0000000000000002) does not show."""
    return repr(float(f"{value:.12g}"))


def _locate(t: Tensor, bad: Tensor, axes: Sequence[str]) -> str:
    """The first flagged value of ``t`` and where it is, e.g. "-1.0 (dimension 2)"; the dimension of a 1-D prior is
    not named (its "dimension 0" says nothing; the editor names the latent dimension itself)."""
    idx = tuple(int(i) for i in bad.nonzero()[0])
    where = ", ".join(f"{axis} {i}" for axis, i, size in zip(axes, idx, t.shape, strict=False)
                      if size > 1 or axis != "dimension")
    return f"{_shown(t[idx].item())} ({where})" if where else _shown(t[idx].item())


def _tensor(family: str, name: str, value: Any, axes: Sequence[str] = ("dimension",)) -> Tensor:
    """``value`` as a float64 tensor (a copy), rejecting non-numbers, NaN and inf."""
    if isinstance(value, Tensor):
        value = value.detach().cpu()
    try:
        t = torch.as_tensor(value, dtype=_F64).clone()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{family}: {name} must be numeric, got {value!r}") from exc
    bad = ~torch.isfinite(t)
    if bad.any():
        raise ValueError(f"{family}: {name} must be finite, got {_locate(t, bad, axes)}")
    bad = t.abs() > _MAGNITUDE_LIMIT
    if bad.any():
        raise ValueError(f"{family}: {name} must be at most {_MAGNITUDE_LIMIT:.0e} in magnitude (its float32 samples "
                         f"and their squared distances must stay finite), got {_locate(t, bad, axes)}")
    return t


def _as_int(value: Any) -> int | None:
    """``value`` as an int (Python or numpy integer, not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_dim(family: str, dim: Any) -> int:
    return integer()(family, "dim", dim)


def _per_dim(family: str, name: str, value: Any, dim: int) -> Tensor:
    """A scalar broadcast to ``[dim]``, or a sequence of length ``dim``."""
    t = _tensor(family, name, value)
    if t.ndim == 0:
        return t.expand(dim).clone()
    if t.shape != (dim,):
        raise ValueError(f"{family}: {name} must be a scalar or have length {dim}, got shape {list(t.shape)}")
    return t


def _positive(family: str, name: str, t: Tensor, axes: Sequence[str] = ("dimension",)) -> Tensor:
    bad = t <= 0
    if bad.any():
        raise ValueError(f"{family}: {name} must be > 0, got {_locate(t, bad, axes)}")
    return t


def _non_negative(family: str, name: str, t: Tensor, axes: Sequence[str]) -> Tensor:
    bad = t < 0
    if bad.any():
        raise ValueError(f"{family}: {name} must be >= 0, got {_locate(t, bad, axes)}")
    return t


def _unit(values: Tensor, total: Tensor) -> Tensor:
    """``values / total``, or ``values`` unchanged when already normalized (so normalizing twice is exact)."""
    return values if bool(((total - 1).abs() <= _NORMALIZED_TOL).all()) else values / total


def _rows(family: str, name: str, value: Any) -> Tensor:
    """A non-empty 2-D array ``[n, dim]`` (codes, points)."""
    t = _tensor(family, name, value, axes=("row", "column"))
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{family}: {name} must be a non-empty 2-D array [n, dim], "
                         f"got shape {list(t.shape)}")
    return t


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x; zero outside [xp[0], xp[-1]]."""
    k = (torch.searchsorted(xp, x, right=True) - 1).clamp(0, len(xp) - 2)
    t = (x - xp[k]) / (xp[k + 1] - xp[k])
    inside = (x >= xp[0]) & (x <= xp[-1])
    return torch.where(inside, fp[k] + t * (fp[k + 1] - fp[k]), torch.zeros_like(x))


@dataclass(frozen=True)
class Param:
    """A per-dimension parameter of a family: a scalar (broadcast) or one value per dimension.

    ``low``/``high`` and ``scale`` shape the prior editor's slider (its text box takes any value);
    ``constraint`` is what every value must satisfy.
    """

    name: str
    default: float
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"
    constraint: Literal["any", "positive"] = "any"
    label: str = ""  # the editor's text; the name if empty

    def check(self, family: str, value: Any, dim: int) -> Tensor:
        """``value`` as a float64 ``[dim]`` tensor, or ValueError naming the family, parameter, value and dimension."""
        t = _per_dim(family, self.name, value, dim)
        return _positive(family, self.name, t) if self.constraint == "positive" else t


# ----------------------------------------------------------------------------------------------- base class


class Prior(ABC):
    """A distribution over codes ``[n, dim]``. Equal priors have equal ``to_dict()``."""

    family: ClassVar[str]
    label: ClassVar[str] = ""  # the editor's name of the family; the class name if empty
    params: ClassVar[tuple[Param, ...]] = ()  # per-dimension parameters the editor sets with sliders
    dim: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            _FAMILIES.register(cls.family, cls)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes, float32 ``[n, dim]`` on the CPU, drawn from ``generator`` (torch's global if None)."""
        n = integer(0)(self._name, "n", n)
        return self._draw(n, generator).to(torch.float32)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density at each row of ``z`` ``[n, dim]`` -> ``[n]``, in z's dtype (float32 if not float)."""
        z = torch.as_tensor(z)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"{self._name}: z must have shape [n, {self.dim}], got {list(z.shape)}")
        out = self._log_prob(z.to("cpu", _F64))
        return out.to(z.device, z.dtype if z.is_floating_point() else torch.float32)

    def marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        """Density of dimension ``i`` at each point of a 1-D ``grid``, in its dtype (float32 if not float)."""
        grid = torch.as_tensor(grid)
        if _as_int(i) is None or not 0 <= i < self.dim:
            raise ValueError(f"{self._name}: i must be a dimension in 0..{self.dim - 1}, got {i!r}")
        if grid.ndim != 1:
            raise ValueError(f"{self._name}: grid must be 1-D, got shape {list(grid.shape)}")
        pdf = self._marginal_pdf(i, grid.to("cpu", _F64))
        return pdf.to(grid.device, grid.dtype if grid.is_floating_point() else torch.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able parameters, ``{"family": ..., ...}``; ``from_dict`` rebuilds an equal prior."""
        return {"family": self.family, **self._params()}

    @abstractmethod
    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor: ...

    @abstractmethod
    def _params(self) -> dict[str, Any]: ...

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> Prior:
        return cls(**params)

    @classmethod
    def from_columns(cls, dim: int, **columns: Any) -> Prior:
        """The prior whose declared ``params`` have these per-dimension values (what the editor's sliders set)."""
        return cls(dim, **columns)

    def columns(self) -> dict[str, Tensor] | None:
        """The per-dimension values of the declared ``params``, or None where this prior has no such form."""
        return {p.name: getattr(self, p.name) for p in self.params} if self.params else None

    def _log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError(f"{self._name}: log_prob has no closed form here; use samples")

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        raise NotImplementedError(f"{self._name}: marginal_pdf has no closed form here; use samples")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prior):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal-by-value and holds tensors

    def __repr__(self) -> str:
        return f"{self._name}({', '.join(f'{k}={_REPR.repr(v)}' for k, v in self._params().items())})"


def families() -> dict[str, type[Prior]]:
    """The registered families by name, in the order they were defined (user families last)."""
    return dict(_FAMILIES)


def from_dict(d: dict[str, Any]) -> Prior:
    """Rebuild a prior from ``Prior.to_dict()`` output (nested Product blocks included)."""
    if not isinstance(d, dict) or "family" not in d:
        raise ValueError(f"from_dict: expected a dict with a 'family' key, got {_REPR.repr(d)}")
    params = dict(d)
    family = params.pop("family")
    if family not in _FAMILIES:
        raise ValueError(f"from_dict: unknown prior family {family!r}, known: {', '.join(_FAMILIES)}")
    try:
        return _FAMILIES[family]._from_params(params)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"from_dict: bad parameters for family {family!r}: {exc}") from exc


# ----------------------------------------------------------------------------------------------- families


class Factorized(Prior):
    """Independent dimensions, each described by the values of the declared ``params`` (see `Param`).

    Built as ``Family(dim, *values, **named)``: values in the order of ``params``, missing ones at their default;
    each stored as a float64 ``[dim]`` tensor attribute of the parameter's name. Subclasses set ``family`` and
    ``params``, implement ``_draw`` (and ``_log_prob`` / ``_marginal_pdf`` where they have a closed form), and
    may add a cross-parameter check in ``_check``.
    """

    def __init__(self, dim: int, *values: Any, **named: Any) -> None:
        names = [p.name for p in self.params]
        if len(values) > len(names):
            raise ValueError(f"{self._name}: takes {len(names)} parameters after dim ({', '.join(names)}), "
                             f"got {len(values)}")
        given = dict(zip(names, values, strict=False))
        for key in named:
            if key not in names or key in given:
                raise ValueError(f"{self._name}: parameter {key!r} " + ("given twice" if key in given else
                                 f"is unknown; parameters are {names}"))
        given.update(named)
        self.dim = _check_dim(self._name, dim)
        for p in self.params:
            setattr(self, p.name, p.check(self._name, given.get(p.name, p.default), self.dim))
        self._check()

    def _check(self) -> None:
        """Constraints between parameters (the declared ones are checked already)."""

    def _params(self) -> dict[str, Any]:
        return {"dim": self.dim, **{p.name: getattr(self, p.name).tolist() for p in self.params}}


_SPREAD = {"low": 0.05, "high": 5.0, "scale": "log", "constraint": "positive"}  # a std-like parameter


class Gaussian(Factorized):
    """Normal prior: independent N(mean_j, std_j^2) per dimension, or N(mean, cov) with a full covariance.

    ``mean`` and ``std`` are scalars or length-``dim`` sequences; ``cov`` is a symmetric positive definite
    ``[dim, dim]`` matrix and replaces ``std``.
    to_dict: ``{"family": "gaussian", "dim": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]}``
    (or ``"cov": [[...], ...]`` instead of ``"std"``).
    """

    family = "gaussian"
    params = (Param("mean", 0.0, -10.0, 10.0), Param("std", 1.0, **_SPREAD))

    def __init__(self, dim: int, *values: Any, cov: Any = None, **named: Any) -> None:
        if cov is not None and (len(values) > 1 or "std" in named):
            raise ValueError(f"Gaussian: give std or cov, not both, got std={named.get('std', values[1:])!r} "
                             "and a cov")
        super().__init__(dim, *values, **named)
        self.cov: Tensor | None = None
        self._scale_tril: Tensor | None = None
        if cov is None:
            return
        self.cov = c = _tensor("Gaussian", "cov", cov, axes=("row", "column"))
        if c.shape != (self.dim, self.dim):
            raise ValueError(f"Gaussian: cov must have shape [{self.dim}, {self.dim}], got {list(c.shape)}")
        asym = (c - c.T).abs() > 1e-8 * c.abs().max() + 1e-12
        if asym.any():
            raise ValueError(f"Gaussian: cov must be symmetric, got {_locate(c, asym, ('row', 'column'))}")
        sym = (c + c.T) / 2
        tril, info = torch.linalg.cholesky_ex(sym)
        if info != 0:
            lowest = torch.linalg.eigvalsh(sym)[0].item()
            raise ValueError(f"Gaussian: cov must be positive definite, got smallest eigenvalue {lowest!r}")
        self._scale_tril = tril
        self.std = sym.diagonal().sqrt()

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator)
        if self._scale_tril is None:
            return self.mean + self.std * eps
        return self.mean + eps.to(_F64) @ self._scale_tril.T

    def _log_prob(self, z: Tensor) -> Tensor:
        if self._scale_tril is None:
            return Normal(self.mean, self.std).log_prob(z).sum(-1)
        return MultivariateNormal(self.mean, scale_tril=self._scale_tril).log_prob(z)

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        return Normal(self.mean[i], self.std[i]).log_prob(grid).exp()

    def columns(self) -> dict[str, Tensor] | None:
        return super().columns() if self.cov is None else None

    def _params(self) -> dict[str, Any]:
        if self.cov is None:
            return super()._params()
        return {"dim": self.dim, "mean": self.mean.tolist(), "cov": self.cov.tolist()}


def standard_normal(dim: int) -> Gaussian:
    """N(0, I) in ``dim`` dimensions (the paper's main prior)."""
    return Gaussian(dim)


class Uniform(Factorized):
    """Independent U(low_j, high_j) per dimension; ``low``/``high`` scalars or length-``dim`` sequences.

    to_dict: ``{"family": "uniform", "dim": 1, "low": [-5.0], "high": [5.0]}``.
    """

    family = "uniform"
    params = (Param("low", -1.0, -10.0, 10.0), Param("high", 1.0, -10.0, 10.0))

    def _check(self) -> None:
        bad = self.low >= self.high
        if bad.any():
            j = int(bad.nonzero()[0, 0])
            where = f" (dimension {j})" if self.dim > 1 else ""
            raise ValueError(f"Uniform: low must be < high, got low={_shown(self.low[j].item())}, "
                             f"high={_shown(self.high[j].item())}{where}")

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.low + (self.high - self.low) * torch.rand(n, self.dim, generator=generator)

    def _log_prob(self, z: Tensor) -> Tensor:
        inside = ((z >= self.low) & (z <= self.high)).all(-1)
        return torch.where(inside, -(self.high - self.low).log().sum(), -math.inf)

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        inside = (grid >= self.low[i]) & (grid <= self.high[i])
        return torch.where(inside, 1 / (self.high[i] - self.low[i]), 0.0)


class Laplace(Factorized):
    """Independent Laplace(loc_j, scale_j) per dimension (variance 2 scale^2).

    to_dict: ``{"family": "laplace", "dim": 2, "loc": [0.0, 0.0], "scale": [1.0, 1.0]}``.
    """

    family = "laplace"
    params = (Param("loc", 0.0, -10.0, 10.0), Param("scale", 1.0, **_SPREAD))

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        # the difference of two Exp(1) variables is Laplace(0, 1)
        e = torch.empty(2, n, self.dim).exponential_(generator=generator)
        return self.loc + self.scale * (e[0] - e[1])

    def _log_prob(self, z: Tensor) -> Tensor:
        return _TorchLaplace(self.loc, self.scale).log_prob(z).sum(-1)

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        return _TorchLaplace(self.loc[i], self.scale[i]).log_prob(grid).exp()


class GaussianMixture(Prior):
    """Mixture of K diagonal Gaussians, per dimension (``joint=False``) or jointly (``joint=True``).

    - ``means``: ``[K]`` (the same component means in each of ``dim`` dimensions; ``dim`` defaults to 1) or
      ``[K, dim]`` (column j: the means of dimension j).
    - ``stds``: scalar, ``[K]`` (one per component) or ``[K, dim]``; all > 0.
    - ``weights``: None (equal), ``[K]`` or, per dimension only, ``[K, dim]`` (one mixture per column); >= 0,
      normalized to sum 1.
    - ``joint=False``: every dimension is an independent 1-D K-component mixture (the paper's bimodal
      marginals: ``GaussianMixture([-5, 5], 5.0)``). ``joint=True``: one component is drawn per sample and
      shared by all dimensions (``GaussianMixture([[0, 0], [3, 3]], 0.5, joint=True)``).

    to_dict (always ``[K, dim]`` means and stds): ``{"family": "gaussian_mixture", "joint": False,
    "means": [[-5.0], [5.0]], "stds": [[5.0], [5.0]], "weights": [[0.5], [0.5]]}`` (joint: weights ``[K]``).
    """

    family = "gaussian_mixture"
    label = "Gaussian mixture (two modes)"
    # the editor's view: per dimension, two modes with one std (the paper's bimodal marginals)
    params = (Param("mode1", -2.0, -10.0, 10.0, label="mode 1"), Param("mode2", 2.0, -10.0, 10.0, label="mode 2"),
              Param("mode_std", 0.5, **_SPREAD, label="mode std"), Param("weight", 0.5, 0.0, 1.0, label="weight 1"))
    _AXES = ("component", "dimension")

    def __init__(self, means: Any, stds: Any = 1.0, weights: Any = None, *, dim: int | None = None,
                 joint: bool = False) -> None:
        means_t = _tensor("GaussianMixture", "means", means, self._AXES)
        if means_t.ndim not in (1, 2) or means_t.numel() == 0:
            raise ValueError(f"GaussianMixture: means must be a non-empty [K] or [K, dim] array, "
                             f"got shape {list(means_t.shape)}")
        if means_t.ndim == 2 and dim is not None and _check_dim("GaussianMixture", dim) != means_t.shape[1]:
            raise ValueError(f"GaussianMixture: dim must equal the {means_t.shape[1]} columns of means, "
                             f"got {dim!r}")
        self.joint = bool(joint)
        if means_t.ndim == 2:
            self.dim = means_t.shape[1]
        else:
            self.dim = _check_dim("GaussianMixture", 1 if dim is None else dim)
        k = means_t.shape[0]
        self.means = self._components("means", means_t, k)
        self.stds = _positive("GaussianMixture", "stds", self._components("stds", stds, k), self._AXES)
        self.weights = self._weights(weights, k)  # [K, 1] joint, [K, dim] per dimension
        self._cdf = (self.weights.cumsum(0) / self.weights.sum(0)).T.contiguous()  # [columns, K]

    @classmethod
    def from_columns(cls, dim: int, **columns: Any) -> GaussianMixture:
        """Per dimension j: modes ``mode1[j]``, ``mode2[j]``, std ``mode_std[j]``, weights ``weight[j]``, 1 - it."""
        c = {p.name: p.check("GaussianMixture", columns.get(p.name, p.default), dim) for p in cls.params}
        outside = (c["weight"] < 0) | (c["weight"] > 1)
        if outside.any():  # the second weight is 1 - it: report the value given, not that one
            shown = _locate(c["weight"], outside, ("dimension",))
            raise ValueError(f"GaussianMixture: weight must be in [0, 1], got {shown}")
        return cls(torch.stack([c["mode1"], c["mode2"]]), c["mode_std"].expand(2, dim),
                   torch.stack([c["weight"], 1 - c["weight"]]))

    def columns(self) -> dict[str, Tensor] | None:
        if self.joint or len(self.means) != 2 or not torch.equal(self.stds[0], self.stds[1]):
            return None
        return {"mode1": self.means[0], "mode2": self.means[1], "mode_std": self.stds[0], "weight": self.weights[0]}

    def _components(self, name: str, value: Any, k: int) -> Tensor:
        t = _tensor("GaussianMixture", name, value, self._AXES)
        if t.ndim == 0 or t.shape == (k,):
            return t.reshape(-1, 1).expand(k, self.dim).clone()
        if t.shape == (k, self.dim):
            return t
        raise ValueError(f"GaussianMixture: {name} must be a scalar, length {k} (one per component) or shape "
                         f"[{k}, {self.dim}], got shape {list(t.shape)}")

    def _weights(self, weights: Any, k: int) -> Tensor:
        columns = 1 if self.joint else self.dim
        if weights is None:
            w = torch.ones(k, 1, dtype=_F64)
        else:
            w = _tensor("GaussianMixture", "weights", weights, self._AXES)
        if w.shape == (k,):
            w = w[:, None]
        if w.shape[1:] == (1,):
            w = w.expand(k, columns).clone()
        if w.shape != (k, columns):
            allowed = f"[{k}]" if self.joint else f"[{k}] or [{k}, {self.dim}]"
            raise ValueError(f"GaussianMixture: weights must have shape {allowed}, got {list(w.shape)}")
        _non_negative("GaussianMixture", "weights", w, self._AXES)
        total = w.sum(0)
        if (total <= 0).any():
            j = int((total <= 0).nonzero()[0, 0])
            raise ValueError(f"GaussianMixture: weights must not all be zero, got {w[:, j].tolist()}"
                             + ("" if self.joint else f" (dimension {j})"))
        return _unit(w, total)

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(n, self._cdf.shape[0], 1, generator=generator)
        k = (u >= self._cdf[:, :-1]).sum(-1).expand(n, self.dim)  # component index per sample (and dimension)
        cols = torch.arange(self.dim)
        eps = torch.randn(n, self.dim, generator=generator)
        return self.means[k, cols] + self.stds[k, cols] * eps

    def _log_prob(self, z: Tensor) -> Tensor:
        lp = Normal(self.means, self.stds).log_prob(z[:, None, :])  # [n, K, dim]
        log_w = self.weights.log()
        if self.joint:
            return torch.logsumexp(lp.sum(-1) + log_w[:, 0], dim=1)
        return torch.logsumexp(lp + log_w, dim=1).sum(-1)

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        w = self.weights[:, 0 if self.joint else i]
        return (w * Normal(self.means[:, i], self.stds[:, i]).log_prob(grid[:, None]).exp()).sum(-1)

    def _params(self) -> dict[str, Any]:
        weights = self.weights[:, 0] if self.joint else self.weights
        return {"joint": self.joint, "means": self.means.tolist(), "stds": self.stds.tolist(),
                "weights": weights.tolist()}


class Empirical(Prior):
    """Rows of saved codes ``[N, dim]`` resampled uniformly with replacement ("latent copying").

    No density (a discrete distribution). to_dict: ``{"family": "empirical", "codes": [[0.1, -2.0], ...]}``.
    """

    family = "empirical"

    def __init__(self, codes: Any) -> None:
        self.codes = _rows("Empirical", "codes", codes)
        self.dim = self.codes.shape[1]

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.codes[torch.randint(len(self.codes), (n,), generator=generator)]

    def _params(self) -> dict[str, Any]:
        return {"codes": self.codes.tolist()}


class Sketched(Prior):
    """Drawn priors: ``from_points`` (a Gaussian KDE over drawn points) or ``from_density`` (a 1-D curve)."""

    @staticmethod
    def from_points(points: Any, bandwidth: Any = None) -> SketchedPoints:
        """A Gaussian KDE over ``points`` ``[N, dim]``; ``bandwidth`` per dimension, Scott's rule if None."""
        return SketchedPoints(points, bandwidth)

    @staticmethod
    def from_density(grid: Any, density: Any) -> SketchedDensity:
        """A 1-D prior with density ``density`` (>= 0), linearly interpolated on the increasing ``grid``."""
        return SketchedDensity(grid, density)


class SketchedPoints(Sketched):
    """Gaussian KDE: a drawn point chosen uniformly, plus N(0, diag(bandwidth^2)) jitter.

    Scott's rule (when ``bandwidth`` is None): std_j(points) * N^(-1/(dim+4)), fixed at construction.
    to_dict: ``{"family": "sketched_points", "points": [[x, y], ...], "bandwidth": [h_x, h_y]}``.
    """

    family = "sketched_points"

    def __init__(self, points: Any, bandwidth: Any = None) -> None:
        self.points = _rows("SketchedPoints", "points", points)
        n, self.dim = self.points.shape
        if bandwidth is None:
            bandwidth = self.points.std(0, correction=1 if n > 1 else 0) * n ** (-1 / (self.dim + 4))
        bw = _per_dim("SketchedPoints", "bandwidth", bandwidth, self.dim)
        self.bandwidth = _positive("SketchedPoints", "bandwidth", bw)

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        centers = self.points[torch.randint(len(self.points), (n,), generator=generator)]
        return centers + self.bandwidth * torch.randn(n, self.dim, generator=generator)

    def _log_prob(self, z: Tensor) -> Tensor:
        lp = Normal(self.points, self.bandwidth).log_prob(z[:, None, :]).sum(-1)  # [n, N]
        return torch.logsumexp(lp, dim=1) - math.log(len(self.points))

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        return Normal(self.points[:, i], self.bandwidth[i]).log_prob(grid[:, None]).exp().mean(-1)

    def _params(self) -> dict[str, Any]:
        return {"points": self.points.tolist(), "bandwidth": self.bandwidth.tolist()}


class SketchedDensity(Sketched):
    """A 1-D prior with a piecewise-linear density through (grid, density), normalized to integrate to 1.

    Sampled by the exact inverse CDF (piecewise quadratic). to_dict: ``{"family": "sketched_density",
    "grid": [0.0, 1.0, 2.0], "density": [0.0, 1.0, 0.0]}`` (density stored normalized).
    """

    family = "sketched_density"
    label = "Sketched density (draw it)"

    def __init__(self, grid: Any, density: Any) -> None:
        self.dim = 1
        self.grid = _tensor("SketchedDensity", "grid", grid, ("point",))
        if self.grid.ndim != 1 or len(self.grid) < 2:
            raise ValueError(f"SketchedDensity: grid must be 1-D with at least 2 points, got shape "
                             f"{list(self.grid.shape)}")
        steps = self.grid.diff()
        if (steps <= 0).any():
            j = int((steps <= 0).nonzero()[0, 0]) + 1
            raise ValueError(f"SketchedDensity: grid must be strictly increasing, got "
                             f"{self.grid[j].item()!r} after {self.grid[j - 1].item()!r} (point {j})")
        density_t = _tensor("SketchedDensity", "density", density, ("point",))
        if density_t.shape != self.grid.shape:
            raise ValueError(f"SketchedDensity: density must have the grid's shape {list(self.grid.shape)}, "
                             f"got {list(density_t.shape)}")
        _non_negative("SketchedDensity", "density", density_t, ("point",))
        masses = steps * (density_t[1:] + density_t[:-1]) / 2
        if masses.sum() <= 0:
            raise ValueError("SketchedDensity: density must be > 0 somewhere, got all zeros")
        self.density = _unit(density_t, masses.sum())
        self._pdf = density_t / masses.sum()
        self._cdf = torch.cat([torch.zeros(1, dtype=_F64), (masses / masses.sum()).cumsum(0)])

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(n, 1, dtype=_F64, generator=generator)
        k = (torch.searchsorted(self._cdf, u, right=True) - 1).clamp(0, len(self.grid) - 2)
        r = u - self._cdf[k]  # mass to cover inside segment k, where the density is f0 + slope * t
        f0, dx = self._pdf[k], self.grid[k + 1] - self.grid[k]
        slope = (self._pdf[k + 1] - f0) / dx
        # t solves f0 t + slope t^2 / 2 = r; this form of the root is stable for slope -> 0
        denom = f0 + (f0**2 + 2 * slope * r).clamp_min(0).sqrt()
        t = torch.where(denom > 0, 2 * r / denom.clamp_min(1e-300), 0.0)
        return self.grid[k] + torch.minimum(t, dx)

    def _log_prob(self, z: Tensor) -> Tensor:
        return _interp(z[:, 0], self.grid, self._pdf).log()

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        return _interp(grid, self.grid, self._pdf)

    def _params(self) -> dict[str, Any]:
        return {"grid": self.grid.tolist(), "density": self.density.tolist()}


class Product(Prior):
    """The hybrid prior: independent blocks ``[(dims, prior), ...]``, dims covering 0..d-1 exactly once.

    Block priors may be any prior, Products included; ``prior.dim == len(dims)``, and ``dims[j]`` is where
    the block's dimension j goes.
    to_dict: ``{"family": "product", "blocks": [{"dims": [0], "prior": {"family": ...}}, ...]}``.
    """

    family = "product"

    def __init__(self, blocks: Sequence[tuple[Sequence[int], Prior]]) -> None:
        if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Sequence) or not blocks:
            raise ValueError(f"Product: blocks must be a non-empty list of (dims, prior), "
                             f"got {_REPR.repr(blocks)}")
        self.blocks = [self._block(b, block) for b, block in enumerate(blocks)]
        covered = [j for dims, _ in self.blocks for j in dims]
        self.dim = len(covered)
        rule = f"Product: dims must cover 0..{self.dim - 1} exactly once, got dimension"
        owner: dict[int, tuple[int, int]] = {}
        for b, (dims, _) in enumerate(self.blocks):
            for local, j in enumerate(dims):
                if j in owner:
                    raise ValueError(f"{rule} {j} in blocks {owner[j][0]} and {b}")
                if not 0 <= j < self.dim:
                    missing = sorted(set(range(self.dim)) - set(covered))
                    raise ValueError(f"{rule} {j} (block {b}); dimensions {missing} are not covered")
                owner[j] = (b, local)
        self._owner = owner
        self._index = [torch.tensor(dims) for dims, _ in self.blocks]

    @staticmethod
    def _block(b: int, block: Any) -> tuple[tuple[int, ...], Prior]:
        try:
            dims, prior = block
            dims = tuple(operator.index(j) for j in dims)
        except (TypeError, ValueError):
            raise ValueError(f"Product: block {b} must be (dims, prior) with integer dims, got "
                             f"{_REPR.repr(block)}") from None
        if not isinstance(prior, Prior):
            raise ValueError(f"Product: block {b} prior must be a Prior, got {_REPR.repr(prior)}")
        if prior.dim != len(dims):
            raise ValueError(f"Product: block {b} has {len(dims)} dims {list(dims)} "
                             f"but its prior has dim {prior.dim}")
        return dims, prior

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        z = torch.empty(n, self.dim)
        for index, (_, prior) in zip(self._index, self.blocks, strict=True):
            z[:, index] = prior.sample(n, generator)
        return z

    def _log_prob(self, z: Tensor) -> Tensor:
        parts = zip(self._index, self.blocks, strict=True)
        return sum(prior.log_prob(z[:, index]) for index, (_, prior) in parts)

    def _marginal_pdf(self, i: int, grid: Tensor) -> Tensor:
        b, local = self._owner[i]
        return self.blocks[b][1].marginal_pdf(local, grid)

    def _params(self) -> dict[str, Any]:
        return {"blocks": [{"dims": list(dims), "prior": prior.to_dict()} for dims, prior in self.blocks]}

    @classmethod
    def _from_params(cls, params: dict[str, Any]) -> Prior:
        return cls([(block["dims"], from_dict(block["prior"])) for block in params.pop("blocks")], **params)


def dsprites_hybrid() -> Product:
    """The paper's dSprites hybrid prior (d=5): U(-5, 5), N(0, 2^2), bimodal GMM (modes +-5, std 5) and two
    bimodal GMMs (modes +-10, std 1), one per dimension in that order."""
    return Product([
        ([0], Uniform(1, -5.0, 5.0)),
        ([1], Gaussian(1, 0.0, 2.0)),
        ([2], GaussianMixture([-5.0, 5.0], 5.0)),
        ([3], GaussianMixture([-10.0, 10.0], 1.0)),
        ([4], GaussianMixture([-10.0, 10.0], 1.0)),
    ])
