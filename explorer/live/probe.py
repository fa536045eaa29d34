"""The inputs the live views follow: a fixed probe set re-encoded in slices while training, drawn as pictures, and
the dataset's codes at rest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from explorer.data import Dataset
from explorer.live.source import LiveSource
from explorer.models import AutoEncoder

QUANTILE_VALUES = 2**20  # pixel values an image probe's range is measured on
STRIP_ROWS = 0.25  # a vector's strip is this many rows per feature (at least one): a readable band, not a line


def to_hwc_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images [..., C, H, W] in [0, 1] as uint8 [..., H, W, C]."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


class Picture:
    """How the views draw an input or a decoded output: images in [0, 1] (``unit_range``, which the dataset knows)
    as they are, other images scaled from the probe's range (1st to 99th percentile), and a vector as a grey strip
    of one cell per feature, each feature scaled from the probe's range of it, so that a reconstruction or a
    traversal reads as the same strip changing."""

    def __init__(self, inputs: torch.Tensor, unit_range: bool = False) -> None:
        self.vectors = inputs.ndim == 2
        if self.vectors:
            self.low, self.high = inputs.float().quantile(0.01, dim=0), inputs.float().quantile(0.99, dim=0)
        elif unit_range:
            self.low, self.high = torch.tensor(0.0), torch.tensor(1.0)
        else:  # every pixel value of the probe, thinned to a million (torch.quantile takes at most 2^24)
            values = inputs.float().flatten()
            values = values[:: max(1, values.numel() // QUANTILE_VALUES)]
            self.low, self.high = values.quantile(0.01), values.quantile(0.99)

    def __call__(self, values: torch.Tensor) -> np.ndarray:
        """uint8 [..., H, W, C] of inputs or outputs [..., *shape]."""
        scaled = (values.cpu().float() - self.low) / (self.high - self.low).clamp_min(1e-12)
        if self.vectors:
            rows = max(1, round(values.shape[-1] * STRIP_ROWS))
            scaled = scaled.unsqueeze(-2).unsqueeze(-3).expand(*scaled.shape[:-1], 1, rows, scaled.shape[-1])
        return to_hwc_uint8(scaled)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode and without gradients (dropout off, batch norm on its running statistics), its
    train / eval mode restored afterwards: the live views read a user's model between two of its training steps."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class Probe:
    """A fixed set of dataset images the live view follows: codes, reconstructions and traversals.

    `refresh` re-encodes ``part`` of the rows per call, round robin (all of them at the first call), so that a
    snapshot's cost stays small while training runs: a code is at most ``1 / part`` snapshots old.
    """

    def __init__(self, source: LiveSource, size: int = 512, seed: int = 0, part: float = 0.25) -> None:
        dataset = source.dataset
        size = min(size, len(dataset))
        self.index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
        self.inputs = dataset.inputs(self.index)  # kept on the CPU
        self.picture = Picture(self.inputs, dataset.unit_range)
        self.labels = None if dataset.labels is None else np.asarray(dataset.labels)[self.index.numpy()]
        self.factors = None if dataset.factors is None else np.asarray(dataset.factors)[self.index.numpy()]
        self.factor_names = dataset.factor_names
        self.chunk = max(1, round(size * part))
        self._codes: torch.Tensor | None = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, model: AutoEncoder, rows: slice = slice(None)) -> torch.Tensor:
        device = next(model.parameters()).device
        with evaluating(model):
            return model.encode(self.inputs[rows].to(device)).cpu()

    def refresh(self, model: AutoEncoder, everything: bool = False) -> torch.Tensor:
        """The probe's codes [n, d], with the next chunk of rows (or all of them) encoded by ``model`` now."""
        if self._codes is None or everything:
            self._codes, self._next = self.encode(model), 0
            return self._codes.clone()
        rows = slice(self._next, min(self._next + self.chunk, len(self)))
        self._codes[rows] = self.encode(model, rows)
        self._next = rows.stop % len(self)
        return self._codes.clone()

    def image_and_reconstruction(self, model: AutoEncoder, codes: torch.Tensor, row: int) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
        """Probe input ``row`` and its reconstruction from ``codes[row]``, as pictures uint8 [H, W, C]."""
        device = next(model.parameters()).device
        with evaluating(model):
            reconstruction = model.decode(codes[row : row + 1].to(device))
        return self.picture(self.inputs[row : row + 1])[0], self.picture(reconstruction)[0]


def rest_codes(model: AutoEncoder, dataset: Dataset, n: int) -> torch.Tensor:
    """Codes of min(n, len) dataset images drawn with seed 0: the rows `explorer.metrics.evaluate` encodes."""
    rows = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: min(n, len(dataset))]
    device = next(model.parameters()).device
    with evaluating(model):
        parts = [model.encode(dataset.inputs(part).to(device)).cpu()
                 for part in torch.split(rows.sort().values, 1024)]
    return torch.cat(parts)
