"""The budget study: every objective measured at geometric budgets of one extended run, points kept on rerun,
weights kept per budget, and curves drawn."""

from __future__ import annotations

import json

import pytest

import explorer
from explorer.cli import main
from explorer.paper.budget import budget, curves_figure, schedule


def test_schedule_doubles_up_to_the_last_step():
    assert schedule(500, 4000) == [500, 1000, 2000, 4000]
    assert schedule(500, 3000) == [500, 1000, 2000, 3000]
    assert schedule(7, 7) == [7]
    with pytest.raises(ValueError, match=r"first must be in 1\.\.steps"):
        schedule(0, 10)


def test_budget_measures_each_run_at_each_budget_and_reuses_what_it_measured(tmp_path):
    out = tmp_path / "budget"
    options = {"dataset": "digits", "latent_dim": 3, "batch_size": 32, "eval_n": 300, "objectives": ("mmd", "ae")}
    rows = budget(out, steps=12, first=3, seeds=(0, 1), **options)
    assert [(r["run"], r["seed"], r["step"]) for r in rows] == [
        (run, seed, step) for step in (3, 6, 12) for seed in (0, 1) for run in ("mmd", "ae")]
    assert all(r["images"] == r["step"] * 32 for r in rows)
    assert explorer.load(out / "mmd-seed1").step == 12
    assert explorer.load(out / "steps" / "ae-seed0" / "step6").step == 6  # the weights at that budget
    assert json.loads((out / "budget.json").read_text())["rows"] == rows
    assert (out / "budget.png").read_bytes().startswith(b"\x89PNG")

    extended = budget(out, steps=24, first=3, seeds=(0, 1), **options)
    assert extended[: len(rows)] == rows  # measured points are kept as they were
    assert {r["step"] for r in extended[len(rows):]} == {24}
    assert explorer.load(out / "ae-seed0").step == 24
    with pytest.raises(ValueError, match="other settings"):
        budget(out, steps=24, first=3, seeds=(0,), **{**options, "batch_size": 16})


def test_reproduce_budget_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["reproduce", "budget", "--dataset", "digits", "--latent-dim", "3", "--steps", "4", "--first", "2",
                 "--objectives", "mmd", "vae", "--batch-size", "32", "--eval-n", "300", "--kernel", "imq",
                 "--out", str(out)]) == 0
    study = json.loads((out / "budget.json").read_text())
    assert [(r["run"], r["step"]) for r in study["rows"]] == [("mmd", 2), ("vae", 2), ("mmd", 4), ("vae", 4)]
    assert study["setting"]["kernel"] == "imq"
    assert explorer.load(out / "mmd-seed0").config["train"]["objective_options"] == {"lam": 2.0, "kernel": "imq"}
    assert explorer.load(out / "vae-seed0").config["train"]["objective_options"] == {}  # the VAE has no kernel
    assert "budget.json" in capsys.readouterr().out
    assert main(["reproduce", "kl-failure", "--kernel", "imq", "--out", str(tmp_path / "other")]) == 2
    assert "--kernel applies to engineered-priors, budget" in capsys.readouterr().err


def test_curves_draw_the_seed_mean_with_a_band_and_dot_the_budgets_fewer_seeds_reached():
    rows = [{"run": "mmd", "seed": seed, "step": step, "images": 64 * step, "lps_lgbm": value}
            for seed, step, value in ((0, 1, 0.5), (1, 1, 0.7), (0, 2, 0.4), (1, 2, 0.6), (0, 4, 0.1))]
    ax = curves_figure(rows, "test", metrics=("lps_lgbm",)).axes[0]
    solid, dotted = ax.get_lines()
    assert list(solid.get_ydata()) == pytest.approx([0.6, 0.5]) and solid.get_linestyle() == "-"
    assert list(dotted.get_xdata()) == [128, 256] and list(dotted.get_ydata()) == pytest.approx([0.5, 0.1])
    assert dotted.get_linestyle() == ":"
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.4) and band[:, 1].max() == pytest.approx(0.7)
