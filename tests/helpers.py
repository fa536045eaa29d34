"""Helpers the test files import: the small training setting they share, and a context manager that owns a
background run for the length of a ``with`` block."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
