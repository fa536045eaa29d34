"""`PriorEditor`: program the latent prior with per-dimension sliders, presets and a sketch pad, with a live preview.

Every prior is built by the real `explorer.priors` constructors, so an invalid value shows their ValueError text
and the last valid prior stays in force. Callbacks run on the main thread; the editor starts no thread. The editor
composes its parts (`DimensionControls`, `Presets`, `SketchControls`, `PriorPreview`) and keeps what they edit:
every dimension's family and values, and the joint blocks, from which it builds the prior.
"""

from __future__ import annotations

import collections
import copy
import html
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from explorer.priors import Prior, Product, Sketched, SketchedPoints
from explorer.widgets.prior_controls import DRAWN, DimensionControls, Presets, editable_families
from explorer.widgets.prior_preview import PriorPreview
from explorer.widgets.prior_sketch import SketchControls

SENT_KEPT = 256  # priors sent to the run that a snapshot may still bring back (a drag sends one per move)

__all__ = ["PriorEditor", "editable_families"]


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

    The parts that own these controls: ``dimensions`` (`DimensionControls`; its ``hint`` says what to do for a
    drawn or fixed dimension), ``presets`` (`Presets`), ``sketch`` (`SketchControls`) and ``preview``
    (`PriorPreview`; ``preview.refresh()`` redraws now).
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

        self.message = widgets.HTML()
        self.presets = Presets(latent_dim, self._preset)
        self.dimensions = DimensionControls(latent_dim, self._families, on_dim=self._on_dim,
                                            on_family=self._on_family, on_value=self._on_value)
        self.sketch = SketchControls(latent_dim, on_curve=self._on_curve, on_points=self._on_points,
                                     on_use=self._use_points, on_pair=self._on_pair)
        self.preview = PriorPreview(self.sketch.pad, preview_n, seed, self._shown, self._error)
        # the parts' controls, under the editor's own names
        self.preset_buttons = self.presets.buttons
        self.dim_select, self.apply_all = self.dimensions.dim_select, self.dimensions.apply_all
        self.family_select, self.controls = self.dimensions.family_select, self.dimensions.controls
        self.pair_x, self.pair_y, self.bandwidth = self.sketch.pair_x, self.sketch.pair_y, self.sketch.bandwidth
        self.use_points_button, self.pad = self.sketch.use_points_button, self.sketch.pad
        self.widget = widgets.VBox([self.presets.row, *self.dimensions.rows, self.message, *self.sketch.rows])
        self._run_prior = prior
        self._sent: collections.deque[Prior] = collections.deque(maxlen=SENT_KEPT)  # edits the run may yet show
        if prior is not None:
            self._load(prior)
            self._prior = prior
        self._show_dim()
        self.sketch.show_points(self._fixed)
        self.preview.refresh()

    @property
    def prior(self) -> Prior:
        """The last valid prior."""
        return self._prior

    @property
    def sliders(self) -> dict[str, widgets.FloatSlider | widgets.FloatLogSlider]:
        """The parameter sliders of the family the selected dimension shows."""
        return self.dimensions.sliders

    @property
    def texts(self) -> dict[str, widgets.FloatText]:
        """The parameter text boxes of the family the selected dimension shows."""
        return self.dimensions.texts

    def on_change(self, callback: Callable[[Prior], None]) -> None:
        """Call ``callback(prior)`` with each new valid prior."""
        self._callbacks.append(callback)

    def set_prior(self, prior: Prior, notify: bool = True) -> None:
        """Make ``prior`` current and show it in the controls; blocks they cannot show stay as fixed blocks.
        ``notify``: tell the `on_change` callbacks."""
        self._load(prior)
        self.message.value = ""
        self._show_dim()
        self.sketch.show_points(self._fixed)
        self._accept(prior, notify=notify)

    def follow(self, run_prior: Prior | None) -> None:
        """The run trains toward ``run_prior`` now: show it when the run's prior changed from elsewhere (code such
        as ``monitor.set_prior``), not when it is one this editor sent (the run takes a drag's priors one by one,
        behind the slider)."""
        if run_prior is None or run_prior == self._run_prior:
            return
        self._run_prior = run_prior
        if run_prior in self._sent:
            while self._sent.popleft() != run_prior:
                pass
        elif run_prior != self._prior:
            self.set_prior(run_prior, notify=False)

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

    # ------------------------------------------------------------------ edits reported by the parts

    def _on_family(self, family: str) -> None:
        update: dict[str, Any] = {"family": family}
        if family == DRAWN and not len(self._specs[self.dimensions.dim]["curve"][0]):
            update["curve"] = self.sketch.curve_start()
        self._edit(**update)
        self._show_dim()

    def _on_value(self, family: str, name: str, value: float) -> None:
        self._edit(value=(family, name, value))

    def _on_dim(self) -> None:
        self._show_dim()
        self.preview.request()

    def _on_pair(self) -> None:
        self.sketch.show_points(self._fixed)
        self.preview.request()

    def _on_curve(self) -> None:
        i, curve = self.dimensions.dim, self.pad.curve()
        if self._specs[i]["family"] == DRAWN and self._block_of(i) is None and len(curve[0]) >= 2:
            self._edit(curve=curve, fit=False)

    def _on_points(self) -> None:
        """Drawn points or their spread edited: a points block on the pair follows them."""
        pair = set(self.sketch.pair)
        if any(set(dims) == pair and isinstance(block, SketchedPoints) for dims, block in self._fixed):
            self._use_points()

    def _use_points(self) -> None:
        try:
            (i, j), block = self.sketch.points_block()
        except ValueError as error:
            self._error(f"sketch pad: {error}")
            return
        self._fixed = [(dims, b) for dims, b in self._fixed if not {i, j} & set(dims)] + [((i, j), block)]
        self._commit(fit=False)
        self._show_dim()

    def _preset(self, label: str, prior: Prior) -> None:
        if prior.dim != self.latent_dim:
            self._error(f"{label}: this preset has {prior.dim} dimensions, the latent space has {self.latent_dim}")
        else:
            self.set_prior(prior)

    # ------------------------------------------------------------------ state -> prior

    def _edit(self, family: str | None = None, curve: Any = None, value: tuple[str, str, float] | None = None,
              fit: bool = True) -> None:
        """Apply a family, a drawn curve or a (family, parameter, value) to the selected dimension (every dimension
        with ``apply_all``), then rebuild (and with ``fit``, move the preview's axes onto the new prior)."""
        spec = copy.deepcopy(self._specs[self.dimensions.dim])
        if family is not None:
            spec["family"] = family
        if curve is not None:
            spec["curve"] = curve
        if value is not None:
            spec["values"][value[0]][value[1]] = value[2]
        targets = self.dimensions.targets()
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

    def _accept(self, prior: Prior, fit: bool = True, notify: bool = True) -> None:
        if prior == self._prior:
            return
        self._prior = prior
        if notify:
            self._sent.append(prior)
            for callback in list(self._callbacks):
                callback(prior)
        self.preview.request(fit)

    def _error(self, text: str) -> None:
        self.message.value = f'<span style="color: #c0392b">{html.escape(text)}</span>'

    # ------------------------------------------------------------------ prior -> parts

    def _block_of(self, j: int) -> tuple[tuple[int, ...], Prior] | None:
        return next((block for block in self._fixed if j in block[0]), None)

    def _show_dim(self) -> None:
        """Show the selected dimension's family and parameters (and a sketched dimension's curve on the pad)."""
        i = self.dimensions.dim
        spec, fixed = self._specs[i], self._block_of(i)
        self.dimensions.show(spec, fixed)
        if not fixed and spec["family"] == DRAWN:
            self.pad.load_curve(*spec["curve"])

    def _shown(self) -> tuple[Prior, int, tuple[int, int]]:
        """What the preview draws: the prior, the selected dimension and the chosen pair."""
        return self._prior, self.dimensions.dim, self.sketch.pair
