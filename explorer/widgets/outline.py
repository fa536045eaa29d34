"""Where most of the prior's mass lies in a 2-D view, as lines drawn over the codes: at 100,000 codes the prior's own
points hide under the cloud, and a line stays visible over any cloud."""

from __future__ import annotations

import contourpy
import numpy as np
from scipy.ndimage import gaussian_filter

OUTLINE_MASS = 0.9
MIN_POINTS = 100  # fewer say too little about a density to outline it
BINS = 96


def mass_outline(points: np.ndarray, mass: float = OUTLINE_MASS, bins: int = BINS) -> tuple[list[np.ndarray],
                                                                                             list[np.ndarray]]:
    """The boundary of the densest region that holds ``mass`` of ``points`` (n x 2), its highest-density region,
    from a 2-D histogram smoothed with Scott's bandwidth: the x and the y coordinates of each of its lines (none
    for fewer than `MIN_POINTS` points or a view without extent)."""
    if len(points) < MIN_POINTS:
        return [], []
    low, high = np.percentile(points, [0.05, 99.95], axis=0)
    span = high - low
    if not np.all(span > 0):
        return [], []
    low, high = low - 0.15 * span, high + 0.15 * span  # room for the smoothed edge to fall to zero
    counts, x_edges, y_edges = np.histogram2d(points[:, 0], points[:, 1], bins=bins,
                                              range=[(low[0], high[0]), (low[1], high[1])])
    bandwidth = points.std(axis=0) * len(points) ** (-1 / 6)  # Scott's rule in two dimensions
    density = gaussian_filter(counts, sigma=bandwidth / ((high - low) / bins))
    ordered = np.sort(density.ravel())[::-1]
    level = ordered[np.searchsorted(np.cumsum(ordered), mass * ordered.sum())]
    centres = (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2
    lines = contourpy.contour_generator(*centres, density.T).lines(level)
    return [line[:, 0] for line in lines], [line[:, 1] for line in lines]
