"""`PriorEditor`: program the latent prior with per-dimension sliders, presets and a sketch pad, with a live preview.

Every prior is built by the real `explorer.priors` constructors, so an invalid value shows their ValueError text
and the last valid prior stays in force. Callbacks run on the main thread; the editor starts no thread.
"""

from __future__ import annotations

import asyncio
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
    GaussianMixture,
    Laplace,
    Prior,
    Product,
    Sketched,
    SketchedDensity,
    SketchedPoints,
    Uniform,
    dsprites_hybrid,
)
from explorer.widgets.sketch_pad import SketchPad

PREVIEW_INTERVAL = 0.1  # s: a dragged slider redraws the preview at most ~10 times a second

FAMILIES = (("Gaussian", "gaussian"), ("Uniform", "uniform"), ("Laplace", "laplace"),
            ("Bimodal (two modes)", "bimodal"), ("Sketched (draw it)", "sketched"))
PARAMS = {"gaussian": ("mean", "std"), "uniform": ("low", "high"), "laplace": ("loc", "scale"),
          "bimodal": ("mode1", "mode2", "mode_std", "weight"), "sketched": (), "fixed": ()}
# name: (label, slider min, slider max, step, default); the FloatText beside each slider takes any value
SLIDERS = {
    "mean": ("mean", -10.0, 10.0, 0.05, 0.0), "std": ("std", 0.05, 5.0, 0.05, 1.0),
    "low": ("low", -10.0, 10.0, 0.05, -1.0), "high": ("high", -10.0, 10.0, 0.05, 1.0),
    "loc": ("loc", -10.0, 10.0, 0.05, 0.0), "scale": ("scale", 0.05, 5.0, 0.05, 1.0),
    "mode1": ("mode 1", -10.0, 10.0, 0.05, -2.0), "mode2": ("mode 2", -10.0, 10.0, 0.05, 2.0),
    "mode_std": ("mode std", 0.05, 5.0, 0.05, 0.5), "weight": ("weight 1", 0.0, 1.0, 0.01, 0.5),
}
_SIMPLE = {"gaussian": Gaussian, "uniform": Uniform, "laplace": Laplace}  # spec keys = constructor arguments


def _block(spec: dict[str, Any]) -> Prior:
    """The 1-D prior one dimension's control values describe."""
    family = spec["family"]
    if family in _SIMPLE:
        return _SIMPLE[family](1, *(spec[name] for name in PARAMS[family]))
    if family == "bimodal":
        weight = spec["weight"]
        return GaussianMixture([spec["mode1"], spec["mode2"]], spec["mode_std"], [weight, 1 - weight])
    grid, density = spec["curve"]
    if len(grid) < 2:
        raise ValueError("sketched: draw a density curve of at least 2 points on the sketch pad "
                         "(x: value of the dimension, y: density)")
    return Sketched.from_density(grid, density)


def _merge(priors: list[Prior]) -> Prior | None:
    """The 1-D priors of dimensions 0..d-1 as one d-dimensional prior, where they share a family."""
    kind = type(priors[0])
    if any(type(p) is not kind for p in priors):
        return None
    for family, cls in _SIMPLE.items():
        if kind is cls:
            return cls(len(priors), *(torch.cat([getattr(p, a) for p in priors]) for a in PARAMS[family]))
    if kind is GaussianMixture:
        return GaussianMixture(*(torch.cat([getattr(p, a) for p in priors], 1) for a in ("means", "stds", "weights")))
    return None


def _specs(prior: Prior) -> list[dict[str, Any]] | None:
    """Per-dimension control values that rebuild ``prior``, or None where the controls cannot show it."""
    for family, cls in _SIMPLE.items():
        if isinstance(prior, cls) and getattr(prior, "cov", None) is None:
            columns = zip(*(getattr(prior, a).tolist() for a in PARAMS[family]), strict=True)
            return [{"family": family, **dict(zip(PARAMS[family], values, strict=True))} for values in columns]
    if (isinstance(prior, GaussianMixture) and not prior.joint and len(prior.means) == 2
            and torch.equal(prior.stds[0], prior.stds[1])):
        return [{"family": "bimodal", "mode1": m[0], "mode2": m[1], "mode_std": s[0], "weight": w[0]}
                for m, s, w in zip(prior.means.T.tolist(), prior.stds.T.tolist(), prior.weights.T.tolist(),
                                   strict=True)]
    if isinstance(prior, SketchedDensity):
        return [{"family": "sketched", "curve": (prior.grid.numpy(), prior.density.numpy())}]
    return None


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
    - ``family_select``: gaussian, uniform, laplace, bimodal or sketched ("fixed" when the dimension belongs to a
      joint block; choosing a family splits that block back into its dimensions' own settings).
    - ``sliders[name]`` / ``texts[name]``: FloatSlider and FloatText per parameter (mean, std, low, high, loc,
      scale, mode1, mode2, mode_std, weight = weight of mode 1); the text takes values beyond the slider's range.
    - ``preset_buttons[label]``: "Standard Gaussian", "Uniform [-1, 1]", "dSprites hybrid".
    - ``pair_x`` / ``pair_y``: the pair of dimensions of the scatter preview and of the 2-D sketch;
      ``use_points_button``: the drawn points become a joint `SketchedPoints` block on that pair (later point
      edits update it). A dimension whose family is sketched follows the drawn density curve.
    - ``pad``: the `SketchPad` (Bokeh sources of the preview and of the drawings).
    """

    def __init__(self, latent_dim: int, prior: Prior | None = None, preview_n: int = 2000, seed: int = 0) -> None:
        if latent_dim < 1 or preview_n < 1:
            raise ValueError(f"PriorEditor: latent_dim and preview_n must be >= 1, got {latent_dim}, {preview_n}")
        self.latent_dim, self.preview_n, self.seed = latent_dim, preview_n, seed
        blank = {"family": "gaussian", "curve": (np.empty(0), np.empty(0)), **{n: row[4] for n, row in SLIDERS.items()}}
        self._specs = [dict(blank) for _ in range(latent_dim)]
        self._fixed: list[tuple[tuple[int, ...], Prior]] = []  # joint or unrepresentable blocks
        self._prior = self._assemble()
        self._callbacks: list[Callable[[Prior], None]] = []
        self._loading = False
        self._last_preview = -math.inf
        self._preview_timer: asyncio.TimerHandle | None = None

        dims = [(f"z{j}", j) for j in range(latent_dim)]
        self.message = widgets.HTML()
        self.dim_select = widgets.Dropdown(options=dims, value=0, description="dimension", layout={"width": "200px"})
        self.apply_all = widgets.Checkbox(value=False, description="apply to all dimensions", indent=False)
        self.family_select = widgets.Dropdown(options=FAMILIES, description="family")
        self.sliders = {name: widgets.FloatSlider(value=default, min=low, max=high, step=step, description=label,
                                                  readout=False)
                        for name, (label, low, high, step, default) in SLIDERS.items()}
        self.texts = {name: widgets.FloatText(value=row[4], layout={"width": "90px"}) for name, row in SLIDERS.items()}
        presets = {"Standard Gaussian": lambda: Gaussian(latent_dim), "Uniform [-1, 1]": lambda: Uniform(latent_dim),
                   "dSprites hybrid": dsprites_hybrid}
        self.preset_buttons = {label: widgets.Button(description=label) for label in presets}
        self.pair_x = widgets.Dropdown(options=dims, value=0, description="x", layout={"width": "140px"})
        self.pair_y = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y",
                                       layout={"width": "140px"})
        self.use_points_button = widgets.Button(description="Use drawn points", tooltip="the drawn points become "
                                                "a joint sketched prior on the x and y dimensions")
        self.pad = SketchPad(latent_dim >= 2, on_curve=self._on_curve, on_points=self._on_points)

        for label, make in presets.items():
            self.preset_buttons[label].on_click(lambda _, make=make, label=label: self._preset(label, make))
        for name in SLIDERS:
            self.sliders[name].observe(partial(self._on_slider, name), "value")
            self.texts[name].observe(partial(self._on_text, name), "value")
        self.dim_select.observe(self._on_dim, "value")
        self.family_select.observe(self._on_family, "value")
        self.pair_x.observe(self._on_pair, "value")
        self.pair_y.observe(self._on_pair, "value")
        self.use_points_button.on_click(lambda _: self._use_points())

        self._rows = {name: widgets.HBox([self.sliders[name], self.texts[name]]) for name in SLIDERS}
        self._hint = widgets.HTML()
        self._params_box = widgets.VBox()
        pair_row = [widgets.HBox([self.pair_x, self.pair_y, self.use_points_button])] if latent_dim >= 2 else []
        self.widget = widgets.VBox([widgets.HBox(list(self.preset_buttons.values())),
                                    widgets.HBox([self.dim_select, self.apply_all]), self.family_select,
                                    self._params_box, self.message, *pair_row, self.pad.widget])
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
            specs = _specs(block)
            if specs is None:
                self._fixed.append((dims, block))
                continue
            for j, spec in zip(dims, specs, strict=True):
                self._specs[j] = {**self._specs[j], **spec}

    # ------------------------------------------------------------------ control callbacks

    def _on_slider(self, name: str, change: dict[str, Any]) -> None:
        if not self._loading:
            self.texts[name].value = change["new"]  # the text holds the value; its callback edits

    def _on_text(self, name: str, change: dict[str, Any]) -> None:
        if self._loading:
            return
        with self._quiet():
            self.sliders[name].value = change["new"]  # clamped to the slider's range; the text keeps the value
        self._edit({name: change["new"]})

    def _on_family(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        update = {"family": change["new"]}
        if change["new"] == "sketched" and not len(self._specs[self.dim_select.value]["curve"][0]):
            update["curve"] = self.pad.curve()
        self._edit(update)
        self._show_dim()

    def _on_dim(self, _change: dict[str, Any]) -> None:
        self._show_dim()
        self._request_preview()

    def _on_pair(self, _change: dict[str, Any]) -> None:
        self._show_pair()
        self._request_preview()

    def _on_curve(self) -> None:
        i = self.dim_select.value
        if self._specs[i]["family"] == "sketched" and self._block_of(i) is None:
            self._edit({"curve": self.pad.curve()})

    def _on_points(self) -> None:
        pair = {self.pair_x.value, self.pair_y.value}
        if any(set(dims) == pair and isinstance(block, SketchedPoints) for dims, block in self._fixed):
            self._use_points()

    def _use_points(self) -> None:
        i, j = self.pair_x.value, self.pair_y.value
        if i == j:
            self._error("sketch pad: choose two different dimensions for x and y")
            return
        try:
            block = Sketched.from_points(self.pad.points())
        except ValueError as error:
            self._error(f"sketch pad: {error}")
            return
        self._fixed = [(dims, b) for dims, b in self._fixed if not {i, j} & set(dims)] + [((i, j), block)]
        self._commit()
        self._show_dim()

    def _preset(self, label: str, make: Callable[[], Prior]) -> None:
        prior = make()
        if prior.dim != self.latent_dim:
            self._error(f"{label}: this preset has {prior.dim} dimensions, the latent space has {self.latent_dim}")
        else:
            self.set_prior(prior)

    # ------------------------------------------------------------------ state -> prior

    def _edit(self, update: dict[str, Any]) -> None:
        """Apply control values to the selected dimension (every dimension with ``apply_all``), then rebuild."""
        spec = {**self._specs[self.dim_select.value], **update}
        targets = set(range(self.latent_dim)) if self.apply_all.value else {self.dim_select.value}
        for j in targets:
            self._specs[j] = dict(spec)
        self._fixed = [(dims, block) for dims, block in self._fixed if not targets & set(dims)]
        self._commit()

    def _assemble(self) -> Prior:
        """The prior the controls describe: one family when every dimension shares it, else a `Product`."""
        covered = {j for dims, _ in self._fixed for j in dims}
        singles = []
        for j in range(self.latent_dim):
            if j not in covered:
                try:
                    singles.append(((j,), _block(self._specs[j])))
                except ValueError as error:
                    raise ValueError(f"z{j}: {error}") from None
        merged = None if self._fixed else _merge([block for _, block in singles])
        if merged is not None:
            return merged
        blocks = sorted([*self._fixed, *singles], key=lambda b: min(b[0]))
        if len(blocks) == 1 and blocks[0][0] == tuple(range(self.latent_dim)):
            return blocks[0][1]
        return Product(blocks)

    def _commit(self) -> None:
        try:
            prior = self._assemble()
        except ValueError as error:
            self._error(str(error))
            return
        self.message.value = ""
        self._accept(prior)

    def _accept(self, prior: Prior) -> None:
        if prior == self._prior:
            return
        self._prior = prior
        for callback in list(self._callbacks):
            callback(prior)
        self._request_preview()

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

    def _show_dim(self) -> None:
        """Show the selected dimension's family and parameters (and a sketched dimension's curve on the pad)."""
        i = self.dim_select.value
        spec, fixed = self._specs[i], self._block_of(i)
        family = "fixed" if fixed else spec["family"]
        with self._quiet():
            options = FAMILIES
            if fixed:
                names = ", ".join(f"z{j}" for j in fixed[0])
                options = (*FAMILIES, (f"fixed: {type(fixed[1]).__name__} on {names}", "fixed"))
            self.family_select.options = options
            self.family_select.value = family
            for name in SLIDERS:
                self.texts[name].value = self.sliders[name].value = spec[name]
            if family == "sketched":
                self.pad.load_curve(*spec["curve"])
        hints = {"sketched": f"Draw the density of z{i} on the sketch pad (freehand tool; x: z{i}, y: density).",
                 "fixed": "A block the sliders cannot show; choose a family to replace it."}
        self._hint.value = hints.get(family, "")
        rows = [self._rows[name] for name in PARAMS[family]]
        self._params_box.children = [*rows, self._hint] if family in hints else rows

    def _show_pair(self) -> None:
        """Show the drawn points of a sketched block on the selected pair of dimensions."""
        i, j = self.pair_x.value, self.pair_y.value
        for dims, block in self._fixed:
            if i != j and set(dims) == {i, j} and isinstance(block, SketchedPoints):
                self.pad.load_points(block.points.numpy()[:, [dims.index(i), dims.index(j)]])

    def _request_preview(self) -> None:
        """Redraw the preview now, or at the end of a burst of edits: at most once per PREVIEW_INTERVAL."""
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
        try:  # a callback: a prior the preview cannot draw shows why, and never raises into the front end
            samples = self._prior.sample(self.preview_n, torch.Generator().manual_seed(self.seed)).numpy()
            self.pad.show(self._prior, samples, self.dim_select.value, (self.pair_x.value, self.pair_y.value))
        except (ValueError, RuntimeError) as error:
            self._error(f"preview: {error}")
