"""Static figures: the right panels, the prior's density or its samples, and the most dependent pair found."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import explorer
from explorer.paper import figures
from explorer.priors import Empirical, Uniform, standard_normal


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_the_most_dependent_pair_is_found_also_when_only_nonlinear():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 5))
    z[:, 3] = np.exp(z[:, 1]) + 0.1 * rng.standard_normal(2000)  # monotone, not linear
    assert figures.most_dependent_pair(z) == (1, 3)


def test_models_figure_has_a_covariance_and_a_marginal_per_dimension_for_each_model():
    rng = np.random.default_rng(0)
    codes = {"a": rng.standard_normal((500, 3)), "b": rng.uniform(-1, 1, (500, 3))}
    fig = figures.models_figure(codes, standard_normal(3))
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 and [ax.get_title() for ax in images] == ["a", "b"]
    density_lines = [ax for ax in fig.axes if ax.lines]
    assert len(density_lines) == 6  # the prior's N(0, 1) curve over every marginal


def test_a_prior_without_a_density_is_drawn_as_the_density_of_its_samples():
    codes = np.random.default_rng(1).standard_normal((300, 2))
    fig = figures.codes_figure(codes, Empirical(torch.from_numpy(codes)), "copy")
    marginals = [ax for ax in fig.axes if not ax.images and ax.patches]
    assert len(marginals) == 2 and all(len(ax.lines) == 1 for ax in marginals)
    x, y = marginals[0].lines[0].get_data()
    assert np.trapezoid(y, x) == pytest.approx(0.99, abs=0.02)  # a density, not counts
    assert np.abs(np.diff(y, 2)).max() < 0.01  # a smooth line, not a step histogram


def test_figures_read_on_github_and_positive_covariance_is_red():
    codes = np.random.default_rng(0).multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 2000)
    fig = figures.codes_figure(codes, standard_normal(2), "correlated")
    assert fig.dpi >= 110
    sizes = [t.get_fontsize() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert min(sizes) >= 9
    (image,) = [im for ax in fig.axes for im in ax.images]
    red, _, blue, _ = image.cmap(image.norm(0.9))
    assert red > 0.5 and blue < red / 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["codes", "prior"]


def test_traversals_figure_tiles_one_row_per_dimension_over_the_models_prior(tmp_path):
    from explorer.training import TrainConfig, Trainer

    prior = Uniform(3, -2.0, 2.0)
    config = TrainConfig(dataset="digits", latent_dim=3, steps=1, batch_size=8, prior=prior.to_dict(), depth=2,
                         checkpoint_every=0)
    Trainer(config, out=tmp_path / "run").run()
    trained = explorer.load(tmp_path / "run")
    fig = figures.traversals_figure({"m": trained}, {"m": np.zeros((4, 3), dtype=np.float32)})
    (image,) = fig.axes[0].images
    assert image.get_array().shape[:2] == (3 * 8, 7 * 8) and len(fig.axes[0].get_yticks()) == 3
    rows, columns = fig.axes[0].collections  # the lines between the tiles
    assert [segment[0][1] for segment in rows.get_segments()] == [7.5, 15.5]
    assert [segment[0][0] for segment in columns.get_segments()] == [8 * j - 0.5 for j in range(1, 7)]
