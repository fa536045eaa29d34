"""Command line: ``python -m explorer train | evaluate | reproduce``; the explorer opens its checkpoints.

The ``train`` flags are made from the declarations (`explorer.settings.TrainConfig`'s fields and each registered
objective's ``Config``), so a setting is written down once; the ``reproduce`` flags are made the same way from
the studies' declarations (`explorer.paper.studies`), with each study's default. ``--plugin MODULE`` imports a
module first, so the objectives and prior families it registers are available (see the README, "Extending
explorer").

``torchrun --nproc_per_node N -m explorer train ...`` trains on N processes (DistributedDataParallel; see
`explorer.distributed`); ``--batch-size`` is then the global batch, and only rank 0 writes and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer import priors
from explorer.objectives import OBJECTIVES
from explorer.paper import budget, reproduce, studies
from explorer.settings import MODEL, TrainConfig

OBJECTIVE_OPTION = "objective_option."  # argparse dest prefix of the objectives' options
EXPERIMENTS = {function.study.name: function for function in (reproduce.kl_failure, reproduce.engineered_priors,
                                                             budget.budget)}


def _json_or_file(text: str) -> dict[str, Any]:
    """A prior given as a JSON object, or as the path of a JSON file."""
    path = Path(text)
    try:
        source = path.read_text() if path.suffix == ".json" or path.exists() else text
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read the prior file {text}: {err.strerror or err}") from err
    try:
        value = json.loads(source)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not a JSON object or a JSON file: {text!r} ({err})") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return value


def _key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE, VALUE parsed as JSON when it is JSON (numbers, true/false) and kept as a string otherwise."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _prior_help() -> str:
    """The families of `explorer.priors`, with the per-dimension parameters they declare."""
    shown = [f"{name} ({', '.join(p.name for p in cls.params)})" if cls.params else name
             for name, cls in priors.families().items()]
    return ('; as JSON or a .json file, e.g. \'{"family": "uniform", "dim": 5, "low": -1, "high": 1}\'; families '
            "(per-dimension parameters): " + ", ".join(shown))


def _typed(hint: Any) -> dict[str, Any]:
    """argparse keywords for a field of type ``hint``: int, float, str, Literal, X | None or tuple[X, ...]."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _typed(args[0])
    if origin is typing.Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin is tuple:
        return {"nargs": len(args), "type": args[0]}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": hint}


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default where there is one to show (not None, an empty list or an unset switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_train_config(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """One flag per `TrainConfig` field (the objective's options come from the objectives, below)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        meta, parse = field.metadata, field.metadata.get("parse")
        if parse == "objective":
            continue
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        kwargs: dict[str, Any] = {"dest": field.name, "help": meta["help"]}
        if parse == "key_value":
            kwargs.update(action="append", type=_key_value, default=[], metavar="KEY=VALUE")
        elif parse == "prior":
            kwargs.update(type=_json_or_file, help=meta["help"] + _prior_help())
        elif hints[field.name] is bool:
            kwargs.update(action="store_true")
        else:
            kwargs.update(_typed(hints[field.name]), default=field.default)
            if field.name == "objective":
                kwargs["choices"] = list(OBJECTIVES)
                kwargs["help"] += ": " + ", ".join(f"{name} ({cls.label})" for name, cls in OBJECTIVES.items())
            elif "choices" in meta:
                kwargs["choices"] = list(meta["choices"])
        group.add_argument(meta.get("flag", _flag(field.name)), **kwargs)
    return groups


def _add_objective_options(group: argparse._ArgumentGroup) -> None:
    """One flag per option name of the registered objectives (``--lam`` serves AE-MMD and AE-KLD alike)."""
    users: dict[str, list[tuple[str, dataclasses.Field, Any]]] = {}
    for name, cls in OBJECTIVES.items():
        hints = typing.get_type_hints(cls.Config)
        for field in dataclasses.fields(cls.Config):
            if not field.metadata.get("fact"):
                users.setdefault(field.name, []).append((name, field, hints[field.name]))
    for option, declared in users.items():
        helps = dict.fromkeys(field.metadata.get("help", "") for _, field, _ in declared)
        defaults = ", ".join(f"{name} {field.default!r}" for name, field, _ in declared)
        text = "; ".join(helps) if len(helps) == 1 else "; ".join(
            f"{name}: {field.metadata.get('help', '')}" for name, field, _ in declared)
        kwargs = {"metavar": option.upper(), **_typed(declared[0][2])}
        if "choices" in declared[0][1].metadata:
            kwargs["choices"] = list(declared[0][1].metadata["choices"])
        if "choices" in kwargs or kwargs.get("action"):
            del kwargs["metavar"]
        try:
            group.add_argument(_flag(option), dest=OBJECTIVE_OPTION + option, default=None,
                               help=f"{text} (default: {defaults})", **kwargs)
        except argparse.ArgumentError as err:
            raise ValueError(f"objective option {option!r} of {[n for n, _, _ in declared]} clashes with a train "
                             f"flag: {err}") from None


def _study_settings() -> dict[str, list[tuple[str, dataclasses.Field, Any]]]:
    """Setting name -> (experiment, declared field, type) of every study that takes it as a flag."""
    users: dict[str, list[tuple[str, dataclasses.Field, Any]]] = {}
    for name, function in EXPERIMENTS.items():
        hints = typing.get_type_hints(function.study)
        for setting, field in studies.settings(function.study).items():
            users.setdefault(setting, []).append((name, field, hints[setting]))
    return users


def _add_reproduce(reproduce_parser: argparse.ArgumentParser) -> None:
    """One flag per setting of the studies (`explorer.paper.studies`): its declared help, and each study's default;
    a setting the flags leave unset keeps the study's default."""
    add = reproduce_parser.add_argument
    add("experiment", choices=tuple(EXPERIMENTS), help="which study")
    for setting, declared in _study_settings().items():
        field, hint = declared[0][1], declared[0][2]
        helps: dict[str, list[str]] = {}
        for name, f, _ in declared:
            helps.setdefault(f.metadata["help"], []).append(name)
        text = next(iter(helps)) if len(helps) == 1 else "; ".join(
            f"{', '.join(names)}: {help}" for help, names in helps.items())
        defaults = {name: studies.flag_value(f, studies.default(f)) for name, f, _ in declared
                    if studies.default(f) not in (None, {})}
        notes = []
        if len(set(defaults.values())) == 1 and len(defaults) == len(declared):
            notes.append(f"default: {next(iter(defaults.values()))}")
        elif defaults:
            notes.append("default: " + ", ".join(f"{name} {value}" for name, value in defaults.items()))
        if len(declared) < len(EXPERIMENTS):
            notes.append(f"{', '.join(name for name, _, _ in declared)} only")
        parse = field.metadata.get("parse")
        if parse == "key_value":
            kwargs: dict[str, Any] = {"action": "append", "type": _key_value, "metavar": "KEY=VALUE"}
        elif parse == "count":
            kwargs = {"type": int, "metavar": "S"}
        elif parse == "names":
            kwargs = {"nargs": "+", "metavar": "NAME", "choices": list(field.metadata["choices"])}
            text += f": {', '.join(field.metadata['choices'])}"
        else:
            kwargs = _typed(hint)
            if "choices" in field.metadata:
                kwargs["choices"] = list(field.metadata["choices"])
        add(studies.flag(field), dest=setting, default=None,
            help=f"{text} ({'; '.join(notes)})" if notes else text, **kwargs)
    add("--all", action="store_true", help="train every objective of the paper's Table 1: "
        + ", ".join(reproduce.KL_FAILURE_ALL))
    add("--jobs", type=int, help="models trained at once, each in a process of one thread: on a CPU, one per core "
        "is fastest (default: 1)")
    add("--out", required=True, type=Path, help="folder for the runs, table and figures")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m explorer``."""
    return build_parsers()[0]


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of ``python -m explorer`` and its commands' parsers by name (train, evaluate, reproduce, app)."""
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="Train and evaluate autoencoders with programmable priors (AE-MMD) and their baselines.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, for the objectives and prior families it registers; repeatable")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", parents=[common], help="train a model and write checkpoints",
        description="Train an autoencoder; checkpoints go to --out and open with explorer.load(OUT).",
        formatter_class=_Help,
    )
    groups = _add_train_config(train)
    data = groups["data"]
    data.add_argument("--root", help="where datasets that need files live (default: $EXPLORER_DATA)")
    data.add_argument("--download", action="store_true", help="download the dataset if it is not on disk")
    _add_objective_options(groups[MODEL])
    output = groups["output"]
    output.add_argument("--out", required=True, type=Path, help="run folder for checkpoints")
    output.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="evaluate a trained run",
        description="Evaluate a run folder; prints a report and writes RUN/evaluation.json.",
        formatter_class=_Help,
    )
    evaluate.add_argument("run", type=Path, help="run folder written by `train`")
    evaluate.add_argument("--n", type=int, default=10_000, help="images to encode (at most the dataset size)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sample of images")
    evaluate.add_argument("--root", help="where the dataset lives, if it needs files")

    reproduce = commands.add_parser(
        "reproduce", parents=[common], help="reproduce the paper's comparisons",
        description=" ".join(f"{name}: {' '.join(function.study.__doc__.split())}"
                             for name, function in EXPERIMENTS.items())
        + " Each run is evaluated, and table.md, table.csv, results.json and figures/ are written into --out "
        "(engineered-priors: into --out/xy and --out/shapes; budget: budget.json, budget.png and steps/).",
    )
    _add_reproduce(reproduce)

    app = commands.add_parser(
        "app", parents=[common], help="open the explorer as a page in the browser (Voila)",
        description="Serve the live explorer as a page without code cells on 127.0.0.1 (needs explorer[app]). "
        "It opens RUN (a run folder or a shipped checkpoint) to train further, follows it read-only while "
        "another process trains it, or starts a new run without RUN.",
        formatter_class=_Help,
    )
    app.add_argument("run", type=Path, nargs="?", help="run folder to open")
    app.add_argument("--port", type=int, help="port to serve on (default: Voila's, 8866, or the next free one)")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    return parser, {"train": train, "evaluate": evaluate, "reproduce": reproduce, "app": app}


def options(command: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options a command's parser takes, with their flags and help (argparse keeps them private)."""
    return [action for action in command._actions if action.option_strings]


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` the parsed ``train`` flags describe."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values["dataset_options"] = dict(args.dataset_options)
    if args.root:
        values["dataset_options"]["root"] = args.root
    if args.download:
        values["dataset_options"]["download"] = True
    values["objective_options"] = {key.removeprefix(OBJECTIVE_OPTION): value for key, value in vars(args).items()
                                   if key.startswith(OBJECTIVE_OPTION) and value is not None}
    return TrainConfig(**values)


def _preflight(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Check settings, dataset, device and run folder before anything is built; rank 0 holds the folder."""
    from explorer import checkpoints, distributed
    from explorer.data import check_dataset
    from explorer.training import check_distributed, claim, resolve_device

    resolve_device(args.device)
    if args.resume:
        checkpoints.read_meta(args.out)
    else:
        config = train_config(args)
        check_dataset(config.dataset, **config.dataset_options)
        check_distributed(config, distributed.world_size())
    if not distributed.is_main():
        return contextlib.nullcontext()
    return claim(args.out, checkpoints.read_meta(args.out)[0]["run_id"] if args.resume else None)


def _train(args: argparse.Namespace) -> int:
    from explorer import distributed

    distributed.init_from_env(args.device)  # no-op unless started by torchrun
    try:
        with _preflight(args):
            status = _train_here(args)
    except BaseException:
        distributed.shutdown(wait=False)  # the other ranks may never reach a barrier
        raise
    distributed.shutdown()
    return status


def _train_here(args: argparse.Namespace) -> int:
    from explorer import distributed
    from explorer.progress import ProgressBar
    from explorer.training import Trainer, TrainingError

    main_rank = distributed.is_main()
    callbacks = [ProgressBar()] if main_rank else []
    if args.resume:
        trainer = Trainer.resume(args.out, callbacks=callbacks, steps=args.steps)
    else:
        trainer = Trainer(train_config(args), out=args.out, callbacks=callbacks)
    distributed.barrier()  # every rank has seen the run folder as it was before rank 0 writes into it
    try:
        trainer.run()
    except TrainingError as err:
        if main_rank:
            trainer.save()
            print(f"error: {err} Checkpoint of step {trainer.step} saved in {args.out}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if main_rank:
            trainer.save()
            print(f"\ninterrupted: checkpoint of step {trainer.step} saved in {args.out}; continue with --resume.")
        return 130
    if main_rank:
        processes = f" on {trainer.world_size} processes" if trainer.world_size > 1 else ""
        print(f"trained {trainer.step} steps{processes}; checkpoint in {args.out} "
              f"(open it with explorer.load({str(args.out)!r}))")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import explorer
    from explorer.metrics.evaluate import check_sample, evaluate, format_report

    check_sample(args.n, args.seed)
    trained = explorer.load(args.run)
    dataset = trained.load_dataset(**({"root": args.root} if args.root else {}))
    report = evaluate(trained, dataset, n=args.n, seed=args.seed)
    (trained.path / "evaluation.json").write_text(json.dumps(report, indent=2))
    print(format_report(report))
    print(f"written: {trained.path / 'evaluation.json'}")
    return 0


def reproduce_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the experiment's study that the flags give (the rest keep the study's defaults); a flag of a
    setting the study does not have is an error."""
    declared = _study_settings()
    given = {setting: getattr(args, setting) for setting in declared if getattr(args, setting, None) is not None}
    if args.all:
        given["objectives"] = reproduce.KL_FAILURE_ALL
    accepted = studies.settings(EXPERIMENTS[args.experiment].study)
    for setting in given:
        if setting not in accepted:
            takers = [name for name, _, _ in declared[setting]]
            raise ValueError(f"{studies.flag(declared[setting][0][1])} applies to {', '.join(takers)}; "
                             f"{args.experiment} does not take it")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs: models trained at once, at least 1, got {args.jobs}")
    return {setting: studies.from_flag(accepted[setting], value) for setting, value in given.items()}


def _reproduce(args: argparse.Namespace) -> int:
    from explorer.progress import ProgressBar

    options = reproduce_options(args)
    results = EXPERIMENTS[args.experiment](args.out, callbacks=[ProgressBar()], jobs=args.jobs or 1, **options)
    if args.experiment == "budget":
        print(f"written: {args.out / budget.RESULTS}, {args.out / budget.FIGURE}, steps/ (weights per budget)")
        return 0
    tables = [args.out] if args.experiment == "kl-failure" else [args.out / name for name in results]  # sets made
    for folder in tables:
        print((folder / "table.md").read_text())
        print(f"written: {folder / 'table.md'}, table.csv, results.json, figures/")
    return 0


def _app(args: argparse.Namespace) -> int:
    from explorer.widgets.page import serve

    return serve(args.run, args.port, open_browser=not args.no_browser)


def load_plugins(argv: Sequence[str]) -> None:
    """Import the modules named by ``--plugin`` (before the parser is built: they add objectives and families)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    for module in early.parse_known_args(argv)[0].plugin:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"--plugin {module}: {err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m explorer``; returns the exit status."""
    from explorer.checkpoints import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # known before parsing, so that a plugin's error obeys it too
    try:
        load_plugins(argv)
        args = build_parser().parse_args(argv)
        command = {"train": _train, "evaluate": _evaluate, "reproduce": _reproduce, "app": _app}[args.command]
        return command(args)
    except (OSError, ValueError, ModuleNotFoundError, CheckpointError) as err:  # bad input, I/O, a full disk
        if debug:
            raise
        rank = int(os.environ.get("RANK", "0"))  # under torchrun, every process reports its own errors
        where = f" (rank {rank})" if rank else ""
        print(f"error{where}: {err}", file=sys.stderr)
        return 2
