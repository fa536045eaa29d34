"""The app page's choice of run (`explorer.widgets.page`): from its address or the command, checked before any
work, a run being written followed; the command's errors. The page itself runs in tests/test_browser_app.py."""

from __future__ import annotations

import os

import pytest

from explorer import snapshot_files
from explorer.checkpoints import CheckpointError
from explorer.cli import main
from explorer.widgets import page
from tests.helpers import another_writer

TRAIN = ["train", "--dataset", "digits", "--latent-dim", "3", "--batch-size", "32", "--steps", "3"]


def test_the_run_asked_for_comes_from_the_address_then_from_the_command():
    both = {"QUERY_STRING": "token=abc&run=runs%2Fmy%20run", page.RUN_ENV: "/from/the/command"}
    assert page.requested_run(both) == "runs/my run"
    assert page.requested_run({"QUERY_STRING": "", page.RUN_ENV: "/from/the/command"}) == "/from/the/command"
    assert page.requested_run({}) is None


@pytest.fixture
def trained(tmp_path):
    """A finished command-line run that wrote snapshot files."""
    assert main([*TRAIN, "--snapshot-every", "1", "--out", str(tmp_path / "run")]) == 0
    return tmp_path / "run"


def test_a_finished_run_is_opened_and_one_being_written_is_followed(trained):
    assert page.checked_run(trained) == (trained, False)
    with another_writer(trained) as writer:
        assert page.checked_run(trained) == (trained, True)
        (trained / "checkpoint.json").unlink()  # a run trained without checkpoints yet: its snapshots suffice
        assert page.checked_run(trained) == (trained, True)
        (trained / snapshot_files.SNAPSHOT_FILE).unlink()  # a writer without snapshot files cannot be followed
        with pytest.raises(FileNotFoundError, match=f"PID {writer.pid}.*--snapshot-every"):
            page.checked_run(trained)


def test_the_page_says_why_a_run_cannot_be_opened(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the page moves to $EXPLORER_APP_DIR; this puts the tests' directory back
    shown = []
    monkeypatch.setattr(page, "display", shown.append)
    environ = {"QUERY_STRING": "run=nowhere", page.DIR_ENV: str(tmp_path)}
    assert page.show(environ) is None
    assert os.getcwd() == str(tmp_path)
    script = shown[0].data  # BokehJS, whole inside one tag
    assert script.startswith("<script>") and script.count("</script>") == 1 and "window.Bokeh" in script
    assert "Cannot open nowhere" in shown[1].value and "nowhere" in shown[1].value.split(":", 1)[1]


def test_the_command_refuses_a_wrong_run_before_serving(tmp_path, capsys):
    assert main(["app", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "nowhere" in err
    with pytest.raises(CheckpointError):
        page.checked_run(tmp_path / "nowhere")
