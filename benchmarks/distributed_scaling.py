"""Scaling of AE-MMD training with processes under ``torchrun`` on the CPU (gloo): steps/s and images/s.

Weak scaling: every process keeps ``--batch-size`` images per step, so N processes train with the global batch
N x b (what `explorer.distributed` makes exactly equal to one process with that batch). Each process gets
``cores / N`` threads, so every row uses the same CPU. For each N the script launches
``python -m torch.distributed.run --nproc_per_node N`` on itself; rank 0 times rounds of steps (median reported).
The reference of the ratio column is the first row (1 process by default), measured in the same run. On a GPU
machine ``--device cuda`` measures multi-GPU scaling the same way.

    python benchmarks/distributed_scaling.py                # 1 and 2 processes, 32x32x3 random data, d = 64
    python benchmarks/distributed_scaling.py --procs 1 2 4
    python benchmarks/distributed_scaling.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from explorer import distributed
from explorer.data import TensorDataset
from explorer.training import TrainConfig, Trainer


def worker(args: argparse.Namespace) -> None:
    """One rank: train and time; rank 0 prints one JSON line with the per-round rates."""
    distributed.init_from_env(args.device)
    try:
        world = distributed.world_size()
        data = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8,
                             generator=torch.Generator().manual_seed(0))
        config = TrainConfig(dataset="random", objective="mmd", latent_dim=args.latent_dim, width=args.width,
                             batch_size=args.batch_size * world, steps=10**9, device=args.device)
        trainer = Trainer(config, dataset=TensorDataset("random", data))
        for _ in range(args.warmup):
            trainer.train_step()
        rates = []
        for _ in range(args.rounds):
            distributed.barrier()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()  # the step ends with an all-reduce of the loss terms: ranks stay in step
            rates.append(args.steps / (time.perf_counter() - start))
        if distributed.is_main():
            print("RESULT " + json.dumps({"world": world, "threads": torch.get_num_threads(), "rates": rates}))
    finally:
        distributed.shutdown()


def launch(procs: int, args: argparse.Namespace, argv: list[str]) -> dict:
    threads = max(1, args.cores // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH",
                                                                                                      "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               __file__, "--worker", *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{procs} processes failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores shared by the processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4096, help="random 32x32x3 images in the dataset")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="images per process per step")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.batch_size, args.width, args.rounds, args.steps, args.warmup = 256, 16, 8, 2, 2, 1
    if args.worker:
        worker(args)
        return

    argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
            if k in ("device", "images", "latent_dim", "batch_size", "width", "rounds", "steps", "warmup")]
    results = {procs: launch(procs, args, argv) for procs in args.procs}
    print(f"AE-MMD, random 32x32x3, d = {args.latent_dim}, width {args.width}, {args.batch_size} images per "
          f"process, {args.device}, {args.cores} cores shared; median of {args.rounds} rounds x {args.steps} steps"
          + (" [smoke run: not a measurement]" if args.smoke else ""))
    print(f"{'processes':>9} {'threads':>8} {'global batch':>13} {'steps/s':>8} {'images/s':>9} {'images/s ratio':>15}")
    reference = statistics.median(results[args.procs[0]]["rates"]) * args.batch_size * args.procs[0]
    for procs, result in results.items():
        rate = statistics.median(result["rates"])
        images = rate * args.batch_size * procs
        print(f"{procs:>9} {result['threads']:>8} {args.batch_size * procs:>13} {rate:>8.2f} {images:>9.0f} "
              f"{images / reference:>15.2f}")


if __name__ == "__main__":
    main()
