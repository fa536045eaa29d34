"""`python -m explorer reproduce kl-failure`: trains every model, evaluates each, writes table, CSV and figures,
and reuses (extends) finished runs."""

from __future__ import annotations

import csv
import json

import explorer
from explorer.cli import main
from explorer.reproduce import KL_FAILURE, kl_failure


def test_kl_failure_writes_the_table_figures_and_reuses_runs(tmp_path, capsys):
    out = tmp_path / "kl"
    assert main(["reproduce", "kl-failure", "--dataset", "digits", "--latent-dim", "3", "--steps", "20",
                 "--seeds", "2", "--batch-size", "32", "--eval-n", "300", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["objective"], r["seed"]) for r in results["runs"]] == [(o, s) for o in KL_FAILURE for s in (0, 1)]
    table = (out / "table.md").read_text()
    assert "digits" in table and "d = 3" in table and "| AE-MMD |" in table and "+-" in table
    assert table == capsys.readouterr().out.split("written:")[0].rstrip("\n") + "\n"
    with (out / "table.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [r["model"] for r in rows] == ["VAE", "beta-VAE", "AE-MMD", "AE-KLD", "AE"]
    ae = [r for r in results["runs"] if r["objective"] == "ae"]
    mean = sum(r["lps_lgbm"] for r in ae) / 2
    assert abs(float(rows[-1]["lps_lgbm_mean"]) - mean) < 1e-9
    assert float(rows[-1]["lps_lgbm_std"]) == abs(ae[0]["lps_lgbm"] - ae[1]["lps_lgbm"]) / 2
    for objective in KL_FAILURE:
        assert (out / "figures" / f"{objective}-seed0.png").read_bytes().startswith(b"\x89PNG")
        assert explorer.load(out / f"{objective}-seed1").step == 20

    rows = kl_failure(out, dataset="digits", latent_dim=3, steps=30, seeds=(0,), batch_size=32, objectives=("mmd",),
                      eval_n=300)
    assert explorer.load(out / "mmd-seed0").step == 30 and len(rows) == 1
