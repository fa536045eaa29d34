"""The aggregate posterior against the prior: a scatter of the codes over prior samples (a pair of dimensions, PCA
or UMAP) where a tap selects the nearest code, and below it the codes' structure (`StructureView`)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
from bokeh.events import DoubleTap, Tap
from bokeh.models import (
    BoxSelectTool,
    ColorBar,
    ColumnDataSource,
    CustomJS,
    HoverTool,
    LassoSelectTool,
    Legend,
    LinearColorMapper,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from explorer.extras import require
from explorer.live import Probe, Snapshot
from explorer.style import CODE_COLOR, PRIOR_COLOR
from explorer.widgets.bokehjs import BokehPane
from explorer.widgets.outline import OUTLINE_MASS, mass_outline
from explorer.widgets.selection_view import Preview, SelectionView
from explorer.widgets.state import LiveState
from explorer.widgets.structure_view import StructureView

PROJECTIONS = ("pair", "PCA", "UMAP")
FEW_POINTS = 1000  # up to this many points draw solid
PRIOR_ALPHA = 0.45  # the prior's points, as a share of the codes' opacity
OUTLINE_COLOR = "#222222"  # the line around the prior's densest 90 %, drawn over the codes
TAP_RADIUS = 0.04  # a tap selects the nearest code within this fraction of the shown span of each axis
UMAP_WAIT = "computing UMAP of step {step}… (the first run in a process takes about 25 s)"


def density_style(n: int) -> tuple[float, float]:
    """Opacity and size of ``n`` points that keep a cloud readable: a few hundred points solid, 100,000 faint and
    small, so that where they pile up reads as density instead of one blot."""
    scale = min(1.0, (FEW_POINTS / max(n, 1)) ** 0.5)
    return max(0.8 * scale, 0.06), max(5 * scale**0.4, 1.5)


def pca_project(codes: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both arrays on the first two principal axes of ``codes`` (centred on the codes' mean), and the fraction of
    the codes' variance each axis holds."""
    mean = codes.mean(0)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.eye(codes.shape[1], 2)
    explained = np.zeros(2)
    explained[: min(2, len(s))] = (s**2 / max(float((s**2).sum()), 1e-12))[:2]
    return (codes - mean) @ axes, (others - mean) @ axes, explained


def umap_project(codes: np.ndarray, others: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes and prior sample embedded together in 2-D by UMAP (slow: run it off the UI path)."""
    umap = require("umap", "umap", "the UMAP projection")  # numba compiles on first use: ~25 s in a fresh process

    both = umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(np.concatenate([codes, others]))
    return both[: len(codes)], both[len(codes) :]


def nearest_within(points: np.ndarray, x: float, y: float, span: np.ndarray, radius: float) -> int | None:
    """Index of the point of ``points`` ``[n, 2]`` nearest to (x, y), in units of ``span`` (per axis), if it lies
    within ``radius`` of it; else None."""
    if not len(points):
        return None
    distance = np.hypot(*((points - [x, y]) / np.maximum(span, 1e-12)).T)
    best = int(np.argmin(distance))
    return best if distance[best] <= radius else None


class LatentView:
    """Scatter of codes over prior samples (``widget``) and their structure (``structure``); `update(snapshot)`
    under the app's lock.

    A tap anywhere lands in ``tap_source`` (``x``/``y``, data coordinates) and selects the nearest code within
    `TAP_RADIUS`: the selection is kept in ``state`` (the app's `LiveState`, or one of the view's own), the code
    is ringed (``selected_source``) and ``on_select(index)`` starts the traversals from it; ``clear_button``
    drops the selection and returns the traversals to probe image 0 (``on_select(0)``). The mouse wheel zooms only once
    the user picks the wheel-zoom tool.
    """

    def __init__(self, latent_dim: int, probe: Probe, lock: threading.RLock,
                 on_select: Callable[[int], None] | None = None, state: LiveState | None = None,
                 preview: Preview | None = None) -> None:
        self.latent_dim, self.probe, self.lock, self.on_select = latent_dim, probe, lock, on_select
        self.state = state if state is not None else LiveState()
        self.state.observe(self._show_selection, "selection")
        self._snapshot: Snapshot | None = None
        self._shown = np.zeros((0, 2))  # the codes as last drawn, in the scatter's coordinates
        self._umap: concurrent.futures.Future | None = None
        self._umap_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-umap")
        self._umap_result: tuple[int, np.ndarray, np.ndarray] | None = None
        self._umap_step: int | None = None
        self._closed = False
        dims = [(f"z{i}", i) for i in range(latent_dim)]
        small = {"width": "100px"}
        self.x_dim = widgets.Dropdown(options=dims, value=0, description="x", layout=small,
                                      style={"description_width": "15px"})
        self.y_dim = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y", layout=small,
                                      style={"description_width": "15px"})
        self.projection = widgets.ToggleButtons(options=PROJECTIONS, value="pair", description="view",
                                                style={"description_width": "40px", "button_width": "60px"})
        colours = ["none"] + (["label"] if probe.labels is not None else []) + list(probe.factor_names)
        self.colour = widgets.Dropdown(options=colours, value=colours[1] if len(colours) > 1 else "none",
                                       description="colour", layout={"width": "170px"},
                                       style={"description_width": "45px"})
        self.clear_button = widgets.Button(description="Clear selection", disabled=True,
                                           tooltip="traversals from probe image 0 again", layout={"width": "auto"})
        self.note = widgets.HTML()
        for control in (self.x_dim, self.y_dim, self.projection, self.colour):
            control.observe(self._redraw, names="value")
        self.clear_button.on_click(lambda _: self.clear())

        self.prior_source = ColumnDataSource({"x": [], "y": []})
        self.outline_source = ColumnDataSource({"xs": [], "ys": []})
        self.code_source = ColumnDataSource({"x": [], "y": [], "c": []})
        self.selected_source = ColumnDataSource({"x": [], "y": []})
        self.tap_source = ColumnDataSource({"x": [], "y": []})
        self.mapper = LinearColorMapper(palette=Viridis256)
        self.scatter = figure(width=420, height=400, title="codes over prior samples", output_backend="webgl",
                              tools="pan,wheel_zoom,box_zoom,reset", active_scroll=None, match_aspect=True)
        # filled points without an outline: a canvas draws 100,000 of them in half the time, and they read the same
        prior = self._prior_glyph = self.scatter.scatter("x", "y", source=self.prior_source, color=PRIOR_COLOR,
                                                         alpha=0.8 * PRIOR_ALPHA, size=4, line_color=None)
        codes = self._code_glyph = self.scatter.scatter("x", "y", source=self.code_source, size=5, alpha=0.8,
                                                        color={"field": "c", "transform": self.mapper},
                                                        line_color=None)
        outline = self.scatter.multi_line("xs", "ys", source=self.outline_source, line_color=OUTLINE_COLOR,
                                          line_width=2, line_dash="dashed")
        ring = self.scatter.scatter("x", "y", source=self.selected_source, size=14, fill_color=None,
                                    line_color="black", line_width=2)
        # solid keys drawn under the legend's swatches: 100,000 points are too faint to show their colour there
        prior_key, codes_key = (self.scatter.scatter([], [], color=colour, size=7)
                                for colour in (PRIOR_COLOR, CODE_COLOR))
        self.scatter.add_layout(Legend(items=[("prior", [prior_key, prior]),
                                              (f"prior's {OUTLINE_MASS:.0%}", [outline]),
                                              ("codes", [codes_key, codes]), ("selected", [ring])],
                                       orientation="horizontal", click_policy="hide", padding=2, margin=2,
                                       label_text_font_size="9pt"), "below")
        self.colour_bar = ColorBar(color_mapper=self.mapper, width=10, padding=4)
        self.scatter.add_layout(self.colour_bar, "right")
        tapped = CustomJS(args={"source": self.tap_source}, code="source.data = {x: [cb_obj.x], y: [cb_obj.y]}")
        for event in (Tap, DoubleTap):  # Bokeh reports a quick second click as a double tap
            self.scatter.js_on_event(event, tapped)
        self.tap_source.on_change("data", self._tapped)
        self.details = SelectionView(probe, lock, preview)
        self.hover_source = ColumnDataSource({"index": []})
        hovered = CustomJS(args={"source": self.hover_source}, code="""
            const hit = cb_data.index.indices;
            if (hit.length && source.data.index[0] !== hit[0]) source.data = {index: [hit[0]]};""")
        self.scatter.add_tools(HoverTool(renderers=[codes], tooltips=None, callback=hovered),
                               BoxSelectTool(renderers=[codes]), LassoSelectTool(renderers=[codes]))
        self.hover_source.on_change("data", self._hovered)
        self.code_source.selected.on_change("indices", self._selected_many)

        self.structure_view = StructureView(latent_dim, lock)
        self.structure = self.structure_view.widget
        self.plots = BokehPane(self.scatter, lock)
        self.plots.add_class("explorer-latent")
        controls = widgets.VBox([self.projection, widgets.HBox([self.x_dim, self.y_dim, self.colour]),
                                 self.clear_button])
        # the scatter and what lies behind its codes; `structure` goes below
        self.widget = widgets.VBox([controls, self.note, widgets.HBox([self.plots, self.details.widget])])

    @property
    def marginal_sources(self) -> list[tuple[ColumnDataSource, ColumnDataSource]]:
        return self.structure_view.marginal_sources

    @property
    def cov_source(self) -> ColumnDataSource:
        return self.structure_view.cov_source

    def update(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` (call with the lock held)."""
        self._snapshot = snapshot
        self._draw_scatter(snapshot)
        self.structure_view.update(snapshot)

    @property
    def selected(self) -> int | None:
        """The selected code (probe image), None when there is none: read from ``state``."""
        return self.state.selected

    def select(self, index: int) -> None:
        """Select code ``index`` (ringed) and start the traversals from it."""
        self.state.select(index)
        if self.on_select is not None:
            self.on_select(index)

    def clear(self) -> None:
        """Drop the selection: no ring, the traversals start from probe image 0."""
        self.state.select(None)
        if self.on_select is not None:
            self.on_select(0)

    def _show_selection(self, selected: int | None) -> None:
        self.clear_button.disabled = selected is None
        self._draw_ring()

    def _tapped(self, _attr: str, _old: object, new: dict) -> None:
        if not len(new["x"]):
            return
        with self.lock:
            shown = np.concatenate([self._shown, np.column_stack([self.prior_source.data["x"],
                                                                  self.prior_source.data["y"]])])
            span = np.ptp(shown, axis=0) if len(shown) else np.ones(2)
            index = nearest_within(self._shown, float(new["x"][0]), float(new["y"][0]), span, TAP_RADIUS)
            if index is not None:
                self.select(index)

    def _hovered(self, _attr: str, _old: object, new: dict) -> None:
        snapshot = self._snapshot
        if new["index"] and snapshot is not None and new["index"][0] < len(snapshot.codes):
            self.details.hovered(int(new["index"][0]), snapshot.codes[new["index"][0]])

    def _selected_many(self, _attr: str, _old: object, new: list[int]) -> None:
        with self.lock:
            self.details.selected(new, len(self._shown))

    def _redraw(self, _change: object = None) -> None:
        with self.lock:
            if self._snapshot is not None:
                self._draw_scatter(self._snapshot)

    def _project(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray, tuple[str, str]] | None:
        """Codes and prior sample in the chosen view, with its axis labels; None while UMAP computes."""
        codes, prior = snapshot.codes, snapshot.prior_sample
        pair = self.projection.value == "pair"
        self.x_dim.disabled = self.y_dim.disabled = not pair
        if self.projection.value == "PCA":
            codes, prior, explained = pca_project(codes, prior)
            return codes, prior, (f"PC1 ({explained[0]:.0%} of the codes' variance)", f"PC2 ({explained[1]:.0%})")
        if self.projection.value == "UMAP":
            return self._umap_projection(snapshot)
        x, y = self.x_dim.value, self.y_dim.value
        return codes[:, [x, y]], prior[:, [x, y]], (f"z{x}", f"z{y}")

    def _umap_projection(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray, tuple[str, str]] | None:
        """The latest finished UMAP embedding; embeds a newer snapshot in the worker when it is free."""
        idle = self._umap is None or self._umap.done()
        if idle and self._umap is not None and self._umap.exception() is not None:
            self.note.value = f"<span style='color:#b00'>UMAP failed: {self._umap.exception()}</span>"
            return None
        if idle and snapshot.step != self._umap_step and not self._closed:
            self._umap_step = step = snapshot.step
            self._umap = self._umap_pool.submit(umap_project, snapshot.codes, snapshot.prior_sample)
            self._umap.add_done_callback(lambda future: self._umap_done(future, step))
        if self._umap_result is None:
            return None
        step, codes, prior = self._umap_result
        return codes, prior, (f"UMAP 1 (step {step})", "UMAP 2")

    @property
    def umap_step(self) -> int | None:
        """The step of the codes the finished UMAP embedding was computed on; None until the first is ready."""
        return None if self._umap_result is None else self._umap_result[0]

    def _umap_done(self, future: concurrent.futures.Future, step: int) -> None:
        if future.exception() is None and not self._closed:
            self._umap_result = (step, *future.result())
        if self.projection.value == "UMAP":
            self._redraw()

    def _draw_scatter(self, snapshot: Snapshot) -> None:
        with self.plots.batched():
            self._draw_projected(snapshot)

    def _draw_projected(self, snapshot: Snapshot) -> None:
        projected = self._project(snapshot)
        if projected is None:  # UMAP computing (or failed): show that, not the previous view's picture
            waiting = self._umap is not None and not self._umap.done()
            self.note.value = UMAP_WAIT.format(step=self._umap_step) if waiting else self.note.value
            self.scatter.title.text = "computing UMAP…" if waiting else "UMAP failed"
            self._shown = np.zeros((0, 2))
            self.prior_source.data = {"x": [], "y": []}
            self.outline_source.data = {"xs": [], "ys": []}
            self.code_source.data = {"x": [], "y": [], "c": []}
            self._draw_ring()
            return
        codes, prior, (x_label, y_label) = projected
        self.note.value = f"{snapshot.codes_of or f'{len(codes):,} codes'} over as many prior samples"
        self.scatter.title.text = "codes over prior samples"
        alpha, size = density_style(len(codes))
        self._code_glyph.glyph.update(fill_alpha=alpha, size=size)
        self._prior_glyph.glyph.update(fill_alpha=alpha * PRIOR_ALPHA, size=size)
        self.scatter.xaxis.axis_label, self.scatter.yaxis.axis_label = x_label, y_label
        colour = self.probe.colour_values(self.colour.value, len(codes))
        coloured = self.colour.value != "none"
        self.mapper.palette = Viridis256 if coloured else [CODE_COLOR]
        self.mapper.low, self.mapper.high = float(colour.min()), float(max(colour.max(), colour.min() + 1e-9))
        self.colour_bar.visible = coloured
        self.colour_bar.title = self.colour.value if coloured else ""
        self._shown = codes
        # float32 halves what goes to the browser: 100,000 codes and as many prior points are 2 MB, not 4
        self.prior_source.data = {"x": prior[:, 0].astype(np.float32), "y": prior[:, 1].astype(np.float32)}
        xs, ys = mass_outline(prior)
        self.outline_source.data = {"xs": xs, "ys": ys}
        self.code_source.data = {"x": codes[:, 0].astype(np.float32), "y": codes[:, 1].astype(np.float32),
                                 "c": colour.astype(np.float32)}
        self._draw_ring()

    def _draw_ring(self) -> None:
        ringed = self.selected is not None and self.selected < len(self._shown)
        point = self._shown[self.selected] if ringed else np.zeros((0,))
        self.selected_source.data = {"x": point[:1].tolist(), "y": point[1:2].tolist()}

    def close(self) -> None:
        self._closed = True
        self._umap_pool.shutdown(wait=False, cancel_futures=True)
