"""Prediction rate of ``predict_patients`` on a local Dask cluster vs one process.

Scores the same patient folders, in one run, four ways and prints their rates
(patches per second) side by side:

1. ``IDCClassifier.predict_proba`` on patches already in memory (``load_idc``, cached):
   the network alone;
2. ``predict_patients`` without a client: each patient's PNGs decoded in batches and
   predicted, in this process;
3. ``predict_patients`` on a ``LocalCluster`` of 1 worker process (TensorFlow using
   every core);
4. the same on 2 worker processes (the cores shared between them).

Each cluster is started, its workers import TensorFlow and load the model on a
warm-up run over the first two patients, then the timed run scores every selected
patient; the start-up is timed separately. The largest difference from the
single-process probabilities is printed as a check. So is the workers' peak resident
memory (the largest over a cluster's workers; Linux's ``VmHWM``, the peak of the
worker's own address space: ``ru_maxrss`` would also count this process's memory,
which a worker process briefly shares when it starts) after the warm-up's two patients
and after all of them: a worker holds a batch at a time, so the second should not grow
with ``--patients``.

Usage::

    python benchmarks/bench_distributed.py [--data ../shared/data/idc] [--patients 6] \\
        [--model model.joblib] [--batch-size 512] [--workers 1 2]

See ``docs/benchmarks.md`` for measured figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "idc")
    parser.add_argument(
        "--patients", type=int, default=6, help="first N patients (sorted) of --data"
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the pretrained one")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    return parser.parse_args()


def timed_run(model, folders, **kwargs):
    from idcclf import predict_patients

    start = time.perf_counter()
    results = {r.patient: r for r in predict_patients(model, folders, **kwargs)}
    return results, time.perf_counter() - start


def worker_peak_mb(client) -> float:
    """The largest peak resident memory of the client's workers so far, in MB (Linux)."""

    def peak() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
        raise RuntimeError("no VmHWM in /proc/self/status: worker memory needs Linux")

    return max(client.run(peak).values())


def on_cluster(model, folders, n_workers, batch_size, reference):
    import distributed

    from idcclf._threads import TFThreadsPlugin, threads_per_worker

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    with cluster, distributed.Client(cluster) as client:
        client.register_plugin(TFThreadsPlugin(threads_per_worker(n_workers)))
        # Start-up: TensorFlow imported and the model loaded in every worker.
        timed_run(model, folders[:2], client=client, batch_size=batch_size)
        startup = time.perf_counter() - start
        warm_peak = worker_peak_mb(client)
        results, seconds = timed_run(model, folders, client=client, batch_size=batch_size)
        peaks = (warm_peak, worker_peak_mb(client))
    diff = max(float(np.abs(results[p].proba - r.proba).max()) for p, r in reference.items())
    return results, seconds, startup, diff, peaks


def main() -> int:
    args = parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}: pass --data", file=sys.stderr)
        return 2
    import joblib
    import tensorflow as tf

    from idcclf import load_idc, load_pretrained

    model = load_pretrained() if args.model is None else joblib.load(args.model)
    patients = sorted(p.name for p in args.data.iterdir() if (p / "0").is_dir())
    folders = [args.data / p for p in patients[: args.patients]]
    bunch = load_idc(args.data, patients=[f.name for f in folders])
    n = len(bunch.target)
    print(
        f"{n} patches of {len(folders)} patients ({', '.join(f.name for f in folders)}), "
        f"batch {args.batch_size}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}; "
        f"their pixels in memory {bunch.data.nbytes / 2**20:.0f} MB",
        flush=True,
    )

    rows = []
    model.predict_proba(bunch.data[:256])  # trace once
    start = time.perf_counter()
    model.predict_proba(bunch.data)
    rows.append(("predict_proba, in memory, this process", time.perf_counter() - start, None, 0))
    print(f"  {rows[-1][0]}: {rows[-1][1]:.1f} s", flush=True)
    reference, seconds = timed_run(model, folders, batch_size=args.batch_size)
    rows.append(("predict_patients, no client (decode + predict)", seconds, None, 0))
    print(f"  {rows[-1][0]}: {seconds:.1f} s", flush=True)
    for n_workers in args.workers:
        _, seconds, startup, diff, (warm, done) = on_cluster(
            model, folders, n_workers, args.batch_size, reference
        )
        name = f"predict_patients, LocalCluster {n_workers} worker(s)"
        rows.append((name, seconds, startup, diff))
        print(
            f"  {name}: {seconds:.1f} s (start-up {startup:.1f} s); worker peak memory "
            f"{warm:.0f} MB after 2 patients, {done:.0f} MB after {len(folders)}",
            flush=True,
        )

    base = rows[1][1]
    print(f"\n{'run':<50}{'s':>7}{'patches/s':>11}{'vs no client':>14}{'start-up s':>12}")
    for name, seconds, startup, _ in rows:
        up = "" if startup is None else f"{startup:.1f}"
        print(f"{name:<50}{seconds:>7.1f}{n / seconds:>11.0f}{base / seconds:>13.2f}x{up:>12}")
    worst = max(row[3] for row in rows)
    print(f"largest difference from the single-process probabilities: {worst:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
