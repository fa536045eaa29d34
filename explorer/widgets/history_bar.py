"""The history slider: earlier steps of the run in the latent views (codes, marginals, covariance, LPS), with play,
while the progress and the losses stay live; at its right end, or with Live, the views follow training again."""

from __future__ import annotations

import threading

import ipywidgets as widgets

from explorer.live import Snapshot
from explorer.widgets.state import LiveState


class HistoryBar:
    """Slider over ``state``'s kept snapshots; updated by the state's facts (call with the app's lock)."""

    def __init__(self, state: LiveState, lock: threading.RLock) -> None:
        self.state, self.lock = state, lock
        self.slider = widgets.IntSlider(value=0, min=0, max=0, readout=False, description="history",
                                        continuous_update=True, layout={"width": "260px"},
                                        style={"description_width": "50px"})
        self.play = widgets.Play(value=0, min=0, max=0, interval=400, show_repeat=False,
                                 layout={"width": "auto"})
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.live = widgets.Button(description="Live", icon="forward", disabled=True, layout={"width": "auto"},
                                   tooltip="show the newest step again")
        self.label = widgets.HTML()
        self.widget = widgets.HBox([self.slider, self.play, self.live, self.label],
                                   layout={"align_items": "center", "flex_flow": "row wrap"})
        self._setting = False  # the bar itself moves the slider: not the user's choice
        self.slider.observe(self._moved, names="value")
        self.live.on_click(lambda _: self._show(None))
        state.observe(self.update)

    def update(self, snapshot: Snapshot) -> None:
        """Follow the kept snapshots: the slider's range, and its value at the end while live."""
        newest = max(len(self.state.history) - 1, 0)
        self._setting = True
        self.slider.max = self.play.max = newest
        if self.state.rewound is None:
            # the play button's value too: a page that draws the bar later (a reload, Voila) sets the slider to it
            self.slider.value = self.play.value = newest
        self._setting = False
        rewound = self.state.rewound
        when = "live" if rewound is None else f"step {self.state.history.at(rewound).step:,} of {snapshot.step:,}"
        self.label.value = f"<small>{when} · {len(self.state.history)} steps kept</small>"
        self.live.disabled = rewound is None

    def _moved(self, change: dict) -> None:
        if self._setting:
            return
        self._show(None if change["new"] >= len(self.state.history) - 1 else change["new"])

    def _show(self, index: int | None) -> None:
        with self.lock:
            self.state.rewind(index)
