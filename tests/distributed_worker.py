"""Run by tests/test_distributed.py under ``torchrun``: one training step per config; rank 0 writes the result.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT_DIR CONFIG.json...

For each config i, ``OUT_DIR/i.safetensors`` holds the step's loss terms (``term.*``, averaged over ranks as the
trainer reports them) and rank 0's gradients after DDP's all-reduce (``grad.*``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from explorer import distributed
from explorer.training import TrainConfig, Trainer


def main(out: str, *config_paths: str) -> None:
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    try:
        for i, path in enumerate(config_paths):
            trainer = Trainer(TrainConfig.from_dict(json.loads(Path(path).read_text())))
            values = trainer.train_step()
            if distributed.is_main():
                tensors = {f"grad.{name}": p.grad.contiguous() for name, p in trainer.model.named_parameters()}
                tensors.update({f"term.{k}": torch.tensor(v, dtype=torch.float64) for k, v in values.items()})
                tensors["world_size"] = torch.tensor(distributed.world_size())
                save_file(tensors, str(Path(out) / f"{i}.safetensors"))
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
