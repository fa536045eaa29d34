"""`Follower`: the live views of a run that another process trains (the command line, torchrun), read-only.

The trainer (or a `Monitor` on a loop of the user's own) writes snapshot files (`explorer.snapshot_files`,
``--snapshot-every N``); the follower's thread polls the folder, loads each new file into a local copy of the model
and publishes the same `Snapshot`s a `BackgroundTrainer` does, in state ``following``. It never writes the folder
and takes no lock there, so the writer is never blocked; it owns its local model as a training thread does (see
`explorer.live.owner`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from explorer import snapshot_files
from explorer.events import StepEvent
from explorer.history import BoundedHistory
from explorer.live.monitor import LoopRun
from explorer.live.pacing import ReportedClock
from explorer.live.run import LiveRun
from explorer.live.snapshots import HISTORY_POINTS, Pacing
from explorer.live.source import LiveSource
from explorer.live.state import RunState
from explorer.priors import from_dict
from explorer.settings import TrainConfig
from explorer.training import Trainer


class Follower(LiveRun):
    """Polls ``folder`` every ``poll_s`` s and shows each new snapshot file; commands (select, publish) run between
    two polls."""

    def __init__(self, source: LiveSource, folder: Path, probe_size: int = 512, poll_s: float = 0.5) -> None:
        self.clock = ReportedClock()
        super().__init__(source, probe_size, Pacing(), queue_size=2, rest_lps_codes=0, clock=self.clock)
        self.folder, self.poll_s = Path(folder), poll_s
        self._seen: tuple[int, int, int] | None = None

    @staticmethod
    def source_for(folder: Path, model: nn.Module | None = None, data: Any = None,
                   timeout: float = 60.0) -> LiveSource:
        """What the newest snapshot of ``folder`` shows: a `Trainer` (writing nowhere) rebuilt from the file's
        config, or, for a loop of the user's own (`explorer.live.monitor.Monitor`), its ``model`` (loaded with the
        file's weights) and ``data``. Waits up to ``timeout`` s for the first file, then raises FileNotFoundError
        saying how to get one."""
        deadline = time.monotonic() + timeout
        while (live := snapshot_files.read_snapshot(folder)) is None:
            if time.monotonic() > deadline:
                raise FileNotFoundError(f"{folder} holds no {snapshot_files.SNAPSHOT_FILE} after {timeout:g} s: "
                                        "train with --snapshot-every N (TrainConfig.snapshot_every), or give your "
                                        "loop's Monitor out= and snapshot_every=, to follow a run")
            time.sleep(0.1)
        meta = live.meta
        if model is None:
            if meta["train"] is None:
                raise ValueError(f"{folder} is the run of a loop of your own (a Monitor): pass its model= and data= "
                                 "to follow it")
            source: LiveSource = Trainer(TrainConfig.from_dict({**meta["train"], "device": "cpu"}),
                                         run_id=meta["run_id"])
        elif data is None:
            raise ValueError("following a model of your own needs its data= too (the probe images it encodes)")
        else:
            prior = None if meta["prior"] is None else from_dict(meta["prior"])
            source = LoopRun(model, data, prior, meta["total_steps"], run_id=meta["run_id"])
        source.model.load_state_dict(live.weights)
        source.step = meta["step"]
        return source

    def start(self, steps: int | None = None) -> None:
        """Start following (``steps`` is ignored: the other process decides)."""
        self.owner.start(self._follow, RunState.FOLLOWING, "explorer-follower", busy="Already following the run.",
                         on_end=lambda: self.maker.publish(complete=True), failure=f"Could not follow {self.folder}: ")

    def _follow(self) -> None:
        while not self.owner.stop_requested:
            if snapshot_files.signature(self.folder) != self._seen:
                live = snapshot_files.read_snapshot(self.folder)
                if live is not None and live.signature != self._seen:
                    self._load(live)
                    self.maker.publish()
            self.owner.run_commands(wait=self.poll_s)

    def _load(self, live: snapshot_files.LiveFile) -> None:
        meta, source = live.meta, self.source
        self._seen = live.signature
        source.model.load_state_dict(live.weights)
        source.step = meta["step"]
        if meta["prior"] is not None and source.prior is not None:
            source.prior = from_dict(meta["prior"])
        self.maker.loss_history = BoundedHistory.from_dict(meta["history"], HISTORY_POINTS)
        self.clock.steps_per_s = meta["steps_per_s"]
        self.maker.last_event = StepEvent(meta["step"], meta["total_steps"], meta["terms"], meta["steps_per_s"], 0.0)
