import json

import pytest
import torch
from torch import nn

from explorer.models import AutoEncoder, ModelConfig, build_model, num_parameters

SHAPES = [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 64, 64)]


def _model(shape, d=5, gaussian=False, **kw) -> AutoEncoder:
    torch.manual_seed(0)
    return build_model(ModelConfig(shape, d, gaussian=gaussian, **kw))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gaussian", [False, True])
def test_shapes_and_output_range(shape, gaussian):
    model = _model(shape, gaussian=gaussian)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    mu, logvar = model.posterior(x)
    assert mu.shape == (3, 5)
    assert (logvar is None) == (not gaussian)
    if gaussian:
        assert logvar.shape == (3, 5)
    torch.testing.assert_close(model.encode(x), mu)
    out = model(x)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    far = model.decode(torch.full((2, 5), 1e4))
    assert far.shape == (2, *shape) and far.min() >= 0 and far.max() <= 1


def test_default_depths_match_the_paper():
    def stride2_convs(model):
        return sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in model.encoder.modules())

    assert stride2_convs(_model((1, 32, 32))) == 4
    assert stride2_convs(_model((1, 28, 28))) == 4
    assert stride2_convs(_model((3, 64, 64))) == 6
    assert stride2_convs(_model((3, 64, 64), depth=4)) == 4
    deconvs = sum(isinstance(m, nn.ConvTranspose2d) for m in _model((3, 64, 64)).decoder.modules())
    assert deconvs == 6
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in _model((3, 32, 32)).modules())


def test_samples_do_not_interact_within_a_batch():
    model = _model((3, 32, 32), gaussian=True)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(model.encode(x)[:1], model.encode(x[:1]), rtol=1e-5, atol=1e-6)


def test_mnist_padding_crops_back_consistently():
    model = _model((1, 28, 28))
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(3))
    full = model.decoder(z)  # the 32x32 decoder output before the crop
    torch.testing.assert_close(model.decode(z), full[:, :, 2:30, 2:30])


def test_gaussian_head_doubles_only_the_latent_outputs():
    det, gau = _model((3, 32, 32), d=12), _model((3, 32, 32), d=12, gaussian=True)
    head_in = det.encoder[-1].in_features
    assert num_parameters(gau) - num_parameters(det) == head_in * 12 + 12


def test_parameter_budget():
    model = _model((3, 32, 32), d=12)
    assert num_parameters(model) * 4 < 2_000_000
    assert num_parameters(_model((3, 64, 64), d=64)) * 4 < 4_000_000


def test_gradients_reach_every_parameter():
    model = _model((3, 64, 64), gaussian=True)
    x = torch.rand(2, 3, 64, 64)
    mu, logvar = model.posterior(x)
    (model.decode(mu).mean() + logvar.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_config_round_trip_through_json():
    config = ModelConfig([3, 64, 64], 10, depth=5, width=16, gaussian=True)
    assert config.shape == (3, 64, 64)
    back = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config and hash(back) == hash(config)
    assert ModelConfig.from_dict(ModelConfig((1, 8, 8), 2).to_dict()).resolved_depth == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (32, 32), "latent_dim": 4}, "shape"),
        ({"shape": (1, 0, 32), "latent_dim": 4}, "shape"),
        ({"shape": (1, 32, 32), "latent_dim": 4, "output": "tanh"}, "output"),
        ({"shape": (1, 32, 32), "latent_dim": 0}, "latent_dim"),
        ({"shape": (1, 32, 32), "latent_dim": 4, "depth": 6}, "depth"),
        ({"shape": (1, 32, 32), "latent_dim": 4, "width": 0}, "width"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_wrong_input_shapes_are_rejected():
    model = _model((1, 32, 32))
    with pytest.raises(ValueError, match="x must have shape"):
        model.encode(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(torch.rand(2, 4))


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (1, 8, 8)])
def test_output_bias_starts_the_decoder_at_the_channel_means(shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(shape=shape, latent_dim=4))
    means = torch.tensor([0.13, 0.5, 0.8][: shape[0]])
    model.init_output_bias(means)
    with torch.no_grad():
        out = model.decode(torch.randn(64, 4))
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), means, atol=0.05, rtol=0)
