"""`Explorer`: the whole tool in one call. Program a prior, train in the background, watch the latent space move.

Threads: widgets are created on the main thread. The training thread only produces `Snapshot`s. One consumer
thread applies the newest snapshot to every view at most ``refresh_hz`` times a second, holding `lock`; button
and control callbacks (main thread) take the same lock, so Bokeh document patches never interleave.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from explorer.checkpoints import read_meta
from explorer.data import Dataset, load_dataset
from explorer.live import BackgroundTrainer, Snapshot
from explorer.objectives import AEMMD, OBJECTIVES
from explorer.priors import Prior
from explorer.training import TrainConfig, Trainer
from explorer.widgets.bokehjs import bokehjs_loader
from explorer.widgets.latent_view import LatentView
from explorer.widgets.lps_view import LPSView
from explorer.widgets.prior_editor import PriorEditor
from explorer.widgets.static_view import StaticFallback
from explorer.widgets.training_panel import TrainingPanel
from explorer.widgets.traversal_view import TraversalView

# shapes at 32 px trains at ~25 steps/s on 2 CPU cores; lam 2 (the top of the paper's 0.1-2 range) brings the
# aggregate posterior onto the prior within minutes, where the engine's default 0.3 takes far longer
DEFAULT_CONFIG = TrainConfig(dataset="shapes", dataset_options={"size": 32}, objective=AEMMD.name,
                             objective_options={"lam": 2.0}, latent_dim=5, batch_size=64, steps=3000)


class Explorer:
    """The live latent-space explorer. Display it as a notebook cell's last expression.

    ``Explorer()`` starts from `DEFAULT_CONFIG`; pass a `TrainConfig` (and optionally the `Dataset`) to choose,
    or open a run with `Explorer.from_checkpoint`. ``refresh_hz=None`` starts no consumer thread: call
    `refresh` to apply the newest snapshot yourself (tests do).
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        *,
        dataset: Dataset | None = None,
        trainer: Trainer | None = None,
        probe_size: int = 512,
        refresh_hz: float | None = 4.0,
    ) -> None:
        config = trainer.config if trainer is not None else (config or DEFAULT_CONFIG)
        self.lock = threading.RLock()
        self.probe_size = probe_size
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self.apply_seconds = 0.0  # time the views spent drawing snapshots
        self.last_snapshot: Snapshot | None = None
        self.fallback = StaticFallback()  # the picture a notebook keeps for readers without a kernel
        self._datasets: dict[str, Dataset] = {}
        if dataset is not None:
            self._datasets[_dataset_key(config)] = dataset
        self.panel = TrainingPanel(config)
        if trainer is not None and trainer.out is not None:
            self.panel.out.value = str(trainer.out)
        self.panel.start.on_click(self._on_start)
        self.panel.pause.on_click(lambda _: self._control("pause"))
        self.panel.resume.on_click(lambda _: self._control("resume"))
        self.panel.stop.on_click(lambda _: self._control("stop"))
        self.panel.save.on_click(self._on_save)
        self._settings_changed = False
        for control in self.panel.run_settings:
            control.observe(self._on_setting, names="value")
        self._editor_box, self._views_box = widgets.Box(), widgets.VBox()
        self.tabs = widgets.Tab([self.panel.widget, self._editor_box], titles=("Train", "Prior"),
                                layout={"width": "410px"})
        self.widget = self._views_box
        self._use(trainer if trainer is not None else Trainer(config, dataset=self._dataset(config)))
        self._closed = threading.Event()
        self._consumer: threading.Thread | None = None
        if refresh_hz is not None:
            self._consumer = threading.Thread(target=self._consume, args=(1.0 / refresh_hz,), daemon=True,
                                              name="explorer-consumer")
            self._consumer.start()
        else:
            self.refresh()

    @classmethod
    def from_checkpoint(cls, path: str | Path, out: str | Path | None = None, **kwargs: Any) -> Explorer:
        """Open a run folder written by `Trainer.save` or the command line, to inspect it or train it further.

        Training continues in ``path`` when it holds training state and no ``out`` is given; otherwise (e.g. the
        shipped checkpoints, saved without optimizer state) a new run starts from its weights in ``out``, by
        default a new temporary folder, so the opened files are never overwritten."""
        meta, _ = read_meta(path)
        if out is None and "state" in meta["files"]:
            return cls(trainer=Trainer.resume(path), **kwargs)
        out = out if out is not None else tempfile.mkdtemp(prefix=f"explorer-{Path(path).name}-")
        return cls(trainer=Trainer.from_weights(path, out), **kwargs)

    def _ipython_display_(self) -> None:
        shown = [bokehjs_loader(), self.widget]  # BokehJS (offline) before the first Bokeh view
        self.fallback.display(shown, self.last_snapshot or self.background.publish().result(timeout=30))

    # ------------------------------------------------------------------ runs

    @property
    def trainer(self) -> Trainer:
        return self.background.trainer

    def _dataset(self, config: TrainConfig) -> Dataset:
        key = _dataset_key(config)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(config.dataset, **config.dataset_options)
        return self._datasets[key]

    def _use(self, trainer: Trainer) -> None:
        """Make ``trainer`` the current run: new background trainer, views and prior editor for its latent size."""
        old = getattr(self, "latent", None)
        if old is not None:
            old.close()
            self.trainer.close()  # the replaced run gives back its folder's writer lock
        self.background = BackgroundTrainer(trainer, probe_size=self.probe_size)
        d = trainer.config.latent_dim
        self.editor = PriorEditor(d, prior=trainer.prior)
        self.editor.on_change(self._on_prior)
        self.latent = LatentView(d, self.background.probe, self.lock, on_select=self._on_select)
        self.lps = LPSView(d)
        self.traversals = TraversalView()
        self._editor_box.children = [self.editor.widget]
        wrap = {"flex_flow": "row wrap", "align_items": "flex-start"}
        self._views_box.children = [
            widgets.HBox([self.tabs, self.latent.widget], layout=wrap),
            widgets.HBox([self.latent.structure], layout=wrap),
            widgets.HBox([self.lps.widget, self.traversals.widget], layout=wrap),
        ]
        self.background.publish()

    def _on_setting(self, change: dict[str, Any]) -> None:
        old, new = change["old"], change["new"]
        if isinstance(new, float) and isinstance(old, float) and math.isclose(old, new, rel_tol=0.05):
            return  # a log slider's front end snapping the value to its step, not a new setting
        self._settings_changed = True
        with self.lock:
            self.panel.show("Settings changed: Start begins a new run with them.")

    def _new_config(self) -> TrainConfig:
        """The panel's settings, with the editor's prior where the objective takes one and the sizes agree."""
        config = self.panel.config()
        prior = self.editor.prior
        keep = OBJECTIVES[config.objective].takes_prior and prior.dim == config.latent_dim
        return dataclasses.replace(config, prior=prior.to_dict() if keep else None)

    def _on_start(self, _button: object = None) -> None:
        with self.lock:
            try:
                steps = int(self.panel.steps.value)
                if steps < 1:
                    raise ValueError(f"steps must be a positive number of training steps, got {steps}")
                if self._settings_changed:
                    if self.background.running:
                        raise RuntimeError("Training is already running; stop it before starting a new run.")
                    config = self._new_config()
                    self._use(Trainer(config, dataset=self._dataset(config)))
                    self._settings_changed = False
                self.background.start(steps)
                self.panel.set_state("running")
                self.panel.show("")
            except (RuntimeError, ValueError, OSError) as error:
                self.panel.show(str(error), error=True)

    def _control(self, action: str) -> None:
        with self.lock:
            getattr(self.background, action)()
            self.panel.set_state(self.background.state)

    def _on_save(self, _button: object = None) -> None:
        self.background.save(self.panel.out.value)  # its outcome arrives as a snapshot message

    def _on_prior(self, prior: Prior) -> None:
        if self.trainer.prior is None:
            takers = [cls.label for cls in OBJECTIVES.values() if cls.takes_prior]
            with self.lock:
                self.panel.show(f"The {self.trainer.config.objective} objective has no prior to replace; "
                                f"choose one that takes a prior ({', '.join(takers)}) to train toward this one.")
            return
        self.background.set_prior(prior)

    def _on_select(self, index: int) -> None:
        self.background.select(index)

    # ------------------------------------------------------------------ snapshots -> views

    def apply(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` in every view (the consumer calls this; so may tests)."""
        with self.lock:
            if snapshot.codes.shape[1] != self.trainer.config.latent_dim:
                return  # from a run that has just been replaced
            started = time.perf_counter()
            self.panel.update(snapshot)
            self.latent.update(snapshot)
            self.lps.update(snapshot)
            self.traversals.update(snapshot)
            self.fallback.update(snapshot)
            self.last_snapshot = snapshot
            now = time.perf_counter()
            self.apply_seconds += now - started
            self.latencies.append(now - snapshot.taken_at)

    def refresh(self, timeout: float | None = None) -> Snapshot | None:
        """Apply the newest queued snapshot, waiting up to ``timeout`` s for one; returns it (None if none)."""
        snapshot = self.background.snapshots.latest(timeout)
        if snapshot is not None:
            self.apply(snapshot)
        return snapshot

    def _consume(self, period: float) -> None:
        while not self._closed.is_set():
            started = time.perf_counter()
            try:
                self.refresh(timeout=0.5)
            except Exception as error:  # a view that fails to draw must not end the live updates
                with self.lock:
                    self.panel.show(f"Could not update the view: {error!r}", error=True)
            time.sleep(max(0.0, period - (time.perf_counter() - started)))

    def join(self, timeout: float | None = None) -> None:
        """Wait for training to end and re-raise its error, if any (end notebooks with this)."""
        self.background.join(timeout)

    def close(self) -> None:
        """Stop training and the live updates, and close the widgets."""
        self.background.stop(timeout=10)
        self.trainer.close()
        self._closed.set()
        if self._consumer is not None:
            self._consumer.join(timeout=5)
        self.latent.close()
        self.widget.close()


def _dataset_key(config: TrainConfig) -> str:
    return repr((config.dataset, sorted(config.dataset_options.items())))
