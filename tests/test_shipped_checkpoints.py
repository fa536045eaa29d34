"""The checkpoints shipped for the notebooks: each loads, is small, carries no optimizer state, and its LPS (both
estimators) and NMSE recomputed here match the manifest (so a change to the model code or the metrics that
alters them fails)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

import explorer
from explorer.metrics.evaluate import LPS_OPTIONS, encode_dataset
from explorer.metrics.lps import lps
from explorer.paper.shipped import BUDGET_MODELS, MANIFEST, SETS, budget_command, checkpoints_root, manifest, ship_sets

ROOT = checkpoints_root()
ENTRIES = manifest()
OBJECTIVES = ("vae", "beta-vae", "mmd", "kld", "ae")
EXPECTED = {f"kl-failure/{name}" for name in OBJECTIVES} | {
    f"engineered/xy/{name}" for name in ("gaussian", "uniform", "gmm")} | {
    f"engineered/shapes/{name}" for name in ("gaussian", "hybrid", *(f"copy-of-hybrid-seed{s}" for s in range(3)))} | {
    "engineered/shapes-lam10/gaussian", "engineered/shapes-lam10/hybrid", "budget/shapes-lam10/mmd",
    "budget/shapes-lam10/kld", "budget/shapes-lam10-imq/mmd", "budget/shapes-lam10-imq/ae", "budget/shapes/vae",
    "budget/shapes/beta-vae"} | {
    f"engineered/{study}/{prior}" for study in ("shapes-lam300", "shapes-marginal", "shapes-marginal-lam300")
    for prior in ("gaussian", "hybrid")}


def test_the_manifest_lists_every_checkpoint_the_notebooks_need():
    shipped = {entry["path"].rsplit("-seed", 1)[0] for entry in ENTRIES}
    assert shipped == EXPECTED
    on_disk = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("**/checkpoint.json")}
    assert on_disk == {entry["path"] for entry in ENTRIES}


def test_the_manifest_commands_are_made_from_the_shipped_settings():
    """The command of every entry is what `explorer.paper.studies.command` makes of its set's settings."""
    made = {shipped.name: shipped.command() for shipped in SETS} | {
        f"budget/{name}": budget_command(name) for name in BUDGET_MODELS}
    for entry in ENTRIES:
        assert entry["command"].split(" --out OUT  # run ")[0] == made[checkpoint_set(entry)]


def checkpoint_set(entry: dict) -> str:
    """The folder of the manifest's checkpoints that one command made (kl-failure, engineered/xy, ...)."""
    return entry["path"].rsplit("/", 1)[0]


# The default run recomputes the first checkpoint of each set (one per command, so per model code path, dataset and
# objective family: seconds each); the others repeat their set's code path on more seeds or priors and are `slow`.
FIRST_OF_EACH_SET = {next(e["path"] for e in ENTRIES if checkpoint_set(e) == name)
                     for name in {checkpoint_set(entry) for entry in ENTRIES}}


@pytest.mark.parametrize("entry", [pytest.param(entry, id=entry["path"], marks=(
    () if entry["path"] in FIRST_OF_EACH_SET else pytest.mark.slow)) for entry in ENTRIES])
def test_a_shipped_checkpoint_loads_and_reproduces_its_manifest_metrics(entry):
    folder = ROOT / entry["path"]
    assert sum(f.stat().st_size for f in folder.iterdir()) < 2 * 2**20
    assert entry["command"].startswith("python -m explorer reproduce ")
    trained = explorer.load(folder)
    assert trained.step == entry["step"] and "state" not in trained.config["files"]
    codes, _, nmse = encode_dataset(trained, trained.load_dataset(), entry["eval"]["n"], entry["eval"]["seed"])
    assert nmse.db == pytest.approx(entry["metrics"]["nmse_db"], abs=0.01)
    for method, options in LPS_OPTIONS.items():
        score = lps(codes, method=method, seed=entry["eval"]["seed"], **options).score
        assert score == pytest.approx(entry["metrics"][f"lps_{method}"], abs=0.02), method


def test_a_set_shipped_in_float16_stores_float16_weights_and_loads_them_as_float32():
    fp16_sets = [shipped.name for shipped in SETS if shipped.fp16]
    assert fp16_sets
    for entry in ENTRIES:
        if checkpoint_set(entry) in fp16_sets:
            folder = ROOT / entry["path"]
            weights = next(folder.glob("weights-*.safetensors"))
            with safe_open(weights, "pt") as tensors:
                assert {tensors.get_slice(name).get_dtype() for name in tensors.keys()} == {"F16"}
            assert weights.stat().st_size < 0.7 * 2**20
            assert {p.dtype for p in explorer.load(folder).model.parameters()} == {torch.float32}


def test_shipping_one_set_keeps_the_manifest_entries_of_the_others(tmp_path):
    work, root = tmp_path / "work", tmp_path / "root"
    shutil.copytree(ROOT / "engineered" / "xy", work / "engineered" / "xy")
    for entry in ENTRIES:  # the evaluation each run would carry after training, so nothing is re-measured
        if entry["path"].startswith("engineered/xy/"):
            report = {"n": entry["eval"]["n"], "seed": entry["eval"]["seed"], "metrics": entry["metrics"]}
            (work / entry["path"] / "evaluation.json").write_text(json.dumps(report))
    root.mkdir()
    shutil.copyfile(ROOT / MANIFEST, root / MANIFEST)
    xy = {entry["path"] for entry in ENTRIES if entry["path"].startswith("engineered/xy/")}
    assert {entry["path"] for entry in ship_sets(work, root)} == xy
    assert sorted(e["path"] for e in manifest(root)) == sorted(e["path"] for e in ENTRIES)
    assert (root / "engineered" / "xy" / "uniform-seed0" / "checkpoint.json").exists()


def test_the_readmes_shapes_claim_holds_on_the_shipped_models():
    """The README: on shapes, AE-MMD with lambda 10 and the IMQ kernel reaches LPS-lgbm 0.05 +- 0.01 within 0.9 dB
    of the plain AE's reconstruction (three seeds each, at 32,000 steps)."""
    metrics = {run: [entry["metrics"] for entry in ENTRIES
                     if entry["path"].startswith(f"budget/shapes-lam10-imq/{run}-seed")] for run in ("mmd", "ae")}
    assert [len(runs) for runs in metrics.values()] == [3, 3]
    lps_mmd = [m["lps_lgbm"] for m in metrics["mmd"]]
    assert round(float(np.mean(lps_mmd)), 2) == 0.05 and round(float(np.std(lps_mmd)), 2) <= 0.01
    assert max(lps_mmd) < min(m["lps_lgbm"] for m in metrics["ae"])  # the lowest of the two, every seed
    gap = np.mean([m["nmse_db"] for m in metrics["mmd"]]) - np.mean([m["nmse_db"] for m in metrics["ae"]])
    assert round(float(gap), 1) <= 0.9
