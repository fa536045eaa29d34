"""The history slider's steps kept across a reopen: Save writes them beside the checkpoint (`save_with_history`),
and a run opened from its folder shows them again (`restore_history`)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.live.snapshot_history import SnapshotHistory

if TYPE_CHECKING:
    from explorer.widgets.app import Explorer


def save_with_history(app: Explorer) -> concurrent.futures.Future[Path]:
    """The Save button: a checkpoint between two steps into the panel's folder, then the history beside it."""
    saved = app.background.save(app.panel.out.value)
    saved.add_done_callback(lambda done: _write_history(app, done))
    return saved


def _write_history(app: Explorer, saved: concurrent.futures.Future[Path]) -> None:
    if saved.exception() is not None:
        return  # the status line says why there is no checkpoint
    with app.lock:  # the updates thread adds to the history under it
        try:
            app.state.history.save(saved.result().parent)  # beside the checkpoint's sidecar
        except OSError as error:
            app.panel.show(f"The checkpoint is saved, but not the history slider's steps beside it: {error}",
                           error=True)


def restore_history(app: Explorer, folder: Path) -> Explorer:
    """Show the history saved in ``folder`` (if any) before the steps ``app`` keeps; returns ``app``. A file that is
    not one is said in the status line, and the run opens without its earlier steps."""
    try:
        past = SnapshotHistory.load(folder)
    except ValueError as error:
        with app.lock:
            app.panel.show(str(error), error=True)
        return app
    with app.lock:
        app.state.adopt(past)
    return app
