"""The line around the prior's densest region (`explorer.widgets.outline`) against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path

from explorer.widgets.outline import mass_outline

RNG = np.random.default_rng(0)


def share_inside(xs, ys, points: np.ndarray) -> float:
    inside = np.zeros(len(points), bool)
    for x, y in zip(xs, ys, strict=True):
        inside ^= Path(np.column_stack([x, y])).contains_points(points)
    return inside.mean()


def test_a_gaussians_outline_is_the_circle_holding_its_mass():
    (xs,), (ys,) = mass_outline(RNG.standard_normal((100_000, 2)), mass=0.9)
    assert np.hypot(xs, ys) == pytest.approx(np.sqrt(-2 * np.log(0.1)), rel=0.05)  # every vertex, not the mean
    assert share_inside([xs], [ys], RNG.standard_normal((100_000, 2))) == pytest.approx(0.9, abs=0.01)


def test_a_uniform_squares_outline_follows_its_edges_and_each_mode_of_a_mixture_gets_its_own():
    xs, ys = mass_outline(RNG.uniform(-1, 1, (100_000, 2)))
    assert len(xs) == 1 and 0.9 < np.abs(xs[0]).max() <= 1.0 and 0.9 < np.abs(ys[0]).max() <= 1.0
    modes = np.column_stack([RNG.choice([-10.0, 10.0], 100_000), np.zeros(100_000)]) + RNG.standard_normal((100_000, 2))
    xs, ys = mass_outline(modes)
    assert sorted(round(float(np.mean(x))) for x in xs) == [-10, 10]
    assert 0.88 < share_inside(xs, ys, modes) < 0.98  # a bandwidth set by the spread of both modes widens each


def test_too_few_points_or_no_extent_have_no_outline():
    assert mass_outline(RNG.standard_normal((99, 2))) == ([], [])
    assert mass_outline(np.column_stack([RNG.standard_normal(1000), np.zeros(1000)])) == ([], [])
