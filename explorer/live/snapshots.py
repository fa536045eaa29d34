"""Snapshot assembly: the codes of the probe, a prior sample, the LPS, the traversals and the histories of one
moment of a run, made into a `Snapshot` and posted, paced so that the live views cost at most their budget.

Full snapshots come at most every ``snapshot_interval`` s; between two of them, progress-only snapshots (step,
state, loss terms and history; the rest as before) at most every ``progress_interval`` s keep the counter live.
Full snapshots take 45 % of the budget, progress 20 %, the LPS 25 % and the traversals 10 %; the views report what
drawing a snapshot took (`drawn`), since drawing competes with training for the CPU."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from explorer.events import StepEvent
from explorer.history import BoundedHistory
from explorer.live.fit import MarginalFit
from explorer.live.lps import LiveLPS
from explorer.live.owner import Owner
from explorer.live.pacing import RateLimiter, ReportedClock, StepClock
from explorer.live.probe import Probe
from explorer.live.rest_codes import RestCodes
from explorer.live.source import LiveSource
from explorer.live.state import RunState, Snapshot, SnapshotQueue
from explorer.live.traversals import Traversals
from explorer.priors import standard_normal

HISTORY_POINTS = 400  # points of the loss and LPS histories (bounded: thinned as the run grows)


@dataclasses.dataclass(frozen=True)
class Pacing:
    """The live view's cadences (s) and the share of the training time it may spend (``budget``)."""

    snapshot_interval: float = 0.3
    budget: float = 0.05
    lps_interval: float = 2.0
    traversal_interval: float = 2.0
    progress_interval: float = 0.25


class SnapshotMaker:
    """Takes `Snapshot`s of ``source``'s model as ``owner``'s thread and posts them to ``snapshots``."""

    def __init__(self, source: LiveSource, owner: Owner, probe: Probe, clock: StepClock | ReportedClock,
                 pacing: Pacing, queue_size: int, rest_lps_codes: int, rest_codes: int,
                 publish: Callable[[], object]) -> None:
        self.source, self.owner, self.probe, self.clock = source, owner, probe, clock
        self.snapshots = SnapshotQueue(queue_size)
        budget = pacing.budget
        self.snapshot_limiter = RateLimiter(pacing.snapshot_interval, 0.45 * budget)
        self.progress_limiter = RateLimiter(pacing.progress_interval, 0.2 * budget)
        self.lps = LiveLPS(source, len(probe), RateLimiter(pacing.lps_interval, 0.25 * budget), rest_lps_codes,
                           on_rest_done=publish, history_points=HISTORY_POINTS)
        self.rest = RestCodes(probe, rest_codes, on_more=publish)
        self.traversals = Traversals(RateLimiter(pacing.traversal_interval, 0.1 * budget))
        self.loss_history = BoundedHistory(HISTORY_POINTS)
        self.fit = MarginalFit()
        self.last_event: StepEvent | None = None
        self.selected = 0
        self.seconds = 0.0  # time spent taking snapshots, LPS included (the live view's cost)
        self._drawing = {True: 0.0, False: 0.0}  # what the views took to draw the last full / progress snapshot
        self._full: Snapshot | None = None
        self._codes_version = 0

    def step_done(self, event: StepEvent) -> None:
        self.last_event = event
        self.loss_history.add(event.step, event.terms)

    def paced(self, now: float) -> None:
        """Between two steps: post a full snapshot, or a progress-only one, if its cadence allows."""
        if self.snapshot_limiter.due(now):
            self.publish()
        elif self.progress_limiter.due(now) and self._full is not None:
            started = time.perf_counter()
            self.snapshots.put(self.progress())
            now = time.perf_counter()
            self.seconds += now - started
            self.progress_limiter.record(now - started + self._drawing[False], now)

    def drawn(self, snapshot: Snapshot, seconds: float) -> None:
        """The views took ``seconds`` to draw ``snapshot``: the cadence of its kind accounts for it (any thread)."""
        self._drawing[not snapshot.progress_only] = seconds

    def state_changed(self) -> None:
        """The run's state changed: show it at once (progress only), then the full picture."""
        if self._full is not None:
            self.snapshots.put(self.progress())
        self.publish()

    def progress(self) -> Snapshot:
        """The last full snapshot with the step, state, loss terms and history of now (cheap: no model pass)."""
        event = self.last_event
        steps, history = self.loss_history.arrays()
        return dataclasses.replace(
            self._full, step=self.source.step, total_steps=event.total_steps, state=self.owner.state,
            terms=dict(event.terms), steps_per_s=self.clock.steps_per_s, elapsed_s=self.clock.elapsed_s,
            history_steps=steps, history=history, message=self.owner.message,
            message_is_error=self.owner.message_is_error, progress_only=True, taken_at=time.perf_counter())

    def publish(self, complete: bool = False) -> Snapshot:
        """Take a full snapshot (as the owner) and post it."""
        started = time.perf_counter()
        limiter = self.traversals.limiter
        traversal_before = limiter.last
        snapshot = self._full = self.take(complete)
        self.snapshots.put(snapshot)
        now = time.perf_counter()
        self.seconds += now - started
        # the snapshot's own cost, without the traversal decoding it may have included (the LPS runs in its worker),
        # with what drawing it and encoding the probe's last slice (in the probe's worker) took
        others = limiter.cost if limiter.last != traversal_before else 0.0
        cost = max(0.0, now - started - others) + self._drawing[True] + self.probe.slice_seconds
        self.snapshot_limiter.record(cost, now)
        self.progress_limiter.record(self.progress_limiter.cost, now)
        return snapshot

    def _finite(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` with the rows the model could not encode (NaN or inf: a diverged encoder) set to 0, and the
        views told so, once, in the message; the message goes when the codes are finite again."""
        bad = ~torch.isfinite(codes).all(dim=1)
        count = int(bad.sum())
        note = "not finite (NaN or inf): the encoder has diverged; they are drawn at 0"
        if count:
            self.owner.say(f"{count} of the {len(codes)} probe codes at step {self.source.step} are {note}", True)
            codes[bad] = 0.0
        elif self.owner.message.endswith(note):
            self.owner.say("")
        return codes

    @property
    def _untrained(self) -> bool:
        """A new model not yet started: its codes at rest are not worth 100,000 encodings (an opened one's are)."""
        return self.owner.state is RunState.IDLE and self.source.step == 0

    def _rest_codes(self, probe_codes: torch.Tensor, at_rest: bool) -> tuple[torch.Tensor, str]:
        """The codes to show and what they are: the probe's while the model advances, at rest as many of the
        dataset's as `RestCodes` has encoded (over the probe's until they outnumber them)."""
        if not at_rest:
            self.rest.stop()
            return probe_codes, f"{len(probe_codes):,} codes"
        more = self._finite(torch.from_numpy(self.rest.at_rest((self.source.run_id, self.source.step),
                                                               self.source.model)))
        codes = more if len(more) >= len(probe_codes) else probe_codes
        if 0 < len(more) < len(probe_codes):  # the rows encoded at rest so far replace the probe's from before
            codes[: len(more)] = more
        encoding = "" if len(more) == self.rest.n else f" (encoding {self.rest.n:,}…)"
        return codes, f"{len(codes):,} codes of the dataset{encoding}"

    def take(self, complete: bool = False) -> Snapshot:
        """The current state as a `Snapshot` (call as the owner: it reads the model). While the model advances, only
        part of the probe is re-encoded (see `Probe.refresh`) unless ``complete``."""
        source, model, advancing = self.source, self.source.model, self.owner.advancing
        self._codes_version += 1
        prior = source.prior or standard_normal(source.latent_dim)
        # at rest with `RestCodes` its worker re-encodes the probe's rows first, off this thread; else do it here
        at_rest = not advancing and self.rest.enabled and not self._untrained
        codes = self._finite(self.probe.refresh(model, everything=(complete or not advancing) and not at_rest))
        codes, codes_of = self._rest_codes(codes, at_rest)
        prior_sample = prior.sample(len(codes), torch.Generator().manual_seed(source.step)).numpy()
        fit = self.fit.of(codes.numpy(), prior)
        self.lps.update(codes, advancing)
        selected = min(self.selected, len(codes) - 1)
        values, traversals = self.traversals.get(model, codes[selected], (selected, id(prior), source.step),
                                                 prior_sample, advancing, self.probe.picture)
        original, reconstruction = self.probe.image_and_reconstruction(model, selected, codes[selected])
        event = self.last_event
        steps, history = self.loss_history.arrays()
        lps_steps, lps_history = self.lps.history.arrays()
        return Snapshot(
            step=source.step,
            total_steps=event.total_steps if event else source.total_steps,
            state=self.owner.state,
            terms=dict(event.terms) if event else {},
            steps_per_s=self.clock.steps_per_s,
            elapsed_s=self.clock.elapsed_s,
            history_steps=steps,
            history=history,
            codes=codes.numpy(),
            prior_sample=prior_sample,
            lps=self.lps.per_dim,
            lps_step=self.lps.step,
            lps_estimator=self.lps.estimator,
            lps_history_steps=lps_steps,
            lps_history=lps_history.get("lps", np.zeros(0)),
            selected=selected,
            codes_version=self._codes_version,
            traversal_version=self.traversals.version,
            traversals=traversals,
            traversal_values=values,
            original=original,
            reconstruction=reconstruction,
            run_id=source.run_id,
            message=self.owner.message,
            message_is_error=self.owner.message_is_error,
            prior=source.prior,
            fit=fit,
            codes_of=codes_of,
        )
