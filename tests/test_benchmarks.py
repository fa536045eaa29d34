"""The benchmark scripts run on the CPU in their --smoke mode (what CI can check without a GPU); the tests read the
rows each prints with --json (or a function returns) by field name, not the human table by column."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from explorer.live import HISTORY_POINTS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_json(script: str, *flags: str, monkeypatch, capsys) -> dict:
    """Run ``benchmarks/<script> --json *flags`` in this process; its printed JSON."""
    monkeypatch.setattr(sys, "argv", [script, "--json", *flags])
    runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    return json.loads(capsys.readouterr().out)


def test_gpu_benchmark_smoke_runs_on_the_cpu(monkeypatch, capsys):
    result = run_json("gpu_train.py", "--smoke", monkeypatch=monkeypatch, capsys=capsys)
    assert result["latent_dim"] == 64 and result["smoke"] and result["device"] == "cpu"
    rows = {row["variant"]: row for row in result["rows"]}
    assert set(rows) == {"fp32", "bf16 + channels_last"}
    assert all(row["steps_per_s"] > 0 for row in rows.values()) and rows["fp32"]["vs_fp32"] == 1.0


def test_mmd_benchmark_smoke_compares_with_the_autograd_reference(monkeypatch, capsys):
    rows = {row["implementation"]: row for row in run_json("mmd.py", "--smoke", monkeypatch=monkeypatch,
                                                              capsys=capsys)["rows"]}
    assert rows["explorer.mmd.mmd2"]["ms"] > 0 and rows["autograd reference"]["vs_reference"] == 1.0
    marginal, step = rows["explorer.mmd.marginal_mmd2"], rows["AE-MMD training step"]
    assert marginal["share_of_step"] == pytest.approx(marginal["ms"] / step["ms"])


def test_lps_benchmark_real_codes_row_compares_shipped_codes_with_the_reference():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        (row,) = runpy.run_path(str(BENCHMARKS / "lps.py"))["real_codes_rows"](("engineered/xy/gmm-seed0",), n=1000)
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert row["checkpoint"] == "engineered/xy/gmm-seed0" and row["d"] == 2
    assert abs(row["ours_mean_r2"] - row["ref_mean_r2"]) < 0.05  # two independent dimensions: both near 0


def test_lps_benchmark_lgbm_agreement_row_compares_our_settings_with_a_plain_loop():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        (row,) = runpy.run_path(str(BENCHMARKS / "lps.py"))["lgbm_agreement_rows"](("engineered/xy/gmm-seed0",))
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert row["checkpoint"] == "engineered/xy/gmm-seed0" and min(row["plain_s"], row["default_s"]) > 0
    # two independent dimensions: our settings keep the train mean, near 0; the plain loop over-fits below it
    assert abs(row["default"]) < 0.02 and abs(row["early_stopped"]) < 0.02 and row["plain"] < row["default"]


def test_paper_budget_gpu_script_smoke_trains_evaluates_and_ships_on_the_cpu(monkeypatch, capsys, tmp_path):
    result = run_json("paper_budget_gpu.py", "--smoke", "--objectives", "mmd", "--out", str(tmp_path),
                      monkeypatch=monkeypatch, capsys=capsys)
    (row,) = result["rows"]
    assert row["run"] == "mmd" and row["step"] == 4 and row["reached_budget"]  # the smoke budget, reached
    assert (tmp_path / "shipped" / "mmd-seed0" / "checkpoint.json").exists()
    assert result["device"] == "CPU (smoke run)" == json.loads((tmp_path / "results.json").read_text())["device"]


def test_live_overhead_smoke_reports_ratio_latency_and_memory(monkeypatch, capsys):
    result = run_json("live_overhead.py", "--smoke", monkeypatch=monkeypatch, capsys=capsys)
    watched = {row["codes"]: row for row in result["rows"] if row["run"].startswith("watched")}
    assert set(watched) == {512, 2000} and all(row["ratio"] > 0 for row in watched.values())  # against headless
    assert all(result["latency"][row["run"]]["all"]["p95_ms"] > 0 for row in watched.values())
    assert result["rest"]["codes"] == 3000 and 0 < result["rest"]["seconds"] < 300  # held, not given up on
    assert result["memory"]["steps"] > 0
    assert 0 < result["memory"]["history_points"] <= HISTORY_POINTS + 1  # the loss history stays bounded
    assert "per_20_min_mb" in result["memory"]


def test_cpu_recipe_smoke_measures_throughput_and_learning_curves(monkeypatch, capsys, tmp_path):
    result = run_json("cpu_recipe.py", "--smoke", "--plateau", str(tmp_path), monkeypatch=monkeypatch, capsys=capsys)
    throughput = {row["choice"]: row for row in result["throughput"]}
    assert throughput["reference"]["vs_reference"] == 1.0 and throughput["channels_last"]["images_per_s"] > 0
    assert throughput["2 processes x 1 thread"]["images_per_s"] > 0
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert result["curves"] == curves and set(result["plateau"]) == set(curves)
    assert list(curves) == ["reference", "batch 512, lr 2e-3"]  # channels_last learns the same: no curve
    assert [row["images"] for row in curves["reference"]] == [512, 1024]
    assert all(0 <= row["lps_lgbm"] <= 1.5 for rows in curves.values() for row in rows)


def test_cpu_recipe_plateau_is_the_first_budget_near_the_lowest_and_none_while_still_falling():
    plateau = runpy.run_path(str(BENCHMARKS / "cpu_recipe.py"))["plateau"]
    images = [1, 2, 4, 8]
    assert plateau([0.60, 0.45, 0.41, 0.40], images, 0.03) == 4
    assert plateau([0.60, 0.45, 0.47, 0.44], images, 0.03) == 2  # noise after the drop
    assert plateau([0.60, 0.45, 0.41, 0.35], images, 0.03) is None  # the last doubling still gained 0.06


def test_monitor_overhead_smoke_compares_a_monitored_loop_with_the_plain_one(monkeypatch, capsys):
    result = run_json("monitor_overhead.py", "--smoke", monkeypatch=monkeypatch, capsys=capsys)
    monitored = next(row for row in result["rows"] if row["run"].startswith("with Monitor"))
    assert monitored["ratio"] > 0 and 0 < result["snapshot_share"] < 1
