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
import glob
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import in_fresh_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [REPO.parent / "shared" / "data" / "idc"]
WAYS = ("in place", "pickled blocks")


def decode_once(roots: list[str], way: str, executor: str, n_jobs: int) -> dict:
    """Decode every patch file under ``roots`` one ``way``; meant for a fresh process."""
    import numpy as np

    from idcclf.datasets._decode import DecodePool

    pattern = ("*", "[01]", "*.png")
    paths = sorted(p for root in roots for p in glob.glob(os.path.join(root, *pattern)))
    out = None if way == "in place" else np.empty((len(paths), 50, 50, 3), np.uint8)
    start = time.perf_counter()
    with DecodePool(n_jobs, kind=executor) as pool:
        rows, _, _ = pool.decode(paths, "pad", out)
    seconds = time.perf_counter() - start
    return {
        "n": len(paths),
        "seconds": seconds,
        "sum": int(rows.sum(dtype=np.uint64)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


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
            result = in_fresh_process(decode_once, args.data, way, args.executor, args.n_jobs)
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
