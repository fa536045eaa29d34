"""Reproduction runs of the paper's evidence, each a set of runs trained alike, evaluated the same way and
summarized as a table (mean +- std over seeds, Markdown and CSV), ``results.json`` and figures (the paper's
Figure 1 per run: covariance of the codes, and each code marginal against the prior's density).

- `kl_failure`: the objectives of Table 1 on one dataset with one budget.
- `engineered_priors`: AE-MMD on ``xy`` with a Gaussian, a Uniform and a 2-component mixture prior (Table 2), the
  dSprites hybrid prior on ``shapes``, and latent copying (an `Empirical` prior made of the hybrid run's codes).

Finished runs in ``out`` are reused (and extended if ``steps`` grew), so an interrupted reproduction continues.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
import json
import math
import multiprocessing
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer import checkpoints
from explorer.checkpoints import META_FILE, load, read_meta
from explorer.data import Dataset, load_dataset
from explorer.events import Callback
from explorer.metrics.evaluate import encode_dataset, evaluate_codes
from explorer.objectives import AEMMD, OBJECTIVES, objective_class
from explorer.paper.figures import codes_figure
from explorer.paper.studies import ENGINEERED_DATASETS as ENGINEERED_DATASETS
from explorer.paper.studies import KL_FAILURE as KL_FAILURE
from explorer.paper.studies import KL_FAILURE_ALL as KL_FAILURE_ALL
from explorer.paper.studies import EngineeredPriors, KLFailure, takes
from explorer.priors import Empirical, GaussianMixture, Prior, Uniform, dsprites_hybrid, families, standard_normal
from explorer.settings import TrainConfig
from explorer.training import Trainer

KL_FAILURE_COLUMNS = ("lps_lgbm", "lps_mlp", "nmse_db", "covariance_ratio", "mmd_to_prior", "mig", "sap",
                      "dci_disentanglement")
ENGINEERED_COLUMNS = ("dci_disentanglement", "mig", "lps_lgbm", "nmse_db", "mmd_to_prior", "ks_max")
LAM = "lam"  # the penalty weight `kl_failure` sets, in each objective that declares one of this name
COPIED_CODES = 1000  # codes of the source run that make the latent-copying prior


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of a reproduction table: ``name`` names its folders (``name-seedS``), ``label`` its table row."""

    name: str
    label: str
    config: TrainConfig


def train_or_reuse(config: TrainConfig, dataset: Dataset, run: Path, callbacks: Sequence[Callback] = ()) -> None:
    """Train ``config`` into ``run``; a run already there is reused, and resumed if it has fewer steps. A finished
    run saved without training state (a shipped checkpoint) is reused as it is, and so is one trained with
    checkpoints on the way (``python -m explorer train --checkpoint-every``): they leave the weights unchanged."""
    if (run / META_FILE).exists():
        meta, _ = read_meta(run)
        found = dataclasses.replace(TrainConfig.from_dict(meta["train"]), prior=config.prior, steps=config.steps,
                                    checkpoint_every=config.checkpoint_every)
        if found != config:
            raise ValueError(f"{run} holds a run with other settings; choose another --out")
        if meta["step"] >= config.steps and "state" not in meta["files"]:
            return
        trainer = Trainer.resume(run, dataset=dataset, callbacks=list(callbacks), steps=config.steps)
    else:
        trainer = Trainer(config, dataset=dataset, out=run, callbacks=list(callbacks))
    if trainer.step < config.steps:
        trainer.run()


def weights_only(run: Path, dest: Path, fp16: bool = False) -> dict[str, Any]:
    """Write the weights of the checkpoint in ``run`` into ``dest`` (replacing it), without the optimizer state: a
    finished run that `train_or_reuse` reuses as it is, a fraction of the size; ``fp16`` halves it again (loading
    casts the weights back to the model's float32). Returns the run's metadata."""
    meta, run = read_meta(run)
    weights = checkpoints.read_tensors(run, meta, "weights")
    if fp16:
        weights = {name: t.half() if t.is_floating_point() else t for name, t in weights.items()}
    if dest.exists():
        shutil.rmtree(dest)
    keep = {k: v for k, v in meta.items() if k not in ("files", "versions", "schema", "schema_version",
                                                       "optimizer_groups")}
    checkpoints.write_checkpoint(dest, keep, weights)
    return meta


@dataclasses.dataclass(frozen=True)
class Task:
    """One model to train (or reuse) into ``folder`` and evaluate: ``run`` with ``config``'s seed and steps."""

    run: Run
    config: TrainConfig
    folder: Path


def train_and_evaluate(
    out: Path,
    runs: Sequence[Run],
    seeds: Sequence[int],
    dataset: Dataset,
    eval_n: int = 5000,
    callbacks: Sequence[Callback] = (),
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Train (or reuse), evaluate and draw every run for every seed; one row per run and seed."""
    tasks = [Task(run, dataclasses.replace(run.config, seed=seed), out / f"{run.name}-seed{seed}")
             for run in runs for seed in seeds]
    return list(evaluated(tasks, dataset, eval_n, callbacks, jobs))


def evaluated(tasks: Sequence[Task], dataset: Dataset, eval_n: int, callbacks: Sequence[Callback] = (),
              jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Each task trained (or reused) and evaluated, its row yielded in task order as soon as it is done.

    With ``jobs`` > 1 the tasks run in that many worker processes of one thread each (on a CPU one process per
    core trains faster than one process with all cores); the workers import the modules that registered the
    objectives and prior families, so a ``--plugin``'s are known there too. Training is deterministic, so the rows
    do not depend on ``jobs``."""
    if jobs < 1:
        raise ValueError(f"jobs: worker processes, at least 1, got {jobs}")
    one = functools.partial(_train_and_evaluate, dataset=dataset, eval_n=eval_n, callbacks=callbacks)
    if jobs == 1 or len(tasks) < 2:
        return map(one, tasks)
    return _in_workers(one, tasks, jobs)


def _in_workers(one: Callable[[Task], dict[str, Any]], tasks: Sequence[Task], jobs: int) -> Iterator[dict[str, Any]]:
    modules = sorted({cls.__module__ for cls in (*OBJECTIVES.values(), *families().values())})
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker, initargs=(modules,)) as pool:
        yield from pool.map(one, tasks)


def _worker(modules: Sequence[str]) -> None:
    torch.set_num_threads(1)
    for module in modules:
        importlib.import_module(module)


def _train_and_evaluate(task: Task, dataset: Dataset, eval_n: int, callbacks: Sequence[Callback]) -> dict[str, Any]:
    train_or_reuse(task.config, dataset, task.folder, callbacks)
    return evaluate_run(task.folder, dataset, task.run, task.config.seed, eval_n)


def write_tables(out: Path, rows: list[dict[str, Any]], labels: dict[str, str], caption: str, setting: str,
                 columns: Sequence[str]) -> None:
    """``table.md`` and ``table.csv`` (mean +- std over seeds) and ``results.json`` (every row) in ``out``."""
    summary = summarize(rows, columns)
    (out / "table.md").write_text(markdown_table(summary, labels, f"{caption}: {setting}"))
    write_csv(summary, labels, out / "table.csv")
    (out / "results.json").write_text(json.dumps({"setting": setting, "runs": rows}, indent=2))


def evaluate_run(folder: Path, dataset: Dataset, run: Run, seed: int, eval_n: int) -> dict[str, Any]:
    """Evaluate one trained run (``evaluation.json``), draw its figure, and return its table row."""
    import matplotlib.pyplot as plt

    trained = load(folder)
    codes, rows, nmse = encode_dataset(trained, dataset, eval_n, seed)
    report = evaluate_codes(trained, dataset, codes, rows, nmse, seed)
    (folder / "evaluation.json").write_text(json.dumps(report, indent=2))
    figure = codes_figure(codes, trained.prior or standard_normal(codes.shape[1]),
                          f"{run.label} (seed {seed}, step {trained.step})")
    (folder.parent / "figures").mkdir(exist_ok=True)
    figure.savefig(folder.parent / "figures" / f"{folder.name}.png", dpi=80)
    plt.close(figure)
    return {"run": run.name, "seed": seed, **report["metrics"]}


@takes(KLFailure)
def kl_failure(out: str | Path, study: KLFailure, callbacks: Sequence[Callback] = (),
               jobs: int = 1) -> list[dict[str, Any]]:
    """Table 1 of the paper on one dataset: train and evaluate each objective (any registered one) for each seed
    into ``out`` (``lam`` weighs the penalty of the objectives that have a ``lam``: AE-MMD and AE-KLD). Takes the
    settings of `explorer.paper.studies.KLFailure` as keywords. Returns one row per run (name, seed and metrics)."""
    out = Path(out)
    data = load_dataset(study.dataset, **study.dataset_options)
    runs = objective_runs(study.objectives, study.dataset, study.dataset_options, {LAM: study.lam},
                          latent_dim=study.latent_dim, steps=study.steps, batch_size=study.batch_size, lr=study.lr)
    options = f" {study.dataset_options}" if study.dataset_options else ""
    setting = (f"{study.dataset}{options}, d = {study.latent_dim}, {study.steps} steps of batch {study.batch_size}, "
               f"lr {study.lr}, lambda {study.lam}, seeds {list(study.seeds)}, "
               f"metrics on {min(study.eval_n, len(data)):,} images")
    rows = train_and_evaluate(out, runs, study.seeds, data, study.eval_n, callbacks, jobs)
    write_tables(out, rows, {run.name: run.label for run in runs}, "KL failure", setting, KL_FAILURE_COLUMNS)
    return rows


def objective_runs(objectives: Sequence[str], dataset: str, dataset_options: dict[str, Any] | None,
                   objective_options: dict[str, Any], **settings: Any) -> list[Run]:
    """One run per objective (any registered one), trained alike; each of ``objective_options`` (e.g. ``lam``)
    goes to the objectives whose options have that name; ``settings`` are further `TrainConfig` fields."""
    runs = []
    for cls in map(objective_class, objectives):
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        options = {key: value for key, value in objective_options.items() if key in fields}
        runs.append(Run(cls.name, cls.label, TrainConfig(
            dataset=dataset, dataset_options=dict(dataset_options or {}), objective=cls.name,
            objective_options=options, checkpoint_every=0, **settings)))
    return runs


def xy_priors() -> dict[str, tuple[str, Prior]]:
    """Table 2's priors for d = 2, each with unit variance per dimension so that only their shape differs."""
    return {
        "gaussian": ("Gaussian", standard_normal(2)),
        "uniform": ("Uniform", Uniform(2, -math.sqrt(3), math.sqrt(3))),
        "gmm": ("2-GMM", GaussianMixture([-0.8, 0.8], 0.6, dim=2)),
    }


@takes(EngineeredPriors)
def engineered_priors(out: str | Path, study: EngineeredPriors, callbacks: Sequence[Callback] = (),
                      jobs: int = 1) -> dict[str, list[dict[str, Any]]]:
    """AE-MMD with engineered priors: Table 2 on ``xy`` into ``out/xy``, and on ``shapes`` (d = 5) into
    ``out/shapes`` a Gaussian prior, the dSprites hybrid prior, and latent copying (an `Empirical` prior made of
    the hybrid run's codes); ``dataset`` (``xy`` or ``shapes``) runs one of the two. Takes the settings of
    `explorer.paper.studies.EngineeredPriors` as keywords (its ``kernel`` says why IMQ is the default). Returns the
    rows of each table."""
    out = Path(out)
    dataset, seeds, eval_n = study.dataset, study.seeds, study.eval_n
    xy_options = study.xy_options
    shapes_options = {"size": 32, **study.shapes_options}
    marginal = f", marginal MMD weight {study.marginal}" if study.marginal else ""
    budget = (f"{study.steps} steps of batch {study.batch_size}, lr {study.lr}, lambda {study.lam}, {study.kernel} "
              f"kernel{marginal}, seeds {list(seeds)}")

    def config(dataset: str, options: dict[str, Any], prior: Prior) -> TrainConfig:
        return TrainConfig(dataset=dataset, dataset_options=options, objective=AEMMD.name,
                           objective_options={LAM: study.lam, "kernel": study.kernel,
                                              **({"marginal": study.marginal} if study.marginal else {})},
                           prior=prior.to_dict(),
                           latent_dim=prior.dim, steps=study.steps, batch_size=study.batch_size, lr=study.lr,
                           checkpoint_every=0)

    rows = {}
    if dataset in (None, "xy"):
        xy = load_dataset("xy", **xy_options)
        xy_runs = [Run(name, label, config("xy", xy_options, prior)) for name, (label, prior) in xy_priors().items()]
        rows["xy"] = train_and_evaluate(out / "xy", xy_runs, seeds, xy, eval_n, callbacks, jobs)
        write_tables(out / "xy", rows["xy"], {run.name: run.label for run in xy_runs}, "Engineered priors",
                     f"xy, d = 2, AE-MMD, {budget}, metrics on {min(eval_n, len(xy)):,} images", ENGINEERED_COLUMNS)
    if dataset in (None, "shapes"):
        shapes = load_dataset("shapes", **shapes_options)
        shape_runs = [Run("gaussian", "Gaussian", config("shapes", shapes_options, standard_normal(5))),
                      Run("hybrid", "dSprites hybrid", config("shapes", shapes_options, dsprites_hybrid()))]
        rows["shapes"] = train_and_evaluate(out / "shapes", shape_runs, seeds, shapes, eval_n, callbacks, jobs)
        copies = []
        for seed in seeds if study.copies else ():
            # the copy trains with another seed, so that its initialization and batches differ from its source's
            prior = copied_prior(out / "shapes" / f"hybrid-seed{seed}", shapes)
            copy = Run(f"copy-of-hybrid-seed{seed}", f"copy of hybrid seed {seed}",
                       config("shapes", shapes_options, prior))
            copies.append(Task(copy, dataclasses.replace(copy.config, seed=seed + 1),
                               out / "shapes" / f"{copy.name}-seed{seed + 1}"))
        rows["shapes"] += evaluated(copies, shapes, eval_n, callbacks, jobs)
        labels = {run.name: run.label for run in (*shape_runs, *(task.run for task in copies))}
        write_tables(out / "shapes", rows["shapes"], labels, "Engineered priors",
                     f"shapes {shapes_options}, d = 5, AE-MMD, {budget}, metrics on {min(eval_n, len(shapes)):,} "
                     "images", ENGINEERED_COLUMNS)
    return rows


def copied_prior(source: Path, dataset: Dataset, n: int = COPIED_CODES) -> Empirical:
    """Latent copying: an `Empirical` prior of ``n`` codes of the trained run in ``source``."""
    codes, _, _ = encode_dataset(load(source), dataset, n, seed=0)
    return Empirical(torch.from_numpy(codes).double())


def summarize(rows: list[dict[str, Any]], columns: Sequence[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """run name -> metric -> (mean, std over seeds), for the ``columns`` that the runs have."""
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    for name in dict.fromkeys(row["run"] for row in rows):
        runs = [row for row in rows if row["run"] == name]
        summary[name] = {
            key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
            for key in columns if key in runs[0]
        }
    return summary


def markdown_table(summary: dict[str, dict[str, tuple[float, float]]], labels: dict[str, str], caption: str) -> str:
    keys = list(next(iter(summary.values())))
    lines = [caption, "", "| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, metrics in summary.items():
        cells = [f"{mean:.3f} +- {std:.3f}" if math.isfinite(mean) else str(mean) for mean, std in metrics.values()]
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(summary: dict[str, dict[str, tuple[float, float]]], labels: dict[str, str], path: Path) -> None:
    keys = list(next(iter(summary.values())))
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["model", *(f"{k}_{part}" for k in keys for part in ("mean", "std"))])
        for name, metrics in summary.items():
            writer.writerow([labels[name], *(v for mean_std in metrics.values() for v in mean_std)])
