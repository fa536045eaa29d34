"""The explorer notebook in a real JupyterLab and headless Chromium: run it, Start, watch, Pause, drag a prior slider,
Stop; then, in the same kernel, open the shipped model and Start it further, and follow a run the command line
trains in another process."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.jupyter_browser import guard_network, headless_chromium, require_browser, run_all_cells, running_jupyterlab

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_programmable_priors.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STEP = re.compile(r"step ([\d,]+) / ([\d,]+)")


def widget_button(scope, label: str):
    return scope.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{label}\s*$")).first


def widget_tab(page, title: str):
    return page.locator(".jupyter-widget-tab .lm-TabBar-tab, .widget-tab .lm-TabBar-tab", has_text=title).first


def shown_step(scope) -> int:
    text = scope.locator(".widget-html-content", has_text=STEP).first.inner_text()
    return int(STEP.search(text).group(1).replace(",", ""))


def wait_for_step_above(scope, step: int, timeout_s: float) -> int:
    """The step ``scope`` shows once it is above ``step`` (polled: the page updates itself)."""
    scope.locator(".widget-html-content", has_text=STEP).first.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while (shown := shown_step(scope)) <= step:
        assert time.monotonic() < deadline, f"the step stays at {shown}, not above {step}"
        scope.page.wait_for_timeout(250)
    return shown


def add_cell(page, code: str) -> None:
    """Add a cell at the end of the notebook and run it."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    cells.last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")


def run_code(page, code: str, timeout_ms: int = 30_000) -> str:
    """Add a cell at the end of the notebook, run it, and return its text output."""
    add_cell(page, code)
    # the new cell is now second to last (Shift+Enter adds an empty one below)
    output = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(-2).locator(".jp-OutputArea-output")
    output.first.wait_for(state="visible", timeout=timeout_ms)
    return output.first.inner_text()


@pytest.mark.browser
def test_the_explorer_trains_live_in_jupyterlab(tmp_path):
    require_browser()
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    ARTIFACTS.mkdir(exist_ok=True)
    with running_jupyterlab(tmp_path) as server, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 2300})
        network = guard_network(context)
        page = context.new_page()
        try:
            run_all_cells(page, server.base_url, server.token, NOTEBOOK.name, timeout_s=180)
            drive_the_explorer(page)
            continue_the_shipped_model(page)
            follow_a_command_line_run(page, tmp_path / "cli-run")
        finally:
            page.screenshot(path=str(ARTIFACTS / "explorer-last.png"))
        assert network.non_local() == [], network.non_local()
        context.close()


def drive_the_explorer(page) -> None:
    """Start, see the step and the scatter change, drag a prior slider, Stop, and ask the kernel what happened."""
    start = widget_button(page, "Start")
    start.wait_for(state="visible", timeout=60_000)
    scatter = page.locator(".explorer-latent .bk-Canvas").first
    scatter.wait_for(state="visible", timeout=60_000)
    assert shown_step(page) == 0
    before = scatter.screenshot()

    start.click()
    page.wait_for_function(
        "() => /step [1-9][\\d,]* \\//.test(document.body.innerText)", timeout=60_000, polling=250)
    first = shown_step(page)
    page.wait_for_timeout(3000)
    assert shown_step(page) > first, "the step counter does not advance"
    assert scatter.screenshot() != before, "the scatter did not change while training"

    widget_button(page, "Pause").click()
    page.locator(".widget-html-content", has_text="paused").first.wait_for(timeout=1000)  # within a second
    assert " left" not in page.locator(".widget-html-content", has_text=STEP).first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "explorer-paused.png"))
    widget_button(page, "Resume").click()
    page.locator(".widget-html-content", has_text="running").first.wait_for(timeout=5000)

    widget_tab(page, "Prior").click()
    handle = page.locator(".widget-slider .noUi-handle:visible").first
    handle.wait_for(state="visible", timeout=20_000)
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "explorer-prior.png"))

    widget_tab(page, "Train").click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))
    explorer_output = page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).first
    explorer_output.screenshot(path=str(ARTIFACTS / "explorer-widget.png"))
    widget_button(page, "Stop").click()
    page.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=30_000, polling=250)

    out = run_code(page, "from explorer.priors import Gaussian; "
                         "print(app.background.state, app.trainer.step, app.trainer.prior != Gaussian(5))")
    state, step, prior_changed = out.split()
    assert state == "stopped" and int(step) > first
    assert prior_changed == "True", "dragging the prior slider did not reach the trainer"


def continue_the_shipped_model(page) -> None:
    """Open notebook 01's AE-MMD model: lam shows 30 with no "Settings changed"; Start trains past its step 10,000."""
    add_cell(page, "from explorer.shipped import ROOT\n"
                   "shipped = explorer.Explorer.from_checkpoint(ROOT / 'kl-failure/mmd-seed0', probe_size=256)\n"
                   "shipped")
    view = page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).nth(1)
    widget_button(view, "Start").wait_for(state="visible", timeout=120_000)
    assert wait_for_step_above(view, 9_999, timeout_s=60) == 10_000
    page.wait_for_timeout(1000)  # the sliders' front end has sent back its snapped values by now
    assert "Settings changed" not in view.inner_text()
    widget_button(view, "Start").click()
    passed = wait_for_step_above(view, 10_000, timeout_s=90)
    view.screenshot(path=str(ARTIFACTS / "explorer-shipped-continued.png"))
    widget_button(view, "Stop").click()
    view.locator(".widget-html-content", has_text="stopped").first.wait_for(timeout=30_000)
    out = run_code(page, "print(shipped.trainer.step, shipped.trainer.config.objective_options['lam'])")
    step, lam = out.split()
    assert int(step) >= passed > 10_000 and float(lam) == 30.0


def follow_a_command_line_run(page, run: Path) -> None:
    """A CLI run in another process writes snapshots; `Explorer.follow` shows them, its step advancing."""
    add_cell(page, "import subprocess, sys\n"
                   "writer = subprocess.Popen([sys.executable, '-m', 'explorer', 'train', '--dataset', 'digits', "
                   "'--latent-dim', '3', '--batch-size', '32', '--steps', '1000000', '--snapshot-every', '20', "
                   f"'--checkpoint-every', '0', '--out', {str(run)!r}])\n"
                   f"followed = explorer.Explorer.follow({str(run)!r}, poll_s=0.2)\n"
                   "followed")
    view = page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).nth(2)
    view.locator(".widget-html-content", has_text="Following").first.wait_for(timeout=120_000)
    first = wait_for_step_above(view, 0, timeout_s=60)
    wait_for_step_above(view, first, timeout_s=60)
    assert widget_button(view, "Start").is_disabled()
    view.screenshot(path=str(ARTIFACTS / "explorer-follow.png"))
    out = run_code(page, "writer.terminate(); followed.close(); shipped.close(); print(writer.wait())",
                   timeout_ms=120_000)
    assert out.strip() in ("-15", "0")
