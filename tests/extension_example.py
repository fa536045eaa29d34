"""A user's own module, outside explorer/: one objective and one prior family, registered by defining them.

``python -m explorer train --plugin extension_example ...`` (with this folder on the Python path) offers both;
tests/test_extending.py checks that they reach the command line, the training panel and the prior editor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from explorer.objectives import Objective, Terms, register, weight
from explorer.priors import Factorized, Param


@register
class CodeNormAE(Objective):
    """An autoencoder with a penalty on the codes' squared norm: ``recon + rho * mean_i |z_i|^2``."""

    name = "l2-ae"
    label = "L2-AE"

    @dataclass(frozen=True)
    class Config:
        rho: float = weight(0.5, "weight of the squared code norm")

    def regularizer(
        self, z: Tensor, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Terms]:
        norm = z.square().sum(dim=1).mean()
        return self.config.rho * norm, {"norm": norm}


class Triangular(Factorized):
    """Independent symmetric triangular distributions on [center_j - width_j, center_j + width_j]."""

    family = "triangular"
    params = (Param("center", 0.0, -5.0, 5.0),
              Param("width", 1.0, 0.1, 10.0, scale="log", constraint="positive"))

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(2, n, self.dim, generator=generator, dtype=torch.float64)
        return self.center + self.width * (u[0] - u[1])  # the difference of two U(0, 1) is triangular on [-1, 1]
