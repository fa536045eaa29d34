"""The inputs the live views follow: a fixed probe set re-encoded in slices while training, drawn as pictures, and
the dataset's codes at rest."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from explorer.data import Dataset
from explorer.live.source import LiveSource
from explorer.models import AutoEncoder

QUANTILE_VALUES = 2**20  # pixel values an image probe's range is measured on
SLICE_ROWS = 1024  # rows encoded at once: the most a live snapshot re-encodes, the step of the at-rest codes
PICTURE_ROWS = 512  # probe rows an image probe's pixel range is measured on
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
    """The dataset rows the live view follows, in one fixed random order: the first ``size`` rows (the probe) while
    training, more of the same order at rest (`RestCodes`), so that a code keeps its row and its colour.

    `refresh` re-encodes a slice of the probe per call, round robin (all of it at the first call): ``part`` of it,
    at most `SLICE_ROWS` rows, in a worker with a copy of the model, so that the run's owner trains on
    meanwhile (on a core training leaves idle) however many codes are shown. Inputs are read from the dataset when
    encoded, not kept: 10,000 colour images of 64 px would hold 0.5 GB.
    """

    def __init__(self, source: LiveSource, size: int = 512, seed: int = 0, part: float = 0.25) -> None:
        dataset = self.dataset = source.dataset
        self.order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
        self.index = self.order[: min(size, len(dataset))]
        self.picture = Picture(dataset.inputs(self.index[:PICTURE_ROWS]), dataset.unit_range)
        self.factor_names = dataset.factor_names
        self.chunk = max(1, min(SLICE_ROWS, round(len(self.index) * part)))
        self._codes: torch.Tensor | None = None
        self._next = 0
        self.slice_seconds = 0.0  # the worker's CPU time for the last slice (the snapshots' pace counts it)
        self._slice: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-probe")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray | None:
        """The probe rows' labels (None: the dataset has none)."""
        return self.colour_values("label", len(self)) if self.dataset.labels is not None else None

    @property
    def factors(self) -> np.ndarray | None:
        """The probe rows' ground-truth factors [n, k] (None: the dataset has none)."""
        return None if self.dataset.factors is None else np.asarray(self.dataset.factors)[self.index.numpy()]

    def colour_values(self, name: str, n: int) -> np.ndarray:
        """Label or factor ``name`` of the first ``n`` rows of the order, as floats (zeros for ``none``)."""
        rows = self.order[:n].numpy()
        if name == "label":
            return np.asarray(self.dataset.labels)[rows].astype(float)
        if name in self.factor_names:
            return np.asarray(self.dataset.factors)[rows, self.factor_names.index(name)].astype(float)
        return np.zeros(n)

    def inputs(self, rows: slice) -> torch.Tensor:
        """The inputs of rows ``rows`` of the order (the probe's are its first rows)."""
        return self.dataset.inputs(self.order[rows])

    def encode(self, model: AutoEncoder, rows: slice = slice(None)) -> torch.Tensor:
        """Codes of the probe's rows ``rows``."""
        start, stop, _ = rows.indices(len(self))
        return encode(model, self.inputs(slice(start, stop)))

    def refresh(self, model: AutoEncoder, everything: bool = False) -> torch.Tensor:
        """The probe's codes [n, d]. The first call, or ``everything``, encodes all of them now; later calls hand the
        next slice of rows to the worker with a copy of ``model`` as it is now (once it finished the last) and return
        the codes with every slice it has finished."""
        if self._codes is None or everything:
            self.settle()
            self._codes, self._next = self.encode(model), 0
            return self._codes.clone()
        if self._slice is None or self._slice.done():
            self.settle()  # a slice that failed fails the snapshot, as it would on the owner's thread
            rows = slice(self._next, min(self._next + self.chunk, len(self)))
            self._next = rows.stop % len(self)
            # the whole model copied, not only its weights: its forward may read other state (a flag, a temperature)
            self._slice = self._worker.submit(self._encode_slice, rows, copy.deepcopy(model))
        with self._lock:
            return self._codes.clone()

    def settle(self) -> None:
        """Wait for the slice the worker is encoding, if any (its error raised here)."""
        if self._slice is not None:
            self._slice.result()

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _encode_slice(self, rows: slice, model: AutoEncoder) -> None:
        started = time.thread_time()  # the CPU it takes from training: waiting for a busy core is not its cost
        codes = self.encode(model, rows)
        with self._lock:
            self._codes[rows] = codes
        self.slice_seconds = time.thread_time() - started

    def image_and_reconstruction(self, model: AutoEncoder, row: int,
                                 code: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input ``row`` of the order and its reconstruction from its ``code`` [d], as pictures uint8 [H, W, C]."""
        device = next(model.parameters()).device
        with evaluating(model):
            reconstruction = model.decode(torch.as_tensor(code, dtype=torch.float32)[None].to(device))
        return self.picture(self.inputs(slice(row, row + 1)))[0], self.picture(reconstruction)[0]

    def images(self, rows: Sequence[int]) -> np.ndarray:
        """Inputs of ``rows`` of the order as pictures uint8 [n, H, W, C]."""
        return self.picture(self.dataset.inputs(self.order[list(rows)]))


def encode(model: AutoEncoder, inputs: torch.Tensor) -> torch.Tensor:
    """``model``'s codes of ``inputs`` (on the CPU), in eval mode without gradients, `SLICE_ROWS` at a time."""
    device = next(model.parameters()).device
    with evaluating(model):
        return torch.cat([model.encode(part.to(device)).cpu() for part in torch.split(inputs, SLICE_ROWS)])


def rest_codes(model: AutoEncoder, dataset: Dataset, n: int) -> torch.Tensor:
    """Codes of min(n, len) dataset images drawn with seed 0: the rows `explorer.metrics.evaluate` encodes."""
    rows = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: min(n, len(dataset))]
    return torch.cat([encode(model, dataset.inputs(part)) for part in torch.split(rows.sort().values, SLICE_ROWS)])
