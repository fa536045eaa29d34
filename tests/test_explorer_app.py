"""The Explorer without a browser: real button callbacks, real training threads, asserted widget and Bokeh state."""

from __future__ import annotations

import dataclasses
import io
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import explorer
from explorer.live import REST_LPS_CODES, rest_codes
from explorer.metrics.evaluate import encode_dataset
from explorer.paper.shipped import checkpoints_root, manifest
from explorer.priors import Gaussian
from explorer.training import Trainer, TrainingError
from tests.helpers import running, small_config
from tests.waiting import wait_until

CONFIG = small_config()


@pytest.fixture
def app(digits):
    app = explorer.Explorer(CONFIG, data=digits, probe_size=256, refresh_hz=None)
    yield app
    app.close()



def at_rest_lps(app, timeout: float):
    """The snapshot that brings the at-rest LPS (the worker publishes it when done), applied."""
    deadline = time.monotonic() + timeout
    while "as the notebooks" not in app.lps.estimator.value:
        assert time.monotonic() < deadline, app.lps.estimator.value
        app.refresh(timeout=1)
    return app.last_snapshot


def test_opens_showing_the_untrained_model(app):
    assert app.last_snapshot is not None and app.last_snapshot.step == 0
    assert len(app.latent.code_source.data["x"]) == 256 and len(app.latent.prior_source.data["x"]) == 256
    assert len(app.latent.marginal_sources) == 3
    assert len(app.latent.cov_source.data["value"]) == 9
    png = Image.open(io.BytesIO(app.traversals.image.value))
    assert png.size[1] == 20 + 3 * (8 + 2) * 6  # a row of labels, 3 rows of 8 px tiles scaled 6x
    assert "step 0 / 150" in app.panel.stats.value
    assert not app.panel.start.disabled and app.panel.pause.disabled and app.panel.stop.disabled


def test_start_trains_in_the_background_and_the_views_follow(app):
    app.panel.start.click()
    assert app.panel.start.disabled and not app.panel.pause.disabled
    app.join(timeout=60)
    snapshot = app.refresh(timeout=5)
    assert snapshot.step == 150 and snapshot.state == "finished"
    assert app.panel.progress.value == 150 and "150 / 150" in app.panel.stats.value
    assert "finished" in app.panel.stats.value and not app.panel.start.disabled
    np.testing.assert_allclose(app.latent.code_source.data["x"], snapshot.codes[:, 0])
    snapshot = at_rest_lps(app, timeout=120)
    assert snapshot.step == 150 and "LPS-mlp on 1,797 codes" in app.lps.estimator.value
    np.testing.assert_allclose(app.lps.bar_source.data["r2"], snapshot.lps)
    assert len(app.lps.history_source.data["step"]) >= 1
    assert app.panel.loss_source.data["step"][-1] == 150


def test_a_double_start_shows_a_message_and_keeps_one_thread(app):
    app.panel.steps.value = 100_000
    with running(app):
        app.panel.start.click()  # a second click reaching the kernel (the disabled button does not stop a late one)
        assert "already running" in app.panel.status.value
        assert len([t for t in threading.enumerate() if t.name == "explorer-trainer"]) == 1
    assert app.background.state == "stopped"


def shows(app, text: str, timeout: float) -> bool:
    """Whether the stats line shows ``text`` within ``timeout`` s of live updates (applied as the consumer does)."""
    deadline = time.monotonic() + timeout
    while text not in app.panel.stats.value:
        if time.monotonic() > deadline:
            return False
        app.refresh(timeout=0.05)
    return True


def test_pause_resume_stop_buttons(app):
    app.panel.steps.value = 100_000
    app.panel.start.click()
    wait_until(lambda: app.trainer.step > 3)
    app.panel.pause.click()
    assert shows(app, "paused", timeout=1.0)  # within a second of the click
    assert "left" not in app.panel.stats.value and app.panel.pause.disabled and not app.panel.resume.disabled
    held = app.trainer.step
    assert app.background.publish().result(timeout=5).step == held
    app.panel.resume.click()
    assert shows(app, "running", timeout=5.0)
    wait_until(lambda: app.trainer.step > held + 3)
    app.panel.stop.click()
    app.join(timeout=10)
    app.refresh(timeout=5)
    assert "stopped" in app.panel.stats.value and "left" not in app.panel.stats.value
    assert not app.panel.start.disabled


def test_a_prior_edited_mid_run_reaches_the_next_steps_and_the_scatter(app):
    app.panel.steps.value = 100_000
    with running(app):
        wait_until(lambda: app.trainer.step > 3)
        app.editor.set_prior(Gaussian(3, mean=5.0))
        swapped_at = app.background.publish().result(timeout=10).step  # commands run in order, between steps
        assert app.trainer.prior == Gaussian(3, mean=5.0)
        wait_until(lambda: app.trainer.step > swapped_at + 3)
    snapshot = app.refresh(timeout=5)
    assert abs(np.mean(app.latent.prior_source.data["x"]) - 5.0) < 0.3
    mmd, steps = snapshot.history["mmd"], snapshot.history_steps
    assert mmd[steps > swapped_at + 1].mean() > mmd[steps <= swapped_at].mean()


def test_a_nan_loss_shows_the_message_and_join_reraises(app):
    app.panel.steps.value = 100_000
    app.panel.start.click()
    wait_until(lambda: app.trainer.step > 3)
    app.trainer.batch = lambda: torch.full((32, 1, 8, 8), float("nan"))
    with pytest.raises(TrainingError, match="the loss is nan"):
        app.join(timeout=20)
    app.refresh(timeout=5)
    assert "the loss is nan" in app.panel.status.value and "#b00" in app.panel.status.value
    assert all(torch.isfinite(p).all() for p in app.trainer.model.parameters())
    assert not app.panel.start.disabled


def test_a_missing_dataset_is_reported_and_the_run_is_kept(app, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path))
    before = app.trainer
    app.panel.dataset.value = "mnist"
    app.panel.start.click()
    assert "mnist: dataset not found" in app.panel.status.value
    assert app.trainer is before and not app.background.running


def test_changing_the_latent_size_starts_a_new_run_with_matching_views(app):
    app.panel.latent_dim.value = 4
    app.panel.steps.value = 20
    app.panel.start.click()
    app.join(timeout=60)
    app.refresh(timeout=5)
    assert app.trainer.config.latent_dim == 4 and app.trainer.step == 20
    assert app.editor.latent_dim == 4 and app.trainer.prior.dim == 4
    assert len(app.latent.marginal_sources) == 4 and app.last_snapshot.codes.shape[1] == 4


def test_tapping_near_a_code_shows_its_traversals_and_clear_goes_back(app):
    codes = app.last_snapshot.codes
    app.latent.tap_source.data = {"x": [float(codes[7, 0]) + 1e-4], "y": [float(codes[7, 1])]}
    chosen = app.latent.selected  # code 7, or one drawn on top of it
    assert app.state.selected == chosen  # the latent view reads the selection from the app's state
    assert np.allclose(codes[chosen, :2], codes[7, :2], atol=1e-3)
    snapshot = app.refresh(timeout=5)
    assert snapshot.selected == chosen and f"probe image {chosen}" in app.traversals.title.value
    app.latent.clear_button.click()
    assert app.refresh(timeout=5).selected == 0 and app.latent.selected_source.data["x"] == []
    assert app.state.selected is None and app.latent.selected is None


def test_colour_and_projection_controls_redraw_the_scatter(app):
    app.latent.colour.value = "label"
    np.testing.assert_array_equal(app.latent.code_source.data["c"], app.background.probe.labels)
    app.latent.projection.value = "PCA"
    x, y = np.asarray(app.latent.code_source.data["x"]), np.asarray(app.latent.code_source.data["y"])
    assert abs(x.mean()) < 1e-4 and x.var() >= y.var()
    app.latent.projection.value = "pair"
    app.latent.x_dim.value, app.latent.y_dim.value = 2, 0
    np.testing.assert_allclose(app.latent.code_source.data["x"], app.last_snapshot.codes[:, 2])


def test_save_then_reopen_from_the_checkpoint(app, digits, tmp_path):
    app.panel.steps.value = 30
    app.panel.start.click()
    app.join(timeout=60)
    app.panel.out.value = str(tmp_path / "run")
    app.panel.save.click()
    app.refresh(timeout=5)
    assert "saved" in app.panel.status.value
    reopened = explorer.Explorer.from_checkpoint(tmp_path / "run", refresh_hz=None, probe_size=256)
    try:
        assert reopened.trainer.step == 30 and reopened.last_snapshot.step == 30
        assert reopened.panel.out.value == str(tmp_path / "run")
        # both at rest: the probe's codes, or more of the same order; the rows both show agree
        shown, before = reopened.last_snapshot.codes, app.last_snapshot.codes
        rows = min(len(shown), len(before))
        assert rows >= 256
        np.testing.assert_allclose(shown[:rows], before[:rows], atol=1e-5)
    finally:
        reopened.close()


def test_opens_a_run_trained_from_the_command_line(digits, tmp_path):
    from explorer.cli import main

    assert main(["train", "--dataset", "digits", "--objective", "beta-vae", "--latent-dim", "2", "--steps", "20",
                 "--batch-size", "32", "--out", str(tmp_path / "cli")]) == 0
    app = explorer.Explorer.from_checkpoint(tmp_path / "cli", refresh_hz=None, probe_size=128)
    try:
        assert app.trainer.step == 20 and app.trainer.config.objective == "beta-vae"
        assert app.panel.objective.value == "beta-vae" and app.panel.weight.description == "beta"
        assert app.last_snapshot.codes.shape == (128, 2)
    finally:
        app.close()


def test_a_checkpoint_without_training_state_opens_as_a_new_run_elsewhere(digits, tmp_path):
    from explorer import checkpoints
    from explorer.cli import main

    assert main(["train", "--dataset", "digits", "--latent-dim", "2", "--steps", "10", "--batch-size", "32",
                 "--out", str(tmp_path / "full")]) == 0
    meta, run_dir = checkpoints.read_meta(tmp_path / "full")
    weights = checkpoints.read_tensors(run_dir, meta, "weights")
    checkpoints.write_checkpoint(tmp_path / "shipped", {k: v for k, v in meta.items() if k != "files"}, weights)
    app = explorer.Explorer.from_checkpoint(tmp_path / "shipped", refresh_hz=None, probe_size=128)
    try:
        assert app.trainer.step == 10 and app.trainer.out != tmp_path / "shipped"
        assert app.panel.out.value == str(app.trainer.out)
    finally:
        app.close()


def test_the_consumer_thread_applies_snapshots_while_training(digits):
    config = dataclasses.replace(CONFIG, steps=100_000)
    app = explorer.Explorer(config, data=digits, probe_size=256, refresh_hz=5)
    try:
        app.panel.start.click()
        wait_until(lambda: app.last_snapshot is not None and app.last_snapshot.step > 50)
        assert max(app.updates.latencies) < 1.0
    finally:
        app.close()
    assert not any(t.name in ("explorer-trainer", "explorer-consumer") and t.is_alive() for t in threading.enumerate())


def test_trainer_is_reused_until_a_setting_changes(app):
    first = app.trainer
    app.panel.steps.value = 10
    app.panel.start.click()
    app.join(timeout=30)
    app.panel.steps.value = 20
    app.panel.start.click()
    app.join(timeout=30)
    assert app.trainer is first and first.step == 20
    app.panel.weight.value = app.panel.weight.value * 3  # a setting the run was not made with
    app.panel.steps.value = 10
    app.panel.start.click()
    app.join(timeout=30)
    assert app.trainer is not first and app.trainer.step == 10 and app.settings_changed == []


@pytest.mark.slow
def test_umap_runs_off_the_ui_path_and_then_fills_the_scatter(app):
    started = time.perf_counter()
    app.latent.projection.value = "UMAP"
    assert time.perf_counter() - started < 1.0  # the callback only submits the embedding
    assert "computing" in app.latent.note.value
    wait_until(lambda: app.latent.umap_step is not None, timeout=240)
    wait_until(lambda: len(app.latent.code_source.data["x"]) == 256, timeout=10)
    assert app.latent.scatter.xaxis[0].axis_label.startswith("UMAP 1 (step")
    x = np.asarray(app.latent.code_source.data["x"])
    assert np.isfinite(x).all()
    assert not np.allclose(x, app.last_snapshot.codes[:, 0])  # an embedding, not the first coordinate


def shown(panel):
    import html
    import re

    return html.unescape(re.sub("<[^>]*>", "", panel.status.value))


def test_save_with_an_empty_path_writes_nothing_into_the_working_directory(app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app.panel.out.value = "  "
    app.panel.save.click()
    app.refresh(timeout=5)
    assert "no run folder given" in shown(app.panel)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_the_folder_of_another_run_and_offers_a_new_name(app, digits, tmp_path):
    other = Trainer(dataclasses.replace(CONFIG, latent_dim=2, steps=2), dataset=digits, out=tmp_path / "other")
    other.run()
    other.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "other").iterdir() if not p.name.startswith(".")}
    app.panel.out.value = str(tmp_path / "other")
    app.panel.save.click()
    app.refresh(timeout=5)
    assert "already holds another run" in shown(app.panel) and str(tmp_path / "other-2") in shown(app.panel)
    assert {p.name: p.read_bytes() for p in (tmp_path / "other").iterdir() if not p.name.startswith(".")} == before
    assert explorer.load(tmp_path / "other").latent_dim == 2
    # saving twice into its own folder is fine
    app.panel.out.value = str(tmp_path / "mine")
    for _ in range(2):
        app.panel.save.click()
        app.refresh(timeout=5)
        assert "saved" in shown(app.panel)


@pytest.mark.parametrize("steps", [0, -5])
def test_invalid_steps_show_a_message_and_start_nothing(app, steps):
    app.panel.steps.value = steps
    app.panel.start.click()
    assert f"steps must be a positive number of training steps, got {steps}" in shown(app.panel)
    assert not app.background.running and app.trainer.step == 0


def test_settings_changed_is_derived_at_the_precision_the_controls_show(app):
    lam = app.trainer.config.objective_options.get("lam", app.panel.weight.value)
    app.panel.weight.value = lam * 1.0003  # what a log slider's snapping to its step sends back
    assert app.settings_changed == [] and "Settings changed" not in app.panel.status.value
    app.panel.weight.value = lam * 3
    assert app.settings_changed == ["lam"] and "Settings changed (lam)" in app.panel.status.value
    app.panel.weight.value = lam
    assert app.settings_changed == [] and "Settings changed" not in app.panel.status.value


def test_a_learning_rate_typed_into_its_readout_is_the_one_a_new_run_trains_with(app):
    app.panel.lr.value = 3e-4
    app.panel.lr.value = 10 ** (round(np.log10(3e-4) / 0.001) * 0.001)  # the front end's step: 0.00030007
    assert app.panel.lr.value != 3e-4 and app.panel.config().lr == 3e-4


def test_a_vae_disables_the_prior_tab_with_a_sentence_why(digits):
    app = explorer.Explorer(dataclasses.replace(CONFIG, objective="vae"), data=digits, probe_size=64,
                            refresh_hz=None)
    try:
        assert app.tabs.titles[1] == "Prior (n/a)"
        (note,) = app.prior_tab.children
        assert "has no prior to program" in note.value and "AE-MMD" in note.value
    finally:
        app.close()


@pytest.mark.slow
def test_a_shipped_checkpoint_opens_as_trained_shows_the_notebooks_lps_and_start_continues_it(tmp_path):
    entry = next(e for e in manifest() if e["path"] == "kl-failure/mmd-seed0")  # the 0.036 vs 0.37
    app = explorer.Explorer.from_checkpoint(checkpoints_root() / entry["path"], out=tmp_path / "run", probe_size=256,
                                            refresh_hz=None)
    try:
        first = app.trainer
        assert app.panel.weight.value == 30 and app.settings_changed == []
        assert app.panel.steps.value == 2 * entry["step"]  # Start trains further, not from 0
        at_rest_lps(app, timeout=180)
        assert "LPS-mlp on 5,000 codes" in app.lps.estimator.value
        assert app.last_snapshot.lps_score == pytest.approx(entry["metrics"]["lps_mlp"], abs=0.05)
        app.panel.steps.value = entry["step"] + 20
        app.panel.start.click()
        app.join(timeout=120)
        assert app.trainer is first and app.refresh(timeout=5).step == entry["step"] + 20
    finally:
        app.close()


def test_the_at_rest_lps_sees_the_codes_the_notebooks_lps_is_measured_on(app, digits, tmp_path):
    """Same rows, same encoder, same estimator (lps, mlp, seed 0) as `evaluate`: so on every shipped checkpoint the
    at-rest value is the manifest's LPS-mlp, which tests/test_shipped_checkpoints.py recomputes on these codes."""
    assert {entry["eval"]["n"] for entry in manifest()} == {REST_LPS_CODES}
    app.trainer.save(tmp_path / "run")
    expected, _, _ = encode_dataset(explorer.load(tmp_path / "run"), digits, 1000, seed=0)
    torch.testing.assert_close(rest_codes(app.trainer.model, digits, 1000).numpy(), expected)


def test_the_weight_slider_is_named_and_set_for_the_objective_chosen_and_back(digits):
    lam = 2.0  # not AE-MMD's default 0.3
    app = explorer.Explorer(dataclasses.replace(CONFIG, objective_options={"lam": lam}), data=digits, probe_size=64,
                            refresh_hz=None)
    panel = app.panel
    assert (panel.weight.description, panel.weight.value) == ("lam", pytest.approx(lam, rel=1e-3))
    panel.objective.value = "vae"
    assert (panel.weight.description, panel.weight.value) == ("beta", 1.0)
    assert "Settings changed (objective)" in panel.status.value
    panel.objective.value = "factorvae"
    assert (panel.weight.description, panel.weight.value) == ("gamma", 10.0)
    panel.objective.value = CONFIG.objective  # back: the run's own weight, so nothing has changed
    assert (panel.weight.description, panel.weight.value) == ("lam", pytest.approx(lam, rel=1e-3))
    assert panel.status.value == ""
    app.close()


def test_the_code_under_the_cursor_shows_its_own_input_and_the_models_reconstruction(app):
    app.panel.steps.value = 20
    app.panel.start.click()
    app.join(timeout=60)
    app.refresh(timeout=5)
    app.latent.hover_source.data = {"index": [3]}  # what the browser's hover sends
    wait_until(lambda: app.latent.details.hover_image.value != b"")
    picture = np.asarray(Image.open(io.BytesIO(app.latent.details.hover_image.value)))
    probe, code = app.background.probe, torch.from_numpy(app.last_snapshot.codes[3])
    original, reconstruction = probe.image_and_reconstruction(app.trainer.model, 3, code)
    np.testing.assert_array_equal(original, probe.images([3])[0])  # row 3 of the order the codes follow
    np.testing.assert_array_equal(picture[::8, ::8][:8, :8], original[..., 0])  # 8 x 8 digits at 64 px
    np.testing.assert_array_equal(picture[::8, -64::8], reconstruction[..., 0])
