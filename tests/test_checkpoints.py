"""Checkpoints: round trip, atomic writes, and one clear error for every kind of broken file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import explorer
from explorer import checkpoints
from explorer.checkpoints import CheckpointError
from explorer.data import load_dataset
from explorer.priors import Laplace, from_dict
from explorer.training import TrainConfig, Trainer
from tests.helpers import small_config
from tests.waiting import wait_until


@pytest.fixture
def run(tmp_path, digits):
    """A short AE-MMD run with a Laplace prior, checkpointed at step 4."""
    prior = Laplace(3, scale=0.5)
    config = small_config(prior=prior.to_dict(), steps=4, checkpoint_every=0, seed=1)
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
    images = digits.items(torch.arange(50))
    with torch.no_grad():
        expected = run.model.eval().encode(images.float() / 255)
    assert torch.allclose(trained.encode(images), expected, atol=1e-6)
    decoded = trained.decode(trained.encode(images))
    assert decoded.shape == (50, *digits.shape)
    assert 0 <= decoded.min() and decoded.max() <= 1
    # the sidecar path opens the same checkpoint
    assert explorer.load(run.out / "checkpoint.json").step == 4
    assert trained.load_dataset().shape == digits.shape


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
    meta["train"]["width"] = 7  # the model's sizes are the run's
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
    # stored once: not beside train, and no objective description beside train's objective
    raw = json.loads((run.out / "checkpoint.json").read_text())
    assert "prior" not in raw and "objective" not in raw and "seed" not in raw and "dataset" not in raw
    assert raw["model"] == {"shape": [1, 8, 8], "gaussian": False, "output": "sigmoid"}  # the sizes are train's


# ----------------------------------------------------------------------------------------------- reliability


def _rewrite_tensors(run_dir, meta, kind, tensors):
    """Replace the ``kind`` file's tensors and its hash in ``meta`` (a well-formed file with other contents)."""
    from safetensors.torch import save_file

    path = run_dir / meta["files"][kind]["name"]
    save_file(tensors, str(path))
    meta["files"][kind]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


def _without_generator(run, meta):
    state = checkpoints.read_tensors(run.out, meta, "state")
    _rewrite_tensors(run.out, meta, "state", {k: v for k, v in state.items() if k != "generator"})


def _nan_weights(run, meta):
    weights = {k: v.clone() for k, v in checkpoints.read_tensors(run.out, meta, "weights").items()}
    weights["model.decoder.0.bias"][0] = float("nan")
    _rewrite_tensors(run.out, meta, "weights", weights)


def _state_of_another_architecture(run, meta, digits, tmp_path):
    other = Trainer(dataclasses.replace(run.config, width=16), dataset=digits, out=tmp_path / "other")
    other.run()
    other_meta, _ = checkpoints.read_meta(other.out)
    _rewrite_tensors(run.out, meta, "state", checkpoints.read_tensors(other.out, other_meta, "state"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: m["files"]["weights"].pop("sha256"), "field 'files.weights.sha256'"),
        (lambda m: m.update(files=[]), "field 'files'"),
        (lambda m: m.pop("optimizer_groups"), "without optimizer_groups"),
        (lambda m: m["train"].update(latent_dim=4), "field 'train'"),
        (lambda m: m.update(step="abc"), "field 'step'"),
        (lambda m: m.update(step=-1), "field 'step'"),
        (lambda m: m["optimizer_groups"][0].update(lr="fast"), "field 'optimizer_groups.0.lr'"),
        (lambda m: m.update(schema_version=0), "field 'schema_version' must be an integer from 1"),
        (lambda m: m.update(schema_version=-5), "field 'schema_version' must be an integer from 1"),
        (lambda m: m["files"]["weights"].update(name="../../etc/passwd"), "field 'files.weights.name'"),
        (lambda m: m["train"].update(dataset_options={"no_such_option": 1}), "field 'train'"),
    ],
    ids=["no-sha256", "files-a-list", "no-optimizer-groups", "latent-dim", "step-abc", "step-negative", "lr-fast",
         "schema-0", "schema-minus-5", "name-a-path", "dataset-option"],
)
def test_every_malformed_field_is_one_error_naming_the_file_and_the_field(run, digits, damage, message):
    meta_path = run.out / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    damage(meta)
    meta_path.write_text(json.dumps(meta))
    for opening in (explorer.load, lambda path: Trainer.resume(path, dataset=digits)):
        with pytest.raises(CheckpointError, match=re.escape(str(meta_path)) + ".*" + re.escape(message)):
            opening(run.out)


@pytest.mark.parametrize(
    ("damage", "message", "opening"),
    [
        (_without_generator, "holds no 'generator' state", "resume"),
        (_nan_weights, "'model.decoder.0.bias' holds NaN or inf values", "load"),
        (_state_of_another_architecture, "the state is from another architecture", "resume"),
        (_state_of_another_architecture, "the state is from another architecture", "explorer"),
    ],
    ids=["no-generator", "nan-weights", "other-architecture-resume", "other-architecture-explorer"],
)
def test_tensor_files_that_do_not_fit_are_refused_before_the_first_step(run, digits, tmp_path, damage, message,
                                                                         opening):
    meta, _ = checkpoints.read_meta(run.out)
    args = (run, meta, digits, tmp_path) if damage is _state_of_another_architecture else (run, meta)
    damage(*args)
    (run.out / "checkpoint.json").write_text(json.dumps(meta))
    open_ = {"load": explorer.load, "resume": lambda path: Trainer.resume(path, dataset=digits),
             "explorer": lambda path: explorer.Explorer.from_checkpoint(path, refresh_hz=None, probe_size=64)}
    with pytest.raises(CheckpointError, match=re.escape(message)):
        open_[opening](run.out)


def test_a_shipped_version_1_checkpoint_loads_and_continues_as_the_current_version(tmp_path, digits):
    from explorer.paper.shipped import checkpoints_root

    source = checkpoints_root() / "engineered" / "xy" / "uniform-seed0"
    raw = json.loads((source / "checkpoint.json").read_text())
    assert raw["schema_version"] == 1 and "prior" in raw and "seed" in raw  # the old shape, three priors
    trained = explorer.load(source)
    assert trained.step == 2000 and trained.latent_dim == 2
    assert trained.prior == from_dict(raw["prior"]) and trained.config["run_id"].startswith("v1-")
    assert "objective" not in trained.config and trained.config["schema_version"] == checkpoints.SCHEMA_VERSION
    assert trained.config["data"] == {"name": "xy", "shape": [1, 32, 32], "dtype": "uint8", "unit_range": True,
                                      "registered": True}
    # a new run from its weights writes the current version, the prior once
    trainer = Trainer.from_weights(source, tmp_path / "next", steps=2001, dataset=load_dataset("xy", n=256))
    trainer.run()
    written = json.loads((tmp_path / "next" / "checkpoint.json").read_text())
    assert written["schema_version"] == checkpoints.SCHEMA_VERSION and written["train"]["prior"] == raw["prior"]
    assert explorer.load(tmp_path / "next").prior == trained.prior


def test_a_failed_save_removes_what_it_wrote(run, monkeypatch):
    from safetensors import SafetensorError

    before = sorted(p.name for p in run.out.iterdir())
    real = checkpoints.save_file

    def state_fails(tensors, path):  # the weights file is written, then the disk is full
        if "optimizer.0.step" in tensors:
            raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        real(tensors, path)

    monkeypatch.setattr(checkpoints, "save_file", state_fails)
    for _ in range(3):
        run.train_step()
        with pytest.raises(OSError, match="No space left on device"):
            run.save()
    assert sorted(p.name for p in run.out.iterdir()) == before  # no orphans, no .tmp files
    assert explorer.load(run.out).step == 4


def test_orphans_and_tmp_files_of_killed_writers_go_at_the_next_save(run):
    (run.out / "weights-00000099-0123456789ab.safetensors").write_bytes(b"orphan of a failed save")
    (run.out / ".state-xyz.tmp").write_bytes(b"left by kill -9")
    run.train_step()
    run.save()
    meta, _ = checkpoints.read_meta(run.out)
    assert not (run.out / "weights-00000099-0123456789ab.safetensors").exists()
    assert not list(run.out.glob("*.tmp"))
    assert meta["step"] == 5


def test_a_resumed_run_survives_its_state_file_being_truncated(run, tmp_path):
    # safetensors' load_file maps the file: truncating it (as `cp` over it does) killed the process (SIGBUS)
    code = (
        "import json, pathlib, sys\n"
        "from explorer.training import Trainer\n"
        "t = Trainer.resume(sys.argv[1], steps=10)\n"
        "meta = json.loads(pathlib.Path(sys.argv[1], 'checkpoint.json').read_text())\n"
        "open(pathlib.Path(sys.argv[1], meta['files']['state']['name']), 'wb').close()\n"
        "t.train_step(); t.train_step()\n"
        "print('stepped to', t.step)\n"
    )
    run.close()
    result = subprocess.run([sys.executable, "-c", code, str(run.out)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stepped to 6" in result.stdout


def test_a_reader_beside_a_writer_that_checkpoints_every_step_never_fails(tmp_path):
    out = tmp_path / "live"
    writer = subprocess.Popen(
        [sys.executable, "-m", "explorer", "train", "--dataset", "digits", "--latent-dim", "3", "--batch-size", "16",
         "--steps", "1000000", "--checkpoint-every", "1", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_until(lambda: (out / "checkpoint.json").exists(), timeout=60)
        steps, failures = set(), []
        deadline = time.monotonic() + 60.0  # the reads end once the reader has seen 21 generations
        while len(steps) <= 20 and time.monotonic() < deadline:
            try:
                steps.add(explorer.load(out).step)
            except Exception as error:  # every failure counts, whatever its type
                failures.append(repr(error))
    finally:
        writer.kill()  # how the writer ends is not this test's subject (Ctrl-C is test_cli's, kill -9 the fuzzers')
        writer.wait(timeout=60)
    assert failures == []
    assert len(steps) > 20  # the writer really wrote while we read


SIDECAR_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=True),
                           st.text(max_size=4), st.lists(st.integers(-1, 3), max_size=3),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:2]):
            yield (*path, index)
            yield from _leaves(inner, (*path, index))


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    trainer = Trainer(TrainConfig(dataset="digits", latent_dim=2, steps=2, batch_size=16, checkpoint_every=0),
                      dataset=digits, out=out)
    trainer.run()
    trainer.close()
    return out, (out / "checkpoint.json").read_text()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_any_sidecar_mutation_opens_or_gives_one_checkpoint_error(fuzz_run, digits, data):
    out, original = fuzz_run
    meta = json.loads(original)
    path = data.draw(st.sampled_from(sorted(_leaves(meta), key=str)))
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(SIDECAR_VALUES)
    (out / "checkpoint.json").write_text(json.dumps(meta))
    try:
        for opening in (explorer.load, lambda p: Trainer.resume(p, dataset=digits)):
            try:
                opened = opening(out)
            except CheckpointError as error:
                assert str(out) in str(error)
            else:
                if isinstance(opened, Trainer):
                    opened.train_step()  # what opens must also train
                    opened.close()
    finally:
        (out / "checkpoint.json").write_text(original)
