"""Notebook 06 in a real JupyterLab: a researcher's own loop runs in the notebook's foreground and the explorer's
views follow it; the Prior tab shows the prior the notebook set in code, and a prior typed into it while the loop
runs reaches the loop, whose codes then follow that prior."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_browser_explorer import (
    ARTIFACTS,
    add_cell,
    notebook_run_in_lab,
    run_code,
    shown_step,
    wait_for_step_above,
    widget_tab,
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_your_own_model.ipynb"


@pytest.mark.browser
def test_a_prior_typed_while_the_users_loop_runs_reaches_it(tmp_path):
    with notebook_run_in_lab(NOTEBOOK, tmp_path, "own-loop-last.png", timeout_s=240) as page:
        views = page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).first
        views.scroll_into_view_if_needed()
        assert shown_step(views) == 600  # notebook 06's run, finished

        add_cell(page, "train(1200)")  # the same loop, on in the foreground: the kernel is busy with it
        views.scroll_into_view_if_needed()  # back from the new cell, at the notebook's end
        running = wait_for_step_above(views, 600, timeout_s=60)
        assert wait_for_step_above(views, running, timeout_s=30) > running, "the views do not follow the loop"
        views.screenshot(path=str(ARTIFACTS / "own-loop-running.png"))

        widget_tab(views, "Prior").click()  # the tab shows the prior set in code, Uniform(4, -4, 4)
        low, high = views.locator(".widget-text input:visible").all()[:2]
        assert (low.input_value(), high.input_value()) == ("-4", "4")
        views.locator(".widget-checkbox", has_text="apply to all").locator("input").check()
        for box, value in ((high, "1"), (low, "-1")):
            box.fill(value)
            box.press("Enter")
        edited_at = shown_step(views)
        views.screenshot(path=str(ARTIFACTS / "own-loop-prior-typed.png"))

        # a cell added now runs once the loop's cell is done
        out = run_code(page, "after = [value for step, prior, value in trace if prior == monitor.prior]; "
                             "print(float(monitor.prior.sample(5000).abs().max()), len(after), after[0], "
                             "after[-1], trace[-1][0])", timeout_ms=300_000)
    widest, kept, at_edit, at_end, last_step = (float(v) for v in out.split())
    assert last_step == 1800 and widest <= 1.0, "the typed prior did not reach the loop"
    assert kept >= 3 and at_end < 0.75 * at_edit, f"MMD^2 to the typed prior went from {at_edit:.3f} to {at_end:.3f}"
    assert edited_at < 1800
