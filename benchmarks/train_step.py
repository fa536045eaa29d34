"""Training-step throughput and peak memory of AE, AE-MMD and VAE on the CPU.

Batch 512, d = 64, 32x32x3 random images held in memory, the real `Trainer.train_step`. Timings are interleaved
round-robin in one process (so machine load affects all models alike); the table gives the median over rounds
and each model's ratio to the AE measured in the same process. Peak memory is each model's own child process's
maximum resident set size, for a few steps.

    python benchmarks/train_step.py            # the issue's setting
    python benchmarks/train_step.py --smoke    # seconds, for CI
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time

import torch

from explorer.data import TensorDataset
from explorer.training import TrainConfig, Trainer

OBJECTIVES = ("ae", "mmd", "vae")


def make_trainer(objective: str, batch: int, latent_dim: int, size: int) -> Trainer:
    data = torch.randint(0, 256, (2048, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(dataset="random", objective=objective, latent_dim=latent_dim, batch_size=batch, steps=1)
    return Trainer(config, dataset=TensorDataset("random", data))


def _peak_rss_mb(objective: str, batch: int, latent_dim: int, size: int, queue: multiprocessing.Queue) -> None:
    trainer = make_trainer(objective, batch, latent_dim, size)
    for _ in range(3):
        trainer.train_step()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_memory_mb(objective: str, batch: int, latent_dim: int, size: int) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_rss_mb, args=(objective, batch, latent_dim, size, queue))
    process.start()
    value = queue.get()
    process.join()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=5, help="steps per model per round")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="image side (3 channels)")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.steps, args.batch_size = 2, 1, 32

    trainers = {name: make_trainer(name, args.batch_size, args.latent_dim, args.size) for name in OBJECTIVES}
    for trainer in trainers.values():
        trainer.train_step()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in OBJECTIVES}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            rates[name].append(args.steps / (time.perf_counter() - start))

    memory = {name: peak_memory_mb(name, args.batch_size, args.latent_dim, args.size) for name in OBJECTIVES}
    reference = statistics.median(rates["ae"])
    print(f"batch {args.batch_size}, d = {args.latent_dim}, {args.size}x{args.size}x3, {torch.get_num_threads()} "
          f"threads, median of {args.rounds} rounds x {args.steps} steps")
    print(f"{'objective':<10} {'steps/s':>9} {'vs AE':>7} {'ms/step':>9} {'peak RSS MB':>12}")
    for name in OBJECTIVES:
        rate = statistics.median(rates[name])
        print(f"{name:<10} {rate:>9.2f} {rate / reference:>7.3f} {1000 / rate:>9.1f} {memory[name]:>12.0f}")


if __name__ == "__main__":
    main()
