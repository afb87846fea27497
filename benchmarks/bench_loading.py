"""Cold vs cached load time and peak memory of ``idcclf.datasets.load_idc``.

Run from the repository root::

    python benchmarks/bench_loading.py                 # ../shared/data/idc
    python benchmarks/bench_loading.py --data DIR --executor thread
    python benchmarks/bench_loading.py --data ../shared/data/idc ../shared/data/idc-partial

Phases, each in its own Python subprocess so that each peak RSS (``ru_maxrss``) is
that phase's alone (several ``--data`` folders are loaded together, as a list):

- ``cold full``: ``load_idc(cache_check="full")`` (the default) into a fresh
  temporary ``data_home`` (decode + cache write);
- ``cached full``: the same call again, ``--cached-runs`` times;
- ``cold fast`` / ``cached fast``: the same with ``cache_check="fast"`` (no stat per
  file to validate the cache); cached runs of both checks take turns;
- ``cold mmap``: ``memory_map=True`` into another fresh ``data_home``;
- with ``--joblib``, ``cold joblib`` / ``cached joblib``: the same load cached by
  ``joblib.Memory(location, mmap_mode="r")`` instead of ``load_idc``'s own store (as
  scikit-learn's ``fetch_lfw_people`` caches), with the tree listing's digest as an
  argument so that the key follows the tree (:func:`joblib_store_load`); both
  checks, ``fast`` and ``full``;
- ``pillow loop``: the usual hand-written loader, one ``PIL.Image.open`` per file in a
  Python loop, appended to a list and stacked into a float32 array scaled to [0, 1]
  (what a from-scratch recipe does; no cache, one core).

The PNG files themselves are read through the OS page cache, which is warm after the
first ever run, so cold times are best cases for cold (and the ratios conservative).
The memory budget printed is the target ``1.25 * N * 7500 bytes + 300 MB``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARRAYS = ("data", "target", "groups", "coords", "filenames", "original_shapes")
DEFAULT_DATA = REPO.parent / "shared" / "data" / "idc"

CHILD = r"""
import hashlib, json, resource, sys, time
import numpy as np
import idcclf.datasets as ds

data_dirs, data_home, executor, n_jobs, cache_check, memory_map, store = sys.argv[1:8]
data_dirs = json.loads(data_dirs)
data_dir = data_dirs[0] if len(data_dirs) == 1 else data_dirs
n_jobs = None if n_jobs == "None" else int(n_jobs)
if store == "joblib":
    sys.path.insert(0, sys.argv[8])
    import joblib
    from bench_loading import joblib_store_load
rss_import_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

t0 = time.perf_counter()
with ds.decode_executor(executor):
    if store == "joblib":
        b = joblib_store_load(data_dir, data_home, n_jobs=n_jobs, cache_check=cache_check)
    else:
        b = ds.load_idc(data_dir, data_home=data_home, n_jobs=n_jobs, cache_check=cache_check,
                        memory_map=memory_map == "1")
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

PILLOW_LOOP = r"""
import json, os, resource, sys, time
import numpy as np
from PIL import Image

roots = json.loads(sys.argv[1])
rss_import_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
images, labels = [], []
for root, patient in [(r, p) for r in roots for p in sorted(os.listdir(r))]:
    for label in ("0", "1"):
        folder = os.path.join(root, patient, label)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".png"):
                with Image.open(os.path.join(folder, name)) as im:
                    im = im.convert("RGB")
                    if im.size != (50, 50):
                        im = im.resize((50, 50))
                    images.append(np.asarray(im))
                labels.append(int(label))
X = np.array(images, dtype=np.float32) / 255.0
y = np.array(labels)
t_load = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": int(len(y)), "load_s": t_load, "touch_s": 0.0,
                  "rss_import_mib": rss_import_mib, "rss_load_mib": rss, "rss_touch_mib": rss,
                  "sha256": "", "sum": 0}))
"""


def _decode_for_joblib(root: str, tree_digest: str, options: dict, n_jobs) -> dict:
    """What joblib.Memory caches: the arrays and DESCR of an uncached load."""
    from idcclf.datasets import load_idc

    bunch = load_idc(root, cache=False, n_jobs=n_jobs, **options)
    return {k: bunch[k] for k in (*ARRAYS, "DESCR")}


def joblib_store_load(data_dir: str, data_home: str, *, n_jobs=None, cache_check="fast"):
    """``load_idc`` with ``joblib.Memory`` as its cache store, for comparison.

    The same listing as ``load_idc`` (:class:`idcclf.datasets._scan.PatchTree`) is
    hashed and passed as an argument, so that joblib's key follows the tree.
    """
    import hashlib

    import joblib
    from sklearn.utils import Bunch

    from idcclf.datasets._scan import scan_tree

    tree = scan_tree(data_dir, stat_files=cache_check == "full")
    digest = hashlib.sha256()
    tree.hash_into(digest)
    memory = joblib.Memory(Path(data_home) / "joblib", mmap_mode="r", verbose=0)
    cached = memory.cache(_decode_for_joblib, ignore=["n_jobs"])
    options = {"size_policy": "pad", "on_error": "raise"}
    return Bunch(**cached(str(tree.root), digest.hexdigest(), options, n_jobs))


_STORED: dict = {}


def _stored_result(tree_digest: str) -> dict:
    """What joblib.Memory stores in --compare-stores: a result computed beforehand."""
    return _STORED["arrays"]


def compare_stores(data: Path, reps: int) -> None:
    """Time the two stores alone, in this process: write and read the same arrays.

    Both read the same listing, so only the store differs: load_idc's (one ``.npy``
    per array plus a manifest, fsync'ed, renamed into place; read back as
    copy-on-write maps) and ``joblib.Memory(mmap_mode="r")`` (one pickle with the
    arrays inline, renamed into place; read back as read-only maps). The two take
    turns; each figure is the fastest and the median of ``reps`` runs.
    """
    import joblib

    from idcclf.datasets import _cache, load_idc

    bunch = load_idc(data, cache=False)
    arrays = {k: bunch[k] for k in ARRAYS}
    _STORED["arrays"] = arrays
    meta = {"DESCR": bunch.DESCR}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="idcclf-stores-") as tmp:
        for i in range(reps):
            key = f"{i:040d}"
            own = Path(tmp) / "own" / key
            memory = joblib.Memory(Path(tmp) / f"joblib{i}", mmap_mode="r", verbose=0)
            cached = memory.cache(_stored_result)
            for name, call in (
                ("write idcclf", functools.partial(_cache.write_cache, own, key, arrays, meta)),
                ("write joblib", functools.partial(cached, key)),
                ("read idcclf", functools.partial(_cache.read_cache, own, key)),
                ("read joblib", functools.partial(cached, key)),
            ):
                t0 = time.perf_counter()
                result = call()
                times.setdefault(name, []).append(time.perf_counter() - t0)
                assert result is not None or name.startswith("write")
            kinds = {type(result["data"]).__name__ for result in (cached(key),)}
            del result, cached, memory
            shutil.rmtree(own)
            shutil.rmtree(Path(tmp) / f"joblib{i}")
    print(f"joblib returns data as: {', '.join(kinds)}")
    for name, values in times.items():
        print(
            f"{name:<13} fastest {min(values):.4f} s, median {statistics.median(values):.4f} s "
            f"({len(values)} runs)"
        )


def check_cost(data: list[Path], reps: int) -> None:
    """Time what each cache check adds to a cached load: listing the roots and hashing.

    That is the part of a cached load that depends on ``cache_check``; the rest (reading
    the manifest, mapping or reading the arrays) is the same for both.
    """
    from idcclf.datasets._cache import cache_key
    from idcclf.datasets._scan import scan_roots

    roots = [str(d) for d in data]
    times: dict[str, list[float]] = {"full": [], "fast": []}
    n_files = 0
    for _ in range(reps):
        for check in times:
            t0 = time.perf_counter()
            trees = scan_roots(roots, stat_files=check == "full")
            for tree in trees:
                cache_key([tree], {"cache_check": check})
            times[check].append(time.perf_counter() - t0)
            n_files = sum(len(f) for t in trees for f in t.folders.values())
    for check, values in times.items():
        print(
            f"check {check}: fastest {min(values) * 1e3:.1f} ms, median "
            f"{statistics.median(values) * 1e3:.1f} ms ({reps} runs, {n_files} files)"
        )
    extra = statistics.median(times["full"]) - statistics.median(times["fast"])
    per_file = extra / n_files * 1e6
    print(f"full - fast: {extra * 1e3:.1f} ms by the medians, {per_file:.2f} us a file")


def _run(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_phase(
    data: list[Path],
    data_home: str,
    executor: str,
    n_jobs: str,
    check: str = "fast",
    mmap: bool = False,
    store: str = "idcclf",
) -> dict:
    here = str(Path(__file__).resolve().parent)
    flag = "1" if mmap else "0"
    roots = json.dumps([str(d) for d in data])
    return _run(CHILD, roots, data_home, executor, n_jobs, check, flag, store, here)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, nargs="+", default=[DEFAULT_DATA], help="IDC root folder(s)"
    )
    ap.add_argument("--cached-runs", type=int, default=5, help="cached loads per cache check")
    ap.add_argument("--cold-runs", type=int, default=1, help="cold loads per cache check")
    ap.add_argument(
        "--executor",
        choices=("auto", "thread", "process"),
        default="auto",
        help="decoding pool (auto: the package default, processes on Linux)",
    )
    ap.add_argument("--n-jobs", default="None", help="n_jobs for load_idc (default: all cores)")
    ap.add_argument("--no-pillow-loop", action="store_true", help="skip the Pillow-loop baseline")
    ap.add_argument(
        "--joblib", action="store_true", help="also time a joblib.Memory store (see above)"
    )
    ap.add_argument(
        "--check-cost",
        type=int,
        metavar="REPS",
        help="only time the listing and hashing of each cache check, in this process",
    )
    ap.add_argument(
        "--compare-stores",
        type=int,
        metavar="REPS",
        help="only time writing and reading the cache, load_idc's store vs joblib.Memory",
    )
    return ap.parse_args(argv)


def collect(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """Run every phase, each in a fresh subprocess; return (name, result) pairs.

    The stores and the cache checks take turns at every repetition, so that all see
    the same load on a shared machine.
    """
    phases: list[tuple[str, dict]] = []
    setups = [
        (store, check)
        for check in ("full", "fast")
        for store in (("idcclf", "joblib") if args.joblib else ("idcclf",))
    ]
    with contextlib.ExitStack() as stack:
        homes = {}
        for _ in range(args.cold_runs):
            for store, check in setups:
                homes[store, check] = stack.enter_context(tempfile.TemporaryDirectory())
                result = _phase(args, homes[store, check], check, store)
                phases.append((_name("cold", store, check), result))
        for _ in range(args.cached_runs):
            for store, check in setups:
                result = _phase(args, homes[store, check], check, store)
                phases.append((_name("cached", store, check), result))
    with tempfile.TemporaryDirectory(prefix="idcclf-bench-") as home:
        phases.append(("cold mmap", _phase(args, home, "full", "idcclf", mmap=True)))
    if not args.no_pillow_loop:
        roots = json.dumps([str(d) for d in args.data])
        phases.append(("pillow loop", _run(PILLOW_LOOP, roots)))
    return phases


def _name(kind: str, store: str, check: str) -> str:
    return f"{kind}{'' if store == 'idcclf' else ' joblib'} {check}"


def _phase(args: argparse.Namespace, home: str, check: str, store: str, mmap: bool = False):
    return run_phase(args.data, home, args.executor, args.n_jobs, check, mmap, store)


def report(phases: list[tuple[str, dict]]) -> bool:
    """Print the table and the ratios; return whether every result was identical."""
    n = phases[0][1]["n"]
    digests = {r["sha256"] for name, r in phases if name != "pillow loop"}
    budget_mib = (1.25 * n * 7500 + 300e6) / 2**20
    print(f"patches: {n}; every load_idc result identical: {len(digests) == 1}")
    print(f"memory budget 1.25 * N * 7500 B + 300 MB = {budget_mib:.0f} MiB")
    print(
        f"{'phase':<19} {'load s':>8} {'+1 pass s':>10} {'RSS import':>11} "
        f"{'peak RSS load':>14} {'peak RSS +pass':>15} {'of budget':>10}"
    )
    for name, r in phases:
        print(
            f"{name:<19} {r['load_s']:>8.3f} {r['load_s'] + r['touch_s']:>10.3f} "
            f"{r['rss_import_mib']:>8.0f} MiB {r['rss_load_mib']:>10.0f} MiB "
            f"{r['rss_touch_mib']:>11.0f} MiB {r['rss_touch_mib'] / budget_mib:>9.0%}"
        )
    names = dict.fromkeys(name for name, _ in phases)
    medians = {k: statistics.median(r["load_s"] for m, r in phases if m == k) for k in names}
    for name in (m for m in medians if m.startswith("cached")):
        cold = medians["cold" + name.removeprefix("cached")]
        fastest = min(r["load_s"] for m, r in phases if m == name)
        print(
            f"{name}: median {medians[name]:.4f} s, fastest {fastest:.4f} s; "
            f"median cold {cold:.3f} s; cold / cached: {cold / medians[name]:.0f}x"
        )
    if "pillow loop" in medians:
        loop, cold = medians["pillow loop"], medians["cold full"]
        print(f"ratio pillow loop / cold full: {loop / cold:.1f}x")
    return len(digests) == 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    missing = [str(d) for d in args.data if not d.is_dir()]
    if missing:
        print(f"data folder not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    if len(args.data) > 1 and (args.joblib or args.compare_stores):
        print("--joblib and --compare-stores take one --data folder", file=sys.stderr)
        return 1
    print(f"data: {', '.join(str(d.resolve()) for d in args.data)}")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"executor: {args.executor}, n_jobs: {args.n_jobs}")
    if args.compare_stores:
        compare_stores(args.data[0], args.compare_stores)
        return 0
    if args.check_cost:
        check_cost(args.data, args.check_cost)
        return 0
    return 0 if report(collect(args)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
