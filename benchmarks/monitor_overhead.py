"""What a Monitor costs a loop of your own: steps/s of a plain PyTorch AE-MMD loop with the monitor attached and its
views consuming the snapshots, against the same loop without it.

The loop is the user's, not explorer's Trainer: a conv AE (explorer's ``build_model``, d = 5) on ``shapes`` at 32 px,
batch 64, Adam, ``recon + 2 * MMDPrior(z)``. Rounds alternate plain and monitored in one process; the monitored
loop runs on the main thread with ``Explorer.watch(monitor)`` at 4 Hz, whose consumer thread draws every view. The
table gives the median steps/s and the median of the per-round ratios against the plain loop of the same round
(target >= 0.95), and the share of the monitored loop's time spent in the monitor's snapshots.

    python benchmarks/monitor_overhead.py          # 5 rounds of 300 steps
    python benchmarks/monitor_overhead.py --smoke  # seconds, for CI
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from explorer.data import load_dataset
from explorer.live.monitor import Monitor
from explorer.losses import MMDPrior
from explorer.models import ModelConfig, build_model
from explorer.priors import standard_normal
from explorer.widgets.app import Explorer

LATENT_DIM, BATCH = 5, 64


def loop(data, steps: int, monitor_views: bool) -> tuple[float, float]:
    """steps/s of the user's loop (with a monitor and its views if ``monitor_views``), and the monitor's share."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(data.shape, latent_dim=LATENT_DIM))
    mmd_prior = MMDPrior(standard_normal(LATENT_DIM))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    monitor = app = None
    if monitor_views:
        monitor = Monitor(model, data, loss=mmd_prior, total_steps=steps)
        app = Explorer.watch(monitor, refresh_hz=4.0, rest_lps_codes=0)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        x = data.inputs(torch.randint(len(data), (BATCH,), generator=generator))
        z = model.encode(x)
        recon = (model.decode(z) - x).square().flatten(1).sum(1).mean()
        mmd = mmd_prior(z)
        loss = recon + 2.0 * mmd
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor is not None:
            monitor.step(step, loss=loss.detach(), recon=recon.detach(), mmd=mmd.detach())
    wall = time.perf_counter() - started
    share = 0.0
    if monitor is not None:
        share = monitor.snapshot_seconds / wall
        monitor.finish()
        app.close()
    return steps / wall, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.steps = 1, 30
    data = load_dataset("shapes", size=32)
    plain, monitored, ratios, shares = [], [], [], []
    for _ in range(args.rounds):
        plain.append(loop(data, args.steps, False)[0])
        rate, share = loop(data, args.steps, True)
        monitored.append(rate)
        ratios.append(rate / plain[-1])
        shares.append(share)
    rows = [{"run": "plain loop (reference)", "steps_per_s": statistics.median(plain), "ratio": 1.0},
            {"run": "with Monitor + Explorer.watch at 4 Hz", "steps_per_s": statistics.median(monitored),
             "ratio": statistics.median(ratios), "target": 0.95}]
    if args.json:
        print(json.dumps({"rows": rows, "snapshot_share": statistics.median(shares)}))
        return
    print(f"shapes 32 px, conv AE d = {LATENT_DIM}, batch {BATCH}, {torch.get_num_threads()} threads, median of "
          f"{args.rounds} rounds x {args.steps} steps; ratio: median of the per-round ratios")
    print(f"| {'run':<38} | {'steps/s':>7} | {'ratio':>6} | target |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 8}|--------|")
    for r in rows:
        target = f">= {r['target']}" if "target" in r else ""
        print(f"| {r['run']:<38} | {r['steps_per_s']:>7.2f} | {r['ratio']:>6.3f} | {target:<7}|")
    print(f"monitored loop's time taking snapshots: {statistics.median(shares):.1%}")


if __name__ == "__main__":
    main()
