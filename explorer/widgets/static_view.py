"""A static picture of the explorer, for readers without a kernel (GitHub, nbviewer): a matplotlib rendering of a
`Snapshot` (codes over the prior, marginals, covariance, LPS, traversals), stored in the notebook beside the widgets.

The picture is its own output: a bundle of an empty widget view and a PNG. JupyterLab's widget renderer hides a
view whose model id is empty, so a live session shows only the widgets; a renderer without widget state skips the
view and shows the PNG. It is re-rendered through its display handle when training comes to rest (paused,
stopped, finished, failed), never while it runs, and the widgets' own output is never updated (JupyterLab would
add a second copy of the views).
"""

from __future__ import annotations

import concurrent.futures
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from explorer.drawing import DPI, FONT, covariance, sample_density
from explorer.live import RunState, Snapshot
from explorer.style import CODE_COLOR, PRIOR_COLOR, PRIOR_LINE
from explorer.widgets.traversal_view import traversal_png

if TYPE_CHECKING:
    import ipywidgets as widgets
    from matplotlib.figure import Figure

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HIDDEN_VIEW = {"version_major": 2, "version_minor": 0, "model_id": ""}  # JupyterLab hides an empty model id
RESTING = (RunState.PAUSED, RunState.STOPPED, RunState.FINISHED, RunState.FAILED)
MARGINALS = 8  # at most this many dimensions' marginals in the picture


def snapshot_figure(snapshot: Snapshot) -> Figure:
    """The explorer's views of ``snapshot`` as one matplotlib figure (not pyplot's: it is drawn off the main thread
    and must never be shown by the inline backend)."""
    from matplotlib.figure import Figure

    codes, prior = snapshot.codes, snapshot.prior_sample
    d = codes.shape[1]
    fig = Figure(figsize=(12, 7.2), dpi=DPI, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    scatter, cov, lps = top.subplots(1, 3, width_ratios=[1.1, 1, 1])
    pair = (0, 1) if d > 1 else (0, 0)
    scatter.scatter(prior[:, pair[0]], prior[:, pair[1]], s=3, color=PRIOR_COLOR, alpha=0.5, label="prior")
    scatter.scatter(codes[:, pair[0]], codes[:, pair[1]], s=3, color=CODE_COLOR, alpha=0.6, label="codes")
    scatter.set_xlabel(f"z{pair[0]}", fontsize=FONT)
    scatter.set_ylabel(f"z{pair[1]}", fontsize=FONT)
    scatter.set_title("codes over prior samples", fontsize=FONT + 1)
    scatter.legend(fontsize=FONT, markerscale=4, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    covariance(cov, codes, "covariance of the codes")
    if snapshot.lps is None:
        lps.set_axis_off()
    else:
        lps.bar([f"z{i}" for i in range(d)], snapshot.lps, color="#d62728", alpha=0.8)
        lps.set_ylim(-0.1, 1.0)
        lps.set_ylabel("held-out R²", fontsize=FONT)
        lps.set_title(f"LPS {snapshot.lps_score:.3f} (step {snapshot.lps_step:,})", fontsize=FONT + 1)
    for ax in (scatter, lps):
        ax.tick_params(labelsize=FONT)

    shown = min(d, MARGINALS)
    left, right = bottom.subfigures(1, 2, width_ratios=[1, 1.3])
    axes = np.atleast_1d(left.subplots(-(-shown // 4), min(shown, 4), squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= shown:
            ax.set_axis_off()
            continue
        low, high = np.quantile(np.concatenate([codes[:, i], prior[:, i]]), [0.005, 0.995])
        grid = np.linspace(low, high, 120)
        ax.hist(codes[:, i], bins=30, range=(low, high), density=True, color=CODE_COLOR, alpha=0.6)
        ax.plot(grid, sample_density(prior[:, i], grid), color=PRIOR_LINE, lw=1.2)
        ax.set_title(f"z{i}", fontsize=FONT)
        ax.set_yticks([])
        ax.tick_params(labelsize=FONT)
    left.suptitle("marginals: codes (bars), prior density (line)", fontsize=FONT + 1)
    traversals = right.subplots()
    traversals.imshow(np.asarray(Image.open(io.BytesIO(traversal_png(snapshot)))), cmap="gray", vmin=0, vmax=255)
    traversals.set_axis_off()
    traversals.set_title(f"traversals from probe image {snapshot.selected} (columns: prior quantiles of z_i)",
                         fontsize=FONT + 1)
    total = f" of {snapshot.total_steps:,}" if snapshot.total_steps > 0 else ""
    fig.suptitle(f"step {snapshot.step:,}{total} · {snapshot.state}", fontsize=FONT + 2)
    return fig


def snapshot_png(snapshot: Snapshot) -> bytes:
    """`snapshot_figure` as PNG bytes."""
    buffer = io.BytesIO()
    snapshot_figure(snapshot).savefig(buffer, format="png")
    return buffer.getvalue()


def fallback_bundle(snapshot: Snapshot) -> dict[str, Any]:
    return {WIDGET_VIEW: HIDDEN_VIEW, "image/png": snapshot_png(snapshot)}


class StaticFallback:
    """Displays the explorer's widgets and, as a second output, its static picture; `update` re-renders the
    picture when training comes to rest, off the views' lock (a render takes a second or more) and, in a kernel,
    between two cells (`between_cells`). `rendered` is the future of the latest re-render."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._state: RunState | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-picture")
        self.rendered: concurrent.futures.Future[None] | None = None

    def display(self, shown: list[widgets.Widget], snapshot: Snapshot) -> None:
        """Display each widget of ``shown``, then the picture of ``snapshot``."""
        from IPython.display import display

        for widget in shown:  # without their text/plain repr, which a renderer without a kernel would print
            display({WIDGET_VIEW: widget._repr_mimebundle_()[WIDGET_VIEW]}, raw=True)
        self._state = snapshot.state
        self._handle = display(fallback_bundle(snapshot), raw=True, display_id=True)

    def update(self, snapshot: Snapshot) -> None:
        """Re-render the picture if training has just come to rest (cheap otherwise: one comparison)."""
        if self._handle is None or snapshot.state == self._state:
            return
        self._state = snapshot.state
        if snapshot.state in RESTING:
            self.rendered = between_cells(self._worker,
                                          lambda: self._handle.update(fallback_bundle(snapshot), raw=True))


def between_cells(worker: concurrent.futures.Executor, task: Callable[[], None]) -> concurrent.futures.Future[None]:
    """Run ``task`` on a Jupyter kernel's main thread between two cells, else in ``worker``. Matplotlib is not
    thread-safe and a notebook's own figures draw on that thread: a picture drawn beside them broke one (its
    mathtext parser is shared)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return worker.submit(task)
    loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    if loop is None:
        return worker.submit(task)
    future: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(task())
        except BaseException as error:  # handed to whoever waits on the future
            future.set_exception(error)

    loop.add_callback(run)
    return future
