"""`PriorEditor`: program the latent prior with per-dimension sliders, presets and a sketch pad, with a live preview.

Every prior is built by the real `explorer.priors` constructors, so an invalid value shows their ValueError text
and the last valid prior stays in force. Callbacks run on the main thread; the editor starts no thread.
"""

from __future__ import annotations

import asyncio
import copy
import html
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from explorer.priors import (
    Gaussian,
    Param,
    Prior,
    Product,
    Sketched,
    SketchedDensity,
    SketchedPoints,
    Uniform,
    dsprites_hybrid,
    families,
)
from explorer.widgets.sketch_pad import SketchPad

BANDWIDTH = 0.25  # default spread of each drawn point: a ring of radius 2 drawn with it stays a ring
PREVIEW_INTERVAL = 0.1  # s: a dragged slider redraws the preview at most ~10 times a second
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


def _block(cls: type[Prior], spec: dict[str, Any]) -> Prior:
    """The 1-D prior of family ``cls`` that one dimension's control values describe."""
    if cls.family == DRAWN:
        grid, density = spec["curve"]
        if len(grid) < 2:
            raise ValueError("SketchedDensity: draw a density curve of at least 2 points on the sketch pad "
                             "(x: value of the dimension, y: density)")
        return Sketched.from_density(grid, density)
    values = spec["values"][cls.family]
    return cls.from_columns(1, **{p.name: [values[p.name]] for p in cls.params})


def _merge(priors: list[Prior]) -> Prior | None:
    """The 1-D priors of dimensions 0..d-1 as one d-dimensional prior, where they share a family with columns."""
    kind = type(priors[0])
    columns = [p.columns() for p in priors]
    if any(type(p) is not kind for p in priors) or any(c is None for c in columns):
        return None
    return kind.from_columns(len(priors), **{p.name: torch.cat([c[p.name] for c in columns]) for p in kind.params})


def _specs(prior: Prior, shown: dict[str, type[Prior]]) -> list[dict[str, Any]] | None:
    """Per-dimension control values that rebuild ``prior``, or None where the controls cannot show it."""
    if shown.get(prior.family) is not type(prior):
        return None
    if prior.family == DRAWN:
        return [{"family": DRAWN, "curve": (prior.grid.numpy(), prior.density.numpy())}]
    columns = prior.columns()
    if columns is None:
        return None
    return [{"family": prior.family, "values": {name: float(column[j]) for name, column in columns.items()}}
            for j in range(prior.dim)]


def _decompose(prior: Prior, dims: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Prior]]:
    """The non-Product blocks of ``prior`` with the dimensions they occupy."""
    if isinstance(prior, Product):
        for local, block in prior.blocks:
            yield from _decompose(block, tuple(dims[j] for j in local))
    else:
        yield dims, prior


class PriorEditor:
    """Program a latent prior: per-dimension family and parameters, presets, and a sketch pad, with a live preview.

    `prior` is the last valid prior; `on_change` callbacks get each new valid one. Controls (setting a value from
    Python runs the same callback as a browser edit):

    - ``dim_select``: the dimension the family and parameter controls edit; ``apply_all``: when checked, an edit
      copies the selected dimension's family and parameters to every dimension.
    - ``family_select``: a registered family (`editable_families`: those declaring per-dimension ``params``, and
      the drawn ``sketched_density``), by its registry name; "fixed" when the dimension belongs to a joint block
      (choosing a family splits that block back into its dimensions' own settings).
    - ``sliders[name]`` / ``texts[name]``: the slider (log-scale where the parameter declares it) and FloatText of
      each parameter of the shown family, as its `Param` declares them; the text takes values beyond the slider's
      range. ``controls[family][name]`` holds the (slider, text) pair of every family.
    - ``preset_buttons[label]``: "Standard Gaussian", "Uniform [-1, 1]", "dSprites hybrid".
    - ``pair_x`` / ``pair_y``: the pair of dimensions of the scatter preview and of the 2-D sketch;
      ``use_points_button``: the drawn points become a joint `SketchedPoints` block on that pair, each point
      spread by ``bandwidth`` (later point or bandwidth edits update it). A dimension whose family is sketched
      follows the drawn density curve; choosing that family starts the curve from the dimension's current density.
    - ``pad``: the `SketchPad` (Bokeh sources of the preview and of the drawings, its drawing controls). The
      preview's axes follow the prior, except after a drawing: a stroke stays where it was drawn.
    """

    def __init__(self, latent_dim: int, prior: Prior | None = None, preview_n: int = 2000, seed: int = 0) -> None:
        if latent_dim < 1 or preview_n < 1:
            raise ValueError(f"PriorEditor: latent_dim and preview_n must be >= 1, got {latent_dim}, {preview_n}")
        self.latent_dim, self.preview_n, self.seed = latent_dim, preview_n, seed
        self._families = editable_families()
        blank = {"family": next(iter(self._families)), "curve": (np.empty(0), np.empty(0)),
                 "values": {name: {p.name: p.default for p in cls.params} for name, cls in self._families.items()}}
        self._specs = [copy.deepcopy(blank) for _ in range(latent_dim)]
        self._fixed: list[tuple[tuple[int, ...], Prior]] = []  # joint or unrepresentable blocks
        self._prior = self._assemble()
        self._callbacks: list[Callable[[Prior], None]] = []
        self._loading = False
        self._last_preview = -math.inf
        self._preview_timer: asyncio.TimerHandle | None = None
        self._fit_view = True  # the next preview moves the axes onto the prior

        dims = [(f"z{j}", j) for j in range(latent_dim)]
        self.message = widgets.HTML()
        self.dim_select = widgets.Dropdown(options=dims, value=0, description="dimension", layout={"width": "200px"})
        self.apply_all = widgets.Checkbox(value=False, description="apply to all dimensions", indent=False)
        self._family_options = [(cls.label or cls.__name__, name) for name, cls in self._families.items()]
        self.family_select = widgets.Dropdown(options=self._family_options, description="family")
        self.controls = {name: {p.name: (_slider(p), widgets.FloatText(value=p.default, layout={"width": "90px"}))
                                for p in cls.params} for name, cls in self._families.items()}
        presets = {"Standard Gaussian": lambda: Gaussian(latent_dim), "Uniform [-1, 1]": lambda: Uniform(latent_dim),
                   "dSprites hybrid": dsprites_hybrid}
        self.preset_buttons = {label: widgets.Button(description=label, layout={"width": "auto"})
                               for label in presets}
        self.pair_x = widgets.Dropdown(options=dims, value=0, description="x", layout={"width": "140px"})
        self.pair_y = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y",
                                       layout={"width": "140px"})
        self.use_points_button = widgets.Button(description="Use drawn points", tooltip="the drawn points become "
                                                "a joint sketched prior on the x and y dimensions",
                                                layout={"width": "auto"})
        self.bandwidth = widgets.FloatLogSlider(value=BANDWIDTH, base=10, min=-2, max=0.5, step=0.05,
                                                description="spread", readout_format=".2g",
                                                tooltip="the standard deviation around each drawn point",
                                                style={"description_width": "45px"}, layout={"width": "260px"})
        self.pad = SketchPad(latent_dim >= 2, on_curve=self._on_curve, on_points=self._on_points)

        for label, make in presets.items():
            self.preset_buttons[label].on_click(lambda _, make=make, label=label: self._preset(label, make))
        for family, controls in self.controls.items():
            for name, (slider, text) in controls.items():
                slider.observe(partial(self._on_slider, text), "value")
                text.observe(partial(self._on_text, family, name, slider), "value")
        self.dim_select.observe(self._on_dim, "value")
        self.family_select.observe(self._on_family, "value")
        self.pair_x.observe(self._on_pair, "value")
        self.pair_y.observe(self._on_pair, "value")
        self.use_points_button.on_click(lambda _: self._use_points())
        self.bandwidth.observe(lambda _: self._on_points(), "value")
        self.pad.reset_button.on_click(lambda _: self._request_preview(fit=True))

        self._rows = {family: [widgets.HBox(list(pair)) for pair in controls.values()]
                      for family, controls in self.controls.items()}
        self.hint = widgets.HTML()
        self._params_box = widgets.VBox()
        pair_row = [widgets.HBox([self.pair_x, self.pair_y, self.use_points_button]),
                    self.bandwidth] if latent_dim >= 2 else []
        self.widget = widgets.VBox([widgets.HBox(list(self.preset_buttons.values()), layout={"flex_flow": "row wrap"}),
                                    widgets.HBox([self.dim_select, self.apply_all]), self.family_select,
                                    self._params_box, self.message, *pair_row, self.pad.controls, self.pad.widget])
        if prior is not None:
            self._load(prior)
            self._prior = prior
        self._show_dim()
        self._show_pair()
        self._refresh_preview()

    @property
    def prior(self) -> Prior:
        """The last valid prior."""
        return self._prior

    @property
    def sliders(self) -> dict[str, widgets.FloatSlider | widgets.FloatLogSlider]:
        """The parameter sliders of the family the selected dimension shows."""
        return {name: slider for name, (slider, _) in self.controls.get(self._shown_family(), {}).items()}

    @property
    def texts(self) -> dict[str, widgets.FloatText]:
        """The parameter text boxes of the family the selected dimension shows."""
        return {name: text for name, (_, text) in self.controls.get(self._shown_family(), {}).items()}

    def on_change(self, callback: Callable[[Prior], None]) -> None:
        """Call ``callback(prior)`` with each new valid prior."""
        self._callbacks.append(callback)

    def set_prior(self, prior: Prior) -> None:
        """Make ``prior`` current and show it in the controls; blocks they cannot show stay as fixed blocks."""
        self._load(prior)
        self.message.value = ""
        self._show_dim()
        self._show_pair()
        self._accept(prior)

    def _load(self, prior: Prior) -> None:
        """Put ``prior`` into the per-dimension control values, and its other blocks into the fixed blocks."""
        if not isinstance(prior, Prior) or prior.dim != self.latent_dim:
            raise ValueError(f"PriorEditor: prior must be a Prior of dim {self.latent_dim}, got {prior!r}")
        self._fixed = []
        for dims, block in _decompose(prior, tuple(range(self.latent_dim))):
            specs = _specs(block, self._families)
            if specs is None:
                self._fixed.append((dims, block))
                continue
            for j, spec in zip(dims, specs, strict=True):
                self._specs[j]["family"] = spec["family"]
                if "curve" in spec:
                    self._specs[j]["curve"] = spec["curve"]
                else:
                    self._specs[j]["values"][spec["family"]].update(spec["values"])

    # ------------------------------------------------------------------ control callbacks

    def _on_slider(self, text: widgets.FloatText, change: dict[str, Any]) -> None:
        if not self._loading:  # the text holds the value, as many digits as it shows; its callback edits
            text.value = float(f"{change['new']:.{SHOWN_DIGITS}g}")

    def _on_text(self, family: str, name: str, slider: widgets.FloatSlider, change: dict[str, Any]) -> None:
        if self._loading:
            return
        with self._quiet():
            slider.value = change["new"]  # clamped to the slider's range; the text keeps the value
        self._edit(value=(family, name, change["new"]))

    def _on_family(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        update = {"family": change["new"]}
        if change["new"] == DRAWN and not len(self._specs[self.dim_select.value]["curve"][0]):
            drawn = self.pad.curve()  # what is drawn, else the density shown: the prior stays until a stroke
            update["curve"] = drawn if len(drawn[0]) >= 2 else self.pad.shown_density()
        self._edit(**update)
        self._show_dim()

    def _on_dim(self, _change: dict[str, Any]) -> None:
        self._show_dim()
        self._request_preview()

    def _on_pair(self, _change: dict[str, Any]) -> None:
        self._show_pair()
        self._request_preview()

    def _on_curve(self) -> None:
        i, curve = self.dim_select.value, self.pad.curve()
        if self._specs[i]["family"] == DRAWN and self._block_of(i) is None and len(curve[0]) >= 2:
            self._edit(curve=curve, fit=False)

    def _on_points(self) -> None:
        if self._loading:
            return
        pair = {self.pair_x.value, self.pair_y.value}
        if any(set(dims) == pair and isinstance(block, SketchedPoints) for dims, block in self._fixed):
            self._use_points()

    def _use_points(self) -> None:
        i, j = self.pair_x.value, self.pair_y.value
        if i == j:
            self._error("sketch pad: choose two different dimensions for x and y")
            return
        try:
            block = Sketched.from_points(self.pad.points(), bandwidth=self.bandwidth.value)
        except ValueError as error:
            self._error(f"sketch pad: {error}")
            return
        self._fixed = [(dims, b) for dims, b in self._fixed if not {i, j} & set(dims)] + [((i, j), block)]
        self._commit(fit=False)
        self._show_dim()

    def _preset(self, label: str, make: Callable[[], Prior]) -> None:
        prior = make()
        if prior.dim != self.latent_dim:
            self._error(f"{label}: this preset has {prior.dim} dimensions, the latent space has {self.latent_dim}")
        else:
            self.set_prior(prior)

    # ------------------------------------------------------------------ state -> prior

    def _edit(self, family: str | None = None, curve: Any = None, value: tuple[str, str, float] | None = None,
              fit: bool = True) -> None:
        """Apply a family, a drawn curve or a (family, parameter, value) to the selected dimension (every dimension
        with ``apply_all``), then rebuild (and with ``fit``, move the preview's axes onto the new prior)."""
        spec = copy.deepcopy(self._specs[self.dim_select.value])
        if family is not None:
            spec["family"] = family
        if curve is not None:
            spec["curve"] = curve
        if value is not None:
            spec["values"][value[0]][value[1]] = value[2]
        targets = set(range(self.latent_dim)) if self.apply_all.value else {self.dim_select.value}
        for j in targets:
            self._specs[j] = copy.deepcopy(spec)
        self._fixed = [(dims, block) for dims, block in self._fixed if not targets & set(dims)]
        self._commit(fit)

    def _assemble(self) -> Prior:
        """The prior the controls describe: one family when every dimension shares it, else a `Product`."""
        covered = {j for dims, _ in self._fixed for j in dims}
        singles = []
        for j in range(self.latent_dim):
            if j not in covered:
                try:
                    singles.append(((j,), _block(self._families[self._specs[j]["family"]], self._specs[j])))
                except ValueError as error:
                    raise ValueError(f"z{j}: {error}") from None
        merged = None if self._fixed else _merge([block for _, block in singles])
        if merged is not None:
            return merged
        blocks = sorted([*self._fixed, *singles], key=lambda b: min(b[0]))
        if len(blocks) == 1 and blocks[0][0] == tuple(range(self.latent_dim)):
            return blocks[0][1]
        return Product(blocks)

    def _commit(self, fit: bool = True) -> None:
        try:
            prior = self._assemble()
        except ValueError as error:
            self._error(str(error))
            return
        self.message.value = ""
        self._accept(prior, fit)

    def _accept(self, prior: Prior, fit: bool = True) -> None:
        if prior == self._prior:
            return
        self._prior = prior
        for callback in list(self._callbacks):
            callback(prior)
        self._request_preview(fit)

    def _error(self, text: str) -> None:
        self.message.value = f'<span style="color: #c0392b">{html.escape(text)}</span>'

    # ------------------------------------------------------------------ prior -> controls and preview

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Set controls from Python without running their callbacks."""
        loading, self._loading = self._loading, True
        try:
            yield
        finally:
            self._loading = loading

    def _block_of(self, j: int) -> tuple[tuple[int, ...], Prior] | None:
        return next((block for block in self._fixed if j in block[0]), None)

    def _shown_family(self) -> str:
        i = self.dim_select.value
        return FIXED if self._block_of(i) else self._specs[i]["family"]

    def _show_dim(self) -> None:
        """Show the selected dimension's family and parameters (and a sketched dimension's curve on the pad)."""
        i = self.dim_select.value
        spec, fixed = self._specs[i], self._block_of(i)
        family = self._shown_family()
        with self._quiet():
            options = self._family_options
            if fixed:
                names = ", ".join(f"z{j}" for j in fixed[0])
                options = [*options, (f"fixed: {type(fixed[1]).__name__} on {names}", FIXED)]
            self.family_select.options = options
            self.family_select.value = family
            for name, (slider, text) in self.controls.get(family, {}).items():
                text.value = slider.value = spec["values"][family][name]
            if family == DRAWN:
                self.pad.load_curve(*spec["curve"])
        hints = {DRAWN: f"Draw the density of z{i} on the sketch pad (freehand tool; x: z{i}, y: density).",
                 FIXED: "A block the sliders cannot show; choose a family to replace it."}
        self.hint.value = hints.get(family, "")
        rows = self._rows.get(family, [])
        self._params_box.children = [*rows, self.hint] if family in hints else rows

    def _show_pair(self) -> None:
        """Show the drawn points of a sketched block on the selected pair of dimensions."""
        i, j = self.pair_x.value, self.pair_y.value
        for dims, block in self._fixed:
            if i != j and set(dims) == {i, j} and isinstance(block, SketchedPoints):
                self.pad.load_points(block.points.numpy()[:, [dims.index(i), dims.index(j)]])
                with self._quiet():
                    self.bandwidth.value = float(block.bandwidth.mean())

    def _request_preview(self, fit: bool = True) -> None:
        """Redraw the preview now, or at the end of a burst of edits: at most once per PREVIEW_INTERVAL; ``fit``
        moves its axes onto the prior (a drawing asks not to)."""
        self._fit_view = self._fit_view or fit
        if self._preview_timer is not None:
            return  # already scheduled; it will show the newest prior
        wait = self._last_preview + PREVIEW_INTERVAL - time.monotonic()
        if wait > 0:
            try:
                loop = asyncio.get_running_loop()  # the kernel's event loop, on the main thread
            except RuntimeError:
                loop = None  # plain Python: redraw now
            if loop is not None:
                self._preview_timer = loop.call_later(wait, self._refresh_preview)
                return
        self._refresh_preview()

    def _refresh_preview(self) -> None:
        self._preview_timer = None
        self._last_preview = time.monotonic()
        fit, self._fit_view = self._fit_view, False
        try:  # a callback: a prior the preview cannot draw shows why, and never raises into the front end
            samples = self._prior.sample(self.preview_n, torch.Generator().manual_seed(self.seed)).numpy()
            self.pad.show(self._prior, samples, self.dim_select.value, (self.pair_x.value, self.pair_y.value), fit)
        except (ValueError, RuntimeError) as error:
            self._error(f"preview: {error}")
