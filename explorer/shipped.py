"""The trained checkpoints shipped in ``checkpoints/`` for the notebooks, and how they are made.

``python -m explorer.shipped --work DIR`` runs the two reproductions with the settings below (``DIR`` keeps the full
runs, so an interrupted build continues) and writes, into ``checkpoints/``, each run's weights without its optimizer
state (about 1.3 MB each), the reproduction tables, and ``manifest.json``: per checkpoint the command that made it
and the metrics measured on it, which ``tests/test_shipped_checkpoints.py`` recomputes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer import checkpoints
from explorer.progress import ProgressBar
from explorer.reproduce import engineered_priors, kl_failure

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
MANIFEST = "manifest.json"
EVAL_N = 5000
KL_FAILURE = {"steps": 10000, "batch_size": 64, "lr": 2e-3, "lam": 30.0}  # on mnist-5k, d = 12
ENGINEERED = {"steps": 2000, "batch_size": 64, "lam": 2.0, "kernel": "imq"}
SHAPES = {"dataset_options": {"size": 32}, "latent_dim": 5, "steps": 2000, "batch_size": 64, "lam": 2.0}


def _flags(settings: dict[str, Any]) -> str:
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in settings.items())


def build(work: Path, root: Path = ROOT) -> list[dict[str, Any]]:
    """Run (or reuse) the reproductions in ``work`` and ship their runs into ``root``; returns the manifest."""
    bar = [ProgressBar()]
    engineered_priors(work / "engineered", eval_n=EVAL_N, callbacks=bar, **ENGINEERED)
    kl_failure(work / "objectives-shapes", dataset="shapes", eval_n=EVAL_N, callbacks=bar, **SHAPES)
    kl_failure(work / "kl-failure", eval_n=EVAL_N, callbacks=bar, **KL_FAILURE)
    return ship_sets(work, root)


def ship_sets(work: Path, root: Path = ROOT) -> list[dict[str, Any]]:
    """Ship the finished reproductions in ``work`` into ``root``: runs, tables and ``manifest.json``."""
    kl_command = f"python -m explorer reproduce kl-failure --dataset mnist-5k --latent-dim 12 {_flags(KL_FAILURE)}"
    shapes_options = " ".join(f"--dataset-option {k}={v}" for k, v in SHAPES["dataset_options"].items())
    shapes_flags = _flags({k: v for k, v in SHAPES.items() if k != "dataset_options"})
    shapes_command = f"python -m explorer reproduce kl-failure --dataset shapes {shapes_options} {shapes_flags}"
    eng_command = f"python -m explorer reproduce engineered-priors {_flags(ENGINEERED)}"
    sets = [("kl-failure", work / "kl-failure", kl_command),
            ("objectives-shapes", work / "objectives-shapes", shapes_command),
            ("engineered/xy", work / "engineered" / "xy", eng_command),
            ("engineered/shapes", work / "engineered" / "shapes", eng_command)]
    entries = []
    for name, source, command in sets:
        if not (source / "results.json").exists():
            continue
        (root / name).mkdir(parents=True, exist_ok=True)
        for table in ("table.md", "table.csv", "results.json"):
            shutil.copyfile(source / table, root / name / table)
        for run in sorted(p.parent for p in source.glob(f"*/{checkpoints.META_FILE}")):
            entries.append({"path": f"{name}/{run.name}",
                            **ship(run, root / name / run.name, f"{command} --out OUT  # run OUT/{run.name}")})
    (root / MANIFEST).write_text(json.dumps({"checkpoints": entries}, indent=2) + "\n")
    return entries


def ship(run: Path, dest: Path, command: str) -> dict[str, Any]:
    """Write the weights of ``run`` (no optimizer state) into ``dest``; return its manifest entry, with the
    metrics of the run's ``evaluation.json``."""
    meta, run = checkpoints.read_meta(run)
    weights = checkpoints.read_tensors(run, meta, "weights")
    if dest.exists():
        shutil.rmtree(dest)
    keep = {k: v for k, v in meta.items() if k not in ("files", "versions", "schema", "schema_version",
                                                       "optimizer_groups")}
    checkpoints.write_checkpoint(dest, keep, weights)
    report = json.loads((run / "evaluation.json").read_text())
    return {"command": command, "step": meta["step"], "eval": {"n": report["n"], "seed": report["seed"]},
            "metrics": report["metrics"]}


def manifest(root: Path = ROOT) -> list[dict[str, Any]]:
    """The manifest's entries: ``path`` (relative to ``root``), ``command``, ``step``, ``eval`` and ``metrics``."""
    return json.loads((root / MANIFEST).read_text())["checkpoints"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the full runs (reused when present)")
    parser.add_argument("--root", type=Path, default=ROOT, help="where the shipped checkpoints go")
    args = parser.parse_args(argv)
    for entry in build(args.work, args.root):
        metrics = entry["metrics"]
        print(f"{entry['path']}: LPS-lgbm {metrics['lps_lgbm']:.3f}, NMSE {metrics['nmse_db']:.2f} dB")


if __name__ == "__main__":
    main()
