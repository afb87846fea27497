"""Parallel PNG decoding: workers writing the output in place against pickled blocks.

``load_idc`` decodes with a :class:`idcclf.datasets._decode.DecodePool`. Where the
pool allocates the output itself (every in-memory load), its workers decode straight
into it: forked processes into rows shared with the loading process, so that no pixel
is pickled and the loading process copies nothing. Given an output to fill (what
``memory_map=True`` passes: a file of rows), the workers return each chunk's pixels
instead, which the loading process copies in, as every parallel load did before.
Both ways run here, on the same files, each in a fresh Python process of its own (a
fresh heap: on the VMs of ``docs/loaders.md`` touching new memory is a large part
of the cost), taking turns (``--rounds`` of each), and the script checks that both
decoded the same pixels.

Run from the repository root::

    python benchmarks/bench_decoding.py                      # ../shared/data/idc
    python benchmarks/bench_decoding.py --data ../shared/data/idc ../shared/data/idc-partial
    python benchmarks/bench_decoding.py --executor thread --rounds 3

Printed per run: the seconds to decode every patch file under the ``--data`` roots
(listing them is not timed) and patches per second; then the median of each way and
the ratio of the medians, and each round's ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [REPO.parent / "shared" / "data" / "idc"]
WAYS = ("in place", "pickled blocks")

CHILD = r"""
import glob, json, os, resource, sys, time
import numpy as np
from idcclf.datasets._decode import DecodePool

roots, way, executor, n_jobs = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
paths = sorted(p for r in roots for p in glob.glob(os.path.join(r, "*", "[01]", "*.png")))
out = None if way == "in place" else np.empty((len(paths), 50, 50, 3), np.uint8)
start = time.perf_counter()
with DecodePool(n_jobs, kind=executor) as pool:
    rows, shapes, status = pool.decode(paths, "pad", out)
seconds = time.perf_counter() - start
print(json.dumps({
    "n": len(paths), "seconds": seconds, "sum": int(rows.sum(dtype=np.uint64)),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run_child(roots: list[str], way: str, executor: str, n_jobs: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(roots), way, executor, str(n_jobs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", default=[str(p) for p in DEFAULT_DATA])
    ap.add_argument("--rounds", type=int, default=5, help="runs of each way, taking turns")
    ap.add_argument("--executor", choices=("process", "thread"), default="process")
    ap.add_argument("--n-jobs", type=int, default=2, help="decoding workers (default: 2)")
    args = ap.parse_args()
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    sums = set()
    for round_ in range(1, args.rounds + 1):
        # alternate which way goes first, so that neither always follows the other
        for way in WAYS if round_ % 2 else WAYS[::-1]:
            result = run_child(args.data, way, args.executor, args.n_jobs)
            times[way].append(result["seconds"])
            sums.add(result["sum"])
            print(
                f"round {round_} {way:15s} {result['seconds']:6.2f} s  "
                f"{result['n'] / result['seconds']:7.0f} patches/s  "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    if len(sums) != 1:
        print(f"the two ways decoded different pixels (sums {sorted(sums)})")
        return 1
    medians = {way: statistics.median(times[way]) for way in WAYS}
    ratios = [b / a for a, b in zip(times["in place"], times["pickled blocks"], strict=True)]
    print(
        f"{args.executor} x{args.n_jobs}, {result['n']} patches, medians: "
        + ", ".join(f"{way} {medians[way]:.2f} s" for way in WAYS)
        + f"; pickled / in place {medians['pickled blocks'] / medians['in place']:.2f}x; "
        f"per round {', '.join(f'{r:.2f}x' for r in ratios)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
