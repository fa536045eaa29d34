"""Run folders: one writer at a time (a second is refused at once, naming the holder's PID), a killed writer's
lock and leftovers taken over, and bad paths refused before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from explorer import run_folder
from explorer.cli import main
from explorer.run_folder import RunFolderError
from tests.helpers import another_writer

TRAIN = ["train", "--dataset", "digits", "--latent-dim", "3", "--batch-size", "32", "--steps", "3"]


@pytest.fixture
def holder(tmp_path):
    """Another process holding the writer lock of tmp_path / "run"."""
    with another_writer(tmp_path / "run") as process:
        yield process


def test_a_second_writer_is_refused_at_once_naming_the_folder_and_the_holders_pid(tmp_path, holder, capsys):
    with pytest.raises(RunFolderError, match=rf"run is being written by another process \(PID {holder.pid} "):
        run_folder.acquire(tmp_path / "run")
    # the command line refuses before it builds or trains anything, for a new run and for --resume alike
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and str(tmp_path / "run") in err and f"PID {holder.pid}" in err
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_a_second_resume_is_refused(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    with another_writer(tmp_path / "run") as process:
        assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--steps", "6"]) == 2
        assert f"PID {process.pid}" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert after == before


def test_the_lock_of_a_killed_writer_is_taken_over_with_its_leftovers(tmp_path, holder):
    (tmp_path / "run" / ".weights-abc.tmp").write_bytes(b"half a file")  # what a kill -9 mid-save leaves
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_folder.acquire(tmp_path / "run") as held:
        assert run_folder.holder(held.folder) == f"PID {os.getpid()} on {os.uname().nodename}"
        assert not list((tmp_path / "run").glob("*.tmp"))


def test_the_lock_is_counted_within_a_process_and_released_by_the_last_holder(tmp_path):
    first = run_folder.acquire(tmp_path / "run")
    second = run_folder.acquire(tmp_path / "run")
    first.release()
    first.release()  # a second release of one hold does nothing
    probe = [sys.executable, "-c", "import sys; from explorer.run_folder import acquire; acquire(sys.argv[1])",
             str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    assert subprocess.run(probe, env=env, capture_output=True).returncode != 0  # still held by `second`
    second.release()
    assert subprocess.run(probe, env=env, capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: "", "no run folder given"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is a file, not a folder"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "run", "cannot be created"),
    ],
    ids=["empty", "a-file", "under-a-file"],
)
def test_bad_paths_are_refused(tmp_path, make, message):
    with pytest.raises(RunFolderError, match=message):
        run_folder.acquire(make(tmp_path))


def test_a_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    # as for a user without write permission (these tests may run as root, who has it everywhere)
    real = os.open

    def denied(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")) and flags & (os.O_CREAT | os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(RunFolderError, match=r"cannot write to the run folder .*ro/run: Permission denied"):
        run_folder.acquire(tmp_path / "ro" / "run")


def test_free_name_offers_the_first_unused_sibling(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    assert run_folder.free_name(tmp_path / "run") == tmp_path / "run-3"


def test_the_writer_of_a_folder_is_named_while_another_process_holds_it(tmp_path, holder):
    assert run_folder.writer(tmp_path / "run") == f"PID {holder.pid} on {os.uname().nodename}"
    holder.kill()
    holder.wait()
    assert run_folder.writer(tmp_path / "run") is None  # the kernel freed a dead writer's lock
    with run_folder.acquire(tmp_path / "run"):
        assert run_folder.writer(tmp_path / "run") is None  # this process is not "another" writer
    assert run_folder.writer(tmp_path) is None  # never written: no lock file
