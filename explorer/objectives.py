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
the batch (the Gaussian log-likelihood with variance 1/2, up to a constant). METHOD.md first chose the MSE
averaged over pixels for the AE family; measured, that was wrong: against a per-pixel mean, lambda = 0.3 makes the
MMD gradient dominate the encoder and AE-MMD on ``shapes`` stays at the mean image (NMSE 0.4 dB after 1,500
steps, where a plain AE reaches -8.5 dB), and lambda = 3 is worse, while the paper reports lambda from 0.1 to 2
working equally and AE-MMD's NMSE within 1 dB of the plain AE's. With the per-image sum, AE-MMD at lambda = 0.3
learns as fast as the AE. For the VAE family this is the standard ELBO weighting against a KL summed over latent
dimensions.

Term names and totals (``loss = recon + ...``):
- ``"ae"``: ``recon``.
- ``"mmd"``: ``lam * mmd`` (mmd = MMD^2 between codes and a same-size fresh prior sample).
- ``"kld"``: ``lam * kld`` (kld = KL(N(batch mean, batch covariance) || N(0, I))).
- ``"vae"`` / ``"beta-vae"``: ``beta * kl`` (closed-form KL(q(z|x) || N(0, I)), sum over dims, batch mean).
- ``"beta-tcvae"``: ``alpha * mi + beta * tc + gamma * dwkl`` (minibatch-weighted sampling, Chen et al. 2018).
- ``"factorvae"``: ``kl + gamma * tc + disc`` (Kim & Mnih 2018; ``disc`` trains only the discriminator).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from explorer import distributed
from explorer.mmd import ESTIMATORS, KERNELS, mmd2
from explorer.models import AutoEncoder
from explorer.priors import Gaussian, Prior, from_dict

Terms = dict[str, Tensor]
LOG_2PI = math.log(2 * math.pi)


def _check_non_negative(owner: str, name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")
    return value


def _full_precision(t: Tensor) -> Tensor:
    """float32 for the half-precision outputs of an autocast network; anything else unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class Objective(nn.Module):
    """Plain autoencoder: ``loss = recon`` (squared error summed over pixels). Base class of all objectives."""

    name: ClassVar[str] = "ae"
    needs_gaussian_encoder: ClassVar[bool] = False
    supports_distributed: ClassVar[bool] = True  # a rank's loss terms are per-sample means or use gathered codes

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
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options()}

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra optimizer parameter groups owned by the objective (default: none)."""
        return []

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options().items())


class AEMMD(Objective):
    """AE-MMD: ``recon + lam * MMD^2(codes, fresh prior sample)``; ``prior`` may be reassigned between steps.

    ``prior``: a Prior, its ``to_dict()``, or None for N(0, I) in ``latent_dim`` dimensions (then required).
    """

    name = "mmd"

    def __init__(
        self,
        prior: Prior | dict[str, Any] | None = None,
        lam: float = 0.3,
        kernel: str = "rbf",
        estimator: str = "biased",
        latent_dim: int | None = None,
    ) -> None:
        super().__init__()
        if prior is None:
            if latent_dim is None:
                raise ValueError("mmd objective: give a prior or latent_dim (for the default N(0, I) prior)")
            prior = Gaussian(_check_positive_int("mmd objective", "latent_dim", latent_dim))
        self.prior: Prior = from_dict(prior) if isinstance(prior, dict) else prior
        if latent_dim is not None and self.prior.dim != latent_dim:
            raise ValueError(f"mmd objective: prior.dim {self.prior.dim} != latent_dim {latent_dim}")
        self.lam = _check_non_negative("mmd objective", "lam", lam)
        if kernel not in KERNELS:
            raise ValueError(f"mmd objective: kernel must be one of {KERNELS}, got {kernel!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"mmd objective: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.kernel, self.estimator = kernel, estimator

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        if self.prior.dim != z.shape[1]:
            raise ValueError(
                f"mmd objective: prior.dim {self.prior.dim} must equal the model's latent_dim {z.shape[1]}"
            )
        z = distributed.gather(z)  # the global batch under torchrun; z itself otherwise
        target = self.prior.sample(z.shape[0], generator).to(device=z.device, dtype=z.dtype)
        if not torch.isfinite(z).all():  # a diverged encoder: a non-finite loss, on which the trainer stops
            return z.new_tensor(math.nan), {"mmd": z.new_tensor(math.nan)}
        mmd = mmd2(z, target, kernel=self.kernel, estimator=self.estimator)
        return self.lam * mmd, {"mmd": mmd}

    def options(self) -> dict[str, Any]:
        return {
            "prior": self.prior.to_dict(),
            "lam": self.lam,
            "kernel": self.kernel,
            "estimator": self.estimator,
        }


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


class AEKLD(Objective):
    """AE-KLD: ``recon + lam * KL(N(batch mean, batch covariance) || N(0, I))``.

    The paper does not give lam for AE-KLD; the default 0.3 is AE-MMD's, for a like-for-like comparison.
    """

    name = "kld"

    def __init__(self, lam: float = 0.3, jitter: float = 1e-6) -> None:
        super().__init__()
        self.lam = _check_non_negative("kld objective", "lam", lam)
        self.jitter = _check_non_negative("kld objective", "jitter", jitter)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        kld = batch_gaussian_kl(distributed.gather(z), self.jitter)
        return self.lam * kld, {"kld": kld}

    def options(self) -> dict[str, Any]:
        return {"lam": self.lam, "jitter": self.jitter}


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mu, exp(logvar)) (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form KL(N(mu, exp(logvar)) || N(0, I)), summed over dimensions, mean over the batch."""
    return (0.5 * (mu**2 + logvar.exp() - logvar - 1)).sum(dim=1).mean()


class VAE(Objective):
    """VAE / beta-VAE: ``recon + beta * kl``; reparameterized codes, noise drawn from ``generator``."""

    name = "vae"
    needs_gaussian_encoder = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = _check_non_negative(f"{self.name} objective", "beta", beta)

    def code(self, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None) -> Tensor:
        # the noise of the global batch, of which this rank takes its rows (all of it in one process)
        n, rank = mu.shape[0], distributed.rank()
        eps = torch.randn((n * distributed.world_size(), *mu.shape[1:]), generator=generator, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps[rank * n : (rank + 1) * n].to(mu.device)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        kl = kl_to_standard_normal(mu, logvar)
        return self.beta * kl, {"kl": kl}

    def options(self) -> dict[str, Any]:
        return {"beta": self.beta}


class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017), beta = 4."""

    name = "beta-vae"

    def __init__(self, beta: float = 4.0) -> None:
        super().__init__(beta)


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


class BetaTCVAE(VAE):
    """beta-TCVAE: ``recon + alpha * mi + beta * tc + gamma * dwkl``.

    ``dataset_size`` N enters the minibatch-weighted sampling estimate (default 60,000, MNIST's training set;
    pass the real size). It shifts mi, tc and dwkl by constants only, so it does not change the gradients.
    """

    name = "beta-tcvae"
    supports_distributed = False

    def __init__(self, beta: float = 4.0, alpha: float = 1.0, gamma: float = 1.0, dataset_size: int = 60_000):
        super().__init__(beta)
        self.alpha = _check_non_negative("beta-tcvae objective", "alpha", alpha)
        self.gamma = _check_non_negative("beta-tcvae objective", "gamma", gamma)
        self.dataset_size = _check_positive_int("beta-tcvae objective", "dataset_size", dataset_size)

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        mi, tc, dwkl = tc_decomposition(z, mu, logvar, self.dataset_size)
        return self.alpha * mi + self.beta * tc + self.gamma * dwkl, {"mi": mi, "tc": tc, "dwkl": dwkl}

    def options(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "dataset_size": self.dataset_size,
        }


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


class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018): ``recon + kl + gamma * tc + disc``, one optimizer, one backward.

    The discriminator D maps a code to logits (q(z), prod_j q(z_j)); tc = mean(D(z)[0] - D(z)[1]) over the
    batch, computed with D's parameters detached (so it trains the VAE only); disc = cross-entropy of D on the
    detached codes of the first half of the batch (label 0) and on a permute-dims copy of the second half
    (label 1), which trains D only. Defaults: 5 hidden layers of 1000 units (about 4 M parameters; reduce
    ``disc_hidden`` for CPU runs). D has its own Adam group (lr 1e-4, betas (0.5, 0.9)) via `param_groups`.
    """

    name = "factorvae"
    supports_distributed = False

    def __init__(
        self,
        latent_dim: int,
        gamma: float = 10.0,
        disc_hidden: int = 1000,
        disc_layers: int = 5,
        disc_lr: float = 1e-4,
        disc_betas: tuple[float, float] | list[float] = (0.5, 0.9),
    ) -> None:
        super().__init__(beta=1.0)
        owner = "factorvae objective"
        self.latent_dim = _check_positive_int(owner, "latent_dim", latent_dim)
        self.gamma = _check_non_negative(owner, "gamma", gamma)
        self.disc_hidden = _check_positive_int(owner, "disc_hidden", disc_hidden)
        self.disc_layers = _check_positive_int(owner, "disc_layers", disc_layers)
        self.disc_lr = _check_non_negative(owner, "disc_lr", disc_lr)
        if len(disc_betas) != 2 or not all(0 <= b < 1 for b in disc_betas):
            raise ValueError(f"{owner}: disc_betas must be two numbers in [0, 1), got {disc_betas!r}")
        self.disc_betas = (float(disc_betas[0]), float(disc_betas[1]))
        self.discriminator = discriminator_mlp(self.latent_dim, self.disc_hidden, self.disc_layers)

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
        return kl + self.gamma * tc + disc, {"kl": kl, "tc": tc, "disc": disc}

    def options(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "gamma": self.gamma,
            "disc_hidden": self.disc_hidden,
            "disc_layers": self.disc_layers,
            "disc_lr": self.disc_lr,
            "disc_betas": list(self.disc_betas),
        }

    def param_groups(self) -> list[dict[str, Any]]:
        return [
            {"params": list(self.discriminator.parameters()), "lr": self.disc_lr, "betas": self.disc_betas}
        ]


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Objective, AEMMD, AEKLD, VAE, BetaVAE, BetaTCVAE, FactorVAE)
}


def build_objective(name: str, **options: Any) -> Objective:
    """The objective registered as ``name`` (see `OBJECTIVES`), with its constructor options."""
    if name not in OBJECTIVES:
        raise ValueError(f"build_objective: unknown objective {name!r}, known: {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ValueError(f"build_objective: bad options for {name!r}: {exc}") from exc
    return cls(**options)


def objective_from_dict(d: dict[str, Any]) -> Objective:
    """Rebuild an objective from `Objective.to_dict()` (weights, e.g. a discriminator's, are not included)."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"objective_from_dict: expected a dict with a 'name' key, got {d!r}")
    options = dict(d)
    return build_objective(options.pop("name"), **options)
