"""Time a 4-fit grid search with n_jobs=1 vs n_jobs=2 on the bundled sample.

The search is the ``optimizer`` study (Adagrad vs Adam) with 2 folds by patient and no
refit: 4 fits of the default CancerNet. With ``n_jobs=2`` two loky worker processes fit
at once, each limited to ``cores // 2`` TensorFlow threads (``idcclf._threads``), so
the speed-up is what running fits side by side gains over one fit using every core.
The parallel time includes starting the workers (each imports TensorFlow), as a
one-off search would pay it.

Run: python benchmarks/bench_parallel_search.py [--epochs 2] [--max-per-class 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from idcclf import load_sample
from idcclf.studies import run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-per-class", type=int, default=300)
    args = parser.parse_args()

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices from every new model are noise
    data = load_sample(max_per_class=args.max_per_class)
    X, y, groups = data.data, data.target, data.groups
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{len(y)} patches of {len(set(groups))} patients, {args.epochs} epochs per fit, "
        f"{cores} cores ({platform.processor() or platform.machine()}), "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    times = {}
    for n_jobs in (1, 2):
        started = time.perf_counter()
        result = run_study(
            "optimizer",
            X,
            y,
            groups,
            cv=2,
            epochs=args.epochs,
            n_jobs=n_jobs,
            refit=False,
            verbose=0,
        )
        times[n_jobs] = time.perf_counter() - started
        fits = len(result.table) * result.search.n_splits_
        mean_fit = sum(row["fit_time_mean"] for row in result.table) / len(result.table)
        print(
            f"n_jobs={n_jobs}: {times[n_jobs]:6.1f} s for {fits} fits "
            f"(mean fit time {mean_fit:.1f} s)"
        )
    print(f"speed-up n_jobs=2 over n_jobs=1: {times[1] / times[2]:.2f}x")


if __name__ == "__main__":
    main()
