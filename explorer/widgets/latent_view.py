"""The aggregate posterior against the prior: a scatter (a pair of dimensions, PCA or UMAP), each dimension's
marginal histogram against the prior's, and the covariance matrix as a heat map."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import ipywidgets as widgets
import numpy as np
from bokeh.layouts import gridplot, row
from bokeh.models import ColumnDataSource, LinearColorMapper, TapTool
from bokeh.palettes import RdBu11, Viridis256
from bokeh.plotting import figure
from jupyter_bokeh import BokehModel

from explorer.extras import require
from explorer.live import Probe, Snapshot

PROJECTIONS = ("pair", "PCA", "UMAP")
BINS = 30
PRIOR_COLOR, CODE_COLOR = "#b0b0b0", "#1f77b4"


def pca_project(codes: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays on the first two principal axes of ``codes`` (centred on the codes' mean)."""
    mean = codes.mean(0)
    _, _, vt = np.linalg.svd(codes - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.eye(codes.shape[1], 2)
    return (codes - mean) @ axes, (others - mean) @ axes


def umap_project(codes: np.ndarray, others: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes and prior sample embedded together in 2-D by UMAP (slow: run it off the UI path)."""
    umap = require("umap", "umap", "the UMAP projection")  # numba compiles on first use: ~25 s in a fresh process

    both = umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(np.concatenate([codes, others]))
    return both[: len(codes)], both[len(codes) :]


class LatentView:
    """Scatter of codes over prior samples, marginals and covariance; `update(snapshot)` under the app's lock."""

    def __init__(self, latent_dim: int, probe: Probe, lock: threading.RLock,
                 on_select: Callable[[int], None] | None = None) -> None:
        self.latent_dim, self.probe, self.lock, self.on_select = latent_dim, probe, lock, on_select
        self._snapshot: Snapshot | None = None
        self._umap: concurrent.futures.Future | None = None
        self._umap_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-umap")
        self._umap_result: tuple[int, np.ndarray, np.ndarray] | None = None
        self._umap_step: int | None = None
        self._closed = False
        dims = [(f"z{i}", i) for i in range(latent_dim)]
        small = {"width": "110px"}
        self.x_dim = widgets.Dropdown(options=dims, value=0, description="x", layout=small,
                                      style={"description_width": "20px"})
        self.y_dim = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y", layout=small,
                                      style={"description_width": "20px"})
        self.projection = widgets.ToggleButtons(options=PROJECTIONS, value="pair", description="view")
        self.projection.style.button_width = "60px"
        colours = ["none"] + (["label"] if probe.labels is not None else []) + list(probe.factor_names)
        self.colour = widgets.Dropdown(options=colours, value=colours[1] if len(colours) > 1 else "none",
                                       description="colour", layout={"width": "200px"},
                                       style={"description_width": "50px"})
        self.note = widgets.HTML()
        for control in (self.x_dim, self.y_dim, self.projection, self.colour):
            control.observe(self._redraw, names="value")

        self.prior_source = ColumnDataSource({"x": [], "y": []})
        self.code_source = ColumnDataSource({"x": [], "y": [], "c": [], "index": []})
        self.mapper = LinearColorMapper(palette=Viridis256)
        self.scatter = figure(width=440, height=400, title="codes (colour) over prior samples (grey)",
                              tools="pan,wheel_zoom,box_zoom,reset", match_aspect=True)
        self.scatter.scatter("x", "y", source=self.prior_source, color=PRIOR_COLOR, alpha=0.35, size=4,
                             legend_label="prior")
        codes = self.scatter.scatter("x", "y", source=self.code_source, size=5, alpha=0.8, legend_label="codes",
                                     color={"field": "c", "transform": self.mapper})
        self.scatter.add_tools(TapTool(renderers=[codes]))
        self.scatter.legend.location = "top_left"
        self.scatter.legend.click_policy = "hide"
        self.code_source.selected.on_change("indices", self._selected)

        self.marginal_sources = []
        marginals = []
        for i in range(latent_dim):
            fig = figure(width=140, height=110, title=f"z{i}", toolbar_location=None, tools="")
            fig.yaxis.visible = False
            codes_hist = ColumnDataSource({"left": [], "right": [], "top": []})
            prior_hist = ColumnDataSource({"x": [], "y": []})
            fig.quad(left="left", right="right", bottom=0, top="top", source=codes_hist, color=CODE_COLOR,
                     alpha=0.6)
            fig.step("x", "y", source=prior_hist, color="black", mode="center")
            self.marginal_sources.append((codes_hist, prior_hist))
            marginals.append(fig)

        self.cov_source = ColumnDataSource({"i": [], "j": [], "value": [], "text": []})
        names = [f"z{i}" for i in range(latent_dim)]
        self.cov_mapper = LinearColorMapper(palette=RdBu11[::-1], low=-1, high=1)
        self.covariance = figure(width=280, height=260, title="covariance of the codes", x_range=names,
                                 y_range=names[::-1], toolbar_location=None, tools="")
        self.covariance.rect("i", "j", 1, 1, source=self.cov_source, line_color=None,
                             fill_color={"field": "value", "transform": self.cov_mapper})
        self.covariance.text("i", "j", text="text", source=self.cov_source, text_align="center",
                             text_baseline="middle", text_font_size="9pt")

        self.plots = BokehModel(self.scatter)
        self.plots.add_class("explorer-latent")
        grid = gridplot(marginals, ncols=min(latent_dim, 4), toolbar_location=None)
        self.structure = BokehModel(row(grid, self.covariance))
        controls = widgets.VBox([self.projection, widgets.HBox([self.x_dim, self.y_dim, self.colour])])
        self.widget = widgets.VBox([controls, self.note, self.plots])  # the scatter; `structure` goes below

    def update(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` (call with the lock held)."""
        self._snapshot = snapshot
        self._draw_scatter(snapshot)
        self._draw_marginals(snapshot)
        self._draw_covariance(snapshot)

    def _redraw(self, _change: object = None) -> None:
        with self.lock:
            if self._snapshot is not None:
                self._draw_scatter(self._snapshot)

    def _selected(self, _attr: str, _old: list[int], new: list[int]) -> None:
        if new and self.on_select is not None:
            self.on_select(int(new[0]))

    def _colour_values(self) -> np.ndarray:
        n = len(self.probe)
        if self.colour.value == "label":
            return np.asarray(self.probe.labels, dtype=float)
        if self.colour.value in self.probe.factor_names:
            return np.asarray(self.probe.factors[:, self.probe.factor_names.index(self.colour.value)], dtype=float)
        return np.zeros(n)

    def _project(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray] | None:
        codes, prior = snapshot.codes, snapshot.prior_sample
        if self.projection.value == "PCA":
            self.note.value = ""
            return pca_project(codes, prior)
        if self.projection.value == "UMAP":
            return self._umap_projection(snapshot)
        self.note.value = ""
        pair = [self.x_dim.value, self.y_dim.value]
        return codes[:, pair], prior[:, pair]

    def _umap_projection(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray] | None:
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
            self.note.value = "UMAP: computing (the first call in a process takes about 25 s)"
            return None
        step, codes, prior = self._umap_result
        self.note.value = f"UMAP of step {step}"
        return codes, prior

    def _umap_done(self, future: concurrent.futures.Future, step: int) -> None:
        if future.exception() is None and not self._closed:
            self._umap_result = (step, *future.result())
            if self.projection.value == "UMAP":
                self._redraw()

    def _draw_scatter(self, snapshot: Snapshot) -> None:
        projected = self._project(snapshot)
        if projected is None:
            return
        codes, prior = projected
        colour = self._colour_values()
        self.mapper.low, self.mapper.high = float(colour.min()), float(max(colour.max(), colour.min() + 1e-9))
        self.prior_source.data = {"x": prior[:, 0], "y": prior[:, 1]}
        self.code_source.data = {"x": codes[:, 0], "y": codes[:, 1], "c": colour, "index": np.arange(len(codes))}

    def _draw_marginals(self, snapshot: Snapshot) -> None:
        for i, (codes_hist, prior_hist) in enumerate(self.marginal_sources):
            values = np.concatenate([snapshot.codes[:, i], snapshot.prior_sample[:, i]])
            low, high = np.quantile(values, [0.005, 0.995])
            edges = np.linspace(low, high + 1e-9, BINS + 1)
            code_density, _ = np.histogram(snapshot.codes[:, i], edges, density=True)
            prior_density, _ = np.histogram(snapshot.prior_sample[:, i], edges, density=True)
            codes_hist.data = {"left": edges[:-1], "right": edges[1:], "top": code_density}
            prior_hist.data = {"x": (edges[:-1] + edges[1:]) / 2, "y": prior_density}

    def _draw_covariance(self, snapshot: Snapshot) -> None:
        cov = np.atleast_2d(np.cov(snapshot.codes, rowvar=False))
        d = cov.shape[0]
        scale = float(np.abs(cov).max()) or 1.0
        self.cov_mapper.low, self.cov_mapper.high = -scale, scale
        i, j = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
        self.cov_source.data = {
            "i": [f"z{k}" for k in i.ravel()],
            "j": [f"z{k}" for k in j.ravel()],
            "value": cov.ravel(),
            "text": [f"{v:.2f}" if d <= 8 else "" for v in cov.ravel()],
        }

    def close(self) -> None:
        self._closed = True
        self._umap_pool.shutdown(wait=False, cancel_futures=True)
