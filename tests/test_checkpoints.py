"""Checkpoints: round trip, atomic writes, and one clear error for every kind of broken file."""

from __future__ import annotations

import json

import pytest
import torch

import explorer
from explorer import checkpoints
from explorer.checkpoints import CheckpointError
from explorer.data import load_dataset
from explorer.priors import Laplace, from_dict
from explorer.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def run(tmp_path, digits):
    """A short AE-MMD run with a Laplace prior, checkpointed at step 4."""
    prior = Laplace(3, scale=0.5)
    config = TrainConfig(dataset="digits", objective="mmd", latent_dim=3, prior=prior.to_dict(), steps=4,
                         batch_size=32, checkpoint_every=0, seed=1)
    trainer = Trainer(config, dataset=digits, out=tmp_path / "run")
    trainer.run()
    return trainer


def test_load_gives_the_trained_model_and_its_description(run, digits):
    trained = explorer.load(run.out)
    assert trained.step == 4
    assert trained.latent_dim == 3
    assert trained.prior == Laplace(3, scale=0.5)
    assert trained.config["train"]["dataset"] == "digits"  # the dataset, prior and seed are stored once: in train
    assert {"torch", "safetensors", "explorer"} <= set(trained.config["versions"])
    images = digits.images(torch.arange(50))
    with torch.no_grad():
        expected = run.model.eval().encode(images.float() / 255)
    assert torch.allclose(trained.encode(images), expected, atol=1e-6)
    decoded = trained.decode(trained.encode(images))
    assert decoded.shape == (50, *digits.image_shape)
    assert 0 <= decoded.min() and decoded.max() <= 1
    # the sidecar path opens the same checkpoint
    assert explorer.load(run.out / "checkpoint.json").step == 4
    assert trained.load_dataset().image_shape == digits.image_shape


def test_optimizer_state_round_trips(run):
    tensors, groups = checkpoints.optimizer_to_tensors(run.optimizer)
    fresh = torch.optim.Adam(run.model.parameters(), lr=123.0)
    checkpoints.optimizer_from_tensors(fresh, tensors, json.loads(json.dumps(groups)))
    restored, original = fresh.state_dict(), run.optimizer.state_dict()
    assert restored["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]
    for index, slots in original["state"].items():
        for key, value in slots.items():
            assert torch.equal(torch.as_tensor(restored["state"][index][key]), torch.as_tensor(value))


def test_a_crash_while_writing_leaves_the_previous_checkpoint(run, monkeypatch):
    def broken_save(tensors, path):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    before = explorer.load(run.out)
    run.train_step()
    monkeypatch.setattr(checkpoints, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run.save()
    after = explorer.load(run.out)
    assert after.step == before.step == 4
    assert not list(run.out.glob("*.tmp"))


def test_the_previous_generation_stays_until_the_next_save_and_older_ones_go(run):
    # a reader that has just read the previous sidecar still finds its files; the one before is removed
    for _ in range(2):
        run.train_step()
        run.save()
    names = sorted(p.name for p in run.out.iterdir() if not p.name.startswith("."))
    assert [n.split("-")[:2] for n in names if n.endswith(".safetensors")] == [
        ["state", "00000005"], ["state", "00000006"], ["weights", "00000005"], ["weights", "00000006"]]
    meta, _ = checkpoints.read_meta(run.out)
    assert {meta["files"]["weights"]["name"], meta["files"]["state"]["name"]} <= set(names)


def _weights_file(run):
    return next(run.out.glob("weights-*.safetensors"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: _weights_file(run).write_bytes(_weights_file(run).read_bytes()[:100]), "SHA-256 differs"),
        (lambda run: _weights_file(run).unlink(), "is missing"),
        (lambda run: (run.out / "checkpoint.json").write_text('{"schema": "explorer.check'), "not valid JSON"),
        (lambda run: (run.out / "checkpoint.json").write_text('{"format": "pt"}'), "not an explorer checkpoint"),
        (lambda run: (run.out / "checkpoint.json").unlink(), "No checkpoint at"),
    ],
    ids=["truncated-weights", "missing-weights", "truncated-json", "foreign-json", "no-sidecar"],
)
def test_broken_checkpoints_give_one_clear_error(run, damage, message):
    damage(run)
    with pytest.raises(CheckpointError, match=message):
        explorer.load(run.out)


def test_weights_that_do_not_fit_the_described_model(run):
    meta_path = run.out / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["width"] = 7
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        explorer.load(run.out)


def test_newer_schema_is_refused(run):
    meta_path = run.out / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = checkpoints.SCHEMA_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="Upgrade explorer"):
        explorer.load(run.out)


def test_a_checkpoint_without_training_state_loads_but_does_not_resume(run, digits, tmp_path):
    meta, run_dir = checkpoints.read_meta(run.out)
    weights = checkpoints.read_tensors(run_dir, meta, "weights")
    checkpoints.write_checkpoint(tmp_path / "slim", {k: v for k, v in meta.items() if k != "files"}, weights)
    assert explorer.load(tmp_path / "slim").step == 4
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        Trainer.resume(tmp_path / "slim", dataset=digits)


def test_a_new_run_starts_from_a_checkpoints_weights_and_leaves_its_files_alone(run, digits, tmp_path):
    meta, run_dir = checkpoints.read_meta(run.out)
    weights = checkpoints.read_tensors(run_dir, meta, "weights")
    checkpoints.write_checkpoint(tmp_path / "slim", {k: v for k, v in meta.items() if k != "files"}, weights)
    before = {f.name: f.read_bytes() for f in (tmp_path / "slim").iterdir()}
    with pytest.raises(ValueError, match="choose an out other than"):
        Trainer.from_weights(tmp_path / "slim", tmp_path / "slim", dataset=digits)
    trainer = Trainer.from_weights(tmp_path / "slim", tmp_path / "next", dataset=digits, steps=6)
    assert trainer.step == 4 and not trainer.optimizer.state  # the weights, with a fresh optimizer
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, weights[f"model.{name}"])
    trainer.run()
    assert explorer.load(tmp_path / "next").step == 6
    assert {f.name: f.read_bytes() for f in (tmp_path / "slim").iterdir()} == before


def test_prior_in_the_sidecar_rebuilds(run):
    meta, _ = checkpoints.read_meta(run.out)
    assert from_dict(meta["train"]["prior"]) == run.prior
    # stored once: not beside train, and not in the objective's description
    raw = json.loads((run.out / "checkpoint.json").read_text())
    assert "prior" not in raw and "prior" not in raw["objective"] and "seed" not in raw and "dataset" not in raw
