import json
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm
from torch.nn import functional as F

from explorer.models import ModelConfig, build_model
from explorer.objectives import (
    OBJECTIVES,
    batch_gaussian_kl,
    objective_class,
    objective_from_dict,
    permute_dims,
    tc_decomposition,
)
from explorer.priors import Gaussian, Uniform

D = 4
SMALL_DISC = {"latent_dim": D, "disc_hidden": 16, "disc_layers": 2}
OPTIONS = {
    "ae": {},
    "mmd": {"prior": Gaussian(D)},
    "kld": {},
    "vae": {},
    "beta-vae": {},
    "beta-tcvae": {"dataset_size": 1000},
    "factorvae": SMALL_DISC,
}
TERMS = {
    "ae": {"recon"},
    "mmd": {"recon", "mmd"},
    "kld": {"recon", "kld"},
    "vae": {"recon", "kl"},
    "beta-vae": {"recon", "kl"},
    "beta-tcvae": {"recon", "mi", "tc", "dwkl"},
    "factorvae": {"recon", "kl", "tc", "disc"},
}
TOTALS = {
    "ae": lambda t: t["recon"],
    "mmd": lambda t: t["recon"] + 0.3 * t["mmd"],
    "kld": lambda t: t["recon"] + 0.3 * t["kld"],
    "vae": lambda t: t["recon"] + t["kl"],
    "beta-vae": lambda t: t["recon"] + 4 * t["kl"],
    "beta-tcvae": lambda t: t["recon"] + t["mi"] + 4 * t["tc"] + t["dwkl"],
    "factorvae": lambda t: t["recon"] + t["kl"] + 10 * t["tc"] + t["disc"],
}


def _setup(name, shape=(1, 8, 8), batch=32):
    objective = objective_class(name)(**OPTIONS[name])
    torch.manual_seed(0)
    model = build_model(ModelConfig(shape, D, gaussian=objective.needs_gaussian_encoder))
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(1))
    return objective, model, x


def test_registry_has_the_documented_names():
    built_in = {n: cls for n, cls in OBJECTIVES.items() if cls.__module__ == "explorer.objectives"}  # not plugins
    assert set(built_in) == set(TERMS)
    assert {n for n, cls in built_in.items() if cls.needs_gaussian_encoder} == {
        "vae",
        "beta-vae",
        "beta-tcvae",
        "factorvae",
    }


@pytest.mark.parametrize("name", sorted(TERMS))
def test_terms_names_finiteness_and_total(name):
    objective, model, x = _setup(name)
    terms = objective(model, x, torch.Generator().manual_seed(2))
    assert set(terms) == TERMS[name] | {"loss"}
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(terms["loss"], TOTALS[name](terms))


@pytest.mark.parametrize("name", sorted(TERMS))
def test_gradients_reach_every_parameter(name):
    objective, model, x = _setup(name, shape=(3, 32, 32), batch=8)
    objective(model, x, torch.Generator().manual_seed(3))["loss"].backward()
    params = [*model.parameters(), *objective.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name", sorted(TERMS))
def test_same_seed_same_loss_and_dict_round_trip(name):
    objective, model, x = _setup(name)
    first = objective(model, x, torch.Generator().manual_seed(4))["loss"]
    again = objective(model, x, torch.Generator().manual_seed(4))["loss"]
    assert first.item() == again.item()
    spec = json.loads(json.dumps(objective.to_dict()))
    rebuilt = objective_from_dict(spec)
    assert type(rebuilt) is type(objective) and rebuilt.to_dict() == objective.to_dict()
    rebuilt.load_state_dict(objective.state_dict())
    assert rebuilt(model, x, torch.Generator().manual_seed(4))["loss"].item() == first.item()


@pytest.mark.parametrize("name", ["mmd", "vae", "factorvae"])
def test_other_seed_other_loss(name):
    objective, model, x = _setup(name)
    a = objective(model, x, torch.Generator().manual_seed(5))["loss"]
    b = objective(model, x, torch.Generator().manual_seed(6))["loss"]
    assert a.item() != b.item()


def test_ae_reconstruction_is_squared_error_summed_over_pixels():
    objective, model, x = _setup("ae")
    pixels = x[0].numel()
    torch.testing.assert_close(objective(model, x)["recon"], F.mse_loss(model(x), x) * pixels)


def test_vae_terms_by_hand():
    objective, model, x = _setup("beta-vae")
    terms = objective(model, x, torch.Generator().manual_seed(7))
    mu, logvar = model.posterior(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(7))
    x_hat = model.decode(mu + (0.5 * logvar).exp() * eps)
    recon = ((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean()
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["loss"], recon + 4 * kl)


def test_vae_family_rejects_a_deterministic_encoder():
    objective = objective_class("vae")()
    model = build_model(ModelConfig((1, 8, 8), D))
    with pytest.raises(ValueError, match="Gaussian encoder"):
        objective(model, torch.rand(4, 1, 8, 8))


class _FixedCodes(torch.nn.Module):
    """A stand-in model whose codes are given: isolates the regularizer from the network."""

    def __init__(self, codes):
        super().__init__()
        self.codes = codes

    def posterior(self, x):
        return self.codes, None

    def decode(self, z):
        return torch.zeros(len(z), 1, 2, 2)


def test_mmd_prior_can_be_swapped_between_steps():
    codes = torch.randn(256, D, generator=torch.Generator().manual_seed(8))
    model, x = _FixedCodes(codes), torch.zeros(256, 1, 2, 2)
    objective = objective_class("mmd")(prior=Gaussian(D))
    matched = objective(model, x, torch.Generator().manual_seed(9))["mmd"]
    objective.prior = Gaussian(D, mean=100.0)
    far = objective(model, x, torch.Generator().manual_seed(9))["mmd"]
    objective.prior = Uniform(D, low=-1e-3, high=1e-3)
    narrow = objective(model, x, torch.Generator().manual_seed(9))["mmd"]
    assert matched < 0.02 and far > 2.0 and narrow > 0.5
    assert objective.to_dict()["prior"] == Uniform(D, low=-1e-3, high=1e-3).to_dict()
    objective.prior = Gaussian(D + 1)
    with pytest.raises(ValueError, match=r"prior\.dim 5 must equal the model's latent_dim 4"):
        objective(model, x)


def test_mmd_default_prior_and_options():
    objective = objective_class("mmd")(latent_dim=3, lam=1.5, kernel="imq", estimator="unbiased")
    assert objective.prior == Gaussian(3)
    assert objective.to_dict() == {
        "name": "mmd",
        "prior": Gaussian(3).to_dict(),
        "lam": 1.5,
        "kernel": "imq",
        "estimator": "unbiased",
        "marginal": 0.0,
    }


def _whitened(n, d, seed):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(z.T @ z / (n - 1))
    return torch.linalg.solve_triangular(chol, z.T, upper=False).T  # mean 0, unbiased covariance I exactly


def test_batch_gaussian_kl_known_answers():
    z = _whitened(200, 5, seed=10)
    assert abs(batch_gaussian_kl(z).item()) < 1e-5
    # scaled by 2: KL = 0.5 d (4 - 1 - log 4); shifted by m: KL = |m|^2 / 2
    assert batch_gaussian_kl(2 * z).item() == pytest.approx(0.5 * 5 * (3 - math.log(4)), rel=1e-5)
    m = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    assert batch_gaussian_kl(z + m).item() == pytest.approx(0.5 * float(m @ m), rel=1e-5)
    correlated = z @ torch.tensor([[1.0, 0.9], [0.0, 1.0]], dtype=torch.float64).repeat(3, 3)[:5, :5]
    assert batch_gaussian_kl(correlated).item() > 0.1
    assert batch_gaussian_kl(z.float()).dtype == torch.float32


def test_tc_decomposition_sums_to_the_monte_carlo_kl():
    g = torch.Generator().manual_seed(11)
    mu, logvar = torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(16, 3, generator=g) * 0.5
    logvar = logvar.double()
    z = mu + (0.5 * logvar).exp() * torch.randn(16, 3, generator=g, dtype=torch.float64)
    mi, tc, dwkl = tc_decomposition(z, mu, logvar, dataset_size=500)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    mc_kl = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(1).mean()
    torch.testing.assert_close(mi + tc + dwkl, mc_kl)
    # numpy loop reference of the minibatch-weighted sampling estimator (Chen et al. 2018, eq. S6)
    zn, mn, sn = z.numpy(), mu.numpy(), (0.5 * logvar).exp().numpy()
    log_bn = math.log(16 * 500)
    ref_tc = []
    for i in range(16):
        per_dim = np.array([[norm.logpdf(zn[i, k], mn[j, k], sn[j, k]) for k in range(3)] for j in range(16)])
        log_qz = logsumexp(per_dim.sum(1)) - log_bn
        log_prod = sum(logsumexp(per_dim[:, k]) - log_bn for k in range(3))
        ref_tc.append(log_qz - log_prod)
    assert tc.item() == pytest.approx(float(np.mean(ref_tc)), rel=1e-9)
    # the dataset size only shifts tc by (d - 1) log(N2 / N1): no effect on gradients
    _, tc_big, _ = tc_decomposition(z, mu, logvar, dataset_size=5000)
    assert (tc_big - tc).item() == pytest.approx(2 * math.log(10), rel=1e-9)


def test_factorvae_gradients_are_separated():
    objective, model, x = _setup("factorvae")
    terms = objective(model, x, torch.Generator().manual_seed(12))
    disc_params = list(objective.discriminator.parameters())
    model_params = list(model.parameters())

    def grads(term, params):
        return torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)

    assert all(g is None for g in grads(terms["tc"], disc_params))
    assert all(g is None for g in grads(terms["disc"], model_params))
    assert all(g is not None and g.abs().sum() > 0 for g in grads(terms["disc"], disc_params))
    assert all(g is not None for g in grads(terms["tc"], list(model.encoder.parameters())))
    from_disc = grads(terms["disc"], disc_params)
    terms["loss"].backward()
    for p, g in zip(disc_params, from_disc, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_factorvae_param_groups_and_tc_sign():
    objective = objective_class("factorvae")(**SMALL_DISC)
    (group,) = objective.param_groups()
    assert group["lr"] == 1e-4 and group["betas"] == (0.5, 0.9)
    assert {id(p) for p in group["params"]} == {id(p) for p in objective.discriminator.parameters()}
    with torch.no_grad():  # a discriminator sure of "real" (logit 0 - logit 1 = 3) gives tc = 3
        last = objective.discriminator[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([2.0, -1.0]))
    model = build_model(ModelConfig((1, 8, 8), D, gaussian=True))
    assert objective(model, torch.rand(6, 1, 8, 8))["tc"].item() == pytest.approx(3.0)


def test_permute_dims_shuffles_each_column_independently():
    z = torch.arange(200.0).reshape(100, 2)
    p = permute_dims(z, torch.Generator().manual_seed(13))
    for k in range(2):
        assert torch.equal(p[:, k].sort().values, z[:, k])
    assert not torch.equal(p[:, 0] - p[:, 1], z[:, 0] - z[:, 1])  # rows are broken up


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("wae", {}, "unknown objective"),
        ("vae", {"lam": 1.0}, r"unknown option\(s\) \['lam'\]; options are \['beta'\]"),
        ("mmd", {}, "latent_dim"),
        ("mmd", {"latent_dim": 3, "kernel": "cosine"}, "kernel"),
        ("mmd", {"latent_dim": 3, "lam": -1.0}, "lam"),
        ("mmd", {"prior": Gaussian(2), "latent_dim": 3}, "prior.dim"),
        ("kld", {"lam": float("nan")}, "lam"),
        ("beta-tcvae", {"dataset_size": 0}, "dataset_size"),
        ("factorvae", {}, "latent_dim"),
        ("factorvae", {"latent_dim": 3, "disc_betas": (0.5, 1.5)}, "disc_betas"),
    ],
)
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        objective_class(name)(**options)
