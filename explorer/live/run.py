"""`LiveRun`: what every run the live views show has, whether it trains here (`BackgroundTrainer`) or in another
process (`Follower`): an `Owner` thread with its commands and state, a `Probe`, and a `SnapshotMaker`; and the
controls that act the same on both."""

from __future__ import annotations

import concurrent.futures

import numpy as np

from explorer.live.owner import Owner
from explorer.live.pacing import ReportedClock, StepClock
from explorer.live.probe import Probe
from explorer.live.snapshots import Pacing, SnapshotMaker
from explorer.live.source import LiveSource
from explorer.live.state import RunState, Snapshot, SnapshotQueue
from explorer.priors import Prior


class LiveRun:
    """The live side of ``source``'s run (a `LiveSource`: a `Trainer`, a monitored loop of the user's own);
    ``snapshots`` is the queue the views read."""

    def __init__(self, source: LiveSource, probe_size: int, pacing: Pacing, queue_size: int, rest_lps_codes: int,
                 clock: StepClock | ReportedClock, rest_codes: int = 0) -> None:
        self.source = source
        self.owner = Owner()
        self.probe = Probe(source, probe_size)
        self.maker = SnapshotMaker(source, self.owner, self.probe, clock, pacing, queue_size, rest_lps_codes,
                                   rest_codes, publish=self.publish)

    @property
    def snapshots(self) -> SnapshotQueue:
        return self.maker.snapshots

    @property
    def state(self) -> RunState:
        return self.owner.state

    @property
    def running(self) -> bool:
        return self.owner.running

    @property
    def error(self) -> BaseException | None:
        return self.owner.error

    @property
    def message(self) -> str:
        return self.owner.message

    @property
    def message_is_error(self) -> bool:
        return self.owner.message_is_error

    @property
    def snapshot_seconds(self) -> float:
        """Time spent taking snapshots so far, LPS included: the live view's cost."""
        return self.maker.seconds

    def stop(self, timeout: float | None = None) -> None:
        """End the run's thread after the current step (a `Trainer` writes a checkpoint if it has a folder)."""
        self.owner.stop(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise the error that stopped it, if any."""
        self.owner.join(timeout)

    def close(self) -> None:
        """Stop the thread and the workers."""
        self.owner.stop(timeout=10)
        self.maker.lps.close()
        self.maker.rest.close()
        self.probe.close()

    def select(self, index: int) -> concurrent.futures.Future[Snapshot]:
        """Start the traversals from row ``index`` of the codes shown (decoded between two steps, shown at once)."""
        if not 0 <= index < len(self.probe.order):
            raise ValueError(f"code index must be in [0, {len(self.probe.order)}), got {index}")

        def select() -> Snapshot:
            self.maker.selected = index
            return self.maker.publish()

        return self.owner.between_steps(select)

    def preview(self, row: int, code: np.ndarray) -> concurrent.futures.Future[tuple[np.ndarray, np.ndarray]]:
        """Input ``row`` of the probe's order and its reconstruction from ``code`` (decoded between two steps): the
        picture under the cursor."""
        return self.owner.between_steps(lambda: self.probe.image_and_reconstruction(self.source.model, row, code))

    def publish(self) -> concurrent.futures.Future[Snapshot]:
        """Take a snapshot now (between steps if a thread owns the run) and queue it."""
        return self.owner.between_steps(self.maker.publish)

    def drawn(self, snapshot: Snapshot, seconds: float) -> None:
        """The views took ``seconds`` to draw ``snapshot`` (any thread): its cadence accounts for it."""
        self.maker.drawn(snapshot, seconds)

    def take_snapshot(self, complete: bool = False) -> Snapshot:
        """The current state as a `Snapshot` (call as the run's owner: it reads the model)."""
        return self.maker.take(complete)


class SteeredRun(LiveRun):
    """A live run whose steps this process drives (`BackgroundTrainer`'s thread, or the user's loop reporting to a
    `Monitor`): Pause, Resume and a prior swap act on it between two steps. A followed run has none of them."""

    def pause(self) -> concurrent.futures.Future[None]:
        """Pause between two steps (the future is done once paused); the state becomes ``paused``."""
        return self.owner.between_steps(lambda: self._change_state(RunState.PAUSED, RunState.RUNNING))

    def resume(self) -> concurrent.futures.Future[None]:
        return self.owner.between_steps(lambda: self._change_state(RunState.RUNNING, RunState.PAUSED))

    def set_prior(self, prior: Prior) -> concurrent.futures.Future[Snapshot]:
        """Swap the prior between two steps: the next step trains toward it (and samples it)."""

        def swap() -> Snapshot:
            self.source.prior = prior
            return self.maker.publish()

        return self.owner.between_steps(swap)

    def _change_state(self, new: RunState, only_from: RunState) -> None:
        if self.owner.state is only_from:
            self.owner.state = new
            self.maker.state_changed()
