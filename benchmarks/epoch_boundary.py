"""Stalls at the ends of epochs: ``fit`` fed as a ``keras.utils.PyDataset`` and as idcclf feeds it.

With a ``keras.utils.PyDataset``, ``keras.Model.fit`` (TensorFlow backend) reads the
batches through an autotuned ``tf.data`` pipeline and makes a new iterator of it at
the end of every epoch; destroying the old one waits for its tuning thread, which
sleeps between tuning rounds for periods that double up to a minute. ``IDCClassifier``
feeds ``fit`` from one iterator that is not autotuned (``EpochBatches.dataset`` in
``idcclf._training``). This script times both on the same batches:

- **pydataset**: the batches of ``EpochBatches`` as a ``keras.utils.PyDataset``, how
  ``IDCClassifier`` used to feed ``fit`` (and how Keras reads any ``PyDataset``);
- **idcclf**: ``EpochBatches.dataset()`` with ``steps_per_epoch``, as ``fit`` is fed now.

The network is a single dense layer on ``--steps * 32`` random rows: the stall depends
on how long an iterator has lived, not on what the training computes, so a callback
keeps the CPUs busy after every batch (NumPy matrix products, on all cores, as a
training step would) to make each epoch last ``--seconds-per-epoch`` (as a real epoch
of ``IDCClassifier`` on 100 patients lasts 40-90 s here). Without that load the stall
was rarer (seen in 2 of 6 fits here, with other processes running). Each fit runs in a
fresh process (``take_turns`` of ``bench_training.py``), the two feeds taking
turns ``--rounds`` times. For each fit it prints the wait at every epoch boundary (from
the end of an epoch's last batch to the start of the next epoch's first, less the
callback's load) and at the end (from the last epoch's end to ``fit``'s return).

Usage::

    python benchmarks/epoch_boundary.py [--epochs 3] [--seconds-per-epoch 70] \\
        [--steps 10] [--rounds 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import take_turns, write_runs  # noqa: E402

FEEDS = ("pydataset", "idcclf")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seconds-per-epoch", type=float, default=70.0)
    parser.add_argument("--steps", type=int, default=10, help="batches per epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for name in ("epochs", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.seconds_per_epoch < 0:
        parser.error(f"--seconds-per-epoch must not be negative, got {args.seconds_per_epoch}")
    return args


def fit_once(feed: str, epochs: int, seconds_per_epoch: float, steps: int) -> dict:
    """One fit fed by ``feed``; the waits at its epoch boundaries and at its end."""
    import keras
    import numpy as np

    from idcclf._training import EpochBatches

    rng = np.random.default_rng(0)
    X = rng.random((steps * 32, 8), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64)
    batches = EpochBatches(X, y, None, batch_size=32, seed=0)
    pause = seconds_per_epoch / steps
    work = rng.random((256, 256), dtype=np.float32)
    events: list = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            events.append(("begin", time.perf_counter()))

        def on_train_batch_end(self, batch, logs=None):
            events.append(("end", time.perf_counter()))
            until = time.perf_counter() + pause
            while time.perf_counter() < until:
                work @ work
            events.append(("slept", time.perf_counter()))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", time.perf_counter()))

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = batches

        def __len__(self):
            return len(self.epoch)

        def __getitem__(self, index):
            return self.epoch[index]

        def on_epoch_end(self):
            self.epoch = EpochBatches(X, y, None, batch_size=32, seed=0, epoch=self.epoch.epoch + 1)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    if feed == "pydataset":
        data, kwargs = Batches(), {}
    else:
        data, kwargs = batches.dataset(), {"steps_per_epoch": len(batches), "shuffle": False}
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[Clock()], **kwargs)
    returned = time.perf_counter()
    # an epoch's last batch ends ("slept"), its end is recorded, the next batch begins
    boundaries = [
        following[1] - previous[1]
        for previous, middle, following in zip(events, events[1:], events[2:], strict=False)
        if previous[0] == "slept" and middle[0] == "epoch_end" and following[0] == "begin"
    ]
    return {
        "feed": feed,
        "boundary_waits_s": boundaries,
        "end_wait_s": returned - events[-1][1],
        "fit_s": returned - start,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    print(
        f"{args.epochs} epochs of {args.steps} batches, {args.seconds_per_epoch:g} s an "
        f"epoch, {args.rounds} rounds, {os.cpu_count()} CPUs",
        flush=True,
    )
    runs = take_turns(
        args.rounds,
        FEEDS,
        fit_once,
        lambda feed: (feed, args.epochs, args.seconds_per_epoch, args.steps),
        lambda run: (
            "waits at epoch boundaries ["
            + ", ".join(f"{w:.1f}" for w in run["boundary_waits_s"])
            + f"] s, at the end {run['end_wait_s']:.1f} s; fit {run['fit_s']:.1f} s"
        ),
    )
    print("longest wait over all boundaries and ends (seconds), and how many exceeded 1 s:")
    for feed in FEEDS:
        ours = [r for r in runs if r["feed"] == feed]
        waits = [w for r in ours for w in [*r["boundary_waits_s"], r["end_wait_s"]]]
        over = sum(w > 1 for w in waits)
        print(f"  {feed:9}: {max(waits):.1f} s; {over} of {len(waits)} over 1 s")
    if args.out:
        write_runs(args.out, args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
