"""Training speed of CancerNet with Keras' batch normalization and with idcclf's fused one.

Run from the repository root::

    python benchmarks/bench_batch_norm.py [--n 2048] [--rounds 3] [--out FILE.json]

The same network (``build_cancernet`` defaults, Adagrad 1e-2, batch 32, no
augmentation) is trained on ``--n`` real patches of the bundled sample with its batch
normalization computed three ways:

- ``keras``: ``keras.layers.BatchNormalization``, as Keras 3 computes it in training
  (the batch's moments, then the normalization, as separate operations);
- ``fused``: :class:`idcclf.model.FusedBatchNormalization` (the default), one
  ``FusedBatchNormV3`` op forward and one backward;
- ``none``: no batch normalization at all (``batch_norm=False``): a different network,
  the floor that shows what batch normalization costs.

First, with the same weights and dropout off, ``keras`` and ``fused`` are compared on
one training step: the largest difference of their outputs, of their gradients
(relative to each weight's largest gradient) and of their moving statistics; the
gradients of ``keras`` on the same batch in reverse order give the scale of float32
rounding alone. Then, over
``--rounds`` interleaved rounds, each variant's time per training step (the fastest of
repeated blocks of 8 steps on one batch, compiled: the least disturbed by other work on
a shared machine) and its one-epoch rate through ``keras.Model.fit`` (after a warm-up
fit) are measured; the ratios to ``keras`` are printed per round and for the fastest.
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

VARIANTS = {"keras": {"fused_batch_norm": False}, "fused": {}, "none": {"batch_norm": False}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="training patches (default 2048)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--steps", type=int, default=12, help="blocks of 8 timed steps a round")
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = parser.parse_args(argv)
    for name in ("n", "rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def compiled_step(model, x, y):
    """One compiled training step of ``model`` on the batch ``(x, y)``."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adagrad(1e-2)
    loss = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return value

    return step


def agreement(x, y) -> dict:
    """How far one training step of ``fused`` is from ``keras``, same weights, no dropout.

    The yardstick is float32 rounding itself: ``keras`` against itself on the same batch
    in reverse order (the same mathematics, summed in another order).
    """
    import keras
    import tensorflow as tf

    from idcclf import build_cancernet

    nets = {
        name: build_cancernet(block_dropout=0.0, head_dropout=0.0, **VARIANTS[name])
        for name in ("keras", "fused")
    }
    nets["fused"].set_weights(nets["keras"].get_weights())
    runs = {"keras": (nets["keras"], x, y), "fused": (nets["fused"], x, y)}
    runs["keras, batch reversed"] = (nets["keras"], x[::-1], y[::-1])
    found = {}
    for name, (net, batch_x, batch_y) in runs.items():
        with tf.GradientTape() as tape:
            proba = net(batch_x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(batch_y, proba))
        grads = tape.gradient(loss, net.trainable_variables)
        moving = [np.asarray(v) for v in net.non_trainable_variables if "moving" in v.path]
        found[name] = (np.asarray(proba), [np.asarray(g) for g in grads], moving)

    def gradient_gap(a, b) -> float:
        return max(
            float(np.abs(u - v).max() / (np.abs(u).max() + 1e-12))
            for u, v in zip(found[a][1], found[b][1], strict=True)
        )

    (p_k, _, m_k), (p_f, _, m_f) = found["keras"], found["fused"]
    return {
        "output": float(np.abs(p_k - p_f).max()),
        "gradient_relative": gradient_gap("keras", "fused"),
        "gradient_relative_keras_reordered": gradient_gap("keras", "keras, batch reversed"),
        "moving_statistics": max(float(np.abs(a - b).max()) for a, b in zip(m_k, m_f, strict=True)),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from idcclf import build_cancernet, load_sample

    sample = load_sample()
    rng = np.random.default_rng(0)
    index = rng.choice(len(sample.target), size=min(args.n, len(sample.target)), replace=False)
    X, y = sample.data[index], sample.target[index]
    print(
        f"{len(X)} real patches of the bundled sample, batch 32, Adagrad 1e-2, no "
        f"augmentation, {args.rounds} rounds, {os.cpu_count()} CPUs",
        flush=True,
    )
    batch_x = tf.constant(X[:32].astype("float32"))
    batch_y = tf.constant(y[:32])
    diff = agreement(batch_x, batch_y)
    print(
        f"fused against keras, same weights, one training step: outputs differ by at most "
        f"{diff['output']:.1e}, gradients by {diff['gradient_relative']:.1e} of each "
        f"weight's largest (keras against itself on the batch reversed: "
        f"{diff['gradient_relative_keras_reordered']:.1e}), moving statistics by "
        f"{diff['moving_statistics']:.1e}",
        flush=True,
    )

    step_ms: dict[str, list[float]] = {name: [] for name in VARIANTS}
    epoch_rate: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, kwargs in VARIANTS.items():
            model = build_cancernet(**kwargs)
            step = compiled_step(model, batch_x, batch_y)
            step()  # tracing
            fastest = float("inf")
            for _ in range(args.steps):
                start = time.perf_counter()
                for _ in range(8):
                    step()
                fastest = min(fastest, (time.perf_counter() - start) / 8)
            step_ms[name].append(1000 * fastest)

            model = build_cancernet(**kwargs)
            model.compile(keras.optimizers.Adagrad(1e-2), "sparse_categorical_crossentropy")
            model.fit(X[:256], y[:256], batch_size=32, epochs=1, verbose=0)  # tracing
            start = time.perf_counter()
            model.fit(X, y, batch_size=32, epochs=1, verbose=0)
            epoch_rate[name].append(len(X) / (time.perf_counter() - start))
            print(
                f"round {round_ + 1} {name:6s} {step_ms[name][-1]:6.1f} ms a step (fastest), "
                f"{epoch_rate[name][-1]:5.0f} img/s over an epoch",
                flush=True,
            )
        print(
            f"round {round_ + 1}: fused / keras {step_ms['keras'][-1] / step_ms['fused'][-1]:.2f}x "
            f"a step, {epoch_rate['fused'][-1] / epoch_rate['keras'][-1]:.2f}x an epoch",
            flush=True,
        )

    print(f"\n{'variant':8s}{'ms a step':>11s}{'img/s best':>12s}{'median':>8s}{'vs keras':>10s}")
    for name in VARIANTS:
        best, median = max(epoch_rate[name]), statistics.median(epoch_rate[name])
        print(
            f"{name:8s}{min(step_ms[name]):>11.1f}{best:>12.0f}{median:>8.0f}"
            f"{best / max(epoch_rate['keras']):>9.2f}x"
        )
    if args.out is not None:
        from idcclf._io import atomic_write_text

        record = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "agreement": diff,
            "step_ms": step_ms,
            "epoch_images_per_s": epoch_rate,
        }
        atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
