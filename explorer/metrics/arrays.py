"""The inputs of every metric: codes, factors and images as float64 arrays of rows, checked once, here."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def float_rows(x: ArrayLike, name: str, *, owner: str = "", min_rows: int = 1, min_columns: int = 1,
               finite: bool = False, flatten: bool = False) -> np.ndarray:
    """``x`` (a torch tensor, or anything numpy reads) as a float64 array [n, d] of n rows.

    ``flatten``: rows of any shape [n, ...] are flattened to [n, features] (images); otherwise ``x`` must be 2-D.
    A ValueError names ``owner`` (the metric), ``name`` and what was wrong: the shape, too few rows or columns,
    or (with ``finite``) NaN or inf values.
    """
    x = float64(x)
    prefix = f"{owner}: " if owner else ""
    if flatten and x.ndim >= 2:
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or len(x) < min_rows or x.shape[1] < min_columns:
        wanted = "rows [n, ...]" if flatten else "2-D [n, d]"
        bounds = [f"n >= {min_rows}" if min_rows > 1 else "", f"d >= {min_columns}" if min_columns > 1 else ""]
        bounds_text = " and ".join(b for b in bounds if b)
        raise ValueError(f"{prefix}{name} must be {wanted}{' with ' + bounds_text if bounds_text else ''}, "
                         f"got shape {x.shape}")
    if finite and not np.isfinite(x).all():
        raise ValueError(f"{prefix}{name} must be finite, got NaN or inf")
    return x


def float64(x: ArrayLike) -> np.ndarray:
    """``x`` (a torch tensor, on any device, or anything numpy reads) as a float64 numpy array of its shape."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
