"""Table 1 at the paper's budget on one GPU: 64 px ``shapes``, d = 5, 50 epochs of batch 512, one run per objective.

The runs train at once, one process each on the same GPU (one small model leaves a GPU mostly idle), with the
dataset resident on the device as uint8, bf16 autocast and channels_last. Each run stops at its step budget or at
the shared wall-clock deadline, whichever comes first, and says which; then each is evaluated alike (LPS-lgbm,
LPS-mlp, NMSE, MMD^2 to the prior, MIG / SAP / DCI on 10,000 images) and its weights-only copy is written to
``OUT/shipped/<objective>-seed0`` with the measurement. ``OUT/table.md`` and ``OUT/results.json`` gather the
metrics, steps/s, wall time and the GPU's name.

    python benchmarks/paper_budget_gpu.py --out $OUT             # cuda: the paper's budget, deadline 6 minutes
    python benchmarks/paper_budget_gpu.py --smoke --out /tmp/pb  # CPU, 32 px, a few steps: checks the script (CI)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch

EPOCH_IMAGES = 3 * 6 * 40 * 32 * 32  # shapes: every combination of the five factors once
OBJECTIVES = ("mmd", "vae", "beta-vae", "kld", "ae")
LAM = 2.0  # the penalty weight of AE-MMD and AE-KLD, as in the shipped shapes runs


def train_one(objective: str, settings: dict[str, Any], out: str, queue: multiprocessing.Queue) -> None:
    """Train and evaluate one objective (in its own process); put its row on ``queue``."""
    from explorer import checkpoints
    from explorer.data import load_dataset
    from explorer.metrics.evaluate import evaluate
    from explorer.training import Callback, StopTraining, TrainConfig, Trainer

    class Deadline(Callback):
        def on_step(self, trainer: Trainer, event: Any) -> None:
            if time.time() > settings["deadline"]:
                raise StopTraining

    torch.set_float32_matmul_precision("high")
    data = load_dataset("shapes", size=settings["size"])
    config = TrainConfig(
        dataset="shapes", dataset_options={"size": settings["size"]}, objective=objective,
        objective_options={"lam": LAM} if objective in ("mmd", "kld") else {}, latent_dim=5,
        steps=settings["steps"], batch_size=settings["batch_size"], lr=5e-4, checkpoint_every=0,
        device=settings["device"], resident_bytes=settings["resident_bytes"], precision=settings["precision"],
        channels_last=settings["channels_last"])
    run = Path(out) / "runs" / f"{objective}-seed0"
    start = time.perf_counter()
    trainer = Trainer(config, dataset=data, out=run, callbacks=[Deadline()])
    setup = time.perf_counter() - start
    trainer.run()
    wall = time.perf_counter() - start - setup
    trained = checkpoints.load(run)
    report = evaluate(trained, data, n=settings["eval_n"], seed=0)
    (run / "evaluation.json").write_text(json.dumps(report, indent=2))
    queue.put({"run": objective, "step": trainer.step, "budget_steps": settings["steps"],
               "reached_budget": trainer.step >= settings["steps"], "train_s": round(wall, 1),
               "setup_s": round(setup, 1), "steps_per_s": round(trainer.step / wall, 1),
               "epochs": round(trainer.step * settings["batch_size"] / EPOCH_IMAGES, 2), **report["metrics"]})


def table(rows: list[dict[str, Any]], device: str) -> str:
    lines = [f"Table 1 objectives on shapes {rows[0]['size']} px, d = 5, batch {rows[0]['batch_size']}, on {device}",
             "", "| model | steps | epochs | steps/s | train s | LPS-lgbm | LPS-mlp | NMSE dB | MMD^2 | MIG | DCI |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['step']}{'' if r['reached_budget'] else ' (deadline)'} | {r['epochs']} | "
                     f"{r['steps_per_s']} | {r['train_s']} | {r['lps_lgbm']:.3f} | {r['lps_mlp']:.3f} | "
                     f"{r['nmse_db']:.2f} | {r['mmd_to_prior']:.3f} | {r['mig']:.3f} | "
                     f"{r['dci_disentanglement']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for runs, shipped copies and the table")
    parser.add_argument("--epochs", type=float, default=50.0, help="the paper's 50 epochs of shapes")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--minutes", type=float, default=6.0, help="wall-clock deadline for the training")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES))
    parser.add_argument("--smoke", action="store_true", help="CPU, 32 px, 4 steps, 300 evaluation images")
    parser.add_argument("--json", action="store_true", help="print results.json instead of the table")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --smoke to check the script on the CPU")
    steps = 4 if args.smoke else round(args.epochs * EPOCH_IMAGES / args.batch_size)
    settings = {"size": 32 if args.smoke else 64, "steps": steps, "batch_size": 16 if args.smoke else args.batch_size,
                "device": "cpu" if args.smoke else "cuda", "precision": "fp32" if args.smoke else "bf16",
                "channels_last": not args.smoke, "eval_n": 300 if args.smoke else 10_000,
                "resident_bytes": 0 if args.smoke else 8 * 2**30,  # 64 px shapes: 3 GB of uint8 on the GPU
                "deadline": time.time() + 60 * args.minutes}
    device = "CPU (smoke run)" if args.smoke else torch.cuda.get_device_name()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=train_one, args=(o, settings, str(args.out), queue)) for o in args.objectives]
    for process in processes:
        process.start()
    rows = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    rows = sorted(({**r, "size": settings["size"], "batch_size": settings["batch_size"]} for r in rows),
                  key=lambda r: args.objectives.index(r["run"]))
    from explorer.paper.shipped import ship

    for r in rows:
        ship(args.out / "runs" / f"{r['run']}-seed0", args.out / "shipped" / f"{r['run']}-seed0",
             f"python benchmarks/paper_budget_gpu.py --epochs {args.epochs} --batch-size {args.batch_size}")
    results = json.dumps({"device": device, "rows": rows}, indent=2)
    (args.out / "results.json").write_text(results)
    text = table(rows, device)
    (args.out / "table.md").write_text(text)
    print(results if args.json else text)


if __name__ == "__main__":
    main()
