"""`SketchControls`: the sketch pad with the choice of the pair of dimensions it draws on and the spread of points.

It turns what is drawn into sketched priors and shows a sketched prior's drawing; which dimensions the result
replaces is the `PriorEditor`'s business.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import numpy as np

from explorer.priors import Prior, Sketched, SketchedPoints
from explorer.widgets.prior_controls import Quiet
from explorer.widgets.sketch_pad import SketchPad

BANDWIDTH = 0.25  # default spread of each drawn point: a ring of radius 2 drawn with it stays a ring


class SketchControls:
    """The `SketchPad` (``pad``) of a ``latent_dim``-dimensional prior and its controls.

    ``pair_x`` / ``pair_y`` choose the pair of dimensions of the scatter preview and of the 2-D sketch;
    ``use_points_button`` asks for the drawn points as a joint `SketchedPoints` block on that pair, each point
    spread by ``bandwidth``. Edits report through ``on_curve()`` (a density stroke), ``on_points()`` (the drawn
    points or the spread), ``on_use()`` (the button) and ``on_pair()`` (the pair chosen). With one dimension there
    is no pair, and no pair controls.
    """

    def __init__(self, latent_dim: int, on_curve: Callable[[], None], on_points: Callable[[], None],
                 on_use: Callable[[], None], on_pair: Callable[[], None]) -> None:
        self._on_points = on_points
        self._quiet = Quiet()
        dims = [(f"z{j}", j) for j in range(latent_dim)]
        self.pair_x = widgets.Dropdown(options=dims, value=0, description="x", layout={"width": "140px"})
        self.pair_y = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y",
                                       layout={"width": "140px"})
        self.use_points_button = widgets.Button(description="Use drawn points", tooltip="the drawn points become "
                                                "a joint sketched prior on the x and y dimensions",
                                                layout={"width": "auto"})
        self.bandwidth = widgets.FloatLogSlider(value=BANDWIDTH, base=10, min=-2, max=0.5, step=0.05,
                                                description="spread", readout_format=".2g",
                                                tooltip="the standard deviation around each drawn point",
                                                style={"description_width": "45px"}, layout={"width": "260px"})
        self.pad = SketchPad(latent_dim >= 2, on_curve=on_curve, on_points=self._points_edited)
        self.pair_x.observe(lambda _: on_pair(), "value")
        self.pair_y.observe(lambda _: on_pair(), "value")
        self.use_points_button.on_click(lambda _: on_use())
        self.bandwidth.observe(lambda _: self._points_edited(), "value")
        pair_row = [widgets.HBox([self.pair_x, self.pair_y, self.use_points_button]),
                    self.bandwidth] if latent_dim >= 2 else []
        self.rows = [*pair_row, self.pad.controls, self.pad.widget]

    @property
    def pair(self) -> tuple[int, int]:
        """The chosen (x, y) dimensions."""
        return self.pair_x.value, self.pair_y.value

    def _points_edited(self) -> None:
        if not self._quiet.on:
            self._on_points()

    def points_block(self) -> tuple[tuple[int, int], SketchedPoints]:
        """The drawn points as a `SketchedPoints` block on the chosen pair; ValueError where they make none."""
        i, j = self.pair
        if i == j:
            raise ValueError("choose two different dimensions for x and y")
        return (i, j), Sketched.from_points(self.pad.points(), bandwidth=self.bandwidth.value)

    def curve_start(self) -> tuple[np.ndarray, np.ndarray]:
        """Where a drawn density starts: the curve drawn, else the density shown (so the prior stays until a
        stroke)."""
        drawn = self.pad.curve()
        return drawn if len(drawn[0]) >= 2 else self.pad.shown_density()

    def show_points(self, blocks: list[tuple[tuple[int, ...], Prior]]) -> None:
        """Show the drawn points and spread of the `SketchedPoints` block among ``blocks`` on the chosen pair."""
        i, j = self.pair
        for dims, block in blocks:
            if i != j and set(dims) == {i, j} and isinstance(block, SketchedPoints):
                self.pad.load_points(block.points.numpy()[:, [dims.index(i), dims.index(j)]])
                with self._quiet():
                    self.bandwidth.value = float(block.bandwidth.mean())
