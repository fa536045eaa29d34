"""Save view: the explorer's views as shown, in one HTML file that opens offline and stays interactive, and the
static picture beside it; opened in a real browser with the network cut."""

from __future__ import annotations

from pathlib import Path

import pytest

import explorer
from tests.helpers import small_config
from tests.jupyter_browser import guard_network, headless_chromium, require_browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CODES_HELD = """n => [...Bokeh.index].some(view => [...view.model.document.all_models]
    .some(model => model.data?.x?.length === n))"""


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    """A short run at rest, its view saved by the button; the app, the page and the codes it shows."""
    folder = tmp_path_factory.mktemp("view")
    app = explorer.Explorer(small_config(steps=40), data=digits, probe_size=128, refresh_hz=None)
    app.panel.out.value = str(folder)
    app.panel.start.click()
    app.join(timeout=60)
    app.refresh(timeout=5)
    app.panel.save_view.click()
    yield app, folder / "view-step40.html", app.last_snapshot
    app.close()


def test_save_view_writes_one_self_contained_page_and_the_picture(saved):
    app, page, snapshot = saved
    assert f"View saved to {page}" in app.panel.status.value
    text = page.read_text()
    assert "<script src=" not in text and "cdn.bokeh.org" not in text  # BokehJS inline: it opens offline
    for title in ("codes over prior samples", "covariance of the codes", "marginal fit", "LPS over training"):
        assert title in text, title
    assert "step 40" in text and snapshot.codes_of.split()[0] in text  # the heading: step and codes shown
    assert "data:image/png;base64," in text  # the traversals
    assert page.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_save_view_says_why_it_could_not_write_and_keeps_the_views(saved, tmp_path):
    app, _, _ = saved
    (tmp_path / "a-file").write_text("not a folder")
    assert app.save_view(tmp_path / "a-file" / "view.html") is None
    assert "Could not save the view to" in app.panel.status.value
    assert len(app.latent.code_source.data["x"]) == len(app.last_snapshot.codes)


@pytest.mark.browser
def test_the_saved_view_opens_in_a_browser_with_the_network_cut(saved):
    require_browser()
    _, page_path, snapshot = saved
    ARTIFACTS.mkdir(exist_ok=True)
    with headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1300, "height": 1600})
        network = guard_network(context)
        page = context.new_page()
        page.set_content(page_path.read_text(), wait_until="load")
        page.wait_for_function(CODES_HELD, arg=len(snapshot.codes), timeout=30_000)
        assert page.locator(".bk-Canvas").count() >= 3  # scatter, marginals and covariance, LPS
        page.screenshot(path=str(ARTIFACTS / "saved-view.png"), full_page=True)
        assert network.non_local() == [], network.non_local()
        context.close()
