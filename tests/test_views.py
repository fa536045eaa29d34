"""The live views without a browser or a trainer: synthetic snapshots in, asserted Bokeh and widget state out."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import threading

import numpy as np
import pytest
from bokeh.models import ColorBar, ColumnDataSource, LinearScale, LogTicker
from PIL import Image

from explorer.live import TRAVERSAL_QUANTILES, Snapshot, traversal_values
from explorer.style import DIVERGING
from explorer.widgets import latent_view
from explorer.widgets.latent_view import LatentView
from explorer.widgets.lps_view import LPSView
from explorer.widgets.structure_view import StructureView, cell_text
from explorer.widgets.training_panel import loss_figure
from explorer.widgets.traversal_view import traversal_png
from tests.waiting import wait_until


class Labelled:
    """What the views read of a probe: its size, labels and factors (row i's label: i mod 10)."""

    def __init__(self, n: int) -> None:
        self.labels = np.arange(n) % 10
        self.factors, self.factor_names = None, ()

    def __len__(self) -> int:
        return len(self.labels)

    def colour_values(self, name: str, n: int) -> np.ndarray:
        return (np.arange(n) % 10).astype(float) if name == "label" else np.zeros(n)

    def images(self, rows) -> np.ndarray:
        """Row i's input: an 8 x 8 picture of grey level i."""
        return np.stack([np.full((8, 8, 1), row, np.uint8) for row in rows])


def snapshot(codes: np.ndarray, prior: np.ndarray | None = None, step: int = 10, **fields) -> Snapshot:
    n, d = codes.shape
    prior = np.random.default_rng(1).standard_normal((n, d)) if prior is None else prior
    image = np.zeros((8, 8, 1), np.uint8)
    values = traversal_values(prior)
    return Snapshot(step=step, total_steps=100, state="running", terms={}, steps_per_s=0.0, elapsed_s=0.0,
                    history_steps=np.zeros(0), history={}, codes=codes, prior_sample=prior, lps=None, lps_step=0,
                    lps_estimator="", lps_history_steps=np.zeros(0, int), lps_history=np.zeros(0), selected=0,
                    traversal_version=0, traversals=np.full((d, len(TRAVERSAL_QUANTILES), 8, 8, 1), 128, np.uint8),
                    traversal_values=values, original=image, reconstruction=image, **fields)


def preview(row: int, code: np.ndarray) -> concurrent.futures.Future:
    """What the run decodes for the code under the cursor: its input (grey level row) and reconstruction (code 0)."""
    future = concurrent.futures.Future()
    future.set_result((np.full((8, 8, 1), row, np.uint8), np.full((8, 8, 1), round(code[0] * 10) % 256, np.uint8)))
    return future


@pytest.fixture
def view():
    selected = []
    view = LatentView(3, Labelled(200), threading.RLock(), on_select=selected.append, preview=preview)
    view.selections = selected
    view.update(snapshot(np.random.default_rng(0).standard_normal((200, 3))))
    yield view
    view.close()


def test_a_cloud_of_100000_codes_draws_faint_and_small_over_as_many_prior_samples(view):
    solid = view._code_glyph.glyph.fill_alpha
    codes = np.random.default_rng(2).standard_normal((100_000, 3))
    view.update(snapshot(codes, codes_of="100,000 codes of the dataset"))
    assert view.scatter.output_backend == "webgl"
    assert len(view.code_source.data["x"]) == len(view.prior_source.data["x"]) == 100_000
    assert list(view.code_source.data["c"][:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]  # every code coloured
    faint, prior = view._code_glyph.glyph, view._prior_glyph.glyph
    assert solid == 0.8 and faint.fill_alpha < 0.1 and faint.size < 2.5
    assert 0 < prior.fill_alpha < faint.fill_alpha
    assert view.note.value == "100,000 codes of the dataset over as many prior samples"
    # the prior stays visible over the cloud: a line around its densest 90 % in the view (the N(0, I) circle)
    (xs,), (ys,) = view.outline_source.data["xs"], view.outline_source.data["ys"]
    assert np.hypot(xs, ys).mean() == pytest.approx(np.sqrt(-2 * np.log(0.1)), rel=0.03)


def test_scatter_axes_say_what_they_show_and_the_wheel_does_not_zoom(view):
    assert view.scatter.toolbar.active_scroll is None
    assert (view.scatter.xaxis[0].axis_label, view.scatter.yaxis[0].axis_label) == ("z0", "z1")
    assert view.colour_bar.visible and view.colour_bar.title == "label"
    assert view.scatter.legend[0] in view.scatter.below  # beside the data, not over it
    view.colour.value = "none"
    assert not view.colour_bar.visible
    view.projection.value = "PCA"
    assert view.scatter.xaxis[0].axis_label.startswith("PC1 (") and view.scatter.yaxis[0].axis_label.startswith("PC2")
    assert view.x_dim.disabled and view.y_dim.disabled
    view.projection.value = "pair"
    view.x_dim.value = 2
    assert not view.x_dim.disabled and view.scatter.xaxis[0].axis_label == "z2"


def test_a_tap_near_a_code_selects_the_nearest_and_clear_drops_it(view):
    codes = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])
    view.update(snapshot(np.column_stack([codes, np.zeros(3)]), prior=np.zeros((3, 3))))
    assert view.clear_button.disabled
    view.tap_source.data = {"x": [0.97], "y": [1.05]}  # what the browser's tap sends: near code 1, not on it
    assert view.selected == 1 and view.selections == [1]
    assert view.selected_source.data == {"x": [1.0], "y": [1.0]}  # ringed
    view.tap_source.data = {"x": [-0.9], "y": [0.4]}  # empty space, far from every code: nothing changes
    assert view.selected == 1 and view.selections == [1]
    view.x_dim.value = 2  # the ring follows its code into another view
    assert view.selected_source.data == {"x": [0.0], "y": [1.0]}
    assert not view.clear_button.disabled
    view.clear_button.click()
    assert view.selected is None and view.selections == [1, 0] and view.selected_source.data["x"] == []
    assert view.clear_button.disabled


def test_hovering_a_code_shows_its_input_and_reconstruction(view):
    assert view.details.hover_image.value == b""
    view.hover_source.data = {"index": [7]}  # what the browser's hover sends
    picture = np.asarray(Image.open(io.BytesIO(view.details.hover_image.value)))
    assert picture.shape == (64, 64 * 2 + 2 * 8)  # two 8 x 8 pictures scaled to 64 px, a 2-pixel gap between
    assert picture[0, 0] == 7 and picture[0, -1] == round(view._snapshot.codes[7, 0] * 10) % 256
    assert "code 7" in view.details.hover_caption.value


def test_a_box_or_lasso_selection_shows_its_inputs_and_its_labels_against_all(view):
    view.code_source.selected.indices = [0, 1, 2, 10, 20]  # what the browser's lasso sends
    assert "5 of 200 codes selected" in view.details.selection_caption.value
    grid = np.asarray(Image.open(io.BytesIO(view.details.selection_image.value)))
    assert grid[0, 0] == 0 and grid[0, 32 + 8] == 1  # inputs in the data's order, 32 px each (4 gap pixels)
    labels = view.details.factor_sources["label"].data  # rows 0, 1, 2, 10, 20: labels 0, 1, 2, 0, 0
    chosen = dict(zip(np.round(labels["left"]).astype(int), labels["chosen"], strict=False))
    assert chosen[0] == pytest.approx(0.6) and sum(labels["chosen"]) == pytest.approx(1.0)
    assert sum(labels["all"]) == pytest.approx(1.0) and view.details.factors.layout.display == ""
    view.code_source.selected.indices = []
    assert view.details.selection_caption.value == "" and view.details.factors.layout.display == "none"


def test_umap_shows_that_it_is_computing_instead_of_the_old_picture(view, monkeypatch):
    release = threading.Event()

    def slow_umap(codes, others):
        release.wait(10)
        return codes[:, :2] * 0 + 1, others[:, :2] * 0 + 1

    monkeypatch.setattr(latent_view, "umap_project", slow_umap)
    view.projection.value = "UMAP"
    assert view.scatter.title.text == "computing UMAP…" and "computing UMAP of step 10" in view.note.value
    assert len(view.code_source.data["x"]) == 0  # not the pair view's codes under a UMAP title
    release.set()
    wait_until(lambda: len(view.code_source.data["x"]) == 200)
    assert view.scatter.xaxis[0].axis_label == "UMAP 1 (step 10)"
    assert view.note.value == "200 codes over as many prior samples"
    assert list(view.code_source.data["x"]) == [1.0] * 200


def test_marginals_draw_the_prior_as_a_line_and_the_covariance_prints_its_numbers():
    rng = np.random.default_rng(0)
    structure = StructureView(12)
    codes = rng.standard_normal((2000, 12))
    codes[:, 1] = codes[:, 0] + 0.1 * rng.standard_normal(2000)
    structure.update(snapshot(codes, prior=rng.standard_normal((2000, 12))))
    y = np.asarray(structure.marginal_sources[0][1].data["y"])
    assert np.abs(np.diff(y, 2)).max() < 0.01 and y.max() == pytest.approx(0.4, abs=0.05)  # a smooth N(0, 1)
    assert "codes" in structure.legend.value and "prior density" in structure.legend.value
    texts = structure.cov_source.data["text"]
    assert all(texts) and "-0.0" not in texts and texts[1] == "1.0"  # cov(z0, z1), one decimal at d = 12
    assert isinstance(structure.cov_bar, ColorBar) and structure.cov_bar in structure.covariance.right
    assert tuple(structure.cov_mapper.palette) == DIVERGING and DIVERGING[-1] == "#67001f"  # positive: red
    assert [cell_text(v, 3) for v in (-0.001, 0.004, 1.0)] == ["0.00", "0.00", "1.00"]


def test_each_marginal_shows_its_ks_distance_and_one_dimension_can_be_shown_at_full_size():
    rng = np.random.default_rng(0)
    codes, prior = rng.standard_normal((500, 3)), rng.standard_normal((500, 3))
    codes[:, 2] = rng.uniform(-1, 1, 500)
    fit = np.array([0.04, 0.05, 0.31])
    structure, lps = StructureView(3), LPSView(3)
    shown = snapshot(codes, prior=prior, fit=fit)
    structure.update(shown)
    lps.update(shown)
    assert [fig.title.text for fig in structure.marginals] == ["z0 · KS 0.04", "z1 · KS 0.05", "z2 · KS 0.31"]
    assert list(lps.fit_source.data["ks"]) == list(fit) and "worst z2: 0.31" in lps.fit.title.text
    assert structure.grid.visible and not structure.focused.visible

    structure.focus.value = 2  # as the dropdown does
    assert structure.focused.visible and not structure.grid.visible
    assert structure.focused.title.text == "z2: KS distance 0.310 to the prior's marginal"
    for focused, small in zip(structure.focused_sources, structure.marginal_sources[2], strict=True):
        assert dict(focused.data).keys() == dict(small.data).keys()
        for column in focused.data:
            np.testing.assert_array_equal(focused.data[column], small.data[column])
    before = max(structure.focused_sources[0].data["top"])
    structure.update(snapshot(codes * 3, prior=prior, fit=fit))  # the focused dimension follows new snapshots
    tops = structure.focused_sources[0].data["top"]
    np.testing.assert_array_equal(tops, structure.marginal_sources[2][0].data["top"])
    assert max(tops) < 0.9 * before  # wider codes: a lower histogram
    structure.focus.value = -1
    assert structure.grid.visible and not structure.focused.visible


def test_tiny_covariances_print_in_a_unit_that_keeps_their_digits():
    structure = StructureView(2)
    codes = np.random.default_rng(0).standard_normal((500, 2)) * 0.02
    structure.update(snapshot(codes))
    assert structure.cov_bar.title == "cov (cells ×1e-4)"
    assert float(structure.cov_source.data["text"][0]) == pytest.approx(np.var(codes[:, 0], ddof=1) * 1e4, abs=0.01)


def test_traversal_rows_and_columns_are_labelled():
    shot = snapshot(np.zeros((50, 3)))
    png = Image.open(io.BytesIO(traversal_png(shot)))
    tiles_width = 9 * 10 * 6 + 4 * 6  # 2 + 7 tiles of 8 px + gaps, scaled 6x
    assert png.size == (34 + tiles_width + 96, 20 + 3 * 10 * 6)
    pixels = np.asarray(png)
    assert (pixels[20:, :30] < 100).any()  # the z_i labels left of the rows
    assert (pixels[:18, 34:] < 100).any()  # the quantiles above the columns
    assert (pixels[20:, 34 + tiles_width :] < 100).any()  # each row's range of z_i on the right


def test_lps_over_training_starts_at_step_zero_with_whole_steps():
    view = LPSView(3)
    view.update(dataclasses.replace(snapshot(np.zeros((10, 3))), lps=np.array([0.1, 0.2, 0.3]), lps_step=10_000,
                                    lps_history_steps=np.array([10_000]), lps_history=np.array([0.2])))
    assert (view.history.x_range.start, view.history.x_range.end) == (0, 10_500)
    assert view.history.xaxis[0].ticker.min_interval == 1
    assert view.history.yaxis[0].axis_label == "LPS (mean R²)" and view.bars.xaxis[0].axis_label == "dimension"
    assert list(view.history_source.data["step"]) == [10_000]


def test_loss_curves_have_axis_titles_and_log_axes_without_a_bar_of_minor_ticks():
    recon = loss_figure(ColumnDataSource({"step": [], "recon": []}), "recon", "#000")
    assert recon.xaxis[0].axis_label == "step" and recon.yaxis[0].axis_label == "recon (log)"
    assert isinstance(recon.yaxis[0].ticker, LogTicker) and recon.yaxis[0].ticker.num_minor_ticks == 0
    assert recon.xaxis[0].formatter.format == "0a"  # 10k, not 10000 merging with its neighbours
    mmd = loss_figure(ColumnDataSource({"step": [], "mmd": []}), "mmd", "#000")
    assert isinstance(mmd.y_scale, LinearScale)


def test_a_view_appearing_late_gets_the_document_as_it_is_then():
    """Patches sent before a browser view exists are lost: when one appears, the whole document is sent again."""
    structure = StructureView(2)
    pane = structure.widget.children[1]
    first = pane.render_bundle
    structure.update(snapshot(np.random.default_rng(0).standard_normal((100, 2)) * 0.02))
    assert pane.render_bundle == first  # changes travel as patches, which a view not yet shown never sees
    # what the front end reports when the view appears: a synced trait only the front end sets, no public name
    pane._view_count = 1
    assert "1e-4" not in str(first) and "1e-4" in str(pane.render_bundle)  # the colour bar's unit, now


def test_the_status_line_is_rendered_from_the_message_and_the_changed_settings():
    from explorer.widgets.app import DEFAULT_CONFIG
    from explorer.widgets.training_panel import TrainingPanel

    panel = TrainingPanel(DEFAULT_CONFIG)
    panel.show("saved")
    panel.show_changed(["lr"])  # a new change replaces the message
    assert "Settings changed (lr)" in panel.status.value and panel.message == ""
    panel.show("could not save", error=True)  # a later message replaces the note
    assert "could not save" in panel.status.value and "#b00" in panel.status.value
    panel.show_changed([])  # the settings are the run's again: the message stays
    assert "could not save" in panel.status.value
    panel.show("")
    panel.show_changed(["lr"])
    panel.show_changed([])
    assert panel.status.value == ""
