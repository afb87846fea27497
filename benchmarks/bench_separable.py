"""Training speed of CancerNet with other implementations of its separable convolutions.

Run from the repository root::

    python benchmarks/bench_separable.py [--n 2048] [--rounds 3]

The same network (``build_cancernet`` defaults, no augmentation, Adagrad 1e-2, batch
32) is trained for one epoch on ``--n`` real patches of the bundled sample, with its
depthwise separable 3x3 convolutions computed four ways:

- ``keras``: ``keras.layers.SeparableConv2D`` (what CancerNet uses);
- ``split``: ``tf.nn.depthwise_conv2d`` then the 1x1 pointwise step as a matmul;
- ``shift``: the depthwise step as nine shifted multiply-adds, then the matmul;
- ``conv2d``: a plain ``Conv2D`` (more parameters; a different network, for scale).

``split`` and ``shift`` hold the same weights as ``keras`` and compute the same
function (the maximum output difference is printed). The variants are interleaved over
``--rounds`` rounds after a warm-up fit each; the fastest and median img/s are printed,
with each variant's ratio to ``keras``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from idcclf import load_sample


class _PairedSeparable(layers.Layer):
    """A 3x3 'same' separable convolution with SeparableConv2D's weights, in order."""

    def __init__(self, filters, kernel_size=3, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape):
        channels = input_shape[-1]
        self.depthwise_kernel = self.add_weight(
            shape=(3, 3, channels, 1), initializer="glorot_uniform", name="depthwise_kernel"
        )
        self.pointwise_kernel = self.add_weight(
            shape=(1, 1, channels, self.filters), initializer="glorot_uniform", name="pointwise"
        )
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def pointwise(self, x):
        return ops.matmul(x, self.pointwise_kernel[0, 0]) + self.bias


class SplitSeparable(_PairedSeparable):
    def call(self, x):
        return self.pointwise(tf.nn.depthwise_conv2d(x, self.depthwise_kernel, [1] * 4, "SAME"))


class ShiftSeparable(_PairedSeparable):
    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        total = None
        for i in range(3):
            for j in range(3):
                window = padded[:, i : i + height, j : j + width, :]
                term = window * self.depthwise_kernel[i, j, :, 0]
                total = term if total is None else total + term
        return self.pointwise(total)


VARIANTS = {
    "keras": layers.SeparableConv2D,
    "split": SplitSeparable,
    "shift": ShiftSeparable,
    "conv2d": layers.Conv2D,
}


def build(conv) -> keras.Model:
    """CancerNet's default architecture with ``conv`` as its convolution layer."""
    inputs = keras.Input((50, 50, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    for filters, repeats in zip((32, 64, 128), (1, 2, 3), strict=True):
        for _ in range(repeats):
            x = conv(filters, 3, padding="same")(x)
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(keras.optimizers.Adagrad(1e-2), "sparse_categorical_crossentropy")
    return model


def features(model: keras.Model) -> keras.Model:
    """The network up to the last dense layer's input (its batch norm, in inference)."""
    return keras.Model(model.inputs, model.layers[-3].output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="training patches (default 2048)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        choices=range(1, 100),
        metavar="ROUNDS",
        help="interleaved rounds (default 3)",
    )
    args = parser.parse_args()

    sample = load_sample()
    rng = np.random.default_rng(0)
    index = rng.choice(len(sample.target), size=min(args.n, len(sample.target)), replace=False)
    X, y = sample.data[index], sample.target[index]
    print(f"{len(X)} real patches of the bundled sample, 1 epoch, batch 32, {args.rounds} rounds")

    # Compared before the softmax, which saturates for an untrained network.
    reference = features(build(layers.SeparableConv2D))
    expected = reference.predict(X[:256], verbose=0)
    for name in ("split", "shift"):
        model = features(build(VARIANTS[name]))
        model.set_weights(reference.get_weights())
        diff = np.abs(model.predict(X[:256], verbose=0) - expected).max()
        print(
            f"{name}: same weights as keras; features before the softmax differ by at most "
            f"{diff / np.abs(expected).max():.1e} of their largest value"
        )

    speeds = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, conv in VARIANTS.items():
            model = build(conv)
            model.fit(X[:256], y[:256], batch_size=32, epochs=1, verbose=0)  # tracing
            start = time.perf_counter()
            model.fit(X, y, batch_size=32, epochs=1, verbose=0)
            speeds[name].append(len(X) / (time.perf_counter() - start))
            print(f"round {round_ + 1} {name:7s} {speeds[name][-1]:7.0f} img/s", flush=True)
    best_keras = max(speeds["keras"])
    print(f"{'variant':8s} {'best':>7s} {'median':>7s} {'best/keras':>10s}")
    for name, values in speeds.items():
        print(
            f"{name:8s} {max(values):7.0f} {statistics.median(values):7.0f} "
            f"{max(values) / best_keras:10.2f}"
        )


if __name__ == "__main__":
    main()
