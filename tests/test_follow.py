"""Explorer.follow: the views of a run that another process trains, read from its snapshot files, read-only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import explorer
from explorer.snapshot_files import SNAPSHOT_FILE, read_snapshot
from tests.waiting import wait_until

TRAIN = ["train", "--dataset", "digits", "--objective", "mmd", "--latent-dim", "3", "--batch-size", "32"]


def test_follow_shows_a_cli_run_in_another_process_read_only(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    writer = subprocess.Popen([sys.executable, "-m", "explorer", *TRAIN, "--steps", "1000000", "--snapshot-every",
                               "10", "--checkpoint-every", "0", "--out", str(out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    app = None
    try:
        wait_until(lambda: (out / SNAPSHOT_FILE).exists() or writer.poll() is not None, timeout=120)
        assert writer.poll() is None, writer.stderr.read().decode()
        app = explorer.Explorer.follow(out, poll_s=0.05, probe_size=128, refresh_hz=None)
        first = app.refresh(timeout=10)
        assert first.state == "following" and "Following" in app.panel.status.value
        assert app.panel.start.disabled and app.panel.save.disabled and app.panel.dataset.disabled
        deadline = time.monotonic() + 60
        snapshot = first
        while snapshot.step <= first.step:  # each refresh waits for the follower's next snapshot
            assert time.monotonic() < deadline, "no newer snapshot"
            snapshot = app.refresh(timeout=5) or snapshot
        assert snapshot.history_steps[-1] == snapshot.step and len(snapshot.codes) == 128
        assert app.last_snapshot.step == snapshot.step and f"{snapshot.step:,}" in app.panel.stats.value
        assert writer.poll() is None  # the writer was never blocked
    finally:
        if app is not None:
            app.close()
        writer.terminate()
        writer.wait(timeout=30)
    assert read_snapshot(out).meta["step"] >= snapshot.step  # still whole after the writer was killed
