import math

import numpy as np
import pytest
import torch

from explorer.mmd import marginal_bandwidths, marginal_mmd2, median_bandwidth, mmd2
from explorer.priors import Gaussian, GaussianMixture, Prior, Product, Uniform

SCALES = (0.5, 1.0, 2.0)


def _lower_median_distance(z: np.ndarray) -> float:
    dists = sorted(math.dist(z[i], z[j]) for i in range(len(z)) for j in range(i + 1, len(z)))
    return dists[(len(dists) - 1) // 2]


def _reference_mmd2(x: np.ndarray, y: np.ndarray, kernel: str, estimator: str) -> float:
    """Direct double-loop definition (float64)."""
    sigma = _lower_median_distance(np.concatenate([x, y]))

    def k(a, b):
        d2 = float(np.sum((a - b) ** 2))
        total = 0.0
        for scale in SCALES:
            s2 = (scale * sigma) ** 2
            total += math.exp(-d2 / (2 * s2)) if kernel == "rbf" else s2 / (s2 + d2)
        return total

    def mean_k(p, q, drop_diagonal):
        values = [
            k(p[i], q[j]) for i in range(len(p)) for j in range(len(q)) if not (drop_diagonal and i == j)
        ]
        return sum(values) / len(values)

    unbiased = estimator == "unbiased"
    return mean_k(x, x, unbiased) + mean_k(y, y, unbiased) - 2 * mean_k(x, y, False)


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_matches_double_loop_reference(kernel, estimator):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    y = rng.normal(loc=0.7, scale=1.3, size=(5, 3))  # 12 rows, 66 pairs: even count, lower median
    expected = _reference_mmd2(x, y, kernel, estimator)
    got = mmd2(torch.from_numpy(x), torch.from_numpy(y), kernel=kernel, estimator=estimator).item()
    assert got == pytest.approx(expected, rel=1e-5)
    got32 = mmd2(torch.from_numpy(x).float(), torch.from_numpy(y).float(), kernel=kernel, estimator=estimator)
    assert got32.item() == pytest.approx(expected, rel=1e-4)


def test_median_bandwidth_is_median_pairwise_distance():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(9, 4))
    expected = _lower_median_distance(np.concatenate([x, y]))
    assert median_bandwidth(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(
        expected, rel=1e-9
    )


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_identical_sets_give_zero_with_biased_estimator(kernel):
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(2))
    assert abs(mmd2(x, x.clone(), kernel=kernel).item()) < 1e-6


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_symmetric(estimator):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 5, generator=g), torch.randn(30, 5, generator=g) + 0.3
    assert mmd2(x, y, estimator=estimator).item() == pytest.approx(
        mmd2(y, x, estimator=estimator).item(), rel=1e-5
    )


def _fixed_sigma_mmd2(x: torch.Tensor, y: torch.Tensor, sigma: float, kernel: str = "rbf",
                      estimator: str = "biased") -> torch.Tensor:
    """MMD^2 by plain autograd over the full kernel matrix, with the bandwidth a constant."""
    z = torch.cat([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    if kernel == "rbf":
        k = sum(torch.exp(-d2 / (2 * (s * sigma) ** 2)) for s in SCALES)
    else:
        k = sum((s * sigma) ** 2 / ((s * sigma) ** 2 + d2) for s in SCALES)
    n, m = len(x), len(y)
    if estimator == "biased":
        return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    kxx, kyy = k[:n, :n], k[n:, n:]
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * k[:n, n:].mean())


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_hand_written_gradient_equals_autograd_with_the_bandwidth_held(kernel, estimator):
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y0 = torch.randn(25, 3, generator=g, dtype=torch.float64) * 1.5 + 0.5
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    value = mmd2(x, y, kernel=kernel, estimator=estimator)
    value.backward()
    x_ref, y_ref = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    reference = _fixed_sigma_mmd2(x_ref, y_ref, median_bandwidth(x0, y0).item(), kernel, estimator)
    reference.backward()
    torch.testing.assert_close(value, reference, rtol=1e-10, atol=1e-12)
    assert x.grad.abs().max() > 1e-3
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(y.grad, y_ref.grad, rtol=1e-7, atol=1e-10)


def test_gradient_flows_to_x_but_not_through_bandwidth():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(25, 3, generator=g, dtype=torch.float64) + 0.5
    x = x0.clone().requires_grad_()
    mmd2(x, y).backward()
    # the bandwidth is a function of x: letting gradient through it would give a different answer
    x_live = x0.clone().requires_grad_()
    live_sigma = torch.cdist(torch.cat([x_live, y]), torch.cat([x_live, y]))
    _fixed_sigma_mmd2(
        x_live, y, live_sigma[torch.triu(torch.ones_like(live_sigma), 1) > 0].median()
    ).backward()
    assert not torch.allclose(x_live.grad, x.grad)


def test_gradient_flows_to_y():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g).requires_grad_()
    mmd2(x, y, kernel="imq", estimator="unbiased").backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() > 0


def test_detects_half_sigma_mean_shift_at_n512():
    shift = torch.zeros(8)
    shift[0] = 0.5
    same, shifted = [], []
    for seed in range(20):
        g = torch.Generator().manual_seed(100 + seed)
        a, b, c = (torch.randn(512, 8, generator=g) for _ in range(3))
        same.append(mmd2(a, b).item())
        shifted.append(mmd2(a, c + shift).item())
    assert min(shifted) > max(same)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.zeros(5, 3), torch.zeros(5, 4), "same dimension"),
        (torch.zeros(1, 3), torch.zeros(5, 3), "at least 2 rows"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), torch.zeros(3, 2), "NaN"),
        (torch.zeros(5), torch.zeros(5, 1), "2-D"),
    ],
)
def test_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        mmd2(x, y)


def test_bad_options():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="kernel"):
        mmd2(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="estimator"):
        mmd2(x, x, estimator="linear")
    with pytest.raises(ValueError, match="scales"):
        mmd2(x, x, scales=(1.0, -1.0))


# ---------------------------------------------------------------------------------- the per-dimension term


def _reference_marginal_mmd2(x: np.ndarray, y: np.ndarray, estimator: str) -> float:
    """Per dimension, the direct double-loop MMD^2 with the Laplace kernel sum at that dimension's bandwidth."""
    bandwidths = marginal_bandwidths(torch.from_numpy(np.concatenate([x, y]))).numpy()
    total = 0.0
    for j, base in enumerate(bandwidths):
        def k(a, b, base=base):
            return sum(math.exp(-abs(a - b) / (scale * base)) for scale in SCALES)

        def mean_k(p, q, drop_diagonal, j=j, k=k):
            values = [k(p[a, j], q[b, j]) for a in range(len(p)) for b in range(len(q))
                      if not (drop_diagonal and a == b)]
            return sum(values) / len(values)

        unbiased = estimator == "unbiased"
        total += mean_k(x, x, unbiased) + mean_k(y, y, unbiased) - 2 * mean_k(x, y, False)
    return total


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_the_marginal_term_matches_its_double_loop_definition(estimator):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(23, 3)) * [1.0, 5.0, 0.1], rng.uniform(-2, 2, size=(17, 3))
    got = marginal_mmd2(torch.from_numpy(x), torch.from_numpy(y), estimator=estimator)
    assert float(got) == pytest.approx(_reference_marginal_mmd2(x, y, estimator), rel=1e-9, abs=1e-12)


def test_the_marginal_bandwidth_is_each_dimensions_median_distance_on_a_subset_of_rows():
    z = torch.tensor([[0.0, 0.0], [1.0, 10.0], [3.0, 40.0]])  # |differences|: 1, 3, 2 and 10, 40, 30
    assert marginal_bandwidths(z).tolist() == [2.0, 30.0]


def test_the_marginal_term_is_zero_for_one_sample_and_its_gradient_that_of_its_definition():
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(marginal_mmd2(x, x)) == pytest.approx(0.0, abs=1e-12)
    y = torch.rand(30, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mine, direct = x.clone().requires_grad_(), x.clone().requires_grad_()
    marginal_mmd2(mine, y).backward()
    bandwidths = marginal_bandwidths(torch.cat([x, y]))
    z = torch.cat([direct, y])
    k = sum(torch.exp(-(z[:, None] - z[None]).abs() / (scale * bandwidths)) for scale in SCALES)
    n = len(x)
    (k[:n, :n].mean((0, 1)) + k[n:, n:].mean((0, 1)) - 2 * k[:n, n:].mean((0, 1))).sum().backward()
    torch.testing.assert_close(mine.grad, direct.grad)


def _hybrid(mode_std: float = 1.0, first: Prior | None = None) -> Product:
    """The paper's dSprites hybrid prior, with its N(+-10, 1) modes and its Uniform(-5, 5) dimension replaceable."""
    return Product([([0], first or Uniform(1, -5.0, 5.0)), ([1], Gaussian(1, 0.0, 2.0)),
                    ([2], GaussianMixture([-5.0, 5.0], 5.0)), ([3], GaussianMixture([-10.0, 10.0], mode_std)),
                    ([4], GaussianMixture([-10.0, 10.0], mode_std))])


WRONG_SHAPES = {  # codes whose shape misses the prior's where the joint median bandwidth cannot see it
    "std-4 modes for the hybrid prior's std-1 ones": (_hybrid(), _hybrid(mode_std=4.0)),
    "Gaussians for a Uniform of the same variance, d = 10": (Uniform(10, -math.sqrt(3), math.sqrt(3)), Gaussian(10)),
}


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
def test_at_batch_64_the_marginal_term_tells_a_wrong_shape_where_the_joint_kernel_does_not(case):
    """Each of 200 draws compares codes of the wrong shape with a prior sample, and a second prior sample with the
    same one: the wrong codes should come out further from the prior."""
    prior, wrong = WRONG_SHAPES[case]
    g = torch.Generator().manual_seed(0)
    draws = [(prior.sample(64, g), prior.sample(64, g), wrong.sample(64, g)) for _ in range(200)]

    def told(distance) -> float:
        return float(np.mean([float(distance(codes, p)) > float(distance(again, p)) for p, again, codes in draws]))

    assert told(marginal_mmd2) >= 0.95
    assert told(lambda a, b: mmd2(a, b, kernel="imq")) <= 0.7
    assert told(mmd2) <= 0.7
