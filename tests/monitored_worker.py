"""Run by tests/test_distributed.py under ``torchrun``: a user's own data-parallel loop (not explorer's Trainer)
with a `Monitor` on every rank; rank 0 writes the snapshot files, the others' monitors do nothing.

    python -m torch.distributed.run --nproc_per_node 2 tests/monitored_worker.py OUT_DIR STEPS
"""

from __future__ import annotations

import sys

import torch
from torch import distributed as dist

from explorer import distributed
from explorer.data import load_dataset
from explorer.live.monitor import Monitor
from explorer.losses import MMDPrior
from explorer.priors import Gaussian
from tests.helpers import TinyAE


def main(out: str, steps: str) -> None:
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    try:
        torch.manual_seed(0)  # the same initial weights on every rank
        data = load_dataset("digits")
        model = TinyAE(data.shape)
        mmd_prior = MMDPrior(Gaussian(3))  # the codes of every rank, gathered: the global batch's MMD
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        monitor = Monitor(model, data, loss=mmd_prior, probe_size=64, total_steps=int(steps), out=out,
                          snapshot_every=5)
        with monitor:
            for step in range(1, int(steps) + 1):
                seed = step * distributed.world_size() + distributed.rank()
                x = data.inputs(torch.randint(len(data), (16,), generator=torch.Generator().manual_seed(seed)))
                recon = (model.decode(z := model.encode(x)) - x).square().flatten(1).sum(1).mean()
                loss = recon + mmd_prior(z)
                optimizer.zero_grad()
                loss.backward()
                for p in model.parameters():  # the user's own data parallelism: average the gradients
                    dist.all_reduce(p.grad)
                    p.grad /= distributed.world_size()
                optimizer.step()
                monitor.step(step, loss=loss, recon=recon)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
