"""The cheapest recipe to the plateau on a CPU: AE-MMD on 32 px `shapes` (d = 5), one choice changed at a time.

The reference is the shipped recipe: batch 64, lr 2e-3, width 32, lambda 2 (reconstruction summed over pixels),
fp32, one single-thread process per core. Two tables:

- **throughput**: images/s of each choice's real `Trainer.train_step`, timed round-robin in one single-thread
  process (so machine load affects all alike), median over rounds and ratio to the reference; then the threads
  choice: the reference with two threads in one process against two single-thread processes at once (summed).
- **plateau** (``--plateau DIR``): each choice that changes what is learnt trained to 2^19 = 524,288 images (0.7
  epoch) and evaluated at 32k, 64k, ... images, two choices at a time (one per core). It prints LPS-lgbm and NMSE
  at each budget, the images at which LPS-lgbm first comes within ``--tolerance`` of the lowest it reaches (its
  plateau; "falling" if the last doubling still lowered it by more), and the wall time that takes at the
  measured images/s. One seed: differences under about 0.03 (the seed std of the budget study) are noise.
  Finished runs and evaluations in DIR are reused.

    python benchmarks/cpu_recipe.py                       # throughput, about 5 minutes
    python benchmarks/cpu_recipe.py --plateau runs/recipe  # and the learning curves, about 70 minutes on 2 cores
    python benchmarks/cpu_recipe.py --smoke                # seconds, for CI
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from explorer.data import load_dataset
from explorer.paper.reproduce import LAM, Run, evaluate_run, objective_runs, train_or_reuse
from explorer.training import TrainConfig, Trainer

REFERENCE = "reference"
# name -> (TrainConfig fields changed, whether it changes what is learnt and so needs its own learning curve)
CHOICES: dict[str, tuple[dict[str, Any], bool]] = {
    REFERENCE: ({}, True),
    "batch 512, lr 5e-4 (paper)": ({"batch_size": 512, "lr": 5e-4}, True),
    "batch 512, lr 2e-3": ({"batch_size": 512, "lr": 2e-3}, True),
    "batch 64, lr 5e-4": ({"lr": 5e-4}, True),
    "width 16": ({"width": 16}, True),
    "width 64": ({"width": 64}, True),
    "lambda 0.5": ({"objective_options": {"lam": 0.5}}, True),
    "lambda 10": ({"objective_options": {"lam": 10.0}}, True),
    "64 px": ({"dataset_options": {"size": 64}}, True),
    "channels_last": ({"channels_last": True}, False),
    "torch.compile": ({"compile": True}, False),
    "bf16 autocast": ({"precision": "bf16"}, True),
}
BUDGETS = [2**k for k in range(15, 20)]  # images seen: 32k ... 512k
EVAL_N = 5000  # as the budget study


def config(name: str, images: int = BUDGETS[-1]) -> TrainConfig:
    """The reference AE-MMD run with choice ``name`` applied, trained for ``images`` images."""
    (base,) = objective_runs(("mmd",), "shapes", {"size": 32}, {LAM: 2.0}, latent_dim=5, batch_size=64, lr=2e-3)
    changed = CHOICES[name][0]
    options = {**base.config.dataset_options, **changed.get("dataset_options", {})}
    objective_options = {**base.config.objective_options, **changed.get("objective_options", {})}
    new = dataclasses.replace(base.config, **{**changed, "dataset_options": options,
                                              "objective_options": objective_options})
    return dataclasses.replace(new, steps=max(1, images // new.batch_size))


def warmed_trainer(name: str) -> Trainer:
    """A trainer of choice ``name`` after three steps (warm-up, and torch.compile's compilation)."""
    cfg = config(name)
    trainer = Trainer(cfg, dataset=load_dataset(cfg.dataset, **cfg.dataset_options))
    for _ in range(3):
        trainer.train_step()
    return trainer


def timed(trainer: Trainer, seconds: float) -> float:
    """Images/s of ``trainer`` over about ``seconds`` of steps."""
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        trainer.train_step()
        steps += 1
    return steps * trainer.config.batch_size / elapsed


def images_per_second(names: list[str], rounds: int, seconds: float) -> dict[str, float]:
    """Median images/s per choice, timed round-robin for about ``seconds`` each per round, one thread."""
    torch.set_num_threads(1)
    trainers = {name: warmed_trainer(name) for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            rates[name].append(timed(trainer, seconds))
    return {name: statistics.median(r) for name, r in rates.items()}


def _reference_rate(threads: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    return timed(warmed_trainer(REFERENCE), seconds)


def threads_table(seconds: float) -> dict[str, float]:
    """Images/s of the machine: one process with two threads, and two single-thread processes at once."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        one = pool.submit(_reference_rate, 2, seconds).result()
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        two = sum(pool.map(_reference_rate, [1, 1], [seconds, seconds]))
    return {"1 process x 2 threads": one, "2 processes x 1 thread": two}


def learning_curve(name: str, out: Path, budgets: list[int], eval_n: int = EVAL_N) -> list[dict[str, Any]]:
    """Choice ``name`` trained to each budget in turn (extended by exact resume) and evaluated there."""
    torch.set_num_threads(1)
    rows = []
    folder = out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    dataset = None
    for images in budgets:
        cfg = config(name, images)
        done = folder / f"evaluation-{images}.json"
        if not done.exists():
            dataset = dataset or load_dataset(cfg.dataset, **cfg.dataset_options)
            train_or_reuse(cfg, dataset, folder / "run")
            row = evaluate_run(folder / "run", dataset, Run(name, name, cfg), cfg.seed, eval_n)
            done.write_text(json.dumps(row))
        rows.append({**json.loads(done.read_text()), "images": images})
    return rows


def plateau(lps: list[float], images: list[int], tolerance: float) -> int | None:
    """The first budget whose LPS is within ``tolerance`` of the lowest reached; None while the last doubling of
    the budget still lowered it by more than ``tolerance`` (no plateau yet)."""
    if len(lps) > 1 and lps[-2] - lps[-1] > tolerance:
        return None
    return next(x for x, value in zip(images, lps, strict=True) if value <= min(lps) + tolerance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per choice per round")
    parser.add_argument("--plateau", type=Path, help="also train each choice's learning curve into this folder")
    parser.add_argument("--tolerance", type=float, default=0.03, help="LPS-lgbm within this of its lowest: plateau")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the tables")
    args = parser.parse_args()
    names, budgets, eval_n = list(CHOICES), BUDGETS, EVAL_N
    if args.smoke:
        args.rounds, args.seconds, budgets, eval_n = 1, 0.2, [512, 1024], 300
        names = [REFERENCE, "batch 512, lr 2e-3", "channels_last"]

    rates = images_per_second(names, args.rounds, args.seconds)
    machine = threads_table(args.seconds * args.rounds)
    throughput = [{"choice": name, "images_per_s": rate, "vs_reference": rate / rates[REFERENCE],
                   "machine": name in machine} for name, rate in [*((n, rates[n]) for n in names), *machine.items()]]
    if not args.json:
        print(f"AE-MMD on 32 px shapes, d = 5: median of {args.rounds} rounds x {args.seconds:g} s, one thread")
        print(f"{'choice':<28} {'images/s':>9} {'vs ref':>7}")
        for r in throughput:
            note = "   (the machine's images/s, reference)" if r["machine"] else ""
            print(f"{r['choice']:<28} {r['images_per_s']:>9.0f} {r['vs_reference']:>7.2f}{note}")
    if args.plateau is None:
        if args.json:
            print(json.dumps({"throughput": throughput}))
        return

    learnt = sorted((name for name in names if CHOICES[name][1]), key=rates.get)  # slowest first: both cores busy
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = dict(zip(learnt, pool.map(learning_curve, learnt, [args.plateau] * len(learnt),
                                         [budgets] * len(learnt), [eval_n] * len(learnt)), strict=True))
    curves = {name: done[name] for name in names if name in done}
    (args.plateau / "curves.json").write_text(json.dumps(curves, indent=2))
    plateaus = {}
    for name, rows in curves.items():
        reached = plateau([row["lps_lgbm"] for row in rows], budgets, args.tolerance)
        plateaus[name] = {"images": reached, "minutes": None if reached is None else reached / rates[name] / 60}
    if args.json:
        print(json.dumps({"throughput": throughput, "curves": curves, "plateau": plateaus}))
        return
    print(f"\nLPS-lgbm (NMSE dB) at each budget of images; plateau: LPS within {args.tolerance} of its lowest")
    print(f"{'choice':<28} " + " ".join(f"{x / 1024:>13g}k" for x in budgets) + f" {'plateau':>8} {'minutes':>8}")
    for name, rows in curves.items():
        cells = " ".join(f"{row['lps_lgbm']:>6.2f} ({row['nmse_db']:>5.1f})" for row in rows)
        reached, minutes = plateaus[name]["images"], plateaus[name]["minutes"]
        when = "falling" if reached is None else f"{reached / 1024:g}k"
        minutes = "-" if minutes is None else f"{minutes:.1f}"
        print(f"{name:<28} {cells} {when:>8} {minutes:>8}")


if __name__ == "__main__":
    main()
