"""`python -m explorer reproduce kl-failure`: trains every model, evaluates each, writes table, CSV and figures,
and reuses (extends) finished runs."""

from __future__ import annotations

import csv
import inspect
import json

import pytest
import torch

import explorer
from explorer.cli import build_parser, build_parsers, main, reproduce_options
from explorer.data import load_dataset
from explorer.metrics.evaluate import encode_dataset
from explorer.paper.reproduce import KL_FAILURE, engineered_priors, kl_failure, xy_priors
from explorer.paper.shipped import ship
from explorer.priors import Empirical, dsprites_hybrid


def test_kl_failure_writes_the_table_figures_and_reuses_runs(tmp_path, capsys):
    out = tmp_path / "kl"
    assert main(["reproduce", "kl-failure", "--dataset", "digits", "--latent-dim", "3", "--steps", "20",
                 "--seeds", "2", "--batch-size", "32", "--eval-n", "300", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["run"], r["seed"]) for r in results["runs"]] == [(o, s) for o in KL_FAILURE for s in (0, 1)]
    table = (out / "table.md").read_text()
    assert "digits" in table and "d = 3" in table and "| AE-MMD |" in table and "+-" in table
    assert table == capsys.readouterr().out.split("written:")[0].rstrip("\n") + "\n"
    with (out / "table.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [r["model"] for r in rows] == ["VAE", "beta-VAE", "AE-MMD", "AE-KLD", "AE"]
    ae = [r for r in results["runs"] if r["run"] == "ae"]
    mean = sum(r["lps_lgbm"] for r in ae) / 2
    assert abs(float(rows[-1]["lps_lgbm_mean"]) - mean) < 1e-9
    assert float(rows[-1]["lps_lgbm_std"]) == abs(ae[0]["lps_lgbm"] - ae[1]["lps_lgbm"]) / 2
    for objective in KL_FAILURE:
        assert (out / "figures" / f"{objective}-seed0.png").read_bytes().startswith(b"\x89PNG")
        assert explorer.load(out / f"{objective}-seed1").step == 20

    rows = kl_failure(out, dataset="digits", latent_dim=3, steps=30, seeds=(0,), batch_size=32, objectives=("mmd",),
                      eval_n=300)
    assert explorer.load(out / "mmd-seed0").step == 30 and len(rows) == 1

    # a shipped (weights-only) copy of a finished run is reused as it is, and measures the same
    ship(out / "mmd-seed0", tmp_path / "shipped" / "mmd-seed0", "test")
    again = kl_failure(tmp_path / "shipped", dataset="digits", latent_dim=3, steps=30, seeds=(0,), batch_size=32,
                       objectives=("mmd",), eval_n=300)
    assert again[0]["nmse_db"] == rows[0]["nmse_db"]
    with pytest.raises(ValueError, match="other settings"):
        kl_failure(tmp_path / "shipped", dataset="digits", latent_dim=3, steps=30, seeds=(0,), batch_size=16,
                   objectives=("mmd",), eval_n=300)


def test_a_run_trained_with_checkpoints_on_the_way_is_reused_with_the_same_weights(tmp_path):
    """Checkpoints every few steps leave a run's weights as they are, so the study reuses such a run (the command
    line's ``--checkpoint-every``) instead of refusing it as one of other settings."""
    assert main(["train", "--dataset", "digits", "--latent-dim", "3", "--steps", "20", "--batch-size", "32",
                 "--lam", "0.3", "--checkpoint-every", "5", "--out", str(tmp_path / "kl" / "mmd-seed0")]) == 0
    (reused,) = kl_failure(tmp_path / "kl", dataset="digits", latent_dim=3, steps=20, seeds=(0,), batch_size=32,
                           objectives=("mmd",), lam=0.3, eval_n=300)
    (fresh,) = kl_failure(tmp_path / "fresh", dataset="digits", latent_dim=3, steps=20, seeds=(0,), batch_size=32,
                          objectives=("mmd",), lam=0.3, eval_n=300)
    assert explorer.load(tmp_path / "kl" / "mmd-seed0").step == 20
    assert reused["nmse_db"] == fresh["nmse_db"] and reused["lps_mlp"] == fresh["lps_mlp"]


def test_engineered_priors_train_the_priors_and_copy_the_hybrid_runs_codes(tmp_path):
    out = tmp_path / "eng"
    rows = engineered_priors(out, steps=15, batch_size=32, eval_n=200, xy_options={"n": 400})
    assert [r["run"] for r in rows["xy"]] == ["gaussian", "uniform", "gmm"]
    assert all(0 <= r["dci_disentanglement"] <= 1 and "mig" in r for r in rows["xy"])
    assert "Engineered priors: xy, d = 2, AE-MMD" in (out / "xy" / "table.md").read_text()
    assert explorer.load(out / "xy" / "uniform-seed0").prior == xy_priors()["uniform"][1]
    shapes = json.loads((out / "shapes" / "results.json").read_text())["runs"]
    assert [(r["run"], r["seed"]) for r in shapes] == [("gaussian", 0), ("hybrid", 0), ("copy-of-hybrid-seed0", 1)]
    source = explorer.load(out / "shapes" / "hybrid-seed0")
    assert source.prior == dsprites_hybrid()
    copy = explorer.load(out / "shapes" / "copy-of-hybrid-seed0-seed1")
    codes, _, _ = encode_dataset(source, load_dataset("shapes", size=32), 1000, seed=0)
    assert isinstance(copy.prior, Empirical) and torch.equal(copy.prior.codes.float(), torch.from_numpy(codes))
    table = (out / "shapes" / "table.md").read_text()
    assert "| dSprites hybrid |" in table and "| copy of hybrid seed 0 |" in table
    for name in ("gaussian-seed0", "hybrid-seed0", "copy-of-hybrid-seed0-seed1"):
        assert (out / "shapes" / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")

    only_xy = engineered_priors(tmp_path / "xy-only", dataset="xy", steps=15, batch_size=32, eval_n=200,
                                xy_options={"n": 400})
    assert list(only_xy) == ["xy"] and not (tmp_path / "xy-only" / "shapes").exists()
    with pytest.raises(ValueError, match=r"engineered-priors: dataset must be one of \['xy', 'shapes'\], got 'mnist'"):
        engineered_priors(tmp_path / "none", dataset="mnist")


def test_the_command_line_leaves_unset_options_to_each_functions_defaults():
    for experiment, function in (("kl-failure", kl_failure), ("engineered-priors", engineered_priors)):
        args = build_parser().parse_args(["reproduce", experiment, "--steps", "7", "--out", "x"])
        assert reproduce_options(args) == {"steps": 7}
        lam = inspect.signature(function).parameters["lam"].default
        help_text = build_parsers()[1]["reproduce"].format_help()
        assert f"{experiment} {lam}" in " ".join(help_text.split())
    args = build_parser().parse_args(["reproduce", "kl-failure", "--lam", "3", "--objectives", "ae", "mmd",
                                      "--out", "x"])
    assert reproduce_options(args) == {"lam": 3.0, "objectives": ["ae", "mmd"]}
    args = build_parser().parse_args(["reproduce", "budget", "--seeds", "3", "--dataset-option", "size=32",
                                      "--out", "x"])
    assert reproduce_options(args) == {"seeds": (0, 1, 2), "dataset_options": {"size": 32}}


def test_each_shipped_command_parses_back_to_its_settings():
    """The flags `command` writes for a study's settings are the ones the command line reads as those settings."""
    from explorer.paper.shipped import BUDGETS, SETS
    from explorer.paper.studies import Budget, command

    made = [(shipped.study.study, shipped.settings) for shipped in SETS] + [(Budget, b) for b in BUDGETS.values()]
    for study, settings in made:
        args = build_parser().parse_args([*command(study, settings).split()[3:], "--out", "x"])
        assert study.of(**reproduce_options(args)) == study.of(**settings)
    with pytest.raises(ValueError, match=r"0\.\.S-1"):
        command(Budget, {"seeds": (1, 2)})


def test_engineered_priors_on_one_dataset_prints_its_table_only(tmp_path, capsys):
    assert main(["reproduce", "engineered-priors", "--dataset", "xy", "--steps", "5", "--batch-size", "16",
                 "--eval-n", "100", "--out", str(tmp_path / "eng")]) == 0
    printed = capsys.readouterr().out
    assert "Engineered priors: xy" in printed and "shapes" not in printed
    assert not (tmp_path / "eng" / "shapes").exists()


def test_engineered_priors_without_copies_trains_the_gaussian_and_hybrid_priors_only(tmp_path, capsys):
    assert main(["reproduce", "engineered-priors", "--dataset", "shapes", "--no-copies", "--marginal", "1",
                 "--steps", "3", "--batch-size", "8", "--eval-n", "100", "--out", str(tmp_path / "eng")]) == 0
    runs = {p.parent.name for p in (tmp_path / "eng" / "shapes").glob("*/checkpoint.json")}
    assert runs == {"gaussian-seed0", "hybrid-seed0"}
    printed = capsys.readouterr().out
    assert "marginal MMD weight 1.0" in printed and "copy" not in printed


def test_kl_failure_refuses_a_kernel_choice(tmp_path, capsys):
    assert main(["reproduce", "kl-failure", "--kernel", "imq", "--out", str(tmp_path / "kl")]) == 2
    assert "--kernel applies to engineered-priors" in capsys.readouterr().err
    assert not (tmp_path / "kl").exists()


def test_jobs_train_the_models_in_worker_processes_with_the_same_rows(tmp_path):
    """Two workers give the rows one process gives, in the same order; a plugin's objective (registered here, by
    importing tests/extension_example.py) is known in the workers too."""
    import extension_example

    options = {"dataset": "digits", "latent_dim": 3, "steps": 20, "seeds": (0, 1), "batch_size": 32,
               "objectives": ("mmd", extension_example.CodeNormAE.name), "eval_n": 300}
    alone = kl_failure(tmp_path / "one", **options)
    parallel = kl_failure(tmp_path / "two", jobs=2, **options)
    assert [(r["run"], r["seed"]) for r in parallel] == [("mmd", 0), ("mmd", 1), ("l2-ae", 0), ("l2-ae", 1)]
    for one, two in zip(alone, parallel, strict=True):
        assert two["nmse_db"] == pytest.approx(one["nmse_db"], abs=1e-3)
        assert two["lps_lgbm"] == pytest.approx(one["lps_lgbm"], abs=0.02)


def test_jobs_below_one_are_refused_before_any_work(tmp_path, capsys):
    assert main(["reproduce", "budget", "--jobs", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--jobs: models trained at once, at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
