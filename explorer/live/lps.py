"""The LPS the live views show: while the model advances, a warm-started estimate on the probe codes every few
seconds; at rest, the notebooks' estimator (`explorer.metrics.lps.lps`, method ``mlp``) on `REST_LPS_CODES` codes
of the dataset. Both are fitted in one worker thread (the at-rest one with a copy of the model), so the owner of the
run never waits for a fit."""

from __future__ import annotations

import concurrent.futures
import copy
import time
from collections.abc import Callable

import numpy as np
import torch

from explorer.history import BoundedHistory
from explorer.live.pacing import RateLimiter
from explorer.live.probe import rest_codes
from explorer.live.source import LiveSource
from explorer.metrics import LPSEstimator
from explorer.metrics.lps import lps

REST_LPS_CODES = 5000  # codes of the at-rest LPS: as many as the notebooks' LPS-mlp (explorer.paper.shipped.EVAL_N)
WARM_LPS_CODES = 2000  # the most probe codes the live estimate fits on: its cost grows with them, its use does not
COMPUTING = "computing"


class LiveLPS:
    """The latest LPS per dimension (``per_dim``, of ``step``, described by ``estimator``) and its bounded history.

    ``rest_codes_n``: codes of the at-rest estimate (0: none); ``on_rest_done`` is called from the worker when an
    at-rest estimate finishes (the owner then publishes it)."""

    def __init__(self, source: LiveSource, probe_size: int, limiter: RateLimiter, rest_codes_n: int,
                 on_rest_done: Callable[[], object], history_points: int) -> None:
        self.source, self.limiter, self.rest_codes_n, self.on_rest_done = source, limiter, rest_codes_n, on_rest_done
        self.per_dim: np.ndarray | None = None
        self.step, self.estimator = 0, ""
        self.history = BoundedHistory(history_points)
        self._warm_estimator = LPSEstimator(n=min(probe_size, WARM_LPS_CODES), seed=0)
        self._warm: tuple[int, concurrent.futures.Future] | None = None  # (step, the warm estimate under way)
        self._rest: dict[tuple[str, int], concurrent.futures.Future] = {}
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-lps")

    def update(self, codes: torch.Tensor, advancing: bool) -> None:
        """Take in what the worker finished and start what is due, for the probe ``codes`` of the current step."""
        if codes.shape[1] < 2:
            self.estimator = "LPS needs at least 2 dimensions"
            return
        if not advancing and self.rest_codes_n:
            self._at_rest()
            return
        self._show_rest()
        warm = self._warm
        if warm is not None and warm[1].done():
            self._warm = None
            if warm[1].exception() is None:
                self._record(warm[0], warm[1].result(),
                             f"warm-started LPS-mlp on {min(len(codes), self._warm_estimator.n):,} probe codes "
                             "(training)")
        step = self.source.step
        if self._warm is None and self.step != step and self.limiter.due():
            self._warm = (step, self._worker.submit(self._fit_warm, codes.numpy()))

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def _fit_warm(self, codes: np.ndarray) -> np.ndarray:
        """One estimate in the worker. The first is a full fit, a one-off that does not set the pace: the warm
        updates after it are what the budget paces (counting the full fit would hold the next estimate back for
        tens of seconds, leaving the LPS of the run's first step on view)."""
        started = time.perf_counter()
        result = self._warm_estimator.update(codes)
        self.limiter.record(time.perf_counter() - started if result.settings["warm"] else 0.0)
        return result.per_dim

    def _record(self, step: int, per_dim: np.ndarray, estimator: str) -> None:
        self.per_dim, self.step, self.estimator = per_dim, step, estimator
        if np.isfinite(per_dim).any():
            self.history.add(step, {"lps": float(np.nanmean(per_dim))})

    def _at_rest(self) -> None:
        """Start (once per step of a run) the notebooks' estimator in the worker, or show its result."""
        key = (self.source.run_id, self.source.step)
        if key in self._rest:
            self._show_rest()
            return
        n = min(self.rest_codes_n, len(self.source.dataset))
        model, dataset = copy.deepcopy(self.source.model), self.source.dataset  # the worker's own copy
        future = self._worker.submit(lambda: lps(rest_codes(model, dataset, n), "mlp", seed=0))
        self._rest = {key: future}
        future.add_done_callback(lambda _: self.on_rest_done())
        self.estimator = f"LPS-mlp on {n:,} codes of the dataset: {COMPUTING}"

    def _show_rest(self) -> None:
        """Show the at-rest estimate once it is done (also when training has started since)."""
        if not self._rest or not self.estimator.endswith(COMPUTING):
            return
        ((_, step), future), = self._rest.items()
        if not future.done():
            return
        error = future.exception()
        if error is not None:
            self.estimator = f"LPS could not be estimated: {error}"
            return
        result = future.result()
        self._record(step, result.per_dim,
                     f"LPS-mlp on {result.settings['n']:,} codes of the dataset (as the notebooks)")
