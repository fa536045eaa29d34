"""Command line: train, resume, evaluate, and clear errors for bad input."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import explorer
from explorer.cli import build_parsers, main, options
from explorer.priors import Uniform
from explorer.snapshot_files import read_snapshot

TRAIN = ["train", "--dataset", "digits", "--latent-dim", "3", "--batch-size", "32", "--checkpoint-every", "3"]


def test_help_documents_every_option():
    for name, sub in build_parsers()[1].items():
        text = sub.format_help()
        for action in options(sub):
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
                assert action.option_strings[-1] in text


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "explorer", "train", "--help"], capture_output=True, text=True,
                            check=True)
    assert "--prior" in result.stdout and "--resume" in result.stdout


def test_train_then_resume_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    prior_file = tmp_path / "prior.json"
    prior_file.write_text(json.dumps(Uniform(3, -2.0, 2.0).to_dict()))
    assert main([*TRAIN, "--steps", "4", "--out", str(out), "--prior", str(prior_file)]) == 0
    trained = explorer.load(out)
    assert trained.step == 4
    assert trained.prior == Uniform(3, -2.0, 2.0)

    # an existing run is never overwritten by accident
    assert main([*TRAIN, "--steps", "4", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err

    assert main(["train", "--out", str(out), "--resume", "--steps", "7"]) == 0
    assert explorer.load(out).step == 7

    assert main(["evaluate", str(out), "--n", "300"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "evaluation.json").read_text())
    assert "nmse_db" in report["metrics"]
    assert "NMSE" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prior", '{"family": "gaussian", "dim": 3, "mean": 0.0, "std": -1.0}'], "std"),
        (["--prior", "{not json"], "JSON"),
        (["--dataset", "no-such-set"], "no-such-set"),
        (["--dataset", "mnist", "--root", "/nonexistent/data"], "/nonexistent/data"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, args, message):
    # argparse rejects an unparsable --prior itself (exit 2 through SystemExit)
    with pytest.raises(SystemExit) if args[1] == "{not json" else contextlib.nullcontext():
        status = main([*TRAIN, "--steps", "2", "--out", str(tmp_path / "run"), *args])
        assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "No checkpoint at" in capsys.readouterr().err


def test_train_flags_are_the_declared_settings():
    """Every TrainConfig field and every option of a registered objective is a flag; facts the run supplies are not."""
    import dataclasses

    from explorer.objectives import OBJECTIVES
    from explorer.training import TrainConfig

    flags = {option for action in options(build_parsers()[1]["train"]) for option in action.option_strings}
    declared = {f.metadata.get("flag", "--" + f.name.replace("_", "-")) for f in dataclasses.fields(TrainConfig)
                if f.name != "objective_options"}
    objective_options = {"--" + f.name.replace("_", "-") for cls in OBJECTIVES.values()
                         for f in dataclasses.fields(cls.Config) if not f.metadata.get("fact")}
    assert declared | objective_options <= flags
    assert {"--lam", "--beta", "--gamma", "--kernel", "--dataset-option", "--latent-dim"} <= flags
    assert not {"--dataset-size", "--objective-options"} & flags


def test_an_option_of_another_objective_is_refused_before_training(tmp_path, capsys):
    assert main([*TRAIN, "--objective", "vae", "--lam", "1", "--steps", "2", "--out", str(tmp_path / "run")]) == 2
    assert "vae objective: unknown option(s) ['lam']; options are ['beta']" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def _folder_with_a_corrupt_image(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not an image")
    return ["--dataset", "folder", "--root", str(folder), "--dataset-option", "size=32", "--batch-size", "4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda tmp: ["--prior", str(tmp / "missing.json")], "cannot read the prior file"),
        (lambda tmp: (tmp / "dir.json").mkdir() or ["--prior", str(tmp / "dir.json")], "Is a directory"),
        (lambda tmp: ["--out", (tmp / "file").write_text("x") and str(tmp / "file")], "is a file, not a folder"),
        (lambda tmp: ["--out", (tmp / "file").write_text("x") and str(tmp / "file" / "run")], "is a file"),
        (lambda tmp: ["--device", "bogus"], "unknown device 'bogus'"),
        (lambda tmp: ["--device", "cuda:99"], "device 'cuda:99'"),
        (lambda tmp: ["--seed", str(2**64)], "seed must be an integer"),
        (lambda tmp: ["--objective", "ae", "--prior", '{"family": "gaussian", "dim": 3}'], "takes no prior"),
        (lambda tmp: ["--prior", '{"family": "gaussian", "dim": 3, "std": 1e39}'], "std must be at most"),
        (lambda tmp: ["--prior", '{"family": "gaussian", "dim": 4}'], "the prior has 4 dimensions"),
        (_folder_with_a_corrupt_image, "cannot read the image"),
    ],
    ids=["prior-missing", "prior-a-directory", "out-a-file", "out-under-a-file", "device-bogus", "device-absent",
         "seed-65-bits", "ae-with-a-prior", "prior-beyond-float32", "prior-dim", "corrupt-image"],
)
def test_bad_input_is_one_error_line_before_any_training(tmp_path, capsys, monkeypatch, args, message):
    trained = []
    monkeypatch.setattr("explorer.training.Trainer.run", lambda self, steps=None: trained.append(self))
    extra = args(tmp_path)
    out = [] if "--out" in extra else ["--out", str(tmp_path / "run")]
    try:
        status = main([*TRAIN, "--steps", "2", *out, *extra])
    except SystemExit as exit_:  # argparse's own refusal of an unreadable --prior
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err, err
    assert [line for line in err.splitlines() if "error:" in line] == [err.strip().splitlines()[-1]]
    assert not trained


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import os

    real = os.open

    def denied(path, flags, *args, **kwargs):  # a read-only folder, for users other than root
        if str(path).startswith(str(tmp_path / "ro")) and flags & (os.O_CREAT | os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert main([*TRAIN, "--steps", "200", "--out", str(tmp_path / "ro" / "run")]) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_a_full_disk_is_one_error_line_and_leaves_no_files(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    def full(tensors, path):
        with open(path, "wb") as f:
            f.write(b"x" * 100)
        raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")

    monkeypatch.setattr("explorer.checkpoints.save_file", full)
    assert main([*TRAIN, "--steps", "4", "--out", str(tmp_path / "run")]) == 2
    assert "error: could not write" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".writer.lock"]


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="unknown device"):
        main(["--debug", *TRAIN, "--out", str(tmp_path / "run"), "--device", "bogus"])


@pytest.mark.parametrize("n", ["0", "-5"])
def test_evaluate_refuses_a_sample_that_is_not_positive(tmp_path, capsys, n):
    assert main([*TRAIN, "--steps", "2", "--out", str(tmp_path / "run")]) == 0
    assert main(["evaluate", str(tmp_path / "run"), "--n", n]) == 2
    assert f"must be a positive integer, got {n}" in capsys.readouterr().err
    assert not (tmp_path / "run" / "evaluation.json").exists()


def test_a_diverging_run_stops_with_its_last_good_weights(tmp_path, capsys):
    assert main([*TRAIN, "--steps", "300", "--lr", "1000", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "the codes reached" in err and "lower learning rate (now 1000)" in err
    trained = explorer.load(tmp_path / "run")
    assert trained.step < 5
    assert trained.encode(torch.rand(64, 1, 8, 8)).abs().max() < 1e3  # not the exploded weights


FUZZ_FLAGS = {
    "--steps": st.integers(-2, 2),
    "--latent-dim": st.integers(-1, 4),
    "--batch-size": st.integers(-1, 8),
    "--width": st.integers(-1, 8),
    "--depth": st.integers(-1, 9),
    "--lr": st.sampled_from(["nan", "inf", "-1", "1e30", "1e-3", "fast"]),
    "--seed": st.sampled_from(["-1", "0", str(2**64), str(-(2**70)), "x"]),
    "--device": st.sampled_from(["cpu", "auto", "bogus", "cuda", "cuda:7", ""]),
    "--objective": st.sampled_from(["mmd", "ae", "vae", "nope"]),
    "--checkpoint-every": st.integers(-1, 2),
    "--prior": st.sampled_from(['{"family": "gaussian", "dim": 3}', '{"family": "uniform", "dim": 3, "low": 1, '
                                '"high": 0}', '{"family": "gaussian", "dim": 2}', "[1]", "/nonexistent.json", "{",
                                '{"family": "laplace", "dim": 3, "scale": 1e300}']),
    "--dataset-option": st.sampled_from(["n=5", "nope=1", "size", "=3"]),
    "--dataset": st.sampled_from(["digits", "nope"]),
}


@settings(max_examples=40, deadline=None)
@given(flags=st.dictionaries(st.sampled_from(sorted(FUZZ_FLAGS)), st.none(), max_size=4), data=st.data())
def test_fuzz_any_train_arguments_give_success_or_one_error_line(flags, data):
    import io
    import tempfile
    from contextlib import redirect_stderr, redirect_stdout

    args = [arg for flag in flags for arg in (flag, str(data.draw(FUZZ_FLAGS[flag], label=flag)))]
    with tempfile.TemporaryDirectory() as tmp:
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            try:
                status = main(["train", "--dataset", "digits", "--batch-size", "8", "--steps", "2", *args,
                               "--out", f"{tmp}/run"])
            except SystemExit as exit_:  # argparse's refusal: usage and one error line
                status = exit_.code
        text = err.getvalue()
        assert status in (0, 1, 2), (args, status)
        assert "Traceback" not in text
        if status:  # one error line, the last one (argparse prints its usage above it)
            errors = [line for line in text.splitlines() if "error: " in line or "error (rank" in line]
            assert errors == [text.strip().splitlines()[-1]], (args, text)


def test_the_cli_writes_snapshot_files_every_n_steps_and_at_the_end(tmp_path):
    out = tmp_path / "run"
    assert main([*TRAIN, "--objective", "mmd", "--steps", "7", "--snapshot-every", "2", "--out", str(out)]) == 0
    live = read_snapshot(out)
    assert live.meta["step"] == 7 and live.meta["history"]["step"] == list(range(1, 8))
    trained = explorer.load(out)
    for name, value in trained.model.state_dict().items():
        assert (live.weights[name] == value).all(), name
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
