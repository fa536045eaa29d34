"""What the live view costs: steps/s of one run headless and with the explorer consuming snapshots.

Rounds alternate three ways of running the same training, in one process, on the explorer's default setting
(shapes 32x32, AE-MMD, d = 5, batch 64): headless on the main thread (as the command line runs it), headless on
a background thread with no view, and live (`Explorer`: background thread, snapshots, consumer at 4 Hz). The
table gives medians and the median per-round ratios; the live view's own cost is the ratio against the
background-thread run, and the time it spends taking and drawing snapshots is measured too. Latency is from a
snapshot being taken to every view holding its data. ``--soak-minutes`` then trains live for that long and
reports resident memory growth.

    python benchmarks/live_overhead.py                 # 5 rounds of 300 steps each way
    python benchmarks/live_overhead.py --soak-minutes 20
    python benchmarks/live_overhead.py --smoke         # seconds, for CI
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import threading
import time

import numpy as np
import psutil
import torch

from explorer.data import load_dataset
from explorer.training import Trainer
from explorer.widgets.app import DEFAULT_CONFIG, Explorer


def headless_rate(config, dataset, in_thread: bool = False) -> float:
    """steps/s of `Trainer.run` with no view, on the calling thread (as the CLI) or on a background thread."""
    trainer = Trainer(config, dataset=dataset)
    trainer.train_step()  # warm-up outside the clock
    started = time.perf_counter()
    if in_thread:
        thread = threading.Thread(target=trainer.run)
        thread.start()
        thread.join()
    else:
        trainer.run()
    return (trainer.step - 1) / (time.perf_counter() - started)


def live_rate(config, dataset) -> tuple[float, list[float], float, float]:
    """steps/s, latencies, and the fractions of the run spent taking snapshots and drawing them."""
    app = Explorer(config, dataset=dataset)
    app.trainer.train_step()
    app.background.snapshot_seconds = app.apply_seconds = 0.0
    started = time.perf_counter()
    app.background.start()
    app.join()
    wall = time.perf_counter() - started
    rate = (app.trainer.step - 1) / wall
    time.sleep(0.5)  # the consumer shows the last snapshot
    latencies = list(app.latencies)
    app.close()
    return rate, latencies, app.background.snapshot_seconds / wall, app.apply_seconds / wall


def soak(config, dataset, minutes: float) -> tuple[float, float, int]:
    """RSS (MB) after one warm minute and at the end of a live run of ``minutes``, and the steps done."""
    process = psutil.Process()
    app = Explorer(dataclasses.replace(config, steps=10**8), dataset=dataset)
    app.background.start()
    warm = min(60.0, minutes * 60 / 4)
    time.sleep(warm)
    start_rss = process.memory_info().rss / 2**20
    time.sleep(minutes * 60 - warm)
    end_rss = process.memory_info().rss / 2**20
    steps = app.trainer.step
    app.close()
    return start_rss, end_rss, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.steps = 1, 30
    config = dataclasses.replace(DEFAULT_CONFIG, steps=args.steps)
    dataset = load_dataset(config.dataset, **config.dataset_options)
    headless, threaded, live, ratios, thread_ratios = [], [], [], [], []
    latencies, snapshot_share, draw_share = [], [], []
    for _ in range(args.rounds):
        headless.append(headless_rate(config, dataset))
        threaded.append(headless_rate(config, dataset, in_thread=True))
        rate, lat, snap, draw = live_rate(config, dataset)
        live.append(rate)
        ratios.append(rate / headless[-1])
        thread_ratios.append(rate / threaded[-1])
        latencies += lat
        snapshot_share.append(snap)
        draw_share.append(draw)
    h, t, v = statistics.median(headless), statistics.median(threaded), statistics.median(live)
    print(f"{config.dataset} {config.dataset_options}, {config.objective}, d = {config.latent_dim}, batch "
          f"{config.batch_size}, {torch.get_num_threads()} threads, median of {args.rounds} rounds x {args.steps} "
          "steps")
    print("ratios: median of the per-round ratios")
    print(f"{'mode':<28}{'steps/s':>9}{'vs headless':>13}{'vs thread':>11}")
    print(f"{'headless, main thread (CLI)':<28}{h:>9.2f}{1.0:>13.3f}{'':>11}")
    print(f"{'headless, background thread':<28}{t:>9.2f}{statistics.median(threaded) / h:>13.3f}{1.0:>11.3f}")
    print(f"{'live (explorer, 4 Hz)':<28}{v:>9.2f}{statistics.median(ratios):>13.3f}"
          f"{statistics.median(thread_ratios):>11.3f}")
    print(f"live run time spent taking snapshots (training thread): {statistics.median(snapshot_share):.1%}; "
          f"drawing them (consumer thread): {statistics.median(draw_share):.1%}")
    if latencies:
        ms = np.asarray(latencies) * 1000
        print(f"snapshot -> views updated: median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
              f"max {ms.max():.0f} ms over {len(ms)} updates")
    if args.soak_minutes:
        start, end, steps = soak(config, dataset, args.soak_minutes)
        print(f"soak {args.soak_minutes:g} min live ({steps:,} steps): RSS {start:.0f} MB after warm-up -> "
              f"{end:.0f} MB at the end ({end - start:+.0f} MB)")


if __name__ == "__main__":
    main()
