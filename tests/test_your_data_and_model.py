"""Your data and your model: every kind of input trains, checkpoints and reloads; a model of your own trains
under every objective it can serve; bad inputs each give one message, before any training, and lose no file."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

import explorer
from explorer.checkpoints import CheckpointError
from explorer.data import as_dataset
from explorer.models import ModelConfig, build_model, built
from explorer.objectives import OBJECTIVES, objective_class
from explorer.training import Trainer
from tests.helpers import small_config

STEPS = dict(steps=3, batch_size=16, checkpoint_every=0, width=4)


class _Labelled(torch.utils.data.Dataset):
    """A torch Dataset of float vectors whose items carry a label."""

    def __init__(self, n: int = 40, d: int = 6) -> None:
        self.x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)) * 3
        self.y = torch.arange(n) % 4

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _images(n: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))
    return (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)


INPUTS = {
    "torch Dataset with labels": lambda: _Labelled(),
    "torch Dataset of tensors": lambda: torch.utils.data.TensorDataset(_images(24, (1, 16, 16), torch.float32)),
    "uint8 tensor 48 px": lambda: _images(24, (3, 48, 48), torch.uint8),
    "float ndarray 96 x 64, one channel": lambda: _images(24, (96, 64), torch.float32).numpy(),
    "float vectors outside [0, 1]": lambda: torch.randn(30, 5) * 10 + 3,
    "uint8 ndarray vectors": lambda: _images(30, (7,), torch.uint8).numpy(),
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_input_kind_trains_checkpoints_reloads_encodes_and_opens_in_the_explorer(kind, tmp_path):
    data = INPUTS[kind]()
    trainer = Trainer(small_config(**STEPS), data=data, out=tmp_path / "run")
    trainer.run()
    trained = explorer.load(tmp_path / "run")
    shape = trainer.dataset.shape
    assert trained.config["data"]["shape"] == list(shape) and not trained.config["data"]["registered"]
    stored = trainer.dataset.items(torch.arange(5))
    codes = trained.encode(stored)
    assert codes.shape == (5, 3) and torch.isfinite(codes).all()
    assert trained.decode(codes).shape == (5, *shape)
    with torch.no_grad():
        torch.testing.assert_close(codes, trainer.model.eval().encode(trainer.dataset.inputs(torch.arange(5))))
    # it continues when the data is passed again, and only then
    with pytest.raises(CheckpointError, match="pass it again"):
        Trainer.resume(tmp_path / "run")
    with pytest.raises(CheckpointError, match="pass that data yourself"):
        trained.load_dataset()
    resumed = Trainer.resume(tmp_path / "run", data=data, steps=4)
    assert resumed.step == 3
    app = explorer.Explorer(trainer=resumed, refresh_hz=None)  # and opens in the explorer, the views filled
    try:
        assert app.last_snapshot.codes.shape == (len(trainer.dataset), 3) and app.last_snapshot.step == 3
    finally:
        app.close()


def test_the_decoder_output_follows_the_value_range():
    unit = Trainer(small_config(**STEPS), data=_images(20, (1, 16, 16), torch.float32))
    wide = Trainer(small_config(**STEPS), data=torch.randn(20, 4) * 10 + 3)
    assert unit.model.config.output == "sigmoid" and wide.model.config.output == "linear"
    with torch.no_grad():  # the linear output starts at the data's means
        start = wide.model.decode(torch.zeros(1, 3))[0]
    torch.testing.assert_close(start, wide.dataset.inputs(torch.arange(20)).mean(0), atol=1.5, rtol=0)


def test_labels_and_factors_are_kept():
    ds = as_dataset(_Labelled())
    assert ds.labels.tolist()[:5] == [0, 1, 2, 3, 0] and ds.factors is None
    x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    mine = as_dataset(x, name="mine", factors=np.ones((10, 2)), factor_names=("a", "b"))
    assert mine.factors.shape == (10, 2) and mine.factor_names == ("a", "b") and mine.labels is None


@pytest.mark.parametrize(("shape", "padded"), [((1, 28, 28), (32, 32)), ((3, 48, 48), (48, 48)),
                                               ((1, 96, 64), (128, 64)), ((2, 128, 128), (128, 128))])
def test_the_conv_pair_takes_any_image_size(shape, padded):
    model = build_model(ModelConfig(shape, 3, width=4))
    assert model.config.padded == padded
    x = torch.rand(2, *shape)
    assert model.encode(x).shape == (2, 3) and model(x).shape == (2, *shape)


def test_the_default_depths_of_todays_sizes_stay_and_larger_images_go_deeper():
    depths = {side: ModelConfig((1, side, side), 3).resolved_depth for side in (8, 28, 32, 48, 64, 128)}
    assert depths == {8: 2, 28: 4, 32: 4, 48: 4, 64: 6, 128: 6}
    assert ModelConfig((5,), 3).architecture == "mlp" and ModelConfig((1, 96, 64), 3).resolved_depth == 6


# ------------------------------------------------------------------ your own model


class Tiny(nn.Module):
    """A small MLP with encode, decode and (``gaussian``) posterior, for vectors of length ``d``."""

    def __init__(self, d: int = 6, latent: int = 3, gaussian: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 16), nn.SiLU(), nn.Linear(16, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 16), nn.SiLU(), nn.Linear(16, d))
        if not gaussian:
            self.posterior = None

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).chunk(2, dim=1)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def tiny(d: int = 6, latent: int = 3) -> Tiny:
    return Tiny(d, latent)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_your_model_trains_under_every_objective(objective):
    options = {"lam": 0.1} if objective == "mmd" else {}
    config = small_config(objective=objective, objective_options=options, prior=None, **STEPS)
    trainer = Trainer(config, data=_Labelled(), model=Tiny())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_the_explorer_trains_your_model_and_a_new_run_starts_it_again_from_the_weights_passed():
    model = Tiny()
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    app = explorer.Explorer(small_config(**STEPS), data=_Labelled(), model=model, refresh_hz=None)
    try:
        assert app.trainer.model is model  # the user's own object trains
        app.panel.start.click()
        app.join(timeout=60)
        assert any(not torch.equal(initial[name], value) for name, value in model.state_dict().items())
        app.panel.lr.value = 3e-3  # a new setting: Start makes a new run
        app.panel.start.click()
        app.join(timeout=60)
        again = app.trainer.model
        assert isinstance(again, Tiny) and again is not model and app.trainer.step == STEPS["steps"]
        assert app.trainer.config.lr == pytest.approx(3e-3, rel=0.01)
        fresh = Trainer(small_config(**STEPS, lr=3e-3), data=_Labelled(), model=Tiny())
        fresh.model.load_state_dict(initial)
        fresh.run()  # the same run from the weights passed: the same weights (training is deterministic)
        for name, value in again.state_dict().items():
            torch.testing.assert_close(value, fresh.model.state_dict()[name])
    finally:
        app.close()


def test_a_deterministic_model_is_refused_by_a_gaussian_objective_and_serves_the_others():
    gaussian = sorted(name for name, cls in OBJECTIVES.items() if cls.needs_gaussian_encoder)
    assert gaussian
    for name in gaussian:
        with pytest.raises(ValueError, match=f"the '{name}' objective needs a Gaussian encoder: give the model"):
            Trainer(small_config(objective=name, prior=None, **STEPS), data=_Labelled(), model=Tiny(gaussian=False))
    deterministic = next(n for n in OBJECTIVES if not objective_class(n).needs_gaussian_encoder)
    Trainer(small_config(objective=deterministic, prior=None, **STEPS), data=_Labelled(),
            model=Tiny(gaussian=False)).run()


def test_an_encoder_decoder_pair_trains_and_loads_with_the_model_passed(tmp_path):
    pair = (nn.Sequential(nn.Linear(6, 3)), nn.Sequential(nn.Linear(3, 6)))
    trainer = Trainer(small_config(**STEPS), data=_Labelled(), model=pair, out=tmp_path / "run")
    trainer.run()
    with pytest.raises(CheckpointError, match=r"saved without a builder; pass the model .*model=my_model"):
        explorer.load(tmp_path / "run")
    fresh = (nn.Sequential(nn.Linear(6, 3)), nn.Sequential(nn.Linear(3, 6)))
    trained = explorer.load(tmp_path / "run", model=fresh)
    x = _Labelled().x[:4]
    torch.testing.assert_close(trained.encode(x), trainer.model.encode(x).detach())


def test_a_built_model_reloads_by_its_builder_only_from_an_imported_module(tmp_path):
    module = types.ModuleType("yourmodels")
    module.tiny = tiny
    sys.modules["yourmodels"] = module
    try:
        model = built("yourmodels:tiny", d=6, latent=3)
        Trainer(small_config(**STEPS), data=_Labelled(), model=model, out=tmp_path / "run").run()
        assert explorer.load(tmp_path / "run").encode(_Labelled().x[:2]).shape == (2, 3)
        assert Trainer.resume(tmp_path / "run", data=_Labelled(), steps=4).step == 3
    finally:
        del sys.modules["yourmodels"]
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(CheckpointError, match=r"'yourmodels:tiny' is in a module that is not imported; import "
                                              r"yourmodels first, or name it with plugins="):
        explorer.load(tmp_path / "run")
    with pytest.raises(CheckpointError, match="plugin 'yourmodels' cannot be imported"):
        explorer.load(tmp_path / "run", plugins=["yourmodels"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == files


# ------------------------------------------------------------------ bad inputs


class _Wrong(Tiny):
    def __init__(self, fault: str) -> None:
        super().__init__(gaussian=False)
        self.fault = fault

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = super().encode(x)
        return {"shape": z[:, :2], "nan": z * float("nan")}.get(self.fault, z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = super().decode(z)
        return out[:, :4] if self.fault == "decode" else out


BAD = {
    "bool data": (lambda: torch.zeros(8, 4, dtype=torch.bool), None, "dtype torch.bool cannot train"),
    "int ndarray": (lambda: np.zeros((8, 4), dtype=np.int64), None, "dtype int64 cannot train .* pass uint8"),
    "complex data": (lambda: torch.zeros(8, 4, dtype=torch.complex64), None, "e.g. data.float()"),
    "NaN": (lambda: torch.tensor([[0.1, float("nan")]] * 8), None, "holds NaN or inf values .* replace or drop"),
    "inf": (lambda: torch.tensor([[0.1, float("inf")]] * 8), None, "holds NaN or inf values"),
    "items disagree": (lambda: [torch.zeros(3), torch.zeros(4)] * 4, None, "the items disagree"),
    "codes of the wrong size": (_Labelled, lambda: _Wrong("shape"), r"encode returned \(4, 2\) .* set latent_dim"),
    "non-finite codes": (_Labelled, lambda: _Wrong("nan"), "encode returned NaN or inf codes"),
    "decode's shape": (_Labelled, lambda: _Wrong("decode"), r"decode returned \(4, 4\) .* \[n, \*\(6,\)\]"),
    "not a model": (_Labelled, lambda: nn.Linear(6, 3), "with encode\\(x\\) and decode\\(z\\) methods"),
}


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.items[i]


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_refused_before_training_with_what_to_do(case, tmp_path):
    make_data, make_model, message = BAD[case]
    data = make_data()
    data = _ListDataset(data) if isinstance(data, list) else data
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=message):
        Trainer(small_config(**STEPS), data=data, model=make_model() if make_model else None, out=tmp_path / "run")
    assert [p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")] == ["notes.txt"]
