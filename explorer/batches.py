"""Training batches without a DataLoader: a dataset that fits is held once, as stored, on the device and
indexed there; a larger one is read per batch. Under torchrun each rank takes its slice of the same global batch
indices, so the ranks together see what one process would."""

from __future__ import annotations

import torch

from explorer import distributed
from explorer.data import Dataset, as_inputs

RESIDENT_CHUNK = 4096  # items read at a time while the dataset is made resident


class Batches:
    """Batches of ``batch_size`` items of ``dataset`` (model inputs, float, on ``device``), the indices drawn with the
    generator the caller passes; ``resident``: the dataset held on the device (None when it exceeds
    ``resident_bytes``)."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, resident_bytes: int,
                 channels_last: bool = False) -> None:
        self.dataset, self.batch_size, self.device, self.channels_last = dataset, batch_size, device, channels_last
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.resident: torch.Tensor | None = None
        if dataset.nbytes <= resident_bytes:
            parts = [dataset.items(chunk) for chunk in torch.split(torch.arange(len(dataset)), RESIDENT_CHUNK)]
            self.resident = torch.cat(parts).to(device)

    def next(self, generator: torch.Generator) -> torch.Tensor:
        """This rank's part of the next global batch."""
        index = torch.randint(len(self.dataset), (self.batch_size,), generator=generator)
        local = self.batch_size // self.world_size
        index = index[self.rank * local : (self.rank + 1) * local]
        if self.resident is not None:
            items = self.resident[index.to(self.device, non_blocking=True)]
        else:
            items = self.dataset.items(index).to(self.device)
        x = as_inputs(items)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x
