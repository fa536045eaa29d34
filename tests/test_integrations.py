"""The integrations (extra ``integrations``): the real Lightning and Hugging Face trainers report their steps to a
`Monitor` on a tiny model of the user's own, on the CPU, and end when Stop is pressed."""

from __future__ import annotations

import pytest
import torch

from explorer.live.monitor import Monitor
from explorer.losses import MMDPrior
from explorer.priors import Gaussian
from tests.helpers import TinyAE

lightning = pytest.importorskip("lightning")
transformers = pytest.importorskip("transformers")


class Images(torch.utils.data.Dataset):
    """The first 256 digits as dicts of float images, the shape both frameworks take."""

    def __init__(self, digits) -> None:
        self.x = digits.inputs(torch.arange(256))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i]}


class UserAE(TinyAE):
    """A user's AE-MMD whose forward returns its loss terms (what a Hugging Face model returns)."""

    def __init__(self, shape) -> None:
        super().__init__(shape)
        self.mmd_prior = MMDPrior(Gaussian(3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)
        recon = (self.decode(z) - x).square().flatten(1).sum(1).mean()
        mmd = self.mmd_prior(z)
        return {"loss": recon + mmd, "recon": recon, "mmd": mmd}


def test_lightning_callback_reports_each_batch_and_stop_ends_fitting(digits):
    from explorer.integrations.lightning import MonitorCallback

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.ae = UserAE(digits.shape)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.ae.encode(x)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return self.ae.decode(z)

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
            if batch_idx == 6:
                monitor.stop()  # as the views' Stop button does
            return self.ae(batch["x"])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    module = Module()
    monitor = Monitor(module, digits, loss=module.ae.mmd_prior, probe_size=32, total_steps=12)
    trainer = lightning.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[MonitorCallback(monitor)])
    trainer.fit(module, torch.utils.data.DataLoader(Images(digits), batch_size=16))
    snapshot = monitor.publish().result(timeout=10)
    assert trainer.global_step == 7 and snapshot.step == 7 and snapshot.state == "stopped"
    assert {"loss", "recon", "mmd"} <= set(snapshot.history) and list(snapshot.history_steps[-2:]) == [6, 7]
    monitor.close()


def test_hugging_face_callback_reports_each_step_with_the_logged_loss(digits, tmp_path):
    from explorer.integrations.huggingface import MonitorCallback

    model = UserAE(digits.shape)
    monitor = Monitor(model, digits, loss=model.mmd_prior, probe_size=32, total_steps=10)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=10, per_device_train_batch_size=16,
                                          logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                                          disable_tqdm=True, remove_unused_columns=False)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Images(digits),
                                   callbacks=[MonitorCallback(monitor)])
    trainer.train()
    snapshot = monitor.publish().result(timeout=10)
    assert snapshot.step == 10 and snapshot.state == "finished"
    assert "loss" in snapshot.history and snapshot.history_steps[-1] == 10
    logged = {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}
    shown = dict(zip(snapshot.history_steps.tolist(), snapshot.history["loss"].tolist(), strict=True))
    assert shown == pytest.approx(logged, abs=1e-4)  # each step with its own logged loss, none a step late
    assert model.training  # the monitor gave the model back in train mode
    monitor.close()
