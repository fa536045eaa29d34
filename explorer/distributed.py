"""Several processes (``torchrun``), one training run: the small amount of rank awareness `Trainer` needs.

The run is the same `Trainer` on every rank, wrapped in DistributedDataParallel (DDP). What makes N processes
with ``b`` samples each train exactly like one process with ``N * b`` (``TrainConfig.batch_size`` is that global
batch):
- every rank holds the same random generator (same seed, same draws), draws the same global batch indices and
  prior sample, and takes its own disjoint slice ``[rank * b, (rank + 1) * b)`` of the indices;
- per-sample means (the reconstruction) are local means: DDP averages the gradients over ranks, and the average
  of N equal-size local means is the global mean;
- batch-level penalties (MMD, AE-KLD) are computed on the codes gathered from every rank with `gather`, an
  all-gather that carries gradients. Every rank computes the same penalty; the backward of the gather *sums* the
  N ranks' gradients into each rank's own codes (N times the single-process gradient), and DDP's average divides
  by N again: the global-batch gradient, counted once.
The gather runs on its own process group, so its collectives never interleave with DDP's gradient all-reduce.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

_GATHER_GROUP: Any = None


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its environment names a world of ranks)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def is_active() -> bool:
    """Whether a process group of more than one rank is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes checkpoints and logs (rank 0)."""
    return rank() == 0


def local_rank() -> int:
    """The rank within this machine (``LOCAL_RANK`` set by torchrun; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: str = "cpu", timeout_s: float = 600.0) -> bool:
    """Join the process group described by torchrun's environment; no-op (False) outside torchrun.

    Backend: NCCL when ``device`` is a CUDA device (each rank then uses ``cuda:LOCAL_RANK``), gloo otherwise.
    """
    global _GATHER_GROUP
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RuntimeError("torchrun started this process, but this PyTorch build has no torch.distributed")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    _GATHER_GROUP = dist.new_group(backend="nccl" if cuda else "gloo")
    return True


def shutdown(wait: bool = True) -> None:
    """Leave the process group, after a barrier if ``wait`` (so no rank exits while rank 0 still writes)."""
    global _GATHER_GROUP
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
    _GATHER_GROUP = None


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums every rank's gradient and returns this rank's rows.

    A plain all-reduce of the (small) code gradient: supported by every backend (gloo has no reduce-scatter).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Any) -> Tensor:
        ctx.group, ctx.rows = group, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = dist.get_rank(ctx.group) * ctx.rows
        return grad[start : start + ctx.rows], None


def gather(x: Tensor) -> Tensor:
    """The rows of ``x`` from every rank, concatenated in rank order; gradients flow back to each rank's rows.

    Identity without a process group. The backward sums all ranks' gradients (see the module docstring); every
    rank must pass the same number of rows.
    """
    if not is_active():
        return x
    return _GatherRows.apply(x, _GATHER_GROUP if _GATHER_GROUP is not None else dist.group.WORLD)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over ranks (one all-reduce); the values themselves without a process group."""
    if not is_active() or not values:
        return values
    packed = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= world_size()
    return dict(zip(values, packed.tolist(), strict=True))


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
