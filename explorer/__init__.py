"""explorer: see, and control, the latent space of autoencoders trained with programmable priors.

The engine: `explorer.priors` (programmable priors), `explorer.mmd` (the MMD penalty), `explorer.models`,
`explorer.objectives`, `explorer.data`, `explorer.training` and `explorer.load` for trained checkpoints.
The live tool: `explorer.Explorer` (ipywidgets + Bokeh); for a training loop of your own, `explorer.Monitor` and
the prior as a loss, `explorer.MMDPrior`. Each is imported on first use, so `import explorer` stays light.
"""

from typing import Any

from explorer.checkpoints import CheckpointError, TrainedModel, load
from explorer.versions import __version__

__all__ = ["CheckpointError", "Explorer", "MMDPrior", "Monitor", "TrainedModel", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name == "Explorer":
        from explorer.extras import require

        require("ipywidgets", "lab", "explorer.Explorer")
        from explorer.widgets import Explorer

        return Explorer
    if name == "Monitor":
        from explorer.live.monitor import Monitor

        return Monitor
    if name == "MMDPrior":
        from explorer.losses import MMDPrior

        return MMDPrior
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
