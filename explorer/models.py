"""Autoencoders: a fully convolutional, symmetric encoder/decoder pair (docs/method.md, "The objective") or an MLP.

Architecture (the paper states only "fully convolutional, symmetric" and the depth; the rest is our choice):
- Encoder: ``depth`` conv layers, kernel 4, stride 2, padding 1 (each halves H and W), SiLU after each, then a
  linear head from the flattened feature map to the code (2 d outputs, mu and logvar, for Gaussian encoders).
- Channels: layer i (0-based) has ``width * min(2**i, 2)`` channels, i.e. width, 2 width, 2 width, ... (capped
  at 2 width) so that a 32x32, d = 12 model stays under 2 MB of float32 weights (about 0.33 M parameters at
  width 32) and a CPU step at batch 512 stays affordable.
- Decoder: the mirror image: linear layer back to the last feature map, ConvTranspose2d (kernel 4, stride 2,
  padding 1) layers with SiLU, the last one to the image channels, then a sigmoid (images in [0, 1]).
- No batch normalization: it couples the samples of a batch, so a code would depend on its batch-mates, which
  corrupts the batch statistics the MMD, AE-KLD and FactorVAE/beta-TCVAE estimators compare with the prior.
- 28x28 inputs (MNIST) are zero-padded to 32x32 and the output cropped back to 28x28.
- 8x8 inputs (sklearn digits): an MLP pair, ``depth`` hidden layers (default 2) of ``4 * width`` units, SiLU.
Default depth: 4 for 28x28 and 32x32, 6 for 64x64 (the paper's MNIST/CIFAR-10 and dSprites/XY settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from explorer.config import integer, option, optional, validate
from explorer.registry import Registry

CONV_SIZES = {28: 32, 32: 32, 64: 64}  # input side -> side the conv stack sees (28 is padded to 32)
MLP_SIZES = (8,)
DEFAULT_DEPTH = {8: 2, 28: 4, 32: 4, 64: 6}
CHANNELS = (1, 3)
MAX_WIDTH_MULTIPLIER = 2
MAX_SIZES = {"latent_dim": 4096, "width": 1024}  # beyond these a model would not fit in memory (a corrupt file)


# The model's sizes, declared once: `ModelConfig`'s fields and `explorer.settings.TrainConfig`'s settings are made
# from these (`size_option`), so a run's sizes are its TrainConfig's and nothing checks one copy against another.
SIZES: dict[str, dict[str, Any]] = {
    "latent_dim": {"default": 5, "help": "latent size d", "check": integer(1, MAX_SIZES["latent_dim"])},
    "depth": {"default": None, "check": optional(integer()),
              "help": "layers: stride-2 conv layers of an image model (default 4 at 28x28 and 32x32, 6 at 64x64); "
                      "hidden layers of the 8x8 MLP (default 2)"},
    "width": {"default": 32, "check": integer(1, MAX_SIZES["width"]),
              "help": "channels of the first conv layer (the next ones have 2 x width); the 8x8 MLP's hidden layers "
                      "have 4 x width units"},
}
FACTS = ("image_shape", "gaussian")  # what the data and the objective fix: a checkpoint's ``model`` entry


def size_option(name: str, **meta: Any) -> Any:
    """The dataclass field of the model size ``name`` (see `SIZES`); ``meta`` adds e.g. the command line's group."""
    return option(**SIZES[name], **meta)


@dataclass(frozen=True)
class ModelConfig:
    """What `build_model` needs; ``depth=None`` picks the default for the image size (module docstring).

    A run's model is `ModelConfig.for_run`: its sizes from the run's `TrainConfig`, the rest (`FACTS`) from the data
    and the objective.
    """

    image_shape: tuple[int, int, int]
    latent_dim: int = size_option("latent_dim")
    depth: int | None = size_option("depth")
    width: int = size_option("width")
    gaussian: bool = False

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        supported = sorted((*CONV_SIZES, *MLP_SIZES))
        if len(shape) != 3 or shape[0] not in CHANNELS or shape[1] != shape[2] or shape[1] not in supported:
            raise ValueError(
                f"ModelConfig: unsupported image_shape {shape}; expected (C, H, H) with C in {CHANNELS} "
                f"and H in {supported}"
            )
        validate(self)
        if self.depth is not None and not 1 <= int(self.depth) <= self.max_depth:
            raise ValueError(
                f"ModelConfig: depth must be in 1..{self.max_depth} for image_shape {shape}, got {self.depth}"
            )

    @classmethod
    def for_run(cls, train: Any, image_shape: Sequence[int], gaussian: bool) -> ModelConfig:
        """The model of a run: the sizes of ``train`` (a `TrainConfig` or its dict), the facts given."""
        sizes = {name: train[name] if isinstance(train, Mapping) else getattr(train, name) for name in SIZES}
        return cls(image_shape=tuple(image_shape), gaussian=gaussian, **sizes)

    def facts(self) -> dict[str, Any]:
        """What `for_run` takes besides the run's sizes (`FACTS`), JSON-ready."""
        return {"image_shape": list(self.image_shape), "gaussian": self.gaussian}

    @property
    def is_conv(self) -> bool:
        return self.image_shape[1] in CONV_SIZES

    @property
    def architecture(self) -> str:
        """The `MODELS` builder of this image size: "conv" or "mlp"."""
        return "conv" if self.is_conv else "mlp"

    @property
    def max_depth(self) -> int:
        """Conv: halvings until 1x1; MLP: an arbitrary sanity bound on hidden layers."""
        return CONV_SIZES[self.image_shape[1]].bit_length() - 1 if self.is_conv else 8

    @property
    def resolved_depth(self) -> int:
        return DEFAULT_DEPTH[self.image_shape[1]] if self.depth is None else int(self.depth)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_shape"] = list(self.image_shape)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{**d, "image_shape": tuple(d["image_shape"])})


# builder name -> ``(config, head_dim) -> (encoder, decoder)``: the architectures `AutoEncoder` assembles
MODELS: Registry[Callable[[ModelConfig, int], tuple[nn.Module, nn.Module]]] = Registry("model")


def _channels(width: int, depth: int) -> list[int]:
    return [width * min(2**i, MAX_WIDTH_MULTIPLIER) for i in range(depth)]


@MODELS.register("conv")
def _conv_pair(config: ModelConfig, head_dim: int) -> tuple[nn.Module, nn.Module]:
    c, depth, d = config.image_shape[0], config.resolved_depth, config.latent_dim
    chans = _channels(config.width, depth)
    side = CONV_SIZES[config.image_shape[1]] >> depth
    flat = chans[-1] * side * side
    enc: list[nn.Module] = []
    for c_in, c_out in zip([c, *chans[:-1]], chans, strict=True):
        enc += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
    encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, head_dim))
    dec: list[nn.Module] = [nn.Linear(d, flat), nn.SiLU(), nn.Unflatten(1, (chans[-1], side, side))]
    outs = [*chans[-2::-1], c]
    for i, (c_in, c_out) in enumerate(zip(chans[::-1], outs, strict=True)):
        dec.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        dec.append(nn.SiLU() if i < depth - 1 else nn.Sigmoid())
    return encoder, nn.Sequential(*dec)


@MODELS.register("mlp")
def _mlp_pair(config: ModelConfig, head_dim: int) -> tuple[nn.Module, nn.Module]:
    c, h, w = config.image_shape
    pixels, hidden, depth = c * h * w, 4 * config.width, config.resolved_depth

    def mlp(n_in: int, n_out: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.SiLU()]
        return [*layers, nn.Linear(hidden, n_out)]

    encoder = nn.Sequential(nn.Flatten(), *mlp(pixels, head_dim))
    decoder = nn.Sequential(*mlp(config.latent_dim, pixels), nn.Sigmoid(), nn.Unflatten(1, (c, h, w)))
    return encoder, decoder


class AutoEncoder(nn.Module):
    """Encoder/decoder pair; deterministic (code = mu) or Gaussian (posterior N(mu, exp(logvar)))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        head_dim = config.latent_dim * (2 if config.gaussian else 1)
        self.encoder, self.decoder = MODELS[config.architecture](config, head_dim)
        side = config.image_shape[1]
        self._pad = (CONV_SIZES[side] - side) // 2 if config.is_conv else 0

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(mu, logvar) of q(z|x) for x [n, C, H, W] in [0, 1]; logvar is None for deterministic encoders."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.config.image_shape:
            raise ValueError(
                f"AutoEncoder: x must have shape [n, *{self.config.image_shape}], got {tuple(x.shape)}"
            )
        if self._pad:
            x = F.pad(x, (self._pad,) * 4)
        h = self.encoder(x)
        if not self.config.gaussian:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The code used downstream: mu(x), [n, latent_dim]."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1], [n, *image_shape], from codes z [n, latent_dim]."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"AutoEncoder: z must have shape [n, {self.config.latent_dim}], got {tuple(z.shape)}"
            )
        out = self.decoder(z)
        if self._pad:
            p = self._pad
            out = out[:, :, p:-p, p:-p]
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def init_output_bias(self, channel_means: Tensor) -> None:
        """Start the decoder at the data's mean intensity per channel (``channel_means`` [C] in (0, 1)).

        The output layer's bias is set to logit(mean). From the default zero bias (output 0.5 everywhere), a summed
        squared error on mostly dark images (MNIST) drives the sigmoid into saturation near 0 within the first
        steps, where its gradient vanishes and the reconstruction stops improving; starting at the mean keeps the
        sigmoid where it has a gradient."""
        last = [m for m in self.decoder if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
        logits = torch.logit(channel_means.clamp(1e-3, 1 - 1e-3)).to(last.bias)
        if isinstance(last, nn.ConvTranspose2d):
            last.bias.copy_(logits)
        else:  # the MLP decoder's output is flat [C * H * W], channel-major
            last.bias.copy_(logits.repeat_interleave(last.bias.numel() // logits.numel()))


def build_model(config: ModelConfig) -> AutoEncoder:
    """The autoencoder described by ``config`` (freshly initialized with torch's global RNG)."""
    return AutoEncoder(config)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
