"""The training panel: dataset, objective and optimizer settings, Start / Pause / Resume / Stop / Save, progress
with steps/s and time left, a status line, and a loss curve for each named loss term."""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any

import ipywidgets as widgets
from bokeh.layouts import gridplot
from bokeh.models import BasicTicker, ColumnDataSource, LogTicker, NumeralTickFormatter
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from explorer.data import dataset_presets
from explorer.live import RunState, Snapshot
from explorer.objectives import OBJECTIVES
from explorer.settings import TrainConfig
from explorer.widgets.bokehjs import BokehPane

BATCH_SIZES = (32, 64, 128, 256, 512)


def penalty_weight(objective: str) -> tuple[str, float, tuple[float, float]] | None:
    """(name, default, slider range) of the objective's main penalty weight, or None if it declares none."""
    weights = OBJECTIVES[objective].weights()
    if not weights:
        return None
    return weights[0].name, float(weights[0].default), weights[0].metadata["range"]


def _shown(slider: widgets.FloatLogSlider, value: float) -> str:
    """``value`` as ``slider``'s readout shows it."""
    return format(value, slider.readout_format)


def _as_shown(slider: widgets.FloatLogSlider) -> float:
    """The slider's value as its readout shows it: a value typed there (lr 3e-4) is the one used, not the log
    step's neighbour the slider holds (0.00030007)."""
    return float(_shown(slider, slider.value))


LOG_TERMS = ("loss", "recon")  # terms that fall over decades: drawn on a log axis


def loss_figure(source: ColumnDataSource, term: str, colour: str) -> figure:
    """One loss term over the steps: axis titles, a few readable ticks, and a log axis (without the bar of minor
    ticks a narrow log range draws) for the terms that fall over decades."""
    log = term in LOG_TERMS
    fig = figure(width=185, height=150, title=term, toolbar_location=None, tools="", x_axis_label="step",
                 y_axis_label=f"{term} (log)" if log else term, y_axis_type="log" if log else "linear",
                 min_border_right=12)
    fig.xaxis.ticker = BasicTicker(desired_num_ticks=3, min_interval=1)
    fig.xaxis.formatter = NumeralTickFormatter(format="0a")
    fig.yaxis.ticker = LogTicker(desired_num_ticks=3, num_minor_ticks=0) if log else BasicTicker(desired_num_ticks=4)
    fig.yaxis.minor_tick_line_color = None
    fig.title.text_font_size = fig.xaxis.axis_label_text_font_size = fig.yaxis.axis_label_text_font_size = "9pt"
    fig.line("step", term, source=source, color=colour, line_width=1.5)
    return fig


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class TrainingPanel:
    """Run settings and controls. The app wires the buttons; `config()` reads the settings as a `TrainConfig`."""

    def __init__(self, config: TrainConfig) -> None:
        self._base = config
        datasets = dataset_presets()
        current = next((k for k, v in datasets.items() if v == (config.dataset, config.dataset_options)), None)
        if current is None:
            current = config.dataset
            datasets[current] = (config.dataset, dict(config.dataset_options))
        self._datasets = datasets
        narrow = {"width": "290px"}
        style = {"description_width": "90px"}
        self.dataset = widgets.Dropdown(options=list(datasets), value=current, description="dataset", style=style,
                                        layout=narrow)
        self.objective = widgets.Dropdown(options=[(cls.label, name) for name, cls in OBJECTIVES.items()],
                                          value=config.objective, description="objective", style=style,
                                          layout=narrow)
        self.latent_dim = widgets.IntSlider(value=config.latent_dim, min=1, max=16, description="latent size",
                                            style=style)
        # log sliders with fine steps, so that the front end's snapping keeps a value as it is shown (lam 30
        # reads 30, not 31.6); settings are compared at the precision of these readouts (see `differs`)
        self.weight = widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.001, readout_format=".3g",
                                             description="lam", style=style)
        self.lr = widgets.FloatLogSlider(value=config.lr, base=10, min=-5, max=-1.5, step=0.001,
                                         readout_format=".2g", description="learning rate", style=style)
        self.batch_size = widgets.Dropdown(options=sorted({*BATCH_SIZES, config.batch_size}),
                                           value=config.batch_size, description="batch size", style=style,
                                           layout=narrow)
        # not bounded: a bounded box would turn 0 or -5 into 1 silently; Start refuses them with a message
        self.steps = widgets.IntText(value=config.steps, description="steps", style=style, layout=narrow)
        self.out = widgets.Text(value="runs/explorer", description="save to", style=style, layout=narrow)
        self._show_weight(config.objective, config.objective_options)
        # changing any of these means a new model: the app starts a new run with them
        self.run_settings = (self.dataset, self.objective, self.latent_dim, self.weight, self.lr, self.batch_size)
        self.objective.observe(lambda change: self._show_weight(change["new"]), names="value")

        def button(label: str, icon: str, style: str = "") -> widgets.Button:
            return widgets.Button(description=label, icon=icon, button_style=style, layout={"width": "auto"})

        self.start = button("Start", "play", "success")
        self.pause = button("Pause", "pause")
        self.resume = button("Resume", "play")
        self.stop = button("Stop", "stop", "danger")
        self.save = button("Save", "save")
        self.save_view = button("Save view", "share-square")
        self.save_view.tooltip = "the views as shown, in one HTML file that opens offline, and a PNG beside it"
        self.progress = widgets.IntProgress(value=0, min=0, max=config.steps, layout={"width": "260px"})
        self.stats = widgets.HTML("step 0")
        self.status = widgets.HTML()  # rendered from the three below by `_render_status`
        self.message, self.message_is_error = "", False
        self.changed: list[str] = []  # the run settings the controls change
        self._terms: tuple[str, ...] = ()
        self.loss_source = ColumnDataSource({"step": []})
        self.losses = widgets.Box()
        self.external = False  # the loop is not the explorer's own: no Start, Save or settings (see `watching`)
        self.set_state(RunState.IDLE)
        self.settings = widgets.VBox([self.dataset, self.objective, self.latent_dim, self.weight, self.lr,
                                 self.batch_size, self.steps, self.out])
        buttons = widgets.HBox([self.start, self.pause, self.resume, self.stop, self.save, self.save_view],
                               layout={"flex_flow": "row wrap"})  # whole labels, on two lines if need be
        self.widget = widgets.VBox([self.settings, buttons, widgets.HBox([self.progress, self.stats]), self.status,
                                    self.losses])

    def _show_weight(self, objective: str, options: dict[str, Any] | None = None) -> None:
        """The weight slider named, ranged and set for ``objective``: from ``options``, else the panel's own run's if
        it is that objective (choosing another objective and back keeps its value), else the objective's default."""
        if options is None:
            options = self._base.objective_options if objective == self._base.objective else {}
        weight = penalty_weight(objective)
        self.weight.disabled = weight is None
        if weight is not None:
            name, default, (low, high) = weight
            self.weight.description = name
            self.weight.min, self.weight.max = math.log10(low), math.log10(high)
            self.weight.value = float(options.get(name, default))

    def config(self) -> TrainConfig:
        """The settings as a `TrainConfig` (the prior is set by the app)."""
        name, options = self._datasets[self.dataset.value]
        objective = self.objective.value
        weight = penalty_weight(objective)
        objective_options = {} if weight is None else {weight[0]: _as_shown(self.weight)}
        return dataclasses.replace(
            self._base, dataset=name, dataset_options=dict(options), objective=objective,
            objective_options=objective_options, latent_dim=int(self.latent_dim.value), lr=_as_shown(self.lr),
            batch_size=int(self.batch_size.value), steps=int(self.steps.value),
        )

    def differs(self, run: TrainConfig) -> list[str]:
        """The run settings whose controls show another value than ``run`` has, compared as the controls display
        them (a log slider's snapping of 30 to 29.99 is no change); empty when Start would continue ``run``."""
        mine = self.config()
        if (mine.dataset, mine.dataset_options) != (run.dataset, run.dataset_options):
            return ["dataset"]
        changed = [name for name in ("objective", "latent_dim", "batch_size")
                   if getattr(mine, name) != getattr(run, name)]
        if _shown(self.lr, mine.lr) != _shown(self.lr, run.lr):
            changed.append("lr")
        weight = penalty_weight(mine.objective)
        if not changed and weight is not None:
            name, default, _ = weight
            if _shown(self.weight, mine.objective_options[name]) != _shown(
                    self.weight, float(run.objective_options.get(name, default))):
                changed.append(name)
        return changed

    def set_state(self, state: RunState) -> None:
        """Enable the buttons that make sense in ``state`` (`RunState.FOLLOWING`: everything read-only)."""
        active = state in (RunState.RUNNING, RunState.PAUSED, RunState.FOLLOWING) or self.external
        self.start.disabled = active
        self.pause.disabled = state != RunState.RUNNING
        self.resume.disabled = state != RunState.PAUSED
        self.stop.disabled = state not in (RunState.RUNNING, RunState.PAUSED)
        self.save.disabled = self.out.disabled = self.steps.disabled = state == RunState.FOLLOWING or self.external
        for control in self.run_settings:
            control.disabled = active
        self.weight.disabled = active or penalty_weight(self.objective.value) is None

    def watching(self) -> None:
        """The run is a loop of the user's own (`explorer.live.monitor.Monitor`): its settings are its code's, so
        they are hidden, and Start and Save are off; Pause, Resume and Stop act on the loop between two steps."""
        self.external = True
        self.settings.layout.display = "none"
        self.set_state(RunState.IDLE)

    def show(self, message: str, error: bool = False) -> None:
        """Put ``message`` in the status line (red if it is an error), in place of what it showed."""
        self.message, self.message_is_error = message, error
        self._render_status()

    def show_changed(self, changed: list[str]) -> None:
        """Note the run settings the controls change (empty: none). A new change replaces the message shown; the
        note goes when the settings are the run's again, and a later message replaces it."""
        if changed and changed != self.changed:
            self.message, self.message_is_error = "", False
        self.changed = list(changed)
        self._render_status()

    def _render_status(self) -> None:
        """The status line's HTML, from the message and the changed settings."""
        message = self.message
        if not message and self.changed:
            message = f"Settings changed ({', '.join(self.changed)}): Start begins a new run with them."
        colour = "#b00" if self.message_is_error else "#333"
        self.status.value = f"<span style='color:{colour}'>{html.escape(message)}</span>" if message else ""

    def update(self, snapshot: Snapshot) -> None:
        """Progress, throughput, time left and the loss curves of ``snapshot`` (call with the app's lock)."""
        known = snapshot.total_steps > 0
        self.progress.layout.visibility = "visible" if known else "hidden"
        self.progress.max = max(snapshot.total_steps, 1)
        self.progress.value = min(snapshot.step, snapshot.total_steps)
        text = f"step {snapshot.step:,}" + (f" / {snapshot.total_steps:,}" if known else "")
        left = snapshot.seconds_left
        if left is not None:
            text += f" · {snapshot.steps_per_s:.1f} steps/s · {format_duration(left)} left"
        elif snapshot.state is RunState.RUNNING and snapshot.steps_per_s > 0:
            text += f" · {snapshot.steps_per_s:.1f} steps/s"
        self.stats.value = f"{text} · {snapshot.state}"
        self.set_state(snapshot.state)
        if snapshot.message:
            self.show(snapshot.message, error=snapshot.message_is_error)
        self._update_losses(snapshot)

    def _update_losses(self, snapshot: Snapshot) -> None:
        terms = tuple(snapshot.history)
        if not terms:
            return
        if terms != self._terms:
            self._terms = terms
            self.loss_source = ColumnDataSource({"step": [], **{t: [] for t in terms}})
            figures = [loss_figure(self.loss_source, term, colour)
                       for term, colour in zip(terms, Category10_10, strict=False)]
            self.losses.children = [BokehPane(gridplot(figures, ncols=2, toolbar_location=None))]
        self.loss_source.data = {"step": snapshot.history_steps, **snapshot.history}
