"""A view to share: the explorer's views as they are shown, written to one HTML file that opens offline and stays
interactive (Bokeh's JavaScript inline; zoom, pan, hide the prior, hover), with the traversals as an image and the
static picture beside it as a PNG, the same drawing the notebook keeps for readers without a kernel."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bokeh.embed import file_html
from bokeh.models import Div, Model
from bokeh.resources import INLINE

from explorer.live import Snapshot
from explorer.widgets.static_view import snapshot_png
from explorer.widgets.traversal_view import traversal_png

if TYPE_CHECKING:
    from explorer.widgets.app import Explorer


def describe(snapshot: Snapshot) -> str:
    """One line of what the view shows: the step, the codes and the LPS."""
    lps = f" · LPS {snapshot.lps_score:.3f} ({snapshot.lps_estimator})" if snapshot.lps_score is not None else ""
    return f"step {snapshot.step:,} · {snapshot.state} · {snapshot.codes_of or f'{len(snapshot.codes):,} codes'}{lps}"


def view_html(roots: Sequence[Model], snapshot: Snapshot, title: str = "explorer") -> str:
    """The page: a heading, the Bokeh ``roots`` (shown elsewhere too: they are serialized, not moved), and the
    traversals of ``snapshot``."""
    heading = Div(text=f"<h2>{html.escape(title)}</h2><p>{html.escape(describe(snapshot))}</p>")
    traversals = base64.b64encode(traversal_png(snapshot)).decode()
    image = Div(text=f"<p><b>Traversals</b> from code {snapshot.selected}</p>"
                     f"<img alt='traversals' src='data:image/png;base64,{traversals}'>")
    # the tap that picks a traversal's code talks to the kernel: on the page it does nothing, which is expected
    return file_html([heading, *roots, image], INLINE, title=title, suppress_callback_warning=True)


def save_view(path: str | Path, roots: Sequence[Model], snapshot: Snapshot) -> tuple[Path, Path]:
    """Write ``path`` (its suffix made .html) and the PNG beside it; returns both paths. Hold the lock the views
    are drawn under: the roots are read as they are."""
    page = Path(path).with_suffix(".html")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(view_html(roots, snapshot, title=f"explorer · {page.stem}"), encoding="utf-8")
    picture = page.with_suffix(".png")
    picture.write_bytes(snapshot_png(snapshot))
    return page, picture


def save_shown_view(app: Explorer, path: str | Path | None) -> Path | None:
    """`Explorer.save_view`: the app's views saved under its lock, the outcome in its status line; the page's path,
    or None if it could not be written."""
    with app.lock:
        snapshot = app.last_snapshot
        page = Path(path or Path(app.panel.out.value) / f"view-step{snapshot.step}.html")
        try:
            page, _ = save_view(page, [app.latent.scatter, app.latent.structure_view.root, app.lps.root], snapshot)
        except OSError as error:
            app.panel.show(f"Could not save the view to {page}: {error.strerror or error}", error=True)
            return None
        app.panel.show(f"View saved to {page} and a PNG beside it: the page opens offline, in any browser.")
        return page
