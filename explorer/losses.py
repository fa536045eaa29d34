"""The prior as a loss for a training loop of your own: `MMDPrior`, an ``nn.Module`` whose ``forward(codes)`` is the
MMD^2 penalty of AE-MMD (`explorer.objectives.AEMMD`) against a fresh sample of a programmable prior.

    mmd_prior = MMDPrior(prior)
    loss = recon + lam * mmd_prior(z)

Both compute the penalty with `prior_mmd`, so a loop of your own and our `Trainer` regularize alike: the kernels,
estimators and median bandwidth of `explorer.mmd`, a prior sample as large as the (global, under torchrun) batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from explorer import distributed
from explorer.mmd import ESTIMATORS, KERNELS, marginal_mmd2, mmd2
from explorer.priors import Prior

SCALES = (0.5, 1.0, 2.0)  # kernel bandwidths as multiples of the median distance, as `explorer.mmd.mmd2`


def prior_mmd(codes: Tensor, prior: Prior, generator: torch.Generator | None, kernel: str = "rbf",
              estimator: str = "biased", scales: Sequence[float] = SCALES, marginal: float = 0.0) -> Tensor:
    """MMD^2 of ``codes`` [n, d] against ``n`` fresh samples of ``prior`` drawn from ``generator`` (CPU), plus
    ``marginal`` times the per-dimension sum of `explorer.mmd.marginal_mmd2` (which sees each dimension's shape).

    Under torchrun the codes of every rank are gathered first (gradients flow back to each rank's rows), so the
    penalty is the global batch's. Non-finite codes (a diverged encoder) give NaN rather than an error: the loss
    says the step went wrong, and the loop decides what to do."""
    if prior.dim != codes.shape[1]:
        raise ValueError(f"MMD to the prior: prior.dim {prior.dim} must equal the model's latent_dim "
                         f"{codes.shape[1]} (the codes' size)")
    codes = distributed.gather(codes)
    target = prior.sample(codes.shape[0], generator).to(device=codes.device, dtype=codes.dtype)
    if not torch.isfinite(codes).all():
        return codes.new_tensor(math.nan)
    joint = mmd2(codes, target, kernel=kernel, estimator=estimator, scales=scales)
    if not marginal:
        return joint
    return joint + marginal * marginal_mmd2(codes, target, estimator=estimator, scales=scales)


class MMDPrior(nn.Module):
    """``forward(codes)``: the MMD^2 of a batch of codes against a fresh sample of ``prior``, differentiable in the
    codes; assign ``prior`` to swap it (the next forward samples the new one).

    ``kernel`` ("rbf", the paper's, or "imq"), ``estimator`` ("biased" or "unbiased") and ``scales``: as
    `explorer.mmd.mmd2`; ``marginal``: the weight of the per-dimension term (`prior_mmd`; 0: off). ``generator``:
    the prior samples' source; an int seeds a generator of the module's own (default 0), so a seeded loop draws the
    same samples every run."""

    def __init__(self, prior: Prior, kernel: str = "rbf", estimator: str = "biased",
                 scales: Sequence[float] = SCALES, marginal: float = 0.0,
                 generator: torch.Generator | int = 0) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"MMDPrior: kernel must be one of {KERNELS}, got {kernel!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"MMDPrior: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if not math.isfinite(marginal) or marginal < 0:
            raise ValueError(f"MMDPrior: marginal must be a finite weight >= 0, got {marginal!r}")
        self.prior, self.kernel, self.estimator, self.scales = prior, kernel, estimator, tuple(scales)
        self.marginal = float(marginal)
        self.generator = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(
            generator)

    def forward(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The penalty of ``codes`` [n, d] (a 0-d tensor); ``generator`` overrides the module's for this call."""
        return prior_mmd(codes, self.prior, generator or self.generator, self.kernel, self.estimator, self.scales,
                         self.marginal)

    def extra_repr(self) -> str:
        return (f"prior={self.prior!r}, kernel={self.kernel!r}, estimator={self.estimator!r}, scales={self.scales}, "
                f"marginal={self.marginal}")
