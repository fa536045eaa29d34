"""Benchmark LPS: our batched `mlp` and parallel `lgbm` against one-regressor-per-dimension reference loops.

    python benchmarks/lps.py            # n = 10,000, d in {12, 32, 64}, medians of --repeats runs
    python benchmarks/lps.py --quick    # smoke run for CI: d = 12, n = 2,000, one run each
    python benchmarks/lps.py --real     # also: the codes of shipped checkpoints (n = 5,000) against the reference
    python benchmarks/lps.py --real-lgbm  # only: our lgbm settings against a plain LGBMRegressor() loop, mnist-5k

All methods see the same codes (a random nonlinear mixing of 6 Gaussian sources plus noise, so R^2 is far
from 0 and from 1) and the same split and standardization (`explorer.metrics.lps`): the references fit on
the whole train split (scikit-learn holds out its own 10% for early stopping) and are scored on the test split.
References: `sklearn.neural_network.MLPRegressor(early_stopping=True)` and `lightgbm.LGBMRegressor()`, one
dimension at a time; `ref-sklearn-mlp-matched` is the scikit-learn loop with our mlp's settings (64 units,
learning rate 5e-3, batch 256), run once, to tell implementation from hyperparameters in R^2 differences.
`ours-lgbm` is the default lgbm, `ours-lgbm-early-stopped` the cheaper `LGBM_EARLY_STOPPED` of the shipped tables.
Every measurement runs in a fresh subprocess, so its peak RSS (ru_maxrss, interpreter and libraries
included) is its own. Threads: torch and BLAS on 1 thread (our `mlp` default; scikit-learn limited with
threadpoolctl). Our `lgbm` fits --threads single-threaded boosters at once; the reference LGBMRegressor runs
on 1 thread: with 2 OpenMP threads per booster it was up to 20x slower on this shared machine (threads
spinning while waiting for a descheduled peer). Compare CPU seconds for the work done.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from a checkout: import this checkout's explorer

METHODS = ("ours-mlp", "ref-sklearn-mlp", "ref-sklearn-mlp-matched", "ours-lgbm", "ours-lgbm-early-stopped",
           "ref-lgbm")
ONE_RUN = ("ref-sklearn-mlp-matched",)  # only there for its R^2
MATCHED = {"hidden_layer_sizes": (64,), "learning_rate_init": 5e-3, "batch_size": 256}  # our mlp's settings
REFERENCE = {"ours-mlp": "ref-sklearn-mlp", "ours-lgbm": "ref-lgbm", "ours-lgbm-early-stopped": "ref-lgbm"}
# (min speedup, max per-dimension |dR^2|); the default lgbm also decides, on the validation part, between the
# reference's booster and the constant, at about 1.8x the reference's CPU time
TARGETS = {"ours-mlp": (5.0, 0.03), "ours-lgbm": (0.5, 0.02), "ours-lgbm-early-stopped": (1.0, 0.03)}
REAL = ("kl-failure/mmd-seed0", "kl-failure/vae-seed0", "kl-failure/kld-seed0",
        "budget/shapes-lam10/mmd-seed0", "engineered/shapes/hybrid-seed0", "engineered/xy/uniform-seed0")  # a model
# of every shipped set: their codes make the real-codes rows


def make_codes(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Codes [n, d]: 6 Gaussian sources through a random tanh layer and a sine, plus noise 0.2."""
    rng = np.random.default_rng(seed)
    sources = rng.standard_normal((n, 6))
    hidden = np.tanh(sources @ rng.standard_normal((6, 2 * d)) * 1.5 / np.sqrt(6))
    return np.sin(2.0 * hidden @ rng.standard_normal((2 * d, d)) / np.sqrt(2 * d)) + 0.2 * rng.standard_normal(
        (n, d)
    )


def _reference(method: str, codes: np.ndarray, n: int, random_state: int = 0) -> np.ndarray:
    from explorer.metrics.lps import _split, r2_per_dim

    split = _split(codes, n, 0.2, 0.0, 0)
    d = codes.shape[1]
    pred = np.zeros_like(split.test)
    for i in range(d):
        others = np.arange(d) != i
        if method.startswith("ref-sklearn-mlp"):
            from sklearn.neural_network import MLPRegressor
            from threadpoolctl import threadpool_limits

            settings = MATCHED if method.endswith("matched") else {}
            with threadpool_limits(1):
                model = MLPRegressor(early_stopping=True, random_state=random_state, **settings)
                model.fit(split.train[:, others], split.train[:, i])
        else:
            from lightgbm import LGBMRegressor

            model = LGBMRegressor(n_jobs=1, random_state=0, verbose=-1)
            model.fit(split.train[:, others], split.train[:, i])
        pred[:, i] = model.predict(split.test[:, others])
    return r2_per_dim(split.test, pred)


def worker(method: str, d: int, n: int, threads: int) -> dict[str, Any]:
    """One timed measurement (run in a subprocess)."""
    from explorer.metrics import lps

    codes = make_codes(n, d)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if method.startswith("ours"):
        from explorer.metrics.lps import LGBM_EARLY_STOPPED

        kind = method.split("-")[1]
        options = LGBM_EARLY_STOPPED if method.endswith("early-stopped") else {}
        per_dim = lps(codes, method=kind, n=n, n_jobs=threads if kind == "lgbm" else None, **options).per_dim
    else:
        per_dim = _reference(method, codes, n)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return {"wall": wall, "cpu": cpu, "per_dim": per_dim.tolist(), "maxrss_mb": after.ru_maxrss / 1024}


def _measure(method: str, d: int, n: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", method, "--dims", str(d), "--n", str(n), "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(dims: list[int], n: int, repeats: int, sklearn_d64_repeats: int, threads: int) -> list[dict[str, Any]]:
    rows = []
    for d in dims:
        results: dict[str, dict[str, Any]] = {}
        for method in METHODS:
            runs = sklearn_d64_repeats if (method == "ref-sklearn-mlp" and d >= 64) else repeats
            runs = 1 if method in ONE_RUN else runs
            measured = [_measure(method, d, n, threads) for _ in range(runs)]
            results[method] = {
                "d": d, "method": method, "runs": runs,
                "wall": statistics.median(m["wall"] for m in measured),
                "cpu": statistics.median(m["cpu"] for m in measured),
                "per_dim": np.array(measured[0]["per_dim"]),
                "maxrss_mb": max(m["maxrss_mb"] for m in measured),
            }
            print(f"  d={d} {method}: {results[method]['wall']:.1f} s ({runs} run(s))", file=sys.stderr, flush=True)
        for method, row in results.items():
            ref = results.get(REFERENCE.get(method, ""))
            if ref is not None:
                row["speedup"] = ref["wall"] / row["wall"]
                row["cpu_speedup"] = ref["cpu"] / row["cpu"]
                row["max_abs_diff"] = float(np.max(np.abs(row["per_dim"] - ref["per_dim"])))
                row["mean_diff"] = float(np.mean(row["per_dim"] - ref["per_dim"]))
            rows.append(row)
        matched = results["ref-sklearn-mlp-matched"]["per_dim"] - results["ours-mlp"]["per_dim"]
        results["ours-mlp"]["vs_matched"] = (float(np.max(np.abs(matched))), float(np.mean(-matched)))
    return rows


def real_codes_rows(paths: tuple[str, ...] = REAL, n: int = 5000) -> list[dict[str, Any]]:
    """Our mlp against the scikit-learn loop on the codes of shipped checkpoints: mean R^2, the largest
    per-dimension difference to the reference (random_state 0) and to the mean of two reference seeds, and the
    reference's own largest per-dimension spread between those seeds (its noise floor)."""
    import explorer
    from explorer.metrics import lps
    from explorer.metrics.evaluate import encode_dataset
    from explorer.paper.shipped import checkpoints_root

    rows = []
    for path in paths:
        trained = explorer.load(checkpoints_root() / path)
        codes, _, _ = encode_dataset(trained, trained.load_dataset(), n, seed=0)
        start = time.perf_counter()
        ours = lps(codes, method="mlp", n=n).per_dim
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        ref = _reference("ref-sklearn-mlp", codes, n)
        ref_s = time.perf_counter() - start
        ref1 = _reference("ref-sklearn-mlp", codes, n, random_state=1)
        mean = (ref + ref1) / 2
        rows.append({"checkpoint": path, "d": codes.shape[1], "ours_mean_r2": float(np.mean(ours)),
                     "ref_mean_r2": float(np.mean(ref)), "max_abs_diff": float(np.max(np.abs(ours - ref))),
                     "max_abs_diff_vs_mean": float(np.max(np.abs(ours - mean))),
                     "ref_seed_spread": float(np.max(np.abs(ref - ref1))), "ours_s": ours_s, "ref_s": ref_s})
    return rows


def real_codes_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| checkpoint | d | ours mean R^2 | ref mean R^2 | max abs dR^2 vs ref (vs 2-seed mean) "
             "| ref seed spread | ours s | ref s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['d']} | {r['ours_mean_r2']:.3f} | {r['ref_mean_r2']:.3f} | "
                     f"{r['max_abs_diff']:.3f} ({r['max_abs_diff_vs_mean']:.3f}) | {r['ref_seed_spread']:.3f} | "
                     f"{r['ours_s']:.1f} | {r['ref_s']:.1f} |")
    return "\n".join(lines)


def lgbm_agreement_rows(paths: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Per shipped model (default: every mnist-5k one), as its manifest entry was evaluated: the LPS of a plain
    `LGBMRegressor()` loop (all defaults, on the raw codes of lps' 80/20 split), of our default lgbm and of
    `LGBM_EARLY_STOPPED`, and the CPU seconds of each (one thread)."""
    import explorer
    from explorer.metrics.evaluate import encode_dataset
    from explorer.paper.shipped import checkpoints_root, manifest

    entries = [e for e in manifest() if (e["path"] in paths if paths else e["path"].startswith("kl-failure/"))]
    rows = []
    for entry in entries:
        trained = explorer.load(checkpoints_root() / entry["path"])
        codes, _, _ = encode_dataset(trained, trained.load_dataset(), entry["eval"]["n"], entry["eval"]["seed"])
        rows.append({"checkpoint": entry["path"], **_timed_lgbm_scores(codes, entry["eval"]["seed"])})
    return rows


def _timed_lgbm_scores(codes: np.ndarray, seed: int) -> dict[str, float]:
    from explorer.metrics import lps
    from explorer.metrics.lps import LGBM_EARLY_STOPPED

    runs = {"plain": lambda: _plain_lgbm(codes, seed),
            "default": lambda: lps(codes, method="lgbm", seed=seed, n_jobs=1).score,
            "early_stopped": lambda: lps(codes, method="lgbm", seed=seed, n_jobs=1, **LGBM_EARLY_STOPPED).score}
    out = {}
    for name, run_one in runs.items():
        start = time.process_time()
        out[name] = run_one()
        out[f"{name}_s"] = time.process_time() - start
    return out


def _plain_lgbm(codes: np.ndarray, seed: int) -> float:
    """Mean test R^2 of LGBMRegressor() per dimension on the raw codes, fitted on lps' 80 % and scored on its 20 %."""
    from lightgbm import LGBMRegressor

    test, train = np.split(codes[np.random.default_rng(seed).permutation(len(codes))], [round(0.2 * len(codes))])
    scores = []
    for i in range(codes.shape[1]):
        others = np.arange(codes.shape[1]) != i
        scores.append(LGBMRegressor(n_jobs=1, verbose=-1).fit(train[:, others], train[:, i])
                      .score(test[:, others], test[:, i]))
    return float(np.mean(scores))


def lgbm_agreement_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| checkpoint | plain LGBMRegressor | ours, default | ours, early-stopped | CPU s: plain / default / "
             "early-stopped |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['plain']:.3f} | {r['default']:.3f} ({r['default'] - r['plain']:+.3f})"
                     f" | {r['early_stopped']:.3f} ({r['early_stopped'] - r['plain']:+.3f}) | {r['plain_s']:.1f} / "
                     f"{r['default_s']:.1f} / {r['early_stopped_s']:.1f} |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| d | method | runs | wall s (median) | CPU s | mean R^2 | vs ref: speedup wall / CPU "
             "| max abs dR^2 (mean dR^2) | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        versus = (f"{r['speedup']:.1f}x / {r['cpu_speedup']:.1f}x | {r['max_abs_diff']:.3f} ({r['mean_diff']:+.3f})"
                  if "speedup" in r else "- | -")
        lines.append(f"| {r['d']} | {r['method']} | {r['runs']} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{np.mean(r['per_dim']):.3f} | {versus} | {r['maxrss_mb']:.0f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["method"] in TARGETS:
            speed, diff = TARGETS[r["method"]]
            ok = r["speedup"] >= speed and r["max_abs_diff"] <= diff
            out.append(f"d={r['d']} {r['method']}: speedup {r['speedup']:.1f}x (target >= {speed:g}x), "
                       f"max |dR^2| {r['max_abs_diff']:.3f} (target <= {diff}) -> {'met' if ok else 'NOT met'}")
        if "vs_matched" in r:
            out.append(f"d={r['d']} ours-mlp vs ref-sklearn-mlp-matched: max |dR^2| {r['vs_matched'][0]:.3f}, "
                       f"mean ours - ref {r['vs_matched'][1]:+.3f}")
    peak = max(r["maxrss_mb"] for r in rows)
    out.append(f"peak RSS {peak:.0f} MB (target < 2048 MB) -> {'met' if peak < 2048 else 'NOT met'}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: d=12, n=2000, one run each")
    parser.add_argument("--dims", type=int, nargs="+", default=[12, 32, 64])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn-d64-repeats", type=int, default=1, help="runs of the slow sklearn loop, d >= 64")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--real", action="store_true", help="also compare on the codes of shipped checkpoints")
    parser.add_argument("--real-lgbm", action="store_true",
                        help="only compare our lgbm settings with a plain LGBMRegressor() loop on every mnist-5k model")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dims[0], args.n, args.threads)))
        return
    if args.real_lgbm:
        print(lgbm_agreement_table(lgbm_agreement_rows()))
        return
    if args.quick:
        args.dims, args.n, args.repeats = [12], 2000, 1
    print(f"# LPS benchmark: n={args.n}, threads={args.threads}, load average at start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rows = run(args.dims, args.n, args.repeats, args.sklearn_d64_repeats, args.threads)
    print(table(rows))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.quick:
        print("(--quick is a smoke run: the targets are for n = 10,000, where R^2 noise is smaller)")
    print("\n".join(verdicts(rows)))
    if args.real:
        print(real_codes_table(real_codes_rows()))
    if args.out:
        with open(args.out, "w") as f:
            json.dump([{**r, "per_dim": r["per_dim"].tolist()} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
