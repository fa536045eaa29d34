"""One colour convention for the live views (Bokeh) and the static figures (matplotlib), so that a colour means
the same thing in the explorer, in the notebooks and in the README."""

from __future__ import annotations

# ColorBrewer RdBu, blue (negative) to red (positive): covariance and correlation maps, symmetric around 0
DIVERGING = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
             "#b2182b", "#67001f")
CODE_COLOR = "#1f77b4"  # the model's codes (aggregate posterior)
PRIOR_COLOR = "#9a9a9a"  # prior samples
PRIOR_LINE = "black"  # the prior's density
DRAW_COLOR = "crimson"  # what the user draws on the sketch pad
