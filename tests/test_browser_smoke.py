"""The real-browser harness on a throwaway notebook: JupyterLab + headless Chromium, offline.

The notebook mimics the explorer's model: ipywidgets controls, a jupyter_bokeh plot whose ColumnDataSource a
background thread replaces every 0.3 s, BokehJS loaded from the installed bokeh package (no CDN) in a way that
keeps the saved notebook small.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.jupyter_browser import (
    guard_network,
    headless_chromium,
    leftover_processes,
    require_browser,
    run_all_cells,
    running_jupyterlab,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# Loads BokehJS from the installed bokeh (inline JS, no CDN) through a hidden ipywidgets.Output: the ~1.3 MB
# script lives in the widget's state (kept by the kernel, re-sent after a page reload), not in the .ipynb.
LOAD_BOKEHJS = '''\
import bokeh
import ipywidgets as widgets
from bokeh.resources import Resources
from IPython.display import display


def load_bokehjs(components=("bokeh",)):
    js = "\\n".join(Resources(mode="inline", components=list(components)).js_raw)
    loaded = f"typeof window.Bokeh !== 'undefined' && window.Bokeh.version === {bokeh.__version__!r}"
    guarded = f"if (!({loaded})) {{\\n{js}\\n}}"
    holder = widgets.Output(layout=widgets.Layout(display="none"))
    display(holder)
    with holder:
        display({"application/vnd.bokehjs_load.v0+json": guarded}, raw=True)
    return holder


bokehjs = load_bokehjs()
'''

CONTROLS = '''\
slider = widgets.IntSlider(value=3, min=0, max=10, description="n")
slider.add_class("smoke-slider")
slider_echo = widgets.Label(value="slider=3")
slider_echo.add_class("smoke-slider-echo")
slider.observe(lambda change: setattr(slider_echo, "value", f"slider={change['new']}"), names="value")

button = widgets.Button(description="Click me")
button.add_class("smoke-button")
clicks = widgets.Label(value="clicks=0")
clicks.add_class("smoke-clicks")
n_clicks = 0


def on_click(_):
    global n_clicks
    n_clicks += 1
    clicks.value = f"clicks={n_clicks}"


button.on_click(on_click)
display(widgets.VBox([widgets.HBox([slider, slider_echo]), widgets.HBox([button, clicks])]))
'''

LIVE_PLOT = '''\
import random
import threading

from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from jupyter_bokeh import BokehModel

source = ColumnDataSource(data={"x": [0.0], "y": [0.0]}, name="smoke-source")
fig = figure(width=420, height=300, title="live scatter")
fig.scatter("x", "y", source=source, size=6)
plot = BokehModel(fig)
plot.add_class("smoke-plot")
ticks = widgets.Label(value="tick=0")
ticks.add_class("smoke-ticks")
stop = threading.Event()


def produce():  # a consumer thread mutating widgets, as the explorer does
    rng = random.Random(0)
    tick = 0
    while not stop.wait(0.3):
        tick += 1
        n = 10 + tick
        source.data = {"x": [rng.gauss(0, 1) for _ in range(n)], "y": [rng.gauss(0, 1) for _ in range(n)]}
        ticks.value = f"tick={tick} n={n}"


producer = threading.Thread(target=produce, name="smoke-producer", daemon=True)
producer.start()
display(widgets.VBox([ticks, plot]))
'''

# Length of the ColumnDataSource named "smoke-source" in the page's BokehJS documents (null: not rendered yet).
SOURCE_LENGTH_JS = """() => {
  if (typeof window.Bokeh === 'undefined') return null;
  const documents = [...(Bokeh.documents || []), ...[...Bokeh.index.all_views()].map(view => view.model.document)];
  for (const doc of documents) {
    for (const model of doc.all_models) {
      if (model.name === 'smoke-source') return model.get_length();
    }
  }
  return null;
}"""


def notebook(*sources: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
                   "source": source} for i, source in enumerate(sources)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def wait_for_text(page, selector: str, pattern: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        if page.locator(selector).count():
            seen = text(page, selector)
            if re.search(pattern, seen):
                return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector}: expected /{pattern}/, last seen {seen!r}")


@pytest.mark.browser
def test_widgets_and_a_live_bokeh_plot_work_offline_in_jupyterlab(tmp_path):
    require_browser()
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    (tmp_path / "smoke.ipynb").write_text(json.dumps(notebook(LOAD_BOKEHJS, CONTROLS, LIVE_PLOT), indent=1))
    errors: list[str] = []

    with running_jupyterlab(tmp_path, log_path=ARTIFACTS / "smoke-jupyter.log") as server, \
            headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1200})
        network = guard_network(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)

        run_all_cells(page, server.base_url, server.token, "smoke.ipynb", timeout_s=90)

        # the Bokeh plot renders (a canvas inside the widget) and follows the producer thread
        page.locator(".smoke-plot canvas").first.wait_for(state="visible", timeout=30_000)
        first = page.evaluate(SOURCE_LENGTH_JS)
        first_tick = wait_for_text(page, ".smoke-ticks", r"tick=\d+")
        page.wait_for_timeout(1500)
        later = page.evaluate(SOURCE_LENGTH_JS)
        later_tick = wait_for_text(page, ".smoke-ticks", r"tick=\d+")
        assert first is not None and later is not None and later > first, (first, later)
        assert later_tick != first_tick

        # a click reaches the kernel and its answer comes back into the DOM
        page.locator(".smoke-button").click()
        wait_for_text(page, ".smoke-clicks", r"^clicks=1$")
        page.locator(".smoke-button").click()
        wait_for_text(page, ".smoke-clicks", r"^clicks=2$")

        # dragging the slider: the readout and the kernel-side observer agree
        handle = page.locator(".smoke-slider .noUi-handle").first
        box = handle.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        value = int(wait_for_text(page, ".smoke-slider .widget-readout", r"^\d+$"))
        assert value > 3
        wait_for_text(page, ".smoke-slider-echo", rf"^slider={value}$")
        handle.focus()
        page.keyboard.press("ArrowLeft")
        wait_for_text(page, ".smoke-slider-echo", rf"^slider={value - 1}$")

        page.locator(".smoke-plot").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-smoke.png"))
        context.close()

        assert network.urls, "no request was recorded"
        assert any(url.startswith("ws://127.0.0.1") for url in network.urls), "no kernel websocket seen"
        assert network.non_local() == [], f"requests left localhost: {network.non_local()}"
        assert errors == [], errors

    assert server.force_killed == {}, f"processes did not stop by themselves: {server.force_killed}"
    assert leftover_processes() == {}, "jupyter, kernel or chromium processes are left"
    assert time.monotonic() - started < 120
