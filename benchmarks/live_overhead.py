"""What watching costs: steps/s of a run trained while the explorer watches it, against the same run headless.

Rounds alternate, in one process, on the explorer's default setting (shapes 32x32, AE-MMD, d = 5, batch 64):
headless on the main thread (the reference: as the command line trains) and watched (`Explorer`: the background
thread posting snapshots, the consumer applying them to every view at 4 Hz). The table gives the median steps/s
and the median of the per-round ratios against the reference of the same round (target >= 0.95), the share of
the watched run spent taking and drawing snapshots, and the latency from a snapshot being taken to every view
holding its data (target p95 < 200 ms). Then a watched run of ``--memory-seconds`` reports resident memory growth
after warm-up, extrapolated to 20 minutes (target < 20 MB), with the bounded loss history's length.

    python benchmarks/live_overhead.py                      # 5 rounds of 300 steps, 120 s of memory
    python benchmarks/live_overhead.py --memory-seconds 1200  # the full 20 minutes, measured
    python benchmarks/live_overhead.py --smoke              # seconds, for CI
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import time

import numpy as np
import torch

from explorer.data import load_dataset
from explorer.training import Trainer
from explorer.widgets.app import DEFAULT_CONFIG, Explorer

WARM_S = 20.0  # memory is measured from here on: caches, allocator pools and histories filled


def headless_rate(config, dataset) -> float:
    """steps/s of `Trainer.run` with no view, on the main thread (as the command line runs it)."""
    trainer = Trainer(config, dataset=dataset)
    trainer.train_step()  # warm-up outside the clock
    started = time.perf_counter()
    trainer.run()
    return (trainer.step - 1) / (time.perf_counter() - started)


def watched_rate(config, dataset) -> tuple[float, list[float], float, float]:
    """steps/s of the same run watched, the snapshot latencies, and the shares of the run spent taking
    snapshots (training thread) and drawing them (consumer thread)."""
    app = Explorer(config, data=dataset, rest_lps_codes=0)  # at rest (before Start, after the end): not watched cost
    app.trainer.train_step()
    app.updates.seconds = 0.0
    taken_before = app.background.snapshot_seconds
    app.updates.latencies.clear()
    started = time.perf_counter()
    app.background.start()
    app.join()
    wall = time.perf_counter() - started
    rate = (app.trainer.step - 1) / wall
    shares = (app.background.snapshot_seconds - taken_before) / wall, app.updates.seconds / wall
    latencies = list(app.updates.latencies)
    app.close()
    return rate, latencies, *shares


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (growth of the peak bounds the growth of the memory held)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def memory_growth(config, dataset, seconds: float) -> tuple[float, float, int, int]:
    """Peak RSS (MB) after `WARM_S` and at the end of a watched run of ``seconds``, the steps done and the length
    of the loss history the last snapshot carried."""
    app = Explorer(dataclasses.replace(config, steps=10**8), data=dataset, rest_lps_codes=0)
    app.background.start()
    warm = min(WARM_S, seconds / 4)
    app.background.join(timeout=warm)  # trains on: this only waits
    start_rss = peak_rss_mb()
    app.background.join(timeout=seconds - warm)
    end_rss = peak_rss_mb()
    steps = app.trainer.step
    history = len(app.last_snapshot.history_steps) if app.last_snapshot else 0
    app.close()
    return start_rss, end_rss, steps, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--memory-seconds", type=float, default=120.0, help="length of the memory run (0: none)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.steps, args.memory_seconds = 1, 30, 4.0
    config = dataclasses.replace(DEFAULT_CONFIG, steps=args.steps)
    dataset = load_dataset(config.dataset, **config.dataset_options)
    headless, watched, ratios, latencies, steady, snapshot_share, draw_share = [], [], [], [], [], [], []
    for _ in range(args.rounds):
        headless.append(headless_rate(config, dataset))
        rate, lat, snap, draw = watched_rate(config, dataset)
        watched.append(rate)
        ratios.append(rate / headless[-1])
        latencies += lat
        steady += lat[1:]  # after the run's first drawing, which builds the loss figures
        snapshot_share.append(snap)
        draw_share.append(draw)
    rows = [{"run": "headless, main thread (reference)", "steps_per_s": statistics.median(headless), "ratio": 1.0},
            {"run": "watched (explorer, views at 4 Hz)", "steps_per_s": statistics.median(watched),
             "ratio": statistics.median(ratios), "target": 0.95}]
    shares = {"snapshots": statistics.median(snapshot_share), "drawing": statistics.median(draw_share)}
    latency = {name: {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                      "max_ms": float(ms.max()), "updates": len(ms)}
               for name, values in (("all", latencies), ("after each run's first", steady)) if values
               for ms in [np.asarray(values) * 1000]}
    memory = None
    if args.memory_seconds:
        start, end, steps, history = memory_growth(config, dataset, args.memory_seconds)
        span = args.memory_seconds - min(WARM_S, args.memory_seconds / 4)
        memory = {"seconds": args.memory_seconds, "steps": steps, "start_mb": start, "end_mb": end, "span_s": span,
                  "per_20_min_mb": (end - start) / span * 1200, "history_points": history}
    if args.json:
        print(json.dumps({"rows": rows, "time_share": shares, "latency": latency, "memory": memory}))
        return
    print(f"{config.dataset} {config.dataset_options}, {config.objective}, d = {config.latent_dim}, batch "
          f"{config.batch_size}, {torch.get_num_threads()} threads, median of {args.rounds} rounds x {args.steps} "
          "steps; ratio: median of the per-round ratios against the reference of the same round")
    print(f"| {'run':<36} | {'steps/s':>7} | {'ratio':>6} | target |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 8}|--------|")
    for r in rows:
        target = f">= {r['target']}" if "target" in r else ""
        print(f"| {r['run']:<36} | {r['steps_per_s']:>7.2f} | {r['ratio']:>6.3f} | {target:<7}|")
    print(f"watched run's time taking snapshots (training thread): {shares['snapshots']:.1%}; "
          f"drawing them (consumer thread): {shares['drawing']:.1%}")
    for name, m in latency.items():
        print(f"snapshot -> views ({name} updates): median {m['median_ms']:.0f} ms, p95 {m['p95_ms']:.0f} ms "
              f"(target < 200), max {m['max_ms']:.0f} ms over {m['updates']} updates")
    if memory is not None:
        m = memory
        print(f"memory, watched {m['seconds']:g} s ({m['steps']:,} steps): peak RSS {m['start_mb']:.0f} MB after "
              f"warm-up -> {m['end_mb']:.0f} MB ({m['end_mb'] - m['start_mb']:+.1f} MB over {m['span_s']:.0f} s; "
              f"{m['per_20_min_mb']:+.1f} MB per 20 min extrapolated linearly, target < 20); loss history "
              f"{m['history_points']} points (bounded)")


if __name__ == "__main__":
    main()
