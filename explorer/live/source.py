"""`LiveSource`: what the live layer reads from a run, and all it reads. `Trainer` is one; a `Monitor`'s run of a
user's own loop is another, so the same owner, probe, LPS, traversals and snapshots serve both."""

from __future__ import annotations

from typing import Protocol

from torch import nn

from explorer.data import Dataset
from explorer.priors import Prior


class LiveSource(Protocol):
    """A run the live views can show: a model with ``encode`` / ``decode``, the prior its codes are matched to
    (None: none; assigning one takes effect at the next step), where it is, and the data it trains on."""

    model: nn.Module
    prior: Prior | None
    step: int
    run_id: str  # a new run is a new id
    dataset: Dataset

    @property
    def latent_dim(self) -> int: ...

    @property
    def total_steps(self) -> int: ...
