"""PriorEditor driven through its real callbacks: widget values set, buttons clicked, sketch sources edited."""

import asyncio
import html
import re

import numpy as np
import pytest
import torch

from explorer.priors import (
    Empirical,
    Gaussian,
    GaussianMixture,
    Laplace,
    Product,
    SketchedDensity,
    SketchedPoints,
    Uniform,
    dsprites_hybrid,
    from_dict,
)
from explorer.widgets.prior_editor import PriorEditor


def draw(prior, n=20_000):
    return prior.sample(n, torch.Generator().manual_seed(1)).double()


@pytest.fixture
def editor():
    editor = PriorEditor(3)
    editor.calls = []
    editor.on_change(editor.calls.append)
    return editor


def shown(editor):
    """The message's text, as the user reads it."""
    return html.unescape(re.sub("<[^>]*>", "", editor.message.value))


def block_on(prior, dims):
    return next(block for block_dims, block in prior.blocks if block_dims == dims)


def test_starts_standard_gaussian_with_a_preview():
    editor = PriorEditor(3, preview_n=500)
    assert editor.prior == Gaussian(3)
    assert editor.message.value == ""
    assert len(editor.pad.scatter_source.data["x"]) == 500
    assert max(editor.pad.pdf_source.data["y"]) == pytest.approx(1 / np.sqrt(2 * np.pi), rel=0.01)
    assert sum(editor.pad.hist_source.data["top"] * np.diff(editor.pad.hist_source.data["left"])[0]) > 0.95


def test_std_slider_changes_the_prior_its_samples_and_the_preview(editor):
    editor.dim_select.value = 1
    editor.sliders["std"].value = 2.0
    assert editor.texts["std"].value == 2.0
    assert editor.prior == Gaussian(3, std=[1.0, 2.0, 1.0])  # all dimensions Gaussian: one Gaussian prior
    assert editor.calls == [editor.prior]
    assert draw(editor.prior).std(0).tolist() == pytest.approx([1.0, 2.0, 1.0], rel=0.03)
    assert np.std(editor.pad.scatter_source.data["y"]) == pytest.approx(2.0, rel=0.1)  # pair (z0, z1)
    assert max(editor.pad.pdf_source.data["y"]) == pytest.approx(1 / (2 * np.sqrt(2 * np.pi)), rel=0.01)


def test_text_takes_a_value_beyond_the_slider_range(editor):
    editor.texts["mean"].value = 25.0
    assert editor.sliders["mean"].value == editor.sliders["mean"].max
    assert editor.prior == Gaussian(3, mean=[25.0, 0.0, 0.0])
    assert draw(editor.prior)[:, 0].mean().item() == pytest.approx(25.0, abs=0.05)


def test_invalid_uniform_range_shows_the_message_and_keeps_the_last_valid_prior(editor):
    editor.family_select.value = "uniform"
    valid, calls = editor.prior, len(editor.calls)
    assert block_on(valid, (0,)) == Uniform(1, -1.0, 1.0)
    editor.texts["low"].value = 2.0  # high is 1
    assert "z0: Uniform: low must be < high, got low=2.0, high=1.0" in shown(editor)
    assert "color: #c0392b" in editor.message.value  # in red
    assert editor.prior is valid and len(editor.calls) == calls
    editor.sliders["high"].value = 3.0
    assert editor.message.value == ""
    assert block_on(editor.prior, (0,)) == Uniform(1, 2.0, 3.0)
    assert editor.calls[-1] == editor.prior and len(editor.calls) == calls + 1
    z0 = draw(editor.prior)[:, 0]
    assert 2.0 <= z0.min() and z0.max() <= 3.0 and z0.mean().item() == pytest.approx(2.5, abs=0.01)


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_non_positive_std_typed_is_refused(editor, std):
    editor.texts["std"].value = std
    assert f"z0: Gaussian: std must be > 0, got {std!r}" in shown(editor)
    assert editor.prior == Gaussian(3) and editor.calls == []
    editor.sliders["std"].value = 0.5
    assert editor.message.value == ""
    assert editor.prior == Gaussian(3, std=[0.5, 1.0, 1.0]) and editor.calls == [editor.prior]


def test_apply_to_all_gives_one_family(editor):
    editor.apply_all.value = True
    editor.family_select.value = "laplace"
    editor.sliders["scale"].value = 0.5
    assert editor.prior == Laplace(3, 0.0, 0.5)
    assert draw(editor.prior).std(0).tolist() == pytest.approx([0.5 * np.sqrt(2)] * 3, rel=0.03)
    assert editor.calls == [Laplace(3), Laplace(3, 0.0, 0.5)]


def test_two_mode_mixture(editor):
    editor.dim_select.value = 2
    editor.family_select.value = "gaussian_mixture"
    for name, value in {"mode1": -3.0, "mode2": 3.0, "mode_std": 0.5, "weight": 0.25}.items():
        editor.texts[name].value = value
    assert block_on(editor.prior, (2,)) == GaussianMixture([-3.0, 3.0], 0.5, [0.25, 0.75])
    z2 = draw(editor.prior)[:, 2]
    assert (z2 < 0).double().mean().item() == pytest.approx(0.25, abs=0.01)
    assert z2.mean().item() == pytest.approx(1.5, abs=0.05)
    valid = editor.prior
    editor.texts["weight"].value = 1.5
    assert "z2: GaussianMixture: weight must be in [0, 1], got 1.5" in shown(editor)  # the value typed
    assert editor.prior is valid


def test_presets(editor):
    editor.texts["std"].value = 3.0
    editor.preset_buttons["Uniform [-1, 1]"].click()
    assert editor.prior == Uniform(3)
    assert editor.family_select.value == "uniform"
    editor.preset_buttons["Standard Gaussian"].click()
    assert editor.prior == Gaussian(3)
    assert editor.texts["std"].value == 1.0
    assert editor.calls == [Gaussian(3, std=[3.0, 1.0, 1.0]), Uniform(3), Gaussian(3)]
    editor.preset_buttons["dSprites hybrid"].click()  # a 5-dimensional prior
    assert "dSprites hybrid: this preset has 5 dimensions, the latent space has 3" in shown(editor)
    assert editor.prior == Gaussian(3) and len(editor.calls) == 3


def test_dsprites_preset_round_trips_through_the_controls():
    editor = PriorEditor(5)
    editor.preset_buttons["dSprites hybrid"].click()
    assert editor.prior == dsprites_hybrid()
    shown = []
    for i in range(5):
        editor.dim_select.value = i
        family = editor.family_select.value
        shown.append((family, *(text.value for text in editor.texts.values())))
    assert shown == [("uniform", -5.0, 5.0), ("gaussian", 0.0, 2.0), ("gaussian_mixture", -5.0, 5.0, 5.0, 0.5),
                     ("gaussian_mixture", -10.0, 10.0, 1.0, 0.5), ("gaussian_mixture", -10.0, 10.0, 1.0, 0.5)]
    editor.sliders["mode_std"].value = 2.0  # z4; then back: the prior rebuilt from the controls
    editor.sliders["mode_std"].value = 1.0
    assert editor.prior == dsprites_hybrid()
    assert from_dict(editor.prior.to_dict()) == editor.prior


def test_set_prior_keeps_blocks_the_controls_cannot_show(editor):
    correlated = Gaussian(2, cov=[[1.0, 0.5], [0.5, 1.0]])
    prior = Product([([0, 2], correlated), ([1], Product([([0], Laplace(1, 1.0, 2.0))]))])
    editor.set_prior(prior)
    assert editor.prior is prior and editor.calls == [prior]
    assert editor.family_select.value == "fixed"
    assert "Gaussian on z0, z2" in editor.family_select.label
    editor.dim_select.value = 1
    assert (editor.family_select.value, editor.texts["loc"].value, editor.texts["scale"].value) == ("laplace", 1, 2)
    editor.dim_select.value = 2
    editor.family_select.value = "uniform"  # splits the correlated block into z0's and z2's own settings
    assert editor.prior == Product([([0], Gaussian(1)), ([1], Laplace(1, 1.0, 2.0)), ([2], Uniform(1))])
    with pytest.raises(ValueError, match="dim 3"):
        editor.set_prior(Gaussian(2))
    empirical = Product([([0], Empirical([[0.0], [1.0]])), ([1, 2], Gaussian(2))])
    editor.set_prior(empirical)  # no closed-form density: the preview draws the density of its samples
    editor.dim_select.value = 0
    assert len(editor.pad.pdf_source.data["y"]) > 0 and len(editor.pad.hist_source.data["top"]) > 0


def test_drawn_density_curve_becomes_a_sketched_dimension(editor):
    editor.dim_select.value = 1
    editor.family_select.value = "sketched_density"  # nothing drawn yet: the curve starts from z1's density
    assert editor.message.value == "" and "Draw the density of z1" in editor.dimensions.hint.value
    started = block_on(editor.prior, (1,))
    assert isinstance(started, SketchedDensity) and len(editor.calls) == 1
    assert draw(editor.prior)[:, 1].std().item() == pytest.approx(1.0, abs=0.05)  # still N(0, 1), as drawn
    assert len(editor.pad.curve()[0]) > 100  # shown on the pad, to draw over
    editor.calls.clear()
    # one stroke drawn right to left and back: sorted by z, repeated z averaged (z=2: (1.5 + 2.5) / 2)
    editor.pad.curve_source.data = {"xs": [[3.0, 1.0, 0.0, 2.0, 4.0, 2.0]], "ys": [[1.0, 1.0, 0.0, 1.5, 0.0, 2.5]]}
    assert editor.message.value == ""
    block = block_on(editor.prior, (1,))
    assert block == SketchedDensity([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 1.0, 0.0])
    assert editor.calls == [editor.prior]
    z1 = draw(editor.prior)[:, 1]  # the triangular density on [0, 4]
    assert 0 <= z1.min() and z1.max() <= 4
    assert (z1.mean().item(), z1.std().item()) == pytest.approx((2.0, np.sqrt(2 / 3)), abs=0.02)
    assert max(editor.pad.pdf_source.data["y"]) == pytest.approx(0.5, rel=0.01)  # preview overlays its density
    refused = [([0.0, 1.0, -0.5], "density must be >= 0"), ([0.0, 0.0, 0.0], "density must be > 0 somewhere")]
    for ys, error in refused:
        editor.pad.curve_source.data = {"xs": [[0.0, 1.0, 2.0]], "ys": [ys]}
        assert f"z1: SketchedDensity: {error}" in shown(editor)
        assert block_on(editor.prior, (1,)) == block
        assert len(editor.calls) == 1
    editor.pad.curve_source.data = {"xs": [[0.0, 1.0]], "ys": [[1.0, 1.0]]}
    assert editor.message.value == ""
    assert block_on(editor.prior, (1,)) == SketchedDensity([0.0, 1.0], [1.0, 1.0])
    editor.dim_select.value = 0
    editor.sliders["mean"].value = 1.0  # a curve edit now leaves z0 (not sketched) alone
    editor.pad.curve_source.data = {"xs": [[0.0, 5.0]], "ys": [[1.0, 1.0]]}
    assert block_on(editor.prior, (1,)) == SketchedDensity([0.0, 1.0], [1.0, 1.0])
    editor.dim_select.value = 1  # shows z1's curve on the pad
    assert [values.tolist() for values in editor.pad.curve()] == [[0.0, 1.0], [1.0, 1.0]]


def test_drawn_points_become_a_joint_sketched_block():
    editor = PriorEditor(4)
    calls = []
    editor.on_change(calls.append)
    editor.pair_x.value, editor.pair_y.value = 1, 3
    points = np.array([[3.0, -2.0], [3.5, -1.5], [2.5, -2.5], [-3.0, 2.0], [-3.5, 1.5], [-2.5, 2.5]])
    editor.pad.points_source.data = {"x": points[:, 0].tolist(), "y": points[:, 1].tolist()}
    assert calls == []  # drawing alone changes nothing until the points are used
    editor.use_points_button.click()
    block = block_on(editor.prior, (1, 3))
    assert isinstance(block, SketchedPoints) and block.points.tolist() == points.tolist()
    assert calls == [editor.prior]
    z = draw(editor.prior)
    nearest = torch.cdist(z[:, [1, 3]], torch.from_numpy(points)).min(1).values
    assert nearest.quantile(0.99).item() < 4 * block.bandwidth.max().item()
    assert z[:, [1, 3]].mean(0).tolist() == pytest.approx([0.0, 0.0], abs=0.1)
    assert z[:, [0, 2]].std(0).tolist() == pytest.approx([1.0, 1.0], rel=0.03)
    assert np.mean(editor.pad.scatter_source.data["x"] > 0) == pytest.approx(0.5, abs=0.05)  # preview: z1

    editor.pad.strokes_source.data = {"xs": [[0.0, 0.5]], "ys": [[0.0, 0.5]]}  # later edits update the block
    assert block_on(editor.prior, (1, 3)).points.tolist() == [*points.tolist(), [0.0, 0.0], [0.5, 0.5]]
    assert len(calls) == 2
    editor.dim_select.value = 3
    assert editor.family_select.value == "fixed"
    editor.family_select.value = "gaussian"  # splits the block
    assert editor.prior == Gaussian(4)


def test_invalid_point_sketches_are_refused():
    editor = PriorEditor(2)
    calls = []
    editor.on_change(calls.append)
    editor.use_points_button.click()
    assert "sketch pad: SketchedPoints: points must be a non-empty 2-D array" in shown(editor)
    editor.pair_y.value = 0
    editor.pad.points_source.data = {"x": [1.0], "y": [2.0]}
    editor.use_points_button.click()
    assert "choose two different dimensions" in shown(editor)
    assert editor.prior == Gaussian(2) and calls == []
    editor.pair_y.value = 1
    editor.use_points_button.click()  # one point: a blob of the chosen spread around it
    assert editor.message.value == "" and isinstance(editor.prior, SketchedPoints) and len(calls) == 1
    assert editor.prior.bandwidth.tolist() == pytest.approx([0.25, 0.25])


def test_browser_edit_arrives_through_jupyter_bokeh():
    """jupyter_bokeh applies a browser edit and then runs the source's callbacks again: one new prior."""
    editor = PriorEditor(2)
    editor.pad.points_source.data = {"x": [0.0, 1.0], "y": [0.0, 1.0]}
    editor.use_points_button.click()
    calls = []
    editor.on_change(calls.append)
    entries = [["x", [0.0, 1.0, 2.0]], ["y", [0.0, 1.0, 0.0]]]
    model = editor.pad.widget
    # the message jupyter_bokeh's front end sends; _sync_model is its only entry point, there is no public one
    model._sync_model(model, {"event": "jsevent", "kind": "ModelChanged", "model": {"id": editor.pad.points_source.id},
                              "attr": "data", "new": {"type": "map", "entries": entries}}, [])
    assert len(calls) == 1 and calls[0].points.tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]


def test_preview_redraws_at_most_once_per_interval_under_an_event_loop():
    async def drag():
        editor = PriorEditor(2)
        redraws = []
        editor.pad.scatter_source.on_change("data", lambda attr, old, new: redraws.append(1))
        priors = []
        editor.on_change(priors.append)
        for std in np.linspace(1.05, 3.0, 40):
            editor.sliders["std"].value = float(std)
        assert len(priors) == 40 and len(redraws) <= 1  # every prior, not every redraw
        await asyncio.sleep(0.3)
        assert len(redraws) <= 2
        return np.std(editor.pad.scatter_source.data["x"])

    assert asyncio.run(drag()) == pytest.approx(3.0, rel=0.1)  # the last value is shown


def test_one_dimension():
    editor = PriorEditor(1, prior=Laplace(1))
    assert editor.prior == Laplace(1) and editor.pad.pair is None
    editor.family_select.value = "uniform"
    assert editor.prior == Uniform(1)


def test_a_std_beyond_float32_typed_shows_the_message_and_keeps_the_prior(editor):
    editor.texts["std"].value = 1e39  # used to raise out of the preview callback
    assert "std must be at most 1e+15" in shown(editor)
    assert editor.prior == Gaussian(3) and editor.calls == []


def test_a_preview_that_cannot_be_drawn_shows_why(editor, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("supplied range of [nan, nan] is not finite")

    monkeypatch.setattr(editor.pad, "show", broken)
    editor.pad.reset_button.click()  # redraws the preview at once (no event loop): a callback, it must not raise
    assert "preview: supplied range" in shown(editor)


def test_the_view_stays_where_it_was_drawn_while_strokes_replace_each_other(editor):
    editor.family_select.value = "sketched_density"
    x_range, y_range = editor.pad.density.x_range, editor.pad.density.y_range
    view = (x_range.start, x_range.end, y_range.start, y_range.end)
    assert view[0] < -2.8 and view[1] > 2.8  # fitted to N(0, 1)
    for low, high in [(-3.0, 1.0), (-2.0, 0.5), (0.0, 2.5)]:  # three strokes, each replacing the last
        editor.pad.curve_source.data = {"xs": [[low, (low + high) / 2, high]], "ys": [[0.1, 0.3, 0.1]]}
        assert (x_range.start, x_range.end, y_range.start, y_range.end) == view
    z0 = draw(editor.prior)[:, 0]
    assert z0.min().item() >= 0.0 and z0.max().item() <= 2.5  # the last stroke, where it was drawn
    editor.pad.reset_button.click()  # the view moves only when asked
    assert x_range.start > -1 and x_range.end < 3.5


def test_strokes_add_up_in_add_mode_and_clear_keeps_the_prior(editor):
    editor.family_select.value = "sketched_density"
    editor.pad.mode.value = "add"
    assert [tool.num_objects for tool in editor.pad.draw_tools] == [0, 0]  # Bokeh keeps every stroke
    editor.pad.curve_source.data = {"xs": [[-3.0, -2.0, -1.0], [1.0, 2.0, 3.0]], "ys": [[0.0, 1.0, 0.0]] * 2}
    z0 = draw(editor.prior)[:, 0]
    assert (z0 < 0).float().mean().item() == pytest.approx(0.5, abs=0.02) and (z0.abs() < 1).float().mean() < 0.01
    kept = editor.prior
    editor.pad.clear_button.click()
    assert editor.pad.curve_source.data == {"xs": [], "ys": []}
    assert editor.prior is kept and editor.message.value == ""  # no error for an empty pad
    editor.pad.mode.value = "replace"
    assert [tool.num_objects for tool in editor.pad.draw_tools] == [1, 1]


def test_a_ring_of_points_stays_a_ring_with_the_spread_the_user_sets():
    editor = PriorEditor(2)
    angle = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    editor.pad.points_source.data = {"x": (2 * np.cos(angle)).tolist(), "y": (2 * np.sin(angle)).tolist()}
    editor.bandwidth.value = 0.2
    editor.use_points_button.click()
    radius = draw(editor.prior).norm(dim=1)
    assert radius.mean().item() == pytest.approx(2.0, abs=0.05) and radius.std().item() == pytest.approx(0.2, abs=0.03)
    editor.bandwidth.value = 0.1  # previewed at once
    assert editor.prior.bandwidth.tolist() == pytest.approx([0.1, 0.1])
    preview = np.hypot(editor.pad.scatter_source.data["x"], editor.pad.scatter_source.data["y"])
    assert np.std(preview) == pytest.approx(0.1, abs=0.02) and (preview > 1.5).all()  # a ring in the preview


def test_a_slider_value_is_kept_to_the_digits_its_text_shows(editor):
    editor.sliders["std"].value = 2.0000000000000004  # what a log slider's 10 ** x gives
    assert editor.texts["std"].value == 2.0 and editor.prior == Gaussian(3, 0.0, [2.0, 1.0, 1.0])


def front_end_step(slider, value: float) -> float:
    """Where the slider's front end puts ``value``: its nearest step (in the exponent, on a log slider)."""
    steps = round((np.log10(value) - slider.min) / slider.step)
    return float(10 ** (slider.min + steps * slider.step))


def test_a_typed_value_stays_as_typed_when_the_log_slider_snaps_it_to_its_step(editor):
    slider, text = editor.sliders["std"], editor.texts["std"]
    text.value = 0.3
    slider.value = snapped_value = front_end_step(slider, 0.3)  # the front end's echo of the slider it was sent
    assert snapped_value != pytest.approx(0.3, abs=1e-4)  # 0.3013: the step is coarser than the typed digits
    assert text.value == 0.3 and editor.prior == Gaussian(3, 0.0, [0.3, 1.0, 1.0])
    assert editor.calls == [Gaussian(3, 0.0, [0.3, 1.0, 1.0])]
    slider.value = front_end_step(slider, 0.5)  # a drag of the user's moves it further: that is an edit
    assert text.value == pytest.approx(0.5, rel=0.01) and editor.prior.std[0] == text.value

    editor.set_prior(Gaussian(3, 0.0, [0.7, 1.0, 1.0]))  # a prior shown in the controls stays as given too
    slider.value = front_end_step(slider, 0.7)
    assert text.value == 0.7 and editor.prior == Gaussian(3, 0.0, [0.7, 1.0, 1.0])
