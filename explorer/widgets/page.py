"""The explorer as a page without code cells: `page.ipynb` rendered by Voila.

``python -m explorer app [RUN]`` serves `NOTEBOOK` with Voila (see `serve`); on Binder the same notebook opens at
``?urlpath=voila/render/explorer/widgets/page.ipynb``. The page opens the run named by ``?run=`` in its address
(Voila hands the query string to the kernel as ``QUERY_STRING``), else by ``$EXPLORER_APP_RUN`` (what the command
sets), else a new run with the explorer's defaults. A run another process is writing is followed read-only.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import ipywidgets as widgets
from IPython.display import HTML, display

from explorer import run_folder, snapshot_files
from explorer.checkpoints import CheckpointError, read_meta
from explorer.widgets.app import Explorer
from explorer.widgets.bokehjs import bokehjs_script

NOTEBOOK = Path(__file__).with_name("page.ipynb")
RUN_ENV = "EXPLORER_APP_RUN"
DIR_ENV = "EXPLORER_APP_DIR"  # where relative paths (RUN, "save to") start: the command's working directory


def requested_run(environ: Mapping[str, str] = os.environ) -> str | None:
    """The run the page was asked to open: ``?run=`` in its address, else ``$EXPLORER_APP_RUN``, else None."""
    asked = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("run")
    return asked[-1] if asked else environ.get(RUN_ENV) or None


def checked_run(run: str | os.PathLike[str]) -> tuple[Path, bool]:
    """``run`` as a folder the page can open, and whether another process is writing it (then it is followed);
    raises `CheckpointError`, or FileNotFoundError for a followed run without snapshot files, with a message that
    says what to do."""
    folder = Path(run)
    writer = run_folder.writer(folder) if folder.is_dir() else None
    if writer is None:
        return read_meta(folder)[1], False
    if snapshot_files.signature(folder) is None:
        raise FileNotFoundError(f"{folder} is being trained by {writer} without snapshot files: train it with "
                                "--snapshot-every N to follow it live, or open it once it has finished")
    return folder, True  # its snapshot files are enough: it may have no checkpoint yet


def opened(run: str | None) -> Explorer:
    """The explorer of ``run`` (None: a new run with the explorer's defaults)."""
    if run is None:
        return Explorer()
    folder, being_written = checked_run(run)
    return Explorer.follow(folder) if being_written else Explorer.from_checkpoint(folder)


def show(environ: Mapping[str, str] = os.environ) -> Explorer | None:
    """What the page's one code cell shows: BokehJS as a script (Voila renders no jupyter_bokeh load output), then
    the explorer of `requested_run`, or one message saying why that run cannot be opened."""
    os.chdir(environ.get(DIR_ENV) or Path.home())
    script = bokehjs_script().replace("</", "<\\/")  # no "</script>" inside may end the tag early
    display(HTML(f"<script>{script}</script>"))
    run = requested_run(environ)
    try:
        app = opened(run)
    except (OSError, ValueError, CheckpointError) as error:
        display(widgets.HTML(f"<b>Cannot open {html.escape(run or '')}</b>: {html.escape(str(error))}"))
        return None
    display(app)
    return app


def serve(run: Path | None, port: int | None, open_browser: bool) -> int:
    """Serve the page with Voila on 127.0.0.1 until interrupted (``python -m explorer app``); ``run`` is checked
    first, so a wrong path fails here with one message rather than in the page."""
    try:
        from voila.app import Voila
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the app page needs Voila: pip install 'explorer[app]'") from None
    if run is not None:
        checked_run(run)
        os.environ[RUN_ENV] = str(run.resolve())
    os.environ[DIR_ENV] = os.getcwd()
    Voila.launch_instance(argv=[str(NOTEBOOK), "--Voila.ip=127.0.0.1", f"--Voila.open_browser={open_browser}",
                                "--VoilaConfiguration.show_tracebacks=True", *([f"--port={port}"] if port else [])])
    return 0
