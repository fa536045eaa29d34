"""The prior editor's Bokeh half: a live preview of prior samples, and draw tools to sketch a prior.

The axes stay where they are while the user draws (a stroke is read in the coordinates it was drawn in), and
move only when asked (`SketchPad.show` with ``fit``, the Reset view button). Two gaps of Bokeh's own tools are
filled in the browser: a stroke that starts after a hold (Bokeh turns a 300 ms hold into a "press", after which
its freehand tool ignores the motion) is drawn from the press and mouse-move events, and a click always places a
point (Bokeh's point tool takes a click near an existing point for a selection, and Bokeh reports a quick
second click as a double tap).
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
import torch
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, FreehandDrawTool, PointDrawTool, Range1d
from bokeh.plotting import figure

from explorer.drawing import sample_density
from explorer.priors import Prior
from explorer.style import DRAW_COLOR, PRIOR_COLOR, PRIOR_LINE
from explorer.widgets.bokehjs import BokehPane

BINS = 40
GRID = 200
MODES = {"replace": 1, "add": 0}  # stroke mode -> the freehand tools' num_objects (0: no limit)
POINT_PX = 6  # a click this close to a placed point is the point tool's (to drag it), not a new point

# one callback for the press, mouse-move and press-up events of a plot: a held stroke, drawn as Bokeh's tool would
HELD_STROKE = """
if (!tool.active) return
const {x, y} = cb_obj
const data = source.data
if (cb_obj.event_name === "press") {
  source._held = true
  const keep = tool.num_objects === 1 ? 0 : data.xs.length
  source.data = {xs: [...data.xs.slice(0, keep), [x]], ys: [...data.ys.slice(0, keep), [y]]}
} else if (source._held && cb_obj.event_name === "mousemove") {
  data.xs[data.xs.length - 1].push(x)
  data.ys[data.ys.length - 1].push(y)
  source.change.emit()  // redraw only; the stroke reaches the kernel at press-up
} else if (source._held && cb_obj.event_name === "pressup") {
  source._held = false
  source.setv({data: {xs: data.xs, ys: data.ys}}, {check_eq: false})  // changed in place: equal to itself
}
"""
TAP_POINT = """
const {x, y} = cb_obj
const kx = plot.inner_width / (plot.x_range.end - plot.x_range.start)
const ky = plot.inner_height / (plot.y_range.end - plot.y_range.start)
const xs = source.data.x, ys = source.data.y
for (let i = 0; i < xs.length; i++)
  if (Math.hypot((xs[i] - x) * kx, (ys[i] - y) * ky) < px) return
source.data = {x: [...xs, x], y: [...ys, y]}
"""


def _flat(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _stroke(xs: object, ys: object) -> tuple[np.ndarray, np.ndarray]:
    """One stroke as (grid, density): sorted by x, the density averaged where the stroke repeats an x."""
    grid, where = np.unique(_flat(xs), return_inverse=True)
    y = _flat(ys)
    return grid, np.bincount(where, weights=y, minlength=len(grid)) / np.bincount(where, minlength=len(grid))


def _freehand(fig: figure, source: ColumnDataSource, description: str) -> FreehandDrawTool:
    renderer = fig.multi_line("xs", "ys", source=source, color=DRAW_COLOR, line_width=3)
    tool = FreehandDrawTool(renderers=[renderer], num_objects=MODES["replace"], description=description)
    fig.add_tools(tool)
    held = CustomJS(args={"source": source, "tool": tool}, code=HELD_STROKE)
    for event in ("press", "mousemove", "pressup"):
        fig.js_on_event(event, held)
    return tool


class SketchPad:
    """Two Bokeh plots in one ``BokehModel`` (``widget``), each a preview with draw tools on top, and the drawing
    controls (``controls``: ``mode``, ``clear_button``, ``reset_button``).

    - ``density``: a histogram of one dimension's preview samples (``hist_source``), the prior's marginal density
      (``pdf_source``; a kernel estimate from the samples where it has no closed form) and freehand density strokes
      (``curve_source``: ``xs``/``ys``, x = z value, y = density).
    - ``pair`` (``pair=True``): a scatter of preview samples on two dimensions (``scatter_source``), with points
      placed by clicks and dragged by the PointDrawTool (``points_source``: ``x``/``y``) and freehand strokes
      (``strokes_source``).
    - ``mode``: "replace" (a new stroke replaces the drawn ones) or "add" (strokes add up); ``clear_button``
      empties the drawings; ``reset_button`` is wired by the editor (it calls `show` with ``fit``).

    Edits of the drawings (from the browser, or ``source.data = ...`` in Python) call ``on_curve`` / ``on_points``;
    `load_curve`, `load_points` and `clear` do not.
    """

    def __init__(self, pair: bool, on_curve: Callable[[], None], on_points: Callable[[], None]) -> None:
        self.hist_source = ColumnDataSource({"left": [], "right": [], "top": []})
        self.pdf_source = ColumnDataSource({"x": [], "y": []})
        self.curve_source = ColumnDataSource({"xs": [], "ys": []})
        self.scatter_source = ColumnDataSource({"x": [], "y": []})
        self.points_source = ColumnDataSource({"x": [], "y": []})
        self.strokes_source = ColumnDataSource({"xs": [], "ys": []})
        self._loading = False

        self.density = figure(width=380, height=220, tools="pan,wheel_zoom,reset", active_scroll=None,
                              x_range=Range1d(-4, 4), y_range=Range1d(0, 0.5), y_axis_label="density")
        self.density.quad(left="left", right="right", top="top", bottom=0, source=self.hist_source,
                          color=PRIOR_COLOR, alpha=0.4)
        self.density.line("x", "y", source=self.pdf_source, color=PRIOR_LINE, line_width=2)
        draw_curve = _freehand(self.density, self.curve_source, "Draw a density")
        self.density.toolbar.active_drag = draw_curve
        self.curve_source.on_change("data", self._changed(on_curve))
        self.draw_tools = [draw_curve]
        plots = [self.density]

        self.pair = None
        if pair:
            self.pair = figure(frame_width=300, frame_height=300, tools="pan,wheel_zoom,reset", active_scroll=None,
                               x_range=Range1d(-4, 4), y_range=Range1d(-4, 4))
            self.pair.scatter("x", "y", source=self.scatter_source, color=PRIOR_COLOR, alpha=0.3, size=3)
            points = self.pair.scatter("x", "y", source=self.points_source, color=DRAW_COLOR, size=8)
            draw_points = PointDrawTool(renderers=[points], add=False, description="Place points (drag to move)")
            self.pair.add_tools(draw_points)
            place = CustomJS(args={"source": self.points_source, "plot": self.pair, "px": POINT_PX}, code=TAP_POINT)
            for event in ("tap", "doubletap"):  # a quick second click is a "doubletap" to Bokeh, not a "tap"
                self.pair.js_on_event(event, place)
            self.draw_tools.append(_freehand(self.pair, self.strokes_source, "Draw strokes"))
            self.pair.toolbar.active_drag = draw_points
            self.points_source.on_change("data", self._changed(on_points))
            self.strokes_source.on_change("data", self._changed(on_points))
            plots.append(self.pair)
        self.widget = BokehPane(column(plots))
        self.widget.add_class("explorer-sketch")

        self.mode = widgets.ToggleButtons(options=list(MODES), value="replace", description="strokes",
                                          tooltips=["a new stroke replaces the drawing", "strokes add up"],
                                          style={"description_width": "50px", "button_width": "70px"})
        self.mode.observe(lambda change: self._set_mode(change["new"]), names="value")
        self.clear_button = widgets.Button(description="Clear drawing", layout={"width": "auto"},
                                           tooltip="empty the sketch pad (the prior stays until you draw)")
        self.clear_button.on_click(lambda _: self.clear())
        self.reset_button = widgets.Button(description="Reset view", layout={"width": "auto"},
                                           tooltip="fit the axes to the current prior")
        self.controls = widgets.HBox([self.mode, self.clear_button, self.reset_button],
                                     layout={"flex_flow": "row wrap"})

    def _changed(self, callback: Callable[[], None]) -> Callable[[str, object, object], None]:
        def on_change(_attr: str, _old: object, _new: object) -> None:
            if not self._loading:
                callback()
        return on_change

    def _set_mode(self, mode: str) -> None:
        for tool in self.draw_tools:
            tool.num_objects = MODES[mode]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The drawn density as (grid, density): each stroke sorted by z (its density averaged where it repeats a
        z) and zero outside its own span; strokes added up on the union of their grids."""
        strokes = [_stroke(xs, ys) for xs, ys in zip(self.curve_source.data["xs"], self.curve_source.data["ys"],
                                                      strict=True) if len(xs)]
        if len(strokes) <= 1:
            return strokes[0] if strokes else (np.empty(0), np.empty(0))
        grid = np.unique(np.concatenate([g for g, _ in strokes]))
        return grid, sum(np.interp(grid, g, d, left=0.0, right=0.0) for g, d in strokes)

    def points(self) -> np.ndarray:
        """The placed points and the vertices of the drawn strokes, ``[N, 2]``."""
        xs = [_flat(self.points_source.data["x"]), *map(_flat, self.strokes_source.data["xs"])]
        ys = [_flat(self.points_source.data["y"]), *map(_flat, self.strokes_source.data["ys"])]
        return np.column_stack([np.concatenate(xs), np.concatenate(ys)])

    def shown_density(self) -> tuple[np.ndarray, np.ndarray]:
        """The previewed dimension's density as (grid, density): where a sketch starts from."""
        return _flat(self.pdf_source.data["x"]), _flat(self.pdf_source.data["y"])

    def _load(self, **data: dict[str, list]) -> None:
        self._loading = True
        try:
            for name, value in data.items():
                getattr(self, f"{name}_source").data = value
        finally:
            self._loading = False

    def load_curve(self, grid: np.ndarray, density: np.ndarray) -> None:
        """Show a curve (a sketched dimension's) without calling ``on_curve``."""
        strokes = [list(map(float, grid))], [list(map(float, density))]
        self._load(curve={"xs": strokes[0], "ys": strokes[1]} if len(grid) else {"xs": [], "ys": []})

    def load_points(self, points: np.ndarray) -> None:
        """Show points (a sketched pair's) in place of the drawing, without calling ``on_points``."""
        self._load(points={"x": points[:, 0].tolist(), "y": points[:, 1].tolist()}, strokes={"xs": [], "ys": []})

    def clear(self) -> None:
        """Empty every drawing; the prior drawn so far stays until the next stroke or point."""
        self._load(curve={"xs": [], "ys": []}, points={"x": [], "y": []}, strokes={"xs": [], "ys": []})

    def show(self, prior: Prior, samples: np.ndarray, dim: int, pair: tuple[int, int], fit: bool = False) -> None:
        """Preview ``samples`` ``[n, d]`` of ``prior``: ``dim``'s histogram and density, ``pair``'s scatter; with
        ``fit``, move the axes onto them (never while drawing: a stroke must stay where it was drawn)."""
        x = samples[:, dim]
        low, high = np.quantile(x, [0.005, 0.995])
        high = max(high, low + 1e-6)
        counts, edges = np.histogram(x, bins=BINS, range=(low, high))
        top = counts / (len(x) * (edges[1] - edges[0]))  # a density over all samples, tails included
        self.hist_source.data = {"left": edges[:-1], "right": edges[1:], "top": top}
        margin = (edges[-1] - edges[0]) / 10
        grid = np.linspace(edges[0] - margin, edges[-1] + margin, GRID)
        try:
            pdf = prior.marginal_pdf(dim, torch.from_numpy(grid)).numpy()
        except NotImplementedError:  # Empirical codes: the density of the samples
            pdf = sample_density(x, grid)
        self.pdf_source.data = {"x": grid, "y": pdf}
        self.density.xaxis.axis_label = f"z{dim}"
        if fit:
            self.density.x_range.start, self.density.x_range.end = float(grid[0]), float(grid[-1])
            self.density.y_range.start, self.density.y_range.end = 0.0, 1.15 * float(max(top.max(), pdf.max()))
        if self.pair is not None:
            shown = samples[:, list(pair)]
            self.scatter_source.data = {"x": shown[:, 0], "y": shown[:, 1]}
            self.pair.xaxis.axis_label, self.pair.yaxis.axis_label = f"z{pair[0]}", f"z{pair[1]}"
            if fit:  # a square box, so that a drawn circle stays round
                (x0, y0), (x1, y1) = np.quantile(shown, [0.005, 0.995], axis=0)
                half = 0.6 * max(x1 - x0, y1 - y0, 1e-6)
                for axis, centre in ((self.pair.x_range, (x0 + x1) / 2), (self.pair.y_range, (y0 + y1) / 2)):
                    axis.start, axis.end = float(centre - half), float(centre + half)
