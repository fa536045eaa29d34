"""Decoded latent traversals: one row per dimension, columns at the prior's quantiles, from a chosen code."""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from explorer.live import TRAVERSAL_QUANTILES, Snapshot

CELL = 48  # at least this many screen pixels per decoded image (integer upscaling)
GAP = 2
FONT_PX = 13
LEFT, TOP, RIGHT = 34, 20, 96  # margins of the labels: z_i, the columns' quantiles, each row's range of z_i


def _tiles(snapshot: Snapshot) -> np.ndarray:
    """Per row, the selected image and its reconstruction, a gap, then that dimension's traversal: uint8 [H, W, C]."""
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
    return canvas


def traversal_png(snapshot: Snapshot, cell: int = CELL) -> bytes:
    """The traversal grid as one PNG, its rows labelled z_i (with the range of z_i they sweep) and its columns
    with the prior quantile they set z_i to, in pixels of their own so the labels stay sharp at any scale."""
    d, _, h, w, c = snapshot.traversals.shape
    scale = max(1, -(-cell // h))
    tiles = _tiles(snapshot).repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.new("RGB", (LEFT + tiles.shape[1] + RIGHT, TOP + tiles.shape[0]), "white")
    image.paste(Image.fromarray(tiles[..., 0] if c == 1 else tiles), (LEFT, TOP))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=FONT_PX)
    row, column = (h + GAP) * scale, (w + GAP) * scale

    def centre(x: float) -> float:
        return LEFT + x + w * scale / 2

    draw.text((centre(0), TOP / 2), "image", fill="black", font=font, anchor="mm")
    draw.text((centre(column), TOP / 2), "recon.", fill="black", font=font, anchor="mm")
    for j, q in enumerate(TRAVERSAL_QUANTILES):
        draw.text((centre((j + 2) * column + 2 * GAP * scale), TOP / 2), f"{q:.0%}", fill="black", font=font,
                  anchor="mm")
    values = snapshot.traversal_values
    for i in range(d):
        middle = TOP + i * row + h * scale / 2
        draw.text((LEFT / 2, middle), f"z{i}", fill="black", font=font, anchor="mm")
        draw.text((LEFT + tiles.shape[1] + 6, middle), f"{values[i, 0]:.2g} … {values[i, -1]:.2g}", fill="black",
                  font=font, anchor="lm")
    buffer = io.BytesIO()
    (image.convert("L") if c == 1 else image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class TraversalView:
    """The traversal grid as an image; `update(snapshot)` under the app's lock."""

    def __init__(self) -> None:
        quantiles = ", ".join(f"{q:.0%}" for q in TRAVERSAL_QUANTILES)
        self.title = widgets.HTML("<b>Traversals</b>")
        caption = widgets.HTML(
            "A probe image and its reconstruction, then row i decodes its code with z<sub>i</sub> set to the "
            f"prior's quantiles ({quantiles}; the range of z<sub>i</sub> at the right). Click near a code in the "
            "scatter to start from it."
        )
        self.image = widgets.Image(format="png", layout={"width": "auto", "max_width": "100%"})
        self.widget = widgets.VBox([self.title, caption, self.image], layout={"align_items": "flex-start"})

    def update(self, snapshot: Snapshot) -> None:
        self.title.value = f"<b>Traversals</b> from probe image {snapshot.selected}"
        self.image.value = traversal_png(snapshot)
