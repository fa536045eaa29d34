"""`PriorPreview`: keeps the sketch pad's preview of the prior's samples current without slowing a slider drag."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import torch

from explorer.priors import Prior
from explorer.widgets.sketch_pad import SketchPad

PREVIEW_INTERVAL = 0.1  # s: a dragged slider redraws the preview at most ~10 times a second


class PriorPreview:
    """Draws ``n`` samples of the prior (seeded by ``seed``) on ``pad``, with its density.

    ``shown()`` gives what to draw when the redraw runs: (prior, dimension, pair of dimensions), so that a
    deferred redraw shows the newest prior. A redraw that fails reports its reason to ``on_error`` instead of
    raising into the front end. The pad's Reset view button asks for a redraw that fits the axes to the prior.
    """

    def __init__(self, pad: SketchPad, n: int, seed: int, shown: Callable[[], tuple[Prior, int, tuple[int, int]]],
                 on_error: Callable[[str], None]) -> None:
        self.pad, self.n, self.seed = pad, n, seed
        self._shown, self._on_error = shown, on_error
        self._last = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._fit = True  # the next redraw moves the axes onto the prior
        pad.reset_button.on_click(lambda _: self.request(fit=True))

    def request(self, fit: bool = True) -> None:
        """Redraw now, or at the end of a burst of edits: at most once per PREVIEW_INTERVAL; ``fit`` moves the
        axes onto the prior (a drawing asks not to)."""
        self._fit = self._fit or fit
        if self._timer is not None:
            return  # already scheduled; it will show the newest prior
        wait = self._last + PREVIEW_INTERVAL - time.monotonic()
        if wait > 0:
            try:
                loop = asyncio.get_running_loop()  # the kernel's event loop, on the main thread
            except RuntimeError:
                loop = None  # plain Python: redraw now
            if loop is not None:
                self._timer = loop.call_later(wait, self.refresh)
                return
        self.refresh()

    def refresh(self) -> None:
        """Redraw now."""
        self._timer = None
        self._last = time.monotonic()
        fit, self._fit = self._fit, False
        prior, dim, pair = self._shown()
        try:  # a callback: a prior the preview cannot draw shows why, and never raises into the front end
            samples = prior.sample(self.n, torch.Generator().manual_seed(self.seed)).numpy()
            self.pad.show(prior, samples, dim, pair, fit)
        except (ValueError, RuntimeError) as error:
            self._on_error(f"preview: {error}")
