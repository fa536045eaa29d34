"""evaluate: one report with reconstruction, LPS, structure and, with ground-truth factors, supervised metrics."""

from __future__ import annotations

import math

import explorer
from explorer.data import load_dataset
from explorer.metrics.evaluate import evaluate, format_report
from explorer.training import TrainConfig, Trainer


def test_report_on_a_dataset_with_factors(tmp_path):
    dataset = load_dataset("xy", n=1500)
    config = TrainConfig(dataset="xy", dataset_options={"n": 1500}, latent_dim=2, steps=3, batch_size=32, width=8)
    Trainer(config, dataset=dataset, out=tmp_path / "run").run()
    trained = explorer.load(tmp_path / "run")
    report = evaluate(trained, trained.load_dataset(), n=600)
    metrics = report["metrics"]
    assert report["n"] == 600 and report["step"] == 3
    assert {"nmse", "nmse_db", "lps_lgbm", "lps_mlp", "covariance_ratio", "mmd_to_prior", "ks_max"} <= set(metrics)
    assert math.isclose(metrics["nmse_db"], 10 * math.log10(metrics["nmse"]))
    for key in ("mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert -0.01 <= metrics[key] <= 1.0, key
    assert len(report["per_dim"]["lps_lgbm"]) == 2
    assert "LPS-lgbm" in format_report(report)


def test_a_dataset_without_factors_has_no_supervised_metrics(tmp_path):
    config = TrainConfig(dataset="digits", latent_dim=3, steps=2, batch_size=32)
    Trainer(config, out=tmp_path / "run").run()
    trained = explorer.load(tmp_path / "run")
    report = evaluate(trained, trained.load_dataset(), n=400)
    assert "mig" not in report["metrics"]
    assert report["prior"] == trained.prior.to_dict()
