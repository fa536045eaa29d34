"""Cost of the MMD penalty: `explorer.mmd.mmd2` forward + backward against plain autograd over the same formula,
and of the per-dimension term `explorer.mmd.marginal_mmd2` as a share of a whole AE-MMD training step.

The reference builds the kernel matrices under autograd and takes block means (what a direct implementation
does); both use the same detached median bandwidth. The training step is the real `Trainer.train_step` on
32x32x3 random images at the same batch and latent size (target: the marginal term under 5 % of it). Timings
interleave in one process, on one thread, and the table gives medians over rounds.

    python benchmarks/mmd.py            # batch 512, d = 64 (the paper's batch, the CIFAR-10 latent size)
    python benchmarks/mmd.py --smoke    # seconds, for CI
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from explorer.data import TensorDataset
from explorer.mmd import marginal_mmd2, median_bandwidth, mmd2
from explorer.training import TrainConfig, Trainer

SCALES = (0.5, 1.0, 2.0)


def autograd_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased RBF-sum MMD^2 by autograd through the kernel matrices (the reference)."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).square()
    sigma2 = median_bandwidth(x.detach(), y).square()
    k = sum(torch.exp(d2 * (-0.5 / (sigma2 * s**2))) for s in SCALES)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def time_ms(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x, y).backward()
    return (time.perf_counter() - start) / repeats * 1000


def train_step_ms(trainer: Trainer, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        trainer.train_step()
    return (time.perf_counter() - start) / repeats * 1000


def mmd_trainer(batch: int, latent_dim: int, size: int = 32) -> Trainer:
    images = torch.randint(0, 256, (2048, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(dataset="random", objective="mmd", latent_dim=latent_dim, batch_size=batch, steps=1)
    return Trainer(config, dataset=TensorDataset("random", images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="calls per round")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.rounds, args.repeats = 64, 2, 1
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, args.latent_dim, generator=g).requires_grad_()
    y = torch.randn(args.batch_size, args.latent_dim, generator=g)
    trainer = mmd_trainer(args.batch_size, args.latent_dim)
    trainer.train_step()  # warm-up
    ours, reference, marginal, step = [], [], [], []
    for _ in range(args.rounds):
        ours.append(time_ms(mmd2, x, y, args.repeats))
        reference.append(time_ms(autograd_mmd2, x, y, args.repeats))
        marginal.append(time_ms(marginal_mmd2, x, y, args.repeats))
        step.append(train_step_ms(trainer, 1))
    mine, ref, step_ms = statistics.median(ours), statistics.median(reference), statistics.median(step)
    rows = [{"implementation": "explorer.mmd.mmd2", "ms": mine, "vs_reference": ref / mine},
            {"implementation": "autograd reference", "ms": ref, "vs_reference": 1.0},
            {"implementation": "explorer.mmd.marginal_mmd2", "ms": statistics.median(marginal),
             "share_of_step": statistics.median(marginal) / step_ms},
            {"implementation": "AE-MMD training step", "ms": step_ms}]
    if args.json:
        print(json.dumps({"batch_size": args.batch_size, "latent_dim": args.latent_dim, "rows": rows}))
        return
    print(f"MMD^2 forward + backward, batch {args.batch_size} (x) + {args.batch_size} (prior), d = {args.latent_dim}, "
          f"1 thread, median of {args.rounds} rounds x {args.repeats}")
    print(f"{'implementation':<28} {'ms':>8} {'vs reference':>13} {'of a step':>10}")
    for row in rows:
        versus = f"{row['vs_reference']:>12.2f}x" if "vs_reference" in row else f"{'':>13}"
        share = f"{row['share_of_step']:>9.1%}" if "share_of_step" in row else ""
        print(f"{row['implementation']:<28} {row['ms']:>8.1f} {versus} {share:>10}")


if __name__ == "__main__":
    main()
