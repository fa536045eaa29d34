"""The BokehJS the explorer loads, in headless Chromium: its WebGL bundle only where WebGL runs on a GPU."""

from __future__ import annotations

import json

import bokeh
import pytest
from bokeh.embed import json_item
from bokeh.plotting import figure

from explorer.widgets.bokehjs import bokehjs_script
from tests.jupyter_browser import headless_chromium, require_browser

GPU_RENDERER = """const get = WebGLRenderingContext.prototype.getParameter;
WebGLRenderingContext.prototype.getParameter = function (name) {
    return name === 0x9246 ? 'ANGLE (NVIDIA, NVIDIA GeForce RTX 4090 Direct3D11)' : get.call(this, name);
};"""  # 0x9246: UNMASKED_RENDERER_WEBGL, what a browser with a GPU reports


def draws_with_webgl(browser, before: str = "") -> bool:
    """Whether a scatter asked to draw with WebGL gets it, on a page that ran ``before`` and `bokehjs_script`."""
    plot = figure(width=200, height=200, output_backend="webgl")
    plot.scatter([1, 2, 3], [3, 1, 2])
    page = browser.new_page()
    page.set_content("<div id='plot'></div>")
    if before:
        page.add_script_tag(content=before)
    page.add_script_tag(content=bokehjs_script())
    assert page.evaluate("() => Bokeh.version") == bokeh.__version__
    page.evaluate(f"() => Bokeh.embed.embed_item({json.dumps(json_item(plot))}, 'plot')")
    page.wait_for_function("() => [...Bokeh.index].length > 0 && [...Bokeh.index][0].is_idle")
    return page.evaluate("() => [...Bokeh.index][0].canvas_view.webgl != null")


@pytest.mark.browser
def test_bokehjs_draws_with_webgl_on_a_gpu_and_on_a_canvas_where_webgl_is_software():
    require_browser()
    with headless_chromium() as browser:
        assert not draws_with_webgl(browser)  # headless Chromium renders WebGL with SwiftShader, in software
        assert draws_with_webgl(browser, GPU_RENDERER)
