"""Latent Predictability Score, live: each dimension's held-out R^2 from the others and the LPS over steps, beside
each dimension's marginal fit (its KS distance to the prior's marginal): predictable, or misshapen, per dimension."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
from bokeh.layouts import row
from bokeh.models import BasicTicker, ColumnDataSource, NumeralTickFormatter, Range1d
from bokeh.plotting import figure

from explorer.live import Snapshot
from explorer.style import CODE_COLOR
from explorer.widgets.bokehjs import BokehPane


class LPSView:
    """Bars of per-dimension R^2, of per-dimension KS distance to the prior, and the LPS history; `update(snapshot)`
    under the app's lock."""

    def __init__(self, latent_dim: int) -> None:
        names = [f"z{i}" for i in range(latent_dim)]
        self.bar_source = ColumnDataSource({"dim": names, "r2": np.zeros(latent_dim)})
        self.fit_source = ColumnDataSource({"dim": names, "ks": np.zeros(latent_dim)})
        self.history_source = ColumnDataSource({"step": [], "lps": []})
        self.bars = figure(width=300, height=220, x_range=names, y_range=Range1d(-0.1, 1.0),
                           title="R² of each dimension from the others", toolbar_location=None, tools="",
                           x_axis_label="dimension", y_axis_label="held-out R²")
        self.bars.vbar(x="dim", top="r2", width=0.8, source=self.bar_source, color="#d62728", alpha=0.8)
        self.fit = figure(width=260, height=220, x_range=names, y_range=Range1d(0, 1.0),
                          title="marginal fit (KS to the prior)", toolbar_location=None, tools="",
                          x_axis_label="dimension", y_axis_label="KS distance (0: the prior's shape)")
        self.fit.vbar(x="dim", top="ks", width=0.8, source=self.fit_source, color=CODE_COLOR, alpha=0.8)
        # steps 0 to the latest estimate, so that one estimate is not drawn on ticks of 9999.5
        self.history = figure(width=300, height=220, y_range=Range1d(-0.1, 1.0), title="LPS over training",
                              x_range=Range1d(0, 1), x_axis_label="step", y_axis_label="LPS (mean R²)",
                              toolbar_location=None, tools="")
        self.bars.title.text_font_size = self.fit.title.text_font_size = self.history.title.text_font_size = "10pt"
        self.history.xaxis.ticker = BasicTicker(min_interval=1, desired_num_ticks=4)
        self.history.xaxis.formatter = NumeralTickFormatter(format="0,0")
        self.history.line("step", "lps", source=self.history_source, line_width=2, color="#d62728")
        self.history.scatter("step", "lps", source=self.history_source, size=4, color="#d62728")
        self.estimator = widgets.HTML()
        self.root = row(self.bars, self.fit, self.history)  # the Bokeh document's root (also of a saved view)
        self.widget = widgets.VBox([BokehPane(self.root), self.estimator])

    def update(self, snapshot: Snapshot) -> None:
        """Show the snapshot's LPS, the estimator that made it, and the run's LPS history (kept by the engine)."""
        self.estimator.value = f"<small>{html.escape(snapshot.lps_estimator)}</small>"
        if snapshot.fit is not None:
            self.fit_source.data = {"dim": list(self.fit_source.data["dim"]), "ks": snapshot.fit}
            worst = int(np.argmax(snapshot.fit))
            self.fit.title.text = f"marginal fit · worst z{worst}: {snapshot.fit[worst]:.2f}"
        if snapshot.lps is None:
            return
        self.bar_source.data = {"dim": list(self.bar_source.data["dim"]), "r2": snapshot.lps}
        self.bars.title.text = f"LPS {snapshot.lps_score:.3f} · R² per dim. (step {snapshot.lps_step:,})"
        if not np.array_equal(snapshot.lps_history_steps, self.history_source.data["step"]):
            self.history_source.data = {"step": snapshot.lps_history_steps, "lps": snapshot.lps_history}
            self.history.x_range.end = max(1.0, 1.05 * float(max(snapshot.lps_history_steps, default=0)))
