"""Slow epochs: more work, or threads waiting? Wall time against CPU time, per epoch.

On the 2-vCPU VMs of ``docs/benchmarks.md`` some training epochs take about twice as
long as the others, in every pipeline, with no change of input. This script trains
CancerNet with plain ``keras.Model.fit`` (no augmentation, no ``IDCClassifier``) on
``--n`` random patches for ``--epochs`` epochs, and records for each epoch:

- its wall time;
- how the machine's CPU time was spent meanwhile (``/proc/stat``): busy (user and
  system), idle, and stolen by the hypervisor where the kernel is told of it;
- the CPU seconds of this process's busiest threads (``/proc/self/task``).

An epoch after the first is called **slow** when its wall time exceeds ``--factor``
times the median of the epochs after the first (the first one also traces the graph).
The summary compares the slow epochs with the others. If a slow epoch took longer
because it did more work, its threads spent more CPU time; if its threads spent the
same CPU time over a longer wall time while the CPUs sat idle, they were waiting for
each other, and the cause is outside the computation.

``--feed dataset`` gives ``fit`` the same patches, shuffled every epoch, as a
``tf.data`` pipeline that is not autotuned, instead of the arrays (which Keras reads
through an autotuned pipeline, a new iterator every epoch): whether the slow epochs
are the wait for an autotuned iterator's tuning thread when ``fit`` destroys it at the
end of an epoch (``docs/benchmarks.md``, *Why some epochs take twice as long*).

Linux only. Usage::

    python benchmarks/epoch_modes.py [--n 4096] [--epochs 14] [--feed arrays|dataset]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FEEDS = ("arrays", "dataset")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
_BUSY, _IDLE, _STEAL = (0, 1, 2, 4, 5, 6), (3,), (7,)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="training patches (default 4096)")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--factor",
        type=float,
        default=1.5,
        help="an epoch is slow above this multiple of the median epoch (default 1.5)",
    )
    parser.add_argument(
        "--feed",
        choices=FEEDS,
        default="arrays",
        help="arrays: fit(patches, labels), read through Keras' autotuned tf.data pipeline; "
        "dataset: the same patches from a tf.data pipeline that is not autotuned",
    )
    parser.add_argument("--threads", type=int, default=2, help="busiest threads reported")
    parser.add_argument("--out", type=Path, default=None, help="write every epoch as JSON")
    args = parser.parse_args(argv)
    if args.n < args.batch_size:
        parser.error(f"--n ({args.n}) must be at least --batch-size ({args.batch_size})")
    if args.epochs < 3:
        parser.error(f"--epochs must be at least 3, got {args.epochs}")
    if args.factor <= 1:
        parser.error(f"--factor must be above 1, got {args.factor}")
    return args


def cpu_ticks() -> np.ndarray:
    """The machine's CPU time so far, in ticks, as ``/proc/stat``'s first line has it."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return np.array([int(v) for v in fields[1:9]] + [0] * (9 - len(fields)), dtype=float)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user and system) of each thread of this process, by thread id."""
    seconds = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                # The name in parentheses may hold spaces: split after it.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[tid] = (int(fields[11]) + int(fields[12])) * TICK_S
    return seconds


def epoch_record(
    wall_s: float,
    ticks: np.ndarray,
    before: dict[str, float],
    after: dict[str, float],
    n_threads: int,
) -> dict:
    """One epoch: its wall time, CPU shares and its busiest threads' CPU seconds."""
    total = ticks.sum()
    share = {
        name: float(ticks[list(columns)].sum() / total) if total else 0.0
        for name, columns in (("busy", _BUSY), ("idle", _IDLE), ("steal", _STEAL))
    }
    spent = sorted((after[t] - before.get(t, 0.0) for t in after), reverse=True)
    return {"wall_s": wall_s, **share, "top_thread_cpu_s": spent[:n_threads]}


def slow_epochs(walls: list[float], factor: float) -> list[bool]:
    """Which epochs after the first took over ``factor`` times their median."""
    median = statistics.median(walls[1:])
    return [False] + [wall > factor * median for wall in walls[1:]]


def summarize(records: list[dict], slow: list[bool]) -> dict:
    """Mean wall time, CPU shares and top-thread CPU time of the fast and slow epochs."""
    summary = {}
    for label, flag in (("fast", False), ("slow", True)):
        group = [r for r, s in zip(records[1:], slow[1:], strict=True) if s is flag]
        if not group:
            continue
        summary[label] = {
            "epochs": len(group),
            "wall_s": statistics.fmean(r["wall_s"] for r in group),
            "busy": statistics.fmean(r["busy"] for r in group),
            "idle": statistics.fmean(r["idle"] for r in group),
            "steal": statistics.fmean(r["steal"] for r in group),
            "top_thread_cpu_s": statistics.fmean(sum(r["top_thread_cpu_s"]) for r in group),
        }
    return summary


def train(args: argparse.Namespace) -> list[dict]:
    import keras

    from idcclf.model import build_cancernet

    records: list[dict] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.threads = thread_cpu_seconds()
            self.ticks = cpu_ticks()
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            wall = time.perf_counter() - self.begin
            ticks = cpu_ticks() - self.ticks
            records.append(
                epoch_record(wall, ticks, self.threads, thread_cpu_seconds(), args.threads)
            )

    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (args.n, 50, 50, 3), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 2, args.n), 2)
    model = build_cancernet()
    model.compile(optimizer=keras.optimizers.Adagrad(1e-2), loss="categorical_crossentropy")
    if args.feed == "arrays":
        model.fit(
            patches, labels, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
            callbacks=[Probe()],
        )  # fmt: skip
        return records
    import tensorflow as tf

    from idcclf._training import read_ahead

    # read as IDCClassifier.fit reads its batches
    dataset = read_ahead(
        tf.data.Dataset.from_tensor_slices((patches, labels))
        .shuffle(args.n, seed=0, reshuffle_each_iteration=True)
        .batch(args.batch_size)
    )
    model.fit(dataset, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[Probe()])
    return records


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.exists("/proc/self/task"):
        sys.exit("epoch_modes.py reads /proc/stat and /proc/self/task: Linux only")
    records = train(args)
    slow = slow_epochs([r["wall_s"] for r in records], args.factor)
    print("| epoch | wall s | busy | idle | steal | CPU s of the busiest threads | slow |")
    print("|---|---|---|---|---|---|---|")
    for i, (r, s) in enumerate(zip(records, slow, strict=True), start=1):
        threads = " / ".join(f"{t:.1f}" for t in r["top_thread_cpu_s"])
        print(
            f"| {i} | {r['wall_s']:.1f} | {r['busy']:.2f} | {r['idle']:.2f} | "
            f"{r['steal']:.2f} | {threads} | {'yes' if s else ''} |"
        )
    summary = summarize(records, slow)
    for label, s in summary.items():
        print(
            f"{label}: {s['epochs']} epochs, {s['wall_s']:.1f} s each, busy {s['busy']:.2f}, "
            f"idle {s['idle']:.2f}, steal {s['steal']:.2f}, "
            f"{s['top_thread_cpu_s']:.1f} CPU s in the busiest threads"
        )
    if "slow" in summary and "fast" in summary:
        fast, slow_ = summary["fast"], summary["slow"]
        print(
            f"slow / fast: wall {slow_['wall_s'] / fast['wall_s']:.2f}x, CPU time of the "
            f"busiest threads {slow_['top_thread_cpu_s'] / fast['top_thread_cpu_s']:.2f}x"
        )
    else:
        print(f"no epoch was slower than {args.factor}x the median")
    if args.out:
        report = {"config": {k: str(v) for k, v in vars(args).items()}, "epochs": records,
                  "slow": slow, "summary": summary}  # fmt: skip
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
