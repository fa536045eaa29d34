"""Command line: train, resume, evaluate, and clear errors for bad input."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest

import explorer
from explorer.cli import build_parser, main
from explorer.priors import Uniform

TRAIN = ["train", "--dataset", "digits", "--latent-dim", "3", "--batch-size", "32", "--checkpoint-every", "3"]


def test_help_documents_every_option():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
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

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    declared = {f.metadata.get("flag", "--" + f.name.replace("_", "-")) for f in dataclasses.fields(TrainConfig)
                if f.name != "objective_options"}
    options = {"--" + f.name.replace("_", "-") for cls in OBJECTIVES.values() for f in dataclasses.fields(cls.Config)
               if not f.metadata.get("fact")}
    assert declared | options <= flags
    assert {"--lam", "--beta", "--gamma", "--kernel", "--dataset-option", "--latent-dim"} <= flags
    assert not {"--dataset-size", "--objective-options"} & flags


def test_an_option_of_another_objective_is_refused_before_training(tmp_path, capsys):
    assert main([*TRAIN, "--objective", "vae", "--lam", "1", "--steps", "2", "--out", str(tmp_path / "run")]) == 2
    assert "vae objective: unknown option(s) ['lam']; options are ['beta']" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.json").exists()
