"""Training objectives: reconstruction + a regularizer on the codes (the structure of disent's frameworks).

``Objective.forward(model, x, generator)`` runs: posterior -> ``code`` (mu, or a reparameterized sample) ->
decode -> ``reconstruction`` + ``regularizer``, and returns the named scalar terms with ``"loss"`` the total.
Each objective overrides as few of these hooks as it can. All randomness (prior samples, VAE noise, FactorVAE
permutations) is drawn from ``generator`` on the CPU and then moved to the device.

Mixed precision: under a bf16 ``torch.autocast`` only the networks run in bf16; the codes are cast to float32 and
the reconstruction and penalties are computed in float32 with autocast off (a bf16 median bandwidth or batch
covariance would be too coarse).

Several processes (`explorer.distributed`): objectives with ``supports_distributed`` compute their batch-level
penalties on the codes gathered from every rank and draw the random numbers of the whole global batch, so a run
on N ranks equals one process with the global batch. beta-TCVAE (pairwise terms over the batch) and FactorVAE
(half-batch discriminator split) do not, and the trainer refuses them under ``torchrun``.

Reconstruction term (``"recon"``), the same for every objective: squared error summed over pixels, mean over
the batch (the Gaussian log-likelihood with variance 1/2, up to a constant), because with a per-pixel mean the
MMD gradient dominates the encoder at the paper's lambda (docs/method.md, "Reconstruction term"). For the VAE
family this is the standard ELBO weighting against a KL summed over latent dimensions.

Each objective is one class: its ``name`` (the registry key, what ``--objective`` takes), its ``label`` (tables,
the panel), its capabilities (``takes_prior``, ``gaussian_encoder``, ``supports_distributed``) and a ``Config``
dataclass declaring its options with their defaults, checks and help; penalty weights are declared with `weight`,
facts the trainer supplies from the run (latent size, dataset size) with ``fact=True``. `register` adds a class
to `OBJECTIVES`, from which the command line, the training panel, `explorer.paper.reproduce` and the trainer read.
Each class docstring gives its loss, ``loss = recon + ...``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from explorer import distributed
from explorer.config import Check, from_options, integer, number, one_of, option, validate
from explorer.losses import prior_mmd
from explorer.mmd import ESTIMATORS, KERNELS
from explorer.models import AutoEncoder
from explorer.priors import Gaussian, Prior, from_dict
from explorer.registry import Registry

Terms = dict[str, Tensor]
LOG_2PI = math.log(2 * math.pi)
OBJECTIVES: Registry[type[Objective]] = Registry("objective")  # name -> class; see `register`
WEIGHT_RANGE = (0.01, 100.0)  # the panel's log slider: the weights the paper and the baselines use, and beyond


def weight(default: float, help: str, range: tuple[float, float] = WEIGHT_RANGE) -> Any:
    """A penalty weight (finite, >= 0); ``range`` is the span the training panel's log slider offers."""
    return option(default, help, number(), weight=True, range=range)


def fact(help: str, check: Check, default: Any = None) -> Any:
    """A setting the trainer supplies from the run (``latent_dim``, ``dataset_size``) unless given."""
    return option(default, help, check, fact=True)


def _full_precision(t: Tensor) -> Tensor:
    """float32 for the half-precision outputs of an autocast network; anything else unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


T = TypeVar("T", bound="type[Objective]")


def register(cls: T) -> T:
    """Class decorator: add an `Objective` subclass to `OBJECTIVES` under its ``name``.

    Registered objectives appear in ``--objective``, in the training panel and in ``reproduce --objectives``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"register: expected an Objective subclass, got {cls!r}")
    return OBJECTIVES.register(cls.name, cls)


class Objective(nn.Module):
    """Plain autoencoder: ``loss = recon`` (squared error summed over pixels). Base class of all objectives."""

    name: ClassVar[str] = "ae"
    label: ClassVar[str] = "AE"
    takes_prior: ClassVar[bool] = False  # built with the run's prior (``prior=``), which it matches
    needs_gaussian_encoder: ClassVar[bool] = False  # a VAE: the encoder gives (mu, logvar); its code is mu(x)
    supports_distributed: ClassVar[bool] = True  # a rank's loss terms are per-sample means or use gathered codes

    @dataclass(frozen=True)
    class Config:
        """The objective's options (none for the plain AE)."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        owner = f"{self.name} objective"
        self.config = from_options(self.Config, owner, options)
        validate(self.config, owner)

    @classmethod
    def facts(cls) -> tuple[str, ...]:
        """The options the trainer supplies from the run when they are not given."""
        return tuple(f.name for f in dataclasses.fields(cls.Config) if f.metadata.get("fact"))

    @classmethod
    def weights(cls) -> tuple[dataclasses.Field, ...]:
        """The penalty weights, the main one (the panel's slider) first."""
        return tuple(f for f in dataclasses.fields(cls.Config) if f.metadata.get("weight"))

    def forward(self, model: AutoEncoder, x: Tensor, generator: torch.Generator | None = None) -> Terms:
        mu, logvar = model.posterior(x)
        if self.needs_gaussian_encoder and logvar is None:
            raise ValueError(f"objective {self.name!r} needs a Gaussian encoder (ModelConfig(gaussian=True))")
        mu, logvar = _full_precision(mu), None if logvar is None else _full_precision(logvar)
        z = self.code(mu, logvar, generator)
        x_hat = model.decode(z)
        with torch.autocast(x.device.type, enabled=False):
            terms = {"recon": self.reconstruction(_full_precision(x_hat), x)}
            penalty, reg_terms = self.regularizer(z, mu, logvar, generator)
        terms.update(reg_terms)
        terms["loss"] = terms["recon"] + penalty
        return terms

    def code(self, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None) -> Tensor:
        """The code that is decoded and regularized: mu for deterministic objectives."""
        return mu

    def reconstruction(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Squared error summed over pixels, mean over the batch."""
        return (x_hat - x).square().flatten(1).sum(dim=1).mean()

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        """(weighted penalty added to the loss, its named unweighted terms)."""
        return z.new_zeros(()), {}

    def options(self) -> dict[str, Any]:
        """JSON-able constructor options (what `to_dict` stores besides the name)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.config).items()}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options()}

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra optimizer parameter groups owned by the objective (default: none)."""
        return []

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options().items())


register(Objective)


@register
class AEMMD(Objective):
    """AE-MMD: ``recon + lam * MMD^2(codes, fresh prior sample)``; ``prior`` may be reassigned between steps.

    ``prior``: a Prior, its ``to_dict()``, or None for N(0, I) in ``latent_dim`` dimensions (then required).
    """

    name = "mmd"
    label = "AE-MMD"
    takes_prior = True

    @dataclass(frozen=True)
    class Config:
        lam: float = weight(0.3, "weight of the MMD^2 penalty (the paper: 0.3; 0.1 to 2 work alike)")
        kernel: str = option("rbf", "MMD kernel: the paper's RBF sum, or IMQ (heavier tails)", one_of(KERNELS),
                             choices=KERNELS)
        estimator: str = option("biased", "MMD^2 estimator: biased (V-statistic, the paper's) or unbiased",
                                one_of(ESTIMATORS), choices=ESTIMATORS)
        marginal: float = weight(0.0, "weight of the per-dimension MMD^2 added to the joint one, which sees each "
                                      "dimension's shape where the joint kernel cannot (0: off; 1 weighs them alike)")

    def __init__(self, prior: Prior | dict[str, Any] | None = None, latent_dim: int | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        if prior is None:
            if latent_dim is None:
                raise ValueError("mmd objective: give a prior or latent_dim (for the default N(0, I) prior)")
            prior = Gaussian(integer()("mmd objective", "latent_dim", latent_dim))
        self.prior: Prior = from_dict(prior) if isinstance(prior, dict) else prior
        if latent_dim is not None and self.prior.dim != latent_dim:
            raise ValueError(f"mmd objective: prior.dim {self.prior.dim} != latent_dim {latent_dim}")

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        # the global batch under torchrun; NaN for a diverged encoder, on which the trainer stops
        config = self.config
        mmd = prior_mmd(z, self.prior, generator, config.kernel, config.estimator, marginal=config.marginal)
        return self.config.lam * mmd, {"mmd": mmd}

    def options(self) -> dict[str, Any]:
        return {"prior": self.prior.to_dict(), **super().options()}


def batch_gaussian_kl(z: Tensor, jitter: float = 1e-6) -> Tensor:
    """KL(N(m, S) || N(0, I)) with m, S the mean and (unbiased) covariance of the rows of z [n, d], n >= 2.

    0.5 (tr S + |m|^2 - d - log det S), computed in float64 with ``jitter * I`` added to S; NaN if S + jitter
    is not positive definite (e.g. non-finite codes).
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"batch_gaussian_kl: z must be [n, d] with n >= 2, got shape {tuple(z.shape)}")
    zd = z.double()
    d = zd.shape[1]
    mean = zd.mean(dim=0)
    centred = zd - mean
    cov = centred.T @ centred / (zd.shape[0] - 1) + jitter * torch.eye(d, dtype=zd.dtype, device=zd.device)
    sign, logdet = torch.linalg.slogdet(cov)
    logdet = torch.where(sign > 0, logdet, torch.full_like(logdet, math.nan))
    return (0.5 * (cov.diagonal().sum() + mean @ mean - d - logdet)).to(z.dtype)


@register
class AEKLD(Objective):
    """AE-KLD: ``recon + lam * KL(N(batch mean, batch covariance) || N(0, I))``."""

    name = "kld"
    label = "AE-KLD"

    @dataclass(frozen=True)
    class Config:
        # the paper gives no lambda for AE-KLD: AE-MMD's, for a like-for-like comparison
        lam: float = weight(0.3, "weight of the batch KL penalty")
        jitter: float = option(1e-6, "added to the diagonal of the batch covariance (its log-determinant)", number())

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        kld = batch_gaussian_kl(distributed.gather(z), self.config.jitter)
        return self.config.lam * kld, {"kld": kld}


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mu, exp(logvar)) (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form KL(N(mu, exp(logvar)) || N(0, I)), summed over dimensions, mean over the batch."""
    return (0.5 * (mu**2 + logvar.exp() - logvar - 1)).sum(dim=1).mean()


@register
class VAE(Objective):
    """VAE / beta-VAE: ``recon + beta * kl``; reparameterized codes, noise drawn from ``generator``."""

    name = "vae"
    label = "VAE"
    needs_gaussian_encoder = True

    @dataclass(frozen=True)
    class Config:
        beta: float = weight(1.0, "weight of the KL term")

    def code(self, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None) -> Tensor:
        # the noise of the global batch, of which this rank takes its rows (all of it in one process)
        n, rank = mu.shape[0], distributed.rank()
        eps = torch.randn((n * distributed.world_size(), *mu.shape[1:]), generator=generator, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps[rank * n : (rank + 1) * n].to(mu.device)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        kl = kl_to_standard_normal(mu, logvar)
        return self.config.beta * kl, {"kl": kl}


@register
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017), beta = 4."""

    name = "beta-vae"
    label = "beta-VAE"

    @dataclass(frozen=True)
    class Config:
        beta: float = weight(4.0, "weight of the KL term")


def tc_decomposition(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(index-code MI, total correlation, dimension-wise KL), minibatch-weighted sampling (Chen et al. 2018).

    log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(B N), likewise per dimension for the product of marginals.
    The three terms sum exactly to the Monte Carlo KL mean_i[log q(z_i|x_i) - log p(z_i)].
    """
    batch = z.shape[0]
    log_bn = math.log(batch * dataset_size)
    pairwise = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [i, j, dim]
    log_qz = torch.logsumexp(pairwise.sum(dim=2), dim=1) - log_bn
    log_prod_marginals = (torch.logsumexp(pairwise, dim=1) - log_bn).sum(dim=1)
    log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(dim=1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
    mi = (log_qz_given_x - log_qz).mean()
    tc = (log_qz - log_prod_marginals).mean()
    dwkl = (log_prod_marginals - log_pz).mean()
    return mi, tc, dwkl


@register
class BetaTCVAE(VAE):
    """beta-TCVAE: ``recon + alpha * mi + beta * tc + gamma * dwkl``.

    ``dataset_size`` N enters the minibatch-weighted sampling estimate (default 60,000, MNIST's training set;
    the trainer passes the real size). It shifts mi, tc and dwkl by constants only, so it does not change the
    gradients.
    """

    name = "beta-tcvae"
    label = "beta-TCVAE"
    supports_distributed = False

    @dataclass(frozen=True)
    class Config:
        beta: float = weight(4.0, "weight of the total correlation")
        alpha: float = weight(1.0, "weight of the index-code mutual information")
        gamma: float = weight(1.0, "weight of the dimension-wise KL")
        dataset_size: int = fact("images in the training set (N of the estimate)", integer(), 60_000)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        c = self.config
        mi, tc, dwkl = tc_decomposition(z, mu, logvar, c.dataset_size)
        return c.alpha * mi + c.beta * tc + c.gamma * dwkl, {"mi": mi, "tc": tc, "dwkl": dwkl}


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shuffle each column of z [n, d] independently (samples of the product of the marginals)."""
    order = torch.argsort(torch.rand(z.shape, generator=generator), dim=0).to(z.device)
    return torch.gather(z, 0, order)


def discriminator_mlp(latent_dim: int, hidden: int, hidden_layers: int) -> nn.Sequential:
    """Kim & Mnih's discriminator: ``hidden_layers`` x (Linear, LeakyReLU(0.2)), then Linear to 2 logits."""
    layers: list[nn.Module] = []
    for i in range(hidden_layers):
        layers += [nn.Linear(latent_dim if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(hidden if hidden_layers else latent_dim, 2))


def _betas(owner: str, name: str, value: Any) -> tuple[float, float]:
    try:
        ok = not isinstance(value, (str, bytes)) and len(value) == 2 and all(0 <= b < 1 for b in value)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{owner}: {name} must be two numbers in [0, 1), got {value!r}")
    return float(value[0]), float(value[1])


@register
class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018): ``recon + kl + gamma * tc + disc``, one optimizer, one backward.

    The discriminator D maps a code to logits (q(z), prod_j q(z_j)); tc = mean(D(z)[0] - D(z)[1]) over the
    batch, computed with D's parameters detached (so it trains the VAE only); disc = cross-entropy of D on the
    detached codes of the first half of the batch (label 0) and on a permute-dims copy of the second half
    (label 1), which trains D only. Defaults: 5 hidden layers of 1000 units (about 4 M parameters; reduce
    ``disc_hidden`` for CPU runs). D has its own Adam group (lr 1e-4, betas (0.5, 0.9)) via `param_groups`.
    """

    name = "factorvae"
    label = "FactorVAE"
    supports_distributed = False

    @dataclass(frozen=True)
    class Config:
        gamma: float = weight(10.0, "weight of the discriminator's total correlation estimate")
        latent_dim: int = fact("latent size (the discriminator's input)", integer())
        disc_hidden: int = option(1000, "units per hidden layer of the discriminator", integer())
        disc_layers: int = option(5, "hidden layers of the discriminator", integer())
        disc_lr: float = option(1e-4, "Adam learning rate of the discriminator", number())
        disc_betas: tuple[float, float] = option((0.5, 0.9), "Adam betas of the discriminator", _betas)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        c = self.config
        self.discriminator = discriminator_mlp(c.latent_dim, c.disc_hidden, c.disc_layers)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        half = z.shape[0] // 2
        if half < 1:
            raise ValueError(f"factorvae objective: needs a batch of at least 2, got {z.shape[0]}")
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        logits = torch.func.functional_call(self.discriminator, frozen, (z,))
        tc = (logits[:, 0] - logits[:, 1]).mean()
        codes = z.detach()
        real, fake = codes[:half], permute_dims(codes[half : 2 * half], generator)
        disc_logits = self.discriminator(torch.cat([real, fake]))
        labels = torch.cat([torch.zeros(half), torch.ones(half)]).long().to(z.device)
        disc = F.cross_entropy(disc_logits, labels)
        kl = kl_to_standard_normal(mu, logvar)
        return kl + self.config.gamma * tc + disc, {"kl": kl, "tc": tc, "disc": disc}

    def param_groups(self) -> list[dict[str, Any]]:
        c = self.config
        return [{"params": list(self.discriminator.parameters()), "lr": c.disc_lr, "betas": c.disc_betas}]


def objective_class(name: str) -> type[Objective]:
    """The objective registered as ``name``; build it with its options (and ``prior=`` if it takes one)."""
    return OBJECTIVES[name]


def objective_from_dict(d: dict[str, Any]) -> Objective:
    """Rebuild an objective from `Objective.to_dict()` (weights, e.g. a discriminator's, are not included)."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"objective_from_dict: expected a dict with a 'name' key, got {d!r}")
    options = dict(d)
    return objective_class(options.pop("name"))(**options)
