"""What a run trains, built from its settings: the objective, given the facts of the run it declares (prior, latent
size, dataset size), and the model for the dataset's images, with its output bias at the data's channel means.
Both are drawn with the run's seed, apart from the global random stream, so the same settings build the same
weights."""

from __future__ import annotations

import torch

from explorer.data import Dataset
from explorer.models import AutoEncoder, ModelConfig, build_model
from explorer.objectives import Objective, objective_class
from explorer.priors import Gaussian, from_dict
from explorer.settings import TrainConfig

MEAN_IMAGES = 2048  # images drawn (with a fixed seed) for the channel means


def build_objective(config: TrainConfig, dataset: Dataset) -> Objective:
    """The configured objective with the run's facts it declares and does not set itself."""
    cls = objective_class(config.objective)
    options = dict(config.objective_options)
    facts = {"latent_dim": lambda: config.latent_dim, "dataset_size": lambda: len(dataset)}
    for name in cls.facts():
        if name not in options and name in facts:
            options[name] = facts[name]()
    if cls.takes_prior:
        options["prior"] = Gaussian(config.latent_dim) if config.prior is None else from_dict(config.prior)
    return cls(**options)


def channel_means(dataset: Dataset, n: int = MEAN_IMAGES) -> torch.Tensor:
    """Mean intensity per channel, in [0, 1], of n images drawn with a fixed seed (not the run's generator); a
    ValueError if they hold NaN or inf, before any training."""
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n]
    means = dataset.images(index).float().mean(dim=(0, 2, 3)) / 255
    if not bool(torch.isfinite(means).all()):
        raise ValueError(f"the dataset {dataset.name!r} has NaN or inf pixel values (found among the images "
                         "sampled for the channel means); fix the data before training")
    return means


def build_run(config: TrainConfig, dataset: Dataset) -> tuple[AutoEncoder, Objective]:
    """The run's model and objective, initialized with its seed (on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        objective = build_objective(config, dataset)
        model = build_model(ModelConfig.for_run(config, dataset.image_shape,
                                                gaussian=objective.needs_gaussian_encoder))
    model.init_output_bias(channel_means(dataset))
    return model, objective
