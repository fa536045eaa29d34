"""AE-MMD training throughput on one GPU: CIFAR-10 layout, d = 64, batch 512; steps/s and peak memory.

The data is CIFAR-10's training set if it is on disk (``--root`` or $EXPLORER_DATA), else random uint8 images in
its layout (50,000 x 3 x 32 x 32; the speed does not depend on the pixel values). The real `Trainer.train_step`
runs with the dataset resident on the device as uint8. Variants, timed in alternating rounds in one process:
- ``fp32``: the plain path (the reference of the ratio column);
- ``bf16 + channels_last``: the GPU fast path (``--precision bf16 --channels-last`` on the command line);
- ``... + compile``: the same with ``torch.compile`` (``--compile``; minutes of compilation first).
Peak memory: ``torch.cuda.max_memory_allocated`` over a few steps of each variant alone (the process's peak
resident set size on the CPU, for all variants together). Target (issue 6): >= 40 steps/s on one H100.

    python benchmarks/gpu_train.py                 # cuda, the issue's setting
    python benchmarks/gpu_train.py --compile       # add the compiled variant
    python benchmarks/gpu_train.py --smoke         # CPU, small, seconds: checks that the script works (CI)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import time

import torch

from explorer.data import DatasetNotFoundError, TensorDataset, load_dataset
from explorer.training import TrainConfig, Trainer


def cifar10_or_random(n: int, root: str | None) -> tuple[TensorDataset, str]:
    """CIFAR-10's training set (first ``n`` images) if it is on disk, else random images in its layout."""
    try:
        dataset = load_dataset("cifar10", **({"root": root} if root else {}))
        images = dataset.items(torch.arange(min(n, len(dataset))))
        return TensorDataset("cifar10", images), "cifar10"
    except DatasetNotFoundError:
        generator = torch.Generator().manual_seed(0)
        return TensorDataset("random", torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8,
                                                     generator=generator)), "random (CIFAR-10 layout)"


def peak_memory_mb(trainer: Trainer, steps: int) -> float:
    if trainer.device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(trainer.device)
    torch.cuda.reset_peak_memory_stats(trainer.device)
    for _ in range(steps):
        trainer.train_step()
    torch.cuda.synchronize(trainer.device)
    return torch.cuda.max_memory_allocated(trainer.device) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu")
    parser.add_argument("--n", type=int, default=50_000, help="images (CIFAR-10's training set has 50,000)")
    parser.add_argument("--root", help="where CIFAR-10 lives (default: $EXPLORER_DATA)")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=50, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per variant first")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--smoke", action="store_true", help="CPU, small: seconds, to check the script works")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.n, args.batch_size, args.width = "cpu", 512, 32, 8
        args.rounds, args.steps, args.warmup = 2, 1, 1

    dataset, source = cifar10_or_random(args.n, args.root)
    base = TrainConfig(dataset=dataset.name, objective="mmd", latent_dim=args.latent_dim, width=args.width,
                       batch_size=args.batch_size, steps=10**9, device=args.device,
                       resident_bytes=max(dataset.nbytes, 1))
    variants = {"fp32": base, "bf16 + channels_last": dataclasses.replace(base, precision="bf16",
                                                                          channels_last=True)}
    if args.compile:
        variants["bf16 + channels_last + compile"] = dataclasses.replace(variants["bf16 + channels_last"],
                                                                         compile=True)
    trainers = {name: Trainer(config, dataset=dataset) for name, config in variants.items()}
    sync = torch.cuda.synchronize if trainers["fp32"].device.type == "cuda" else (lambda *a: None)
    for trainer in trainers.values():
        assert trainer.resident, "the dataset should be resident on the device"
        for _ in range(args.warmup):
            trainer.train_step()
    memory = {name: peak_memory_mb(trainer, 3) for name, trainer in trainers.items()}

    rates: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()  # reads the loss back: one sync per step, as in real training
            sync()
            rates[name].append(args.steps / (time.perf_counter() - start))

    device = trainers["fp32"].device
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference = statistics.median(rates["fp32"])
    rows = [{"variant": name, "steps_per_s": statistics.median(rate), "vs_fp32": statistics.median(rate) / reference,
             "images_per_s": statistics.median(rate) * args.batch_size,
             "peak_mb": memory[name] if device.type == "cuda" else rss} for name, rate in rates.items()]
    if args.json:
        print(json.dumps({"source": source, "n": args.n, "latent_dim": args.latent_dim, "batch_size": args.batch_size,
                          "device": name_of_device, "smoke": args.smoke, "rows": rows}))
        return
    print(f"{source}, {args.n} x {tuple(dataset.shape)}, d = {args.latent_dim}, batch {args.batch_size}, "
          f"width {args.width}, {name_of_device}; median of {args.rounds} rounds x {args.steps} steps"
          + (" [smoke run: not a measurement]" if args.smoke else ""))
    print(f"{'variant':<32} {'steps/s':>8} {'vs fp32':>8} {'images/s':>9} {'peak MB':>8}")
    for r in rows:
        print(f"{r['variant']:<32} {r['steps_per_s']:>8.2f} {r['vs_fp32']:>8.2f} {r['images_per_s']:>9.0f} "
              f"{r['peak_mb']:>8.0f}")
    if device.type != "cuda":
        print("peak MB on the CPU: the process's maximum resident set size (all variants)")


if __name__ == "__main__":
    main()
