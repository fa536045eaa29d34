"""BokehJS for JupyterLab without internet and without an 8 MB notebook.

jupyter_bokeh's `BokehModel` needs a global ``window.Bokeh`` that its lab extension does not ship, and
``bokeh.io.output_notebook()`` fetches it from a CDN (offline: no plots) or inlines every component twice
(8 MB in the saved notebook). Instead the core bundle of the installed bokeh is put, once per page, into a hidden
`ipywidgets.Output`: the notebook file stores only a widget reference, and the script lives in the widget's
state, so plots also come back after a page reload.
"""

from __future__ import annotations

import functools
import threading

import bokeh
import ipywidgets as widgets
from bokeh.models import LayoutDOM
from bokeh.resources import Resources
from jupyter_bokeh import BokehModel

LOAD_MIMETYPE = "application/vnd.bokehjs_load.v0+json"  # jupyter_bokeh runs this output's text as a script


@functools.cache
def bokehjs_script() -> str:
    """The core BokehJS bundle of the installed bokeh, guarded to run once per page."""
    js = "\n".join(Resources(mode="inline", components=["bokeh"]).js_raw)
    loaded = f"typeof window.Bokeh !== 'undefined' && window.Bokeh.version === {bokeh.__version__!r}"
    return f"if (!({loaded})) {{\n{js}\n}}"


def bokehjs_loader() -> widgets.Output:
    """A hidden widget that loads BokehJS when displayed: display it before the first `BokehModel`."""
    holder = widgets.Output(layout=widgets.Layout(display="none"))
    holder.outputs = ({"output_type": "display_data", "data": {LOAD_MIMETYPE: bokehjs_script()}, "metadata": {}},)
    return holder


class BokehPane(BokehModel):
    """A `BokehModel` whose views start from the document as it is when they appear.

    jupyter_bokeh's view applies only the patches sent after it exists, so whatever changed between creating the
    widget and the browser showing it (the first snapshot's colour ranges, titles, axis labels) would stay at its
    initial value. Counting views (``_view_count``) tells the kernel when one appears; the document is then sent
    again whole, under ``lock`` where another thread edits it.
    """

    def __init__(self, model: LayoutDOM, lock: threading.RLock | None = None) -> None:
        super().__init__(model, _view_count=0)
        self._lock = lock or threading.RLock()
        self.observe(self._resend, names="_view_count")

    def _resend(self, change: dict) -> None:
        if (change["new"] or 0) > (change["old"] or 0):
            with self._lock:
                self.update_from_model(self._model)
