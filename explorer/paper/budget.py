"""The budget study: how each objective's metrics move with training, to show where they plateau.

Each run of `explorer.paper.reproduce.kl_failure`'s set (one per objective and seed) is trained to geometrically spaced
steps (``first``, 2 ``first``, 4 ``first``, ... up to ``steps``), evaluated at each, and a weights-only copy kept
per evaluated step (``out/steps/<run>/step<k>``) so a curve can be re-measured without retraining. Runs are
extended by exact resume, so the point at step k equals an uninterrupted run of k steps. The loop goes budget by
budget across all runs, so an interrupted study leaves every objective measured at the same budgets; points
already in ``budget.json`` are kept, not measured again.

The settings are those of `explorer.paper.studies.Budget` (its ``lr`` says why the default is 4x the paper's).

Outputs in ``out``: ``budget.json`` (one row per run, seed and step, rewritten after every evaluation) and
``budget.png`` (metric against images seen on a log axis, one line per objective: the mean over seeds, with a
band from the lowest to the highest seed; a budget that fewer seeds reached is drawn dotted).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from explorer.data import load_dataset
from explorer.events import Callback
from explorer.objectives import OBJECTIVES
from explorer.paper.reproduce import LAM, Task, evaluated, objective_runs, weights_only
from explorer.paper.studies import Budget, takes

CURVE_METRICS = ("lps_lgbm", "lps_mlp", "nmse_db", "mmd_to_prior", "mig", "dci_disentanglement")
RESULTS = "budget.json"
FIGURE = "budget.png"


def schedule(first: int, steps: int) -> list[int]:
    """``first``, 2 ``first``, 4 ``first``, ... below ``steps``, then ``steps``."""
    if not 1 <= first <= steps:
        raise ValueError(f"budget: first must be in 1..steps ({steps}), got {first}")
    points = []
    while first < steps:
        points.append(first)
        first *= 2
    return [*points, steps]


@takes(Budget)
def budget(out: str | Path, study: Budget, callbacks: Sequence[Callback] = (), jobs: int = 1) -> list[dict[str, Any]]:
    """Train and evaluate every objective and seed at each budget of `schedule`; returns one row per run, seed
    and step (``images`` = step x batch), also written to ``out/budget.json`` with the figure ``budget.png``.
    Takes the settings of `explorer.paper.studies.Budget` as keywords: ``lam``, ``kernel`` and ``marginal`` go to
    the objectives that take them; ``kernel`` None keeps their default (the RBF sum)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(study.dataset, **study.dataset_options)
    objective_options = {LAM: study.lam, **({"kernel": study.kernel} if study.kernel else {}),
                         **({"marginal": study.marginal} if study.marginal else {})}
    runs = objective_runs(study.objectives, study.dataset, study.dataset_options, objective_options,
                          latent_dim=study.latent_dim, steps=study.steps, batch_size=study.batch_size, lr=study.lr)
    setting = {"dataset": study.dataset, "dataset_options": study.dataset_options, "latent_dim": study.latent_dim,
               "batch_size": study.batch_size, "lr": study.lr, **objective_options,
               "eval_n": min(study.eval_n, len(data)), "epoch_images": len(data)}
    rows = _measured(out / RESULTS, setting)
    for step in schedule(study.first, study.steps):
        tasks = [Task(run, dataclasses.replace(run.config, steps=step, seed=seed), out / f"{run.name}-seed{seed}")
                 for seed in study.seeds for run in runs
                 if not any((row["run"], row["seed"], row["step"]) == (run.name, seed, step) for row in rows)]
        for task, row in zip(tasks, evaluated(tasks, data, study.eval_n, callbacks, jobs), strict=True):
            weights_only(task.folder, out / "steps" / task.folder.name / f"step{step}")
            rows.append({**row, "step": step, "images": step * study.batch_size})
            (out / RESULTS).write_text(json.dumps({"setting": setting, "rows": rows}, indent=2))
        kernel_note = (f", {study.kernel} kernel" if study.kernel else "") + (
            f", marginal MMD weight {study.marginal}" if study.marginal else "")
        figure = curves_figure(rows, f"{study.dataset}, d = {study.latent_dim}, batch {study.batch_size}, "
                                     f"lr {study.lr}, lambda {study.lam}{kernel_note}")
        figure.savefig(out / FIGURE, dpi=110)
        plt.close(figure)
    return rows


def _measured(results: Path, setting: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier study in the same folder (kept and not re-measured), or none."""
    if not results.exists():
        return []
    earlier = json.loads(results.read_text())
    if earlier["setting"] != setting:
        raise ValueError(f"{results} holds a study with other settings: {earlier['setting']}; choose another --out")
    return earlier["rows"]


def curves_figure(rows: Sequence[dict[str, Any]], title: str, metrics: Sequence[str] = CURVE_METRICS) -> plt.Figure:
    """Each metric against images seen (log axis): per objective the mean over seeds and a min-max band; budgets
    that fewer seeds reached continue the line dotted, so that a mean over other seeds does not pass for a trend."""
    from explorer.metrics.evaluate import LABELS as METRIC_LABELS

    shown = [m for m in metrics if any(m in row for row in rows)]
    seeds = len({row["seed"] for row in rows})
    figure, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.2), squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], shown, strict=True):
        for name in dict.fromkeys(row["run"] for row in rows):
            images = sorted({row["images"] for row in rows if row["run"] == name})
            values = [[row[metric] for row in rows if row["run"] == name and row["images"] == x] for x in images]
            mean = np.array([np.mean(v) for v in values])
            full = sum(len(v) == seeds for v in values)  # budgets grow together, so these come first
            label = OBJECTIVES[name].label if name in OBJECTIVES else name
            (line,) = ax.plot(images[:full], mean[:full], marker="o", markersize=3, label=label)
            if full < len(images):
                ax.plot(images[max(full - 1, 0):], mean[max(full - 1, 0):], ":", marker="o", markersize=3,
                        markerfacecolor="none", color=line.get_color())
            if seeds > 1:
                ax.fill_between(images[:full], [min(v) for v in values[:full]], [max(v) for v in values[:full]],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks run into each other
        ax.set_xlabel("images seen")
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    figure.suptitle(title)
    return figure
