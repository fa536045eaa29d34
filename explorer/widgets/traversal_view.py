"""Decoded latent traversals: one row per dimension, columns at the prior's quantiles, from a chosen code."""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from PIL import Image

from explorer.live import TRAVERSAL_QUANTILES, Snapshot

CELL = 56  # pixels per decoded image on screen
GAP = 8


def traversal_png(snapshot: Snapshot, cell: int = CELL) -> bytes:
    """One PNG: per row, the selected image and its reconstruction, a gap, then that dimension's traversal."""
    d, k, *_, c = snapshot.traversals.shape
    canvas = np.full((d * (cell + 2), (k + 2) * (cell + 2) + GAP, 3), 255, np.uint8)

    def paste(image: np.ndarray, r: int, col: int) -> None:
        tile = np.asarray(Image.fromarray(image[..., 0] if c == 1 else image).convert("RGB").resize(
            (cell, cell), Image.NEAREST))
        x = col * (cell + 2) + (GAP if col >= 2 else 0)
        canvas[r * (cell + 2) : r * (cell + 2) + cell, x : x + cell] = tile

    paste(snapshot.original, 0, 0)
    paste(snapshot.reconstruction, 0, 1)
    for i in range(d):
        for j in range(k):
            paste(snapshot.traversals[i, j], i, j + 2)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
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
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox([self.title, caption, self.image])

    def update(self, snapshot: Snapshot) -> None:
        self.title.value = f"<b>Traversals</b> from probe image {snapshot.selected}"
        self.image.value = traversal_png(snapshot)
