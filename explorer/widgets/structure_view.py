"""The codes' structure against the prior: each dimension's marginal (codes as bars, the prior's density as a line,
its KS distance in the title), all small or one at full size, and the covariance matrix of the codes as a heat map
with a colour bar, in the colours of the static figures."""

from __future__ import annotations

import threading

import ipywidgets as widgets
import numpy as np
from bokeh.layouts import column, gridplot, row
from bokeh.models import BasicTicker, ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.plotting import figure

from explorer.drawing import sample_density
from explorer.live import Snapshot
from explorer.style import CODE_COLOR, DIVERGING, PRIOR_LINE
from explorer.widgets.bokehjs import BokehPane

BINS = 30
GRID = 120
NUMBERS_UP_TO = 12  # dimensions: beyond this the cells are too small to print their value in
MARGINAL_COLUMNS = 4


def cell_text(value: float, d: int) -> str:
    """A covariance entry as printed in its cell: 2 decimals (1 beyond 8 dimensions), never "-0.00"."""
    if d > NUMBERS_UP_TO:
        return ""
    digits = 2 if d <= 8 else 1
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0


def _marginal_figure(title: str, width: int, height: int, small: bool) -> tuple[figure, tuple[ColumnDataSource, ...]]:
    """A marginal's figure: the codes' histogram as bars, the prior's density as a line; and their two sources."""
    fig = figure(width=width, height=height, title=title, toolbar_location=None, tools="",
                 min_border_left=6, min_border_right=6)
    fig.yaxis.visible = not small
    fig.xaxis.ticker = BasicTicker(desired_num_ticks=3 if small else 8)
    codes = ColumnDataSource({"left": [], "right": [], "top": []})
    prior = ColumnDataSource({"x": [], "y": []})
    fig.quad(left="left", right="right", bottom=0, top="top", source=codes, color=CODE_COLOR, alpha=0.6)
    fig.line("x", "y", source=prior, color=PRIOR_LINE, line_width=1.5)
    return fig, (codes, prior)


def _draw_marginal(sources: tuple[ColumnDataSource, ...], codes: np.ndarray, prior: np.ndarray) -> None:
    codes_hist, prior_line = sources
    low, high = np.quantile(np.concatenate([codes, prior]), [0.005, 0.995])
    edges = np.linspace(low, high + 1e-9, BINS + 1)
    density, _ = np.histogram(codes, edges, density=True)
    codes_hist.data = {"left": edges[:-1], "right": edges[1:], "top": density}
    grid = np.linspace(low, high, GRID)
    prior_line.data = {"x": grid, "y": sample_density(prior, grid)}


class StructureView:
    """Marginals and covariance of the codes (``widget``); `update(snapshot)` under the app's lock.

    ``marginal_sources[i]``: (codes histogram ``left``/``right``/``top``, prior density ``x``/``y``) of z_i, and
    ``marginals[i]`` its figure; ``focus`` (a dropdown) shows one dimension at full size in ``focused``, drawn from
    ``focused_sources``; ``cov_source``: one row per cell (``i``, ``j``, ``value``, ``text``, ``ink``);
    ``cov_bar``: its colour bar.
    """

    def __init__(self, latent_dim: int, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._snapshot: Snapshot | None = None
        width = 125 if latent_dim > 2 else 160
        self.marginals, self.marginal_sources = [], []
        for i in range(latent_dim):
            fig, sources = _marginal_figure(f"z{i}", width, 105, small=True)
            self.marginals.append(fig)
            self.marginal_sources.append(sources)
        self.focused, self.focused_sources = _marginal_figure("", 500, 230, small=False)
        self.focused.visible = False
        self.focus = widgets.Dropdown(options=[("all dimensions", -1)] + [(f"z{i}", i) for i in range(latent_dim)],
                                      value=-1, description="show", layout={"width": "200px"},
                                      style={"description_width": "40px"})
        self.focus.observe(self._on_focus, names="value")
        # an HTML line, not a Bokeh Div: the BokehJS that `bokehjs_loader` ships has no widget models
        self.legend = widgets.HTML(f"<b>Marginals</b>: <span style='color:{CODE_COLOR}'>&#9632;</span> codes &nbsp; "
                               f"<span style='color:{PRIOR_LINE}'>&#8212;</span> prior density "
                               "(kernel estimate from the prior sample)")

        names = [f"z{i}" for i in range(latent_dim)]
        self.cov_source = ColumnDataSource({"i": [], "j": [], "value": [], "text": [], "ink": []})
        self.cov_mapper = LinearColorMapper(palette=list(DIVERGING), low=-1, high=1)
        self.covariance = figure(width=300, height=270, title="covariance of the codes", x_range=names,
                                 y_range=names[::-1], toolbar_location=None, tools="")
        self.covariance.rect("i", "j", 1, 1, source=self.cov_source, line_color=None,
                             fill_color={"field": "value", "transform": self.cov_mapper})
        size = "9pt" if latent_dim <= 6 else "7pt"
        self.covariance.text("i", "j", text="text", source=self.cov_source, text_align="center",
                             text_baseline="middle", text_font_size=size, text_color="ink")
        self.cov_bar = ColorBar(color_mapper=self.cov_mapper, width=10, ticker=BasicTicker(desired_num_ticks=5),
                                title="cov", padding=4)
        self.covariance.add_layout(self.cov_bar, "right")
        self.grid = gridplot(self.marginals, ncols=min(latent_dim, MARGINAL_COLUMNS), toolbar_location=None)
        self.root = row(column(self.grid, self.focused), self.covariance)  # the Bokeh root (also of a saved view)
        self.pane = BokehPane(self.root, self._lock)
        self.widget = widgets.VBox([widgets.HBox([self.legend, self.focus]), self.pane])

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        with self.pane.batched():
            for i, (fig, sources) in enumerate(zip(self.marginals, self.marginal_sources, strict=True)):
                _draw_marginal(sources, snapshot.codes[:, i], snapshot.prior_sample[:, i])
                fig.title.text = f"z{i}" if snapshot.fit is None else f"z{i} · KS {snapshot.fit[i]:.2f}"
            self._draw_focused()
            self._draw_covariance(snapshot.codes)

    def _on_focus(self, _change: object = None) -> None:
        with self._lock:
            self.grid.visible, self.focused.visible = self.focus.value < 0, self.focus.value >= 0
            self._draw_focused()

    def _draw_focused(self) -> None:
        i, snapshot = self.focus.value, self._snapshot
        if i < 0 or snapshot is None:
            return
        _draw_marginal(self.focused_sources, snapshot.codes[:, i], snapshot.prior_sample[:, i])
        fit = "" if snapshot.fit is None else f": KS distance {snapshot.fit[i]:.3f} to the prior's marginal"
        self.focused.title.text = f"z{i}{fit}"

    def _draw_covariance(self, codes: np.ndarray) -> None:
        cov = np.atleast_2d(np.cov(codes, rowvar=False))
        d = cov.shape[0]
        scale = float(np.abs(cov).max()) or 1.0
        self.cov_mapper.low, self.cov_mapper.high = -scale, scale
        # tiny (an untrained encoder) or huge covariances print in a unit that keeps their digits
        exponent = 0 if 0.1 <= scale < 100 else int(np.floor(np.log10(scale)))
        self.cov_bar.title = "cov" if exponent == 0 else f"cov (cells ×1e{exponent})"
        i, j = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
        values = cov.ravel()
        self.cov_source.data = {
            "i": [f"z{k}" for k in i.ravel()],
            "j": [f"z{k}" for k in j.ravel()],
            "value": values,
            "text": [cell_text(v / 10.0**exponent, d) for v in values],
            "ink": ["white" if abs(v) > 0.6 * scale else "black" for v in values],
        }
