"""The trained checkpoints shipped in ``checkpoints/`` for the notebooks, and how they are made.

``python -m explorer.paper.shipped --work DIR`` runs the reproductions and budget studies with the settings below
(``DIR`` keeps the full runs, so an interrupted build continues) and writes, into ``checkpoints/``, each run's
weights without its optimizer state (about 1.3 MB each, half that in float16), the reproduction tables, and
``manifest.json``: per checkpoint the command that made it and the metrics measured on it, which
``tests/test_shipped_checkpoints.py`` recomputes. Of a budget study it ships ``budget.json`` (every point) and its
`BUDGET_MODELS` at its last budget.

Each set's settings are written once, as the keyword arguments of its study's function; the command recorded in
the manifest is made from them (`explorer.paper.studies.command`, one flag per setting, in the order given here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from explorer import checkpoints
from explorer.paper.budget import RESULTS, budget
from explorer.paper.reproduce import engineered_priors, kl_failure, weights_only
from explorer.paper.studies import command
from explorer.progress import ProgressBar

ENV_VAR = "EXPLORER_CHECKPOINTS"
MANIFEST = "manifest.json"
EVAL_N = 5000
SEEDS = (0, 1, 2)
KL_FAILURE = {"dataset": "mnist-5k", "latent_dim": 12, "steps": 10000, "batch_size": 64, "lr": 2e-3, "lam": 30.0,
              "seeds": SEEDS}
ENGINEERED_XY = {"dataset": "xy", "steps": 2000, "batch_size": 64, "lam": 2.0, "kernel": "imq"}
ENGINEERED_SHAPES = {"dataset": "shapes", "steps": 8000, "batch_size": 64, "lr": 2e-3, "lam": 2.0, "kernel": "imq",
                     "seeds": SEEDS}
# the hybrid-prior study: the Gaussian and hybrid priors x {joint MMD, joint + per-dimension marginal MMD (weight 1),
# which sees the hybrid prior's shapes} x {lambda 10; the paper's pressure, lambda 300 (its 0.3 on a per-pixel mean
# is about 300 on our sum over 32 x 32 pixels)}, to 32,000 steps (where AE-MMD's LPS is flat in the lambda-10 budget
# study), three seeds each; shipped in float16 to keep the checkpoints under 80 MB
ENGINEERED_SHAPES_LAM10 = {**ENGINEERED_SHAPES, "steps": 32000, "lam": 10.0, "copies": False}
ENGINEERED_SHAPES_LAM300 = {**ENGINEERED_SHAPES_LAM10, "lam": 300.0}
ENGINEERED_SHAPES_MARGINAL = {**ENGINEERED_SHAPES, "steps": 32000, "lam": 10.0, "marginal": 1.0, "copies": False}
ENGINEERED_SHAPES_MARGINAL_LAM300 = {**ENGINEERED_SHAPES_MARGINAL, "lam": 300.0}
SHAPES_32 = {"dataset_options": {"size": 32}, "dataset": "shapes", "latent_dim": 5}
BUDGETS = {"mnist-5k": {"dataset": "mnist-5k", "latent_dim": 12, "steps": 10000, "first": 2500, "lam": 30.0,
                        "seeds": SEEDS},
           "shapes": {**SHAPES_32, "steps": 8000, "first": 1000, "lam": 2.0, "seeds": SEEDS},
           # the objectives that have a lambda, with the weight benchmarks/cpu_recipe.py finds fastest, and the AE
           # (which has none, so its runs are those of "shapes") to four times the budget
           "shapes-lam10": {**SHAPES_32, "objectives": ("mmd", "kld", "ae"), "steps": 32000, "first": 500,
                            "lam": 10.0, "seeds": SEEDS},
           # AE-MMD with the IMQ kernel of the engineered priors, which reconstructs better than the RBF sum
           "shapes-lam10-imq": {**SHAPES_32, "objectives": ("mmd", "ae"), "steps": 32000, "first": 500,
                                "lam": 10.0, "kernel": "imq", "seeds": SEEDS}}
# the models of a budget study shipped at its last budget (objective: seeds): notebook 5's traversals, and every
# model behind the README's and docs' shapes Table-1 rows; the tests recompute them
BUDGET_MODELS = {"shapes": {"vae": SEEDS, "beta-vae": SEEDS}, "shapes-lam10": {"mmd": (0,), "kld": SEEDS},
                 "shapes-lam10-imq": {"mmd": SEEDS, "ae": SEEDS}}


@dataclasses.dataclass(frozen=True)
class ShippedSet:
    """A shipped reproduction: ``study`` (a study function) run with ``settings`` into ``WORK/out`` writes its
    runs and tables into ``WORK/tables``, shipped to ``checkpoints/<name>``; with ``fp16`` its weights are stored
    in float16, half the size (the manifest's metrics are the float32 run's, which the tests recompute from the
    float16 weights within their tolerance)."""

    name: str
    study: Callable[..., Any]
    settings: dict[str, Any]
    out: str
    tables: str
    fp16: bool = False

    def command(self) -> str:
        return command(self.study.study, self.settings)


SETS = (ShippedSet("kl-failure", kl_failure, KL_FAILURE, "kl-failure", "kl-failure"),
        ShippedSet("engineered/xy", engineered_priors, ENGINEERED_XY, "engineered", "engineered/xy"),
        ShippedSet("engineered/shapes", engineered_priors, ENGINEERED_SHAPES, "engineered", "engineered/shapes"),
        ShippedSet("engineered/shapes-lam10", engineered_priors, ENGINEERED_SHAPES_LAM10, "engineered-lam10",
                   "engineered-lam10/shapes", fp16=True),
        ShippedSet("engineered/shapes-lam300", engineered_priors, ENGINEERED_SHAPES_LAM300, "engineered-lam300",
                   "engineered-lam300/shapes", fp16=True),
        ShippedSet("engineered/shapes-marginal", engineered_priors, ENGINEERED_SHAPES_MARGINAL, "engineered-marginal",
                   "engineered-marginal/shapes", fp16=True),
        ShippedSet("engineered/shapes-marginal-lam300", engineered_priors, ENGINEERED_SHAPES_MARGINAL_LAM300,
                   "engineered-marginal-lam300", "engineered-marginal-lam300/shapes", fp16=True))


def checkpoints_root(must_exist: bool = True) -> Path:
    """Where the shipped checkpoints are: ``$EXPLORER_CHECKPOINTS``, else the ``checkpoints/`` folder of the
    repository checkout this package was installed from (a wheel does not carry them)."""
    given = os.environ.get(ENV_VAR)
    root = Path(given) if given else Path(__file__).resolve().parents[2] / "checkpoints"
    if must_exist and not (root / MANIFEST).is_file():
        raise FileNotFoundError(f"the shipped checkpoints are not at {root} (no {MANIFEST}): clone the repository "
                                f"and install it with pip install -e, or set {ENV_VAR} to its checkpoints/ folder")
    return root


def build(work: Path, root: Path) -> list[dict[str, Any]]:
    """Run (or reuse) the reproductions in ``work`` and ship their runs into ``root``; returns the manifest."""
    bar = [ProgressBar()]
    for shipped in SETS:
        shipped.study(work / shipped.out, eval_n=EVAL_N, callbacks=bar, **shipped.settings)
    for name, settings in BUDGETS.items():
        budget(work / "budget" / name, eval_n=EVAL_N, callbacks=bar, **settings)
    return ship_sets(work, root)


def ship_sets(work: Path, root: Path) -> list[dict[str, Any]]:
    """Ship the finished reproductions in ``work`` into ``root``: runs, tables and ``manifest.json``."""
    entries = []
    for shipped in SETS:
        source = work / shipped.tables
        if not (source / "results.json").exists():
            continue
        (root / shipped.name).mkdir(parents=True, exist_ok=True)
        for table in ("table.md", "table.csv", "results.json"):
            shutil.copyfile(source / table, root / shipped.name / table)
        for run in sorted(p.parent for p in source.glob(f"*/{checkpoints.META_FILE}")):
            command = f"{shipped.command()} --out OUT  # run OUT/{run.name}"
            entries.append({"path": f"{shipped.name}/{run.name}",
                            **ship(run, root / shipped.name / run.name, command, shipped.fp16)})
    entries += ship_budgets(work, root)
    _write_manifest(root, entries)
    return entries


def _write_manifest(root: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``manifest.json`` with ``entries`` and the earlier entries of every set not shipped now, so that
    shipping one set from a work folder that lacks the others does not drop theirs."""
    shipped = {entry["path"].rsplit("/", 1)[0] for entry in entries}
    earlier = manifest(root) if (root / MANIFEST).exists() else []
    kept = [entry for entry in earlier if entry["path"].rsplit("/", 1)[0] not in shipped]
    (root / MANIFEST).write_text(json.dumps({"checkpoints": kept + entries}, indent=2) + "\n")


def budget_command(name: str) -> str:
    return command(budget.study, BUDGETS[name])


def ship_budgets(work: Path, root: Path) -> list[dict[str, Any]]:
    """Copy each finished budget study's ``budget.json`` into ``root/budget/<name>`` and ship its `BUDGET_MODELS`
    at the study's last budget; returns the manifest entries."""
    entries = []
    for name in BUDGETS:
        source = work / "budget" / name
        if not (source / RESULTS).exists():
            continue
        (root / "budget" / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / RESULTS, root / "budget" / name / RESULTS)
        rows = json.loads((source / RESULTS).read_text())["rows"]
        runs = [(objective, seed) for objective, seeds in BUDGET_MODELS.get(name, {}).items() for seed in seeds]
        for objective, seed in runs:
            last = max(row["step"] for row in rows if row["run"] == objective and row["seed"] == seed)
            run = f"{objective}-seed{seed}"
            command = f"{budget_command(name)} --out OUT  # run OUT/steps/{run}/step{last}"
            entries.append({"path": f"budget/{name}/{run}",
                            **ship(source / "steps" / run / f"step{last}", root / "budget" / name / run, command)})
    return entries


def ship(run: Path, dest: Path, command: str, fp16: bool = False) -> dict[str, Any]:
    """Write the weights of ``run`` (no optimizer state; in float16 with ``fp16``) into ``dest``; return its
    manifest entry, with the metrics of the run's ``evaluation.json``."""
    run = checkpoints.read_meta(run)[1]  # the run folder, also where ``run`` names its checkpoint.json
    meta = weights_only(run, dest, fp16)
    report = _evaluation(run)
    return {"command": command, "step": meta["step"], "eval": {"n": report["n"], "seed": report["seed"]},
            "metrics": report["metrics"]}


def _evaluation(run: Path) -> dict[str, Any]:
    """The run's ``evaluation.json``, measured now (on `EVAL_N` images) where the run has none."""
    path = run / "evaluation.json"
    if not path.exists():
        from explorer.metrics.evaluate import evaluate

        trained = checkpoints.load(run)
        path.write_text(json.dumps(evaluate(trained, trained.load_dataset(), n=EVAL_N, seed=0), indent=2))
    return json.loads(path.read_text())


def manifest(root: Path | None = None) -> list[dict[str, Any]]:
    """The manifest's entries: ``path`` (relative to ``root``, default `checkpoints_root`), ``command``, ``step``,
    ``eval`` and ``metrics``."""
    return json.loads(((root or checkpoints_root()) / MANIFEST).read_text())["checkpoints"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.paper.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the full runs (reused when present)")
    parser.add_argument("--root", type=Path, help=f"where the shipped checkpoints go (default: ${ENV_VAR}, else the "
                        "checkout's checkpoints/)")
    args = parser.parse_args(argv)
    for entry in build(args.work, args.root or checkpoints_root(must_exist=False)):
        metrics = entry["metrics"]
        print(f"{entry['path']}: LPS-lgbm {metrics['lps_lgbm']:.3f}, NMSE {metrics['nmse_db']:.2f} dB")


if __name__ == "__main__":
    main()
