"""Traversals: a code decoded with one dimension at a time swept over the prior's quantiles, and the cache that
decides when the live view decodes them anew."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from explorer.live.pacing import RateLimiter
from explorer.live.probe import evaluating, to_hwc_uint8
from explorer.models import AutoEncoder

TRAVERSAL_QUANTILES = np.linspace(0.05, 0.95, 7)


def traversal_grid(model: AutoEncoder, code: torch.Tensor, values: np.ndarray,
                   picture: Callable[[torch.Tensor], np.ndarray] = to_hwc_uint8) -> np.ndarray:
    """Decode ``code`` [d] with z_i replaced by each of ``values[i]`` [d, k], drawn by ``picture`` (default: images
    in [0, 1]): uint8 [d, k, H, W, C]."""
    d, k = values.shape
    grid = code.detach().reshape(1, 1, d).repeat(d, k, 1)
    for i in range(d):
        grid[i, :, i] = torch.as_tensor(values[i], dtype=grid.dtype)
    with evaluating(model):
        images = picture(model.decode(grid.reshape(d * k, d).to(next(model.parameters()).device)))
    return images.reshape(d, k, *images.shape[1:])


def traversal_values(prior_sample: np.ndarray) -> np.ndarray:
    """Columns of the traversals: each dimension's prior quantiles `TRAVERSAL_QUANTILES`, [d, k]."""
    return np.quantile(prior_sample, TRAVERSAL_QUANTILES, axis=0).T


class Traversals:
    """The traversals of the selected code, decoded anew when the selection or the prior changes, at rest, or
    (while the model advances) when ``limiter`` allows; ``version`` counts the decodings."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.version = 0
        self._key: tuple[int, int, int] | None = None
        self._values, self._grid = np.zeros((0, 0)), np.zeros((0, 0, 0, 0, 0), dtype=np.uint8)

    def get(self, model: AutoEncoder, code: torch.Tensor, key: tuple[int, int, int], prior_sample: np.ndarray,
            advancing: bool, picture: Callable[[torch.Tensor], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(values [d, k], pictures [d, k, H, W, C]) for ``code``; ``key`` is (selection, prior identity, step)."""
        changed = self._key is None or self._key[:2] != key[:2]
        if changed or (self._key != key and (not advancing or self.limiter.due())):
            started = time.perf_counter()
            self._values = traversal_values(prior_sample)
            self._grid = traversal_grid(model, code, self._values, picture)
            self._key = key
            self.version += 1
            self.limiter.record(time.perf_counter() - started)
        return self._values, self._grid
