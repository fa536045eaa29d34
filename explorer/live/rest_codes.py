"""At rest (paused, stopped, a checkpoint opened) the views show the codes of many more dataset rows than the live
probe: a worker encodes the probe's order further, `SLICE_ROWS` rows at a time with its own copy of the model, and
the codes shown grow after 1 s, then at growing intervals, so the scatter fills in with visible progress instead of
freezing."""

from __future__ import annotations

import concurrent.futures
import copy
import threading
import time
from collections.abc import Callable, Hashable

import numpy as np
import torch

from explorer.live.probe import SLICE_ROWS, Probe, encode
from explorer.models import AutoEncoder

REST_CODES = 100_000  # codes shown at rest: the most the scatter draws readably (WebGL, faint points)
SHOW_FIRST_S = 1.0  # the codes shown first grow after this long, then after 1.5 times longer each time: each
SHOW_GROWTH = 1.5  # redraw costs in proportion to the codes drawn, so a few steps show progress at little cost


class RestCodes:
    """Up to ``n`` codes of the probe's order, encoded at rest; ``on_more`` is called from the worker when more are
    ready (the owner then publishes them)."""

    def __init__(self, probe: Probe, n: int, on_more: Callable[[], object]) -> None:
        self.probe, self.n, self.on_more = probe, min(n, len(probe.order)), on_more
        self._key: Hashable | None = None
        self._codes = torch.zeros(0, 0)
        self._filled = 0
        self._lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-rest-codes")

    @property
    def enabled(self) -> bool:
        """Whether rest shows more codes than the probe."""
        return self.n > len(self.probe)

    def at_rest(self, key: Hashable, model: AutoEncoder) -> np.ndarray:
        """The codes encoded so far of the model at ``key`` (its run and step; call as the run's owner), and, the
        first time a key is asked for, the start of their encoding with a copy of ``model``."""
        with self._lock:
            if key != self._key:
                self._key, self._codes, self._filled = key, torch.zeros(0, 0), 0
                self._worker.submit(self._encode, key, copy.deepcopy(model))
            return self._codes[: self._filled].numpy().copy()

    def stop(self) -> None:
        """The model moves on: the worker stops after its current slice, and the next rest starts anew."""
        with self._lock:
            self._key = None

    def close(self) -> None:
        self.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _encode(self, key: Hashable, model: AutoEncoder) -> None:
        shown, wait = time.perf_counter(), SHOW_FIRST_S
        for start in range(0, self.n, SLICE_ROWS):
            codes = encode(model, self.probe.inputs(slice(start, min(start + SLICE_ROWS, self.n))))
            with self._lock:
                if key != self._key:
                    return
                if not self._filled:
                    self._codes = torch.empty(self.n, codes.shape[1])
                self._codes[start : start + len(codes)] = codes
                self._filled = start + len(codes)
            if self._filled == self.n or time.perf_counter() - shown >= wait:
                shown, wait = time.perf_counter(), wait * SHOW_GROWTH
                self.on_more()
