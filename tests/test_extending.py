"""Extending explorer from a user's module (tests/extension_example.py, no edit under explorer/): its objective
reaches ``train --help``, trains from the command line and shows in the training panel's dropdown; its prior family
shows in ``--prior``'s help and in the prior editor, whose generated sliders change the prior."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import ipywidgets as widgets
import pytest
import torch
from extension_example import CodeNormAE, Triangular

import explorer
from explorer.priors import Gaussian, Product
from explorer.training import TrainConfig
from explorer.widgets.prior_editor import PriorEditor
from explorer.widgets.training_panel import TrainingPanel

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]), "OMP_NUM_THREADS": "1"}


def explorer_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def test_the_plugins_objective_and_family_are_in_train_help():
    assert "l2-ae" not in explorer_cli("train", "--help").stdout  # not without the plugin
    shown = " ".join(explorer_cli("train", "--plugin", "extension_example", "--help").stdout.split())
    assert "l2-ae (L2-AE)" in shown
    assert "--rho RHO weight of the squared code norm (default: l2-ae 0.5)" in shown
    assert "triangular (center, width)" in shown


def test_the_plugins_objective_and_family_train_from_the_command_line(tmp_path):
    common = ["train", "--plugin", "extension_example", "--dataset", "xy", "--dataset-option", "n=64",
              "--latent-dim", "2", "--steps", "2", "--batch-size", "16"]
    result = explorer_cli(*common, "--objective", "l2-ae", "--rho", "0.2", "--out", str(tmp_path / "l2"))
    assert result.returncode == 0, result.stderr
    trained = explorer.load(tmp_path / "l2")
    train = trained.config["train"]
    assert trained.step == 2 and (train["objective"], train["objective_options"]) == ("l2-ae", {"rho": 0.2})
    assert trained.prior is None

    prior = Triangular(2, center=[0.0, 1.0], width=2.0)
    result = explorer_cli(*common, "--objective", "mmd", "--prior", json.dumps(prior.to_dict()),
                          "--out", str(tmp_path / "tri"))
    assert result.returncode == 0, result.stderr
    assert explorer.load(tmp_path / "tri").prior == prior

    result = explorer_cli(*common, "--objective", "l2-ae", "--lam", "1", "--out", str(tmp_path / "bad"))
    assert result.returncode == 2 and "l2-ae objective: unknown option(s) ['lam']; options are ['rho']" in result.stderr


def test_the_training_panel_offers_the_plugins_objective_and_its_weight():
    panel = TrainingPanel(TrainConfig(dataset="xy", latent_dim=2))
    assert (CodeNormAE.label, CodeNormAE.name) in panel.objective.options
    panel.objective.value = CodeNormAE.name
    assert panel.weight.description == "rho" and not panel.weight.disabled and panel.weight.value == 0.5
    panel.weight.value = 2.0
    config = panel.config()
    assert config.objective == "l2-ae" and config.objective_options == {"rho": 2.0}


def test_the_prior_editor_offers_the_plugins_family_with_working_sliders():
    editor = PriorEditor(2)
    assert ("Triangular", "triangular") in editor.family_select.options
    editor.family_select.value = "triangular"
    assert editor.prior == Product([([0], Triangular(1)), ([1], Gaussian(1))])
    assert isinstance(editor.sliders["width"], widgets.FloatLogSlider)  # the declared log scale
    assert (editor.sliders["width"].min, editor.sliders["width"].max) == pytest.approx((-1.0, 1.0))
    editor.sliders["width"].value = 3.0
    editor.sliders["center"].value = 1.0
    assert editor.prior == Product([([0], Triangular(1, 1.0, 3.0)), ([1], Gaussian(1))])
    z0 = editor.prior.sample(20_000, torch.Generator().manual_seed(0))[:, 0].double()
    assert -2.0 <= z0.min() and z0.max() <= 4.0
    assert (z0.mean().item(), z0.std().item()) == pytest.approx((1.0, 3.0 / math.sqrt(6)), abs=0.03)
    editor.texts["width"].value = -1.0  # the declared constraint, with the editor's message
    assert "z0: Triangular: width must be &gt; 0, got -1.0" in editor.message.value  # one dimension named
    assert "(dimension" not in editor.message.value
    editor.apply_all.value = True
    editor.texts["width"].value = 0.5  # every dimension triangular: one prior of that family
    assert editor.prior == Triangular(2, 1.0, 0.5)
