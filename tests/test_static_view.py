"""The explorer's static picture: what a notebook keeps for readers without a kernel, and when it is refreshed."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output
from PIL import Image

import explorer
from explorer.widgets.static_view import HIDDEN_VIEW, WIDGET_VIEW, snapshot_figure
from tests.helpers import small_config
from tests.test_views import snapshot


@pytest.fixture(scope="module", autouse=True)
def shell():
    return InteractiveShell.instance()  # display() publishes rich outputs, as in a kernel


def test_the_picture_shows_every_view_with_labelled_axes():
    rng = np.random.default_rng(0)
    shot = dataclasses.replace(snapshot(rng.standard_normal((300, 5))), lps=np.full(5, 0.2), lps_step=10)
    fig = snapshot_figure(shot)
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert "codes over prior samples" in titles and "covariance of the codes" in titles
    assert "LPS 0.200 (step 10)" in titles and [f"z{i}" for i in range(5)] == [t for t in titles if len(t) == 2]
    assert any(t.startswith("traversals from probe image 0") for t in titles)
    scatter = fig.get_axes()[0]
    assert (scatter.get_xlabel(), scatter.get_ylabel()) == ("z0", "z1")


def test_a_displayed_explorer_leaves_a_picture_and_refreshes_it_when_training_ends(digits):
    app = explorer.Explorer(small_config(steps=20), data=digits, probe_size=128, refresh_hz=None)
    try:
        with capture_output() as shown:
            display(app)
        loader, widget, picture = shown.outputs
        assert set(loader.data) == set(widget.data) == {WIDGET_VIEW}  # no text/plain for GitHub to print instead
        assert widget.data[WIDGET_VIEW]["model_id"] == app.widget.model_id
        assert picture.data[WIDGET_VIEW] == HIDDEN_VIEW  # hidden in JupyterLab; GitHub shows the PNG
        assert Image.open(io.BytesIO(picture.data["image/png"])).size[0] >= 1200
        with capture_output() as updated:
            app.panel.start.click()
            app.join(timeout=60)
            app.refresh(timeout=5)
            app.fallback.rendered.result(timeout=60)  # drawn off the views' lock
        assert app.last_snapshot.state == "finished"
        (update,) = updated.outputs
        assert update.data["image/png"] != picture.data["image/png"]
    finally:
        app.close()
