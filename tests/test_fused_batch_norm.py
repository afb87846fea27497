"""FusedBatchNormalization: Keras' BatchNormalization, trained by one TensorFlow kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from idcclf import build_cancernet
from idcclf.model import FusedBatchNormalization


def _pair(shape, **config):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same weights."""
    rng = np.random.default_rng(0)
    stock = keras.layers.BatchNormalization(**config)
    fused = FusedBatchNormalization(**config)
    for layer in (stock, fused):
        layer.build((None, *shape[1:]))
    weights = [rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in stock.weights]
    stock.set_weights(weights)
    fused.set_weights(weights)
    return stock, fused


def _train_step(layer, x, upstream):
    """Training-mode output, gradients (x, gamma, beta) and moving statistics after it."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grads = tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=upstream)
    moving = [layer.moving_mean, layer.moving_variance]
    return [np.asarray(v) for v in [y, *grads, *moving]]


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (9, 7), (1, 7), (1, 1, 1, 3)])
def test_training_step_matches_keras(shape):
    rng = np.random.default_rng(1)
    # ReLU-like inputs far from zero mean, as CancerNet's layers see them.
    x = (np.maximum(rng.normal(0.5, 1.0, shape), 0) * 3 + 2).astype("float32")
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    stock, fused = _pair(shape)
    want_all, got_all = _train_step(stock, x, upstream), _train_step(fused, x, upstream)
    for want, got in zip(want_all, got_all, strict=True):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_inference_is_keras_own():
    x = np.random.default_rng(2).normal(size=(4, 3, 3, 5)).astype("float32")
    stock, fused = _pair(x.shape)
    np.testing.assert_array_equal(fused(x, training=False), stock(x, training=False))


@pytest.mark.parametrize(
    "config, x",
    [
        ({}, np.ones((2, 3, 4), "float64")),  # rank 3 and float64
        ({"renorm": True}, np.ones((2, 3, 3, 2), "float32")),
        ({"center": False}, np.ones((2, 3, 3, 2), "float32")),
        ({"axis": 1}, np.ones((2, 3, 3, 2), "float32")),
    ],
)
def test_cases_the_kernel_does_not_cover_run_keras_code(config, x, monkeypatch):
    x = x + np.arange(x.size).reshape(x.shape) % 5
    stock, fused = _pair(x.shape, **config)
    assert not fused._fusable(tf.constant(x), True, None)
    monkeypatch.setattr(tf.raw_ops, "FusedBatchNormV3", None)  # would fail if called
    np.testing.assert_allclose(
        fused(x, training=True), stock(x, training=True), rtol=1e-6, atol=1e-6
    )


def test_frozen_layer_normalizes_with_its_moving_statistics():
    x = np.random.default_rng(3).normal(size=(4, 3, 3, 2)).astype("float32")
    _, fused = _pair(x.shape)
    fused.trainable = False
    before = np.asarray(fused.moving_mean).copy()
    np.testing.assert_array_equal(fused(x, training=True), fused(x, training=False))
    np.testing.assert_array_equal(fused.moving_mean, before)


def test_trained_network_saves_and_loads(tmp_path):
    net = build_cancernet((8, 8, 3), filters=(4,), convs_per_block=(1,), dense_units=4)
    net.compile("adagrad", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (16, 8, 8, 3)).astype("float32")
    net.fit(x, rng.integers(0, 2, 16), epochs=1, batch_size=5, verbose=0)  # last batch: 1
    assert all(np.all(np.isfinite(w)) for w in net.get_weights())
    net.save(tmp_path / "net.keras")
    loaded = keras.saving.load_model(tmp_path / "net.keras")
    assert isinstance(loaded.get_layer("block1_bn1"), FusedBatchNormalization)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-6)
