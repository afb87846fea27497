"""How load, one training epoch and prediction grow with the number of patches.

Run from the repository root::

    python benchmarks/scaling.py                    # ../shared/data/idc, ~10 min on 2 cores
    python benchmarks/scaling.py --sizes 1000 4000 --plot docs/img/scaling.png

For each size N (nested subsets of whole patients, smallest first, so every N is a
real patient-grouped set) it runs, each in a fresh subprocess so that the peak RSS is
that step's own:

- ``load cold``: ``load_idc`` of those patients into a fresh cache (decode + write);
- ``load cached``: the same call again;
- ``fit 1 epoch``: ``IDCClassifier(epochs=1)`` with the default CancerNet,
  augmentation and batch size, on the cached arrays (wall time of ``fit``, which
  includes building the model and the batch-norm re-estimation);
- ``predict``: ``predict_proba`` of the same N patches.

It prints a table and a linear extrapolation (least squares on the measured points)
to the 277,524 patches of the full public set, and can save a log-log plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "idc"
FULL_SET = 277_524

CHILD = r"""
import json, resource, sys, time, warnings
step, data, home, patients = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
import idcclf.datasets as ds

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if step == "load":
    t0 = time.perf_counter()
    b = ds.load_idc(data, patients=patients, data_home=home)
    out = {"n": len(b.target), "s": time.perf_counter() - t0}
else:
    from idcclf import IDCClassifier
    b = ds.load_idc(data, patients=patients, data_home=home)
    clf = IDCClassifier(epochs=1, random_state=0, class_weight="balanced")
    if step == "fit":
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(b.data, b.target, groups=b.groups)
        out = {"n": len(b.target), "s": time.perf_counter() - t0}
    else:
        import numpy as np
        few = np.r_[np.flatnonzero(b.target == 0)[:32], np.flatnonzero(b.target == 1)[:32]]
        clf.fit(b.data[few], b.target[few])  # only to build the model; not timed
        clf.predict_proba(b.data[:256])  # warm-up
        t0 = time.perf_counter()
        clf.predict_proba(b.data)
        out = {"n": len(b.target), "s": time.perf_counter() - t0}
out["rss_mib"] = rss()
print(json.dumps(out))
"""


def _child(step: str, data: Path, home: str, patients: list[str]) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, step, str(data), home, ",".join(patients)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{step} on {len(patients)} patients failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _patient_sets(data: Path, sizes: list[int]) -> list[list[str]]:
    """For each size, the smallest prefix of patients (in a fixed order) that reaches it."""
    counts = {
        p.name: sum(len(list((p / c).glob("*.png"))) for c in ("0", "1") if (p / c).is_dir())
        for p in sorted(data.iterdir())
        if p.is_dir()
    }
    order = sorted(counts, key=lambda p: (counts[p], p))
    sets = []
    for size in sizes:
        chosen, total = [], 0
        for p in order:
            if total >= size:
                break
            chosen.append(p)
            total += counts[p]
        sets.append(chosen)
    return sets


def _secs(t: float) -> str:
    return f"{t:.3g}" if abs(t) < 100 else f"{t:,.0f}"


def _fit_line(ns: list[int], ys: list[float]) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.asarray(ns, float), np.asarray(ys, float), 1)
    return float(slope), float(intercept)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="IDC root folder")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 4000, 10000, 10**9],
        help="target patch counts (whole patients are added until reached; huge = all)",
    )  # fmt: skip
    ap.add_argument("--plot", type=Path, help="write a log-log PNG plot here")
    ap.add_argument("--json", type=Path, help="write the measurements as JSON here")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder not found: {args.data}", file=sys.stderr)
        return 1

    print(f"data: {args.data.resolve()}")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    steps = ("load cold", "load cached", "fit 1 epoch", "predict")
    rows = []
    for patients in _patient_sets(args.data, sorted(args.sizes)):
        if rows and rows[-1]["patients"] == patients:
            continue
        with tempfile.TemporaryDirectory(prefix="idcclf-scaling-") as home:
            row: dict = {"patients": patients}
            row["load cold"] = _child("load", args.data, home, patients)
            row["load cached"] = _child("load", args.data, home, patients)
            row["fit 1 epoch"] = _child("fit", args.data, home, patients)
            row["predict"] = _child("predict", args.data, home, patients)
        row["n"] = row["load cold"]["n"]
        rows.append(row)
        print(
            f"N={row['n']:>6} ({len(patients)} patients): "
            + ", ".join(f"{s} {row[s]['s']:.3g} s / {row[s]['rss_mib']:.0f} MiB" for s in steps),
            flush=True,
        )

    ns = [r["n"] for r in rows]
    print()
    print(f"| step | {' | '.join(f'N = {n:,}' for n in ns)} | N = {FULL_SET:,} (extrapolated) |")
    print(f"|---|{'---|' * len(ns)}---|")
    for s in steps:
        secs = [r[s]["s"] for r in rows]
        mems = [r[s]["rss_mib"] for r in rows]
        t_slope, t_icpt = _fit_line(ns, secs)
        m_slope, m_icpt = _fit_line(ns, mems)
        cells = [f"{_secs(t)} s, {m:.0f} MiB" for t, m in zip(secs, mems, strict=True)]
        t_full = t_slope * FULL_SET + t_icpt
        m_full = m_slope * FULL_SET + m_icpt
        print(f"| {s} | {' | '.join(cells)} | ~{_secs(t_full)} s, ~{m_full:,.0f} MiB |")
    print()
    print("throughput (patches/s): " + "; ".join(
        f"{s}: " + ", ".join(f"{r['n'] / r[s]['s']:.0f}" for r in rows) for s in steps
    ))  # fmt: skip

    if args.json:
        from idcclf._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from idcclf._io import atomic_path

        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
        for s in steps:
            ax_t.plot(ns, [r[s]["s"] for r in rows], "o-", label=s)
            ax_m.plot(ns, [r[s]["rss_mib"] for r in rows], "o-", label=s)
        for ax, label in ((ax_t, "seconds"), (ax_m, "peak RSS (MiB)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("patches")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        ax_t.legend()
        fig.suptitle(f"idcclf scaling, {os.cpu_count()} CPUs, data: {args.data.name}")
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.plot) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
