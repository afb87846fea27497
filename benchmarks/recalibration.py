"""Batch-norm re-estimation, as the working tree does it against an earlier revision.

``IDCClassifier`` ends every fit by re-estimating CancerNet's batch-norm statistics
exactly on 2,048 training patches (``idcclf._ops.recalibrate_batch_norm``). This script
times that step as the working tree's ``idcclf/_ops.py`` does it ("now") against the
same file at the git revision ``--against`` ("then"), loaded beside it, on the same
network and patches:

- each way runs in a fresh process (``take_turns`` of ``bench_training.py``),
  the two taking turns ``--rounds`` times, so that neither inherits the other's warm
  memory and the machine's drift falls on both;
- in each process the step runs ``--calls`` times; the first call includes tracing
  its graphs, as the first fit of a session pays it;
- the network is CancerNet with its default settings and seeded random weights, the
  patches the first ``--n`` of the bundled real sample (what is timed does not
  depend on how far training went);
- the statistics of both ways are compared: the largest difference of the moving
  means and variances, relative to each channel's standard deviation and variance.

Usage::

    python benchmarks/recalibration.py --against REV [--n 2048] [--rounds 3] [--calls 3]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import take_turns, write_runs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAYS = ("now", "then")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--against", required=True, help="git revision whose idcclf/_ops.py is 'then'"
    )
    parser.add_argument("--n", type=int, default=2048, help="patches re-estimated on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="re-estimations per process")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for name in ("n", "rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def previous_source(revision: str) -> str:
    """The text of ``src/idcclf/_ops.py`` at ``revision``, or SystemExit naming it."""
    done = subprocess.run(
        ["git", "show", f"{revision}:src/idcclf/_ops.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(
            f"--against {revision}: git cannot show src/idcclf/_ops.py there: {done.stderr.strip()}"
        )
    return done.stdout


def load_ops(source: str | None):
    """The working tree's ``idcclf._ops`` (None), or ``source`` loaded as a module beside it."""
    if source is None:
        from idcclf import _ops

        return _ops
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "_ops_then.py"
        path.write_text(source)
        # A dotted name inside idcclf, so that the file's relative imports resolve there.
        spec = importlib.util.spec_from_file_location("idcclf._ops_then", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def recalibrate_once(way: str, source: str | None, n: int, calls: int) -> dict:
    """``calls`` re-estimations of one network on ``n`` sample patches, timed."""
    import keras
    import numpy as np

    from idcclf import build_cancernet
    from idcclf.datasets import load_sample

    ops = load_ops(source)
    X = load_sample().data
    if len(X) < n:
        raise ValueError(f"--n {n}: the bundled sample has only {len(X)} patches")
    X = X[:n]
    keras.utils.set_random_seed(0)
    model = build_cancernet()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        ops.recalibrate_batch_norm(model, X)
        seconds.append(time.perf_counter() - start)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return {
        "way": way,
        "patches": len(X),
        "seconds": seconds,
        "means": [np.asarray(layer.moving_mean).tolist() for layer in norms],
        "variances": [np.asarray(layer.moving_variance).tolist() for layer in norms],
    }


def largest_differences(a: dict, b: dict) -> tuple[float, float]:
    """Largest |mean difference| / std and |variance difference| / variance over channels."""
    import numpy as np

    means, variances = 0.0, 0.0
    for mean_a, mean_b, var_a, var_b in zip(
        a["means"], b["means"], a["variances"], b["variances"], strict=True
    ):
        var_a, var_b = np.asarray(var_a), np.asarray(var_b)
        scale = np.sqrt(np.maximum(var_a, 1e-12))
        means = max(means, float(np.max(np.abs(np.subtract(mean_a, mean_b)) / scale)))
        variances = max(variances, float(np.max(np.abs(var_a - var_b) / np.maximum(var_a, 1e-12))))
    return means, variances


def main(argv=None) -> int:
    args = parse_args(argv)
    sources = {"now": None, "then": previous_source(args.against)}
    print(
        f"re-estimation on {args.n} sample patches: the working tree ('now') against "
        f"{args.against} ('then'), {args.rounds} rounds of {args.calls} calls, "
        f"{os.cpu_count()} CPUs"
    )
    runs = take_turns(
        args.rounds,
        WAYS,
        recalibrate_once,
        lambda way: (way, sources[way], args.n, args.calls),
        lambda run: " / ".join(f"{s:.2f}" for s in run["seconds"]) + " s (the first with tracing)",
    )
    first = {way: [r["seconds"][0] for r in runs if r["way"] == way] for way in WAYS}
    later = {way: [s for r in runs if r["way"] == way for s in r["seconds"][1:]] for way in WAYS}
    ratios = [
        then["seconds"][0] / now["seconds"][0]
        for now, then in zip(runs[::2], runs[1::2], strict=True)
    ]
    print(
        f"first call: now {min(first['now']):.2f}-{max(first['now']):.2f} s, then "
        f"{min(first['then']):.2f}-{max(first['then']):.2f} s; then / now per round "
        + ", ".join(f"{r:.2f}x" for r in ratios)
    )
    if args.calls > 1:
        print(
            f"later calls, median: now {statistics.median(later['now']):.2f} s, then "
            f"{statistics.median(later['then']):.2f} s "
            f"({statistics.median(later['then']) / statistics.median(later['now']):.2f}x)"
        )
    means, variances = largest_differences(runs[0], runs[1])
    print(
        f"statistics, now against then: means within {means:.1e} of each channel's std, "
        f"variances within {variances:.1e} relative"
    )
    if args.out:
        write_runs(args.out, args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
