"""`explorer.losses.MMDPrior`: the prior as a loss module for a loop of your own, the same penalty as AE-MMD's."""

from __future__ import annotations

import math

import pytest
import torch

from explorer.losses import MMDPrior
from explorer.mmd import marginal_mmd2, mmd2
from explorer.objectives import AEMMD
from explorer.priors import Gaussian, Uniform


def codes(n: int = 64, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("kernel", "estimator"), [("rbf", "biased"), ("imq", "unbiased")])
def test_the_value_is_explorer_mmd_of_the_codes_and_a_prior_sample_from_the_same_generator(kernel, estimator):
    prior, z = Uniform(3), codes()
    module = MMDPrior(prior, kernel=kernel, estimator=estimator, generator=7)
    expected = mmd2(z, prior.sample(64, torch.Generator().manual_seed(7)), kernel=kernel, estimator=estimator)
    assert module(z).item() == pytest.approx(expected.item(), rel=1e-6)


def test_it_is_the_penalty_of_the_ae_mmd_objective():
    prior, z = Gaussian(3), codes()
    objective = AEMMD(prior=prior, lam=1.0, kernel="imq")
    penalty, _ = objective.regularizer(z, z, None, torch.Generator().manual_seed(3))
    assert MMDPrior(prior, kernel="imq")(z, torch.Generator().manual_seed(3)).item() == pytest.approx(penalty.item())


def test_the_marginal_option_adds_the_weighted_per_dimension_term_here_and_in_the_objective():
    prior, z = Uniform(3), codes()
    sample = prior.sample(64, torch.Generator().manual_seed(7))
    expected = mmd2(z, sample, kernel="imq") + 2.0 * marginal_mmd2(z, sample)
    assert MMDPrior(prior, kernel="imq", marginal=2.0, generator=7)(z).item() == pytest.approx(expected.item())
    objective = AEMMD(prior=prior, lam=1.0, kernel="imq", marginal=2.0)
    penalty, _ = objective.regularizer(z, z, None, torch.Generator().manual_seed(7))
    assert penalty.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="marginal must be a finite weight >= 0"):
        MMDPrior(prior, marginal=-1.0)


def test_it_is_differentiable_and_pulls_codes_toward_the_prior():
    z = (codes() * 3 + 2).requires_grad_()
    module = MMDPrior(Gaussian(3))
    before = module(z)
    before.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    with torch.no_grad():
        moved = z - 0.5 * z.grad / z.grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
    assert MMDPrior(Gaussian(3))(moved).item() < MMDPrior(Gaussian(3))(z.detach()).item()


def test_a_swapped_prior_takes_effect_at_the_next_forward():
    z = codes(256) * 0.1  # near the origin: close to a narrow Gaussian, far from a wide uniform
    module = MMDPrior(Gaussian(3, std=0.1))
    near = module(z).item()
    module.prior = Uniform(3, low=-10.0, high=10.0)
    assert module(z).item() > 10 * near


def test_non_finite_codes_give_nan_and_a_wrong_size_one_clear_error():
    module = MMDPrior(Gaussian(3))
    assert math.isnan(module(torch.full((8, 3), math.nan)).item())
    with pytest.raises(ValueError, match=r"prior\.dim 3 must equal the model's latent_dim 2"):
        module(codes(d=2))
    with pytest.raises(ValueError, match="kernel must be one of"):
        MMDPrior(Gaussian(3), kernel="laplace")
