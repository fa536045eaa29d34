"""What lies behind the codes of the scatter: the input and reconstruction of the code under the cursor, and for a
box or lasso selection a grid of its inputs and, where the data has labels or factors, their histogram against all
codes shown (does the selection pick out a factor?)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from explorer.live import Probe
from explorer.style import CODE_COLOR, PRIOR_COLOR
from explorer.widgets.bokehjs import BokehPane
from explorer.widgets.pictures import grid_png

GRID = 64  # inputs of a selection shown (the first ones in the data's order)
BINS = 12
Preview = Callable[[int, np.ndarray], concurrent.futures.Future]  # row, code -> future of (input, reconstruction)


class SelectionView:
    """The panel beside the scatter: `hovered(row, code)` shows a code's input and reconstruction (decoded by
    ``preview`` between two training steps), `selected(rows, n)` the selection among the ``n`` codes shown."""

    def __init__(self, probe: Probe, lock: threading.RLock, preview: Preview | None = None) -> None:
        self.probe, self.lock, self.preview = probe, lock, preview
        self.hover_caption = widgets.HTML("<small>Hover a code: its input and its reconstruction show here. A box "
                                          "or lasso selection (toolbar) shows its inputs.</small>")
        # hidden until they hold a picture: an empty image shows as a broken one
        self.hover_image = widgets.Image(format="png", layout={"width": "auto", "display": "none"})
        self.selection_caption = widgets.HTML()
        self.selection_image = widgets.Image(format="png", layout={"width": "auto", "max_width": "300px",
                                                                   "display": "none"})
        self.factor_names = [name for name in ("label", *probe.factor_names)
                             if name != "label" or probe.labels is not None]
        self.factor_sources = {name: ColumnDataSource({"left": [], "right": [], "all": [], "chosen": []})
                               for name in self.factor_names}
        plots = [self._histogram(name, source) for name, source in self.factor_sources.items()]
        self.factors = BokehPane(gridplot(plots, ncols=2, toolbar_location=None)) if plots else widgets.Box()
        self.factors.layout.display = "none"
        self.widget = widgets.VBox([self.hover_caption, self.hover_image, self.selection_caption,
                                    self.selection_image, self.factors], layout={"width": "310px"})
        self._hovered_row: int | None = None

    @staticmethod
    def _histogram(name: str, source: ColumnDataSource) -> figure:
        plot = figure(width=150, height=110, title=name, toolbar_location=None, tools="")
        plot.quad(left="left", right="right", bottom=0, top="all", source=source, color=PRIOR_COLOR, alpha=0.6)
        plot.quad(left="left", right="right", bottom=0, top="chosen", source=source, color=CODE_COLOR, alpha=0.6)
        plot.title.text_font_size = "9pt"
        plot.yaxis.visible = False
        return plot

    def hovered(self, row: int, code: np.ndarray) -> None:
        """Show code ``row``'s input and its reconstruction from ``code`` once decoded (any thread)."""
        if self.preview is None or row == self._hovered_row:
            return
        self._hovered_row = row
        self.preview(row, code).add_done_callback(lambda future: self._show_preview(row, future))

    def _show_preview(self, row: int, future: concurrent.futures.Future) -> None:
        if future.exception() is not None or row != self._hovered_row:
            return
        with self.lock:
            self.hover_image.value = grid_png(list(future.result()), columns=2, cell=64)
            self.hover_image.layout.display = ""
            self.hover_caption.value = f"<small>code {row:,}: its input, then its reconstruction</small>"

    def selected(self, rows: Sequence[int], shown: int) -> None:
        """Show the selection ``rows`` of the ``shown`` codes (call with the lock held)."""
        rows = sorted(int(row) for row in rows if row < shown)
        if not rows:
            self.selection_caption.value, self.selection_image.value = "", b""
            self.factors.layout.display = self.selection_image.layout.display = "none"
            return
        first = rows[:GRID]
        more = f" (the first {GRID} shown)" if len(rows) > GRID else ""
        self.selection_caption.value = f"<small>{len(rows):,} of {shown:,} codes selected{more}</small>"
        self.selection_image.value = grid_png(list(self.probe.images(first)), columns=8, cell=32)
        self.selection_image.layout.display = ""
        for name, source in self.factor_sources.items():
            values = self.probe.colour_values(name, shown)
            edges = np.histogram_bin_edges(values, bins=min(BINS, len(np.unique(values))))
            everything = np.histogram(values, edges)[0] / len(values)
            chosen = np.histogram(values[rows], edges)[0] / len(rows)
            source.data = {"left": edges[:-1], "right": edges[1:], "all": everything, "chosen": chosen}
        self.factors.layout.display = "" if self.factor_sources else "none"
