"""Pictures of inputs and outputs as PNGs for the views: a row or grid of same-sized uint8 images, scaled up by
whole pixels so that an 8 x 8 digit reads as well as a 64 x 64 image."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

GAP = 2  # white pixels between two pictures (before scaling)


def grid_png(images: Sequence[np.ndarray], columns: int, cell: int = 48) -> bytes:
    """``images`` (uint8 [H, W, C], all the same shape) in rows of ``columns``, each at least ``cell`` pixels
    high, as one PNG."""
    h, w, c = images[0].shape
    rows = -(-len(images) // columns)
    canvas = np.full((rows * (h + GAP) - GAP, columns * (w + GAP) - GAP, c), 255, np.uint8)
    for k, image in enumerate(images):
        r, col = divmod(k, columns)
        canvas[r * (h + GAP) : r * (h + GAP) + h, col * (w + GAP) : col * (w + GAP) + w] = image
    scale = max(1, -(-cell // h))
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
