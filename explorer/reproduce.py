"""Reproduction runs of the paper's evidence. `kl_failure`: the objectives of Table 1 trained on one dataset with
one budget, each evaluated the same way, summarized as a table (mean +- std over seeds) and figures (Figure 1:
covariance of the codes and each code marginal against the N(0, 1) density).

Finished runs in ``out`` are reused (and extended if ``steps`` grew), so an interrupted reproduction continues.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import explorer
from explorer.checkpoints import META_FILE
from explorer.data import Dataset, load_dataset
from explorer.metrics.evaluate import encode_dataset, evaluate
from explorer.training import Callback, TrainConfig, Trainer

KL_FAILURE = ("vae", "beta-vae", "mmd", "kld", "ae")
KL_FAILURE_ALL = (*KL_FAILURE, "beta-tcvae", "factorvae")
LABELS = {"vae": "VAE", "beta-vae": "beta-VAE", "mmd": "AE-MMD", "kld": "AE-KLD", "ae": "AE",
          "beta-tcvae": "beta-TCVAE", "factorvae": "FactorVAE"}
COLUMNS = ("lps_lgbm", "lps_mlp", "nmse_db", "covariance_ratio", "mmd_to_prior", "mig", "sap",
           "dci_disentanglement")


def train_or_reuse(config: TrainConfig, dataset: Dataset, run: Path, callbacks: Sequence[Callback] = ()) -> None:
    """Train ``config`` into ``run``; a run already there is reused, and resumed if it has fewer steps."""
    if (run / META_FILE).exists():
        trainer = Trainer.resume(run, dataset=dataset, callbacks=list(callbacks), steps=config.steps)
        if dataclasses.replace(trainer.config, prior=config.prior) != config:
            raise ValueError(f"{run} holds a run with other settings; choose another --out")
    else:
        trainer = Trainer(config, dataset=dataset, out=run, callbacks=list(callbacks))
    if trainer.step < config.steps:
        trainer.run()


def kl_failure(
    out: str | Path,
    dataset: str = "mnist-5k",
    dataset_options: dict[str, Any] | None = None,
    latent_dim: int = 12,
    steps: int = 2000,
    seeds: Sequence[int] = (0,),
    batch_size: int = 64,
    lr: float = 5e-4,
    objectives: Sequence[str] = KL_FAILURE,
    eval_n: int = 5000,
    callbacks: Sequence[Callback] = (),
) -> list[dict[str, Any]]:
    """Train and evaluate each objective for each seed; write ``table.md``, ``table.csv``, ``results.json`` and
    ``figures/`` into ``out``. Returns one row per run (objective, seed and the evaluation's metrics)."""
    out = Path(out)
    data = load_dataset(dataset, **(dataset_options or {}))
    rows = []
    for objective in objectives:
        for seed in seeds:
            config = TrainConfig(dataset=dataset, dataset_options=dict(dataset_options or {}), objective=objective,
                                 latent_dim=latent_dim, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                 checkpoint_every=0)
            run = out / f"{objective}-seed{seed}"
            train_or_reuse(config, data, run, callbacks)
            trained = explorer.load(run)
            report = evaluate(trained, data, n=eval_n, seed=seed)
            (run / "evaluation.json").write_text(json.dumps(report, indent=2))
            codes, _, _ = encode_dataset(trained, data, eval_n, seed)
            figure_of_codes(codes, f"{LABELS[objective]} (seed {seed}, step {trained.step})",
                            out / "figures" / f"{objective}-seed{seed}.png")
            rows.append({"objective": objective, "seed": seed, **report["metrics"]})
    summary = summarize(rows)
    options = f" {dataset_options}" if dataset_options else ""
    setting = (f"{dataset}{options}, d = {latent_dim}, {steps} steps of batch {batch_size}, "
               f"lr {lr}, seeds {list(seeds)}, metrics on {min(eval_n, len(data)):,} images")
    (out / "table.md").write_text(markdown_table(summary, setting))
    write_csv(summary, out / "table.csv")
    (out / "results.json").write_text(json.dumps({"setting": setting, "runs": rows}, indent=2))
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """objective -> metric -> (mean, std over seeds) for the metrics in `COLUMNS` that the runs have."""
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    for objective in dict.fromkeys(row["objective"] for row in rows):
        runs = [row for row in rows if row["objective"] == objective]
        summary[objective] = {
            key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
            for key in COLUMNS if key in runs[0]
        }
    return summary


def markdown_table(summary: dict[str, dict[str, tuple[float, float]]], setting: str) -> str:
    keys = list(next(iter(summary.values())))
    lines = [f"KL failure: {setting}", "", "| model | " + " | ".join(keys) + " |",
             "|---|" + "---|" * len(keys)]
    for objective, metrics in summary.items():
        cells = [f"{mean:.3f} +- {std:.3f}" if math.isfinite(mean) else str(mean) for mean, std in metrics.values()]
        lines.append(f"| {LABELS[objective]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(summary: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    keys = list(next(iter(summary.values())))
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["model", *(f"{k}_{part}" for k in keys for part in ("mean", "std"))])
        for objective, metrics in summary.items():
            writer.writerow([LABELS[objective], *(v for mean_std in metrics.values() for v in mean_std)])


def figure_of_codes(codes: np.ndarray, title: str, path: Path) -> None:
    """Figure 1 of the paper for one model: the codes' covariance, and each marginal against N(0, 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    d = codes.shape[1]
    cols = min(d, 6)
    rows = math.ceil(d / cols)
    fig = plt.figure(figsize=(3 + 1.8 * cols, max(3.0, 1.6 * rows)), layout="constrained")
    grid = fig.add_gridspec(rows, cols + 2)
    cov = np.cov(codes, rowvar=False)
    scale = float(np.abs(cov).max()) or 1.0
    ax = fig.add_subplot(grid[:, :2])
    image = ax.imshow(cov, cmap="RdBu_r", vmin=-scale, vmax=scale)
    ax.set_title("covariance")
    fig.colorbar(image, ax=ax, shrink=0.7)
    x = np.linspace(-4, 4, 200)
    for i in range(d):
        ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
        ax.hist(codes[:, i], bins=40, density=True, color="#1f77b4", alpha=0.7)
        ax.plot(x, norm.pdf(x), color="black", lw=1)
        ax.set_title(f"z{i}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
