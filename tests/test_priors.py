"""Tests of explorer.priors: sampling moments, exact serialization, validation messages and densities."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from explorer.priors import (
    Empirical,
    Gaussian,
    GaussianMixture,
    Laplace,
    Prior,
    Product,
    Sketched,
    SketchedDensity,
    SketchedPoints,
    Uniform,
    dsprites_hybrid,
    from_dict,
    standard_normal,
)

N = 20_000
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_moments(z: torch.Tensor, mean, var, sigmas: float = 6.0) -> None:
    """Sample mean and variance per column within `sigmas` standard errors of the analytic values."""
    z = z.double()
    mean, var = (torch.from_numpy(np.array(a, dtype=np.float64)) for a in (mean, var))
    m = z.mean(0)
    centered = z - m
    v = centered.pow(2).mean(0)
    m4 = centered.pow(4).mean(0)
    assert ((m - mean).abs() <= sigmas * (var / len(z)).sqrt()).all(), (m, mean)
    assert ((v - var).abs() <= sigmas * ((m4 - v**2) / len(z)).sqrt() + 1e-12).all(), (v, var)


def mixture_moments(means, stds, weights):
    """Mean and variance of a 1-D Gaussian mixture."""
    means, stds, weights = (np.asarray(a, dtype=float) for a in (means, stds, weights))
    weights = weights / weights.sum()
    mean = (weights * means).sum()
    return mean, (weights * (stds**2 + means**2)).sum() - mean**2


EXAMPLES = {
    "gaussian": lambda: Gaussian(3, mean=[0.0, 1.0, -2.0], std=[1.0, 0.5, 2.0]),
    "gaussian_cov": lambda: Gaussian(2, mean=[1.0, -1.0], cov=[[2.0, 0.8], [0.8, 1.0]]),
    "uniform": lambda: Uniform(2, low=[-5.0, 0.0], high=[5.0, 0.5]),
    "laplace": lambda: Laplace(2, loc=[0.0, 3.0], scale=[1.0, 0.5]),
    "gmm": lambda: GaussianMixture([-5.0, 5.0], 5.0),
    "gmm_per_dim": lambda: GaussianMixture([[-3.0, 0.0], [3.0, 1.0]], [[1.0, 0.2], [0.5, 0.3]],
                                           [[1.0, 3.0], [1.0, 1.0]]),
    "gmm_joint": lambda: GaussianMixture([[-5.0, -5.0], [5.0, 5.0], [0.0, 5.0]], 0.5, [0.2, 0.3, 0.5],
                                         joint=True),
    "empirical": lambda: Empirical(torch.arange(12.0).reshape(4, 3)),
    "sketched_points": lambda: Sketched.from_points([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0], [-2.0, 1.0]]),
    "sketched_density": lambda: Sketched.from_density([-1.0, 0.0, 1.0, 2.0, 4.0], [0.0, 2.0, 0.5, 0.5, 0.0]),
    "hybrid": dsprites_hybrid,
    "nested": lambda: Product([([3, 0], Product([([1], Uniform(1)), ([0], Laplace(1))])),
                               ([1, 2], Gaussian(2, cov=[[1.0, 0.5], [0.5, 1.0]]))]),
}
ANALYTIC = [name for name in EXAMPLES if name != "empirical"]


# ------------------------------------------------------------------------------------ sampling basics


@pytest.mark.parametrize("name", EXAMPLES)
def test_sample_shape_dtype_finite(name):
    prior = EXAMPLES[name]()
    z = prior.sample(512, gen())
    assert z.shape == (512, prior.dim) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert torch.isfinite(z).all()
    assert (z.std(dim=0) > 0).all()  # spread in every dimension: not one point repeated, no dimension left constant
    assert prior.sample(0, gen()).shape == (0, prior.dim)


@pytest.mark.parametrize("name", EXAMPLES)
def test_seeded_generator_is_deterministic_and_leaves_global_rng_alone(name):
    prior = EXAMPLES[name]()
    state = torch.random.get_rng_state()
    a, b, c = prior.sample(256, gen(7)), prior.sample(256, gen(7)), prior.sample(256, gen(8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_sample_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must be an integer"):
        Gaussian(2).sample(n)


# ------------------------------------------------------------------------------------ moments


finite = st.floats(-10, 10, allow_nan=False)
positive = st.floats(0.1, 5)


def scalar_or_list(elements, dim):
    return st.one_of(elements, st.lists(elements, min_size=dim, max_size=dim))


# (dim, location, positive scale), each parameter a scalar or one value per dimension
DIM_LOCATION_SCALE = st.integers(1, 4).flatmap(
    lambda d: st.tuples(st.just(d), scalar_or_list(finite, d), scalar_or_list(positive, d))
)


@PROPERTY
@given(DIM_LOCATION_SCALE)
def test_gaussian_moments(args):
    dim, mean, std = args
    z = Gaussian(dim, mean, std).sample(N, gen())
    assert_moments(z, np.broadcast_to(mean, dim), np.broadcast_to(std, dim) ** 2)


@PROPERTY
@given(st.integers(1, 3).flatmap(lambda d: st.lists(st.floats(-2, 2), min_size=d * d, max_size=d * d)))
def test_gaussian_full_covariance(entries):
    dim = math.isqrt(len(entries))
    a = np.array(entries).reshape(dim, dim)
    cov = a @ a.T + 0.5 * np.eye(dim)
    z = Gaussian(dim, mean=1.0, cov=cov.tolist()).sample(N, gen()).double().numpy()
    sample_cov = np.cov(z, rowvar=False).reshape(dim, dim)
    standard_error = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / N)
    assert np.all(np.abs(sample_cov - cov) <= 6 * standard_error)
    assert np.all(np.abs(z.mean(0) - 1.0) <= 6 * np.sqrt(np.diag(cov) / N))


@PROPERTY
@given(DIM_LOCATION_SCALE)
def test_uniform_moments_and_support(args):
    dim, low, width = args
    low = np.broadcast_to(low, dim)
    high = low + np.broadcast_to(width, dim)
    z = Uniform(dim, low.tolist(), high.tolist()).sample(N, gen())
    assert_moments(z, (low + high) / 2, (high - low) ** 2 / 12)
    assert (z.double() >= torch.tensor(low) - 1e-5).all() and (z.double() <= torch.tensor(high) + 1e-5).all()


@PROPERTY
@given(DIM_LOCATION_SCALE)
def test_laplace_moments(args):
    dim, loc, scale = args
    z = Laplace(dim, loc, scale).sample(N, gen())
    assert_moments(z, np.broadcast_to(loc, dim), 2 * np.broadcast_to(scale, dim) ** 2)


@st.composite
def mixtures(draw, joint: bool):
    k, dim = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    means = draw(st.lists(st.lists(finite, min_size=dim, max_size=dim), min_size=k, max_size=k))
    stds = draw(st.lists(st.lists(st.floats(0.2, 3), min_size=dim, max_size=dim), min_size=k, max_size=k))
    weight_lists = st.lists(st.floats(0.2, 1), min_size=k, max_size=k)
    weights = draw(weight_lists) if joint else np.array(draw(st.lists(weight_lists, min_size=dim,
                                                                          max_size=dim))).T.tolist()
    return means, stds, weights


@PROPERTY
@given(mixtures(joint=False))
def test_per_dimension_mixture_moments(args):
    means, stds, weights = (np.array(a) for a in args)
    z = GaussianMixture(means.tolist(), stds.tolist(), weights.tolist()).sample(N, gen())
    moments = [mixture_moments(means[:, j], stds[:, j], weights[:, j]) for j in range(means.shape[1])]
    assert_moments(z, [m for m, _ in moments], [v for _, v in moments])


@PROPERTY
@given(mixtures(joint=True))
def test_joint_mixture_moments(args):
    means, stds, weights = (np.array(a) for a in args)
    z = GaussianMixture(means.tolist(), stds.tolist(), weights.tolist(), joint=True).sample(N, gen())
    moments = [mixture_moments(means[:, j], stds[:, j], weights) for j in range(means.shape[1])]
    assert_moments(z, [m for m, _ in moments], [v for _, v in moments])


def test_joint_mixture_shares_the_component_and_per_dimension_does_not():
    means = [[-5.0, -5.0], [5.0, 5.0]]
    joint = GaussianMixture(means, 0.5, joint=True).sample(N, gen()).T
    independent = GaussianMixture(means, 0.5).sample(N, gen()).T
    assert torch.corrcoef(joint)[0, 1] > 0.98
    assert abs(torch.corrcoef(independent)[0, 1]) < 0.05


def test_paper_bimodal_marginal():
    prior = GaussianMixture([-5.0, 5.0], 5.0, dim=3)
    assert prior.dim == 3
    assert_moments(prior.sample(N, gen()), [0.0] * 3, [50.0] * 3)


def test_mixture_weights_select_components():
    z = GaussianMixture([-10.0, 10.0], 0.1, [1.0, 3.0]).sample(N, gen())
    p = (z > 0).double().mean().item()
    assert abs(p - 0.75) < 5 * math.sqrt(0.75 * 0.25 / N)
    assert (GaussianMixture([-10.0, 10.0], 0.1, [0.0, 1.0]).sample(1000, gen()) > 0).all()


def test_empirical_resamples_rows_uniformly():
    codes = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    z = Empirical(codes).sample(N, gen())
    matches = (z[:, None, :] == codes[None]).all(-1)
    assert (matches.sum(1) == 1).all()
    share = matches.double().mean(0)
    assert ((share - 0.25).abs() < 5 * math.sqrt(0.25 * 0.75 / N)).all()


# ------------------------------------------------------------------------------------ serialization


@st.composite
def any_prior(draw, depth: int = 0) -> Prior:
    dim = draw(st.integers(1, 3))
    wide = st.floats(-1e3, 1e3, allow_nan=False)
    pos = st.floats(1e-3, 1e3)
    family = draw(st.sampled_from(["gaussian", "cov", "uniform", "laplace", "gmm", "empirical", "points",
                                   "density"] + (["product"] if depth < 2 else [])))
    if family == "gaussian":
        return Gaussian(dim, draw(scalar_or_list(wide, dim)), draw(scalar_or_list(pos, dim)))
    if family == "cov":
        entries = draw(st.lists(st.floats(-3, 3), min_size=dim * dim, max_size=dim * dim))
        a = np.array(entries).reshape(dim, dim)
        return Gaussian(dim, draw(scalar_or_list(wide, dim)), cov=(a @ a.T + np.eye(dim)).tolist())
    if family == "uniform":
        low = np.broadcast_to(draw(scalar_or_list(wide, dim)), dim)
        high = low + np.broadcast_to(draw(scalar_or_list(pos, dim)), dim)
        return Uniform(dim, low.tolist(), high.tolist())
    if family == "laplace":
        return Laplace(dim, draw(scalar_or_list(wide, dim)), draw(scalar_or_list(pos, dim)))
    if family == "gmm":
        joint = draw(st.booleans())
        means, stds, weights = draw(mixtures(joint))
        weights = np.array(weights) * draw(st.floats(1e-3, 1e3))  # unnormalized on purpose
        return GaussianMixture(means, stds, weights.tolist(), joint=joint)
    rows = st.lists(st.lists(wide, min_size=dim, max_size=dim), min_size=1, max_size=6)
    if family == "empirical":
        return Empirical(draw(rows))
    if family == "points":
        return Sketched.from_points(draw(rows), bandwidth=draw(scalar_or_list(pos, dim)))
    if family == "density":
        steps = draw(st.lists(pos, min_size=1, max_size=6))
        grid = (draw(wide) + np.cumsum([0.0, *steps])).tolist()
        density = draw(st.lists(st.floats(0, 10), min_size=len(grid), max_size=len(grid)).filter(any))
        return Sketched.from_density(grid, density)
    blocks = draw(st.lists(any_prior(depth + 1), min_size=1, max_size=3))
    order = draw(st.permutations(range(sum(p.dim for p in blocks))))
    starts = np.cumsum([0] + [p.dim for p in blocks])
    return Product([(list(order[s:s + p.dim]), p) for s, p in zip(starts, blocks, strict=False)])


@settings(PROPERTY, max_examples=60)
@given(any_prior())
def test_round_trip_is_exact(prior):
    d = prior.to_dict()
    text = json.dumps(d, allow_nan=False)
    for rebuilt in (from_dict(d), from_dict(json.loads(text))):
        assert rebuilt == prior and type(rebuilt) is type(prior)
        assert rebuilt.to_dict() == d
        assert torch.equal(rebuilt.sample(64, gen(3)), prior.sample(64, gen(3)))


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_round_trip(name):
    prior = EXAMPLES[name]()
    assert from_dict(json.loads(json.dumps(prior.to_dict()))) == prior


def test_to_dict_formats():
    assert Gaussian(2, std=[1.0, 2.0]).to_dict() == {"family": "gaussian", "dim": 2, "mean": [0.0, 0.0],
                                                      "std": [1.0, 2.0]}
    assert Uniform(1, -5, 5).to_dict() == {"family": "uniform", "dim": 1, "low": [-5.0], "high": [5.0]}
    assert GaussianMixture([-5, 5], 5).to_dict() == {
        "family": "gaussian_mixture", "joint": False, "means": [[-5.0], [5.0]], "stds": [[5.0], [5.0]],
        "weights": [[0.5], [0.5]]}
    assert Product([([0], Laplace(1))]).to_dict() == {
        "family": "product",
        "blocks": [{"dims": [0], "prior": {"family": "laplace", "dim": 1, "loc": [0.0], "scale": [1.0]}}]}


def test_equality_is_by_parameters():
    assert Gaussian(2) == Gaussian(2, mean=[0, 0], std=1) == standard_normal(2)
    assert GaussianMixture([-1, 1], 1.0, [1.0, 1.0]) == GaussianMixture([-1, 1], 1.0, [0.5, 0.5])
    assert Sketched.from_density([0, 1], [2, 2]) == Sketched.from_density([0, 1], [1, 1])
    assert Gaussian(2) != Gaussian(2, std=2.0)
    assert Gaussian(1) != Laplace(1)
    assert Gaussian(1) != {"family": "gaussian"}


def test_mixture_weights_are_normalized():
    prior = GaussianMixture([-1, 0, 1], 1.0, [1.0, 2.0, 1.0])
    assert prior.to_dict()["weights"] == [[0.25], [0.5], [0.25]]


# ------------------------------------------------------------------------------------ validation


nan, inf = float("nan"), float("inf")
INVALID = [
    (lambda: Gaussian(2, std=-1.0), ["Gaussian", "std must be > 0", "-1.0", "dimension 0"]),
    (lambda: Gaussian(2, std=[1.0, 0.0]), ["std", "0.0", "dimension 1"]),
    (lambda: Laplace(1, scale=0), ["Laplace", "scale", "0.0"]),
    (lambda: Uniform(1, 2.0, 1.0), ["Uniform: low must be < high, got low=2.0, high=1.0"]),
    (lambda: Uniform(2, [0.0, 2.0], 1.0), ["Uniform: low must be < high, got low=2.0, high=1.0 (dimension 1)"]),
    (lambda: Uniform(2, [0, 3], [1, 3]), ["low", "high", "low=3.0", "dimension 1"]),
    (lambda: GaussianMixture([-1, 1], 1.0, [0.5, -0.5]), ["weights", "-0.5", "component 1"]),
    (lambda: GaussianMixture([-1, 1], 1.0, [0, 0]), ["weights", "zero", "[0.0, 0.0]"]),
    (lambda: GaussianMixture.from_columns(2, weight=[0.5, 1.5]),
     ["GaussianMixture: weight must be in [0, 1], got 1.5 (dimension 1)"]),
    (lambda: Gaussian(1, std=-(1 + 2e-16) / 2), ["std must be > 0, got -0.5"]),
    (lambda: GaussianMixture([-1, 1], [1.0, -2.0]), ["stds", "-2.0", "component 1"]),
    (lambda: GaussianMixture([-1, 1], [1.0, 2.0, 3.0]), ["stds", "[3]"]),
    (lambda: GaussianMixture([[0, 0]], 1.0, [[1.0, 1.0]], joint=True), ["weights", "[1, 2]"]),
    (lambda: GaussianMixture([], 1.0), ["means", "[0]"]),
    (lambda: GaussianMixture([[0.0, inf]], 1.0), ["means", "inf"]),
    (lambda: Product([([0, 1], Gaussian(2)), ([1], Gaussian(1))]), ["dims", "dimension 1", "blocks 0 and 1"]),
    (lambda: Product([([0, 2], Gaussian(2))]), ["dims", "dimension 2", "[1]", "not covered"]),
    (lambda: Product([([0, 1], Gaussian(1))]), ["block 0", "dims [0, 1]", "dim 1"]),
    (lambda: Product([([0], "gaussian")]), ["block 0", "prior", "'gaussian'"]),
    (lambda: Product([]), ["blocks", "[]"]),
    (lambda: Gaussian(2, mean=[0.0, nan]), ["mean", "finite", "nan", "dimension 1"]),
    (lambda: Uniform(1, high=inf), ["high", "inf"]),
    (lambda: Laplace(2, loc=[-inf, 0.0]), ["loc", "-inf"]),
    (lambda: Empirical([[0.0, nan]]), ["codes", "nan", "row 0, column 1"]),
    (lambda: Gaussian(2, cov=[[1.0, nan], [nan, 1.0]]), ["cov", "nan"]),
    (lambda: Sketched.from_points([[0.0, inf]], bandwidth=1.0), ["points", "inf"]),
    (lambda: Sketched.from_density([0.0, 1.0], [nan, 1.0]), ["density", "nan"]),
    (lambda: Gaussian(0), ["Gaussian", "dim", "0"]),
    (lambda: Uniform(-1), ["Uniform", "dim", "-1"]),
    (lambda: Laplace(1.5), ["Laplace", "dim", "1.5"]),
    (lambda: GaussianMixture([0.0, 1.0], dim=0), ["dim", "0"]),
    (lambda: Gaussian(3, mean=[0.0, 0.0]), ["mean", "length 3", "[2]"]),
    (lambda: Uniform(2, low=[0.0, 0.0, 0.0]), ["low", "length 2", "[3]"]),
    (lambda: Sketched.from_points([[0.0, 0.0]], bandwidth=[1.0, 1.0, 1.0]), ["bandwidth", "length 2"]),
    (lambda: Gaussian(2, cov=[[1.0, 2.0], [2.0, 1.0]]), ["cov", "positive definite", "-1.0"]),
    (lambda: Gaussian(2, cov=[[1.0, 0.5], [0.0, 1.0]]), ["cov", "symmetric", "row 0, column 1"]),
    (lambda: Gaussian(2, cov=[[1.0]]), ["cov", "[2, 2]", "[1, 1]"]),
    (lambda: Gaussian(2, std=2.0, cov=[[1.0, 0.0], [0.0, 1.0]]), ["std", "cov", "not both"]),
    (lambda: Empirical(torch.empty(0, 3)), ["codes", "[0, 3]"]),
    (lambda: Empirical([1.0, 2.0]), ["codes", "2-D", "[2]"]),
    (lambda: Empirical("abc"), ["codes", "numeric", "'abc'"]),
    (lambda: Sketched.from_density([0.0, 1.0, 2.0], [0, -1, 0]), ["density", ">= 0", "-1.0", "point 1"]),
    (lambda: Sketched.from_density([0.0, 1.0, 1.0], [1.0, 1.0, 1.0]), ["grid", "increasing", "point 2"]),
    (lambda: Sketched.from_density([0.0, 1.0], [0.0, 0.0]), ["density", "all zeros"]),
    (lambda: Sketched.from_density([0.0], [1.0]), ["grid", "2 points"]),
    (lambda: Sketched.from_density([0.0, 1.0], [1.0, 1.0, 1.0]), ["density", "[2]", "[3]"]),
    (lambda: Sketched.from_points([[0.0, 0.0]]), ["bandwidth", "> 0", "0.0"]),
    (lambda: Sketched.from_points([[0.0, 0.0], [1.0, 2.0]], bandwidth=-0.1), ["bandwidth", "-0.1"]),
    (lambda: from_dict({"family": "nope"}), ["family", "'nope'"]),
    (lambda: from_dict({"family": "gaussian", "mean": [0.0]}), ["gaussian", "dim"]),
    (lambda: from_dict([1, 2]), ["family"]),
]


@pytest.mark.parametrize(("build", "fragments"), INVALID)
def test_invalid_parameters_raise_named_value_errors(build, fragments):
    with pytest.raises(ValueError) as excinfo:
        build()
    message = str(excinfo.value)
    assert all(fragment in message for fragment in fragments), message


def test_density_queries_validate_their_inputs():
    prior = Gaussian(2)
    with pytest.raises(ValueError, match=r"z must have shape \[n, 2\], got \[4, 3\]"):
        prior.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"i must be a dimension in 0\.\.1, got 2"):
        prior.marginal_pdf(2, torch.zeros(3))
    with pytest.raises(ValueError, match="grid must be 1-D"):
        prior.marginal_pdf(0, torch.zeros(3, 1))


def test_empirical_has_no_density():
    prior = EXAMPLES["empirical"]()
    for query in (lambda: prior.log_prob(torch.zeros(1, 3)), lambda: prior.marginal_pdf(0, torch.zeros(3))):
        with pytest.raises(NotImplementedError, match="Empirical"):
            query()


# ------------------------------------------------------------------------------------ densities


def bin_probabilities(prior: Prior, i: int, edges: np.ndarray, per_bin: int = 64) -> np.ndarray:
    """The probability of each bin, integrating marginal_pdf with the trapezoid rule."""
    fine = torch.linspace(edges[0], edges[-1], (len(edges) - 1) * per_bin + 1, dtype=torch.float64)
    pdf = prior.marginal_pdf(i, fine).numpy()
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(fine.numpy()))])
    return np.diff(cdf[::per_bin])


@pytest.mark.parametrize("name", ANALYTIC)
def test_marginal_pdf_integrates_to_one_and_matches_histogram(name):
    prior = EXAMPLES[name]()
    z = prior.sample(N, gen()).double().numpy()
    for i in range(prior.dim):
        total = bin_probabilities(prior, i, np.array([-80.0, 80.0]), per_bin=64_000).sum()
        assert total == pytest.approx(1, abs=2e-3)
        edges = np.linspace(z[:, i].min(), z[:, i].max(), 31)
        expected = bin_probabilities(prior, i, edges)
        observed = np.histogram(z[:, i], edges)[0] / N
        tolerance = 5 * np.sqrt(expected * (1 - expected) / N) + 2e-3
        assert np.all(np.abs(observed - expected) <= tolerance), (i, observed, expected)


@pytest.mark.parametrize("name", [n for n in ANALYTIC if EXAMPLES[n]().dim == 1])
def test_one_dimensional_log_prob_agrees_with_marginal_pdf(name):
    prior = EXAMPLES[name]()
    grid = torch.linspace(-12, 12, 97, dtype=torch.float64)
    assert torch.allclose(prior.log_prob(grid[:, None]).exp(), prior.marginal_pdf(0, grid), atol=1e-12)


def test_log_prob_known_values():
    z = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-4.0, 3.0]], dtype=torch.float64)
    x = z.numpy()
    norm = stats.norm.logpdf(x, [1.0, -1.0], [2.0, 0.5]).sum(1)
    assert np.allclose(Gaussian(2, [1.0, -1.0], [2.0, 0.5]).log_prob(z).numpy(), norm)
    cov = [[2.0, 0.8], [0.8, 1.0]]
    full = stats.multivariate_normal([1.0, -1.0], cov).logpdf(x)
    assert np.allclose(Gaussian(2, [1.0, -1.0], cov=cov).log_prob(z).numpy(), full)
    lap = stats.laplace.logpdf(x, [0.0, 3.0], [1.0, 0.5]).sum(1)
    assert np.allclose(Laplace(2, [0.0, 3.0], [1.0, 0.5]).log_prob(z).numpy(), lap)
    uniform = Uniform(2, [-1.0, -2.0], [3.0, 1.0]).log_prob(z)
    assert uniform.tolist()[:2] == pytest.approx([-math.log(12)] * 2)
    assert uniform[2].item() == -math.inf
    assert Uniform(2).log_prob(torch.zeros(1, 2)).dtype == torch.float32


def test_mixture_log_prob_known_values():
    z = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    x = z.numpy()
    means, stds = np.array([[-1.0, 0.0], [2.0, 1.0]]), np.array([[1.0, 0.5], [0.5, 2.0]])
    w = np.array([0.3, 0.7])
    comps = stats.norm.pdf(x[:, None, :], means, stds)  # [n, K, dim]
    joint = np.log((w[:, None] * comps.prod(-1).T).sum(0))
    per_dim = np.log((w[None, :, None] * comps).sum(1)).sum(-1)
    assert np.allclose(GaussianMixture(means, stds, w, joint=True).log_prob(z).numpy(), joint)
    assert np.allclose(GaussianMixture(means, stds, w).log_prob(z).numpy(), per_dim)


def test_kde_log_prob_known_values():
    points, bandwidth = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]]), np.array([0.5, 1.5])
    z = np.array([[0.2, 0.1], [2.0, 1.0]])
    expected = np.log(stats.norm.pdf(z[:, None, :], points, bandwidth).prod(-1).mean(1))
    prior = Sketched.from_points(points, bandwidth.tolist())
    assert np.allclose(prior.log_prob(torch.tensor(z)).numpy(), expected)


def test_product_log_prob_sums_blocks_in_their_dimensions():
    a, b = Gaussian(2, [1.0, -1.0], [2.0, 0.5]), Laplace(1, 3.0, 0.5)
    prior = Product([([2, 0], a), ([1], b)])
    z = torch.randn(5, 3, generator=gen(), dtype=torch.float64)
    assert torch.allclose(prior.log_prob(z), a.log_prob(z[:, [2, 0]]) + b.log_prob(z[:, [1]]))


# ------------------------------------------------------------------------------------ hybrid prior


def test_dsprites_hybrid_marginals():
    prior = dsprites_hybrid()
    assert prior.dim == 5
    z = prior.sample(N, gen())
    assert_moments(z, [0.0] * 5, [100 / 12, 4.0, 50.0, 101.0, 101.0])
    assert z[:, 0].abs().max() <= 5
    assert ((z[:, 3].abs() - 10).abs() < 6).all()  # two modes at +-10, std 1: nothing near 0
    grid = torch.linspace(-30, 30, 601, dtype=torch.float64)
    blocks = [Uniform(1, -5, 5), Gaussian(1, 0, 2), GaussianMixture([-5, 5], 5.0),
              GaussianMixture([-10, 10], 1.0), GaussianMixture([-10, 10], 1.0)]
    for i, block in enumerate(blocks):
        assert torch.equal(prior.marginal_pdf(i, grid), block.marginal_pdf(0, grid))


def test_product_places_blocks_in_their_dimensions():
    prior = Product([([2, 0], Gaussian(2, mean=[10.0, 20.0], std=[1.0, 2.0])), ([1], Uniform(1, 100, 101))])
    z = prior.sample(N, gen())
    assert_moments(z, [20.0, 100.5, 10.0], [4.0, 1 / 12, 1.0])
    grid = torch.linspace(10, 30, 11, dtype=torch.float64)
    assert torch.allclose(prior.marginal_pdf(0, grid), torch.tensor(stats.norm.pdf(grid.numpy(), 20, 2)))


def test_gaussian_full_covariance_marginal():
    grid = torch.linspace(-5, 5, 21, dtype=torch.float64)
    pdf = Gaussian(2, [1.0, -1.0], cov=[[4.0, 0.8], [0.8, 1.0]]).marginal_pdf(0, grid)
    assert torch.allclose(pdf, torch.tensor(stats.norm.pdf(grid.numpy(), 1.0, 2.0)))


# ------------------------------------------------------------------------------------ sketched priors


def test_from_density_samples_follow_the_drawn_triangle():
    z = Sketched.from_density([0.0, 1.0, 2.0], [0.0, 5.0, 0.0]).sample(N, gen())[:, 0].double().numpy()
    cdf = lambda x: np.where(x < 1, x**2 / 2, 1 - (2 - x) ** 2 / 2)  # noqa: E731
    assert stats.kstest(z, cdf).pvalue > 1e-3
    assert z.min() >= 0 and z.max() <= 2


def test_from_density_samples_follow_an_irregular_curve():
    grid, density = [0.0, 1.0, 2.0, 3.0, 4.0, 4.5], [0.0, 2.0, 0.0, 0.0, 1.0, 1.0]
    z = Sketched.from_density(grid, density).sample(N, gen())[:, 0].double().numpy()
    fine = np.linspace(0, 4.5, 450_001)
    pdf = np.interp(fine, grid, density)
    cdf = np.concatenate([[0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(fine))])
    assert stats.kstest(z, lambda x: np.interp(x, fine, cdf / cdf[-1])).pvalue > 1e-3
    assert not ((z > 2) & (z < 3)).any()  # the drawn gap has zero density


def test_from_points_concentrates_around_the_points():
    points = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    z = Sketched.from_points(points, bandwidth=0.1).sample(N, gen())
    distance, nearest = torch.cdist(z, points).min(1)
    assert distance.max() < 0.1 * 6
    share = torch.bincount(nearest, minlength=5).double() / N
    assert ((share - 0.2).abs() < 5 * math.sqrt(0.2 * 0.8 / N)).all()


def test_scott_bandwidth_matches_scipy_and_works_in_any_dimension():
    points = torch.randn(40, 3, generator=gen(), dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5])
    prior = Sketched.from_points(points)
    assert isinstance(prior, SketchedPoints) and prior.dim == 3
    kde = stats.gaussian_kde(points.numpy().T)
    expected = kde.factor * points.numpy().std(0, ddof=1)
    assert np.allclose(prior.to_dict()["bandwidth"], expected)
    kde_var = points.numpy().var(0) + expected**2
    assert_moments(prior.sample(N, gen()), points.numpy().mean(0), kde_var)


def test_from_density_is_one_dimensional_and_normalized():
    prior = Sketched.from_density([0.0, 2.0], [3.0, 3.0])
    assert isinstance(prior, SketchedDensity) and prior.dim == 1
    assert prior.to_dict()["density"] == [0.5, 0.5]
    pdf = prior.marginal_pdf(0, torch.tensor([-1.0, 1.0, 3.0]))
    assert torch.allclose(pdf, torch.tensor([0.0, 0.5, 0.0]))


@pytest.mark.parametrize(
    ("make", "parameter"),
    [(lambda: Gaussian(2, std=1e39), "std"), (lambda: Gaussian(2, mean=[0.0, -1e20]), "mean"),
     (lambda: Uniform(1, low=-1e16, high=0.0), "low"), (lambda: Laplace(2, scale=[1.0, 3e38]), "scale")],
)
def test_parameters_whose_samples_float32_cannot_hold_are_refused_naming_them(make, parameter):
    with pytest.raises(ValueError, match=f"{parameter} must be at most 1e\\+15 in magnitude"):
        make()
    assert torch.isfinite(Gaussian(2, std=1e15).sample(100, torch.Generator().manual_seed(0))).all()
