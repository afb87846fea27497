"""Cold vs cached load time and peak memory of ``idcclf.datasets.load_idc``.

Run from the repository root::

    python benchmarks/bench_loading.py                 # ../shared/data/idc
    python benchmarks/bench_loading.py --data DIR --executor process

Each phase runs in its own Python subprocess, so each peak RSS (``ru_maxrss``) is that
phase's alone. The cache goes to a fresh temporary ``data_home``, so the first load
is always a cold decode; the following loads hit the cache. The PNG files themselves
are read through the OS page cache, which is warm after the first ever run, so the
cold times are best cases for cold (and the speed-up ratio is conservative).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "idc"

CHILD = r"""
import hashlib, json, resource, sys, time
import numpy as np
import idcclf.datasets as ds

data_dir, data_home, executor, n_jobs = sys.argv[1:5]
ds._EXECUTOR = executor
n_jobs = None if n_jobs == "None" else int(n_jobs)
rss_import_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

t0 = time.perf_counter()
b = ds.load_idc(data_dir, data_home=data_home, n_jobs=n_jobs)
t_load = time.perf_counter() - t0
rss_load_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# One full pass over the pixels: on a cache hit the data is memory-mapped, so this
# is when its pages are actually read.
t0 = time.perf_counter()
total = int(b.data.sum(dtype=np.uint64))
t_touch = time.perf_counter() - t0
rss_touch_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

h = hashlib.sha256()
for k in ("data", "target", "groups", "coords", "filenames", "original_shapes"):
    h.update(np.ascontiguousarray(b[k]).tobytes())
print(json.dumps({
    "n": int(len(b.target)), "load_s": t_load, "touch_s": t_touch,
    "rss_import_mib": rss_import_mib, "rss_load_mib": rss_load_mib,
    "rss_touch_mib": rss_touch_mib, "sha256": h.hexdigest(), "sum": total,
}))
"""


def run_phase(data: Path, data_home: str, executor: str, n_jobs: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), data_home, executor, n_jobs],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="IDC root folder")
    ap.add_argument("--cold-runs", type=int, default=1, help="cold loads (fresh cache each)")
    ap.add_argument("--cached-runs", type=int, default=5, help="cached loads after the cold one")
    ap.add_argument(
        "--executor", choices=("thread", "process"), default="thread", help="decoding pool"
    )
    ap.add_argument("--n-jobs", default="None", help="n_jobs for load_idc (default: all cores)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder not found: {args.data}", file=sys.stderr)
        return 1

    print(f"data: {args.data.resolve()}")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"executor: {args.executor}, n_jobs: {args.n_jobs}")
    colds, cached = [], []
    for _ in range(args.cold_runs):
        with tempfile.TemporaryDirectory(prefix="idcclf-bench-") as home:
            colds.append(run_phase(args.data, home, args.executor, args.n_jobs))
            if not cached:
                cached = [
                    run_phase(args.data, home, args.executor, args.n_jobs)
                    for _ in range(args.cached_runs)
                ]

    ok = all(r["sha256"] == colds[0]["sha256"] for r in colds + cached)
    cold_s = statistics.median(r["load_s"] for r in colds)
    cached_s = statistics.median(r["load_s"] for r in cached) if cached else float("nan")
    print(f"patches: {colds[0]['n']}; cached arrays identical to cold: {ok}")
    print(
        f"{'phase':<8} {'load s':>8} {'+1 pass s':>10} {'RSS import':>11} "
        f"{'peak RSS load':>14} {'peak RSS +pass':>15}"
    )
    for name, rows in (("cold", colds), ("cached", cached)):
        for r in rows:
            print(
                f"{name:<8} {r['load_s']:>8.3f} {r['load_s'] + r['touch_s']:>10.3f} "
                f"{r['rss_import_mib']:>8.0f} MiB {r['rss_load_mib']:>10.0f} MiB "
                f"{r['rss_touch_mib']:>11.0f} MiB"
            )
    print(
        f"median cold: {cold_s:.3f} s, median cached: {cached_s:.3f} s, "
        f"ratio: {cold_s / cached_s:.1f}x"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
