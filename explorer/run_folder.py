"""Run folders: the one writer of a folder holds its lock; the path is checked before any work is done.

A writer (`Trainer`) calls `acquire` before it builds anything: the path must name a folder that can be created
and written, and no other process may hold the folder's lock (``.writer.lock``, an OS file lock from `filelock`,
which the kernel releases when its process dies, so the lock of a killed writer is free at once). The holder
records its PID in ``.writer.json`` for the message a refused writer gets. Readers take no lock.

Within one process the lock is counted (a resumed `Trainer` in the notebook that trained the run is not refused);
it is released when the last holder releases it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".writer.lock"
WRITER_FILE = ".writer.json"
TMP_SUFFIX = ".tmp"

_locks: dict[Path, FileLock] = {}
_guard = threading.Lock()


class RunFolderError(OSError):
    """A run folder that cannot be written: no path, not a folder, not writable, or held by another writer."""


def check_path(out: str | os.PathLike[str]) -> Path:
    """``out`` as a run-folder path; refuses an empty path, an existing file and a path under a file."""
    if not str(out).strip():
        raise RunFolderError("no run folder given: name a folder to write the checkpoint into")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} is a file, not a folder: choose a folder for the run")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunFolderError(f"{path} cannot be created: {parent} is a file, not a folder")
            break
    return path


def free_name(folder: Path) -> Path:
    """The first of ``folder-2``, ``folder-3``, ... that does not exist yet (a name to offer instead)."""
    n = 2
    while (candidate := folder.with_name(f"{folder.name}-{n}")).exists():
        n += 1
    return candidate


class WriterLock:
    """One hold on a run folder's lock; `release` gives it back (once; later calls do nothing)."""

    def __init__(self, folder: Path, lock: FileLock) -> None:
        self.folder, self._lock, self._held = folder, lock, True

    def release(self) -> None:
        with _guard:
            if not self._held:
                return
            self._held = False
            if self._lock.lock_counter == 1:
                (self.folder / WRITER_FILE).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(folder: Path, patience: float = 1.0) -> str:
    """Who holds ``folder``'s lock, as recorded by the holder (e.g. "PID 4242 on host"), for messages.

    A holder that has just taken the lock writes its record a moment later: wait up to ``patience`` s for it."""
    deadline = time.monotonic() + patience
    while True:
        try:
            info = json.loads((folder / WRITER_FILE).read_text())
            return f"PID {int(info['pid'])} on {info['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "a process whose PID is not recorded"
            time.sleep(0.05)


def writer(folder: Path) -> str | None:
    """Who else is writing ``folder`` now (as `holder` says), or None: its lock is free or held by this process.
    Probing takes the lock for an instant; a folder that cannot be locked (read-only) has no writer."""
    key = folder.resolve()
    with _guard:
        if (key in _locks and _locks[key].is_locked) or not (key / LOCK_FILE).exists():
            return None
        probe = FileLock(key / LOCK_FILE, timeout=0, thread_local=False)
        try:
            probe.acquire()
        except Timeout:
            return holder(key)
        except OSError:
            return None
        probe.release()
        return None


def acquire(out: str | os.PathLike[str]) -> WriterLock:
    """Create ``out`` if needed and hold its writer lock; raise `RunFolderError` at once if it cannot be had.

    The first hold in this process also removes the ``.tmp`` files a killed writer left behind."""
    folder = check_path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"cannot create the run folder {folder}: {error.strerror or error}") from error
    key = folder.resolve()
    with _guard:
        lock = _locks.setdefault(key, FileLock(key / LOCK_FILE, timeout=0, thread_local=False))
        first = lock.lock_counter == 0
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderError(
                f"{folder} is being written by another process ({holder(key)}); wait for it to finish, "
                "or choose another folder"
            ) from None
        except OSError as error:
            raise RunFolderError(f"cannot write to the run folder {folder}: {error.strerror or error}") from error
        if first:
            try:
                _write_holder(key)
            except OSError as error:
                lock.release()
                raise RunFolderError(f"cannot write to the run folder {folder}: {error.strerror or error}") from error
            remove_stale_tmp(key)
    return WriterLock(key, lock)


def _write_holder(folder: Path) -> None:
    """Record this process as the holder, in a new file moved into place (also proves the folder is writable)."""
    tmp = folder / f"{WRITER_FILE}.{os.getpid()}{TMP_SUFFIX}"
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        os.replace(tmp, folder / WRITER_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_tmp(folder: Path) -> None:
    """Remove the ``.tmp`` files of interrupted writes (only the lock holder calls this: no write is under way)."""
    for leftover in folder.glob(f".*{TMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
