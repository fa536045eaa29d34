"""The explorer as a page without code cells, in headless Chromium: served by ``python -m explorer app``, and
under a Jupyter server's Voila extension as Binder's link opens it."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from explorer.checkpoints import read_meta
from explorer.paper.shipped import checkpoints_root
from tests.jupyter_browser import guard_network, headless_chromium, require_browser, running_app, running_jupyterlab
from tests.test_browser_explorer import ARTIFACTS, wait_for_step_above, widget_button, widget_tab

REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED = "budget/shapes-lam10-imq/mmd-seed0"  # the README's picture: Table 1's AE-MMD, lambda 10, 32,000 steps


@pytest.mark.browser
def test_the_app_command_serves_a_page_that_trains_pauses_and_takes_a_prior_edit(tmp_path):
    require_browser()
    with running_app(tmp_path) as url, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        network = guard_network(context)
        page = context.new_page()
        try:
            page.goto(url, timeout=120_000)
            start = widget_button(page, "Start")
            start.wait_for(state="visible", timeout=120_000)
            page.locator(".explorer-latent .bk-Canvas").first.wait_for(state="visible", timeout=30_000)
            assert "show()" not in page.inner_text("body")  # a page, not a notebook: no code shown

            start.click()
            wait_for_step_above(page.locator("body"), 0, timeout_s=60)
            widget_button(page, "Pause").click()  # how fast: the JupyterLab test times it
            page.locator(".widget-html-content", has_text="paused").first.wait_for(timeout=10_000)
            widget_tab(page, "Prior").click()
            widget_button(page, "Uniform \\[-1, 1\\]").click()
            widget_tab(page, "Train").click()
            widget_button(page, "Save").click()
            page.locator(".widget-html-content", has_text="saved in").first.wait_for(timeout=30_000)
            assert icons_drawn(page)
        finally:
            page.screenshot(path=str(ARTIFACTS / "app-page.png"), full_page=True)
        assert local_only(network), network.non_local()
    meta, _ = read_meta(tmp_path / "runs" / "explorer")  # "save to" starts where the command was run
    assert meta["step"] > 0
    assert meta["train"]["prior"]["family"] == "uniform", meta["train"]["prior"]


@pytest.mark.browser
def test_binders_app_link_opens_a_shipped_model_that_trains_further(tmp_path):
    """Binder's second badge: ``?urlpath=voila/render/explorer/widgets/page.ipynb?run=...`` under JupyterLab's
    server, the run named in the address."""
    require_browser()
    run = urllib.parse.quote(str(checkpoints_root() / SHIPPED))
    with running_jupyterlab(REPOSITORY) as server, headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        network = guard_network(context)
        page = context.new_page()
        try:
            page.goto(f"{server.base_url}/voila/render/explorer/widgets/page.ipynb?run={run}&token={server.token}",
                      timeout=120_000)
            widget_button(page, "Start").wait_for(state="visible", timeout=120_000)
            assert wait_for_step_above(page.locator("body"), 31_999, timeout_s=30) == 32_000
            widget_button(page, "Start").click()
            wait_for_step_above(page.locator("body"), 32_000, timeout_s=90)
            widget_button(page, "Stop").click()
            page.locator(".widget-html-content", has_text="stopped").first.wait_for(timeout=30_000)
            page.locator(".widget-html-content", has_text="codes of the dataset").first.wait_for(timeout=30_000)
            # the history bar, drawn after the page ran, shows the newest step (not where its play button stood)
            page.locator(".widget-html-content", has_text=re.compile(r"live · \d+ steps kept")).first.wait_for(
                timeout=10_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "app-binder.png"), full_page=True)
        assert local_only(network), network.non_local()


def local_only(network) -> bool:
    """No request left the machine but the links of Voila's page template to Font Awesome and (under a Jupyter
    server) MathJax on CDNs: the page needs neither, its bundle carries the icons (`icons_drawn`) and it has no math."""
    return all(re.search(r"/@fortawesome/fontawesome-free@|/ajax/libs/mathjax/", url) for url in network.non_local())


def icons_drawn(page) -> bool:
    """The buttons' icons are drawn with Font Awesome from the page's bundle (the network is cut)."""
    return page.evaluate("""() => document.fonts.ready.then(() => {
        const icon = document.querySelector('button.jupyter-button i.fa');
        const family = getComputedStyle(icon, '::before').fontFamily;
        return family.includes('Font Awesome')
            && [...document.fonts].some(font => family.includes(font.family) && font.status === 'loaded');
    })""")
