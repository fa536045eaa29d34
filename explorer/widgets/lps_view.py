"""Latent Predictability Score, live: each dimension's held-out R^2 from the others, and the LPS over steps."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure
from jupyter_bokeh import BokehModel

from explorer.live import Snapshot


class LPSView:
    """Bars of per-dimension R^2 and the LPS history; `update(snapshot)` under the app's lock."""

    def __init__(self, latent_dim: int) -> None:
        names = [f"z{i}" for i in range(latent_dim)]
        self.bar_source = ColumnDataSource({"dim": names, "r2": np.zeros(latent_dim)})
        self.history_source = ColumnDataSource({"step": [], "lps": []})
        self.bars = figure(width=300, height=220, x_range=names, y_range=Range1d(-0.1, 1.0),
                           title="LPS: R^2 of each dimension from the others", toolbar_location=None, tools="")
        self.bars.vbar(x="dim", top="r2", width=0.8, source=self.bar_source, color="#d62728", alpha=0.8)
        self.history = figure(width=300, height=220, y_range=Range1d(-0.1, 1.0), title="LPS over training",
                              x_axis_label="step", toolbar_location=None, tools="")
        self.history.line("step", "lps", source=self.history_source, line_width=2, color="#d62728")
        self.history.scatter("step", "lps", source=self.history_source, size=4, color="#d62728")
        self.estimator = widgets.HTML()
        self.widget = widgets.VBox([BokehModel(row(self.bars, self.history)), self.estimator])

    def update(self, snapshot: Snapshot) -> None:
        """Show the snapshot's LPS, the estimator that made it, and the run's LPS history (kept by the engine)."""
        self.estimator.value = f"<small>{html.escape(snapshot.lps_estimator)}</small>"
        if snapshot.lps is None:
            return
        self.bar_source.data = {"dim": list(self.bar_source.data["dim"]), "r2": snapshot.lps}
        self.bars.title.text = f"LPS {snapshot.lps_score:.3f} (step {snapshot.lps_step}): R^2 per dimension"
        if not np.array_equal(snapshot.lps_history_steps, self.history_source.data["step"]):
            self.history_source.data = {"step": snapshot.lps_history_steps, "lps": snapshot.lps_history}
