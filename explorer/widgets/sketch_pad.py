"""The prior editor's Bokeh half: a live preview of prior samples, and draw tools to sketch a prior."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, FreehandDrawTool, PointDrawTool
from bokeh.plotting import figure
from jupyter_bokeh import BokehModel

from explorer.priors import Prior

BINS = 40
GRID = 200
SAMPLE_COLOR, DRAW_COLOR = "#7f7f7f", "crimson"


def _flat(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


class SketchPad:
    """Two Bokeh plots in one ``BokehModel`` (``widget``), each a preview with draw tools on top.

    - ``density``: a histogram of one dimension's preview samples (``hist_source``), the prior's marginal density
      where it is analytic (``pdf_source``), and a freehand density curve (``curve_source``: ``xs``/``ys`` strokes,
      x = z value, y = density).
    - ``pair`` (``pair=True``): a scatter of preview samples on two dimensions (``scatter_source``), with points
      placed by the PointDrawTool (``points_source``: ``x``/``y``) and freehand strokes (``strokes_source``).

    Edits of the drawings (from the browser, or ``source.data = ...`` in Python) call ``on_curve`` / ``on_points``;
    `load_curve` and `load_points` do not.
    """

    def __init__(self, pair: bool, on_curve: Callable[[], None], on_points: Callable[[], None]) -> None:
        self.hist_source = ColumnDataSource({"left": [], "right": [], "top": []})
        self.pdf_source = ColumnDataSource({"x": [], "y": []})
        self.curve_source = ColumnDataSource({"xs": [], "ys": []})
        self.scatter_source = ColumnDataSource({"x": [], "y": []})
        self.points_source = ColumnDataSource({"x": [], "y": []})
        self.strokes_source = ColumnDataSource({"xs": [], "ys": []})
        self._loading = False

        self.density = figure(width=440, height=220, tools="pan,wheel_zoom,reset", y_axis_label="density")
        self.density.quad(left="left", right="right", top="top", bottom=0, source=self.hist_source,
                          color=SAMPLE_COLOR, alpha=0.4)
        self.density.line("x", "y", source=self.pdf_source, color="black", line_width=2)
        curve = self.density.multi_line("xs", "ys", source=self.curve_source, color=DRAW_COLOR, line_width=3)
        draw_curve = FreehandDrawTool(renderers=[curve], num_objects=1, description="Draw a density")
        self.density.add_tools(draw_curve)
        self.density.toolbar.active_drag = draw_curve
        self.curve_source.on_change("data", self._changed(on_curve))
        plots = [self.density]

        self.pair = None
        if pair:
            self.pair = figure(width=440, height=320, tools="pan,wheel_zoom,reset", match_aspect=True)
            self.pair.scatter("x", "y", source=self.scatter_source, color=SAMPLE_COLOR, alpha=0.3, size=3)
            strokes = self.pair.multi_line("xs", "ys", source=self.strokes_source, color=DRAW_COLOR, line_width=3)
            points = self.pair.scatter("x", "y", source=self.points_source, color=DRAW_COLOR, size=8)
            draw_points = PointDrawTool(renderers=[points], description="Place points (drag to move)")
            self.pair.add_tools(draw_points, FreehandDrawTool(renderers=[strokes], description="Draw strokes"))
            self.pair.toolbar.active_drag = draw_points
            self.points_source.on_change("data", self._changed(on_points))
            self.strokes_source.on_change("data", self._changed(on_points))
            plots.append(self.pair)
        self.widget = BokehModel(column(plots))

    def _changed(self, callback: Callable[[], None]) -> Callable[[str, object, object], None]:
        def on_change(_attr: str, _old: object, _new: object) -> None:
            if not self._loading:
                callback()
        return on_change

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The drawn curve as (grid, density): sorted by z, the density averaged where strokes repeat a z."""
        xs, ys = self.curve_source.data["xs"], self.curve_source.data["ys"]
        x = np.concatenate([_flat(v) for v in xs]) if len(xs) else np.empty(0)
        y = np.concatenate([_flat(v) for v in ys]) if len(ys) else np.empty(0)
        grid, where = np.unique(x, return_inverse=True)
        return grid, np.bincount(where, weights=y, minlength=len(grid)) / np.bincount(where, minlength=len(grid))

    def points(self) -> np.ndarray:
        """The placed points and the vertices of the drawn strokes, ``[N, 2]``."""
        xs = [_flat(self.points_source.data["x"]), *map(_flat, self.strokes_source.data["xs"])]
        ys = [_flat(self.points_source.data["y"]), *map(_flat, self.strokes_source.data["ys"])]
        return np.column_stack([np.concatenate(xs), np.concatenate(ys)])

    def load_curve(self, grid: np.ndarray, density: np.ndarray) -> None:
        """Show a curve (a sketched dimension's) without calling ``on_curve``."""
        self._loading = True
        try:
            self.curve_source.data = {"xs": [list(map(float, grid))], "ys": [list(map(float, density))]}
        finally:
            self._loading = False

    def load_points(self, points: np.ndarray) -> None:
        """Show points (a sketched pair's) in place of the drawing, without calling ``on_points``."""
        self._loading = True
        try:
            self.points_source.data = {"x": points[:, 0].tolist(), "y": points[:, 1].tolist()}
            self.strokes_source.data = {"xs": [], "ys": []}
        finally:
            self._loading = False

    def show(self, prior: Prior, samples: np.ndarray, dim: int, pair: tuple[int, int]) -> None:
        """Preview ``samples`` ``[n, d]`` of ``prior``: ``dim``'s histogram and density, ``pair``'s scatter."""
        x = samples[:, dim]
        low, high = np.quantile(x, [0.005, 0.995])
        counts, edges = np.histogram(x, bins=BINS, range=(low, high))
        top = counts / (len(x) * (edges[1] - edges[0]))  # a density over all samples, tails included
        self.hist_source.data = {"left": edges[:-1], "right": edges[1:], "top": top}
        margin = (edges[-1] - edges[0]) / 10
        grid = np.linspace(edges[0] - margin, edges[-1] + margin, GRID)
        try:
            pdf = prior.marginal_pdf(dim, torch.from_numpy(grid)).numpy()
        except NotImplementedError:  # Empirical codes: no density to overlay
            grid, pdf = np.empty(0), np.empty(0)
        self.pdf_source.data = {"x": grid, "y": pdf}
        self.density.xaxis.axis_label = f"z{dim}"
        if self.pair is not None:
            self.scatter_source.data = {"x": samples[:, pair[0]], "y": samples[:, pair[1]]}
            self.pair.xaxis.axis_label, self.pair.yaxis.axis_label = f"z{pair[0]}", f"z{pair[1]}"
