"""Time from ``IDCClassifier.fit`` to its first batch's end, training state built first or not.

Keras on TensorFlow creates the optimizer's variables and those of the compiled
metrics while it traces the first training step, and TensorFlow traces a step that
creates variables twice. ``fit`` creates them before (``build_training_state`` in
``idcclf._training``), so the step is traced once. This script times both:

- **built**: ``fit`` as it is;
- **lazy**: the same with ``build_training_state`` doing nothing, as Keras does on
  its own.

Each fit runs in a fresh process (``take_turns`` of ``bench_training.py``), as
the first fit of a session does, the two taking turns ``--rounds`` times, on ``--n``
random patches (what is traced does not depend on the pixels), one epoch. For each it
prints the seconds from the call of ``fit`` to the end of its first batch, the number
of times the training step was traced, and the first epoch's seconds.

Usage::

    python benchmarks/first_batch.py [--n 2048] [--rounds 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import extra_fit_callbacks, take_turns, write_runs  # noqa: E402

WAYS = ("built", "lazy")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="training patches")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.n < 64:
        parser.error(f"--n must be at least 64 (two batches of 32), got {args.n}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


def fit_once(way: str, n: int) -> dict:
    """One fit, its training state built first (``built``) or by Keras (``lazy``)."""
    import keras
    import numpy as np

    from idcclf import IDCClassifier, _training

    if way == "lazy":
        _training.build_training_state = lambda model, batch: None
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, 50, 50, 3), dtype=np.uint8)
    y = rng.integers(0, 2, n)
    traces = []
    original = keras.Model.train_step

    def train_step(self, data):
        traces.append(time.perf_counter())
        return original(self, data)

    keras.Model.train_step = train_step
    times: dict = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.setdefault("first_batch", time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times["epoch_end"] = time.perf_counter()

    clf = IDCClassifier(epochs=1, random_state=0, recalibrate_batch_norm=False)
    start = time.perf_counter()
    with extra_fit_callbacks(Clock()):
        clf.fit(X, y)
    return {
        "way": way,
        "first_batch_s": times["first_batch"] - start,
        "traces": len(traces),
        "epoch_s": times["epoch_end"] - start,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"{args.n} random patches, 1 epoch, {args.rounds} rounds, {os.cpu_count()} CPUs")
    runs = take_turns(
        args.rounds,
        WAYS,
        fit_once,
        lambda way: (way, args.n),
        lambda run: (
            f"first batch after {run['first_batch_s']:.2f} s "
            f"({run['traces']} trace(s) of the step), epoch {run['epoch_s']:.1f} s"
        ),
    )
    medians = {
        way: statistics.median(r["first_batch_s"] for r in runs if r["way"] == way) for way in WAYS
    }
    saved = [
        lazy["first_batch_s"] - built["first_batch_s"]
        for built, lazy in zip(runs[::2], runs[1::2], strict=True)
    ]
    print(
        f"median to the first batch: built {medians['built']:.2f} s, lazy "
        f"{medians['lazy']:.2f} s; saved per round {min(saved):.2f} to {max(saved):.2f} s"
    )
    if args.out:
        write_runs(args.out, args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
