"""The paper's figures (matplotlib), for reproduction folders and notebooks that read well on GitHub: Figure 1
(covariance of the codes, each marginal against the prior's density), scatter plots of the most dependent pair of
dimensions over prior samples, and decoded traversals side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer.drawing import DPI, FONT, covariance, marginal, prior_sample
from explorer.live.traversals import TRAVERSAL_QUANTILES, traversal_grid, traversal_values
from explorer.priors import standard_normal
from explorer.style import CODE_COLOR, PRIOR_COLOR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from explorer.checkpoints import TrainedModel
    from explorer.priors import Prior


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def codes_figure(codes: np.ndarray, prior: Prior, title: str) -> Figure:
    """Figure 1 of the paper for one model: covariance, and each marginal against the prior's."""
    plt = _pyplot()
    d = codes.shape[1]
    cols = min(d, 6)
    rows = math.ceil(d / cols)
    fig = plt.figure(figsize=(3 + 1.8 * cols, max(3.0, 1.6 * rows)), layout="constrained", dpi=DPI)
    grid = fig.add_gridspec(rows, cols + 2)
    covariance(fig.add_subplot(grid[:, :2]), codes)
    reference = prior_sample(prior)
    for i in range(d):
        ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
        marginal(ax, codes[:, i], prior, i, reference)
        ax.set_title(f"z{i}", fontsize=FONT + 1)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper right", ncols=2, fontsize=FONT, frameon=False)
    fig.suptitle(title)
    return fig


def models_figure(codes: Mapping[str, np.ndarray], prior: Prior) -> Figure:
    """Figure 1 for several models, one row each: covariance heat map, then every marginal against the prior."""
    plt = _pyplot()
    d = next(iter(codes.values())).shape[1]
    # about 11 in for 12 dimensions: GitHub shows it at about 1,000 px, where FONT stays legible
    fig = plt.figure(figsize=(3.0 + 0.72 * d, 0.4 + 1.5 * len(codes)), layout="constrained", dpi=DPI)
    grid = fig.add_gridspec(len(codes), d + 2)
    reference = prior_sample(prior)
    for row, (label, z) in enumerate(codes.items()):
        covariance(fig.add_subplot(grid[row, :2]), z, label)
        for i in range(d):
            ax = fig.add_subplot(grid[row, 2 + i])
            marginal(ax, z[:, i], prior, i, reference)
            if row == 0:
                ax.set_title(f"z{i}", fontsize=FONT + 1)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper right", ncols=2, fontsize=FONT, frameon=False)
    return fig


def most_dependent_pair(codes: np.ndarray) -> tuple[int, int]:
    """The two dimensions with the largest absolute Spearman rank correlation."""
    from scipy.stats import spearmanr

    rho = np.abs(np.atleast_2d(spearmanr(codes).statistic))
    np.fill_diagonal(rho, -1)
    i, j = np.unravel_index(int(np.argmax(rho)), rho.shape)
    return (int(min(i, j)), int(max(i, j)))


def pairs_figure(codes: Mapping[str, np.ndarray], prior: Prior, n: int = 2000) -> Figure:
    """Per model, its most dependent pair of dimensions: ``n`` codes (blue) over as many prior samples (grey)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(codes), figsize=(2.3 * len(codes), 2.8), layout="constrained", squeeze=False,
                             dpi=DPI)
    reference = prior_sample(prior, n)
    for ax, (label, z) in zip(axes[0], codes.items(), strict=True):
        i, j = most_dependent_pair(z)
        ax.scatter(reference[:, i], reference[:, j], s=2, color=PRIOR_COLOR, alpha=0.5, label="prior")
        ax.scatter(z[:n, i], z[:n, j], s=2, color=CODE_COLOR, alpha=0.5, label="codes")
        ax.set_title(label, fontsize=FONT + 1)
        ax.set_xlabel(f"z{i}", fontsize=FONT)
        ax.set_ylabel(f"z{j}", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside upper right", ncols=2, fontsize=FONT,
               markerscale=4, frameon=False)
    return fig


def traversals_figure(models: Mapping[str, TrainedModel], codes: Mapping[str, np.ndarray]) -> Figure:
    """Per model, its decoded traversals side by side: row i varies z_i over the quantiles of the model's prior
    (N(0, 1) if it has none), the other dimensions held at the code of the first image (``codes[label][0]``).
    Thin lines frame the tiles, so that a change of position along a row reads as one."""
    plt = _pyplot()
    most = max(trained.latent_dim for trained in models.values())
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 0.55 * most + 0.8), layout="constrained",
                             squeeze=False, dpi=DPI)
    for ax, (label, trained) in zip(axes[0], models.items(), strict=True):
        values = traversal_values(prior_sample(trained.prior or standard_normal(trained.latent_dim)))
        grid = traversal_grid(trained.model, torch.from_numpy(codes[label][0]), values)  # [d, k, H, W, C]
        d, k, h, w, c = grid.shape
        ax.imshow(grid.transpose(0, 2, 1, 3, 4).reshape(d * h, k * w, c).squeeze(), cmap="gray", vmin=0, vmax=255)
        ax.hlines(np.arange(1, d) * h - 0.5, -0.5, k * w - 0.5, color="0.4", linewidth=0.6)
        ax.vlines(np.arange(1, k) * w - 0.5, -0.5, d * h - 0.5, color="0.4", linewidth=0.6)
        ax.set_yticks([h * (i + 0.5) for i in range(d)], [f"z{i}" for i in range(d)], fontsize=FONT)
        ax.set_xticks([w * (j + 0.5) for j in range(k)], [f"{q:.0%}" for q in TRAVERSAL_QUANTILES], fontsize=FONT)
        ax.set_xlabel("prior quantile of z_i", fontsize=FONT)
        ax.set_title(label, fontsize=FONT + 1)
    return fig
