"""What a run trains, built from its settings: the objective, given the facts of the run it declares (prior, latent
size, dataset size), and the model: the built-in one for the data's shape and value range, or the caller's own, with
its output bias at the data's means where it offers that start. Both are drawn with the run's seed, apart from the
global random stream, so the same settings build the same weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from explorer.data import Dataset, value_scale
from explorer.models import ModelConfig, build_model
from explorer.objectives import Objective, objective_class
from explorer.priors import Gaussian, from_dict
from explorer.settings import TrainConfig

CHECK_ITEMS = 4  # inputs one forward of a caller's model is checked on


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


def output_means(dataset: Dataset) -> torch.Tensor:
    """Mean input per channel of images [C], or per entry of vectors [D], over the items of `Dataset.sample`."""
    items = dataset.items(dataset.sample()).float()
    return items.mean(dim=(0, 2, 3) if dataset.is_images else 0) / value_scale(dataset.dtype)


def output_kind(dataset: Dataset) -> str:
    """The decoder's output the data needs: "sigmoid" for inputs in [0, 1], "linear" otherwise."""
    return "sigmoid" if dataset.unit_range else "linear"


def build_run(config: TrainConfig, dataset: Dataset, model: nn.Module | None = None) -> tuple[nn.Module, Objective]:
    """The run's model (``model`` if given, else the built-in one for the data) and objective, initialized with its
    seed (on the CPU); the model's output starts at the data's means when it has ``init_output_bias``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        objective = build_objective(config, dataset)
        if model is None:
            model = build_model(ModelConfig.for_run(config, dataset.shape, objective.needs_gaussian_encoder,
                                                    output_kind(dataset)))
    if objective.needs_gaussian_encoder and not callable(getattr(model, "posterior", None)):
        raise ValueError(f"the {config.objective!r} objective needs a Gaussian encoder: give the model a method "
                         "posterior(x) -> (mu, logvar), or choose a deterministic objective (ae, mmd, kld)")
    if callable(getattr(model, "init_output_bias", None)):
        model.init_output_bias(output_means(dataset))
    return model, objective


def model_facts(model: nn.Module, custom: dict[str, Any] | None, dataset: Dataset,
                objective: Objective) -> dict[str, Any]:
    """A checkpoint's ``model`` entry: the built-in model's facts, or for a caller's own model the data's shape,
    the objective's encoder, the data's output and ``custom`` (its builder and arguments)."""
    if custom is None:
        return model.config.facts()
    return {"shape": list(dataset.shape), "gaussian": objective.needs_gaussian_encoder,
            "output": output_kind(dataset), "custom": custom}


@torch.no_grad()
def check_model(model: nn.Module, dataset: Dataset, latent_dim: int, gaussian: bool) -> None:
    """One forward of ``model`` on a few inputs: a ValueError naming the method and what to change when the codes
    are not [n, latent_dim] or not finite, or the decoded output does not have the inputs' shape."""
    x = dataset.inputs(dataset.sample(CHECK_ITEMS))
    parts: dict[str, Any] = {"encode": model.encode(x)}
    if gaussian:
        mu, logvar = model.posterior(x)
        parts.update({"posterior's mu": mu, "posterior's logvar": logvar})
    for what, codes in parts.items():
        if not torch.is_tensor(codes) or tuple(codes.shape) != (len(x), latent_dim):
            found = tuple(codes.shape) if torch.is_tensor(codes) else type(codes).__name__
            raise ValueError(f"the model's {what} returned {found} for {len(x)} inputs of shape {dataset.shape}; it "
                             f"must return codes [n, latent_dim] = [{len(x)}, {latent_dim}]: set latent_dim to the "
                             "model's code size, or change the model")
        if not bool(torch.isfinite(codes).all()):
            raise ValueError(f"the model's {what} returned NaN or inf codes for finite inputs of {dataset.name!r}; "
                             "fix the model (its initialization or its operations) before training")
    out = model.decode(parts["encode"])
    if not torch.is_tensor(out) or tuple(out.shape) != tuple(x.shape):
        found = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"the model's decode returned {found} for codes of {len(x)} inputs of shape "
                         f"{tuple(x.shape)}; it must return the inputs' shape [n, *{dataset.shape}]")
