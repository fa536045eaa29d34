"""The explorer notebook in a real JupyterLab and headless Chromium: run it, Start, watch, drag a prior slider, Stop."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.jupyter_browser import guard_network, headless_chromium, require_browser, run_all_cells, running_jupyterlab

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_programmable_priors.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STEP = re.compile(r"step ([\d,]+) / ([\d,]+)")


def widget_button(page, label: str):
    return page.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{label}\s*$")).first


def widget_tab(page, title: str):
    return page.locator(".jupyter-widget-tab .lm-TabBar-tab, .widget-tab .lm-TabBar-tab", has_text=title).first


def shown_step(page) -> int:
    text = page.locator(".widget-html-content", has_text=STEP).first.inner_text()
    return int(STEP.search(text).group(1).replace(",", ""))


def run_code(page, code: str, timeout_ms: int = 30_000) -> str:
    """Add a cell at the end of the notebook, run it, and return its text output."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    cells.last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
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
