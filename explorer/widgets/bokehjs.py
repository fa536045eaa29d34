"""BokehJS for JupyterLab without internet and without an 8 MB notebook.

jupyter_bokeh's `BokehModel` needs a global ``window.Bokeh`` that its lab extension does not ship, and
``bokeh.io.output_notebook()`` fetches it from a CDN (offline: no plots) or inlines every component twice
(8 MB in the saved notebook). Instead the bundles of the installed bokeh are put, once per page, into a hidden
`ipywidgets.Output`: the notebook file stores only a widget reference, and the script lives in the widget's
state, so plots also come back after a page reload.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator

import bokeh
import ipywidgets as widgets
from bokeh.document.events import DocumentPatchedEvent
from bokeh.models import LayoutDOM
from bokeh.protocol import Protocol
from bokeh.resources import Resources
from jupyter_bokeh import BokehModel

LOAD_MIMETYPE = "application/vnd.bokehjs_load.v0+json"  # jupyter_bokeh runs this output's text as a script


# whether the page's WebGL runs on a GPU: a software renderer (a headless browser, a remote desktop without one)
# draws 100,000 points slower with WebGL than BokehJS does on a 2-D canvas, which it falls back to without its GL
GPU_WEBGL = """(() => {
  const gl = document.createElement('canvas').getContext('webgl');
  if (gl == null) return false;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : '';
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return !/swiftshader|llvmpipe|softpipe|software/i.test(renderer);
})()"""


@functools.cache
def bokehjs_script() -> str:
    """BokehJS of the installed bokeh, guarded to run once per page: the core bundle, and its WebGL bundle where
    the page's WebGL runs on a GPU. Without that bundle the figures made with ``output_backend="webgl"`` draw on a
    2-D canvas, a second per 100,000 points; with it, a GPU draws them in milliseconds."""
    core, gl = ("\n".join(Resources(mode="inline", components=[name]).js_raw) for name in ("bokeh", "bokeh-gl"))
    loaded = f"typeof window.Bokeh !== 'undefined' && window.Bokeh.version === {bokeh.__version__!r}"
    return f"if (!({loaded})) {{\n{core}\nif ({GPU_WEBGL}) {{\n{gl}\n}}\n}}"


def bokehjs_loader() -> widgets.Output:
    """A hidden widget that loads BokehJS when displayed: display it before the first `BokehModel`."""
    holder = widgets.Output(layout=widgets.Layout(display="none"))
    holder.outputs = ({"output_type": "display_data", "data": {LOAD_MIMETYPE: bokehjs_script()}, "metadata": {}},)
    return holder


class BokehPane(BokehModel):
    """A `BokehModel` whose views start from the document as it is when they appear, and whose changes can go to
    the browser as one patch (`batched`).

    jupyter_bokeh's view applies only the patches sent after it exists, so whatever changed between creating the
    widget and the browser showing it (the first snapshot's colour ranges, titles, axis labels) would stay at its
    initial value. Counting views (``_view_count``) tells the kernel when one appears; the document is then sent
    again whole, under ``lock`` where another thread edits it.
    """

    def __init__(self, model: LayoutDOM, lock: threading.RLock | None = None) -> None:
        self._held: list[DocumentPatchedEvent] | None = None
        super().__init__(model, _view_count=0)
        self._lock = lock or threading.RLock()
        self.observe(self._resend, names="_view_count")

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """The changes made inside reach the browser as one patch, which BokehJS applies and draws once; sent one
        by one, each (a style, a data column, an outline) redraws every point in view: a second per 100,000 on a
        canvas."""
        self._held = []
        try:
            yield
        finally:
            events, self._held = self._held, None
            if events:
                self._send_patch(events)

    def _document_patched(self, event: DocumentPatchedEvent) -> None:
        if event.setter is self:
            return
        if self._held is not None:
            self._held.append(event)
        else:
            self._send_patch([event])

    def _send_patch(self, events: list[DocumentPatchedEvent]) -> None:
        """``events`` as one PATCH-DOC message, in the pieces jupyter_bokeh's front end reads."""
        message = Protocol().create("PATCH-DOC", events)
        for part in (message.header_json, message.metadata_json, message.content_json):
            self.send({"msg": "patch", "payload": part})
        for buffer in message.buffers:
            self.send({"msg": "patch", "payload": json.dumps(buffer.ref)})
            self.send({"msg": "patch"}, [buffer.to_bytes()])

    def _resend(self, change: dict) -> None:
        if (change["new"] or 0) > (change["old"] or 0):
            with self._lock:
                self.update_from_model(self._model)
