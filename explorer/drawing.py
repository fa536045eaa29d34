"""Matplotlib drawing of codes against a prior, shared by the notebook's static picture of the explorer
(`explorer.widgets.static_view`) and the paper's figures (`explorer.paper.figures`): a covariance heat map, a
marginal against the prior's density, and the density of samples where a prior has none in closed form."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer.style import CODE_COLOR, DIVERGING, PRIOR_LINE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from explorer.priors import Prior

KERNEL_REACH = 5  # bandwidths beyond which a sample's kernel is taken as zero (exp(-12.5), 4e-6 of its peak)
REFERENCE_N = 20_000  # prior samples that set the histogram range and stand in for a density without closed form
DPI = 120  # stored figures read on GitHub at this resolution, with fonts of at least FONT points
FONT = 9


def sample_density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of 1-D ``samples`` on ``grid`` (Scott's bandwidth): a smooth line where a
    prior has no closed-form density, instead of a noisy histogram.

    The samples are shared between points a sixteenth of the bandwidth apart and smoothed with the kernel, so
    100,000 samples take milliseconds where summing the kernel over every sample and grid point took a second;
    binning moves the density by at most 0.1 % of its peak."""
    samples, grid = np.asarray(samples, dtype=np.float64), np.asarray(grid, dtype=np.float64)
    spread = float(samples.std()) or 1.0
    h = spread * len(samples) ** (-1 / 5)
    low, high = grid.min() - KERNEL_REACH * h, grid.max() + KERNEL_REACH * h
    bins = int(np.clip(np.ceil((high - low) / (h / 16)), 64, 1 << 16))
    centres, width = np.linspace(low, high, bins, retstep=True)
    inside = samples[(samples >= low) & (samples <= high)]
    position = (inside - low) / width
    left = np.minimum(position.astype(int), bins - 2)
    share = position - left  # each sample split between its two nearest centres: linear binning
    counts = np.bincount(left, 1 - share, bins) + np.bincount(left + 1, share, bins)
    reach = int(np.ceil(KERNEL_REACH * h / width))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) * width / h) ** 2)
    smoothed = np.convolve(counts, kernel)[reach:reach + bins]  # centred on the bins, whichever is longer
    return np.interp(grid, centres, smoothed) / (len(samples) * h * np.sqrt(2 * np.pi))


def diverging_cmap():
    """`explorer.style.DIVERGING` as a matplotlib colormap (red is positive)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("explorer-diverging", DIVERGING)


def prior_sample(prior: Prior, n: int = REFERENCE_N) -> np.ndarray:
    """``n`` samples of ``prior`` drawn with a fixed seed, as a NumPy array."""
    return prior.sample(n, torch.Generator().manual_seed(0)).numpy()


def covariance(ax: Axes, codes: np.ndarray, title: str = "covariance") -> None:
    """Heat map of the codes' covariance matrix, symmetric colour scale around 0."""
    cov = np.cov(codes, rowvar=False)
    scale = float(np.abs(cov).max()) or 1.0
    image = ax.imshow(cov, cmap=diverging_cmap(), vmin=-scale, vmax=scale)
    ax.figure.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    d = cov.shape[0]
    names = [f"z{i}" for i in range(d)] if d <= 8 else []  # beyond 8 the names crowd each other
    ax.set_xticks(range(len(names)), names, fontsize=FONT)
    ax.set_yticks(range(len(names)), names, fontsize=FONT)


def marginal(ax: Axes, values: np.ndarray, prior: Prior, i: int, reference: np.ndarray) -> None:
    """Histogram of one code dimension against the prior's marginal density (or its samples' density)."""
    from matplotlib.ticker import MaxNLocator

    low, high = np.percentile(np.concatenate([values, reference[:, i]]), [0.5, 99.5])
    x = np.linspace(low, high, 200)
    ax.hist(values, bins=40, range=(low, high), density=True, color=CODE_COLOR, alpha=0.7, label="codes")
    try:
        pdf = prior.marginal_pdf(i, torch.from_numpy(x)).numpy()
    except NotImplementedError:  # e.g. an Empirical prior: the density of its samples
        pdf = sample_density(reference[:, i], x)
    ax.plot(x, pdf, color=PRIOR_LINE, lw=1.2, label="prior")
    ax.tick_params(labelsize=FONT)
    ax.xaxis.set_major_locator(MaxNLocator(3))  # room for FONT-sized labels in a narrow panel
    ax.set_yticks([])


