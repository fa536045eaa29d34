"""`Explorer`: the whole tool in one call. Program a prior, train in the background, watch the latent space move.

Threads (see `explorer.live` for the engine's side): widgets are created on the main thread. The training thread
only posts `Snapshot`s; the widgets never reach into the loop, they send commands (`BackgroundTrainer.pause`,
``select``, ``set_prior``, ``save``) that run between two steps. One updates thread (`ViewUpdates`) posts each
snapshot to `LiveState` as it arrives, holding `lock`; the views observe that state. The engine's `RateLimiter`
paces the snapshots (at most ``refresh_hz`` a second, fewer where taking and drawing them would exceed their
budget).
Button and control callbacks (main thread) take the same lock, so Bokeh document patches never interleave. What
can be derived (have the settings changed? how long is left?) is computed from the state, and the status line is
rendered from the panel's state (its message and the changed settings), never read back. The current run's
objects (background owner, `LiveState`, views, prior editor) are one `_Run`, replaced as a whole by a new run.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from torch import nn

from explorer.checkpoints import read_meta
from explorer.data import Dataset, load_dataset
from explorer.live import REST_CODES, REST_LPS_CODES, BackgroundTrainer, RunState, Snapshot
from explorer.live.follow import Follower
from explorer.live.monitor import Monitor
from explorer.live.source import LiveSource
from explorer.objectives import AEMMD, OBJECTIVES
from explorer.priors import Prior
from explorer.settings import TrainConfig
from explorer.training import Trainer, resolve_data
from explorer.widgets.bokehjs import bokehjs_loader
from explorer.widgets.history_bar import HistoryBar
from explorer.widgets.latent_view import LatentView
from explorer.widgets.lps_view import LPSView
from explorer.widgets.prior_editor import PriorEditor
from explorer.widgets.saved_history import restore_history, save_with_history
from explorer.widgets.saved_view import save_shown_view
from explorer.widgets.state import LiveState
from explorer.widgets.static_view import StaticFallback
from explorer.widgets.training_panel import TrainingPanel
from explorer.widgets.traversal_view import TraversalView
from explorer.widgets.updates import ViewUpdates

# shapes at 32 px trains at ~25 steps/s on 2 CPU cores; lam 2 (the top of the paper's 0.1-2 range) brings the
# aggregate posterior onto the prior within minutes, where the engine's default 0.3 takes far longer
DEFAULT_CONFIG = TrainConfig(dataset="shapes", dataset_options={"size": 32}, objective=AEMMD.name,
                             objective_options={"lam": 2.0}, latent_dim=5, batch_size=64, steps=3000)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What belongs to the current run, replaced as a whole when Start begins a new one: the engine's owner, the
    views' state (selection included) and the views drawn for its latent size."""

    background: BackgroundTrainer | Follower
    state: LiveState
    editor: PriorEditor
    latent: LatentView
    lps: LPSView
    traversals: TraversalView
    history: HistoryBar


class Explorer:
    """The live latent-space explorer. Display it as a notebook cell's last expression.

    ``Explorer()`` starts from `DEFAULT_CONFIG`; pass a `TrainConfig`, ``data`` (anything `explorer.data.as_dataset`
    takes) and ``model`` (your own, for the first run) to choose, or open a run with `Explorer.from_checkpoint`.
    ``refresh_hz=None`` starts no consumer thread: call `refresh` to apply the newest snapshot yourself (tests do).
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        *,
        data: Any = None,
        model: Any = None,
        trainer: Trainer | None = None,
        probe_size: int = 512,
        refresh_hz: float | None = 4.0,
        watch: Follower | Monitor | None = None,
        rest_lps_codes: int = REST_LPS_CODES,
        rest_codes: int = REST_CODES,
    ) -> None:
        """``watch``: a run whose loop is not the explorer's (`Explorer.follow`, `Explorer.watch`); ``probe_size``:
        codes drawn while training; ``rest_codes``: codes of the dataset drawn at rest (encoded once the run rests);
        ``rest_lps_codes``: codes of the LPS shown at rest (the notebooks' estimator; 0: the probe's only)."""
        source = watch.source if watch is not None else trainer
        config = source.config if isinstance(source, Trainer) else (config or DEFAULT_CONFIG)
        dataset, config = resolve_data(config, data) if source is None and data is not None else (None, config)
        self.lock = threading.RLock()
        self.probe_size = probe_size
        self.following = watch.folder if isinstance(watch, Follower) else None
        self._rest = {"rest_lps_codes": rest_lps_codes, "rest_codes": rest_codes}
        self._interval = 1.0 / refresh_hz if refresh_hz else 0.25  # the fastest snapshot cadence
        self.fallback = StaticFallback()  # the picture a notebook keeps for readers without a kernel
        self._new_runs = NewRuns(config, dataset, model)
        self.panel = TrainingPanel(config)
        if isinstance(watch, Monitor):
            self.panel.watching()
        if trainer is not None and trainer.out is not None:
            self.panel.out.value = str(trainer.out)
        self.panel.start.on_click(self._on_start)
        for action in ("pause", "resume", "stop"):  # each runs between two steps; the state shows in a snapshot
            getattr(self.panel, action).on_click(lambda _, action=action: getattr(self.background, action)())
        self.panel.save.on_click(lambda _: save_with_history(self))  # outcome: in a snapshot
        self.panel.save_view.on_click(lambda _: self.save_view())
        for control in self.panel.run_settings:
            control.observe(self._on_setting, names="value")
        self.prior_tab, self._views_box = widgets.Box(), widgets.VBox()
        self.tabs = widgets.Tab([self.panel.widget, self.prior_tab], titles=("Train", "Prior"),
                                layout={"width": "410px"})
        self.widget = self._views_box
        self._run = self._open(watch or self._background_for(
            trainer or self._new_runs.trainer(config)))
        self.updates = ViewUpdates(lambda: self.background, self.apply, self._on_draw_error)
        if self.following is not None:
            self.background.start()
        self.updates.start() if refresh_hz is not None else self.refresh()

    @classmethod
    def from_checkpoint(cls, path: str | Path, out: str | Path | None = None, **kwargs: Any) -> Explorer:
        """Open a run folder written by `Trainer.save` or the command line, to inspect it or train it further.

        Training continues in ``path`` when it holds training state and no ``out`` is given; otherwise (e.g. the
        shipped checkpoints, saved without optimizer state) a new run starts from its weights in ``out``, by
        default a new temporary folder, so the opened files are never overwritten. The history slider starts with
        the steps saved beside the checkpoint (Save writes them)."""
        meta, _ = read_meta(path)
        resume = out is None and "state" in meta["files"]
        trainer = Trainer.resume(path) if resume else Trainer.from_weights(
            path, out if out is not None else tempfile.mkdtemp(prefix=f"explorer-{Path(path).name}-"))
        return restore_history(cls(trainer=trainer, **kwargs), Path(path))

    @classmethod
    def follow(cls, run_folder: str | Path, poll_s: float = 0.5, model: nn.Module | None = None,
               data: Dataset | None = None, probe_size: int = 512, **kwargs: Any) -> Explorer:
        """Watch, read-only, a run another process trains with snapshot files (``python -m explorer train ...
        --snapshot-every N``, torchrun, or a loop of your own whose `Monitor` has ``out``; then pass its ``model``
        and ``data``). The folder is polled every ``poll_s`` s without a lock, so the writer is never blocked, and
        each snapshot file is read whole as the writer moved it into place."""
        source = Follower.source_for(Path(run_folder), model, data)
        follower = Follower(source, Path(run_folder), probe_size=probe_size, poll_s=poll_s)
        return restore_history(cls(watch=follower, probe_size=probe_size, **kwargs), Path(run_folder))

    @classmethod
    def watch(cls, monitor: Monitor, **kwargs: Any) -> Explorer:
        """The views of a loop of your own reporting to ``monitor``: Pause, Resume, Stop and the Prior tab act on it."""
        return cls(watch=monitor, **kwargs)

    def _ipython_display_(self) -> None:
        shown = [bokehjs_loader(), self.widget]  # BokehJS (offline) before the first Bokeh view
        self.fallback.display(shown, self.last_snapshot or self.background.publish().result(timeout=30))

    # ------------------------------------------------------------------ runs

    @property
    def trainer(self) -> Trainer | LiveSource:
        """The run shown: a `Trainer`, or the `LiveSource` of a watched loop of the user's own."""
        return self.background.source

    @property
    def background(self) -> BackgroundTrainer | Follower | Monitor:
        return self._run.background

    @property
    def state(self) -> LiveState:
        return self._run.state

    @property
    def editor(self) -> PriorEditor:
        return self._run.editor

    @property
    def latent(self) -> LatentView:
        return self._run.latent

    @property
    def lps(self) -> LPSView:
        return self._run.lps

    @property
    def traversals(self) -> TraversalView:
        return self._run.traversals

    def _replace(self, trainer: Trainer) -> None:
        """Make ``trainer`` the current run in place of the one shown, which gives back its folder's writer lock."""
        self.latent.close()
        self.background.close()
        self._run = self._open(self._background_for(trainer))

    def _background_for(self, trainer: Trainer) -> BackgroundTrainer:
        return BackgroundTrainer(trainer, probe_size=self.probe_size, snapshot_interval=self._interval, **self._rest)

    def _open(self, background: BackgroundTrainer | Follower | Monitor) -> _Run:
        """State, views and prior editor for ``background``'s run (its latent size), shown in place."""
        trainer = background.source
        if trainer.step >= int(self.panel.steps.value):  # an opened run at its end: Start trains it further
            self.panel.steps.value = trainer.step + trainer.total_steps
        d = trainer.latent_dim
        state = LiveState()
        editor = PriorEditor(d, prior=trainer.prior)
        editor.on_change(self._on_prior)
        run = _Run(background, state, editor, LatentView(d, background.probe, self.lock, self._on_select, state,
                                                         background.preview), LPSView(d), TraversalView(),
                   HistoryBar(state, self.lock))
        state.observe(self.panel.update)
        state.observe(run.latent.update, "codes")
        state.observe(run.lps.update, "codes")
        state.observe(run.traversals.update, "traversals")
        programmable = trainer.prior is not None
        self.prior_tab.children = [editor.widget if programmable else _no_prior(self.panel.objective.value)]
        self.tabs.set_title(1, "Prior" if programmable else "Prior (n/a)")
        wrap = {"flex_flow": "row wrap", "align_items": "flex-start"}
        self._views_box.children = [
            widgets.HBox([self.tabs, widgets.VBox([run.history.widget, run.latent.widget])], layout=wrap),
            widgets.HBox([run.latent.structure], layout=wrap),
            widgets.HBox([run.lps.widget, run.traversals.widget], layout=wrap),
        ]
        background.publish()
        return run

    @property
    def settings_changed(self) -> list[str]:
        """The settings the panel shows other than the run's (derived, at the precision the controls display)."""
        return self.panel.differs(self.trainer.config) if isinstance(self.trainer, Trainer) else []

    def _on_setting(self, _change: object = None) -> None:
        changed = self.settings_changed
        with self.lock:
            self.panel.show_changed(changed)

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
                if self.settings_changed:
                    if self.background.running:
                        raise RuntimeError("Training is already running; stop it before starting a new run.")
                    config = self._new_config()
                    self._replace(self._new_runs.trainer(config))
                    self.panel.show_changed(self.settings_changed)
                self.background.start(steps)
                self.panel.set_state(RunState.RUNNING)
                self.panel.show("")
            except (RuntimeError, ValueError, OSError) as error:
                self.panel.show(str(error), error=True)

    def save_view(self, path: str | Path | None = None) -> Path | None:
        """Write the views as shown to one HTML file that opens offline and stays interactive, and their picture
        beside it as a PNG (`saved_view`); ``path`` defaults to ``view-step<N>.html`` in the panel's folder."""
        return save_shown_view(self, path)

    def _on_prior(self, prior: Prior) -> None:
        if self.trainer.prior is None:
            return  # the Prior tab says why there is nothing to program
        if self.following is not None:
            self.panel.show("A followed run trains in another process: a prior edited here cannot reach it.",
                            error=True)
            return
        self.background.set_prior(prior)

    def _on_select(self, index: int) -> None:
        """The latent view has put the selection in the state; the engine decodes the traversals from it."""
        self.background.select(index)

    # ------------------------------------------------------------------ snapshots -> views

    def apply(self, snapshot: Snapshot) -> bool:
        """Show ``snapshot`` in every view (the updates thread calls this; so may tests); False if it belongs to a
        run that has just been replaced."""
        with self.lock:
            if snapshot.run_id != self.trainer.run_id:
                return False
            self.state.post(snapshot)
            self.editor.follow(snapshot.prior)
            if self.following is not None:
                self.panel.show(f"Following {self.following} (read-only): the run is trained by another process.")
            self.fallback.update(snapshot)
            return True

    def refresh(self, timeout: float | None = None) -> Snapshot | None:
        """Apply the newest queued snapshot, waiting up to ``timeout`` s for one; returns it (None if none)."""
        return self.updates.refresh(timeout)

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self.state.snapshot

    def _on_draw_error(self, error: Exception) -> None:
        with self.lock:
            self.panel.show(f"Could not update the view: {error!r}", error=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for training to end and re-raise its error, if any (end notebooks with this)."""
        self.background.join(timeout)

    def close(self) -> None:
        """Stop training and the live updates, and close the widgets."""
        self.background.close()
        self.updates.close()
        self.latent.close()
        self.widget.close()


def _no_prior(objective: str) -> widgets.HTML:
    """What the Prior tab says for an objective with no prior to program."""
    takers = ", ".join(cls.label for cls in OBJECTIVES.values() if cls.takes_prior)
    return widgets.HTML(
        f"<p style='max-width:420px'>The {OBJECTIVES[objective].label} objective has no prior to program: its KL "
        "term pulls each code toward N(0, I) per image. Choose an objective that takes a prior "
        f"({takers}) in the Train tab, then Start, to train toward a prior drawn here.</p>")


class NewRuns:
    """What Start makes a new run of: the data its settings name (each loaded once, the data passed in kept under
    its own settings), and the user's own model if one was passed (the object itself for the first run, then a copy
    of its weights as passed: a run trains its model in place), else the built-in model the settings describe."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None, model: nn.Module | None) -> None:
        self._datasets = {} if dataset is None else {self._key(config): dataset}
        self._model, self._initial = model, copy.deepcopy(model)

    def trainer(self, config: TrainConfig) -> Trainer:
        key = self._key(config)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(config.dataset, **config.dataset_options)
        model, self._model = self._model, copy.deepcopy(self._initial)
        return Trainer(config, self._datasets[key], model=model)

    @staticmethod
    def _key(config: TrainConfig) -> str:
        return repr((config.dataset, sorted(config.dataset_options.items())))
