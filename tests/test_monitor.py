"""`Monitor`: a plain PyTorch loop of the user's own, watched in the Explorer's views; the views' commands run
inside `Monitor.step`, between two of the loop's steps."""

from __future__ import annotations

import dataclasses
import re
import threading

import pytest
import torch

import explorer
from explorer.data import as_dataset
from explorer.events import StopTraining
from explorer.live.monitor import Monitor
from explorer.live.probe import Picture
from explorer.losses import MMDPrior
from explorer.priors import Gaussian, Uniform
from tests.helpers import TinyAE, user_step
from tests.waiting import wait_until


@pytest.fixture
def loop(digits):
    """A user's model, loss, optimizer and monitor on the digits; ``batch(step)`` its data."""
    torch.manual_seed(0)
    model = TinyAE(digits.shape)
    mmd_prior = MMDPrior(Gaussian(3))
    monitor = Monitor(model, digits, loss=mmd_prior, probe_size=64, total_steps=10**6)

    class Loop:
        def __init__(self) -> None:
            self.model, self.mmd_prior, self.monitor = model, mmd_prior, monitor
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            self.steps_done = 0
            self.error: BaseException | None = None

        def batch(self, step: int) -> torch.Tensor:
            rows = torch.randint(len(digits), (32,), generator=torch.Generator().manual_seed(step))
            return digits.inputs(rows)

        def run(self, steps: int) -> None:
            for step in range(1, steps + 1):
                terms = user_step(self.model, self.mmd_prior, self.optimizer, self.batch(step))
                try:
                    self.monitor.step(step, **terms)
                except StopTraining:
                    return
                self.steps_done = step

        def in_thread(self, steps: int = 10**6) -> threading.Thread:
            def run() -> None:
                try:
                    with self.monitor:
                        self.run(steps)
                except BaseException as error:  # the test reads it
                    self.error = error

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread

    yield Loop()
    monitor.close()


def test_a_plain_loop_feeds_the_explorer_views_with_start_and_save_off(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    try:
        loop.model.train()
        loop.run(20)
        assert loop.model.training  # the monitor restored the loop's mode
        # the loop's encodes train with gradients; the monitor's are in eval mode, without
        assert set(loop.model.calls) == {(True, True), (False, False)}
        snapshot = app.refresh(timeout=5)  # the first step's (the next are due after the snapshot interval)
        assert snapshot.state == "running" and len(snapshot.codes) == 64 and set(snapshot.history) == {
            "loss", "recon", "mmd"}
        assert app.panel.start.disabled and app.panel.save.disabled and not app.panel.pause.disabled
        assert app.panel.settings.layout.display == "none"
        loop.monitor.finish()
        snapshot = app.refresh(timeout=5)
        assert snapshot.state == "finished" and snapshot.step == 20 and snapshot.history_steps[-1] == 20
        assert app.panel.stop.disabled and app.panel.start.disabled
    finally:
        app.close()


def test_a_prior_edited_in_the_views_reaches_the_loop_and_its_loss_between_two_steps(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    thread = loop.in_thread()
    try:
        wait_until(lambda: loop.steps_done > 3)
        app.editor.set_prior(Uniform(3, low=-2.0, high=2.0))
        swapped_at = loop.monitor.publish().result(timeout=10).step  # commands run in order, inside step
        assert loop.monitor.prior == Uniform(3, low=-2.0, high=2.0) == loop.mmd_prior.prior
        assert swapped_at <= loop.steps_done + 1
    finally:
        loop.monitor.stop()
        thread.join(timeout=30)
    assert loop.error is None and loop.monitor.state == "stopped"


def test_the_prior_tab_follows_a_prior_set_in_code_and_keeps_an_edit_the_loop_has_yet_to_take(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    try:
        loop.run(3)
        uniform = Uniform(3, low=-2.0, high=2.0)
        loop.monitor.set_prior(uniform)  # as notebook 06 does between two runs of its loop
        app.apply(loop.monitor.publish().result(timeout=10))
        assert app.editor.prior == uniform and app.editor.family_select.value == "uniform"
        assert [app.editor.sliders[name].value for name in ("low", "high")] == [-2.0, 2.0]
        assert loop.monitor.prior == uniform  # shown, not sent back as an edit

        edited = Gaussian(3, mean=1.0)
        app.editor.set_prior(edited)  # the loop takes it at its next step; a snapshot from before arrives first
        stale = dataclasses.replace(app.last_snapshot, prior=uniform)
        app.apply(stale)
        assert app.editor.prior == edited
        loop.monitor.step(4)
        assert loop.monitor.prior == edited == loop.mmd_prior.prior

        dragged = [Gaussian(3, std=s) for s in (1.5, 2.0, 2.5)]  # a drag: the editor runs ahead of the run
        for prior in dragged:
            app.editor.set_prior(prior)
        app.apply(dataclasses.replace(app.last_snapshot, prior=dragged[0]))  # the run at the drag's first prior
        assert app.editor.prior == dragged[-1], "the editor jumped back to a prior it had sent itself"
    finally:
        app.close()


def test_a_loop_of_unknown_length_shows_its_step_and_rate_without_a_total_or_time_left(digits):
    monitor = Monitor(TinyAE(digits.shape), digits, probe_size=16)  # the README's monitor: no total_steps
    app = explorer.Explorer.watch(monitor, refresh_hz=None)
    try:
        for step in range(1, 6):
            monitor.step(step, loss=1.0)
        snapshot = app.refresh(timeout=5)
        assert snapshot.total_steps == 0 and snapshot.seconds_left is None
        assert re.fullmatch(r"step \d · [\d.]+ steps/s · running", app.panel.stats.value)
        assert app.panel.progress.layout.visibility == "hidden"
    finally:
        monitor.finish()
        app.close()


def test_pause_blocks_the_loop_inside_step_until_resume_and_stop_ends_it(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    thread = loop.in_thread()
    try:
        wait_until(lambda: loop.steps_done > 3)
        app.panel.pause.click()
        wait_until(lambda: loop.monitor.state == "paused")
        held = loop.steps_done
        assert loop.monitor.publish().result(timeout=10).step == held + 1  # run by the loop, blocked in step
        assert loop.steps_done == held
        app.panel.resume.click()
        wait_until(lambda: loop.steps_done > held + 3)
        app.panel.stop.click()
        thread.join(timeout=30)
        assert not thread.is_alive() and loop.error is None  # StopTraining ended the loop
        assert app.refresh(timeout=5).state == "stopped"
    finally:
        loop.monitor.stop()
        thread.join(timeout=30)


def test_a_step_going_backwards_is_refused_unless_a_new_run_begins(loop):
    loop.run(5)
    with pytest.raises(ValueError, match=r"step 2 after step 5.*monitor\.new_run\(\)"):
        loop.monitor.step(2, loss=1.0)
    first = loop.monitor.source.run_id
    loop.monitor.new_run()
    loop.monitor.step(2, loss=torch.tensor(1.0))
    snapshot = loop.monitor.publish().result(timeout=10)
    assert snapshot.run_id != first and snapshot.step == 2 and list(snapshot.history_steps) == [2]


def test_a_loop_that_raises_shows_the_failure_and_its_message(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    try:
        with pytest.raises(RuntimeError, match="out of memory"), loop.monitor:
            loop.run(3)
            raise RuntimeError("CUDA out of memory")
        snapshot = app.refresh(timeout=5)
        assert snapshot.state == "failed" and "CUDA out of memory" in app.panel.status.value
    finally:
        app.close()


def test_non_finite_codes_are_one_message_in_the_views_and_the_loop_goes_on(loop):
    app = explorer.Explorer.watch(loop.monitor, refresh_hz=None)
    try:
        loop.run(2)
        loop.model.broken = True
        loop.monitor.step(3, loss=float("nan"))
        loop.monitor.publish().result(timeout=10)  # hands a slice of the probe to its worker, with the broken model
        loop.monitor.probe.settle()
        snapshot = loop.monitor.publish().result(timeout=10)  # the next snapshot shows the slice
        assert snapshot.message_is_error
        assert re.search(r"\d+ of the 64 probe codes at step 3 are not finite", snapshot.message)
        app.refresh(timeout=5)
        assert "not finite" in app.panel.status.value
        loop.model.broken = False
        loop.monitor.step(4, loss=1.0)  # the monitor does not end the loop
        loop.monitor.finish()  # encodes the whole probe anew: every code is finite again
        assert loop.monitor.publish().result(timeout=10).message == ""
    finally:
        app.close()


def test_vector_data_is_drawn_as_strips_of_its_features():
    """Vectors have no image: the original, its reconstruction and the traversals are strips of one cell per feature,
    each feature scaled from the probe's range of it (its 1st percentile black, its 99th white)."""
    features = torch.linspace(0, 1, 101).unsqueeze(1) * torch.tensor([[1.0, 10.0, 100.0, -5.0]])  # four scales
    data = as_dataset(features, name="columns")
    picture = Picture(data.inputs(torch.arange(101)))
    strip = picture(features[[1, 99]])  # each feature's 1st and 99th percentile
    assert strip.shape == (2, 1, 4, 1) and strip[0, 0, :3, 0].tolist() == [0, 0, 0]
    assert strip[1, 0, :3, 0].tolist() == [255, 255, 255] and strip[0, 0, 3, 0] == 255  # -5 x grows darker
    monitor = Monitor(TinyAE(data.shape), features, prior=Gaussian(3), probe_size=50, total_steps=5)  # a tensor
    assert monitor.source.dataset.shape == (4,)
    app = explorer.Explorer.watch(monitor, refresh_hz=None)
    try:
        with monitor:
            monitor.step(1, loss=1.0)
        snapshot = app.refresh(timeout=10)
    finally:
        app.close()
    assert snapshot.original.shape == snapshot.reconstruction.shape == (1, 4, 1)
    assert snapshot.traversals.shape == (3, 7, 1, 4, 1)
