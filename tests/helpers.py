"""Helpers the test files import: the small training setting they share, a context manager that owns a
background run for the length of a ``with`` block, another process holding a run folder's writer lock, and a
user's own model and loop step (for the monitor)."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explorer.live import BackgroundTrainer
from explorer.settings import TrainConfig

SMALL = TrainConfig(dataset="digits", objective="mmd", latent_dim=3, steps=150, batch_size=32, lr=1e-3)


def small_config(**changes: Any) -> TrainConfig:
    """AE-MMD on the digits with d = 3, batch 32, lr 1e-3, 150 steps: trains at hundreds of steps/s on one core."""
    return dataclasses.replace(SMALL, **changes)


@contextmanager
def running(owner: Any, timeout: float = 10.0) -> Iterator[Any]:
    """Start ``owner`` (a `BackgroundTrainer`, or an `Explorer` through its Start button) and yield it; on leaving the
    block, however it is left, stop training and join the thread, re-raising the error that stopped it, if any."""
    background = owner if isinstance(owner, BackgroundTrainer) else None
    if background is not None:
        background.start()
    else:
        owner.panel.start.click()
    try:
        yield owner
    finally:
        background = background or owner.background  # an Explorer's Start may have made a new run
        background.stop(timeout=timeout)
        background.join(timeout=timeout)


HOLD = "import sys; from explorer.run_folder import acquire; acquire(sys.argv[1]); print('held', flush=True); input()"


@contextmanager
def another_writer(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``folder``'s writer lock for the length of the block (killed on leaving it)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


class TinyAE(nn.Module):
    """A user's own autoencoder, not one of explorer's: ``encode`` / ``decode`` of inputs [n, *shape] in [0, 1].

    ``calls`` records (training mode, gradients enabled) of every encode; ``broken`` makes encode return NaN."""

    def __init__(self, shape: tuple[int, ...], latent_dim: int = 3) -> None:
        super().__init__()
        size = math.prod(shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, 32), nn.ReLU(), nn.Dropout(0.1),
                                     nn.Linear(32, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, size), nn.Sigmoid(),
                                     nn.Unflatten(1, shape))
        self.calls: list[tuple[bool, bool]] = []
        self.broken = False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        z = self.encoder(x)
        return torch.full_like(z, math.nan) if self.broken else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def user_step(model: TinyAE, mmd_prior: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              lam: float = 1.0) -> dict[str, torch.Tensor]:
    """One step of a plain PyTorch AE-MMD loop of the user's own: its loss terms."""
    z = model.encode(x)
    recon = (model.decode(z) - x).square().flatten(1).sum(1).mean()
    mmd = mmd_prior(z)
    loss = recon + lam * mmd
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.detach(), "recon": recon.detach(), "mmd": mmd.detach()}
