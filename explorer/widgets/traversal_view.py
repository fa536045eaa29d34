"""Decoded latent traversals: one row per dimension, columns at the prior's quantiles, from a chosen code."""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from PIL import Image

from explorer.live import TRAVERSAL_QUANTILES, Snapshot

CELL = 48  # at least this many screen pixels per decoded image (integer upscaling)
GAP = 2


def traversal_png(snapshot: Snapshot, cell: int = CELL) -> bytes:
    """One PNG: per row, the selected image and its reconstruction, a gap, then that dimension's traversal."""
    d, k, h, w, c = snapshot.traversals.shape
    canvas = np.full((d * (h + GAP), (k + 2) * (w + GAP) + 2 * GAP, c), 255, np.uint8)

    def paste(image: np.ndarray, r: int, col: int) -> None:
        x = col * (w + GAP) + (2 * GAP if col >= 2 else 0)
        canvas[r * (h + GAP) : r * (h + GAP) + h, x : x + w] = image

    paste(snapshot.original, 0, 0)
    paste(snapshot.reconstruction, 0, 1)
    for i in range(d):
        for j in range(k):
            paste(snapshot.traversals[i, j], i, j + 2)
    scale = max(1, -(-cell // h))
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class TraversalView:
    """The traversal grid as an image; `update(snapshot)` under the app's lock."""

    def __init__(self) -> None:
        quantiles = ", ".join(f"{q:.0%}" for q in TRAVERSAL_QUANTILES)
        self.title = widgets.HTML("<b>Traversals</b>")
        caption = widgets.HTML(
            "A probe image and its reconstruction, then row i decodes its code with z<sub>i</sub> set to the "
            f"prior's quantiles ({quantiles}). Click a code in the scatter to start from it."
        )
        self.image = widgets.Image(format="png", layout={"width": "auto", "max_width": "100%"})
        self.widget = widgets.VBox([self.title, caption, self.image], layout={"align_items": "flex-start"})

    def update(self, snapshot: Snapshot) -> None:
        self.title.value = f"<b>Traversals</b> from probe image {snapshot.selected}"
        self.image.value = traversal_png(snapshot)
