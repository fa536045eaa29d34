"""The explorer notebook in a real JupyterLab and headless Chromium: run it, Start, watch, Pause, drag a prior slider,
Stop; then, in the same kernel, open the shipped model and Start it further, and follow a run the command line
trains in another process."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.jupyter_browser import guard_network, headless_chromium, require_browser, run_all_cells, running_jupyterlab

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_programmable_priors.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STEP = re.compile(r"step ([\d,]+)(?: / ([\d,]+))? ·")  # a loop of unknown length shows no total


def widget_button(scope, label: str):
    return scope.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{label}\s*$")).first


def widget_tab(page, title: str):
    return page.locator(".jupyter-widget-tab .lm-TabBar-tab, .widget-tab .lm-TabBar-tab", has_text=title).first


def shown_step(scope, timeout_s: float = 15) -> int:
    """The step the status line shows. Its texts are read in one go, as the page may redraw the line between two
    reads, and again until one shows a step: JupyterLab draws an output scrolled into view anew."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = scope.locator(".widget-html-content").evaluate_all("labels => labels.map(label => label.innerText)")
        if shown := next((match for text in texts if (match := STEP.search(text))), None):
            return int(shown.group(1).replace(",", ""))
        assert time.monotonic() < deadline, f"no status line shows a step: {texts}"
        scope.page.wait_for_timeout(100)


def wait_for_step_above(scope, step: int, timeout_s: float) -> int:
    """The step ``scope`` shows once it is above ``step`` (polled: the page updates itself)."""
    scope.locator(".widget-html-content", has_text=STEP).first.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while (shown := shown_step(scope)) <= step:
        assert time.monotonic() < deadline, f"the step stays at {shown}, not above {step}"
        scope.page.wait_for_timeout(250)
    return shown


SHOWN_AFTER_CLICK = """([button, text]) => new Promise(resolve => {
    const shown = () => [...document.querySelectorAll('.widget-html-content')].some(e => e.innerText.includes(text));
    button.addEventListener('click', () => {
        const clicked = performance.now();
        const observer = new MutationObserver(() => {
            if (shown()) { observer.disconnect(); resolve((performance.now() - clicked) / 1000); }
        });
        observer.observe(document.body, {subtree: true, childList: true, characterData: true});
    }, {capture: true, once: true});
})"""


def seconds_until_shown(page, button, text: str, timeout_s: float = 30) -> float:
    """Seconds from the browser's click on ``button`` until a widget label shows ``text``, timed in the page: what the
    user waits, without the time Playwright takes to click and to poll, which a loaded machine stretches."""
    button.wait_for(state="visible")
    waiting = page.evaluate_handle(f"args => ({{ result: ({SHOWN_AFTER_CLICK})(args) }})",
                                   [button.element_handle(), text])
    button.click()
    return page.evaluate("waiting => Promise.race([waiting.result, new Promise((_, fail) => "
                         f"setTimeout(() => fail(new Error('not shown')), {timeout_s * 1000}))])", waiting)


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


@contextlib.contextmanager
def notebook_run_in_lab(notebook: Path, root: Path, last_screenshot: str, timeout_s: float) -> Iterator[Any]:
    """A copy of ``notebook`` in ``root``, run whole in JupyterLab (1,500 x 2,300) with the network cut; the page.
    Its last picture goes to ``ARTIFACTS / last_screenshot`` however the test ends, and no request may leave the
    machine."""
    require_browser()
    shutil.copy(notebook, root / notebook.name)
    ARTIFACTS.mkdir(exist_ok=True)
    with running_jupyterlab(root) as server, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 2300})
        network = guard_network(context)
        page = context.new_page()
        try:
            run_all_cells(page, server.base_url, server.token, notebook.name, timeout_s=timeout_s)
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / last_screenshot))
        assert network.non_local() == [], network.non_local()
        context.close()


@pytest.mark.browser
def test_the_explorer_trains_live_in_jupyterlab(tmp_path):
    with notebook_run_in_lab(NOTEBOOK, tmp_path, "explorer-last.png", timeout_s=180) as page:
        drive_the_explorer(page)
        continue_the_shipped_model(page)
        follow_a_command_line_run(page, tmp_path / "cli-run")


def drive_the_explorer(page) -> None:
    """Start, see the step and the scatter change, drag a prior slider, Stop, and ask the kernel what happened."""
    start = widget_button(page, "Start")
    start.wait_for(state="visible", timeout=60_000)
    scatter = page.locator(".explorer-latent .bk-Canvas").first
    scatter.wait_for(state="visible", timeout=60_000)
    assert shown_step(page) == 0
    the_weight_is_named_for_the_objective(page)
    before = scatter.screenshot()

    start.click()
    page.wait_for_function(
        "() => /step [1-9][\\d,]* \\//.test(document.body.innerText)", timeout=60_000, polling=250)
    first = shown_step(page)
    page.wait_for_timeout(3000)
    assert shown_step(page) > first, "the step counter does not advance"
    assert scatter.screenshot() != before, "the scatter did not change while training"

    assert seconds_until_shown(page, widget_button(page, "Pause"), "paused") < 1.0
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
    page.evaluate(RECORD_CODE_NOTES)
    widget_button(page, "Stop").click()
    page.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=30_000, polling=250)
    see_the_codes_of_the_dataset_at_rest(page, scatter)
    go_back_in_history(page, scatter)

    out = run_code(page, "from explorer.priors import Gaussian; "
                         "print(app.background.state, app.trainer.step, app.trainer.prior != Gaussian(5))")
    state, step, prior_changed = out.split()
    assert state == "stopped" and int(step) > first
    assert prior_changed == "True", "dragging the prior slider did not reach the trainer"


def the_weight_is_named_for_the_objective(page) -> None:
    """The penalty weight's label follows the objective chosen (it read "lam" for every one)."""
    objective = page.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile("^objective$")))
    for label, weight in (("VAE", "beta"), ("FactorVAE", "gamma"), ("AE-MMD", "lam")):
        objective.locator("select").select_option(label=label)
        page.locator(".widget-slider label:visible", has_text=re.compile(f"^{weight}$")).first.wait_for(timeout=5000)
    assert "Settings changed" not in " ".join(page.locator(".widget-html-content").all_inner_texts())


RECORD_CODE_NOTES = """() => { window.codeNotes = [];
    new MutationObserver(() => {
        const note = [...document.querySelectorAll('.widget-html-content')].map(e => e.textContent)
            .find(text => text.includes('codes of the dataset'));
        if (note && note !== window.codeNotes.at(-1)?.text) window.codeNotes.push({text: note, at: performance.now()});
    }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
CODES_IN_BOKEH = """n => [...Bokeh.index].some(view => [...(view.model.document?.all_models ?? [])]
    .some(model => model.data?.x?.length === n))"""


def see_the_codes_of_the_dataset_at_rest(page, scatter, n: int = 100_000) -> None:
    """Stopped, the scatter fills in, with visible progress, to ``n`` codes of the dataset; the browser holds them
    within seconds of the note saying so."""
    # the benchmark times this on an idle machine (about 20 s); here JupyterLab and Chromium share its 2 cores
    page.locator(".widget-html-content", has_text=f"{n:,} codes of the dataset over").first.wait_for(timeout=120_000)
    page.wait_for_function(CODES_IN_BOKEH, arg=n, timeout=30_000, polling="raf")
    # the frame after the one that got the data: BokehJS has drawn them (it paints in animation frames)
    drawn = page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame("
                          "() => done(performance.now()))))")
    notes = page.evaluate("() => window.codeNotes")
    assert any("encoding" in note["text"] for note in notes), notes  # it grew in view
    # a measurement, not a timed assertion (the guide: targets go in benchmarks): the issue asks for 3 s
    seconds = (drawn - notes[-1]["at"]) / 1000
    (ARTIFACTS / "rest-codes-redraw.json").write_text(json.dumps({"codes": n, "seconds_after_note": seconds}))
    scatter.screenshot(path=str(ARTIFACTS / "explorer-100k-codes.png"))
    look_behind_the_codes(page, scatter, n)


def look_behind_the_codes(page, scatter, shown: int) -> None:
    """Hovering the cloud shows a code's input and reconstruction; a lasso around its middle, the selection's grid
    of inputs and its factors."""
    box = scatter.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.move(x + 3, y + 3, steps=3)
    page.locator(".widget-html-content", has_text=re.compile(r"code [\d,]+: its input")).first.wait_for(
        timeout=15_000)
    page.locator(".explorer-latent .bk-tool-icon-lasso-select").first.click()
    page.mouse.move(x - 30, y - 30)
    page.mouse.down()
    for dx, dy in ((30, -30), (30, 30), (-30, 30), (-30, -30)):
        page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()
    page.locator(".widget-html-content", has_text=f"of {shown:,} codes selected").first.wait_for(timeout=15_000)
    page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).first.screenshot(
        path=str(ARTIFACTS / "explorer-selection.png"))


def go_back_in_history(page, scatter) -> None:
    """The history slider dragged to its start shows the run's first kept codes; Live returns to the newest."""
    slider = page.locator(".widget-slider", has=page.locator("label", has_text=re.compile("^history$"))).first
    handle, track = slider.locator(".noUi-handle").first, slider.locator(".noUi-base").first
    now = scatter.screenshot()
    box, start = handle.bounding_box(), track.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(start["x"] - 20, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    early = page.locator(".widget-html-content", has_text=re.compile(r"^step [\d,]+: [\d,]+ codes")).first
    early.wait_for(timeout=15_000)
    shown = int(re.match(r"step ([\d,]+):", early.inner_text()).group(1).replace(",", ""))
    assert shown < 500, early.inner_text()  # the run's first kept snapshot, not its last step
    assert scatter.screenshot() != now, "the scatter did not change to the early codes"
    page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).first.screenshot(
        path=str(ARTIFACTS / "explorer-history.png"))
    widget_button(page, "Live").click()
    page.locator(".widget-html-content", has_text="codes of the dataset over").first.wait_for(timeout=15_000)


def continue_the_shipped_model(page) -> None:
    """Open notebook 01's AE-MMD model: lam shows 30 with no "Settings changed"; Start trains past its step 10,000."""
    add_cell(page, "from explorer.paper.shipped import checkpoints_root\n"
                   "shipped = explorer.Explorer.from_checkpoint(checkpoints_root() / 'kl-failure/mmd-seed0',\n"
                   "                                            probe_size=256)\n"
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


# ---------------------------------------------------------------------- the sketch pad and the views, at 1,024 px

EXPLORER_CELL = "import explorer\n\napp = explorer.Explorer()\napp"  # the explorer cell of notebook 02


@pytest.fixture(scope="module")
def explorer_page(tmp_path_factory):
    """JupyterLab at 1,024 px wide with notebook 02's explorer cell run; the page, shared by the tests below."""
    require_browser()
    import nbformat

    root = tmp_path_factory.mktemp("views")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(EXPLORER_CELL)]), root / "views.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_jupyterlab(root) as server, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1024, "height": 1600})
        network = guard_network(context)
        page = context.new_page()
        run_all_cells(page, server.base_url, server.token, "views.ipynb", timeout_s=180)
        page.locator(".explorer-latent .bk-Canvas").first.wait_for(state="visible", timeout=60_000)
        page.keyboard.press("Control+b")  # the left sidebar closed, as on a 1,024 px screen
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "explorer-1024.png"))
        yield page
        assert network.non_local() == [], network.non_local()
        context.close()


def kernel_values(page, expression: str) -> list[float]:
    """The numbers of ``expression`` (a sequence of numbers), as the kernel prints them."""
    return [float(v) for v in run_code(page, f"print(*({expression}))").split()]


def stroke(page, canvas, points: list[tuple[float, float]], hold_ms: int = 0) -> None:
    """Drag through ``points`` (fractions of the canvas box), optionally holding still first."""
    canvas.scroll_into_view_if_needed()  # a cell run since (`run_code`) scrolls the notebook away
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    page.wait_for_timeout(hold_ms)
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


@pytest.mark.browser
def test_three_strokes_on_the_sketch_pad_keep_the_prior_where_they_were_drawn(explorer_page):
    page = explorer_page
    widget_tab(page, "Prior").click()
    page.locator(".widget-dropdown", has_text="family").locator("select").select_option(
        label="Sketched density (draw it)")
    pad = page.locator(".explorer-sketch .bk-Canvas").first
    pad.wait_for(state="visible", timeout=20_000)
    view = kernel_values(page, "(lambda r: (r.start, r.end))(app.editor.pad.density.x_range)")
    bump = [(0.5, 0.7), (0.6, 0.35), (0.7, 0.25), (0.8, 0.35), (0.9, 0.7)]  # inside the frame, right half
    stroke(page, pad, [(x - 0.35, y) for x, y in bump])
    stroke(page, pad, [(x - 0.2, y) for x, y in bump], hold_ms=450)  # after a hold: Bokeh's "press"
    stroke(page, pad, bump)
    page.wait_for_timeout(1000)
    pad.screenshot(path=str(ARTIFACTS / "sketch-1d.png"))
    after = kernel_values(page, "(lambda r: (r.start, r.end))(app.editor.pad.density.x_range)")
    assert after == view, "the axes moved while drawing"
    low, high, drawn_low, drawn_high, strokes = kernel_values(
        page, "[*(lambda z: (float(z.min()), float(z.max())))(app.editor.prior.sample(5000)[:, 0]), "
              "*(lambda x: (x.min(), x.max()))(app.editor.pad.curve()[0]), "
              "len(app.editor.pad.curve_source.data['xs'])]")
    width = view[1] - view[0]
    assert strokes == 1  # replace mode: the last stroke is the density
    assert drawn_low > view[0] + 0.3 * width and drawn_high - drawn_low > 0.25 * width  # drawn where it was drawn
    assert abs(low - drawn_low) < 0.05 * width and abs(high - drawn_high) < 0.05 * width  # and the prior with it


@pytest.mark.browser
def test_points_placed_on_a_ring_preview_a_ring(explorer_page):
    page = explorer_page
    widget_tab(page, "Prior").click()
    pair = page.locator(".explorer-sketch .bk-Canvas").nth(1)
    pair.wait_for(state="visible", timeout=20_000)
    pair.scroll_into_view_if_needed()
    box = pair.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):  # quick clicks, as a person places them
        page.mouse.click(centre[0] + 90 * np.cos(angle), centre[1] + 90 * np.sin(angle))
    page.wait_for_timeout(500)
    widget_button(page, "Use drawn points").click()
    page.wait_for_timeout(1500)
    pair.screenshot(path=str(ARTIFACTS / "sketch-ring.png"))
    n, spread = kernel_values(page, "[len(app.editor.pad.points_source.data['x']), (lambda r: float(r.std() / "
                                    "r.mean()))(app.editor.prior.sample(5000)[:, :2].norm(dim=1))]")
    assert n == 12, f"{12 - n} of 12 clicks placed no point"
    assert spread < 0.25, "the preview is not a ring"


@pytest.mark.browser
def test_a_click_near_a_code_shows_its_traversals(explorer_page):
    import io

    from PIL import Image

    page = explorer_page
    widget_tab(page, "Train").click()
    page.locator(".widget-dropdown", has_text="colour").locator("select").select_option("none")
    scatter = page.locator(".explorer-latent .bk-Canvas").first
    scatter.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    pixels = np.asarray(Image.open(io.BytesIO(scatter.screenshot())).convert("RGB")).astype(int)
    ys, xs = np.nonzero(np.abs(pixels - [31, 119, 180]).sum(-1) < 60)  # the codes' colour, as a person sees it
    assert len(xs), "no code is drawn"
    box = scatter.bounding_box()
    x, y = float(xs[len(xs) // 2]), float(ys[len(ys) // 2])
    page.mouse.click(box["x"] + x + 7, box["y"] + y)  # beside a code, not on it
    deadline = time.monotonic() + 20  # the tap travels to the kernel, which answers between two steps
    while (selected := kernel_values(page, "[-1 if app.latent.selected is None else app.latent.selected]")[0]) < 0:
        assert time.monotonic() < deadline, "a click beside a code selected nothing"
        page.wait_for_timeout(250)
    page.wait_for_function(f"() => document.body.innerText.includes('Traversals from probe image {selected:.0f}')",
                           timeout=20_000, polling=250)
    explorer_output = page.locator(".jp-OutputArea-output", has=page.locator(".explorer-latent")).first
    explorer_output.screenshot(path=str(ARTIFACTS / "explorer-selected.png"))
