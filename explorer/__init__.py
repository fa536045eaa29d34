"""explorer: see, and control, the latent space of autoencoders trained with programmable priors.

The engine: `explorer.priors` (programmable priors), `explorer.mmd` (the MMD penalty), `explorer.models`,
`explorer.objectives`, `explorer.data`, `explorer.training` and `explorer.load` for trained checkpoints.
"""

from explorer.checkpoints import CheckpointError, TrainedModel, load

__version__ = "0.1.0"
__all__ = ["CheckpointError", "TrainedModel", "__version__", "load"]
