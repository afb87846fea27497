"""What glibc's thresholds cost: ``IDCClassifier`` with TensorFlow's setting and with ours.

TensorFlow freezes glibc's mmap threshold at 128 KiB the first time a process
iterates a generator dataset, which every ``fit`` does; ``idcclf._allocator`` then
raises it (and the trim threshold), unless ``IDCCLF_KEEP_TENSOR_BUFFERS=0``. This
script measures both, each in a process of its own (so that each has its own peak
memory), interleaved (tensorflow, raised, tensorflow, raised, ...) ``--repeats`` times.

Each process loads ``--n`` patches of ``--data`` (random, seed 0), fits once on 256 of
them (tracing and TensorFlow's own setting out of the way), then times
``IDCClassifier(epochs=--epochs, stain_jitter=0.05, validation_fraction=0)`` on all of
them (batch-norm re-estimation included) and ``predict_proba`` on ``--predict``
patches, and reports for each the wall time, the CPU time in user and kernel mode, the
minor page faults, and the process's peak resident memory.

Usage::

    python benchmarks/bench_allocator.py [--data ../shared/data/idc] [--n 4096] \\
        [--epochs 3] [--predict 8192] [--repeats 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import in_fresh_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"tensorflow": "0", "raised": "1"}  # IDCCLF_KEEP_TENSOR_BUFFERS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--predict", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def usage() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": time.perf_counter(),
        "user_s": own.ru_utime,
        "system_s": own.ru_stime,
        "minor_faults": own.ru_minflt,
    }


def since(start: dict) -> dict:
    now = usage()
    return {key: now[key] - start[key] for key in start}


def measure(variant: str, data: Path, n: int, epochs: int, predict: int) -> dict:
    """One variant's measurements; meant for a fresh process (``in_fresh_process``)."""
    # Read at every fit and prediction, so setting it here, before any, is enough.
    os.environ["IDCCLF_KEEP_TENSOR_BUFFERS"] = VARIANTS[variant]
    import numpy as np

    from idcclf import IDCClassifier, load_idc

    bunch = load_idc(data)
    rng = np.random.default_rng(0)
    train = rng.choice(len(bunch.target), size=min(n, len(bunch.target)), replace=False)
    X, y = bunch.data[train], bunch.target[train]
    params = dict(random_state=0, verbose=0, stain_jitter=0.05, validation_fraction=0)
    IDCClassifier(epochs=1, **params).fit(X[:256], y[:256])
    start = usage()
    clf = IDCClassifier(epochs=epochs, **params).fit(X, y)
    fit = since(start)
    patches = bunch.data[:predict]
    start = usage()
    clf.predict_proba(patches)
    predict_usage = since(start)
    return {
        "fit": {**fit, "images_per_s": epochs * len(X) / fit["wall_s"]},
        "predict": {**predict_usage, "images_per_s": len(patches) / predict_usage["wall_s"]},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def line(variant: str, part: str, r: dict) -> str:
    return (
        f"{variant:<11}{part:<9}{r['wall_s']:>8.1f}{r['images_per_s']:>8.0f}{r['user_s']:>8.1f}"
        f"{r['system_s']:>8.1f}{r['minor_faults'] / 1e6:>10.2f}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    print(
        f"{args.n} patches, {args.epochs} epochs, predict {args.predict}, "
        f"{args.repeats} interleaved rounds, {os.cpu_count()} CPUs",
        flush=True,
    )
    header = ("wall s", "img/s", "user s", "sys s")
    print(f"{'setting':<11}{'part':<9}" + "".join(f"{h:>8}" for h in header) + f"{'faults M':>10}")
    rounds = []
    for round_ in range(args.repeats):
        results = {
            variant: in_fresh_process(
                measure, variant, args.data, args.n, args.epochs, args.predict
            )
            for variant in VARIANTS
        }
        for variant, r in results.items():
            for part in ("fit", "predict"):
                print(line(variant, part, r[part]))
            print(f"{variant:<11}peak RSS {r['peak_rss_mb']:.0f} MB")
        ratios = {
            part: results["tensorflow"][part]["wall_s"] / results["raised"][part]["wall_s"]
            for part in ("fit", "predict")
        }
        print(
            f"  round {round_ + 1}: raised thresholds {ratios['fit']:.2f}x faster to fit, "
            f"{ratios['predict']:.2f}x to predict",
            flush=True,
        )
        rounds.append({"results": results, "speedup": ratios})
    if args.out:
        settings = {key: (str(v) if isinstance(v, Path) else v) for key, v in vars(args).items()}
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps({"settings": settings, "rounds": rounds}, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
