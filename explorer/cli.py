"""Command line: ``python -m explorer train | evaluate | reproduce``; the explorer opens its checkpoints.

``torchrun --nproc_per_node N -m explorer train ...`` trains on N processes (DistributedDataParallel; see
`explorer.distributed`); ``--batch-size`` is then the global batch, and only rank 0 writes and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OBJECTIVES = ("mmd", "ae", "kld", "vae", "beta-vae", "beta-tcvae", "factorvae")
# penalty weight per reproduction: reconstruction is summed over pixels, so lambda scales with the image size
REPRODUCE_LAM = {"kl-failure": 30.0, "engineered-priors": 2.0}


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="Train and evaluate autoencoders with programmable priors (AE-MMD) and their baselines.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model and write checkpoints",
        description="Train an autoencoder; checkpoints go to --out and open with explorer.load(OUT).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = train.add_argument_group("data")
    data.add_argument("--dataset", default="shapes", help="dataset name (see explorer.data.DATASETS)")
    data.add_argument(
        "--dataset-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="dataset option, repeatable, e.g. size=32 or n=5000",
    )
    data.add_argument("--root", help="where datasets that need files live (default: $EXPLORER_DATA)")
    data.add_argument("--download", action="store_true", help="download the dataset if it is not on disk")

    model = train.add_argument_group("model and objective")
    model.add_argument("--objective", choices=OBJECTIVES, default="mmd", help="training objective")
    model.add_argument("--latent-dim", type=int, default=5, help="latent size d")
    model.add_argument("--depth", type=int, help="stride-2 conv layers (default: 4 at 32x32, 6 at 64x64)")
    model.add_argument("--width", type=int, default=32, help="channels of the first conv layer")
    model.add_argument(
        "--prior", type=_json_or_file,
        help='AE-MMD prior as JSON or a .json file, e.g. \'{"family": "uniform", "dim": 5, ...}\' '
        "(Prior.to_dict() format; default: standard Gaussian)",
    )
    model.add_argument("--lam", type=float, help="penalty weight of AE-MMD / AE-KLD (default 0.3)")
    model.add_argument("--beta", type=float, help="beta of VAE / beta-VAE / beta-TCVAE")
    model.add_argument("--gamma", type=float, help="gamma of FactorVAE (default 10)")
    model.add_argument("--kernel", choices=("rbf", "imq"), help="AE-MMD kernel (default rbf)")

    optim = train.add_argument_group("optimization")
    optim.add_argument("--steps", type=int, default=2000, help="total optimizer steps")
    optim.add_argument("--batch-size", type=int, default=512,
                       help="batch size (under torchrun: the global batch, split evenly over the processes)")
    optim.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    optim.add_argument("--seed", type=int, default=0, help="seed of initialization, batches and prior samples")
    optim.add_argument("--device", default="cpu",
                       help="cpu, cuda, cuda:1 or auto (under torchrun, cuda is each process's own GPU)")

    fast = train.add_argument_group("speed (GPU fast path; also valid on the CPU)")
    fast.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                      help="bf16: autocast the networks to bfloat16 (losses stay float32)")
    fast.add_argument("--channels-last", action="store_true", help="NHWC memory layout for the conv layers")
    fast.add_argument("--compile", action="store_true", help="torch.compile the encoder and decoder")

    output = train.add_argument_group("output")
    output.add_argument("--out", required=True, type=Path, help="run folder for checkpoints")
    output.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: at end)")
    output.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained run",
        description="Evaluate a run folder; prints a report and writes RUN/evaluation.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    evaluate.add_argument("run", type=Path, help="run folder written by `train`")
    evaluate.add_argument("--n", type=int, default=10_000, help="images to encode (at most the dataset size)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sample of images")
    evaluate.add_argument("--root", help="where the dataset lives, if it needs files")

    reproduce = commands.add_parser(
        "reproduce",
        help="reproduce the paper's comparisons",
        description="kl-failure: train VAE, beta-VAE (beta 4), AE-MMD (Gaussian prior), AE-KLD and AE on the same "
        "data and budget. engineered-priors: AE-MMD on xy with a Gaussian, Uniform and 2-GMM prior, and on shapes "
        "with a Gaussian prior, the dSprites hybrid prior and a copy of the hybrid run's codes. Each run is "
        "evaluated, and table.md, table.csv, results.json and figures/ are written into --out (engineered-priors: "
        "into --out/xy and --out/shapes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    reproduce.add_argument("experiment", choices=tuple(REPRODUCE_LAM), help="which comparison")
    reproduce.add_argument("--dataset", default="mnist-5k", help="dataset name (kl-failure)")
    reproduce.add_argument("--dataset-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                           help="dataset option, repeatable, e.g. size=32 (kl-failure)")
    reproduce.add_argument("--latent-dim", type=int, default=12, help="latent size d of every model (kl-failure)")
    reproduce.add_argument("--steps", type=int, default=2000, help="optimizer steps of every model")
    reproduce.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1 per model")
    reproduce.add_argument("--batch-size", type=int, default=64, help="batch size")
    reproduce.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    reproduce.add_argument("--lam", type=float, help="AE-MMD (and AE-KLD) penalty weight (default: "
                           + ", ".join(f"{lam} for {name}" for name, lam in REPRODUCE_LAM.items()) + ")")
    reproduce.add_argument("--kernel", choices=("rbf", "imq"),
                           help="AE-MMD kernel of engineered-priors (default imq: the RBF sum matches a Uniform "
                           "prior only in mean and variance)")
    reproduce.add_argument("--eval-n", type=int, default=5000, help="images the metrics are computed on")
    reproduce.add_argument("--all", action="store_true", help="add beta-TCVAE and FactorVAE (kl-failure)")
    reproduce.add_argument("--out", required=True, type=Path, help="folder for the runs, table and figures")
    return parser


def _objective_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {"lam": args.lam, "beta": args.beta, "gamma": args.gamma, "kernel": args.kernel}
    return {k: v for k, v in names.items() if v is not None}


def _config(args: argparse.Namespace) -> Any:
    """The `TrainConfig` of a new run (its construction validates every setting, the prior included)."""
    from explorer.training import TrainConfig

    options = dict(args.dataset_option)
    if args.root:
        options["root"] = args.root
    if args.download:
        options["download"] = True
    return TrainConfig(
        dataset=args.dataset, dataset_options=options, objective=args.objective,
        objective_options=_objective_options(args), prior=args.prior, latent_dim=args.latent_dim,
        depth=args.depth, width=args.width, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, checkpoint_every=args.checkpoint_every, device=args.device,
        precision=args.precision, channels_last=args.channels_last, compile=args.compile,
    )


def _preflight(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Check settings, dataset, device and run folder before anything is built; rank 0 holds the folder."""
    from explorer import checkpoints, distributed
    from explorer.data import check_dataset
    from explorer.training import check_distributed, claim, resolve_device

    resolve_device(args.device)
    if args.resume:
        checkpoints.read_meta(args.out)
    else:
        config = _config(args)
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
        trainer = Trainer(_config(args), out=args.out, callbacks=callbacks)
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


def _reproduce(args: argparse.Namespace) -> int:
    from explorer.progress import ProgressBar
    from explorer.reproduce import KL_FAILURE, KL_FAILURE_ALL, engineered_priors, kl_failure

    lam = REPRODUCE_LAM[args.experiment] if args.lam is None else args.lam
    common = {"steps": args.steps, "seeds": range(args.seeds), "batch_size": args.batch_size, "lr": args.lr,
              "lam": lam, "eval_n": args.eval_n, "callbacks": [ProgressBar()]}
    if args.experiment == "kl-failure":
        if args.kernel is not None:
            raise ValueError("--kernel applies to engineered-priors; kl-failure uses the paper's RBF kernel")
        kl_failure(args.out, dataset=args.dataset, dataset_options=dict(args.dataset_option),
                   latent_dim=args.latent_dim, objectives=KL_FAILURE_ALL if args.all else KL_FAILURE, **common)
        tables = [args.out]
    else:
        engineered_priors(args.out, kernel=args.kernel or "imq", **common)
        tables = [args.out / "xy", args.out / "shapes"]
    for folder in tables:
        print((folder / "table.md").read_text())
        print(f"written: {folder / 'table.md'}, table.csv, results.json, figures/")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m explorer``; returns the exit status."""
    from explorer.checkpoints import CheckpointError

    args = build_parser().parse_args(argv)
    command = {"train": _train, "evaluate": _evaluate, "reproduce": _reproduce}[args.command]
    try:
        return command(args)
    except (OSError, ValueError, CheckpointError) as err:  # expected failures: bad input, I/O, a full disk
        if args.debug:
            raise
        rank = int(os.environ.get("RANK", "0"))  # under torchrun, every process reports its own errors
        where = f" (rank {rank})" if rank else ""
        print(f"error{where}: {err}", file=sys.stderr)
        return 2
