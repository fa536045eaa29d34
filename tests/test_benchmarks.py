"""The GPU benchmark script runs on the CPU in its --smoke mode (what CI can check without a GPU)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_gpu_benchmark_smoke_runs_on_the_cpu(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gpu_train.py", "--smoke"])
    runpy.run_path(str(BENCHMARKS / "gpu_train.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "d = 64" in out and "smoke run" in out
    for variant in ("fp32", "bf16 + channels_last"):
        line = next(line for line in out.splitlines() if line.startswith(variant + " "))
        assert float(line.split()[-4]) > 0  # steps/s


def test_mmd_benchmark_smoke_compares_with_the_autograd_reference(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["mmd.py", "--smoke"])
    runpy.run_path(str(BENCHMARKS / "mmd.py"), run_name="__main__")
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert float(rows["explorer.mmd.mmd2"][1]) > 0 and rows["autograd"][-1] == "1.00x"


def test_lps_benchmark_real_codes_row_compares_shipped_codes_with_the_reference():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        table = runpy.run_path(str(BENCHMARKS / "lps.py"))["real_codes_table"](("engineered/xy/gmm-seed0",), n=1000)
    finally:
        sys.path.remove(str(BENCHMARKS))
    cells = table.splitlines()[2].split(" | ")
    assert cells[0] == "| engineered/xy/gmm-seed0" and cells[1] == "2"
    assert abs(float(cells[2]) - float(cells[3])) < 0.05  # two independent dimensions: both near 0


def test_paper_budget_gpu_script_smoke_trains_evaluates_and_ships_on_the_cpu(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["paper_budget_gpu.py", "--smoke", "--objectives", "mmd", "--out", str(tmp_path)])
    runpy.run_path(str(BENCHMARKS / "paper_budget_gpu.py"), run_name="__main__")
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| mmd |"))
    assert row.split(" | ")[1] == "4"  # the smoke budget, reached
    assert (tmp_path / "shipped" / "mmd-seed0" / "checkpoint.json").exists()
    assert json.loads((tmp_path / "results.json").read_text())["device"] == "CPU (smoke run)"


def test_live_overhead_smoke_reports_ratio_latency_and_memory(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["live_overhead.py", "--smoke"])
    runpy.run_path(str(BENCHMARKS / "live_overhead.py"), run_name="__main__")
    out = capsys.readouterr().out
    watched = next(line for line in out.splitlines() if line.startswith("| watched"))
    assert float(watched.split("|")[3]) > 0  # the ratio against the headless reference
    assert "p95" in out and "per 20 min extrapolated" in out and "(bounded)" in out


def test_cpu_recipe_smoke_measures_throughput_and_learning_curves(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["cpu_recipe.py", "--smoke", "--plateau", str(tmp_path)])
    runpy.run_path(str(BENCHMARKS / "cpu_recipe.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    throughput = {line[:28].strip(): line[28:].split() for line in lines[2:7]}
    assert throughput["reference"][1] == "1.00" and float(throughput["channels_last"][0]) > 0
    assert float(throughput["2 processes x 1 thread"][0]) > 0
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert list(curves) == ["reference", "batch 512, lr 2e-3"]  # channels_last learns the same: no curve
    assert [row["images"] for row in curves["reference"]] == [512, 1024]
    assert all(0 <= row["lps_lgbm"] <= 1.5 for rows in curves.values() for row in rows)


def test_cpu_recipe_plateau_is_the_first_budget_near_the_lowest_and_none_while_still_falling():
    plateau = runpy.run_path(str(BENCHMARKS / "cpu_recipe.py"))["plateau"]
    images = [1, 2, 4, 8]
    assert plateau([0.60, 0.45, 0.41, 0.40], images, 0.03) == 4
    assert plateau([0.60, 0.45, 0.47, 0.44], images, 0.03) == 2  # noise after the drop
    assert plateau([0.60, 0.45, 0.41, 0.35], images, 0.03) is None  # the last doubling still gained 0.06
