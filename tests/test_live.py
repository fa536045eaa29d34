"""BackgroundTrainer: one thread, pause / resume / stop, NaN and errors re-raised by join, live prior swaps,
checkpoints between steps, and snapshots through a bounded drop-oldest queue."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import explorer
from explorer.history import BoundedHistory
from explorer.live import BackgroundTrainer, RateLimiter, Snapshot, SnapshotQueue, traversal_grid, traversal_values
from explorer.live.probe import encode
from explorer.priors import Gaussian
from explorer.training import Callback, Trainer, TrainingError
from tests.helpers import running, small_config
from tests.waiting import wait_until


def make_background(digits, steps: int = 200, **options) -> BackgroundTrainer:
    return BackgroundTrainer(Trainer(small_config(steps=steps), dataset=digits), probe_size=256, **options)


def trainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "explorer-trainer"]



def test_runs_to_the_end_and_publishes_snapshots(digits):
    background = make_background(digits, steps=150, rest_codes=0)  # the probe's codes, also at rest
    background.start()
    background.join(timeout=60)
    assert background.state == "finished" and background.trainer.step == 150
    snapshot = background.snapshots.latest()
    assert isinstance(snapshot, Snapshot)
    assert snapshot.step == 150 and snapshot.state == "finished"
    assert snapshot.codes.shape == snapshot.prior_sample.shape == (256, 3)
    assert snapshot.lps is not None and snapshot.lps.shape == (3,)
    assert snapshot.traversals.shape == (3, 7, 8, 8, 1) and snapshot.traversals.dtype == np.uint8
    assert snapshot.history_steps[-1] == 150 and set(snapshot.history) == {"loss", "recon", "mmd"}


def test_at_rest_the_views_get_the_codes_of_the_whole_dataset_then_the_probe_again_while_training(digits):
    background = make_background(digits, steps=150)
    background.start()
    background.join(timeout=60)
    model, order = background.trainer.model, background.probe.order

    def newest() -> Snapshot:
        nonlocal snapshot
        snapshot = background.snapshots.latest(timeout=0.1) or snapshot
        return snapshot

    snapshot = background.snapshots.latest(timeout=5)
    wait_until(lambda: newest().codes_of == "1,797 codes of the dataset", timeout=30)
    assert snapshot.codes.shape == snapshot.prior_sample.shape == (1797, 3)
    expected = encode(model, digits.inputs(order))  # every row, in the probe's order: its codes come first
    np.testing.assert_allclose(snapshot.codes, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(snapshot.codes[:256], background.probe.encode(model).numpy(), atol=1e-5)

    background.start(steps=400)
    wait_until(lambda: newest().state == "running" and newest().step > 150, timeout=30)
    assert snapshot.codes.shape == (256, 3) and snapshot.codes_of == "256 codes"
    background.close()


def test_a_second_start_is_refused_and_starts_no_thread(digits):
    with running(make_background(digits, steps=100_000)) as background:
        with pytest.raises(RuntimeError, match="already running"):
            background.start()
        assert len(trainer_threads()) == 1
    assert not background.running and background.state == "stopped"
    assert 0 < background.trainer.step < 100_000
    assert not trainer_threads()


def test_pause_holds_the_step_and_resume_continues(digits):
    with running(make_background(digits, steps=100_000)) as background:
        wait_until(lambda: background.trainer.step > 5)
        background.pause().result(timeout=10)  # ran between two steps, on the training thread
        assert background.state == "paused"
        assert background.snapshots.latest(timeout=1).state == "paused"  # posted at once, not at the next cadence
        held = background.trainer.step
        assert background.publish().result(timeout=10).step == held  # the thread answers commands, steps stay
        background.resume().result(timeout=10)
        wait_until(lambda: background.trainer.step > held + 5)
    assert background.state == "stopped"


def test_steps_per_second_and_elapsed_time_leave_pauses_out(digits):
    pause = 1.0
    with running(make_background(digits, steps=100_000)) as background:
        wait_until(lambda: background.trainer.step > 60)
        before = background.publish().result(timeout=10)
        background.pause().result(timeout=10)
        time.sleep(pause)  # the pause being measured, not a synchronisation
        background.resume().result(timeout=10)
        step = background.trainer.step
        wait_until(lambda: background.trainer.step > step + 3)
        after = background.publish().result(timeout=10)
    # a window of 50 steps at > 50 steps/s holding the pause would read well under half the rate
    assert after.steps_per_s > 0.5 * before.steps_per_s
    assert after.elapsed_s - before.elapsed_s < (after.step - before.step) / before.steps_per_s * 3 + 0.5 * pause
    assert before.seconds_left is not None and after.seconds_left is not None


def test_commands_run_on_the_training_thread(digits):
    threads = []

    class Recording(Trainer):
        @Trainer.prior.setter
        def prior(self, prior):
            threads.append(threading.current_thread().name)
            Trainer.prior.fset(self, prior)

    background = BackgroundTrainer(Recording(small_config(steps=100_000), dataset=digits), probe_size=256)
    with running(background):
        wait_until(lambda: background.trainer.step > 3)
        snapshot = background.set_prior(Gaussian(3, mean=50.0)).result(timeout=10)
        selected = background.select(7).result(timeout=10)
    assert threads == ["explorer-trainer"]
    assert abs(snapshot.prior_sample.mean() - 50.0) < 0.5 and selected.selected == 7


def test_traversals_are_decoded_when_the_selection_changes_not_on_every_snapshot(digits):
    background = make_background(digits, steps=100_000, snapshot_interval=0.0, traversal_interval=1e6)
    with running(background):
        wait_until(lambda: background.trainer.step > 3)
        first = background.publish().result(timeout=10)
        step = background.trainer.step
        wait_until(lambda: background.trainer.step > step + 20)  # many snapshots (no minimum interval)
        later = background.publish().result(timeout=10)
        selected = background.select(5).result(timeout=10)
    assert later.step > first.step and later.traversal_version == first.traversal_version
    assert selected.traversal_version == first.traversal_version + 1 and selected.selected == 5
    assert background.snapshots.latest(timeout=5).traversal_version > selected.traversal_version  # at rest: anew


def test_the_loss_history_stays_bounded_over_a_long_run():
    history = BoundedHistory(capacity=400)
    for step in range(1, 100_001):
        history.add(step, {"loss": 1.0 / step})
    steps, values = history.arrays()
    assert len(steps) <= 401 and steps[0] == 1 and steps[-1] == 100_000
    assert len(set(np.diff(steps[:-1]))) == 1  # evenly thinned
    np.testing.assert_allclose(values["loss"], 1.0 / steps)


def test_one_rate_limiter_stretches_its_interval_to_keep_within_its_budget():
    limiter = RateLimiter(interval=0.1, budget=0.05)
    assert limiter.due(now=0.0)
    limiter.record(0.001, at=0.0)
    assert not limiter.due(now=0.05) and limiter.due(now=0.1)
    limiter.record(0.02, at=1.0)  # an action of 20 ms may come every 0.4 s at a 5 % budget
    assert limiter.period == pytest.approx(0.4) and not limiter.due(now=1.3) and limiter.due(now=1.4)


def test_a_nan_loss_stops_training_keeps_the_last_good_weights_and_join_reraises(digits):
    background = make_background(digits, steps=1000)
    trainer = background.trainer
    kept = {}

    class PoisonAfter(Callback):
        def on_step(self, trainer, event):
            if event.step == 20:
                kept.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
                trainer.batch = lambda: torch.full((32, 1, 8, 8), float("nan"))

    trainer.callbacks.insert(0, PoisonAfter())
    background.start()
    with pytest.raises(TrainingError, match="step 21: the loss is nan"):
        background.join(timeout=60)
    assert background.state == "failed" and "nan" in background.message
    assert trainer.step == 20
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, kept[name]), name
    last = background.snapshots.latest()
    assert last.state == "failed" and last.message_is_error and "step 21" in last.message


def test_swapping_the_prior_mid_run_changes_the_next_steps_samples(digits):
    with running(make_background(digits, steps=100_000)) as background:
        wait_until(lambda: background.trainer.step > 10)
        swapped_at = background.set_prior(Gaussian(3, mean=50.0)).result(timeout=10).step
        wait_until(lambda: background.trainer.step > swapped_at + 5)
    history = background.snapshots.latest()
    mmd = np.asarray(history.history["mmd"])
    steps = history.history_steps
    # codes near 0 against a prior at 50: MMD^2 jumps once the swap takes effect
    assert mmd[steps > swapped_at + 1].min() > 2 * mmd[steps <= swapped_at].max()
    assert abs(history.prior_sample.mean() - 50.0) < 0.5


def test_save_while_running_writes_a_checkpoint_between_steps(digits, tmp_path):
    with running(make_background(digits, steps=100_000)) as background:
        wait_until(lambda: background.trainer.step > 5)
        path = background.save(tmp_path / "run").result(timeout=20)
    model = explorer.load(tmp_path / "run")
    assert model.step > 5 and path.exists()
    assert "saved" in background.message


def test_a_failed_save_is_reported_and_training_goes_on(digits, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with running(make_background(digits, steps=100_000)) as background:
        with pytest.raises(OSError):
            background.save(blocker / "run").result(timeout=20)
        assert background.message.startswith("Could not save") and background.message_is_error
        step = background.trainer.step
        wait_until(lambda: background.trainer.step > step + 3)
        assert background.state == "running"


def test_snapshots_cost_at_most_their_budget(digits):
    steps = 1000  # a few seconds: one slow snapshot (a busy machine) spaces the next by 20x its time
    background = make_background(digits, steps=steps, snapshot_interval=0.0, budget=0.05, rest_codes=0)
    background.start()
    background.join(timeout=60)
    taken = background.snapshots.latest().codes_version  # each full snapshot takes the codes anew
    # with no minimum interval, the spacing is set by the measured cost: ~20x the snapshot's own time
    assert 2 < taken < steps / 5


def test_the_queue_keeps_the_newest_snapshots():
    q = SnapshotQueue(maxsize=2)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3
    assert q.latest() == 4 and q.latest() is None


def test_traversal_rows_vary_only_their_dimension(digits):
    background = make_background(digits)
    model = background.trainer.model
    code = torch.tensor([0.1, -0.2, 0.3])
    values = traversal_values(Gaussian(3).sample(5000, torch.Generator().manual_seed(0)).numpy())
    assert values.shape == (3, 7) and np.all(np.diff(values, axis=1) > 0)
    grid = traversal_grid(model, code, values)
    z = code.clone()
    z[1] = float(values[1, 4])
    with torch.no_grad():
        expected = (model.decode(z[None]).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(grid[1, 4], expected)


def test_the_probe_re_encodes_a_slice_per_snapshot_round_robin_with_the_weights_it_was_handed(digits):
    """Each refresh hands the next slice to the probe's worker with the weights of that moment: the steps the run
    takes meanwhile do not reach it, and the codes returned hold every slice finished."""
    background = make_background(digits)
    probe, model = background.probe, background.trainer.model

    def step() -> torch.Tensor:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1)
        return probe.encode(model)

    first = probe.refresh(model)
    assert probe.chunk == 64 and first.shape == (256, 3)
    handed = step()
    probe.refresh(model)  # rows 0-63, with these weights
    now = step()  # the run moves on before the worker is done: it encodes its own copy
    probe.settle()
    second = probe.refresh(model)
    torch.testing.assert_close(second[:64], handed[:64])
    torch.testing.assert_close(second[128:], first[128:])
    assert not torch.allclose(handed[:64], now[:64])
    for _ in range(4):
        probe.settle()
        latest = probe.refresh(model)
    torch.testing.assert_close(latest, now)
    torch.testing.assert_close(probe.refresh(model, everything=True), now)
    background.close()


def test_between_full_snapshots_progress_only_ones_keep_the_step_live(digits):
    background = make_background(digits, steps=100_000, snapshot_interval=1e6, progress_interval=0.0)
    with running(background):
        wait_until(lambda: background.trainer.step > 3)
        full = background.publish().result(timeout=10)
        step = background.trainer.step
        wait_until(lambda: background.trainer.step > step + 5)
        progress = background.snapshots.latest(timeout=5)
    assert progress.progress_only and not full.progress_only
    assert progress.step > full.step and progress.codes_version == full.codes_version
    assert progress.history_steps[-1] == progress.step and progress.codes is full.codes
