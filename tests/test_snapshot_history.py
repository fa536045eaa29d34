"""The history slider's memory: a run's snapshots kept bounded and geometric in steps, and shown in the views."""

from __future__ import annotations

import numpy as np
import pytest

import explorer
from explorer.live.snapshot_history import KEPT, KEPT_CODES, SnapshotHistory
from tests.helpers import small_config
from tests.test_views import snapshot
from tests.waiting import wait_until


def test_the_history_stays_bounded_keeps_the_first_and_newest_and_thins_geometrically():
    history = SnapshotHistory()
    codes = np.zeros((KEPT_CODES + 5_000, 5), np.float32)  # more than it keeps of each
    for step in range(1, 20_001, 10):
        history.add(snapshot(codes, prior=codes, step=step, codes_version=step, run_id="a"))
    steps = [kept.step for kept in history.kept]
    assert len(steps) == KEPT and steps[0] == 1 and steps[-1] == 19_991 and steps == sorted(steps)
    assert sum(step < 2_000 for step in steps) >= KEPT // 3  # evenly spaced would keep one in ten there
    ratios = np.diff(np.log(steps))[5:]  # past the first, where steps 10 apart are as fine as it can get
    assert ratios.max() < 2.5 * np.median(ratios)  # no hole: about a constant ratio between kept steps
    held = sum(kept.codes.nbytes + kept.prior_sample.nbytes for kept in history.kept)
    assert all(len(kept.codes) == KEPT_CODES for kept in history.kept) and held < 200 * 2**20


def test_a_step_kept_again_replaces_its_snapshot_and_a_new_run_starts_a_new_history():
    history = SnapshotHistory()
    history.add(snapshot(np.zeros((10, 2)), step=5, run_id="a"))
    history.add(snapshot(np.ones((20, 2)), step=5, run_id="a"))  # the codes grown at rest
    history.add(snapshot(np.ones((20, 2)), step=6, run_id="a", progress_only=True))  # no codes of its own
    assert [len(kept.codes) for kept in history.kept] == [20]
    history.add(snapshot(np.zeros((10, 2)), step=1, run_id="b"))
    assert [(kept.run_id, kept.step) for kept in history.kept] == [("b", 1)]


def test_moving_the_history_slider_shows_an_earlier_step_while_progress_stays_live(digits):
    app = explorer.Explorer(small_config(steps=400), data=digits, probe_size=64, refresh_hz=None, rest_codes=0)
    app.panel.start.click()
    wait_until(lambda: (app.refresh(timeout=1) is not None and len(app.state.history) >= 4)
               or not app.background.running, timeout=60)
    app.join(timeout=60)
    app.refresh(timeout=5)
    bar, kept = app._run.history, app.state.history.kept
    assert len(kept) >= 4 and bar.slider.max == len(kept) - 1 == bar.slider.value and bar.live.disabled
    bar.slider.value = 0  # the user drags it to the start
    first = kept[0]
    np.testing.assert_array_equal(app.latent.code_source.data["x"], first.codes[:, 0])
    assert app.latent.note.value.startswith(f"step {first.step:,}: 64 codes")
    assert f"step {first.step:,} of 400" in bar.label.value and not bar.live.disabled
    assert app.panel.stats.value.startswith("step 400 / 400")  # the progress is the run's, live
    bar.live.click()
    np.testing.assert_array_equal(app.latent.code_source.data["x"], kept[-1].codes[:, 0])
    assert bar.slider.value == bar.slider.max and "live" in bar.label.value
    app.close()


@pytest.mark.parametrize("capacity", [2])
def test_a_history_of_fewer_than_three_is_refused(capacity):
    with pytest.raises(ValueError, match="capacity must be >= 3"):
        SnapshotHistory(capacity)
