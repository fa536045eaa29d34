"""Autoencoders: a fully convolutional, symmetric encoder/decoder pair (docs/method.md, "The objective") or an MLP.

Architecture (the paper states only "fully convolutional, symmetric" and the depth; the rest is our choice):
- Encoder: ``depth`` conv layers, kernel 4, stride 2, padding 1 (each halves H and W), SiLU after each, then a
  linear head from the flattened feature map to the code (2 d outputs, mu and logvar, for Gaussian encoders).
- Channels: layer i (0-based) has ``width * min(2**i, 2)`` channels, i.e. width, 2 width, 2 width, ... (capped
  at 2 width) so that a 32x32, d = 12 model stays under 2 MB of float32 weights (about 0.33 M parameters at
  width 32) and a CPU step at batch 512 stays affordable.
- Decoder: the mirror image: linear layer back to the last feature map, ConvTranspose2d (kernel 4, stride 2,
  padding 1) layers with SiLU, the last one to the image channels, then a sigmoid for data in [0, 1] (``output``
  "sigmoid") or nothing for data of any other range ("linear").
- No batch normalization: it couples the samples of a batch, so a code would depend on its batch-mates, which
  corrupts the batch statistics the MMD, AE-KLD and FactorVAE/beta-TCVAE estimators compare with the prior.
- Any image size and channel count: each side is zero-padded to a multiple of 2**max(depth, 4) (so 28x28 MNIST
  becomes 32x32 at every depth, 48 stays 48 at depth 4, 96x64 is 128x64 at depth 6) and the output is cropped back.
- Vectors [D], and images whose shorter side is under 16 px (the 8x8 sklearn digits): an MLP pair, ``depth``
  hidden layers (default 2) of ``4 * width`` units, SiLU.
Default conv depth: 4 when the shorter side is under 64 px, 6 from 64 px (the paper's MNIST/CIFAR-10 and
dSprites/XY settings at 28, 32 and 64 px); the deepest allowed halves the longer side down to one pixel.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from explorer.config import integer, option, optional, validate
from explorer.registry import Registry

MIN_CONV_SIDE = 16  # images with a shorter side use the MLP
MIN_PAD_DEPTH = 4  # sides are padded to a multiple of 2**max(depth, MIN_PAD_DEPTH): 28 -> 32, as the paper's MNIST
DEEP_SIDE = 64  # the default conv depth is 6 from this shorter side on, 4 below it
MLP_DEPTH = 2
OUTPUTS = ("sigmoid", "linear")
MAX_WIDTH_MULTIPLIER = 2
MAX_SIZES = {"latent_dim": 4096, "width": 1024}  # beyond these a model would not fit in memory (a corrupt file)


# The model's sizes, declared once: `ModelConfig`'s fields and `explorer.settings.TrainConfig`'s settings are made
# from these (`size_option`), so a run's sizes are its TrainConfig's and nothing checks one copy against another.
SIZES: dict[str, dict[str, Any]] = {
    "latent_dim": {"default": 5, "help": "latent size d", "check": integer(1, MAX_SIZES["latent_dim"])},
    "depth": {"default": None, "check": optional(integer()),
              "help": "layers: stride-2 conv layers of an image model (default 4 below 64 px, 6 from 64 px); "
                      "hidden layers of the MLP of vectors and small images (default 2)"},
    "width": {"default": 32, "check": integer(1, MAX_SIZES["width"]),
              "help": "channels of the first conv layer (the next ones have 2 x width); the MLP's hidden layers "
                      "have 4 x width units"},
}
FACTS = ("shape", "gaussian", "output")  # what the data and the objective fix: a checkpoint's ``model`` entry


def size_option(name: str, **meta: Any) -> Any:
    """The dataclass field of the model size ``name`` (see `SIZES`); ``meta`` adds e.g. the command line's group."""
    return option(**SIZES[name], **meta)


@dataclass(frozen=True)
class ModelConfig:
    """What `build_model` needs; ``depth=None`` picks the default for the image size (module docstring).

    A run's model is `ModelConfig.for_run`: its sizes from the run's `TrainConfig`, the rest (`FACTS`) from the data
    and the objective.
    """

    shape: tuple[int, ...]
    latent_dim: int = size_option("latent_dim")
    depth: int | None = size_option("depth")
    width: int = size_option("width")
    gaussian: bool = False
    output: str = "sigmoid"

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) not in (1, 3) or min(shape, default=0) < 1:
            raise ValueError(f"ModelConfig: unsupported shape {shape}; expected an image (C, H, W) or a vector (D,)")
        if self.output not in OUTPUTS:
            raise ValueError(f"ModelConfig: output must be one of {OUTPUTS}, got {self.output!r}")
        validate(self)
        if self.depth is not None and not 1 <= int(self.depth) <= self.max_depth:
            raise ValueError(f"ModelConfig: depth must be in 1..{self.max_depth} for shape {shape}, got {self.depth}")

    @classmethod
    def for_run(cls, train: Any, shape: Sequence[int], gaussian: bool, output: str = "sigmoid") -> ModelConfig:
        """The model of a run: the sizes of ``train`` (a `TrainConfig` or its dict), the facts given."""
        sizes = {name: train[name] if isinstance(train, Mapping) else getattr(train, name) for name in SIZES}
        return cls(shape=tuple(shape), gaussian=gaussian, output=output, **sizes)

    def facts(self) -> dict[str, Any]:
        """What `for_run` takes besides the run's sizes (`FACTS`), JSON-ready."""
        return {"shape": list(self.shape), "gaussian": self.gaussian, "output": self.output}

    @property
    def is_conv(self) -> bool:
        return len(self.shape) == 3 and min(self.shape[1:]) >= MIN_CONV_SIDE

    @property
    def architecture(self) -> str:
        """The `MODELS` builder of this shape: "conv" or "mlp"."""
        return "conv" if self.is_conv else "mlp"

    @property
    def max_depth(self) -> int:
        """Conv: halvings until the longer side is one pixel; MLP: an arbitrary sanity bound on hidden layers."""
        return math.ceil(math.log2(max(self.shape[1:]))) if self.is_conv else 8

    @property
    def resolved_depth(self) -> int:
        if self.depth is not None:
            return int(self.depth)
        if not self.is_conv:
            return MLP_DEPTH
        return 6 if min(self.shape[1:]) >= DEEP_SIDE else 4

    @property
    def padded(self) -> tuple[int, int]:
        """(H, W) the conv stack sees: each side zero-padded to a multiple of 2**max(depth, MIN_PAD_DEPTH)."""
        step = 2 ** max(self.resolved_depth, MIN_PAD_DEPTH)
        return tuple(-(-side // step) * step for side in self.shape[1:])  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{**d, "shape": tuple(d["shape"])})


# builder name -> ``(config, head_dim) -> (encoder, decoder)``: the architectures `AutoEncoder` assembles
MODELS: Registry[Callable[[ModelConfig, int], tuple[nn.Module, nn.Module]]] = Registry("model")


def _channels(width: int, depth: int) -> list[int]:
    return [width * min(2**i, MAX_WIDTH_MULTIPLIER) for i in range(depth)]


@MODELS.register("conv")
def _conv_pair(config: ModelConfig, head_dim: int) -> tuple[nn.Module, nn.Module]:
    c, depth, d = config.shape[0], config.resolved_depth, config.latent_dim
    chans = _channels(config.width, depth)
    h, w = (side >> depth for side in config.padded)
    flat = chans[-1] * h * w
    enc: list[nn.Module] = []
    for c_in, c_out in zip([c, *chans[:-1]], chans, strict=True):
        enc += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
    encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, head_dim))
    dec: list[nn.Module] = [nn.Linear(d, flat), nn.SiLU(), nn.Unflatten(1, (chans[-1], h, w))]
    outs = [*chans[-2::-1], c]
    for i, (c_in, c_out) in enumerate(zip(chans[::-1], outs, strict=True)):
        dec.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        dec.append(nn.SiLU() if i < depth - 1 else _output(config))
    return encoder, nn.Sequential(*dec)


def _output(config: ModelConfig) -> nn.Module:
    """The decoder's last activation: a sigmoid for data in [0, 1], none otherwise (no weights either way, so the
    weights' names do not depend on it)."""
    return nn.Sigmoid() if config.output == "sigmoid" else nn.Identity()


@MODELS.register("mlp")
def _mlp_pair(config: ModelConfig, head_dim: int) -> tuple[nn.Module, nn.Module]:
    pixels, hidden, depth = math.prod(config.shape), 4 * config.width, config.resolved_depth

    def mlp(n_in: int, n_out: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.SiLU()]
        return [*layers, nn.Linear(hidden, n_out)]

    encoder = nn.Sequential(nn.Flatten(), *mlp(pixels, head_dim))
    decoder = nn.Sequential(*mlp(config.latent_dim, pixels), _output(config), nn.Unflatten(1, config.shape))
    return encoder, decoder


class AutoEncoder(nn.Module):
    """Encoder/decoder pair; deterministic (code = mu) or Gaussian (posterior N(mu, exp(logvar)))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        head_dim = config.latent_dim * (2 if config.gaussian else 1)
        self.encoder, self.decoder = MODELS[config.architecture](config, head_dim)
        # F.pad's (left, right, top, bottom): half of each side's padding before, the rest after
        self._pad: tuple[int, ...] = ()
        if config.is_conv:
            (ph, pw), (h, w) = config.padded, config.shape[1:]
            self._pad = (((pw - w) // 2, pw - w - (pw - w) // 2, (ph - h) // 2, ph - h - (ph - h) // 2)
                         if (ph, pw) != (h, w) else ())

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(mu, logvar) of q(z|x) for inputs x [n, *shape]; logvar is None for deterministic encoders."""
        if tuple(x.shape[1:]) != self.config.shape or x.ndim != len(self.config.shape) + 1:
            raise ValueError(f"AutoEncoder: x must have shape [n, *{self.config.shape}], got {tuple(x.shape)}")
        if self._pad:
            x = F.pad(x, self._pad)
        h = self.encoder(x)
        if not self.config.gaussian:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The code used downstream: mu(x), [n, latent_dim]."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Inputs [n, *shape] (in [0, 1] for a sigmoid output) decoded from codes z [n, latent_dim]."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"AutoEncoder: z must have shape [n, {self.config.latent_dim}], got {tuple(z.shape)}"
            )
        out = self.decoder(z)
        if self._pad:
            left, right, top, bottom = self._pad
            out = out[:, :, top : out.shape[2] - bottom, left : out.shape[3] - right]
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def init_output_bias(self, means: Tensor) -> None:
        """Start the decoder at the data's means: ``means`` [C] per channel of images, or [D] per entry of vectors.

        The output layer's bias is set to logit(mean) for a sigmoid output, to the mean for a linear one. From the
        default zero bias (output 0.5 everywhere), a summed squared error on mostly dark images (MNIST) drives the
        sigmoid into saturation near 0 within the first steps, where its gradient vanishes and the reconstruction
        stops improving; starting at the mean keeps the sigmoid where it has a gradient."""
        last = [m for m in self.decoder if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
        start = torch.logit(means.clamp(1e-3, 1 - 1e-3)) if self.config.output == "sigmoid" else means
        start = start.to(last.bias)
        if isinstance(last, nn.ConvTranspose2d):
            last.bias.copy_(start)
        else:  # the MLP decoder's output is flat, channel-major
            last.bias.copy_(start.repeat_interleave(last.bias.numel() // start.numel()))


def build_model(config: ModelConfig) -> AutoEncoder:
    """The autoencoder described by ``config`` (freshly initialized with torch's global RNG)."""
    return AutoEncoder(config)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


BUILDER = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"  # "package.module:function"


def _function(builder: str, module: Any) -> Callable[..., nn.Module]:
    target: Any = module
    for part in builder.split(":")[1].split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise LookupError(f"the builder {builder!r} names nothing callable in {module.__name__}")
    return target


def built(builder: str, **args: Any) -> nn.Module:
    """The model ``builder`` ("package.module:function", imported here) returns for the JSON-ready ``args``, marked
    with both so that its checkpoints record how to build it again (`resolve_builder` finds it when loading)."""
    if not isinstance(builder, str) or not re.match(BUILDER, builder):
        raise ValueError(f"built: the builder must read 'package.module:function', got {builder!r}")
    try:
        json.dumps(args)
    except TypeError as error:
        raise ValueError(f"built: the builder's arguments must be JSON-ready (they go in the checkpoint): {error}") \
            from None
    model = _function(builder, importlib.import_module(builder.split(":")[0]))(**args)
    if not isinstance(model, nn.Module):
        raise ValueError(f"built: {builder} returned a {type(model).__name__}, not a torch.nn.Module")
    model.explorer_builder = {"builder": builder, "args": dict(args)}
    return model


def resolve_builder(builder: str, args: dict[str, Any]) -> nn.Module:
    """The model a checkpoint's ``builder`` and ``args`` describe, built only from a module already imported (loading
    never imports code by itself); a LookupError saying how to make it resolvable otherwise."""
    module = sys.modules.get(builder.split(":")[0])
    if module is None:
        raise LookupError(f"the model's builder {builder!r} is in a module that is not imported; import "
                          f"{builder.split(':')[0]} first, or name it with plugins=[...] (CLI: --plugin), or pass "
                          "the model itself (model=...)")
    model = _function(builder, module)(**args)
    model.explorer_builder = {"builder": builder, "args": dict(args)}
    return model


class Pair(nn.Module):
    """A caller's encoder and decoder as one model: ``encode`` is the encoder, ``decode`` the decoder."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def as_model(model: Any) -> nn.Module:
    """A caller's model: an `nn.Module` with ``encode(x)`` and ``decode(z)`` (and ``posterior(x) -> (mu, logvar)``
    for the Gaussian-encoder objectives), or an (encoder, decoder) pair of modules, wrapped in a `Pair`."""
    if isinstance(model, (tuple, list)) and len(model) == 2 and all(isinstance(m, nn.Module) for m in model):
        return Pair(*model)
    if not isinstance(model, nn.Module) or not all(callable(getattr(model, m, None)) for m in ("encode", "decode")):
        raise ValueError(f"model must be a torch.nn.Module with encode(x) and decode(z) methods, or an (encoder, "
                         f"decoder) pair of modules; got {type(model).__name__}")
    return model
