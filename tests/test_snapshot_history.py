"""The history slider's memory: a run's snapshots kept bounded and geometric in steps, and shown in the views."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import explorer
from explorer.live.snapshot_history import HISTORY_FILE, KEPT, KEPT_CODES, SAVED_CODES, SnapshotHistory
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
    assert history.run_id == "b" and [kept.step for kept in history.kept] == [1]


def test_moving_the_history_slider_shows_an_earlier_step_while_progress_stays_live(digits):
    app = explorer.Explorer(small_config(steps=400), data=digits, probe_size=64, refresh_hz=None, rest_codes=0)
    app.panel.start.click()
    wait_until(lambda: (app.refresh(timeout=1) is not None and len(app.state.history) >= 4)
               or not app.background.running, timeout=60)
    app.join(timeout=60)
    app.refresh(timeout=5)
    bar, kept = app._run.history, app.state.history.kept
    assert len(kept) >= 4 and bar.slider.max == len(kept) - 1 == bar.slider.value == bar.play.value
    assert bar.live.disabled
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


def kept_history(steps, run_id="a", n=3_000) -> SnapshotHistory:
    history = SnapshotHistory()
    rng = np.random.default_rng(0)
    for step in steps:
        lps = None if step == steps[0] else rng.random(3)  # no LPS estimated yet at the first
        taken = snapshot(rng.standard_normal((n, 3)), step=step, run_id=run_id, fit=rng.random(3),
                         codes_of=f"{n:,} codes", codes_version=step)
        history.add(dataclasses.replace(taken, lps=lps))
    return history


def test_a_saved_history_loads_back_with_its_first_codes_at_half_precision(tmp_path):
    history = kept_history([1, 10, 100])
    assert history.save(tmp_path) == tmp_path / HISTORY_FILE and not list(tmp_path.glob("*.tmp"))
    loaded = SnapshotHistory.load(tmp_path)
    assert [kept.step for kept in loaded.kept] == [1, 10, 100]
    for kept, back in zip(history.kept, loaded.kept, strict=True):
        assert back.codes.shape == (SAVED_CODES, 3) and back.codes.dtype == np.float32
        np.testing.assert_allclose(back.codes, kept.codes[:SAVED_CODES], rtol=1e-3, atol=1e-3)
        assert (back.lps is None) == (kept.lps is None) and back.codes_of == kept.codes_of
        np.testing.assert_allclose(back.fit, kept.fit, rtol=1e-6)
    assert len(SnapshotHistory.load(tmp_path / "nowhere")) == 0  # nothing saved: an empty history


def test_a_reopened_run_shows_its_saved_steps_before_its_own_and_stays_bounded(tmp_path):
    kept_history(range(1, 4_000, 50)).save(tmp_path)  # 80 steps, thinned to the 48 kept
    reopened = kept_history([3_951, 3_960], run_id="new")  # the first step is the checkpoint's, seen again
    reopened.adopt(SnapshotHistory.load(tmp_path))
    steps = [kept.step for kept in reopened.kept]
    assert len(steps) == KEPT and steps[0] == 1 and steps[-1] == 3_960 and steps == sorted(set(steps))
    assert len(reopened.kept[-1].codes) == 3_000  # the reopened run's own codes, not the saved ones


def test_a_file_that_is_not_a_saved_history_is_named_in_one_message(tmp_path):
    (tmp_path / HISTORY_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=f"{HISTORY_FILE} is not a history explorer saved .*move it away"):
        SnapshotHistory.load(tmp_path)


def test_save_keeps_the_history_beside_the_checkpoint_and_reopening_shows_it(digits, tmp_path):
    app = explorer.Explorer(small_config(steps=300), data=digits, probe_size=64, refresh_hz=None, rest_codes=0)
    app.panel.out.value = str(tmp_path / "run")
    app.panel.start.click()
    wait_until(lambda: (app.refresh(timeout=1) is not None and len(app.state.history) >= 4)
               or not app.background.running, timeout=60)
    app.join(timeout=60)
    app.refresh(timeout=5)
    saved_steps = [kept.step for kept in app.state.history.kept]
    app.panel.save.click()
    wait_until(lambda: (tmp_path / "run" / HISTORY_FILE).exists(), timeout=30)
    app.close()
    assert len(saved_steps) >= 3
    reopened = explorer.Explorer.from_checkpoint(tmp_path / "run", probe_size=64, refresh_hz=None, rest_codes=0)
    wait_until(lambda: reopened.refresh(timeout=1) is not None, timeout=30)
    assert [kept.step for kept in reopened.state.history.kept] == saved_steps  # the last is the checkpoint's step
    assert reopened._run.history.slider.max == len(saved_steps) - 1
    reopened.close()

    (tmp_path / "run" / HISTORY_FILE).write_bytes(b"garbage")
    broken = explorer.Explorer.from_checkpoint(tmp_path / "run", probe_size=64, refresh_hz=None, rest_codes=0)
    assert "is not a history explorer saved" in broken.panel.status.value
    broken.close()
