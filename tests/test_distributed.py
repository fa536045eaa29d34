"""torchrun on the CPU (gloo): 2 processes with batch b train exactly like 1 process with batch 2 b, and resume."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import explorer
from explorer import distributed
from explorer.snapshot_files import SNAPSHOT_FILE
from explorer.training import TrainConfig, Trainer, check_distributed
from tests.helpers import TinyAE
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.distributed

# a tiny conv model on 256 procedural 32x32 images; batch_size is the global batch (16 per process)
BASE = TrainConfig(dataset="xy", dataset_options={"n": 256}, latent_dim=3, width=8, batch_size=32, lr=1e-3,
                   steps=1, seed=1)
CONFIGS = {
    # lam = 10 makes the MMD gradient a large part of the total, so a gradient counted once too few or too many
    # times (gather without summing, or summing without DDP's average) would be far outside the tolerance
    "mmd": dataclasses.replace(BASE, objective="mmd", objective_options={"lam": 10.0}),
    "mmd-unbiased-imq": dataclasses.replace(
        BASE, objective="mmd", objective_options={"lam": 10.0, "kernel": "imq", "estimator": "unbiased"}),
    "kld": dataclasses.replace(BASE, objective="kld", objective_options={"lam": 10.0}),
    "vae": dataclasses.replace(BASE, objective="vae"),
}
# Gradient tolerance relative to the largest gradient entry. AE-KLD's is looser because float32 cannot do better:
# at initialization the batch covariance is nearly singular, the per-sample gradients S^-1 (z_i - m) are large and
# cancel in the code layer's bias, and there the one-process float32 gradient itself is 8e-5 (relative) away from
# the float64 one (measured); the 2-process gradient is as far from it, in another rounding order.
GRAD_TOLERANCE = {"mmd": 1e-5, "mmd-unbiased-imq": 1e-5, "kld": 3e-4, "vae": 1e-5}


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node 2 ARGS`` on the CPU, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    paths = []
    for name, config in CONFIGS.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(config.to_dict()))
    result = torchrun("tests/distributed_worker.py", str(tmp_path), *map(str, paths))
    assert result.returncode == 0, result.stderr[-3000:]

    for i, (name, config) in enumerate(CONFIGS.items()):
        two = load_file(str(tmp_path / f"{i}.safetensors"))
        assert int(two["world_size"]) == 2
        one = Trainer(config)  # one process, the whole batch of 32
        terms = one.train_step()
        for key, value in terms.items():
            assert float(two[f"term.{key}"]) == pytest.approx(value, rel=1e-5, abs=1e-6), (name, key)
        for param, p in one.model.named_parameters():
            tolerance = GRAD_TOLERANCE[name]
            scale = float(p.grad.abs().max())
            torch.testing.assert_close(two[f"grad.{param}"], p.grad, rtol=tolerance, atol=tolerance * scale,
                                       msg=lambda m, name=name, param=param: f"{name} {param}: {m}")


def test_a_two_process_run_resumes_and_opens_in_the_explorer(tmp_path):
    out = tmp_path / "run"
    train = ["-m", "explorer", "train", "--dataset", "xy", "--dataset-option", "n=256", "--latent-dim", "3",
             "--width", "8", "--batch-size", "32", "--lr", "1e-3", "--seed", "1", "--checkpoint-every", "2",
             "--out", str(out)]
    first = torchrun(*train, "--steps", "4")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "on 2 processes" in first.stdout and first.stdout.count("trained 4 steps") == 1  # rank 0 prints
    assert explorer.load(out).step == 4
    second = torchrun("-m", "explorer", "train", "--out", str(out), "--resume", "--steps", "6")
    assert second.returncode == 0, second.stderr[-3000:]

    trained = explorer.load(out)
    assert trained.step == 6
    # one writer (rank 0): the sidecar, its files and the previous generation's (kept for readers), nothing else
    visible = sorted(p.name.rsplit("-", 1)[0] for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["checkpoint.json", "state-00000004", "state-00000006", "weights-00000004", "weights-00000006"]
    straight = Trainer(dataclasses.replace(CONFIGS["mmd"], objective_options={}, steps=6))
    straight.run()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(trained.model.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)

    app = explorer.Explorer.from_checkpoint(out, refresh_hz=None, probe_size=128)  # in one process
    try:
        assert app.trainer.step == 6 and app.trainer.world_size == 1
        assert app.last_snapshot.codes.shape == (128, 3)
        assert app.trainer.train_step()["loss"] > 0
    finally:
        app.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without a GPU")
def test_a_gpu_run_reopens_on_a_machine_without_one(tmp_path):
    trainer = Trainer(dataclasses.replace(BASE, steps=2))
    trainer.run()
    trainer.save(tmp_path / "run")
    meta_file = tmp_path / "run" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    meta["train"].update(device="cuda", precision="bf16", channels_last=True)  # as a GPU run would write it
    meta_file.write_text(json.dumps(meta))
    resumed = Trainer.resume(tmp_path / "run")
    assert resumed.device == torch.device("cpu") and resumed.config.precision == "bf16"
    assert resumed.train_step()["loss"] > 0
    assert explorer.load(tmp_path / "run").step == 2


def test_bad_settings_fail_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="divisible by the number of processes 2"):
        check_distributed(dataclasses.replace(BASE, batch_size=33), 2)
    for objective in ("factorvae", "beta-tcvae"):
        with pytest.raises(ValueError, match=f"the '{objective}' objective cannot train on several processes"):
            check_distributed(dataclasses.replace(BASE, objective=objective), 2)
    check_distributed(dataclasses.replace(BASE, batch_size=33, objective="factorvae"), 1)  # one process: fine

    result = torchrun("-m", "explorer", "train", "--dataset", "xy", "--dataset-option", "n=256",
                      "--batch-size", "33", "--steps", "2", "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "error: batch_size 33 (the global batch) must be divisible" in result.stderr
    assert not (tmp_path / "run").exists()


def test_without_a_process_group_the_helpers_are_one_process():
    assert not distributed.launched() or "RANK" in os.environ
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    x = torch.randn(4, 2)
    assert distributed.gather(x) is x
    assert distributed.mean_over_ranks({"loss": 1.5}, torch.device("cpu")) == {"loss": 1.5}
    assert distributed.init_from_env("cpu") is (False if not distributed.launched() else True)


def test_a_users_own_two_process_loop_with_a_monitor_on_rank_0_is_followed_live(tmp_path, digits):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "tests/monitored_worker.py", str(out), "1000000"]
    loop = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    app = None
    try:
        wait_until(lambda: (out / SNAPSHOT_FILE).exists() or loop.poll() is not None, timeout=120)
        assert loop.poll() is None, loop.stderr.read().decode()[-3000:]
        app = explorer.Explorer.follow(out, model=TinyAE(digits.shape), data=digits, poll_s=0.05,
                                       probe_size=64, refresh_hz=None)
        first = app.refresh(timeout=10)
        assert first.state == "following" and first.total_steps == 1_000_000 and first.step % 5 == 0
        wait_until(lambda: (app.refresh(timeout=1) or first).step > first.step, timeout=60)
        snapshot = app.last_snapshot
        assert set(snapshot.history) == {"loss", "recon"} and len(snapshot.codes) == 64
        assert app.panel.start.disabled and app.panel.save.disabled
    finally:
        if app is not None:
            app.close()
        loop.terminate()
        loop.wait(timeout=30)
