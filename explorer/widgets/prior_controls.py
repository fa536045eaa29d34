"""The prior editor's ipywidgets controls: one dimension's family and parameters, and the preset buttons.

The controls only show values and report edits; the `PriorEditor` keeps every dimension's values and builds the
prior from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import ipywidgets as widgets

from explorer.priors import Gaussian, Param, Prior, SketchedDensity, Uniform, dsprites_hybrid, families

SLIDER_STEPS = 400  # a slider's range in this many steps (of the exponent for a log-scale parameter)
SHOWN_DIGITS = 4  # significant digits a slider's value keeps in its text box (and in the prior)
DRAWN = SketchedDensity.family  # the family whose dimension follows the curve drawn on the sketch pad
FIXED = "fixed"  # a dimension inside a block the sliders cannot show


def editable_families() -> dict[str, type[Prior]]:
    """The registered families the editor offers: those that declare per-dimension ``params``, and the drawn one."""
    return {name: cls for name, cls in families().items() if cls.params or name == DRAWN}


def _slider(param: Param) -> widgets.FloatSlider | widgets.FloatLogSlider:
    label = param.label or param.name
    if param.scale == "log":
        low, high = math.log10(param.low), math.log10(param.high)
        return widgets.FloatLogSlider(value=param.default, base=10, min=low, max=high, step=(high - low) / SLIDER_STEPS,
                                      description=label, readout=False)
    return widgets.FloatSlider(value=param.default, min=param.low, max=param.high,
                               step=(param.high - param.low) / SLIDER_STEPS, description=label, readout=False)


def _position(slider: widgets.FloatSlider | widgets.FloatLogSlider, value: float) -> float:
    """Where ``value`` sits on the slider's track, in the unit of its step (the exponent on a log slider)."""
    return math.log10(value) if isinstance(slider, widgets.FloatLogSlider) else value


def snapped(slider: widgets.FloatSlider | widgets.FloatLogSlider, value: float, given: float) -> bool:
    """``value`` is the slider's front end moving ``given`` to its nearest step (0.3 read back as 0.3013 on a log
    slider), not a move of the user's."""
    if value <= 0 and isinstance(slider, widgets.FloatLogSlider):
        return False
    return abs(_position(slider, value) - _position(slider, given)) <= slider.step / 2 * (1 + 1e-9)


class Quiet:
    """Set while Python, not the user, sets controls: their observers then report no edit. ``with quiet():``."""

    def __init__(self) -> None:
        self.on = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        previous, self.on = self.on, True
        try:
            yield
        finally:
            self.on = previous


class DimensionControls:
    """The selected dimension's family and parameter controls, built from each family's `Param` declarations.

    ``dim_select`` picks the dimension, ``apply_all`` makes an edit apply to every dimension, ``family_select``
    offers the ``families`` by registry name (and "fixed" for a dimension inside a joint block), and
    ``controls[family][name]`` is the (slider, FloatText) pair of each parameter; the text takes values beyond the
    slider's range. `show` puts a dimension's values in the controls without reporting them as edits; a user's edit
    is reported through ``on_dim()``, ``on_family(family)`` or ``on_value(family, name, value)``. ``hint`` says
    what to do where the family has no sliders (a drawn or a fixed dimension).
    """

    def __init__(self, latent_dim: int, families: dict[str, type[Prior]], on_dim: Callable[[], None],
                 on_family: Callable[[str], None], on_value: Callable[[str, str, float], None]) -> None:
        self.latent_dim = latent_dim
        self._on_family_edit, self._on_value_edit = on_family, on_value
        self.quiet = Quiet()
        self.shown = next(iter(families))  # the family whose controls show: a registry name, or FIXED
        self.dim_select = widgets.Dropdown(options=[(f"z{j}", j) for j in range(latent_dim)], value=0,
                                          description="dimension", layout={"width": "200px"})
        self.apply_all = widgets.Checkbox(value=False, description="apply to all dimensions", indent=False)
        self._family_options = [(cls.label or cls.__name__, name) for name, cls in families.items()]
        self.family_select = widgets.Dropdown(options=self._family_options, description="family")
        self.controls = {name: {p.name: (_slider(p), widgets.FloatText(value=p.default, layout={"width": "90px"}))
                                for p in cls.params} for name, cls in families.items()}
        self._given: dict[int, float] = {}  # id(slider) -> the value set from its text or a prior (not dragged)
        for family, controls in self.controls.items():
            for name, (slider, text) in controls.items():
                slider.observe(partial(self._on_slider, slider, text), "value")
                text.observe(partial(self._on_text, family, name, slider), "value")
        self.dim_select.observe(lambda _: on_dim(), "value")
        self.family_select.observe(self._on_family, "value")
        self._rows = {family: [widgets.HBox(list(pair)) for pair in controls.values()]
                      for family, controls in self.controls.items()}
        self.hint = widgets.HTML()
        self._params_box = widgets.VBox()
        self.rows = [widgets.HBox([self.dim_select, self.apply_all]), self.family_select, self._params_box]

    @property
    def dim(self) -> int:
        """The selected dimension."""
        return self.dim_select.value

    def targets(self) -> set[int]:
        """The dimensions an edit applies to: the selected one, or every one with ``apply_all``."""
        return set(range(self.latent_dim)) if self.apply_all.value else {self.dim}

    @property
    def sliders(self) -> dict[str, widgets.FloatSlider | widgets.FloatLogSlider]:
        """The parameter sliders of the shown family."""
        return {name: slider for name, (slider, _) in self.controls.get(self.shown, {}).items()}

    @property
    def texts(self) -> dict[str, widgets.FloatText]:
        """The parameter text boxes of the shown family."""
        return {name: text for name, (_, text) in self.controls.get(self.shown, {}).items()}

    def show(self, spec: dict[str, Any], fixed: tuple[tuple[int, ...], Prior] | None) -> None:
        """Show the selected dimension: its family and parameter values from ``spec``, or ``fixed``, the joint
        block it belongs to."""
        i = self.dim
        self.shown = family = FIXED if fixed else spec["family"]
        with self.quiet():
            options = self._family_options
            if fixed:
                names = ", ".join(f"z{j}" for j in fixed[0])
                options = [*options, (f"fixed: {type(fixed[1]).__name__} on {names}", FIXED)]
            self.family_select.options = options
            self.family_select.value = family
            for name, (slider, text) in self.controls.get(family, {}).items():
                text.value = spec["values"][family][name]
                self._follow(slider, text.value)
        hints = {DRAWN: f"Draw the density of z{i} on the sketch pad (freehand tool; x: z{i}, y: density).",
                 FIXED: "A block the sliders cannot show; choose a family to replace it."}
        self.hint.value = hints.get(family, "")
        rows = self._rows.get(family, [])
        self._params_box.children = [*rows, self.hint] if family in hints else rows

    def _follow(self, slider: widgets.FloatSlider | widgets.FloatLogSlider, value: float) -> None:
        """Move ``slider`` to a value given elsewhere (clamped to its range), as the user's edit of nothing."""
        with self.quiet():
            slider.value = value
        self._given[id(slider)] = slider.value

    def _on_slider(self, slider: widgets.FloatSlider | widgets.FloatLogSlider, text: widgets.FloatText,
                   change: dict[str, Any]) -> None:
        given = self._given.get(id(slider))
        if self.quiet.on or (given is not None and snapped(slider, change["new"], given)):
            return  # typed values stay as typed: the text, not the slider's step, holds the value
        self._given.pop(id(slider), None)
        text.value = float(f"{change['new']:.{SHOWN_DIGITS}g}")  # as many digits as it shows; its callback edits

    def _on_text(self, family: str, name: str, slider: widgets.FloatSlider, change: dict[str, Any]) -> None:
        if self.quiet.on:
            return
        self._follow(slider, change["new"])  # the slider follows; the text keeps the value
        self._on_value_edit(family, name, change["new"])

    def _on_family(self, change: dict[str, Any]) -> None:
        if not self.quiet.on:
            self._on_family_edit(change["new"])


class Presets:
    """One button per ready-made prior (``buttons[label]``); a click calls ``on_choose(label, prior)``."""

    def __init__(self, latent_dim: int, on_choose: Callable[[str, Prior], None]) -> None:
        makers: dict[str, Callable[[], Prior]] = {"Standard Gaussian": lambda: Gaussian(latent_dim),
                                                  "Uniform [-1, 1]": lambda: Uniform(latent_dim),
                                                  "dSprites hybrid": dsprites_hybrid}
        self.buttons = {label: widgets.Button(description=label, layout={"width": "auto"}) for label in makers}
        for label, make in makers.items():
            self.buttons[label].on_click(lambda _, make=make, label=label: on_choose(label, make()))
        self.row = widgets.HBox(list(self.buttons.values()), layout={"flex_flow": "row wrap"})
